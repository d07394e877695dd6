//! Single flight: one refresh at a time, shared by every request that needs it.
//!
//! A refresh runs as its own tokio task, so that it completes and persists the rotated pair even if every
//! request waiting for it is cancelled. Its progress is broadcast on a `watch` channel: every waiter,
//! however late it joined, sees the same [`Phase`].
//!
//! A flight may *release* its waiters before it lands: when a token request got no answer in time, the
//! flight goes on waiting for a late answer (the token endpoint may have rotated the refresh token), and
//! meanwhile requests are served the current token if it is still valid, or told to retry. It stays the
//! one flight: no second refresh can start and present the same refresh token.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{self, Either};
use tokio::sync::watch;
use tokio::task::JoinError;
use tracing::{Instrument, Span};

use crate::{Error, RefreshError, StoreError};

tokio::task_local! {
    /// Set while a refresher runs: a token request made through a client carrying this middleware is sent
    /// untouched instead of waiting for the very refresh it belongs to.
    static REFRESHING: ();
}

/// Whether the current task is a refresh.
pub(crate) fn inside_refresh() -> bool {
    REFRESHING.try_with(|()| ()).is_ok()
}

/// How a flight ended (or where it released its waiters), as every waiter sees it.
#[derive(Clone)]
pub(crate) enum Landing {
    Refreshed,
    /// The store already held a fresh token: nothing was refreshed.
    Loaded,
    Failed(Failure),
}

#[derive(Clone)]
pub(crate) enum Failure {
    /// The session is over: sign in again.
    Terminal(Arc<RefreshError>),
    /// Worth retrying after a backoff.
    Transient(Arc<RefreshError>),
    /// The store (or the `on_tokens_changed` hook) refused.
    Store(Arc<StoreError>),
}

impl Failure {
    pub(crate) fn into_error(self, retry_in: Duration) -> Error {
        match self {
            Failure::Terminal(source) => Error::ReauthenticationRequired { source },
            Failure::Transient(source) => Error::RefreshUnavailable { source, retry_in },
            Failure::Store(source) => Error::TokenStore { source },
        }
    }

    /// How long the token endpoint asked to be left alone, if it said.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Transient(error) => error.retry_after(),
            Failure::Terminal(_) | Failure::Store(_) => None,
        }
    }
}

/// Where a flight is.
#[derive(Clone)]
enum Phase {
    /// Waiters wait.
    Flying,
    /// Waiters go on with this (a failure) while the flight goes on.
    Released(Landing),
    /// Over.
    Landed(Landing),
}

/// A refresh in the air: what its waiters hold.
#[derive(Clone)]
pub(crate) struct Flight {
    phase: watch::Receiver<Phase>,
    cancel: Arc<watch::Sender<bool>>,
}

/// The flight's own side: how the refresh tells its waiters where it is, and learns it was superseded.
pub(crate) struct Beacon {
    phase: watch::Sender<Phase>,
    cancel: watch::Receiver<bool>,
}

impl Beacon {
    /// Lets every present and future waiter go on with `landing` while the flight goes on.
    pub(crate) fn release(&self, landing: Landing) {
        self.phase.send_replace(Phase::Released(landing));
    }

    /// Makes waiters wait again (the flight is about to send another token request).
    pub(crate) fn rearm(&self) {
        self.phase.send_replace(Phase::Flying);
    }

    /// Runs `work` unless the tokens the flight works for are replaced or cleared first; `None` then.
    pub(crate) async fn unless_superseded<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut cancel = self.cancel.clone();
        let superseded = async move {
            // The sender lives in every `Flight` clone; if all are gone, nobody can supersede.
            if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
                future::pending::<()>().await;
            }
        };
        match future::select(pin!(work), pin!(superseded)).await {
            Either::Left((done, _)) => Some(done),
            Either::Right(((), _)) => None,
        }
    }
}

impl Flight {
    /// Spawns `refresh` on the current tokio runtime, inside `span` and marked as a refresh
    /// ([`inside_refresh`]), and broadcasts its landing; `None` outside a runtime.
    ///
    /// The refresh learns through its [`Beacon`] when it is [superseded](Flight::supersede). A `refresh`
    /// that never lands (it panicked) lands as `abandoned` says, so that no waiter, now or later, is left
    /// holding a flight that will never come down.
    pub(crate) fn launch<R, F>(
        refresh: R,
        abandoned: impl FnOnce(JoinError) -> Landing + Send + 'static,
        span: Span,
    ) -> Option<Flight>
    where
        R: FnOnce(Beacon) -> F,
        F: Future<Output = Landing> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (phase, receiver) = watch::channel(Phase::Flying);
        let (cancel, cancelled) = watch::channel(false);
        let beacon = Beacon {
            phase: phase.clone(),
            cancel: cancelled,
        };
        let refresh = runtime.spawn(
            REFRESHING
                .scope((), refresh(beacon))
                .instrument(span.clone()),
        );
        runtime.spawn(
            async move {
                let landing = refresh.await.unwrap_or_else(abandoned);
                // Waiters may all be gone; the state is already updated for whoever comes next.
                phase.send_replace(Phase::Landed(landing));
            }
            .instrument(span),
        );
        Some(Flight {
            phase: receiver,
            cancel: Arc::new(cancel),
        })
    }

    /// Waits until the flight lands or releases its waiters. A flight whose task was dropped without
    /// landing (the runtime shut down) counts as a transient failure.
    pub(crate) async fn landing(mut self) -> Landing {
        let phase = self
            .phase
            .wait_for(|phase| !matches!(phase, Phase::Flying))
            .await;
        match phase.as_deref() {
            Ok(Phase::Released(landing) | Phase::Landed(landing)) => landing.clone(),
            Ok(Phase::Flying) | Err(_) => dropped(),
        }
    }

    /// Waits until the flight is over, past any release.
    pub(crate) async fn finished(mut self) -> Landing {
        let phase = self
            .phase
            .wait_for(|phase| matches!(phase, Phase::Landed(_)))
            .await;
        match phase.as_deref() {
            Ok(Phase::Landed(landing)) => landing.clone(),
            Ok(_) | Err(_) => dropped(),
        }
    }

    /// Stops the flight: the tokens it works for were replaced or cleared.
    pub(crate) fn supersede(&self) {
        self.cancel.send_replace(true);
    }
}

fn dropped() -> Landing {
    Landing::Failed(Failure::Transient(Arc::new(RefreshError::Other(
        "the refresh task ended without an answer".into(),
    ))))
}
