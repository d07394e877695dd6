//! What can go wrong, typed so callers can act on it.

use std::sync::Arc;
use std::time::Duration;

use crate::{DpopError, RefreshError, StoreError};

/// Why the middleware could not complete a request (or [`AuthMiddleware::set_tokens`] could not take
/// tokens).
///
/// The middleware hands these to reqwest-middleware as `reqwest_middleware::Error::Middleware`; get them
/// back with [`Error::from_middleware`] or [`Error::try_from_middleware`].
///
/// [`AuthMiddleware::set_tokens`]: crate::AuthMiddleware::set_tokens
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session is over: the token endpoint rejected the refresh (e.g. `invalid_grant`) or there is no
    /// refresh token. Tokens were cleared and `on_session_expired` fired; sign in again and call
    /// [`AuthMiddleware::set_tokens`](crate::AuthMiddleware::set_tokens).
    #[error("re-authentication required: {source}")]
    ReauthenticationRequired {
        /// The refresh failure that ended the session.
        #[source]
        source: Arc<RefreshError>,
    },
    /// No usable access token and the last refresh failed transiently (timeout, 5xx, network); the tokens
    /// are kept and the middleware tries again after `retry_in`.
    #[error(
        "the access token could not be refreshed ({source}); the next attempt is in {retry_in:?}"
    )]
    RefreshUnavailable {
        /// The transient failure.
        #[source]
        source: Arc<RefreshError>,
        /// How long until the backoff allows another attempt.
        retry_in: Duration,
    },
    /// New tokens were obtained but the token store (or the `on_tokens_changed` hook) did not accept them,
    /// so they were not used (fail closed). Saving is retried on the next attempt without asking the token
    /// endpoint again.
    #[error("new tokens could not be stored, so they were not used: {source}")]
    TokenStore {
        /// The store's error.
        #[source]
        source: Arc<StoreError>,
    },
    /// The server said the access token expired, the middleware refreshed it, but the request body is a
    /// stream that was already consumed and cannot be sent again. Send the request again: it will carry
    /// the new token. The server's original answer is attached.
    #[error(
        "the access token was refreshed, but the request's streaming body cannot be replayed; send it again"
    )]
    BodyNotReplayable {
        /// The server's 401 answer.
        response: Box<reqwest::Response>,
    },
    /// The access token contains characters that cannot go into an HTTP header, or it is DPoP-bound and
    /// no DPoP key is known for it.
    #[error(
        "the access token cannot be presented: it contains characters not allowed in an HTTP header, or it is DPoP-bound without a DPoP key"
    )]
    UnusableAccessToken,
    /// The DPoP proof for the request could not be signed.
    #[error("the DPoP proof could not be made: {0}")]
    Dpop(#[source] DpopError),
    /// A refresh was needed outside a tokio runtime; the middleware runs refreshes as tokio tasks.
    #[error("no tokio runtime is running, so the access token cannot be refreshed")]
    NoRuntime,
}

impl Error {
    /// The middleware's error inside a `reqwest_middleware::Error`, if it is one.
    ///
    /// ```
    /// # async fn example(client: reqwest_middleware::ClientWithMiddleware) {
    /// match client.get("https://api.example/items").send().await {
    ///     Err(error) if matches!(
    ///         tessera_client::Error::from_middleware(&error),
    ///         Some(tessera_client::Error::ReauthenticationRequired { .. })
    ///     ) => { /* send the user to the login page */ }
    ///     _ => {}
    /// }
    /// # }
    /// ```
    pub fn from_middleware(error: &reqwest_middleware::Error) -> Option<&Error> {
        match error {
            reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<Error>(),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }

    /// Takes the middleware's error out of a `reqwest_middleware::Error` (to keep, e.g., the response of
    /// [`Error::BodyNotReplayable`]), or gives the error back unchanged.
    pub fn try_from_middleware(
        error: reqwest_middleware::Error,
    ) -> Result<Error, reqwest_middleware::Error> {
        match error {
            reqwest_middleware::Error::Middleware(inner) => inner
                .downcast::<Error>()
                .map_err(reqwest_middleware::Error::Middleware),
            other => Err(other),
        }
    }
}

/// Why an [`AuthMiddlewareBuilder`](crate::AuthMiddlewareBuilder) could not build a middleware.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No origin was allowed, so the middleware would never attach a token; call `allow_origin`.
    #[error("no origin is allowed to receive the access token; call allow_origin")]
    NoAllowedOrigin,
    /// The token service's grace window (see
    /// [`AuthMiddlewareBuilder::server_grace`](crate::AuthMiddlewareBuilder::server_grace)) cannot hold a
    /// timed-out refresh and its retry.
    #[error(
        "the server's grace window ({grace:?}) cannot hold a timed-out refresh and its retry with a refresh_timeout of {timeout:?} (it needs 2 × refresh_timeout + 1 s): lower refresh_timeout to at most {longest_timeout:?}, declare the token service's real grace window with server_grace, or server_grace(Duration::ZERO) if it has none"
    )]
    GraceTooShort {
        /// The configured grace window.
        grace: Duration,
        /// The configured refresh timeout.
        timeout: Duration,
        /// The longest refresh timeout that fits.
        longest_timeout: Duration,
    },
    /// An allowed origin is not of the form `https://host[:port]`.
    #[error("{origin:?} is not a valid origin: {reason}")]
    InvalidOrigin {
        /// The rejected input.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
