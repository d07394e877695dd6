//! The [`Session`]: what the middleware asks for a token. Control flow only: it asks the [`State`] what to
//! do, launches or joins the flight, and takes the deadlines of every new token from the
//! [`schedule`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::HeaderValue;
use tracing::{debug, warn};

use super::persist::Persistence;
use super::schedule::{self, Moment, Provenance, RefreshPolicy};
use super::state::{self, Decision, Lease, State};
use crate::extensions::TokenGeneration;
use crate::{Clock, Error, RefreshError, Refresher, StoreError, TokenSet};

/// The callback run once when the session ends.
pub(crate) type SessionExpiredHook = Arc<dyn Fn(&RefreshError) + Send + Sync>;

/// The token state shared by every request and every clone of the middleware.
pub(crate) struct Session {
    pub(super) refresher: Box<dyn Refresher>,
    pub(crate) persistence: Persistence,
    pub(super) on_session_expired: Option<SessionExpiredHook>,
    pub(super) clock: Arc<dyn Clock>,
    pub(crate) policy: RefreshPolicy,
    /// Never held across an `.await`.
    state: Mutex<State>,
}

impl Session {
    pub(crate) fn new(
        refresher: Box<dyn Refresher>,
        persistence: Persistence,
        on_session_expired: Option<SessionExpiredHook>,
        clock: Arc<dyn Clock>,
        policy: RefreshPolicy,
    ) -> Self {
        Session {
            refresher,
            persistence,
            on_session_expired,
            clock,
            policy,
            state: Mutex::new(State::default()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The token to send now, refreshing first (once, shared with every concurrent caller) if it is inside
    /// the refresh window, rejected or missing.
    pub(crate) async fn lease(self: &Arc<Self>) -> Result<Lease, Error> {
        let now = self.clock.monotonic();
        let flight = {
            let mut state = self.lock();
            match state.decide(now) {
                Decision::Use(lease) => return Ok(lease),
                Decision::Fail(error) => return Err(error),
                Decision::Join(flight) => {
                    debug!(
                        generation = state.generation(),
                        "joining the refresh in flight"
                    );
                    flight
                }
                Decision::Launch => self.launch(&mut state).ok_or(Error::NoRuntime)?,
            }
        };
        let landing = flight.landing().await;
        let now = self.clock.monotonic();
        self.lock().after_landing(landing, now)
    }

    /// A resource server answered "expired" for `generation`: mark it, then lease a newer token. A 401 for
    /// an older generation leases the current token without refreshing again.
    pub(crate) async fn renew(
        self: &Arc<Self>,
        generation: TokenGeneration,
    ) -> Result<Lease, Error> {
        self.lock().reject(generation);
        self.lease().await
    }

    /// Replaces the tokens by hand (after a login): persisted first, then published.
    pub(crate) async fn set_tokens(
        self: &Arc<Self>,
        tokens: TokenSet,
    ) -> Result<TokenGeneration, Error> {
        let authorization =
            state::authorization(&tokens).map_err(|_| Error::UnusableAccessToken)?;
        let writing = self.persistence.begin().await;
        writing
            .save(&tokens)
            .await
            .map_err(|error| Error::TokenStore {
                source: Arc::new(error),
            })?;
        let now = Moment::of(&*self.clock);
        let mut state = self.lock();
        state.clear_failures();
        Ok(self.publish(&mut state, tokens, authorization, Provenance::Issued, now))
    }

    /// Forgets the tokens (a logout), in the store too.
    pub(crate) async fn clear(&self) -> Result<(), StoreError> {
        let writing = self.persistence.begin().await;
        writing.clear().await?;
        self.lock().forget();
        Ok(())
    }

    pub(crate) fn generation(&self) -> Option<TokenGeneration> {
        self.lock().current_generation()
    }

    pub(crate) fn tokens(&self) -> Option<TokenSet> {
        self.lock().tokens().cloned()
    }

    /// Makes `tokens` the current token, with the deadlines the schedule gives it, and schedules its
    /// background refresh. The caller holds the lock.
    pub(super) fn publish(
        self: &Arc<Self>,
        state: &mut State,
        tokens: TokenSet,
        authorization: HeaderValue,
        provenance: Provenance,
        now: Moment,
    ) -> TokenGeneration {
        let deadlines = self.policy.deadlines(
            tokens.expires_at(),
            provenance,
            now,
            schedule::random_fraction(),
        );
        if deadlines.looked_expired {
            warn!(
                "the new access token looks expired by this machine's clock; refreshing only on a 401"
            );
        }
        let generation = state.publish(tokens, authorization, deadlines);
        if self.policy.background
            && let Some(at) = deadlines.expires_at
        {
            self.schedule_background(generation, at.saturating_duration_since(now.monotonic) / 2);
        }
        generation
    }
}
