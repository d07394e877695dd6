//! [`Dpop`]: how a layer accepts DPoP-bound tokens, in one value handed to
//! [`JwtAuthBuilder::dpop`](crate::JwtAuthBuilder::dpop).

use std::fmt;
use std::time::Duration;

use crate::Algorithm;

/// The default proof window: a proof's `iat` may be this far from the server's clock, either way.
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);

/// The default number of proof `jti`s remembered to refuse replays.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// The default lifetime of a server nonce: a nonce stays accepted for one more period after it was
/// replaced.
pub const DEFAULT_NONCE_ROTATION: Duration = Duration::from_secs(5 * 60);

/// DPoP (RFC 9449) for a [`JwtAuthLayer`](crate::JwtAuthLayer): turned on with one builder call,
/// [`JwtAuthBuilder::dpop`](crate::JwtAuthBuilder::dpop).
///
/// With it, the layer accepts `Authorization: DPoP <token>` with one `DPoP` proof header, besides bearer
/// tokens ([`Dpop::required`] refuses those). Each proof must be a `dpop+jwt` signed with one of the
/// [proof algorithms](Dpop::proof_algorithms) by the public key in its `jwk` header, for this request's
/// method and URL (`htm`, `htu`: the public URL given here plus the request path), issued within the
/// [window](Dpop::proof_window) (`iat`), never seen before (`jti`), for this token (`ath`), by the key the
/// token is bound to (`cnf.jkt`). A token bound to a key is refused when it comes as a bearer token, in
/// every mode.
///
/// ```
/// use tessera_server::{Dpop, JwtAuthLayer};
///
/// # fn main() -> Result<(), tessera_server::BuildError> {
/// let auth = JwtAuthLayer::builder()
///     .public_key_pem(tessera_server::Algorithm::Es256, include_str!("../../tests/keys/p256.pub"))
///     .issuer("https://auth.example")
///     .audience("https://api.example")
///     .dpop(Dpop::new("https://api.example"))
///     .build()?;
/// # let _ = auth;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Dpop {
    pub(crate) public_url: String,
    pub(crate) required: bool,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) window: Duration,
    pub(crate) replay_capacity: usize,
    pub(crate) nonce: Option<NonceSettings>,
}

/// How server nonces are made.
#[derive(Clone)]
pub(crate) struct NonceSettings {
    /// `None`: a random secret, made when the layer is built.
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) rotation: Duration,
}

impl Dpop {
    /// DPoP for an API reachable at `public_url` (`https://api.example`, or with a path prefix a proxy
    /// strips, `https://example.com/api`): a proof's `htu` must be it followed by the request's path. The
    /// URL is the one clients use, not the address the server listens on behind a proxy.
    ///
    /// Defaults: bearer tokens accepted too, proof algorithms ES256, ES384, EdDSA, Ed25519, PS256 and RS256,
    /// a 60 s window ([`DEFAULT_PROOF_WINDOW`]), 100 000 remembered proofs
    /// ([`DEFAULT_REPLAY_CAPACITY`]), no nonces.
    pub fn new(public_url: impl Into<String>) -> Dpop {
        Dpop {
            public_url: public_url.into(),
            required: false,
            algorithms: vec![
                Algorithm::Es256,
                Algorithm::Es384,
                Algorithm::EdDsa,
                Algorithm::Ed25519,
                Algorithm::Ps256,
                Algorithm::Rs256,
            ],
            window: DEFAULT_PROOF_WINDOW,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            nonce: None,
        }
    }

    /// Accepts DPoP-bound tokens with a proof only: a bearer token (header, cookie or query) is answered
    /// 401 `invalid_token` with a `DPoP` challenge.
    pub fn required(mut self) -> Dpop {
        self.required = true;
        self
    }

    /// The algorithms a proof may be signed with, sent as the challenges' `algs`. Only asymmetric ones: an
    /// HMAC proof would need the server to know the client's secret, and makes
    /// [`build`](crate::JwtAuthBuilder::build) fail.
    pub fn proof_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Dpop {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How far a proof's `iat` may be from the server's clock, either way. Whole seconds. The proofs seen
    /// within twice the window are remembered; a shorter window means fewer.
    pub fn proof_window(mut self, window: Duration) -> Dpop {
        self.window = window;
        self
    }

    /// How many proofs are remembered to refuse a replayed one. Memory stays bounded by it; when more
    /// proofs than this arrive within two windows, the least recently seen may be forgotten early.
    pub fn replay_capacity(mut self, proofs: usize) -> Dpop {
        self.replay_capacity = proofs;
        self
    }

    /// Requires a server nonce in every proof (RFC 9449 §9): a proof without one, or with a stale one, is
    /// answered 401 `use_dpop_nonce` with the nonce to use in `DPoP-Nonce`. Nonces rotate every
    /// [`DEFAULT_NONCE_ROTATION`]; a replaced one stays accepted for one more period, and the answer to a
    /// request that used it carries the new one. The secret that makes them is random per layer: servers
    /// behind one load balancer share one with [`Dpop::nonce_secret`].
    pub fn require_nonce(mut self) -> Dpop {
        self.nonce.get_or_insert(NonceSettings {
            secret: None,
            rotation: DEFAULT_NONCE_ROTATION,
        });
        self
    }

    /// Requires server nonces made with `secret` (at least 32 bytes), so that every instance sharing it
    /// accepts the others' nonces.
    pub fn nonce_secret(self, secret: impl AsRef<[u8]>) -> Dpop {
        let mut dpop = self.require_nonce();
        if let Some(nonce) = &mut dpop.nonce {
            nonce.secret = Some(secret.as_ref().to_vec());
        }
        dpop
    }

    /// Requires server nonces rotating every `rotation` (whole seconds).
    pub fn nonce_rotation(self, rotation: Duration) -> Dpop {
        let mut dpop = self.require_nonce();
        if let Some(nonce) = &mut dpop.nonce {
            nonce.rotation = rotation;
        }
        dpop
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("public_url", &self.public_url)
            .field("required", &self.required)
            .field("algorithms", &self.algorithms)
            .field("window", &self.window)
            .field("replay_capacity", &self.replay_capacity)
            .field(
                "nonce_rotation",
                &self.nonce.as_ref().map(|nonce| nonce.rotation),
            )
            .finish_non_exhaustive()
    }
}
