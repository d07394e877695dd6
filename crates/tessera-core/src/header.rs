//! Header names and values of the wire contract.
//!
//! Header names are lower-case, as `http::HeaderName::from_static` requires.

/// Set to [`TOKEN_EXPIRED_VALUE`] on a 401 whose only fault is an expired access token: the signal a client
/// uses to refresh. Never set for a token that failed any other check.
pub const TOKEN_EXPIRED: &str = "token-expired";

/// The value of [`TOKEN_EXPIRED`].
pub const TOKEN_EXPIRED_VALUE: &str = "true";

/// `DPoP`, the request header carrying a DPoP proof (RFC 9449 §4.1).
pub const DPOP: &str = "dpop";

/// `DPoP-Nonce`, the response header carrying a server's DPoP nonce (RFC 9449 §8, §9).
pub const DPOP_NONCE: &str = "dpop-nonce";

/// `WWW-Authenticate`, the RFC 6750 §3 challenge header.
pub const WWW_AUTHENTICATE: &str = "www-authenticate";

/// The `error_description` a resource server sends for an expired access token.
pub const EXPIRED_DESCRIPTION: &str = "The access token expired";
