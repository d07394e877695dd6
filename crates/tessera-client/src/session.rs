//! The token state shared by every request: which token to send, and the single refresh in flight.
//!
//! All state sits in one small struct behind a `std::sync::Mutex` that is never held across an `.await`.
//! A refresh runs as its own tokio task (a "flight") so that it completes and persists the rotated pair even
//! if every request waiting for it is cancelled; waiters follow it through a `watch` channel.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::{self, BoxFuture, Either};
use http::HeaderValue;
use tokio::sync::watch;
use tracing::{Instrument, debug, info, warn};

use crate::extensions::TokenGeneration;
use crate::{
    Clock, Error, RefreshContext, RefreshError, Refresher, StoreError, TokenSet, TokenStore,
};

/// The awaited hook run after the store accepted a new pair and before any request uses it.
pub(crate) type TokensChangedHook =
    Arc<dyn Fn(TokenSet) -> BoxFuture<'static, Result<(), StoreError>> + Send + Sync>;

/// The callback run once when the session ends.
pub(crate) type SessionExpiredHook = Arc<dyn Fn(&RefreshError) + Send + Sync>;

tokio::task_local! {
    /// Set while a refresher runs: a token request made through a client carrying this middleware is sent
    /// untouched instead of waiting for the very refresh it belongs to.
    static REFRESHING: ();
}

/// Whether the current task is a refresh.
pub(crate) fn inside_refresh() -> bool {
    REFRESHING.try_with(|()| ()).is_ok()
}

/// Timing rules for refreshing.
#[derive(Debug, Clone)]
pub(crate) struct RefreshPolicy {
    pub(crate) skew: Duration,
    pub(crate) skew_jitter: f64,
    pub(crate) timeout: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) background: bool,
}

/// The token a request goes out with.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) authorization: HeaderValue,
    pub(crate) generation: TokenGeneration,
    /// Whether obtaining it meant waiting for a refresh.
    pub(crate) refreshed: bool,
}

pub(crate) struct Session {
    pub(crate) refresher: Box<dyn Refresher>,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) on_tokens_changed: Option<TokensChangedHook>,
    pub(crate) on_session_expired: Option<SessionExpiredHook>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) policy: RefreshPolicy,
    state: Mutex<State>,
    /// Serialises every store write with the state change it belongs to, so a refresh landing, a login and
    /// a session ending cannot interleave their saves and clears.
    writes: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Whether the store has been read.
    loaded: bool,
    current: Option<Current>,
    /// The generation of the newest token ever published (0 before the first).
    generation: u64,
    flight: Option<watch::Receiver<Option<Landing>>>,
    cooldown: Option<Cooldown>,
    /// Set when the session ended; cleared by new tokens.
    ended: Option<Arc<RefreshError>>,
    /// A pair obtained from the token endpoint that the store refused; saved before asking for another.
    unsaved: Option<TokenSet>,
}

struct Current {
    authorization: HeaderValue,
    tokens: TokenSet,
    generation: TokenGeneration,
    expires_at: Option<Instant>,
    refresh_at: Option<Instant>,
    /// A resource server answered "expired" for this token.
    rejected: bool,
}

impl Current {
    /// Good to send without refreshing first.
    fn fresh(&self, now: Instant) -> bool {
        !self.rejected && self.refresh_at.is_none_or(|at| now < at)
    }

    /// Still good to send while refreshing is failing.
    fn valid(&self, now: Instant) -> bool {
        !self.rejected && self.expires_at.is_none_or(|at| now < at)
    }

    fn lease(&self, refreshed: bool) -> Lease {
        Lease {
            authorization: self.authorization.clone(),
            generation: self.generation,
            refreshed,
        }
    }
}

struct Cooldown {
    until: Instant,
    failures: u32,
    cause: Failure,
}

/// Where a token pair being published comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provenance {
    /// Just obtained: from the token endpoint or handed over by the application.
    Issued,
    /// Read back from the store, possibly long after it was issued.
    Stored,
}

/// How a flight ended, as every waiter sees it.
#[derive(Clone)]
enum Landing {
    Refreshed,
    /// The store already held a fresh token: nothing was refreshed.
    Loaded,
    Failed(Failure),
}

#[derive(Clone)]
enum Failure {
    Terminal(Arc<RefreshError>),
    Transient(Arc<RefreshError>),
    Store(Arc<StoreError>),
}

impl Failure {
    fn into_error(self, retry_in: Duration) -> Error {
        match self {
            Failure::Terminal(source) => Error::ReauthenticationRequired { source },
            Failure::Transient(source) => Error::RefreshUnavailable { source, retry_in },
            Failure::Store(source) => Error::TokenStore { source },
        }
    }
}

