//! A flight's token requests, and what it does when one that presented the refresh token gets no usable
//! answer.
//!
//! Such a request may have been served: the token endpoint may have rotated the refresh token and lost
//! the answer on the way back. Presenting that token again after the service's grace window would look
//! like a stolen token being replayed, and revoke the whole session. So the flight:
//!
//! 1. keeps waiting for the late answer (a timed-out request is not dropped);
//! 2. presents the refresh token once more, while a retry still reaches the service inside the grace
//!    window ([`RefreshPolicy::retry_by`](super::schedule::RefreshPolicy::retry_by)): the service answers
//!    it with the successor it already issued;
//! 3. never presents it after that: it waits a while longer for a late answer to either request, then
//!    gives the session up ([`RefreshError::OutcomeUnknown`]).
//!
//! Meanwhile the flight releases its waiters (the current token is served while valid) and stays the one
//! flight, so no other refresh can present the token.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::{self, BoxFuture, Either};
use futures_util::stream::FuturesUnordered;
use tracing::{debug, warn};

use super::flight::{Beacon, Failure, Landing};
use super::lease::Session;
use super::schedule::{self, LATE_ANSWER_WAIT};
use crate::dpop::Dpop;
use crate::{RefreshContext, RefreshError, RefreshToken, TokenSet};

/// One token request, made into the next token set.
type Attempt = BoxFuture<'static, Result<TokenSet, RefreshError>>;

/// What is known of the requests that presented the refresh token.
struct Doubt {
    /// Requests still waiting for an answer.
    pending: FuturesUnordered<Attempt>,
    /// Whether a finished request may have been served.
    served: bool,
    /// The newest failure, for the waiters and the final error.
    last: Arc<RefreshError>,
}

impl Doubt {
    fn new(error: RefreshError, pending: Option<Attempt>) -> Self {
        Doubt {
            served: error.leaves_doubt() && pending.is_none(),
            pending: pending.into_iter().collect(),
            last: Arc::new(error),
        }
    }

    /// Takes one request's answer into account; `Some` once the exchange is decided: new tokens, the
    /// service's final word, or a failure that served nothing while nothing else is in doubt.
    fn take(
        &mut self,
        answer: Result<TokenSet, RefreshError>,
    ) -> Option<Result<TokenSet, RefreshError>> {
        let error = match answer {
            Ok(tokens) => return Some(Ok(tokens)),
            Err(error) if error.is_terminal() => return Some(Err(error)),
            Err(error) => error,
        };
        self.served |= error.leaves_doubt();
        if !self.served && self.pending.is_empty() {
            return Some(Err(error));
        }
        self.last = Arc::new(error);
        None
    }
}

impl Session {
    /// Asks the refresher for new tokens under the refresh timeout, and settles any doubt the answer
    /// leaves about the refresh token (see the module documentation).
    pub(super) async fn exchange(
        self: &Arc<Self>,
        beacon: &Beacon,
    ) -> Result<TokenSet, RefreshError> {
        let (previous, dpop) = {
            let state = self.lock();
            (state.refresh_token(), self.dpop_for(state.tokens()))
        };
        debug!(
            has_refresh_token = previous.is_some(),
            dpop = dpop.is_some(),
            "calling the token endpoint"
        );
        let sent = self.clock.monotonic();
        let timeout = self.policy.timeout;
        let mut first = self.attempt(previous.clone(), dpop.clone());
        let doubt = match future::select(&mut first, self.clock.sleep(timeout)).await {
            Either::Left((answer, _)) => match answer {
                Err(error) if previous.is_some() && error.leaves_doubt() => Doubt::new(error, None),
                answer => return answer,
            },
            // Without a refresh token nothing can be lost: the request is dropped.
            Either::Right(((), _)) if previous.is_none() => {
                return Err(RefreshError::TimedOut(timeout));
            }
            Either::Right(((), _)) => Doubt::new(RefreshError::TimedOut(timeout), Some(first)),
        };
        self.settle(beacon, doubt, sent, previous, dpop).await
    }

    /// The request sent at `sent` left it unknown whether the refresh token was spent.
    async fn settle(
        self: &Arc<Self>,
        beacon: &Beacon,
        mut doubt: Doubt,
        sent: Instant,
        previous: Option<RefreshToken>,
        dpop: Option<Dpop>,
    ) -> Result<TokenSet, RefreshError> {
        if let Some(retry_by) = self.policy.retry_by(sent) {
            let left = retry_by.saturating_duration_since(self.clock.monotonic());
            // With a request still out, its answer is awaited as long as a retry would still arrive in
            // time; without one, the retry waits out the first backoff, but no longer.
            let wait = if doubt.pending.is_empty() {
                self.policy
                    .retry_delay(1, None, schedule::random_fraction())
                    .min(left)
            } else {
                left
            };
            warn!(
                error = %doubt.last,
                retry_in = ?wait,
                "the token request got no usable answer and may have rotated the refresh token; presenting it once more inside the grace window"
            );
            self.release(beacon, &doubt, wait);
            if let Some(decided) = self.await_answers(&mut doubt, wait).await {
                return decided;
            }
            beacon.rearm();
            debug!("presenting the refresh token once more");
            doubt.pending.push(self.attempt(previous, dpop));
            if let Some(decided) = self.await_answers(&mut doubt, self.policy.timeout).await {
                return decided;
            }
        }
        if !doubt.pending.is_empty() {
            warn!(
                error = %doubt.last,
                wait = ?LATE_ANSWER_WAIT,
                "the refresh token may have been rotated and is not presented again; waiting for a late answer"
            );
            self.release(beacon, &doubt, LATE_ANSWER_WAIT);
            if let Some(decided) = self.await_answers(&mut doubt, LATE_ANSWER_WAIT).await {
                return decided;
            }
        }
        Err(RefreshError::OutcomeUnknown { last: doubt.last })
    }

