//! The token state: the current pair and its generation, the pair kept aside when the store refused it, the
//! cooldown after a failed refresh, the end of the session, and the flight in the air.
//!
//! Everything here is synchronous and does no I/O: the session applies these transitions and asks these
//! questions under its lock, and acts on the answers (launching, joining or failing) outside this module.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use tracing::debug;

use super::flight::{Failure, Flight, Landing};
use super::schedule::{Deadlines, Provenance};
use crate::dpop::{BoundToken, DPOP_SCHEME, Dpop};
use crate::extensions::TokenGeneration;
use crate::{Error, RefreshError, RefreshToken, TokenSet};

/// The token a request goes out with.
#[derive(Clone)]
pub(crate) struct Lease {
    pub(crate) authorization: HeaderValue,
    pub(crate) generation: TokenGeneration,
    /// Whether obtaining it meant waiting for a refresh.
    pub(crate) refreshed: bool,
    /// The token replaced one rejected without an expiry signal, and no resource server has accepted it
    /// yet: if it is rejected that way too, a refresh will not help.
    pub(crate) suspect: bool,
    /// For a DPoP-bound token: the proof each request needs.
    pub(crate) dpop: Option<Arc<BoundToken>>,
}

/// Why a resource server refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// It said the token expired (`Token-Expired: true`).
    Expired,
    /// It said `invalid_token` and no more: maybe expired, maybe never acceptable there.
    Unexplained,
}

/// What a request whose token was refused does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// Wait for a newer token (refreshing if need be) and replay.
    Renew,
    /// Hand the answer back: the token replaced one refused without explanation, and is refused the same
    /// way; another refresh would only rotate the refresh token for nothing.
    PassThrough,
}

#[derive(Default)]
pub(crate) struct State {
    /// Whether the store has been read.
    loaded: bool,
    current: Option<Current>,
    /// The generation of the newest token ever published (0 before the first), or of the last clear.
    generation: u64,
    flight: Option<Flight>,
    cooldown: Option<Cooldown>,
    /// Set when the session ended; cleared by new tokens.
    ended: Option<Arc<RefreshError>>,
    /// A pair obtained from the token endpoint that the store refused; saved before asking for another.
    unsaved: Option<TokenSet>,
}

struct Current {
    authorization: Authorization,
    tokens: TokenSet,
    generation: TokenGeneration,
    deadlines: Deadlines,
    /// A resource server refused this token.
    rejected: Option<Rejection>,
    /// See [`Lease::suspect`].
    suspect: bool,
}

impl Current {
    /// Good to send without refreshing first.
    fn fresh(&self, now: Instant) -> bool {
        self.rejected.is_none() && self.deadlines.refresh_at.is_none_or(|at| now < at)
    }

    /// Still good to send while refreshing is failing.
    fn valid(&self, now: Instant) -> bool {
        self.rejected.is_none() && self.deadlines.expires_at.is_none_or(|at| now < at)
    }

    fn lease(&self, refreshed: bool) -> Lease {
        Lease {
            authorization: self.authorization.header.clone(),
            generation: self.generation,
            refreshed,
            suspect: self.suspect,
            dpop: self.authorization.dpop.clone(),
        }
    }
}

/// How a token is presented: its `Authorization` header and, when DPoP-bound, what makes its proofs.
pub(crate) struct Authorization {
    header: HeaderValue,
    dpop: Option<Arc<BoundToken>>,
}

/// The wait after a failed refresh (or store read) before the next attempt.
pub(super) struct Cooldown {
    since: Instant,
    delay: Duration,
    failures: u32,
    cause: Failure,
}

impl Cooldown {
    /// The cooldown after the `failures`-th consecutive failure, `cause`, at `since`.
    pub(super) fn new(since: Instant, delay: Duration, failures: u32, cause: Failure) -> Self {
        Cooldown {
            since,
            delay,
            failures,
            cause,
        }
    }

    /// How long it still lasts at `now`; `None` once over. Kept as a start and a length, so that no delay
    /// is too long to add to the clock.
    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.delay
            .checked_sub(now.saturating_duration_since(self.since))
            .filter(|left| !left.is_zero())
    }
}

/// What a request needing a token does next.
pub(super) enum Decision {
    Use(Lease),
    Fail(Error),
    /// Wait for the refresh in flight.
    Join(Flight),
    /// Start the refresh (nothing is in flight).
    Launch,
}

/// What the background refresh of one generation does next.
pub(super) enum BackgroundStep {
    /// The generation is no longer current and valid.
    Stop,
    Join(Flight),
    /// Wait out the cooldown first.
    Sleep(Duration),
    Launch,
}

