//! Getting new tokens: the [`Refresher`] trait and the built-in grants.

mod client_auth;
mod discovery;
mod endpoint;
mod grants;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::StatusCode;
use tessera_core::{ErrorResponse, TokenResponse};

use crate::{Dpop, DpopError, RefreshToken};

pub use client_auth::{ClientAuth, PrivateKeyJwt};
pub use discovery::{AuthorizationServerMetadata, DiscoveryError};
pub use grants::{ClientCredentialsGrant, RefreshTokenGrant, ReservedParameter};

/// Obtains a new token pair from a token endpoint.
///
/// [`AuthMiddleware`](crate::AuthMiddleware) calls this at most once at a time, whatever the number of
/// waiting requests, and never through itself: a request made while refreshing bypasses the middleware.
/// Built-ins: [`RefreshTokenGrant`] and [`ClientCredentialsGrant`]. Any
/// `Fn(RefreshContext) -> impl Future<Output = Result<TokenResponse, RefreshError>>` is a refresher too:
///
/// ```
/// use tessera_client::{RefreshContext, RefreshError, Refresher};
/// use tessera_core::TokenResponse;
///
/// fn takes(_: impl Refresher) {}
/// takes(|context: RefreshContext| async move {
///     let refresh_token = context.refresh_token().ok_or(RefreshError::NoRefreshToken)?;
///     // ... call your token endpoint with refresh_token.as_str() ...
///     # let _ = refresh_token;
///     Ok::<_, RefreshError>(TokenResponse {
///         access_token: "new".into(),
///         token_type: "Bearer".into(),
///         expires_in: Some(900),
///         refresh_token: None,
///         scope: None,
///     })
/// });
/// ```
#[async_trait]
pub trait Refresher: Send + Sync + 'static {
    /// Asks the token endpoint for a new access token (and, with rotation, a new refresh token).
    ///
    /// Return [`RefreshError::Rejected`] or [`RefreshError::NoRefreshToken`] when signing in again is the
    /// only way forward; any other error is treated as transient and retried after a backoff.
    async fn refresh(&self, context: RefreshContext) -> Result<TokenResponse, RefreshError>;
}

