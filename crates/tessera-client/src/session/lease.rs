//! The [`Session`]: what the middleware asks for a token. Control flow only: it asks the [`State`] what to
//! do, launches or joins the flight, and takes the deadlines of every new token from the
//! [`schedule`].

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{debug, warn};

use super::persist::Persistence;
use super::schedule::{self, Moment, Provenance, RefreshPolicy};
use super::state::{self, Authorization, Decision, Lease, Rejection, Renewal, State};
use crate::dpop::{Dpop, NonceCache};
use crate::extensions::TokenGeneration;
use crate::{Clock, DpopKey, Error, RefreshError, Refresher, StoreError, TokenSet};

/// The callback run once when the session ends.
pub(crate) type SessionExpiredHook = Arc<dyn Fn(&RefreshError) + Send + Sync>;

/// The token state shared by every request and every clone of the middleware.
pub(crate) struct Session {
    pub(super) refresher: Box<dyn Refresher>,
    pub(crate) persistence: Persistence,
    pub(super) on_session_expired: Option<SessionExpiredHook>,
    pub(super) clock: Arc<dyn Clock>,
    pub(crate) policy: RefreshPolicy,
    /// The DPoP key for tokens not yet bound to one, when DPoP is on.
    dpop_key: Option<DpopKey>,
    /// The DPoP nonces servers handed out, shared by token and API requests.
    nonces: Arc<NonceCache>,
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
        dpop_key: Option<DpopKey>,
    ) -> Self {
        Session {
            refresher,
            persistence,
            on_session_expired,
            clock,
            policy,
            dpop_key,
            nonces: Arc::default(),
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

    /// A resource server refused `generation` for `why`: mark it, then lease a newer token (a refusal of
    /// an older generation leases the current token without refreshing again). `None` when the answer
    /// should pass through instead (see [`Renewal::PassThrough`]).
    pub(crate) async fn renew(
        self: &Arc<Self>,
        generation: TokenGeneration,
        why: Rejection,
    ) -> Result<Option<Lease>, Error> {
        let renewal = self.lock().reject(generation, why);
        match renewal {
            Renewal::PassThrough => Ok(None),
            Renewal::Renew => self.lease().await.map(Some),
        }
    }

    /// A resource server accepted `generation`.
    pub(crate) fn vouch(&self, generation: TokenGeneration) {
        self.lock().vouch(generation);
    }

    /// Replaces the tokens by hand (after a login): persisted first, then published. A refresh in flight
    /// is stopped: whatever it brings belongs to the tokens being replaced. With DPoP on, tokens without a
    /// key are bound to the configured one (the login's proof was signed with it).
    pub(crate) async fn set_tokens(
        self: &Arc<Self>,
        mut tokens: TokenSet,
    ) -> Result<TokenGeneration, Error> {
        if tokens.dpop_key().is_none()
            && let Some(key) = &self.dpop_key
        {
            tokens = tokens.with_dpop_key(key.clone());
        }
        let authorization = self
            .authorization(&tokens)
            .map_err(|_| Error::UnusableAccessToken)?;
        self.supersede_flight();
        let store_error = |error| Error::TokenStore {
            source: Arc::new(error),
        };
        let _store_lock = self
            .persistence
            .lock(&*self.clock, self.policy.timeout)
            .await
            .map_err(store_error)?;
        let writing = self.persistence.begin().await;
        writing.save(&tokens).await.map_err(store_error)?;
        let now = Moment::of(&*self.clock);
        let mut state = self.lock();
        state.clear_failures();
        Ok(self.publish(&mut state, tokens, authorization, Provenance::Issued, now))
    }

    /// Forgets the tokens (a logout), in the store too; a refresh in flight is stopped.
    pub(crate) async fn clear(&self) -> Result<(), StoreError> {
        self.supersede_flight();
        let _store_lock = self
            .persistence
            .lock(&*self.clock, self.policy.timeout)
            .await?;
        let writing = self.persistence.begin().await;
        writing.clear().await?;
        self.lock().forget();
        Ok(())
    }

    fn supersede_flight(&self) {
        if let Some(flight) = self.lock().flight() {
            debug!("the tokens are being replaced; stopping the refresh in flight");
            flight.supersede();
        }
    }

    pub(crate) fn generation(&self) -> Option<TokenGeneration> {
        self.lock().current_generation()
    }

    pub(crate) fn tokens(&self) -> Option<TokenSet> {
        self.lock().tokens().cloned()
    }

    /// What signs DPoP proofs now (see [`Session::dpop_for`]).
    pub(crate) fn dpop(&self) -> Option<Dpop> {
        self.dpop_for(self.lock().tokens())
    }

    /// What signs DPoP proofs for `tokens`: the key they are bound to, or for tokens bound to none the
    /// configured key; `None` with DPoP off and no bound tokens.
    pub(super) fn dpop_for(&self, tokens: Option<&TokenSet>) -> Option<Dpop> {
        let key = tokens
            .and_then(TokenSet::dpop_key)
            .or(self.dpop_key.as_ref())?;
        Some(Dpop::sharing(
            key.clone(),
            Arc::clone(&self.nonces),
            Arc::clone(&self.clock),
        ))
    }

    /// How `tokens` are presented (see [`state::authorization`]).
    pub(super) fn authorization(&self, tokens: &TokenSet) -> Result<Authorization, RefreshError> {
        let dpop = tokens.dpop_key().and_then(|_| self.dpop_for(Some(tokens)));
        state::authorization(tokens, dpop)
    }

    /// Makes `tokens` the current token, with the deadlines the schedule gives it, and schedules its
    /// background refresh. The caller holds the lock.
    pub(super) fn publish(
        self: &Arc<Self>,
        state: &mut State,
        tokens: TokenSet,
        authorization: Authorization,
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
        let generation = state.publish(tokens, authorization, deadlines, provenance);
        if self.policy.background
            && let Some(at) = deadlines.expires_at
        {
            self.schedule_background(generation, at.saturating_duration_since(now.monotonic) / 2);
        }
        generation
    }
}
