//! What a flight does: take the store's lock if it is shared, read the store (the first time, and every
//! time when shared), ask the token endpoint unless a refused pair is still waiting to be saved (see
//! [`exchange`](super::exchange)), hand the new pair to the store and the hook, and publish it; or, on
//! failure, start the cooldown or end the session.

use std::ops::ControlFlow;
use std::sync::Arc;

use tokio::task::JoinError;
use tracing::{debug, info, warn};

use super::flight::{Beacon, Failure, Flight, Landing};
use super::lease::Session;
use super::schedule::{self, Moment, Provenance};
use super::state::{Cooldown, State};
use crate::RefreshError;

impl Session {
    /// Starts the one flight; the caller holds the lock and was told to launch.
    pub(super) fn launch(self: &Arc<Self>, state: &mut State) -> Option<Flight> {
        let from = state.generation();
        let session = Arc::clone(self);
        let abandoned = {
            let session = Arc::clone(self);
            move |error: JoinError| {
                let reason = if error.is_panic() {
                    "the refresher panicked"
                } else {
                    "the refresh task was cancelled"
                };
                session.fail(Failure::Transient(Arc::new(RefreshError::Other(
                    reason.into(),
                ))))
            }
        };
        let flight = Flight::launch(
            move |beacon| async move { session.fly(from, beacon).await },
            abandoned,
            tracing::info_span!("tessera_client.refresh", from_generation = from),
        )?;
        state.launched(flight.clone());
        Some(flight)
    }

    /// Loads (first time only, or every time from a shared store), then refreshes if still needed, then
    /// persists and publishes.
    ///
    /// A login or logout supersedes the flight while it waits (for the store's lock or the token
    /// endpoint): it stops there. Once it writes, it finishes, so that a save is never cut off halfway and
    /// the login or logout, which waits for the store's lock, writes last.
    async fn fly(self: Arc<Self>, from: u64, beacon: Beacon) -> Landing {
        // Held until the flight lands: no other holder of a shared store refreshes meanwhile.
        let locking = self.persistence.lock(&*self.clock, self.policy.timeout);
        let store_lock = match beacon.unless_superseded(locking).await {
            None => return self.abandon(),
            Some(Ok(lock)) => lock,
            Some(Err(error)) => return self.fail(Failure::Store(Arc::new(error))),
        };
        let (needs_load, unsaved) = {
            let mut state = self.lock();
            (
                !state.loaded() || store_lock.is_some(),
                state.take_unsaved(),
            )
        };
        let from = if needs_load {
            match self.load(from).await {
                ControlFlow::Break(landing) => return landing,
                ControlFlow::Continue(from) => from,
            }
        } else {
            from
        };
        let tokens = match unsaved {
            Some(tokens) => {
                debug!("retrying to store the tokens obtained by the last refresh");
                tokens
            }
            None => match beacon.unless_superseded(self.exchange(&beacon)).await {
                None => return self.abandon(),
                Some(Ok(tokens)) => tokens,
                Some(Err(error)) if error.is_terminal() => {
                    return self.end_session(from, error).await;
                }
                Some(Err(error)) => return self.fail(Failure::Transient(Arc::new(error))),
            },
        };
        let authorization = match self.authorization(&tokens) {
            Ok(authorization) => authorization,
            Err(error) => return self.fail(Failure::Transient(Arc::new(error))),
        };
        let writing = self.persistence.begin().await;
        if let Some(landing) = self.superseded(from) {
            return landing;
        }
        if let Err(error) = writing.save(&tokens).await {
            warn!(%error, "the new tokens were not accepted by the store; not using them");
            self.lock().keep_unsaved(tokens);
            return self.fail(Failure::Store(Arc::new(error)));
        }
        let now = Moment::of(&*self.clock);
        let mut state = self.lock();
        state.landed();
        let generation = self.publish(
            &mut state,
            tokens,
            authorization,
            Provenance::Refreshed,
            now,
        );
        info!(generation = generation.0, "access token refreshed");
        drop(store_lock);
        Landing::Refreshed
    }

