//! DPoP (RFC 9449): the client's key, the proofs it signs, and the nonces servers hand out.
//!
//! - [`key`]: [`DpopKey`], its proofs and its persisted form.
//! - [`nonce`]: the per-origin nonce cache.
//!
//! [`Dpop`] ties a key to the nonce cache and the clock: the session holds one, the middleware signs API
//! requests with it, and refreshers get it in their [`RefreshContext`](crate::RefreshContext).

mod key;
mod nonce;

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method};
use reqwest::Url;
use tessera_core::jose::{Algorithm, KeyError, SignError};
use tessera_core::random::RandomError;

use crate::Clock;

pub use key::DpopKey;
pub(crate) use key::PersistedDpopKey;
use key::access_token_hash;
pub(crate) use nonce::NonceCache;

/// The `DPoP` request header, carrying the proof.
pub(crate) const DPOP: HeaderName = HeaderName::from_static(tessera_core::header::DPOP);

/// The token type and `Authorization` scheme of DPoP-bound access tokens.
pub(crate) use tessera_core::DPOP as DPOP_SCHEME;

/// Why a DPoP key could not be made or loaded, or a proof not signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// DPoP keys here are EdDSA or ES256; generate or load one of those.
    #[error("{0} keys are not used for DPoP here; use EdDSA or ES256")]
    UnsupportedAlgorithm(Algorithm),
    /// A persisted DPoP key names an algorithm this library does not know; the token file was altered.
    #[error("the stored DPoP key names the unknown algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// The key could not be generated, loaded or encoded.
    #[error("the DPoP key is unusable: {0}")]
    Key(#[from] KeyError),
    /// The proof could not be signed.
    #[error("the DPoP proof could not be signed: {0}")]
    Sign(#[from] SignError),
    /// The OS random generator failed, so no `jti` could be drawn.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The signed proof is not a valid header value (never expected: a compact JWS is base64url text).
    #[error("the DPoP proof is not a valid header value")]
    Header,
}

/// DPoP for one client: a [`DpopKey`] plus the nonces the servers it talks to handed out, on the
/// middleware's clock. The middleware signs API requests with it, and a [`Refresher`](crate::Refresher)
/// finds it in its [`RefreshContext`](crate::RefreshContext) to sign token requests.
///
/// ```
/// use std::sync::Arc;
/// use tessera_client::{Dpop, DpopKey, SystemClock};
/// use tessera_core::jose::Algorithm;
///
/// let dpop = Dpop::new(DpopKey::generate(Algorithm::Es256)?, Arc::new(SystemClock));
/// let endpoint = "https://auth.example/token".parse()?;
/// let proof = dpop.token_request_proof(&endpoint)?;
/// assert_eq!(proof.to_str()?.split('.').count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Dpop {
    key: DpopKey,
    nonces: Arc<NonceCache>,
    clock: Arc<dyn Clock>,
}

impl Dpop {
    /// `key` with an empty nonce cache, stamping proofs with `clock`'s time.
    pub fn new(key: DpopKey, clock: Arc<dyn Clock>) -> Self {
        Dpop::sharing(key, Arc::default(), clock)
    }

    /// `key` with the nonces of `nonces`.
    pub(crate) fn sharing(key: DpopKey, nonces: Arc<NonceCache>, clock: Arc<dyn Clock>) -> Self {
        Dpop { key, nonces, clock }
    }

    /// The key proofs are signed with.
    pub fn key(&self) -> &DpopKey {
        &self.key
    }

    /// The `DPoP` header value for a token request (`POST` to `token_endpoint`, no `ath`), with the nonce
    /// the endpoint's origin handed out last.
    ///
    /// # Errors
    /// As [`DpopKey::proof`].
    pub fn token_request_proof(&self, token_endpoint: &Url) -> Result<HeaderValue, DpopError> {
        self.proof(&Method::POST, token_endpoint, None)
    }

    /// The `DPoP` header value for `method` on `url`, presenting `access_token` (so with `ath`) if given,
    /// with the nonce the URL's origin handed out last.
    ///
    /// # Errors
    /// As [`DpopKey::proof`].
    pub fn proof(
        &self,
        method: &Method,
        url: &Url,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, DpopError> {
        let ath = access_token.map(access_token_hash);
        self.signed(method, url, ath.as_deref())
    }

    fn signed(
        &self,
        method: &Method,
        url: &Url,
        ath: Option<&str>,
    ) -> Result<HeaderValue, DpopError> {
        let nonce = self.nonces.get(url);
        let proof = self
            .key
            .sign_proof(method, url, ath, nonce.as_deref(), self.clock.now())?;
        let mut value = HeaderValue::try_from(proof).map_err(|_| DpopError::Header)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Remembers the `DPoP-Nonce` of an answer from `url` (any status: servers rotate nonces on successes
    /// too); says whether there was a valid one.
    pub fn remember_nonce(&self, url: &Url, headers: &HeaderMap) -> bool {
        self.nonces.remember(url, headers)
    }
}

/// A DPoP-bound access token's proof maker: the [`Dpop`] of its key and the token's `ath`, computed once.
pub(crate) struct BoundToken {
    dpop: Dpop,
    ath: String,
}

impl BoundToken {
    pub(crate) fn new(dpop: Dpop, access_token: &str) -> Self {
        BoundToken {
            ath: access_token_hash(access_token),
            dpop,
        }
    }

    /// The proof for one request presenting the token.
    pub(crate) fn proof(&self, method: &Method, url: &Url) -> Result<HeaderValue, DpopError> {
        self.dpop.signed(method, url, Some(&self.ath))
    }

    /// Remembers the nonce of an answer from `url`.
    pub(crate) fn remember_nonce(&self, url: &Url, headers: &HeaderMap) -> bool {
        self.dpop.remember_nonce(url, headers)
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
