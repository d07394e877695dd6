//! What both ends of Tessera share.
//!
//! - Wire types with `serde` impls: the token endpoint's success and error bodies ([`TokenResponse`],
//!   [`ErrorResponse`]), the header names the resource server and the client agree on ([`header`]), and the
//!   RFC 9068 access-token claims ([`AccessTokenClaims`]).
//! - [`jose`]: JWS algorithms, verification and signing keys, JWKs.
//! - [`challenge`]: the `WWW-Authenticate` grammar, written by the server and read by the client.
//! - [`Clock`]: wall-clock time, monotonic time and sleeping, replaceable in tests ([`ManualClock`]).
//! - [`fs`]: atomic, owner-only files for secrets; [`random`]: identifiers from the OS CSPRNG.
//!
//! No HTTP framework and no HTTP client is pulled in, so any crate can depend on it.
//!
//! ```
//! use tessera_core::{ErrorCode, ErrorResponse, TokenResponse};
//!
//! let ok: TokenResponse = serde_json::from_str(
//!     r#"{"access_token":"eyJ...","token_type":"Bearer","expires_in":900,"refresh_token":"r1"}"#,
//! )?;
//! assert_eq!(ok.expires_in, Some(900));
//!
//! let err: ErrorResponse = serde_json::from_str(r#"{"error":"invalid_grant"}"#)?;
//! assert_eq!(err.error, ErrorCode::InvalidGrant);
//! # Ok::<(), serde_json::Error>(())
//! ```

pub mod challenge;
mod claims;
mod clock;
mod error;
pub mod fs;
pub mod header;
pub mod jose;
pub mod random;
mod token;

pub use claims::{AccessTokenClaims, Audience, NumericDate};
pub use clock::{Clock, ManualClock, Sleep, SystemClock, from_unix_seconds, unix_seconds};
pub use error::{ErrorCode, ErrorResponse};
pub use token::{GrantType, TokenResponse, TokenTypeHint};

/// The `typ` header value of a JWT access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_JWT_TYPE: &str = "at+jwt";

/// The token type the token endpoint announces and the `Authorization` scheme clients send (RFC 6750).
pub const BEARER: &str = "Bearer";

/// The token type of a DPoP-bound access token and the `Authorization` scheme it is sent with (RFC 9449
/// §5, §7.1).
pub const DPOP: &str = "DPoP";
