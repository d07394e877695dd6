use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `error` code of an OAuth 2.0 error answer.
///
/// Covers the token endpoint (RFC 6749 §5.2), protected resources (RFC 6750 §3.1), revocation (RFC 7009
/// §2.2.1), DPoP (RFC 9449 §5, §8), login throttling (`slow_down`) and Tessera's `unauthorized` for a
/// request that carried no credentials at all. Codes from other servers that Tessera does not know parse as
/// [`ErrorCode::Other`] instead of failing, so a client can still act on the HTTP status.
///
/// ```
/// use tessera_core::ErrorCode;
///
/// assert_eq!(ErrorCode::parse("use_dpop_nonce"), ErrorCode::UseDpopNonce);
/// assert_eq!(ErrorCode::InvalidDpopProof.as_str(), "invalid_dpop_proof");
/// assert_eq!(ErrorCode::parse("authorization_pending"), ErrorCode::Other("authorization_pending".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is missing a parameter, repeats one, or is otherwise malformed.
    InvalidRequest,
    /// Client authentication failed (answered with 401 and `WWW-Authenticate`).
    InvalidClient,
    /// The grant (password, refresh token) is invalid, expired, revoked or was issued to another client.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported by this server.
    UnsupportedGrantType,
    /// The requested scope is invalid, unknown or wider than what was granted.
    InvalidScope,
    /// The access token is expired, revoked, malformed or invalid for other reasons (RFC 6750).
    InvalidToken,
    /// The access token is valid but lacks a required scope or role (RFC 6750).
    InsufficientScope,
    /// The server does not support revoking this token type (RFC 7009).
    UnsupportedTokenType,
    /// The request carried no credentials at all (Tessera's body code for RFC 6750 §3.1's challenge).
    Unauthorized,
    /// The server is overloaded or throttling this caller; retry later.
    TemporarilyUnavailable,
    /// The server hit an unexpected condition.
    ServerError,
    /// The DPoP proof is missing, malformed or does not match the request (RFC 9449 §5, §7.1).
    InvalidDpopProof,
    /// The server requires its nonce in the DPoP proof; the answer carries it in `DPoP-Nonce` (RFC 9449
    /// §8, §9).
    UseDpopNonce,
    /// Too many attempts (Tessera's throttled logins, answered 429 with `Retry-After`; RFC 8628 §3.5
    /// registers the code for the token endpoint).
    SlowDown,
    /// Any other code, kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// The wire form, e.g. `invalid_grant`.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::Other(code) => code,
        }
    }

    /// Parses a wire code; unknown codes become [`ErrorCode::Other`].
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_grant" => ErrorCode::InvalidGrant,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            "invalid_token" => ErrorCode::InvalidToken,
            "insufficient_scope" => ErrorCode::InsufficientScope,
            "unsupported_token_type" => ErrorCode::UnsupportedTokenType,
            "unauthorized" => ErrorCode::Unauthorized,
            "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
            "server_error" => ErrorCode::ServerError,
            "invalid_dpop_proof" => ErrorCode::InvalidDpopProof,
            "use_dpop_nonce" => ErrorCode::UseDpopNonce,
            "slow_down" => ErrorCode::SlowDown,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&code))
    }
}

/// The JSON body of an OAuth 2.0 error answer (RFC 6749 §5.2), used by the token endpoint and, with RFC 6750
/// codes, by protected resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, as a machine-readable code.
    pub error: ErrorCode,
    /// A human-readable explanation for the developer; never contains a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// The scope a protected resource requires, on `insufficient_scope` answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl ErrorResponse {
    /// An error with a description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        ErrorResponse {
            error,
            error_description: Some(description.into()),
            scope: None,
        }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error_description {
            Some(description) => write!(f, "{}: {description}", self.error),
            None => fmt::Display::fmt(&self.error, f),
        }
    }
}

impl std::error::Error for ErrorResponse {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips() {
        let codes = [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidClient,
            ErrorCode::InvalidGrant,
            ErrorCode::UnauthorizedClient,
            ErrorCode::UnsupportedGrantType,
            ErrorCode::InvalidScope,
            ErrorCode::InvalidToken,
            ErrorCode::InsufficientScope,
            ErrorCode::UnsupportedTokenType,
            ErrorCode::Unauthorized,
            ErrorCode::TemporarilyUnavailable,
            ErrorCode::ServerError,
            ErrorCode::InvalidDpopProof,
            ErrorCode::UseDpopNonce,
            ErrorCode::SlowDown,
        ];
        for code in codes {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn dpop_and_throttling_codes_are_known() {
        for (wire, code) in [
            ("invalid_dpop_proof", ErrorCode::InvalidDpopProof),
            ("use_dpop_nonce", ErrorCode::UseDpopNonce),
            ("slow_down", ErrorCode::SlowDown),
        ] {
            let body: ErrorResponse =
                serde_json::from_str(&format!(r#"{{"error":"{wire}"}}"#)).unwrap();
            assert_eq!(body.error, code, "{wire}");
            assert_eq!(code.as_str(), wire);
        }
    }

    #[test]
    fn unknown_codes_are_kept_not_rejected() {
        let body: ErrorResponse =
            serde_json::from_str(r#"{"error":"authorization_pending","error_description":"wait"}"#)
                .unwrap();
        assert_eq!(body.error, ErrorCode::Other("authorization_pending".into()));
        assert_eq!(body.to_string(), "authorization_pending: wait");
    }

    #[test]
    fn body_omits_absent_fields() {
        let body = ErrorResponse {
            error: ErrorCode::InvalidGrant,
            error_description: None,
            scope: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":"invalid_grant"}"#
        );
    }
}
