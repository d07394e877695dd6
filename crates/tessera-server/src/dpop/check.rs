//! The per-request part of DPoP: the proof of one request, and after the token verified, its binding and
//! its first use.

use std::fmt::Write as _;

use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use tessera_core::jose::{ProofError, ProofRequirements};

use super::nonce::{Freshness, Nonces};
use super::replay::ReplayCache;
use super::settings::Dpop;
use crate::{Algorithm, AuthRejection, BuildError, VerifiedToken};

/// The header carrying the proof (RFC 9449 §4.1).
const DPOP: HeaderName = HeaderName::from_static(tessera_core::header::DPOP);

/// A layer's DPoP checks, built from [`Dpop`].
pub(crate) struct DpopCheck {
    /// Only DPoP-bound tokens with a proof are accepted.
    pub(crate) required: bool,
    /// The public URL requests are addressed to, without a trailing `/`.
    base: Box<str>,
    algorithms: Box<[Algorithm]>,
    /// `algorithms` space-separated: the challenges' `algs`.
    pub(crate) algs: Box<str>,
    window: i64,
    replay: ReplayCache,
    nonces: Option<Nonces>,
}

/// A proof that checked out for its request, until the token it came with is known.
#[derive(Debug)]
pub(crate) struct Proof {
    thumbprint: Box<str>,
    replay_key: u64,
    /// When its `jti` may be forgotten: past the window, its `iat` no longer passes.
    remembered_until: i64,
    /// A nonce to hand over with the answer: the proof used the previous one.
    pub(crate) fresh_nonce: Option<HeaderValue>,
}

impl DpopCheck {
    pub(crate) fn new(settings: Dpop) -> Result<DpopCheck, BuildError> {
        let base = settings
            .public_url
            .strip_suffix('/')
            .unwrap_or(&settings.public_url);
        let valid_base = base.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "https" | "http")
                && !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(['?', '#', '@', ' '])
        });
        if !valid_base {
            return Err(BuildError::InvalidDpopUrl(settings.public_url));
        }
        if settings.algorithms.is_empty() {
            return Err(BuildError::InvalidDpop("no proof algorithm is accepted"));
        }
        if settings
            .algorithms
            .iter()
            .any(|algorithm| algorithm.is_symmetric())
        {
            return Err(BuildError::InvalidDpop(
                "proofs are signed with the client's private key: HS256 is not a proof algorithm",
            ));
        }
        if settings.replay_capacity == 0 {
            return Err(BuildError::Zero("the DPoP replay capacity"));
        }
        let window = seconds(settings.window.as_secs());
        if window == 0 {
            return Err(BuildError::Zero("the DPoP proof window"));
        }
        let nonces = match settings.nonce {
            None => None,
            Some(nonce) => {
                let rotation = seconds(nonce.rotation.as_secs());
                if rotation == 0 {
                    return Err(BuildError::Zero("the DPoP nonce rotation"));
                }
                let secret = match nonce.secret {
                    Some(secret) if secret.len() < tessera_core::jose::MIN_HMAC_SECRET_LEN => {
                        return Err(BuildError::InvalidDpop(
                            "the nonce secret must be at least 32 bytes",
                        ));
                    }
                    Some(secret) => secret,
                    None => tessera_core::random::bytes::<32>()
                        .map_err(BuildError::Random)?
                        .to_vec(),
                };
                Some(Nonces::new(&secret, rotation))
            }
        };
        let mut algs = String::new();
        for (index, algorithm) in settings.algorithms.iter().enumerate() {
            let separator = if index == 0 { "" } else { " " };
            let _ = write!(algs, "{separator}{algorithm}");
        }
        Ok(DpopCheck {
            required: settings.required,
            base: base.into(),
            algorithms: settings.algorithms.into_boxed_slice(),
            algs: algs.into_boxed_str(),
            window,
            replay: ReplayCache::new(settings.replay_capacity),
            nonces,
        })
    }

    /// The proof of a request that sent `token` with the DPoP scheme: exactly one `DPoP` header whose proof
    /// checks out for the request (RFC 9449 §4.3), and a current nonce when the layer hands them out.
    pub(crate) fn proof(
        &self,
        method: &Method,
        headers: &HeaderMap,
        uri: &Uri,
        extensions: &Extensions,
        token: &str,
        now: i64,
    ) -> Result<Proof, AuthRejection> {
        let invalid = AuthRejection::InvalidDpopProof;
        let mut values = headers.get_all(DPOP).iter();
        let value = values.next().ok_or(invalid(ProofError::Missing))?;
        if values.next().is_some() {
            return Err(invalid(ProofError::Multiple));
        }
        let proof = value.to_str().map_err(|_| {
            invalid(ProofError::Malformed(
                "the DPoP header is not visible ASCII",
            ))
        })?;
        // Behind `Router::nest` the handler's URI lost the prefix; the client addressed the original one.
        let path = extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(uri, |original| &original.0)
            .path();
        let url = format!("{}{path}", self.base);
        let verified = ProofRequirements {
            method: method.as_str(),
            url: &url,
            access_token: Some(token),
            algorithms: &self.algorithms,
            now,
            max_age: self.window,
        }
        .verify(proof)
        .map_err(invalid)?;
        let fresh_nonce = match &self.nonces {
            None => None,
            Some(nonces) => match nonces.check(verified.nonce(), now)? {
                Freshness::Current => None,
                Freshness::Previous(next) => Some(next),
            },
        };
        Ok(Proof {
            replay_key: self.replay.key(verified.thumbprint(), verified.jti()),
            remembered_until: verified
                .issued_at()
                .saturating_add(self.window)
                .saturating_add(1),
            thumbprint: verified.thumbprint().into(),
            fresh_nonce,
        })
    }

    /// Whether `proof` is from the key `token` is bound to.
    pub(crate) fn bound(proof: &Proof, token: &VerifiedToken) -> Result<(), AuthRejection> {
        match token.jkt() {
            None => Err(AuthRejection::UnboundToken),
            Some(jkt) if *jkt == *proof.thumbprint => Ok(()),
            Some(_) => Err(AuthRejection::InvalidDpopProof(ProofError::KeyMismatch)),
        }
    }

    /// Records `proof` as used; refused when it was used before, within its window.
    pub(crate) fn first_use(&self, proof: &Proof, now: i64) -> Result<(), AuthRejection> {
        if self
            .replay
            .first_use(proof.replay_key, proof.remembered_until, now)
        {
            Ok(())
        } else {
            Err(AuthRejection::InvalidDpopProof(ProofError::Replayed))
        }
    }
}

fn seconds(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

impl std::fmt::Debug for DpopCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopCheck")
            .field("required", &self.required)
            .field("base", &self.base)
            .field("algs", &self.algs)
            .field("window", &self.window)
            .field("replay", &self.replay)
            .field("nonces", &self.nonces.is_some())
            .finish()
    }
}
