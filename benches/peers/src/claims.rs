//! The claims every variant decodes: a plain struct, the way an application using jsonwebtoken, jwt-authorizer
//! or axum-jwt-auth would declare them.

use serde::{Deserialize, Serialize};

/// Issuer of every benchmark token; every variant requires it.
pub const ISSUER: &str = "https://issuer.bench.local";
/// Audience of every benchmark token; every variant requires it.
pub const AUDIENCE: &str = "bench-api";
/// Leeway on `exp` and `nbf`, the same for every variant that lets it be set.
pub const LEEWAY_SECS: u64 = 30;

/// RFC 9068 access-token claims, as the token service mints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issue time (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// OAuth client.
    pub client_id: String,
    /// Granted scopes.
    pub scope: String,
}
