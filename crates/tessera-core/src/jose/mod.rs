//! JOSE as Tessera uses it: JWS algorithms, verification keys and key sets, signing keys, JWKs.
//!
//! One definition of each, shared by the resource server (verifying access tokens and DPoP proofs), the
//! token service (signing access tokens, verifying client assertions) and the client (signing client
//! assertions and DPoP proofs).

mod algorithm;
mod compact;
mod der;
mod dpop;
mod error;
mod jwk;
mod keyset;
mod signing;
mod verifying;

#[cfg(test)]
pub(crate) use algorithm::ALL as ALL_ALGORITHMS;
pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use compact::{Jws, JwsError, MAX_JWS_LEN, VerifiedJws};
pub use dpop::{DPOP_PROOF_TYPE, MAX_PROOF_LEN, ProofError, ProofRequirements, VerifiedProof};
pub use error::{KeyError, SignError};
pub use jwk::{Jwk, JwkSet};
pub use keyset::{KeySet, Selection};
pub use signing::{JwsHeader, SigningKey};
pub use verifying::{JwtKey, MIN_HMAC_SECRET_LEN};
