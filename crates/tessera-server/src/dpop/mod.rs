//! DPoP (RFC 9449): tokens bound to a key the client holds, proven on every request.
//!
//! - `settings`: [`Dpop`], what [`JwtAuthBuilder::dpop`](crate::JwtAuthBuilder::dpop) takes.
//! - `check`: a request's proof (through tessera-core's [`ProofRequirements`](tessera_core::jose::ProofRequirements)),
//!   then its binding to the token and its first use.
//! - `replay`: the proofs seen recently, in bounded memory.
//! - `nonce`: server nonces, made without state.

mod check;
mod nonce;
mod replay;
mod settings;

pub(crate) use check::{DpopCheck, Proof};
pub use settings::{DEFAULT_NONCE_ROTATION, DEFAULT_PROOF_WINDOW, DEFAULT_REPLAY_CAPACITY, Dpop};