enum Decision {
    Use(Lease),
    Fail(Error),
    Wait(watch::Receiver<Option<Landing>>),
}

impl Session {
    pub(crate) fn new(
        refresher: Box<dyn Refresher>,
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
    ) -> Self {
        Session {
            refresher,
            store,
            on_tokens_changed: None,
            on_session_expired: None,
            clock,
            policy,
            state: Mutex::new(State::default()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token to send now, refreshing first (once, shared with every concurrent caller) if it is inside
    /// the refresh window, rejected or missing.
    pub(crate) async fn lease(self: &Arc<Self>) -> Result<Lease, Error> {
        let now = self.clock.monotonic();
        let waiting = match self.decide(now) {
            Decision::Use(lease) => return Ok(lease),
            Decision::Fail(error) => return Err(error),
            Decision::Wait(waiting) => waiting,
        };
        let landing = wait_for(waiting).await;
        // One wait per lease: whatever the flight brought is used, so no caller can loop on refreshes.
        let now = self.clock.monotonic();
        let state = self.lock();
        match landing {
            Landing::Refreshed | Landing::Loaded => match (&state.ended, &state.current) {
                (Some(reason), _) => Err(Error::ReauthenticationRequired {
                    source: Arc::clone(reason),
                }),
                (None, Some(current)) => Ok(current.lease(matches!(landing, Landing::Refreshed))),
                (None, None) => Err(Error::ReauthenticationRequired {
                    source: Arc::new(RefreshError::NoRefreshToken),
                }),
            },
            Landing::Failed(failure) => {
                if let (Failure::Transient(_) | Failure::Store(_), Some(current)) =
                    (&failure, &state.current)
                    && current.valid(now)
                {
                    debug!(
                        generation = current.generation.0,
                        "refresh failed; the current token is still valid"
                    );
                    return Ok(current.lease(false));
                }
                let retry_in = state.cooldown.as_ref().map_or(Duration::ZERO, |cooldown| {
                    cooldown.until.saturating_duration_since(now)
                });
                Err(failure.into_error(retry_in))
            }
        }
    }

    /// A resource server answered "expired" for `generation`: mark it, then lease a newer token. A 401 for
    /// an older generation leases the current token without refreshing again.
    pub(crate) async fn renew(
        self: &Arc<Self>,
        generation: TokenGeneration,
    ) -> Result<Lease, Error> {
        {
            let mut state = self.lock();
            match state.current.as_mut() {
                Some(current) if current.generation == generation => {
                    if !current.rejected {
                        debug!(
                            generation = generation.0,
                            "the resource server rejected the current token"
                        );
                    }
                    current.rejected = true;
                }
                _ => debug!(
                    generation = generation.0,
                    "401 for an older token; replaying with the current one"
                ),
            }
        }
        self.lease().await
    }

    fn decide(self: &Arc<Self>, now: Instant) -> Decision {
        let mut state = self.lock();
        if let Some(reason) = &state.ended {
            return Decision::Fail(Error::ReauthenticationRequired {
                source: Arc::clone(reason),
            });
        }
        if state.loaded
            && let Some(current) = &state.current
            && current.fresh(now)
        {
            return Decision::Use(current.lease(false));
        }
        if let Some(flight) = &state.flight {
            debug!(
                generation = state.generation,
                "joining the refresh in flight"
            );
            return Decision::Wait(flight.clone());
        }
        if let Some(cooldown) = &state.cooldown
            && now < cooldown.until
        {
            if let Some(current) = &state.current
                && current.valid(now)
            {
                return Decision::Use(current.lease(false));
            }
            return Decision::Fail(cooldown.cause.clone().into_error(cooldown.until - now));
        }
        match self.launch(&mut state) {
            Some(flight) => Decision::Wait(flight),
            None => Decision::Fail(Error::NoRuntime),
        }
    }

    /// Starts the one flight; the caller holds the lock and has checked that none is running.
    fn launch(self: &Arc<Self>, state: &mut State) -> Option<watch::Receiver<Option<Landing>>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, receiver) = watch::channel(None);
        state.flight = Some(receiver.clone());
        let session = Arc::clone(self);
        let from = state.generation;
        let span = tracing::info_span!("tessera_client.refresh", from_generation = from);
        runtime.spawn(
            REFRESHING
                .scope((), async move {
                    let landing = session.fly(from).await;
                    // Waiters may all be gone; the state is already updated for whoever comes next.
                    let _ = sender.send(Some(landing));
                })
                .instrument(span),
        );
        Some(receiver)
    }

    /// Loads (first time only), then refreshes if still needed, then persists and publishes.
    async fn fly(self: &Arc<Self>, mut from: u64) -> Landing {
        let (needs_load, unsaved) = {
            let mut state = self.lock();
            (!state.loaded, state.unsaved.take())
        };
        if needs_load {
            debug!("loading tokens from the store");
            let loaded = match self.store.load().await {
                Ok(loaded) => loaded,
                Err(error) => return self.fail(Failure::Store(Arc::new(error))),
            };
            let now = self.clock.monotonic();
            let mut state = self.lock();
            state.loaded = true;
            if let Some(tokens) = loaded
                && state.generation == from
                && self
                    .publish(
                        &mut state,
                        tokens,
                        Provenance::Stored,
                        (now, self.clock.now()),
                    )
                    .is_err()
            {
                warn!("the stored access token cannot go into a header; ignoring it");
            }
            if state
                .current
                .as_ref()
                .is_some_and(|current| current.fresh(now))
            {
                state.flight = None;
                return Landing::Loaded;
            }
            from = state.generation;
        }
        let tokens = match unsaved {
            Some(tokens) => {
                debug!("retrying to store the tokens obtained by the last refresh");
                tokens
            }
            None => match self.call_refresher().await {
                Ok(tokens) => tokens,
                Err(error) if error.is_terminal() => return self.end_session(from, error).await,
                Err(error) => return self.fail(Failure::Transient(Arc::new(error))),
            },
        };
        if let Err(error) = check_header(&tokens) {
            return self.fail(Failure::Transient(Arc::new(error)));
        }
        let _writing = self.writes.lock().await;
        if let Some(landing) = self.superseded(from) {
            return landing;
        }
        if let Err(error) = self.persist(&tokens).await {
            warn!(%error, "the new tokens were not accepted by the store; not using them");
            self.lock().unsaved = Some(tokens);
            return self.fail(Failure::Store(Arc::new(error)));
        }
        let (now, system_now) = (self.clock.monotonic(), self.clock.now());
        let mut state = self.lock();
        state.flight = None;
        state.cooldown = None;
        // `check_header` passed above, so publishing cannot fail here.
        let _ = self.publish(&mut state, tokens, Provenance::Issued, (now, system_now));
        info!(generation = state.generation, "access token refreshed");
        Landing::Refreshed
    }

    /// Calls the refresher under the refresh timeout; the answer's refresh token falls back to the old one.
    async fn call_refresher(&self) -> Result<TokenSet, RefreshError> {
        let previous = self
            .lock()
            .current
            .as_ref()
            .and_then(|current| current.tokens.refresh_token().cloned());
        let context = RefreshContext::new(previous.clone(), self.clock.now());
        debug!(
            has_refresh_token = previous.is_some(),
            "calling the token endpoint"
        );
        let timeout = self.clock.sleep(self.policy.timeout);
        match future::select(self.refresher.refresh(context), timeout).await {
            Either::Left((Ok(response), _)) => {
                let mut tokens = TokenSet::from_response(response, self.clock.now());
                tokens.keep_refresh_token_from(previous.as_ref());
                Ok(tokens)
            }
            Either::Left((Err(error), _)) => Err(error),
            Either::Right(((), _)) => Err(RefreshError::TimedOut(self.policy.timeout)),
        }
    }

    /// Saves, then runs the hook: both must accept the pair before anyone may use it.
    async fn persist(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        self.store.save(tokens).await?;
        if let Some(hook) = &self.on_tokens_changed {
            hook(tokens.clone()).await?;
        }
        Ok(())
    }

    /// A transient failure: keep the tokens, back off with jitter.
    fn fail(&self, failure: Failure) -> Landing {
        let now = self.clock.monotonic();
        let mut state = self.lock();
        state.flight = None;
        let failures = state
            .cooldown
            .as_ref()
            .map_or(0, |cooldown| cooldown.failures)
            .saturating_add(1);
        let mut delay = backoff(&self.policy, failures);
        if let Failure::Transient(error) = &failure
            && let Some(asked) = error.retry_after()
        {
            // The endpoint's own estimate wins over ours, within the configured maximum.
            delay = delay.max(asked.min(self.policy.backoff_max));
        }
        match &failure {
            Failure::Transient(error) => {
                warn!(%error, failures, retry_in = ?delay, "token refresh failed")
            }
            Failure::Store(error) => {
                warn!(%error, failures, retry_in = ?delay, "token store failed")
            }
            Failure::Terminal(_) => {}
        }
        state.cooldown = Some(Cooldown {
            until: now + delay,
            failures,
            cause: failure.clone(),
        });
        Landing::Failed(failure)
    }

    /// A terminal failure: forget the tokens everywhere and tell the application, once.
    async fn end_session(&self, from: u64, error: RefreshError) -> Landing {
        let writing = self.writes.lock().await;
        if let Some(landing) = self.superseded(from) {
            return landing;
        }
        warn!(%error, "the token endpoint ended the session; re-authentication required");
        let error = Arc::new(error);
        // Cleared before anyone learns of the end, so a restart cannot resurrect a dead refresh token.
        if let Err(store_error) = self.store.clear().await {
            warn!(error = %store_error, "the ended session's tokens could not be cleared from the store");
        }
        {
            let mut state = self.lock();
            state.flight = None;
            state.current = None;
            state.cooldown = None;
            state.unsaved = None;
            state.ended = Some(Arc::clone(&error));
        }
        drop(writing);
        // Single flight: only one flight can end a given generation, so this runs once per session.
        if let Some(hook) = &self.on_session_expired {
            hook(&error);
        }
        Landing::Failed(Failure::Terminal(error))
    }

    /// If tokens were set or cleared by hand while the flight from generation `from` ran, those win: the
    /// flight ends without touching the store. The caller holds the write lock.
    fn superseded(&self, from: u64) -> Option<Landing> {
        let mut state = self.lock();
        if state.generation == from {
            return None;
        }
        debug!("tokens were replaced during the refresh; discarding its result");
        state.flight = None;
        Some(Landing::Refreshed)
    }

    /// Makes `tokens` the current token with the next generation. The caller holds the lock.
    fn publish(
        self: &Arc<Self>,
        state: &mut State,
        tokens: TokenSet,
        provenance: Provenance,
        (now, system_now): (Instant, SystemTime),
    ) -> Result<(), RefreshError> {
        let authorization = check_header(&tokens)?;
        let mut expires_at = tokens
            .expires_at()
            .map(|at| now + at.duration_since(system_now).unwrap_or(Duration::ZERO));
        if provenance == Provenance::Issued && expires_at.is_some_and(|at| at <= now) {
            // A token that is expired the moment it is issued means this clock and the issuer's disagree
            // (typically a JWT `exp` read on a clock running ahead): refreshing before every request would
            // hammer the token endpoint, so let the API decide when it has expired.
            warn!(
                "the new access token looks expired by this machine's clock; refreshing only on a 401"
            );
            expires_at = None;
        }
        if let Some(cap) = self.policy.max_lifetime {
            expires_at = Some(expires_at.map_or(now + cap, |at| at.min(now + cap)));
        }
        let refresh_at = expires_at.map(|at| {
            let lifetime = at.saturating_duration_since(now);
            // A token shorter-lived than twice the skew would otherwise be "due" the moment it arrives.
            let skew = self
                .policy
                .skew
                .mul_f64(1.0 + self.policy.skew_jitter * random_fraction())
                .min(lifetime / 2);
            at - skew
        });
        state.generation += 1;
        let generation = TokenGeneration(state.generation);
        state.current = Some(Current {
            authorization,
            tokens,
            generation,
            expires_at,
            refresh_at,
            rejected: false,
        });
        state.ended = None;
        state.loaded = true;
        if self.policy.background
            && let Some(at) = expires_at
        {
            self.schedule_background(generation, at.saturating_duration_since(now) / 2);
        }
        Ok(())
    }

    /// Replaces the tokens by hand (after a login): persisted first, then published.
    pub(crate) async fn set_tokens(
        self: &Arc<Self>,
        tokens: TokenSet,
    ) -> Result<TokenGeneration, Error> {
        check_header(&tokens).map_err(|_| Error::UnusableAccessToken)?;
        let _writing = self.writes.lock().await;
        self.persist(&tokens)
            .await
            .map_err(|error| Error::TokenStore {
                source: Arc::new(error),
            })?;
        let (now, system_now) = (self.clock.monotonic(), self.clock.now());
        let mut state = self.lock();
        state.cooldown = None;
        state.unsaved = None;
        self.publish(&mut state, tokens, Provenance::Issued, (now, system_now))
            .map_err(|_| Error::UnusableAccessToken)?;
        Ok(TokenGeneration(state.generation))
    }

    /// Forgets the tokens (a logout), in the store too.
    pub(crate) async fn clear(&self) -> Result<(), StoreError> {
        let _writing = self.writes.lock().await;
        self.store.clear().await?;
        let mut state = self.lock();
        state.generation += 1;
        state.current = None;
        state.cooldown = None;
        state.unsaved = None;
        state.ended = None;
        state.loaded = true;
        Ok(())
    }

    pub(crate) fn generation(&self) -> Option<TokenGeneration> {
        self.lock()
            .current
            .as_ref()
            .map(|current| current.generation)
    }

    pub(crate) fn tokens(&self) -> Option<TokenSet> {
        self.lock()
            .current
            .as_ref()
            .map(|current| current.tokens.clone())
    }

    /// Refreshes `generation` at about half its lifetime, retrying after each backoff while it is still
    /// current and unexpired. Holds only a weak reference, so dropping the middleware stops it.
    fn schedule_background(self: &Arc<Self>, generation: TokenGeneration, delay: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            debug!("no tokio runtime: background refresh not scheduled");
            return;
        };
        // The first sleep starts now, not when the task is first polled.
        let first_sleep = self.clock.sleep(delay);
        runtime.spawn(background_refresh(
            Arc::downgrade(self),
            generation,
            first_sleep,
        ));
    }
}

