//! Rendering answers: [`NoStore`] marks every token-service response uncacheable (RFC 6749 §5.1), and every
//! [`TokenError`] maps to its status, code and headers here and only here.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use tessera_core::{ErrorCode, ErrorResponse};

use crate::error::TokenError;

/// The `WWW-Authenticate` challenge of an `invalid_client` answer (RFC 6749 §5.2).
const CLIENT_CHALLENGE: &str = "Basic realm=\"tessera\", charset=\"UTF-8\"";

/// The `WWW-Authenticate` challenge of a client-credentials token on a user endpoint (RFC 6750 §3.1).
const NOT_A_USER_CHALLENGE: &str =
    "Bearer error=\"insufficient_scope\", error_description=\"a user's access token is required\"";

/// The challenge of a `use_dpop_nonce` answer.
const NONCE_CHALLENGE: &str = "DPoP error=\"use_dpop_nonce\", error_description=\"the authorization server requires a nonce in the DPoP proof\"";

/// A response that carries tokens or session data: `Cache-Control: no-store` and `Pragma: no-cache`
/// (RFC 6749 §5.1) on top of whatever `T` renders.
#[derive(Debug)]
pub(super) struct NoStore<T>(pub(super) T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let (status, code, header) = match &self {
            TokenError::InvalidRequest(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, None)
            }
            TokenError::InvalidClient(_) => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidClient,
                Some((WWW_AUTHENTICATE, HeaderValue::from_static(CLIENT_CHALLENGE))),
            ),
            TokenError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidGrant, None),
            TokenError::UnauthorizedClient(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::UnauthorizedClient, None)
            }
            TokenError::UnsupportedGrantType(_) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedGrantType,
                None,
            ),
            TokenError::InvalidScope(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidScope, None),
            // RFC 6749 §5.2 defines no code for throttling; `slow_down` is the one the IANA registry
            // lists for token endpoint responses (RFC 8628 §3.5). Clients act on 429 and Retry-After.
            TokenError::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::SlowDown,
                Some((RETRY_AFTER, HeaderValue::from(*retry_after))),
            ),
            TokenError::Overloaded { retry_after } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TemporarilyUnavailable,
                Some((RETRY_AFTER, HeaderValue::from(*retry_after))),
            ),
            TokenError::InvalidDpopProof(_) | TokenError::DpopRequired => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidDpopProof, None)
            }
            // RFC 9449 §8 answers with the body; the DESIGN contract adds the challenge, which clients that
            // read challenges rather than bodies understand too. The nonce itself is added by the token
            // route, which knows the time.
            TokenError::UseDpopNonce => (
                StatusCode::BAD_REQUEST,
                ErrorCode::UseDpopNonce,
                Some((WWW_AUTHENTICATE, HeaderValue::from_static(NONCE_CHALLENGE))),
            ),
            TokenError::NotAUser => (
                StatusCode::FORBIDDEN,
                ErrorCode::InsufficientScope,
                Some((
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(NOT_A_USER_CHALLENGE),
                )),
            ),
            TokenError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidRequest,
                None,
            ),
            TokenError::SessionNotFound => (StatusCode::NOT_FOUND, ErrorCode::InvalidRequest, None),
            TokenError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::ServerError,
                None,
            ),
        };
        let description = if let TokenError::Internal(detail) = &self {
            tracing::error!(detail, "token service request failed");
            "The token service failed; try again later".to_owned()
        } else {
            self.to_string()
        };
        let body = Json(ErrorResponse::new(code, description));
        match header {
            Some(header) => NoStore((status, [header], body)).into_response(),
            None => NoStore((status, body)).into_response(),
        }
    }
}
