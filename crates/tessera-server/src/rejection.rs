//! Every way a request can fail authentication, and the one place that turns it into an RFC 6750 answer.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use tessera_core::challenge::Challenge;
use tessera_core::header::{TOKEN_EXPIRED, TOKEN_EXPIRED_VALUE};
use tessera_core::{BEARER, ErrorCode, ErrorResponse};

/// Why [`JwtAuth`](crate::JwtAuth) or a [`Claims`](crate::Claims) extractor refused a request.
///
/// Each variant renders itself into the response of the wire contract (see [`AuthRejection::status`] and
/// [`AuthRejection::into_response`]): the status, the `WWW-Authenticate` challenge, `Token-Expired: true` for
/// [`AuthRejection::Expired`] only, and a JSON [`ErrorResponse`] body (replaceable through
/// [`RejectionBody`]). The `Display` text is the `error_description`; it never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No bearer token in any configured place: 401 with a bare challenge and no error code (RFC 6750 §3.1).
    #[error("The request carries no bearer token")]
    MissingCredentials,
    /// The `Authorization` header is not `Bearer <token>` with an RFC 6750 token or not visible ASCII, or the
    /// token cookie or `access_token` parameter does not hold a bare JWT.
    #[error("The bearer credentials are malformed: {0}")]
    MalformedAuthorization(&'static str),
    /// More than one `Authorization` header, or a token in two places (header, cookie, query).
    #[error("The request carries more than one access token")]
    MultipleTokens,
    /// The token is longer than the configured maximum; it was not decoded.
    #[error("The access token is longer than {limit} bytes")]
    TokenTooLong {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// The token is not a compact JWS with a JSON header and claims.
    #[error("The access token is not a well-formed JWT: {0}")]
    MalformedToken(&'static str),
    /// The token's `alg` is not the algorithm its key is bound to (this covers `none` and algorithm confusion).
    #[error("The access token is signed with an algorithm its key does not accept")]
    AlgorithmMismatch,
    /// No live key has the token's `kid`, even after refreshing a remote key set.
    #[error("The access token is signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("The access token signature is invalid")]
    InvalidSignature,
    /// Strict RFC 9068 mode: the `typ` header is not `at+jwt`.
    #[error("The access token is not an RFC 9068 access token (typ must be at+jwt)")]
    WrongTokenType,
    /// A required claim is absent.
    #[error("The access token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `iss` is not a trusted issuer.
    #[error("The access token was issued by an untrusted issuer")]
    InvalidIssuer,
    /// `aud` does not name this resource server.
    #[error("The access token is not meant for this audience")]
    InvalidAudience,
    /// `nbf` is still in the future, beyond the leeway.
    #[error("The access token is not valid yet")]
    NotYetValid,
    /// `exp` has passed, beyond the leeway. Reported only for a token that passed every other check, so a
    /// client may refresh on it.
    #[error("The access token expired")]
    Expired,
    /// The revocation check reports the token revoked.
    #[error("The access token has been revoked")]
    Revoked,
    /// The token lacks a scope the route requires.
    #[error("The access token lacks a required scope")]
    InsufficientScope {
        /// Every scope the route requires, space-separated: the `scope` of the challenge.
        scope: Arc<str>,
    },
    /// The token's subject lacks a role the route requires.
    #[error("The access token lacks the required role {role}")]
    MissingRole {
        /// The role that is missing.
        role: Arc<str>,
    },
    /// The claims verified but do not deserialize into the type a handler asked for.
    #[error("The access token's claims do not have the shape this API expects")]
    UnexpectedClaims,
    /// A remote key set has never been fetched successfully, so no token can be checked yet.
    #[error("No verification key is available yet; the issuer's key set could not be fetched")]
    KeysUnavailable,
    /// The revocation check failed, so the token's status is unknown.
    #[error("The token's revocation status could not be checked")]
    RevocationUnavailable,
    /// A [`Claims`](crate::Claims) extractor ran on a route that no `JwtAuthLayer` protects.
    #[error("No JwtAuthLayer protects this route")]
    LayerMissing,
}

impl AuthRejection {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::MalformedAuthorization(_) | AuthRejection::MultipleTokens => {
                StatusCode::BAD_REQUEST
            }
            AuthRejection::InsufficientScope { .. } | AuthRejection::MissingRole { .. } => {
                StatusCode::FORBIDDEN
            }
            AuthRejection::KeysUnavailable | AuthRejection::RevocationUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuthRejection::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The OAuth `error` code of the body (and of the challenge, where there is one).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            AuthRejection::MissingCredentials => ErrorCode::Unauthorized,
            AuthRejection::MalformedAuthorization(_) | AuthRejection::MultipleTokens => {
                ErrorCode::InvalidRequest
            }
            AuthRejection::InsufficientScope { .. } | AuthRejection::MissingRole { .. } => {
                ErrorCode::InsufficientScope
            }
            AuthRejection::KeysUnavailable | AuthRejection::RevocationUnavailable => {
                ErrorCode::TemporarilyUnavailable
            }
            AuthRejection::LayerMissing => ErrorCode::ServerError,
            _ => ErrorCode::InvalidToken,
        }
    }

    /// Whether the only fault is expiry: the answer carries `Token-Expired: true`.
    pub fn is_expired(&self) -> bool {
        matches!(self, AuthRejection::Expired)
    }

    /// The JSON body of the default rendering.
    pub fn error_response(&self) -> ErrorResponse {
        let scope = match self {
            AuthRejection::InsufficientScope { scope } => Some(scope.to_string()),
            _ => None,
        };
        ErrorResponse {
            error: self.error_code(),
            error_description: Some(self.to_string()),
            scope,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), or `None` for answers that are not about the
    /// credentials (503, 500).
    pub fn www_authenticate(&self, realm: &str) -> Option<HeaderValue> {
        let challenge = Challenge::new(BEARER);
        let challenge = match self {
            AuthRejection::KeysUnavailable
            | AuthRejection::RevocationUnavailable
            | AuthRejection::LayerMissing => {
                return None;
            }
            AuthRejection::MissingCredentials => challenge.param("realm", realm),
            _ => {
                let challenge = challenge
                    .param("error", self.error_code().as_str())
                    .param("error_description", self.to_string());
                match self {
                    AuthRejection::InsufficientScope { scope } => {
                        challenge.param("scope", &**scope)
                    }
                    _ => challenge,
                }
            }
        };
        HeaderValue::try_from(challenge.to_string()).ok()
    }

    /// The full answer with the default JSON body and realm `api`. [`JwtAuth`](crate::JwtAuth) uses its
    /// configured realm and [`RejectionBody`] instead.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        self.render("api", &JsonErrorBody)
    }

    /// The full answer: status and headers fixed by the wire contract, body from `body`.
    pub fn render<B: From<Bytes>>(&self, realm: &str, body: &dyn RejectionBody) -> Response<B> {
        let rendered = body.render(self);
        let mut response = Response::new(B::from(rendered.body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, rendered.content_type);
        if let Some(challenge) = self.www_authenticate(realm) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if self.is_expired() {
            headers.insert(
                HeaderName::from_static(TOKEN_EXPIRED),
                HeaderValue::from_static(TOKEN_EXPIRED_VALUE),
            );
        }
        response
    }

    /// Emits the `tracing` event for this rejection: the reason and status, never the token.
    pub(crate) fn trace(&self) {
        let status = self.status().as_u16();
        match self {
            AuthRejection::MissingCredentials | AuthRejection::Expired => {
                tracing::debug!(status, reason = %self, "bearer authentication rejected");
            }
            AuthRejection::KeysUnavailable
            | AuthRejection::RevocationUnavailable
            | AuthRejection::LayerMissing => {
                tracing::warn!(status, reason = %self, "bearer authentication could not complete");
            }
            _ => tracing::info!(status, reason = %self, "bearer authentication rejected"),
        }
    }
}

/// A rendered rejection body and its media type.
#[derive(Debug, Clone)]
pub struct RenderedBody {
    /// The `Content-Type` of `body`.
    pub content_type: HeaderValue,
    /// The body bytes.
    pub body: Bytes,
}

/// Renders the body of a rejection; status and headers stay those of the wire contract.
///
/// Implemented by [`JsonErrorBody`] (the default) and by any `Fn(&AuthRejection) -> RenderedBody`, e.g. to
/// answer `application/problem+json` (RFC 9457):
///
/// ```
/// use http::HeaderValue;
/// use tessera_server::{AuthRejection, RenderedBody};
///
/// let problem = |rejection: &AuthRejection| RenderedBody {
///     content_type: HeaderValue::from_static("application/problem+json"),
///     body: serde_json::json!({
///         "type": "about:blank",
///         "status": rejection.status().as_u16(),
///         "title": rejection.error_code().as_str(),
///         "detail": rejection.to_string(),
///     })
///     .to_string()
///     .into(),
/// };
/// let response = AuthRejection::Expired.render::<Vec<u8>>("api", &problem);
/// assert_eq!(response.headers()["token-expired"], "true");
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// assert!(String::from_utf8_lossy(response.body()).contains("\"status\":401"));
/// ```
pub trait RejectionBody: Send + Sync + 'static {
    /// The body for `rejection`.
    fn render(&self, rejection: &AuthRejection) -> RenderedBody;
}

