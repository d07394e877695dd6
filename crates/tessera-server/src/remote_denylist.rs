//! [`RemoteDenylist`]: the access-token denials a token service publishes, polled in the background so an API
//! process that is not the token service refuses revoked tokens too.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION};

use crate::denylist::{Availability, DenialPage, Denylist};
use crate::fetch::{self, GetError};
use crate::{Clock, RevocationAnswer, RevocationCheck, SystemClock, VerifiedToken};

/// Why one poll of the denials feed failed. The denials loaded so far stay in use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DenialsFetchError {
    /// The request failed or timed out (the token service is down or unreachable).
    #[error("the denials feed request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The token service answered with a non-success status (401: the bearer token is wrong).
    #[error("the denials feed answered {0}")]
    Status(http::StatusCode),
    /// The token service answered with a redirect, which is not followed (the bearer token would go
    /// wherever it points).
    #[error("the denials feed answered {status} to {location}; redirects are not followed")]
    Redirect {
        /// The status.
        status: http::StatusCode,
        /// Where it pointed.
        location: String,
    },
    /// A page exceeds the size limit.
    #[error("a denials feed page is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A page is not the feed's JSON.
    #[error("a denials feed page is malformed: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Why a [`RemoteDenylist`] could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteDenylistError {
    /// The URL does not parse.
    #[error("the denials feed URL is invalid: {0}")]
    InvalidUrl(String),
    /// The URL is neither `https` nor plain `http` to a loopback address: the bearer token and the denials
    /// would cross an open network in clear text.
    #[error(
        "the denials feed URL {0} must use https (plain http is allowed only to a loopback address)"
    )]
    InsecureUrl(String),
    /// No bearer token was set, or it cannot be sent in a header.
    #[error(
        "the denials feed needs the bearer token the token service was configured with (visible ASCII)"
    )]
    InvalidToken,
    /// The HTTP client could not be set up (e.g. no TLS roots).
    #[error("the HTTP client for the denials feed could not be built: {0}")]
    Client(#[from] reqwest::Error),
    /// [`RemoteDenylistBuilder::spawn`] was called outside a Tokio runtime.
    #[error(
        "RemoteDenylist::spawn must be called inside a Tokio runtime (it polls in a background task)"
    )]
    NoRuntime,
}

impl From<GetError> for DenialsFetchError {
    fn from(error: GetError) -> DenialsFetchError {
        match error {
            GetError::Request(error) => DenialsFetchError::Request(error),
            GetError::Status(status) => DenialsFetchError::Status(status),
            GetError::Redirect { status, location } => {
                DenialsFetchError::Redirect { status, location }
            }
            GetError::TooLarge { limit } => DenialsFetchError::TooLarge { limit },
        }
    }
}

/// A snapshot of a [`RemoteDenylist`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteDenylistStats {
    /// Polls that completed, successfully or not.
    pub polls: u64,
    /// Polls that failed.
    pub poll_failures: u64,
    /// Denials received since the start (a denial extended later counts again).
    pub denials_received: u64,
    /// Entries the denylist holds now.
    pub entries: u64,
    /// Whether checks are answered.
    pub availability: Availability,
    /// Seconds since the last successful poll; `None` before the first.
    pub seconds_since_success: Option<u64>,
}

/// The denials of a token service (`GET /auth/denials` of `tessera-issuer`), kept in memory and polled in
/// the background: a [`RevocationCheck`] for the API processes that verify the service's tokens.
///
/// - **Reads never wait on the network**: a check looks the token up in the in-memory [`Denylist`] and
///   answers at once; a cached token stays on the layer's synchronous path.
/// - **One poll at a time, with a cursor**: a background task asks every poll interval (default 1 s) for
///   what was written after the cursor of the last answer, page by page; a poll sends only what changed. A
///   separate API process thus refuses a revoked token within one poll interval (plus the request time).
/// - **Bounded memory**: an entry leaves when its `until` passes (the token's `exp` plus the issuer's
///   leeway margin), so the list holds the revocations of roughly the last access-token lifetime.
/// - **Fail closed, after a grace period**: until the first complete load every check fails (503
///   `temporarily_unavailable`): a process that just started never accepts a token revoked before it
///   started. Once loaded, a failing feed keeps the last known denials in use for
///   [`RemoteDenylistBuilder::fail_closed_after`] (default 2 minutes: a token-service restart or deploy
///   goes unnoticed); past that every check fails (503) until a poll succeeds again, since the API could
///   otherwise accept tokens revoked in the meantime. [`RemoteDenylistBuilder::fail_open`] keeps the last
///   known denials in use however long the feed is down, for deployments that prefer availability.
/// - **Counters**: [`RemoteDenylist::stats`].
///
/// The feed is authenticated with a bearer secret configured on both ends. The URL must be `https`; plain
/// `http` is accepted only to a loopback address (tests, sidecars). Cheap to clone; clones share the list.
/// The background task ends when the last clone is dropped.
///
/// ```no_run
/// use std::sync::Arc;
/// use tessera_server::{JwtAuthLayer, RemoteDenylist, RemoteJwks};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let denylist = RemoteDenylist::builder("https://auth.example/auth/denials")
///     .bearer_token(std::env::var("TESSERA_DENIALS_TOKEN")?)
///     .spawn()?;
/// denylist.refresh().await?; // optional: load now instead of answering 503 until the first poll
/// let auth = JwtAuthLayer::builder()
///     .remote_jwks(RemoteJwks::new("https://auth.example/.well-known/jwks.json")?)
///     .issuer("https://auth.example")
///     .audience("api")
///     .revocation(Arc::new(denylist))
///     .build()?;
/// # let _ = auth;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RemoteDenylist {
    shared: Arc<Shared>,
}