impl State {
    pub(super) fn decide(&self, now: Instant) -> Decision {
        if let Some(reason) = &self.ended {
            return Decision::Fail(Error::ReauthenticationRequired {
                source: Arc::clone(reason),
            });
        }
        if self.loaded
            && let Some(current) = &self.current
            && current.fresh(now)
        {
            return Decision::Use(current.lease(false));
        }
        if let Some(flight) = &self.flight {
            return Decision::Join(flight.clone());
        }
        if let Some(cooldown) = &self.cooldown
            && let Some(remaining) = cooldown.remaining(now)
        {
            if let Some(current) = &self.current
                && current.valid(now)
            {
                return Decision::Use(current.lease(false));
            }
            return Decision::Fail(cooldown.cause.clone().into_error(remaining));
        }
        Decision::Launch
    }

    /// The lease for a request that waited for a flight to land. One wait per lease: whatever the flight
    /// brought is used, so no caller can loop on refreshes.
    pub(super) fn after_landing(&self, landing: Landing, now: Instant) -> Result<Lease, Error> {
        match landing {
            Landing::Refreshed | Landing::Loaded => match (&self.ended, &self.current) {
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
                    (&failure, &self.current)
                    && current.valid(now)
                {
                    debug!(
                        generation = current.generation.0,
                        "refresh failed; the current token is still valid"
                    );
                    return Ok(current.lease(false));
                }
                let retry_in = self
                    .cooldown
                    .as_ref()
                    .and_then(|cooldown| cooldown.remaining(now))
                    .unwrap_or(Duration::ZERO);
                Err(failure.into_error(retry_in))
            }
        }
    }

    pub(super) fn background_step(
        &self,
        generation: TokenGeneration,
        now: Instant,
    ) -> BackgroundStep {
        match &self.current {
            Some(current) if current.generation == generation && current.valid(now) => {}
            _ => return BackgroundStep::Stop,
        }
        if let Some(flight) = &self.flight {
            return BackgroundStep::Join(flight.clone());
        }
        match self
            .cooldown
            .as_ref()
            .and_then(|cooldown| cooldown.remaining(now))
        {
            Some(remaining) => BackgroundStep::Sleep(remaining),
            None => BackgroundStep::Launch,
        }
    }

    /// A resource server refused `generation` for `why`: if that is the current token, it is not sent again,
    /// unless it is a suspect refused without explanation once more, whose answer passes through. A refusal
    /// of an older token changes nothing (the request replays with the current one).
    pub(super) fn reject(&mut self, generation: TokenGeneration, why: Rejection) -> Renewal {
        let Some(current) = self
            .current
            .as_mut()
            .filter(|current| current.generation == generation)
        else {
            debug!(
                generation = generation.0,
                "401 for an older token; replaying with the current one"
            );
            return Renewal::Renew;
        };
        if current.suspect && why == Rejection::Unexplained {
            debug!(
                generation = generation.0,
                "the token that replaced an unexplained rejection is rejected the same way; not refreshing again"
            );
            return Renewal::PassThrough;
        }
        if current.rejected.is_none() {
            debug!(
                generation = generation.0,
                ?why,
                "the resource server rejected the current token"
            );
        }
        // An expiry signal outranks an unexplained refusal.
        if current.rejected != Some(Rejection::Expired) {
            current.rejected = Some(why);
        }
        Renewal::Renew
    }

    /// A resource server accepted `generation`: if it was a suspect, it no longer is.
    pub(super) fn vouch(&mut self, generation: TokenGeneration) {
        if let Some(current) = self.current.as_mut()
            && current.generation == generation
        {
            current.suspect = false;
        }
    }

    /// `flight` is now the refresh in the air.
    pub(super) fn launched(&mut self, flight: Flight) {
        self.flight = Some(flight);
    }

    /// The flight's result is discarded (tokens were replaced while it flew).
    pub(super) fn discard_flight(&mut self) {
        self.flight = None;
    }

    /// Takes the pair the store refused last time, to save it before asking for another.
    pub(super) fn take_unsaved(&mut self) -> Option<TokenSet> {
        self.unsaved.take()
    }

    /// Keeps aside a pair the store refused.
    pub(super) fn keep_unsaved(&mut self, tokens: TokenSet) {
        self.unsaved = Some(tokens);
    }

