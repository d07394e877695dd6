//! DPoP (RFC 9449) at the token endpoint: the server nonces ([`nonce`]), and [`ProofChecker`], which checks
//! a request's proof by the rules every Tessera crate shares ([`ProofRequirements`]), asks for the nonce,
//! and remembers proof `jti`s in the store, so that a proof is accepted once by all the instances that
//! share it.
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

use std::sync::Arc;

use tessera_core::jose::{Algorithm, ProofError, ProofRequirements, VerifiedProof};

pub(crate) use self::nonce::Nonces;
use crate::error::TokenError;
use crate::store::{OnceKey, OneTimeValues};

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

/// The purpose of a proof `jti`'s one-time value in the store ([`OnceKey::new`]).
const DPOP_PROOF: &str = "dpop_proof";

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
    /// Checks proofs for the token endpoint at `token_endpoint`, remembering `jti`s in `seen` (the store,
    /// so a proof replayed to another instance is refused too).
    pub(crate) fn new(
        settings: DpopSettings,
        token_endpoint: String,
        seen: Arc<dyn OneTimeValues>,
    ) -> Self {
        ProofChecker {
            algorithms: settings.algorithms,
            window: settings.window,
            token_endpoint,
            nonces: settings.nonces,
            seen,
        }
    }

    /// The nonce to hand out at `now`, if nonces are on.
    pub(crate) fn current_nonce(&self, now: i64) -> Option<String> {
        self.nonces.as_ref().map(|nonces| nonces.current(now))
    }

    /// Checks a token request's proof at `now`: signature, header, claims, method, URL, time and, with
    /// nonces on, the nonce. The `jti` is not recorded yet ([`ProofChecker::record`]), so a request
    /// refused for another reason before it is served does not spend its proof.
    pub(crate) fn verify(&self, proof: &str, now: i64) -> Result<VerifiedProof, TokenError> {
        let requirements = ProofRequirements {
            method: "POST",
            url: &self.token_endpoint,
            access_token: None,
            algorithms: &self.algorithms,
            now,
            max_age: self.window,
        };
        let proof = requirements
            .verify(proof)
            .map_err(TokenError::InvalidDpopProof)?;
        if let Some(nonces) = &self.nonces
            && !proof
                .nonce()
                .is_some_and(|nonce| nonces.accepts(nonce, now))
        {
            return Err(TokenError::UseDpopNonce);
        }
        Ok(proof)
    }

    /// Records the proof's `jti` (per key, as the client chose it) as used in the store: refused if it
    /// was already, by this instance or another.
    pub(crate) async fn record(&self, proof: &VerifiedProof, now: i64) -> Result<(), TokenError> {
        let key = OnceKey::new(DPOP_PROOF, &[proof.thumbprint(), proof.jti()]);
        // Kept until the proof could no longer pass the `iat` check anyway.
        let expires_at = proof
            .issued_at()
            .saturating_add(self.window)
            .saturating_add(1);
        if self.seen.first_use(key, expires_at, now).await? {
            Ok(())
        } else {
            Err(TokenError::InvalidDpopProof(ProofError::Replayed))
        }
    }
}