    /// Waits up to `within` for the pending requests' answers; `Some` once one decides the exchange.
    async fn await_answers(
        &self,
        doubt: &mut Doubt,
        within: Duration,
    ) -> Option<Result<TokenSet, RefreshError>> {
        let mut timer = self.clock.sleep(within);
        loop {
            if doubt.pending.is_empty() {
                timer.await;
                return None;
            }
            match future::select(pin!(doubt.pending.next()), &mut timer).await {
                Either::Left((Some(answer), _)) => {
                    if let Some(decided) = doubt.take(answer) {
                        return Some(decided);
                    }
                }
                Either::Left((None, _)) => {}
                Either::Right(((), _)) => return None,
            }
        }
    }

    /// Lets the flight's waiters go on with the newest failure while it goes on, for `next_in`.
    fn release(&self, beacon: &Beacon, doubt: &Doubt, next_in: Duration) {
        let failure = Failure::Transient(Arc::clone(&doubt.last));
        self.lock()
            .hold(self.clock.monotonic(), next_in, failure.clone());
        beacon.release(Landing::Failed(failure));
    }

    /// One call of the refresher presenting `previous`, its answer made into a token set that keeps the
    /// old refresh token when none came back and is bound to the DPoP key that signed the proof.
    fn attempt(self: &Arc<Self>, previous: Option<RefreshToken>, dpop: Option<Dpop>) -> Attempt {
        let session = Arc::clone(self);
        Box::pin(async move {
            let mut context = RefreshContext::new(previous.clone(), session.clock.now());
            if let Some(dpop) = &dpop {
                context = context.with_dpop(dpop.clone());
            }
            let response = session.refresher.refresh(context).await?;
            let mut tokens = TokenSet::from_response(response, session.clock.now());
            tokens.keep_refresh_token_from(previous.as_ref());
            if let Some(dpop) = dpop
                && tokens.dpop_key().is_none()
            {
                tokens = tokens.with_dpop_key(dpop.key().clone());
            }
            Ok(tokens)
        })
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn unavailable(status: StatusCode) -> RefreshError {
        RefreshError::Unavailable {
            status,
            response: None,
            retry_after: None,
        }
    }

    fn pending() -> Attempt {
        Box::pin(future::pending())
    }

    #[test]
    fn an_answer_that_served_nothing_decides_only_when_nothing_else_is_in_doubt() {
        // The timed-out request's late answer, taken out of the pending ones: a 503 says it was never
        // served.
        let mut doubt = Doubt {
            pending: FuturesUnordered::new(),
            served: false,
            last: Arc::new(RefreshError::TimedOut(Duration::from_secs(5))),
        };
        assert!(matches!(
            doubt.take(Err(unavailable(StatusCode::SERVICE_UNAVAILABLE))),
            Some(Err(RefreshError::Unavailable { .. }))
        ));

        // A request may have been served (a 502): a 503 for the retry decides nothing.
        let mut doubt = Doubt::new(unavailable(StatusCode::BAD_GATEWAY), None);
        assert!(doubt.served);
        assert!(
            doubt
                .take(Err(unavailable(StatusCode::SERVICE_UNAVAILABLE)))
                .is_none()
        );
        assert!(
            matches!(*doubt.last, RefreshError::Unavailable { status, .. } if status == StatusCode::SERVICE_UNAVAILABLE)
        );

        // Another request still out: a 503 decides nothing either.
        let mut doubt = Doubt::new(
            RefreshError::TimedOut(Duration::from_secs(5)),
            Some(pending()),
        );
        assert!(!doubt.served);
        assert!(
            doubt
                .take(Err(unavailable(StatusCode::SERVICE_UNAVAILABLE)))
                .is_none()
        );
    }

    #[test]
    fn tokens_and_the_services_final_word_decide_at_once() {
        let mut doubt = Doubt::new(unavailable(StatusCode::BAD_GATEWAY), Some(pending()));
        assert!(matches!(doubt.take(Ok(TokenSet::new("a"))), Some(Ok(_))));
        assert!(matches!(
            doubt.take(Err(RefreshError::NoRefreshToken)),
            Some(Err(RefreshError::NoRefreshToken))
        ));
        assert!(
            doubt
                .take(Err(RefreshError::TimedOut(Duration::from_secs(1))))
                .is_none()
        );
        assert!(doubt.served);
    }
}
