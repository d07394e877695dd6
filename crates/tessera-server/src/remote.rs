//! A key set fetched from the issuer's JWKS URL and refreshed without ever making a request wait on a
//! fetch it did not need.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::CACHE_CONTROL;

use crate::fetch::{self, GetError};
use crate::{Clock, KeyError, KeySet, SystemClock};

/// Why fetching a JWKS failed. The keys fetched last stay in use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksFetchError {
    /// The request failed or timed out (the issuer is down or unreachable).
    #[error("the JWKS request failed: {0}")]
    Request(reqwest::Error),
    /// The issuer answered with a non-success status.
    #[error("the JWKS endpoint answered {0}")]
    Status(http::StatusCode),
    /// The issuer answered with a redirect. Redirects are never followed: a redirect to another origin
    /// would let whoever controls that origin publish the keys this server trusts.
    #[error(
        "the JWKS endpoint answered {status} to {location}; redirects are not followed: configure the \
         final JWKS URL"
    )]
    Redirect {
        /// The 3xx status.
        status: http::StatusCode,
        /// The `Location` it pointed to, as sent (lossily decoded), or `(none)`.
        location: String,
    },
    /// The document exceeds the size limit.
    #[error("the JWKS document is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The document holds no usable key, or is not a JWKS.
    #[error("the JWKS document is unusable: {0}")]
    Keys(#[from] KeyError),
}

/// Why a [`RemoteJwks`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteJwksError {
    /// The URL does not parse.
    #[error("the JWKS URL is invalid: {0}")]
    InvalidUrl(String),
    /// The URL is neither `https` nor plain `http` to a loopback address: keys fetched over an open network
    /// without TLS could be replaced in transit.
    #[error("the JWKS URL {0} must use https (plain http is allowed only to a loopback address)")]
    InsecureUrl(String),
    /// The HTTP client could not be set up (e.g. no TLS roots).
    #[error("the HTTP client for the JWKS could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

/// The issuer's published key set (RFC 7517), fetched over HTTP(S).
///
/// - Requests read the current keys through an atomic pointer swap and never wait for a fetch, except a
///   request whose `kid` is unknown, which waits for the fetch in flight or the one refetch it triggers.
/// - At most one fetch is in flight; concurrent requests with unknown `kid`s share it.
/// - An unknown `kid` triggers a refetch at most once per cooldown (default 30 s), so a stream of garbage
///   `kid`s cannot drive a fetch storm; within the cooldown such tokens get 401 at once.
/// - The keys are refreshed in the background after `Cache-Control: max-age`, clamped to
///   [`RemoteJwksBuilder::refresh_bounds`] (default 1 min to 1 day; 15 min without the header).
/// - A failed fetch (timeout 5 s) keeps the last good keys; until one fetch succeeds, requests get 503.
/// - Redirects are not followed: a 3xx answer is a failed fetch ([`JwksFetchError::Redirect`]).
/// - The document is read chunk by chunk and refused once it exceeds 256 KiB
///   ([`RemoteJwksBuilder::max_document_len`]), so an endless body costs at most that much memory.
/// - Shared secrets (`kty: oct`) in a published set are ignored.
/// - The URL must be `https`; plain `http` is accepted only to a loopback address (tests, sidecars).
///
/// Cheap to clone; clones share the keys. Needs a Tokio runtime for background refreshes.
///
/// ```no_run
/// use tessera_server::{JwtAuthLayer, RemoteJwks};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let jwks = RemoteJwks::new("https://auth.example/.well-known/jwks.json")?;
/// jwks.refresh().await?; // optional: fail fast at startup instead of on the first request
/// let auth = JwtAuthLayer::builder()
///     .remote_jwks(jwks)
///     .issuer("https://auth.example")
///     .audience("api")
///     .build()?;
/// # let _ = auth;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RemoteJwks {
    shared: Arc<Shared>,
}

struct Shared {
    url: reqwest::Url,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    loaded: AtomicBool,
    /// Serialises fetches. Held across the fetch on purpose: it is the single-flight gate, and readers of
    /// `keys` never touch it.
    gate: tokio::sync::Mutex<()>,
    /// When the last fetch started and when the next refresh is due, in milliseconds since `started` on the
    /// clock's monotonic time: a step of the host's wall clock never makes a refresh or the cooldown come
    /// early or late. 0 means never; `u64::MAX`, not scheduled.
    last_attempt_ms: AtomicU64,
    refresh_due_ms: AtomicU64,
    background: AtomicBool,
    /// A fetch is running (set and cleared under `gate`, see [`InFlight`]).
    in_flight: AtomicBool,
    /// Completed fetches; also how a waiter on `gate` tells that the fetch it wanted has happened.
    fetches: AtomicU64,
    failures: AtomicU64,
    config: Config,
    clock: Arc<dyn Clock>,
    started: Instant,
}

#[derive(Debug, Clone)]
struct Config {
    cooldown: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
    default_refresh: Duration,
    max_document_len: usize,
}