impl<F> RejectionBody for F
where
    F: Fn(&AuthRejection) -> RenderedBody + Send + Sync + 'static,
{
    fn render(&self, rejection: &AuthRejection) -> RenderedBody {
        self(rejection)
    }
}

/// The default body: [`ErrorResponse`] as `application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrorBody;

impl RejectionBody for JsonErrorBody {
    fn render(&self, rejection: &AuthRejection) -> RenderedBody {
        let body = serde_json::to_vec(&rejection.error_response()).unwrap_or_default();
        RenderedBody {
            content_type: HeaderValue::from_static("application/json"),
            body: body.into(),
        }
    }
}

/// A `Debug` stand-in for a boxed [`RejectionBody`].
pub(crate) struct RendererName;

impl fmt::Debug for RendererName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn RejectionBody")
    }
}

impl axum::response::IntoResponse for AuthRejection {
    fn into_response(self) -> axum::response::Response {
        AuthRejection::into_response(self)
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::header::EXPIRED_DESCRIPTION;

    use super::*;

    #[test]
    fn expired_description_is_the_contract_one() {
        assert_eq!(AuthRejection::Expired.to_string(), EXPIRED_DESCRIPTION);
    }

    #[test]
    fn missing_credentials_challenge_has_no_error() {
        let challenge = AuthRejection::MissingCredentials
            .www_authenticate("api")
            .unwrap();
        assert_eq!(challenge, r#"Bearer realm="api""#);
    }
}
