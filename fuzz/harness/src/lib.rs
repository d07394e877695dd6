//! What Tessera's fuzz targets exercise, as plain functions over bytes.
//!
//! Each target feeds untrusted input to one parser on the attack surface, through the public API and the
//! way a request would reach it, and checks properties that must hold for *every* input, not only that
//! nothing panics:
//!
//! | target | input | property |
//! |---|---|---|
//! | [`bearer`] | `Authorization`, `Cookie` and query bytes of a request through `JwtAuthLayer` | 200 only for a genuine valid token, `Token-Expired` only for the genuine expired one, 400/401 with a challenge otherwise |
//! | [`jwt`] | a token handed to `JwtAuthLayer::verify` | accepted only if genuine; "expired" only for the genuine expired token |
//! | [`jwks`] | a JWKS / JWK document | parses or is refused with an error, thumbprints never panic |
//! | [`jws`] | a compact JWS for `Jws` | verifies only if genuine |
//! | [`token_endpoint`] | the body, content type and client credentials of a token-service request | an RFC 6749 answer, never a 5xx |
//! | [`challenge`] | a `WWW-Authenticate` value | parses; what Tessera writes reads back identically |
//! | [`dpop_proof`] | a `DPoP` proof header | verifies only if genuine |
//!
//! cargo-fuzz drives them from `fuzz/targets` (nightly); `tests/corpus.rs` replays the committed seeds and
//! corpora on stable, so a regression fails in every `cargo test`.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

mod fixtures;
mod request;
mod seeds;
mod service;

pub use request::{bearer, token_endpoint};
pub use seeds::seeds;
pub use service::{challenge, dpop_proof, jwks, jws, jwt};

/// A fuzz target: one input, checked against the target's properties (a broken one panics).
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus folder has.
pub const TARGETS: [(&str, Target); 7] = [
    ("bearer", bearer),
    ("jwt", jwt),
    ("jwks", jwks),
    ("jws", jws),
    ("token_endpoint", token_endpoint),
    ("challenge", challenge),
    ("dpop_proof", dpop_proof),
];

/// Checks that the genuine inputs really are accepted, so that the properties the targets check are not
/// vacuous: the valid tokens verify, the expired ones are refused as expired, the genuine proofs verify.
///
/// # Panics
/// When a fixture no longer does what the targets assume.
pub fn check_fixtures() {
    let genuine = fixtures::genuine();
    for token in &genuine.valid {
        assert!(
            block_on(fixtures::layer().verify(token)).is_ok(),
            "a genuine token was refused"
        );
    }
    for token in &genuine.expired {
        assert_eq!(
            block_on(fixtures::layer().verify(token)).err(),
            Some(tessera_server::AuthRejection::Expired),
            "a genuine expired token was not called expired"
        );
    }
    for proof in fixtures::genuine_proofs() {
        service::dpop_requirements()
            .verify(proof)
            .unwrap_or_else(|error| panic!("a genuine DPoP proof was refused: {error}"));
    }
}

/// Runs `future` to completion on the harness's one runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime can always be built")
        })
        .block_on(future)
}