/// Builds a [`RemoteJwks`]; see its documentation for the defaults.
#[must_use]
pub struct RemoteJwksBuilder {
    url: String,
    timeout: Duration,
    config: Config,
    clock: Arc<dyn Clock>,
}

impl RemoteJwks {
    /// A key set fetched from `url` with the default settings.
    ///
    /// # Errors
    /// When the URL does not parse or the HTTP client cannot be built.
    pub fn new(url: impl Into<String>) -> Result<RemoteJwks, RemoteJwksError> {
        RemoteJwks::builder(url).build()
    }

    /// A builder for a key set fetched from `url`.
    pub fn builder(url: impl Into<String>) -> RemoteJwksBuilder {
        RemoteJwksBuilder {
            url: url.into(),
            timeout: Duration::from_secs(5),
            config: Config {
                cooldown: Duration::from_secs(30),
                min_refresh: Duration::from_secs(60),
                max_refresh: Duration::from_secs(24 * 60 * 60),
                default_refresh: Duration::from_secs(15 * 60),
                max_document_len: 256 * 1024,
            },
            clock: Arc::new(SystemClock),
        }
    }

    /// Fetches the key set now (regardless of the cooldown), after any fetch already in flight.
    ///
    /// # Errors
    /// When the fetch fails; the previous keys stay in use.
    pub async fn refresh(&self) -> Result<(), JwksFetchError> {
        let _gate = self.shared.gate.lock().await;
        self.shared.fetch_and_store().await
    }

    /// The keys in use.
    pub fn current(&self) -> Arc<KeySet> {
        self.shared.keys.load_full()
    }

    /// How many fetches have completed, and how many of them failed.
    pub fn fetch_counts(&self) -> (u64, u64) {
        (
            self.shared.fetches.load(Ordering::Acquire),
            self.shared.failures.load(Ordering::Relaxed),
        )
    }

    /// The current keys for one request, scheduling a background refresh when they are due for one.
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<KeySet>> {
        let shared = &self.shared;
        if shared.now_ms() >= shared.refresh_due_ms.load(Ordering::Relaxed) {
            self.refresh_in_background();
        }
        shared.keys.load()
    }

    /// Whether no fetch has ever succeeded.
    pub(crate) fn never_loaded(&self) -> bool {
        !self.shared.loaded.load(Ordering::Acquire)
    }

    /// Whether a request with an unknown `kid` should wait for keys: a fetch is in flight it can join, or
    /// the cooldown since the last attempt has passed so it may start one.
    pub(crate) fn may_refetch(&self) -> bool {
        self.shared.in_flight.load(Ordering::Acquire) || self.shared.cooldown_passed()
    }

    /// Refetches because a token named an unknown `kid`: joins a fetch in flight, and does nothing when
    /// another request already refetched within the cooldown.
    ///
    /// The fetch runs as its own task, so a client that disconnects mid-fetch does not abort it for everyone
    /// waiting on it.
    pub(crate) async fn refetch_for_unknown_kid(&self) {
        let shared = Arc::clone(&self.shared);
        let seen = shared.fetches.load(Ordering::Acquire);
        let refetch = async move {
            let _gate = shared.gate.lock().await;
            if shared.fetches.load(Ordering::Acquire) != seen || !shared.cooldown_passed() {
                return;
            }
            // The error is counted and logged inside; the caller rechecks the kid against whatever is live.
            let _ = shared.fetch_and_store().await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                // A panic inside the task leaves the keys as they were; the caller rechecks them either way.
                let _ = runtime.spawn(refetch).await;
            }
            Err(_) => refetch.await,
        }
    }

    fn refresh_in_background(&self) {
        let shared = &self.shared;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if shared.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(shared);
        runtime.spawn(async move {
            {
                let _gate = shared.gate.lock().await;
                if shared.now_ms() >= shared.refresh_due_ms.load(Ordering::Relaxed) {
                    let _ = shared.fetch_and_store().await;
                }
            }
            shared.background.store(false, Ordering::Release);
        });
    }
}

impl Shared {
    /// Milliseconds since this key set was built, on the clock's monotonic time.
    fn now_ms(&self) -> u64 {
        duration_ms(
            self.clock
                .monotonic()
                .saturating_duration_since(self.started),
        )
    }

