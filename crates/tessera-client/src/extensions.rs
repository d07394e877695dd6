//! Per-request control and reporting through `http::Extensions`.

use std::fmt;

/// Put this in a request's extensions to send it untouched: no token, no refresh, no replay.
///
/// ```
/// # fn example(client: &reqwest_middleware::ClientWithMiddleware) {
/// let request = client.get("https://api.example/public").with_extension(tessera_client::SkipAuth);
/// # let _ = request;
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipAuth;

/// Which token a request was sent with. Each new access token gets the next generation; a 401 for an older
/// generation is answered by replaying with the current token, not by refreshing again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenGeneration(pub(crate) u64);

impl TokenGeneration {
    /// The generation number: 1 for the first token, increasing by one per new token.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TokenGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What the middleware did for a request, in every response's extensions.
///
/// ```
/// # async fn example(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), reqwest_middleware::Error> {
/// let response = client.get("https://api.example/items").send().await?;
/// if let Some(outcome) = response.extensions().get::<tessera_client::AuthOutcome>() {
///     tracing::debug!(replayed = outcome.replayed(), generation = ?outcome.generation(), "called the API");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthOutcome {
    pub(crate) generation: Option<TokenGeneration>,
    pub(crate) refreshed: bool,
    pub(crate) replayed: bool,
}

impl AuthOutcome {
    pub(crate) const NOT_ATTACHED: AuthOutcome = AuthOutcome {
        generation: None,
        refreshed: false,
        replayed: false,
    };

    /// Whether a bearer token was attached (false for [`SkipAuth`], other origins and requests that already
    /// had an `Authorization` header).
    pub fn attached(&self) -> bool {
        self.generation.is_some()
    }

    /// The generation of the token the final attempt was sent with.
    pub fn generation(&self) -> Option<TokenGeneration> {
        self.generation
    }

    /// Whether this request waited for a token refresh (proactive or after a 401).
    pub fn refreshed(&self) -> bool {
        self.refreshed
    }

    /// Whether the request was sent a second time with a newer token after a 401.
    pub fn replayed(&self) -> bool {
        self.replayed
    }
}