struct Shared {
    url: reqwest::Url,
    client: reqwest::Client,
    authorization: HeaderValue,
    denylist: Denylist,
    config: Config,
    clock: Arc<dyn Clock>,
    /// The single-flight gate of polls, holding the feed's cursor (`None` before the first complete load).
    cursor: tokio::sync::Mutex<Option<String>>,
    polls: AtomicU64,
    failures: AtomicU64,
    received: AtomicU64,
}

#[derive(Debug, Clone)]
struct Config {
    poll_interval: Duration,
    fail_closed_after: Option<Duration>,
    page_size: usize,
    max_page_len: usize,
}

/// Builds a [`RemoteDenylist`]; see its documentation for the defaults.
#[must_use]
pub struct RemoteDenylistBuilder {
    url: String,
    token: Option<String>,
    timeout: Duration,
    config: Config,
    clock: Arc<dyn Clock>,
}

impl RemoteDenylist {
    /// A builder for the denials feed at `url` (the token service's `…/auth/denials`).
    pub fn builder(url: impl Into<String>) -> RemoteDenylistBuilder {
        RemoteDenylistBuilder {
            url: url.into(),
            token: None,
            timeout: Duration::from_secs(5),
            config: Config {
                poll_interval: Duration::from_secs(1),
                fail_closed_after: Some(Duration::from_secs(120)),
                page_size: 1_000,
                max_page_len: 4 * 1024 * 1024,
            },
            clock: Arc::new(SystemClock),
        }
    }

    /// Polls now, after any poll already in flight; returns how many denials it received.
    ///
    /// # Errors
    /// When the poll fails; the denials loaded so far stay in use.
    pub async fn refresh(&self) -> Result<usize, DenialsFetchError> {
        self.shared.poll().await
    }

    /// The in-memory denylist the checks read.
    pub fn denylist(&self) -> &Denylist {
        &self.shared.denylist
    }

    /// The counters.
    pub fn stats(&self) -> RemoteDenylistStats {
        let shared = &self.shared;
        RemoteDenylistStats {
            polls: shared.polls.load(Ordering::Relaxed),
            poll_failures: shared.failures.load(Ordering::Relaxed),
            denials_received: shared.received.load(Ordering::Relaxed),
            entries: u64::try_from(shared.denylist.len()).unwrap_or(u64::MAX),
            availability: shared.denylist.availability(),
            seconds_since_success: shared.denylist.seconds_since_sync(),
        }
    }
}

impl RevocationCheck for RemoteDenylist {
    fn status(&self, token: &VerifiedToken) -> RevocationAnswer {
        self.shared.denylist.status(token)
    }
}

impl Shared {
    /// One poll: every page past the cursor, then the expiry sweep and the availability.
    async fn poll(&self) -> Result<usize, DenialsFetchError> {
        let mut cursor = self.cursor.lock().await;
        let result = self.fetch_pages(&mut cursor).await;
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.denylist.expire(self.clock.unix_seconds());
        match &result {
            Ok(received) => {
                self.received.fetch_add(
                    u64::try_from(*received).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                self.denylist.synced();
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %self.url, %error, "denials feed poll failed; keeping the known denials");
                if self.denylist.sync_failed() {
                    tracing::error!(
                        url = %self.url,
                        "the denials feed has been unreachable too long; refusing tokens (503) until it answers"
                    );
                }
            }
        }
        result
    }

    /// Fetches pages from `cursor` on until one says there is no more, moving the cursor page by page:
    /// what a failed poll already received stays received.
    async fn fetch_pages(&self, cursor: &mut Option<String>) -> Result<usize, DenialsFetchError> {
        let mut received = 0;
        loop {
            let page = self.fetch_page(cursor.as_deref()).await?;
            received += page.denials.len();
            self.denylist.insert(&page.denials);
            *cursor = Some(page.cursor);
            if !page.more {
                return Ok(received);
            }
        }
    }