    fn cooldown_passed(&self) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        last == 0 || self.now_ms().saturating_sub(last) >= duration_ms(self.config.cooldown)
    }

    /// One fetch; the caller holds `gate`.
    async fn fetch_and_store(&self) -> Result<(), JwksFetchError> {
        let started = self.now_ms().max(1);
        self.last_attempt_ms.store(started, Ordering::Release);
        let _in_flight = InFlight::mark(&self.in_flight);
        let result = self.fetch().await;
        let next = match &result {
            Ok((keys, max_age)) => {
                let previous = self.keys.load_full();
                self.keys.store(Arc::new(keys.clone().reusing(&previous)));
                self.loaded.store(true, Ordering::Release);
                tracing::debug!(url = %self.url, keys = keys.len(), "JWKS refreshed");
                max_age
                    .unwrap_or(self.config.default_refresh)
                    .clamp(self.config.min_refresh, self.config.max_refresh)
            }
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping the last good keys");
                self.config.cooldown
            }
        };
        self.refresh_due_ms
            .store(started.saturating_add(duration_ms(next)), Ordering::Release);
        // Counted once the outcome is in place: whoever sees the new count also sees the keys it produced.
        self.fetches.fetch_add(1, Ordering::AcqRel);
        result.map(|_| ())
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), JwksFetchError> {
        let (document, headers) = fetch::get(
            &self.client,
            &self.url,
            "application/jwk-set+json, application/json",
            self.config.max_document_len,
        )
        .await?;
        let max_age = headers
            .get_all(CACHE_CONTROL)
            .iter()
            .find_map(|value| max_age(value.to_str().ok()?));
        Ok((KeySet::from_published_jwks(&document)?, max_age))
    }
}

/// Marks a fetch as running until dropped, also when the fetching future is cancelled.
struct InFlight<'a>(&'a AtomicBool);

impl<'a> InFlight<'a> {
    fn mark(flag: &'a AtomicBool) -> InFlight<'a> {
        flag.store(true, Ordering::Release);
        InFlight(flag)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The `max-age` of a `Cache-Control` value; `no-cache` and `no-store` read as zero (refetch as soon as the
/// lower bound allows).
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control
        .split(',')
        .map(str::trim)
        .find_map(|directive| {
            if directive.eq_ignore_ascii_case("no-cache")
                || directive.eq_ignore_ascii_case("no-store")
            {
                return Some(Duration::ZERO);
            }
            let (name, value) = directive.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse().ok())?
                .map(Duration::from_secs)
        })
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl RemoteJwksBuilder {
    /// How long a refetch triggered by an unknown `kid` blocks further such refetches. Default 30 s.
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.config.cooldown = cooldown;
        self
    }

    /// The fetch timeout, connection included. Default 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The bounds `Cache-Control: max-age` is clamped to. Default 1 min to 1 day.
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.config.min_refresh = min.min(max);
        self.config.max_refresh = max.max(min);
        self
    }

    /// The refresh interval when the issuer sends no `max-age`. Default 15 min.
    pub fn default_refresh(mut self, interval: Duration) -> Self {
        self.config.default_refresh = interval;
        self
    }

    /// The largest JWKS document accepted. Default 256 KiB.
    pub fn max_document_len(mut self, bytes: usize) -> Self {
        self.config.max_document_len = bytes;
        self
    }

    /// The clock for cooldown and refresh timing, read on its monotonic time (tests step it instead of
    /// sleeping).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The key set. No fetch happens yet: the first request (or [`RemoteJwks::refresh`]) triggers it.
    ///
    /// # Errors
    /// When the URL does not parse or the HTTP client cannot be built.
    pub fn build(self) -> Result<RemoteJwks, RemoteJwksError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|error| RemoteJwksError::InvalidUrl(error.to_string()))?;
        let https = fetch::trusted_url(&url)
            .ok_or_else(|| RemoteJwksError::InsecureUrl(url.to_string()))?;
        let client = fetch::client(https, self.timeout)?;
        Ok(RemoteJwks {
            shared: Arc::new(Shared {
                url,
                client,
                keys: ArcSwap::from_pointee(KeySet::default()),
                loaded: AtomicBool::new(false),
                gate: tokio::sync::Mutex::new(()),
                last_attempt_ms: AtomicU64::new(0),
                refresh_due_ms: AtomicU64::new(u64::MAX),
                background: AtomicBool::new(false),
                in_flight: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                config: self.config,
                started: self.clock.monotonic(),
                clock: self.clock,
            }),
        })
    }
}

impl From<GetError> for JwksFetchError {
    fn from(error: GetError) -> JwksFetchError {
        match error {
            GetError::Request(error) => JwksFetchError::Request(error),
            GetError::Status(status) => JwksFetchError::Status(status),
            GetError::Redirect { status, location } => {
                JwksFetchError::Redirect { status, location }
            }
            GetError::TooLarge { limit } => JwksFetchError::TooLarge { limit },
        }
    }
}

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fetches, failures) = self.fetch_counts();
        f.debug_struct("RemoteJwks")
            .field("url", &self.shared.url.as_str())
            .field("keys", &self.shared.keys.load().len())
            .field("fetches", &fetches)
            .field("failures", &failures)
            .field("config", &self.shared.config)
            .finish()
    }
}

impl fmt::Debug for RemoteJwksBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwksBuilder")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            RemoteJwks::new("not a url"),
            Err(RemoteJwksError::InvalidUrl(_))
        ));
    }

    #[test]
    fn remote_jwks_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<RemoteJwks>();
    }
}