    /// Reads the store and publishes what it holds if that is not what is held already (another holder of
    /// a shared store refreshed meanwhile), unless tokens were set by hand meanwhile. Breaks with the
    /// landing if that is the end of the flight (the store brought a fresh token, or failed); continues with
    /// the generation to refresh from otherwise.
    async fn load(self: &Arc<Self>, from: u64) -> ControlFlow<Landing, u64> {
        debug!("loading tokens from the store");
        let loaded = match self.persistence.load().await {
            Ok(loaded) => loaded,
            Err(error) => return ControlFlow::Break(self.fail(Failure::Store(Arc::new(error)))),
        };
        let now = Moment::of(&*self.clock);
        let mut state = self.lock();
        let first = !state.loaded();
        state.mark_loaded();
        let news = loaded.filter(|stored| {
            state.generation() == from
                && state.tokens().is_none_or(|held| !held.same_tokens(stored))
        });
        let mut published = false;
        if let Some(tokens) = news {
            match self.authorization(&tokens) {
                Ok(authorization) => {
                    debug!("the store holds other tokens than this session: taking them");
                    self.publish(&mut state, tokens, authorization, Provenance::Stored, now);
                    published = true;
                }
                Err(_) => warn!("the stored access token cannot go into a header; ignoring it"),
            }
        }
        // A flight that found nothing new in a shared store refreshes, even a still-fresh token (the
        // background refresh at half its lifetime).
        if (first || published) && state.is_fresh(now.monotonic) {
            state.discard_flight();
            return ControlFlow::Break(Landing::Loaded);
        }
        ControlFlow::Continue(state.generation())
    }

    /// The tokens were replaced or cleared while the flight waited: it stops without a failure of its own.
    fn abandon(&self) -> Landing {
        debug!("the tokens are being replaced; the refresh in flight stops");
        self.lock().discard_flight();
        Landing::Failed(Failure::Transient(Arc::new(RefreshError::Other(
            "the tokens were replaced while refreshing".into(),
        ))))
    }

    /// A transient failure: keep the tokens, back off with jitter.
    pub(super) fn fail(&self, failure: Failure) -> Landing {
        let now = self.clock.monotonic();
        let mut state = self.lock();
        let failures = state.next_failure();
        let delay =
            self.policy
                .retry_delay(failures, failure.retry_after(), schedule::random_fraction());
        match &failure {
            Failure::Transient(error) => {
                warn!(%error, failures, retry_in = ?delay, "token refresh failed")
            }
            Failure::Store(error) => {
                warn!(%error, failures, retry_in = ?delay, "token store failed")
            }
            Failure::Terminal(_) => {}
        }
        state.cool_down(Cooldown::new(now, delay, failures, failure.clone()));
        Landing::Failed(failure)
    }

    /// A terminal failure: forget the tokens everywhere and tell the application, once.
    async fn end_session(&self, from: u64, error: RefreshError) -> Landing {
        let writing = self.persistence.begin().await;
        if let Some(landing) = self.superseded(from) {
            return landing;
        }
        warn!(%error, "the token endpoint ended the session; re-authentication required");
        let error = Arc::new(error);
        // Cleared before anyone learns of the end, so a restart cannot resurrect a dead refresh token.
        if let Err(store_error) = writing.clear().await {
            warn!(error = %store_error, "the ended session's tokens could not be cleared from the store");
        }
        self.lock().end(Arc::clone(&error));
        drop(writing);
        // Single flight: only one flight can end a given generation, so this runs once per session.
        if let Some(hook) = &self.on_session_expired {
            hook(&error);
        }
        Landing::Failed(Failure::Terminal(error))
    }

    /// If tokens were set or cleared by hand while the flight from generation `from` ran, those win: the
    /// flight ends without touching the store. The caller holds the right to write.
    fn superseded(&self, from: u64) -> Option<Landing> {
        let mut state = self.lock();
        if state.generation() == from {
            return None;
        }
        debug!("tokens were replaced during the refresh; discarding its result");
        state.discard_flight();
        Some(Landing::Refreshed)
    }
}
