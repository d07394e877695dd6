//! DPoP (RFC 9449) at the token endpoint: checking a request's proof ([`proof`]), the server nonces
//! ([`nonce`]), remembering proof `jti`s ([`replay`]), and [`ProofChecker`], which puts them together.
//!
//! A token request with a valid proof gets `token_type: DPoP` and an access token bound to the proof's key
//! (`cnf.jkt`); a public client's refresh tokens are bound to it too, and refused without a proof of that
//! key. How a token request is answered:
//!
//! | request | answer |
//! |---|---|
//! | no `DPoP` header, client allows Bearer | a Bearer token, as before |
//! | no `DPoP` header, client [requires DPoP](crate::ClientRegistration::require_dpop) | 400 `invalid_dpop_proof` |
//! | more than one `DPoP` header, or a proof failing a check | 400 `invalid_dpop_proof` |
//! | nonces on, proof without the current nonce | 400 `use_dpop_nonce`, `WWW-Authenticate: DPoP error="use_dpop_nonce"` |
//! | valid proof | `token_type: DPoP`, `cnf.jkt` in the access token |
//!
//! With nonces on, every token endpoint answer carries the current nonce in `DPoP-Nonce`.

mod nonce;
mod proof;
mod replay;

use std::sync::Arc;

use aws_lc_rs::digest;
use tessera_core::jose::Algorithm;

pub(crate) use self::nonce::Nonces;
pub(crate) use self::proof::{Proof, ProofError};
pub(crate) use self::replay::{MemoryOneTimeValues, OneTimeValues};
use crate::error::TokenError;

/// The `token_type` of a DPoP-bound access token, the `Authorization` scheme it is presented with, and the
/// request header that carries a proof.
pub(crate) const DPOP: &str = "DPoP";

/// The response header carrying the server's nonce (RFC 9449 §8).
pub(crate) const DPOP_NONCE: &str = "dpop-nonce";

/// The algorithms DPoP proofs may be signed with unless
/// [`IssuerBuilder::dpop_algorithms`](crate::IssuerBuilder::dpop_algorithms) says otherwise: every
/// asymmetric algorithm Tessera verifies.
pub const DEFAULT_DPOP_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::EdDsa,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::Ps256,
    Algorithm::Rs256,
];

/// How far a proof's `iat` may be from the service's clock, either way, unless
/// [`IssuerBuilder::dpop_proof_window`](crate::IssuerBuilder::dpop_proof_window) says otherwise: 60 s.
pub const DEFAULT_DPOP_PROOF_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// How many proof `jti`s the in-process replay cache holds at most. A proof's `jti` is kept until its
/// `iat` leaves the window, so with the default window this allows some 800 proofs a second, sustained;
/// beyond that token requests with a proof are answered 503 until entries expire.
const REPLAY_CAPACITY: usize = 100_000;

/// The token endpoint's DPoP checks, with its settings.
pub(crate) struct ProofChecker {
    algorithms: Vec<Algorithm>,
    window: i64,
    token_endpoint: String,
    nonces: Option<Nonces>,
    seen: Arc<dyn OneTimeValues>,
}

impl std::fmt::Debug for ProofChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofChecker")
            .field("algorithms", &self.algorithms)
            .field("window", &self.window)
            .field("token_endpoint", &self.token_endpoint)
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}

/// The validated DPoP settings the builder hands over.
#[derive(Debug)]
pub(crate) struct DpopSettings {
    pub(crate) algorithms: Vec<Algorithm>,
    /// Seconds.
    pub(crate) window: i64,
    pub(crate) nonces: Option<Nonces>,
}

impl ProofChecker {
    /// Checks proofs for the token endpoint at `token_endpoint`, remembering `jti`s in memory.
    pub(crate) fn new(settings: DpopSettings, token_endpoint: String) -> Self {
        ProofChecker {
            algorithms: settings.algorithms,
            window: settings.window,
            token_endpoint,
            nonces: settings.nonces,
            seen: Arc::new(MemoryOneTimeValues::new(REPLAY_CAPACITY)),
        }
    }

    /// The nonce to hand out at `now`, if nonces are on.
    pub(crate) fn current_nonce(&self, now: i64) -> Option<String> {
        self.nonces.as_ref().map(|nonces| nonces.current(now))
    }

    /// Checks a token request's proof at `now`: signature, header, claims, method, URL, time and, with
    /// nonces on, the nonce. The `jti` is not recorded yet ([`ProofChecker::record`]), so a request
    /// refused for another reason before it is served does not spend its proof.
    pub(crate) fn verify(&self, proof: &str, now: i64) -> Result<Proof, TokenError> {
        let expected = proof::Expected {
            method: "POST",
            url: &self.token_endpoint,
            now,
            window: self.window,
            algorithms: &self.algorithms,
        };
        let proof = proof::verify(proof, &expected).map_err(TokenError::InvalidDpopProof)?;
        if let Some(nonces) = &self.nonces
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|nonce| nonces.accepts(nonce, now))
        {
            return Err(TokenError::UseDpopNonce);
        }
        Ok(proof)
    }

    /// Records the proof's `jti` as used: refused if it was already.
    pub(crate) async fn record(&self, proof: &Proof, now: i64) -> Result<(), TokenError> {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(proof.jkt.as_bytes());
        context.update(&[0]);
        context.update(proof.jti.as_bytes());
        let mut value = [0_u8; 32];
        value.copy_from_slice(context.finish().as_ref());
        // The last moment the proof could still pass the `iat` check.
        let expires_at = proof.iat.saturating_add(self.window).saturating_add(1);
        if self.seen.first_use(value, expires_at, now).await? {
            Ok(())
        } else {
            Err(TokenError::InvalidDpopProof(ProofError::Replayed))
        }
    }
}