async fn background_refresh(
    weak: Weak<Session>,
    generation: TokenGeneration,
    first_sleep: BoxFuture<'static, ()>,
) {
    let mut sleep = first_sleep;
    loop {
        sleep.await;
        let Some(session) = weak.upgrade() else {
            return;
        };
        let now = session.clock.monotonic();
        let waiting = {
            let mut state = session.lock();
            match &state.current {
                Some(current) if current.generation == generation && current.valid(now) => {}
                _ => return,
            }
            if let Some(flight) = &state.flight {
                flight.clone()
            } else if let Some(cooldown) = state
                .cooldown
                .as_ref()
                .filter(|cooldown| now < cooldown.until)
            {
                sleep = session.clock.sleep(cooldown.until - now);
                continue;
            } else {
                debug!(
                    generation = generation.0,
                    "background refresh at half the token's lifetime"
                );
                match session.launch(&mut state) {
                    Some(flight) => flight,
                    None => return,
                }
            }
        };
        drop(session);
        if !matches!(wait_for(waiting).await, Landing::Failed(_)) {
            return;
        }
        // The failure set a cooldown, which the next turn of the loop waits out.
        sleep = Box::pin(future::ready(()));
    }
}

/// Waits for a flight to land. A flight task that died without landing (a panicking refresher) counts as a
/// transient failure.
async fn wait_for(mut waiting: watch::Receiver<Option<Landing>>) -> Landing {
    match waiting.wait_for(Option::is_some).await {
        Ok(landing) => landing.clone().unwrap_or(Landing::Refreshed),
        Err(_) => Landing::Failed(Failure::Transient(Arc::new(RefreshError::Other(
            "the refresh task ended without an answer".into(),
        )))),
    }
}