    async fn fetch_page(&self, after: Option<&str>) -> Result<DenialPage, DenialsFetchError> {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &self.config.page_size.to_string());
            if let Some(after) = after {
                query.append_pair("after", after);
            }
        }
        let request = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, self.authorization.clone());
        let (body, _) = fetch::send(request, self.config.max_page_len).await?;
        Ok(serde_json::from_slice(&body)?)
    }
}

/// The background task: polls at once, then every interval, until the last [`RemoteDenylist`] is dropped.
async fn run(shared: Weak<Shared>, interval: Duration) {
    loop {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // The error is counted and logged inside; the next tick tries again.
        let _ = shared.poll().await;
        drop(shared);
        tokio::time::sleep(interval).await;
    }
}

impl RemoteDenylistBuilder {
    /// The secret the token service expects as `Authorization: Bearer …` on its denials feed. Required.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// How often the feed is polled. Default 1 s: a revocation reaches this process within it.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long after the last successful poll a failing feed makes every check fail (503). Default 2
    /// minutes.
    pub fn fail_closed_after(mut self, grace: Duration) -> Self {
        self.config.fail_closed_after = Some(grace);
        self
    }

    /// Keeps answering from the last known denials however long the feed is unreachable (once loaded).
    pub fn fail_open(mut self) -> Self {
        self.config.fail_closed_after = None;
        self
    }

    /// The timeout of one page request, connection included. Default 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many denials one page asks for. Default 1000.
    pub fn page_size(mut self, denials: usize) -> Self {
        self.config.page_size = denials.max(1);
        self
    }

    /// The largest page accepted. Default 4 MiB.
    pub fn max_page_len(mut self, bytes: usize) -> Self {
        self.config.max_page_len = bytes;
        self
    }

    /// The clock for expiry (`until`) and staleness (its monotonic time).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Builds the list and spawns its poller on the current Tokio runtime; the first poll starts at once.
    /// Until it completes, checks fail (503).
    ///
    /// # Errors
    /// A bad URL or token, an HTTP client that cannot be built, or no runtime.
    pub fn spawn(self) -> Result<RemoteDenylist, RemoteDenylistError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RemoteDenylistError::NoRuntime)?;
        let url = reqwest::Url::parse(&self.url)
            .map_err(|error| RemoteDenylistError::InvalidUrl(error.to_string()))?;
        let https = fetch::trusted_url(&url)
            .ok_or_else(|| RemoteDenylistError::InsecureUrl(url.to_string()))?;
        let mut authorization = self
            .token
            .filter(|token| !token.is_empty())
            .and_then(|token| HeaderValue::try_from(format!("Bearer {token}")).ok())
            .ok_or(RemoteDenylistError::InvalidToken)?;
        authorization.set_sensitive(true);
        let client = fetch::client(https, self.timeout)?;
        let shared = Arc::new(Shared {
            url,
            client,
            authorization,
            denylist: Denylist::kept_fresh(Arc::clone(&self.clock), self.config.fail_closed_after),
            config: self.config,
            clock: self.clock,
            cursor: tokio::sync::Mutex::new(None),
            polls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            received: AtomicU64::new(0),
        });
        runtime.spawn(run(Arc::downgrade(&shared), shared.config.poll_interval));
        Ok(RemoteDenylist { shared })
    }
}

impl fmt::Debug for RemoteDenylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteDenylist")
            .field("url", &self.shared.url.as_str())
            .field("stats", &self.stats())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RemoteDenylistBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteDenylistBuilder")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_settings_are_refused() {
        let builder = || RemoteDenylist::builder("http://127.0.0.1:1/auth/denials");
        assert!(matches!(
            builder().spawn(),
            Err(RemoteDenylistError::InvalidToken)
        ));
        assert!(matches!(
            builder().bearer_token("line\nbreak").spawn(),
            Err(RemoteDenylistError::InvalidToken)
        ));
        assert!(matches!(
            RemoteDenylist::builder("http://auth.example/auth/denials")
                .bearer_token("t")
                .spawn(),
            Err(RemoteDenylistError::InsecureUrl(_))
        ));
        assert!(matches!(
            RemoteDenylist::builder("::").bearer_token("t").spawn(),
            Err(RemoteDenylistError::InvalidUrl(_))
        ));
        let debug = format!("{:?}", builder().bearer_token("s3cret"));
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn spawning_needs_a_runtime() {
        let refused = RemoteDenylist::builder("http://127.0.0.1:1/auth/denials")
            .bearer_token("t")
            .spawn();
        assert!(matches!(refused, Err(RemoteDenylistError::NoRuntime)));
    }
}