    /// Makes `tokens` the current token with the next generation; a session that had ended starts again.
    /// A token that replaces one refused without explanation is a suspect until a resource server accepts it.
    pub(super) fn publish(
        &mut self,
        tokens: TokenSet,
        authorization: Authorization,
        deadlines: Deadlines,
        provenance: Provenance,
    ) -> TokenGeneration {
        self.generation += 1;
        let generation = TokenGeneration(self.generation);
        let suspect = provenance == Provenance::Refreshed
            && self
                .current
                .as_ref()
                .is_some_and(|current| current.rejected == Some(Rejection::Unexplained));
        self.current = Some(Current {
            authorization,
            tokens,
            generation,
            deadlines,
            rejected: None,
            suspect,
        });
        self.ended = None;
        self.loaded = true;
        generation
    }

    /// A flight landed with new tokens: nothing is in the air or cooling down any more.
    pub(super) fn landed(&mut self) {
        self.flight = None;
        self.cooldown = None;
    }

    /// New tokens were handed over by hand: earlier failures and the pair kept aside no longer count.
    pub(super) fn clear_failures(&mut self) {
        self.cooldown = None;
        self.unsaved = None;
    }

    /// The tokens are forgotten (a logout): the next request asks the refresher afresh.
    pub(super) fn forget(&mut self) {
        self.generation += 1;
        self.current = None;
        self.cooldown = None;
        self.unsaved = None;
        self.ended = None;
        self.loaded = true;
    }

    /// The token endpoint ended the session: nothing is kept, and every request fails with `reason`.
    pub(super) fn end(&mut self, reason: Arc<RefreshError>) {
        self.flight = None;
        self.current = None;
        self.cooldown = None;
        self.unsaved = None;
        self.ended = Some(reason);
    }

    /// A refresh or store read failed: nothing is in the air, and `cooldown` starts.
    pub(super) fn cool_down(&mut self, cooldown: Cooldown) {
        self.flight = None;
        self.cooldown = Some(cooldown);
    }

    /// The flight released its waiters with `cause` and sends its next token request (or gives up) in
    /// `delay`: what requests are told meanwhile. The count of consecutive failures does not move; the
    /// flight's own end counts.
    pub(super) fn hold(&mut self, since: Instant, delay: Duration, cause: Failure) {
        let failures = self
            .cooldown
            .as_ref()
            .map_or(0, |cooldown| cooldown.failures);
        self.cooldown = Some(Cooldown::new(since, delay, failures, cause));
    }

    /// How many consecutive failures the next one makes.
    pub(super) fn next_failure(&self) -> u32 {
        self.cooldown
            .as_ref()
            .map_or(0, |cooldown| cooldown.failures)
            .saturating_add(1)
    }

    pub(super) fn loaded(&self) -> bool {
        self.loaded
    }

    pub(super) fn mark_loaded(&mut self) {
        self.loaded = true;
    }

    /// The refresh in the air, if any.
    pub(super) fn flight(&self) -> Option<&Flight> {
        self.flight.as_ref()
    }

    /// The generation a flight starts from, to tell whether tokens were replaced while it flew.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn current_generation(&self) -> Option<TokenGeneration> {
        self.current.as_ref().map(|current| current.generation)
    }

    pub(super) fn tokens(&self) -> Option<&TokenSet> {
        self.current.as_ref().map(|current| &current.tokens)
    }

    pub(super) fn refresh_token(&self) -> Option<RefreshToken> {
        self.tokens()
            .and_then(|tokens| tokens.refresh_token().cloned())
    }

    /// Whether the current token can be sent at `now` without refreshing first.
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|current| current.fresh(now))
    }
}