#[async_trait]
impl<F, Fut> Refresher for F
where
    F: Fn(RefreshContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TokenResponse, RefreshError>> + Send,
{
    async fn refresh(&self, context: RefreshContext) -> Result<TokenResponse, RefreshError> {
        self(context).await
    }
}

/// What a [`Refresher`] gets to work with.
#[derive(Debug, Clone)]
pub struct RefreshContext {
    refresh_token: Option<RefreshToken>,
    now: SystemTime,
    dpop: Option<Dpop>,
}

impl RefreshContext {
    /// A context holding `refresh_token`, at wall-clock time `now`.
    pub fn new(refresh_token: Option<RefreshToken>, now: SystemTime) -> Self {
        RefreshContext {
            refresh_token,
            now,
            dpop: None,
        }
    }

    /// The same context, with DPoP proofs to sign with `dpop`.
    #[must_use]
    pub fn with_dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// With DPoP on, what token requests are signed with: the key the current tokens are bound to (or, for
    /// a new session, the configured key) and the nonces servers handed out. Put
    /// [`Dpop::token_request_proof`] in a `DPoP` header and pass every answer's headers to
    /// [`Dpop::remember_nonce`].
    pub fn dpop(&self) -> Option<&Dpop> {
        self.dpop.as_ref()
    }

    /// The refresh token currently held, if any.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// The wall-clock time of the injected [`Clock`](crate::Clock), for time-dependent claims such as a
    /// client assertion's `iat` and `exp`.
    pub fn now(&self) -> SystemTime {
        self.now
    }
}

/// Why a refresh failed. [`RefreshError::is_terminal`] says whether retrying can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The token endpoint answered 400 or 401 (e.g. `invalid_grant`: the refresh token expired, was revoked
    /// or was reused; `invalid_client`: wrong client credentials). Terminal: sign in again.
    #[error("the token endpoint rejected the request with {status}: {response}")]
    Rejected {
        /// The HTTP status (400 or 401).
        status: StatusCode,
        /// The RFC 6749 §5.2 error body (synthesised as `invalid_request` if the body was not one).
        response: ErrorResponse,
    },
    /// There is no refresh token to refresh with. Terminal: sign in first.
    #[error("no refresh token is held")]
    NoRefreshToken,
    /// The token endpoint answered with another status (5xx, 429, ...), or with an error code that retrying
    /// can fix (`temporarily_unavailable`, `slow_down`, `use_dpop_nonce`, `invalid_dpop_proof`). Transient.
    #[error("the token endpoint answered {status}")]
    Unavailable {
        /// The HTTP status.
        status: StatusCode,
        /// The error body, if it was an RFC 6749 one.
        response: Option<ErrorResponse>,
        /// The endpoint's `Retry-After` (in seconds form), honoured by the backoff up to its maximum.
        retry_after: Option<Duration>,
    },
    /// The token endpoint could not be reached or the connection broke. Transient.
    #[error("the token endpoint could not be reached: {0}")]
    Network(#[source] reqwest::Error),
    /// The refresh took longer than the configured refresh timeout. Transient.
    #[error("the token endpoint did not answer within {0:?}")]
    TimedOut(Duration),
    /// The token endpoint answered 2xx with something that is not a usable Bearer token response. Transient.
    #[error("the token endpoint's answer is not a usable token response: {reason}")]
    InvalidResponse {
        /// What is wrong with it (never the body itself, which may hold tokens).
        reason: String,
    },
    /// The token endpoint answered with a redirect (or the HTTP client followed one). Token requests never
    /// follow redirects, so the refresh token and client credentials cannot reach another origin, and no
    /// token minted there is used. Transient; configure the token endpoint's final URL.
    #[error(
        "the token endpoint answered {status} with a redirect{}; token requests never follow redirects: configure the final token endpoint URL",
        location.as_deref().map(|to| format!(" to {to}")).unwrap_or_default()
    )]
    Redirected {
        /// The redirect status (3xx), or the status of the answer from where a following client went.
        status: StatusCode,
        /// Where it pointed, if it said.
        location: Option<String>,
    },
    /// The token endpoint's answer was larger than a token response can be; it was cut off unread.
    /// Transient.
    #[error("the token endpoint's answer exceeds {limit} bytes and was not read")]
    ResponseTooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The `private_key_jwt` client assertion could not be made; check the key and algorithm.
    #[error("the client assertion could not be created: {0}")]
    ClientAssertion(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The DPoP proof could not be made. Transient.
    #[error(transparent)]
    Dpop(#[from] DpopError),
    /// A token request presenting the refresh token got no usable answer, so the token endpoint may have
    /// rotated it, and the grace window in which it could be presented once more has passed (see
    /// [`AuthMiddlewareBuilder::server_grace`](crate::AuthMiddlewareBuilder::server_grace)). Presenting it
    /// again could be taken for a stolen token and revoke the whole session, so it never is. Terminal:
    /// sign in again.
    #[error(
        "the refresh token may have been rotated by a request whose answer never arrived ({last}); it is not presented again outside the server's grace window"
    )]
    OutcomeUnknown {
        /// The last failure of a request presenting it.
        last: Arc<RefreshError>,
    },
    /// A custom refresher's own failure. Transient.
    #[error("the refresher failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RefreshError {
    /// Whether only signing in again can help: the session is over, tokens are cleared and
    /// `on_session_expired` fires.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            RefreshError::Rejected { .. }
                | RefreshError::NoRefreshToken
                | RefreshError::OutcomeUnknown { .. }
        )
    }

    /// Whether the token endpoint may have acted on the request (rotated the refresh token) although this
    /// was its answer: it timed out, the connection broke after the request left, a gateway failed
    /// (500, 502, 504), or a 2xx answer was unusable. A connection never made, a redirect, 429, 503 and a
    /// custom refresher's own error say the request was not served.
    pub(crate) fn leaves_doubt(&self) -> bool {
        match self {
            RefreshError::TimedOut(_)
            | RefreshError::InvalidResponse { .. }
            | RefreshError::ResponseTooLarge { .. } => true,
            RefreshError::Network(error) => !(error.is_connect() || error.is_builder()),
            RefreshError::Unavailable { status, .. } => {
                status.is_server_error() && *status != StatusCode::SERVICE_UNAVAILABLE
            }
            RefreshError::Rejected { .. }
            | RefreshError::NoRefreshToken
            | RefreshError::Redirected { .. }
            | RefreshError::ClientAssertion(_)
            | RefreshError::Dpop(_)
            | RefreshError::OutcomeUnknown { .. }
            | RefreshError::Other(_) => false,
        }
    }

    /// How long the token endpoint asked to be left alone, if it said.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            RefreshError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(status: StatusCode) -> RefreshError {
        RefreshError::Unavailable {
            status,
            response: None,
            retry_after: None,
        }
    }

    #[test]
    fn only_answers_that_may_hide_a_rotation_leave_doubt() {
        for doubtful in [
            RefreshError::TimedOut(Duration::from_secs(5)),
            RefreshError::InvalidResponse {
                reason: "not JSON".into(),
            },
            RefreshError::ResponseTooLarge { limit: 1 },
            unavailable(StatusCode::INTERNAL_SERVER_ERROR),
            unavailable(StatusCode::BAD_GATEWAY),
            unavailable(StatusCode::GATEWAY_TIMEOUT),
        ] {
            assert!(doubtful.leaves_doubt(), "{doubtful}");
            assert!(!doubtful.is_terminal(), "{doubtful}");
        }
        for clear in [
            unavailable(StatusCode::SERVICE_UNAVAILABLE),
            unavailable(StatusCode::TOO_MANY_REQUESTS),
            unavailable(StatusCode::NOT_FOUND),
            RefreshError::Redirected {
                status: StatusCode::TEMPORARY_REDIRECT,
                location: None,
            },
            RefreshError::NoRefreshToken,
            RefreshError::Other("custom".into()),
        ] {
            assert!(!clear.leaves_doubt(), "{clear}");
        }
        let unknown = RefreshError::OutcomeUnknown {
            last: Arc::new(RefreshError::TimedOut(Duration::from_secs(5))),
        };
        assert!(unknown.is_terminal() && !unknown.leaves_doubt());
        assert!(unknown.to_string().contains("grace window"), "{unknown}");
    }

    #[test]
    fn a_redirect_says_where_it_pointed() {
        let error = RefreshError::Redirected {
            status: StatusCode::TEMPORARY_REDIRECT,
            location: Some("https://elsewhere.example/token".into()),
        };
        let message = error.to_string();
        assert!(
            message.contains("307") && message.contains("https://elsewhere.example/token"),
            "{message}"
        );
        assert!(!error.is_terminal());
    }
}