/// `Bearer <access token>` as a sensitive header value, or why the token cannot be one.
fn check_header(tokens: &TokenSet) -> Result<HeaderValue, RefreshError> {
    let mut value = HeaderValue::try_from(format!(
        "{} {}",
        tessera_core::BEARER,
        tokens.access_token()
    ))
    .map_err(|_| RefreshError::InvalidResponse {
        reason: "the access token contains characters not allowed in a header".to_owned(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Exponential backoff with jitter: the n-th consecutive failure waits between half and all of
/// `base * 2^(n-1)`, capped at `max`, so a fleet that failed together does not retry together.
fn backoff(policy: &RefreshPolicy, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let ceiling = policy
        .backoff_base
        .saturating_mul(1 << exponent)
        .min(policy.backoff_max);
    ceiling.mul_f64(0.5 + 0.5 * random_fraction())
}

/// A uniform number in [0, 1) from the OS CSPRNG (only used for jitter, so a failure degrades to 0.5).
fn random_fraction() -> f64 {
    match tessera_core::random::bytes::<8>() {
        Ok(bytes) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1_u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RefreshPolicy {
        RefreshPolicy {
            skew: Duration::from_secs(60),
            skew_jitter: 0.2,
            timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            max_lifetime: None,
            background: false,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let policy = policy();
        for _ in 0..200 {
            for (failures, ceiling) in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (40, 30)] {
                let delay = backoff(&policy, failures);
                let ceiling = Duration::from_secs(ceiling);
                assert!(
                    delay <= ceiling && delay >= ceiling / 2,
                    "{failures}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn random_fractions_stay_in_the_unit_interval_and_vary() {
        let samples: Vec<f64> = (0..100).map(|_| random_fraction()).collect();
        assert!(samples.iter().all(|sample| (0.0..1.0).contains(sample)));
        assert!(samples.iter().any(|sample| *sample != samples[0]));
    }
}