/// How `tokens` are presented: `Authorization: Bearer <access token>`, or `DPoP <access token>` with proofs
/// by `dpop` (the key the tokens are bound to), as a sensitive header value; or why they cannot be.
pub(super) fn authorization(
    tokens: &TokenSet,
    dpop: Option<Dpop>,
) -> Result<Authorization, RefreshError> {
    let invalid = |reason: &str| RefreshError::InvalidResponse {
        reason: reason.to_owned(),
    };
    let (scheme, dpop) = if tokens.is_dpop_bound() {
        let dpop = dpop.ok_or_else(|| {
            invalid("a DPoP-bound access token came without its DPoP key; turn DPoP on with AuthMiddlewareBuilder::dpop")
        })?;
        (
            DPOP_SCHEME,
            Some(Arc::new(BoundToken::new(dpop, tokens.access_token()))),
        )
    } else {
        (tessera_core::BEARER, None)
    };
    let mut header = HeaderValue::try_from(format!("{scheme} {}", tokens.access_token()))
        .map_err(|_| invalid("the access token contains characters not allowed in a header"))?;
    header.set_sensitive(true);
    Ok(Authorization { header, dpop })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn transient() -> Failure {
        Failure::Transient(Arc::new(RefreshError::TimedOut(secs(5))))
    }

    fn deadlines(now: Instant) -> Deadlines {
        Deadlines {
            expires_at: Some(now + secs(300)),
            refresh_at: Some(now + secs(240)),
            looked_expired: false,
        }
    }

    /// Publishes `access` due for refresh at `now + 240 s` and expiring at `now + 300 s`.
    fn publish(
        state: &mut State,
        access: &str,
        now: Instant,
        provenance: Provenance,
    ) -> TokenGeneration {
        let tokens = TokenSet::new(access);
        let authorization = authorization(&tokens, None).unwrap();
        state.publish(tokens, authorization, deadlines(now), provenance)
    }

    /// A state holding a token due for refresh at `now + 240 s` and expiring at `now + 300 s`.
    fn holding(now: Instant) -> (State, TokenGeneration) {
        let mut state = State::default();
        let generation = publish(&mut state, "a1", now, Provenance::Issued);
        (state, generation)
    }

    #[test]
    fn a_cooldown_lasts_its_delay_whatever_its_length() {
        let now = Instant::now();
        let cooldown = Cooldown::new(now, secs(10), 1, transient());
        assert_eq!(cooldown.remaining(now), Some(secs(10)));
        assert_eq!(cooldown.remaining(now + secs(4)), Some(secs(6)));
        assert_eq!(cooldown.remaining(now + secs(10)), None);
        assert_eq!(cooldown.remaining(now + secs(11)), None);
        let endless = Cooldown::new(now, Duration::MAX, 1, transient());
        assert_eq!(
            endless.remaining(now + secs(3_600)),
            Some(Duration::MAX - secs(3_600))
        );
    }

    #[test]
    fn a_fresh_token_is_used_until_its_refresh_time() {
        let now = Instant::now();
        let (state, generation) = holding(now);
        let Decision::Use(lease) = state.decide(now + secs(239)) else {
            panic!("a fresh token is used");
        };
        assert_eq!(lease.generation, generation);
        assert!(!lease.refreshed);
        assert!(matches!(state.decide(now + secs(240)), Decision::Launch));
    }

    #[test]
    fn a_state_not_yet_loaded_launches_to_read_the_store() {
        assert!(matches!(
            State::default().decide(Instant::now()),
            Decision::Launch
        ));
    }

    #[test]
    fn a_rejected_token_is_not_sent_again() {
        let now = Instant::now();
        let (mut state, generation) = holding(now);
        assert_eq!(
            state.reject(TokenGeneration(generation.0 - 1), Rejection::Expired),
            Renewal::Renew
        );
        assert!(
            matches!(state.decide(now), Decision::Use(_)),
            "an older 401"
        );
        assert_eq!(state.reject(generation, Rejection::Expired), Renewal::Renew);
        assert!(matches!(state.decide(now), Decision::Launch));
        state.cool_down(Cooldown::new(now, secs(10), 1, transient()));
        let Decision::Fail(Error::RefreshUnavailable { retry_in, .. }) =
            state.decide(now + secs(3))
        else {
            panic!("a rejected token is not served during the cooldown");
        };
        assert_eq!(retry_in, secs(7));
    }

    #[test]
    fn during_a_cooldown_a_valid_token_is_served_and_a_failure_counts_on() {
        let now = Instant::now();
        let (mut state, _) = holding(now);
        assert_eq!(state.next_failure(), 1);
        state.cool_down(Cooldown::new(now + secs(250), secs(10), 1, transient()));
        assert_eq!(state.next_failure(), 2);
        assert!(matches!(state.decide(now + secs(255)), Decision::Use(_)));
        assert!(matches!(state.decide(now + secs(260)), Decision::Launch));
        let (mut state, _) = holding(now);
        state.cool_down(Cooldown::new(now + secs(298), secs(10), 1, transient()));
        assert!(
            matches!(state.decide(now + secs(305)), Decision::Fail(_)),
            "expired during the cooldown"
        );
    }

    #[test]
    fn after_a_failed_landing_a_valid_token_is_still_served() {
        let now = Instant::now();
        let (state, generation) = holding(now);
        let lease = state
            .after_landing(Landing::Failed(transient()), now + secs(250))
            .unwrap();
        assert_eq!(lease.generation, generation);
        assert!(!lease.refreshed);
        assert!(matches!(
            state.after_landing(Landing::Failed(transient()), now + secs(300)),
            Err(Error::RefreshUnavailable { .. })
        ));
        assert!(
            state
                .after_landing(Landing::Refreshed, now)
                .unwrap()
                .refreshed
        );
        assert!(!state.after_landing(Landing::Loaded, now).unwrap().refreshed);
    }

    #[test]
    fn an_ended_session_fails_every_request_until_new_tokens() {
        let now = Instant::now();
        let (mut state, _) = holding(now);
        state.end(Arc::new(RefreshError::NoRefreshToken));
        assert!(matches!(
            state.decide(now),
            Decision::Fail(Error::ReauthenticationRequired { .. })
        ));
        assert!(matches!(
            state.after_landing(Landing::Refreshed, now),
            Err(Error::ReauthenticationRequired { .. })
        ));
        let generation = publish(&mut state, "a2", now, Provenance::Issued);
        assert_eq!(generation.get(), 2);
        assert!(matches!(state.decide(now), Decision::Use(_)));
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused() {
        assert!(authorization(&TokenSet::new("a\nb"), None).is_err());
        let value = authorization(&TokenSet::new("a1"), None).unwrap();
        assert_eq!(value.header, "Bearer a1");
        assert!(value.header.is_sensitive() && value.dpop.is_none());
    }

    #[test]
    fn a_dpop_bound_token_is_presented_with_its_key_only() {
        let tokens = TokenSet::new("a1").with_token_type("DPoP");
        assert!(
            authorization(&tokens, None).is_err(),
            "no key, no DPoP token"
        );
        let key = crate::DpopKey::generate(tessera_core::jose::Algorithm::EdDsa).unwrap();
        let dpop = Dpop::new(key, Arc::new(crate::SystemClock));
        let value = authorization(&tokens, Some(dpop)).unwrap();
        assert_eq!(value.header, "DPoP a1");
        assert!(value.dpop.is_some());
    }

    #[test]
    fn an_unexplained_rejection_refreshes_once_in_a_row() {
        let now = Instant::now();
        let (mut state, first) = holding(now);
        assert_eq!(state.reject(first, Rejection::Unexplained), Renewal::Renew);
        assert!(matches!(state.decide(now), Decision::Launch));

        // The refresh brings a suspect: refused the same way, its answer passes through.
        let second = publish(&mut state, "a2", now, Provenance::Refreshed);
        let Decision::Use(lease) = state.decide(now) else {
            panic!("the new token is used");
        };
        assert!(lease.suspect);
        assert_eq!(
            state.reject(second, Rejection::Unexplained),
            Renewal::PassThrough
        );
        assert!(
            matches!(state.decide(now), Decision::Use(_)),
            "still served: the refusal was not about expiry"
        );
        // An expiry signal still refreshes it.
        assert_eq!(state.reject(second, Rejection::Expired), Renewal::Renew);

        // Once accepted somewhere, a token is no suspect any more.
        let third = publish(&mut state, "a3", now, Provenance::Refreshed);
        assert!(
            !state.current.as_ref().unwrap().suspect,
            "it replaced an expired token"
        );
        assert_eq!(state.reject(third, Rejection::Unexplained), Renewal::Renew);
        let fourth = publish(&mut state, "a4", now, Provenance::Refreshed);
        state.vouch(TokenGeneration(fourth.0 - 1));
        assert!(
            state.current.as_ref().unwrap().suspect,
            "vouching for another token changes nothing"
        );
        state.vouch(fourth);
        assert_eq!(state.reject(fourth, Rejection::Unexplained), Renewal::Renew);

        // Tokens handed over by the application are never suspects.
        let fifth = publish(&mut state, "a5", now, Provenance::Issued);
        assert_eq!(state.reject(fifth, Rejection::Unexplained), Renewal::Renew);
        publish(&mut state, "a6", now, Provenance::Issued);
        assert!(!state.current.as_ref().unwrap().suspect);
    }

    #[test]
    fn a_hold_reports_the_wait_without_counting_a_failure() {
        let now = Instant::now();
        let (mut state, generation) = holding(now);
        state.cool_down(Cooldown::new(now, secs(1), 1, transient()));
        state.hold(now, secs(20), transient());
        assert_eq!(state.next_failure(), 2, "the hold did not count");
        assert!(
            state
                .after_landing(Landing::Failed(transient()), now + secs(5))
                .is_ok(),
            "the valid token is served during the hold"
        );
        state.reject(generation, Rejection::Expired);
        let Err(Error::RefreshUnavailable { retry_in, .. }) =
            state.after_landing(Landing::Failed(transient()), now + secs(5))
        else {
            panic!("a rejected token is not served during the hold");
        };
        assert_eq!(retry_in, secs(15));
    }
}
