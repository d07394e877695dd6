//! Single flight: one refresh at a time, shared by every request that needs it.
//!
//! A refresh runs as its own tokio task, so that it completes and persists the rotated pair even if every
//! request waiting for it is cancelled. Its [`Landing`] is broadcast on a `watch` channel: every waiter,
//! however late it joined, sees the same one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

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

/// How a flight ended, as every waiter sees it.
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

/// A refresh in the air: what its waiters hold.
#[derive(Clone)]
pub(crate) struct Flight(watch::Receiver<Option<Landing>>);

impl Flight {
    /// Spawns `refresh` on the current tokio runtime, inside `span` and marked as a refresh
    /// ([`inside_refresh`]), and broadcasts its landing; `None` outside a runtime.
    ///
    /// A `refresh` that never lands (it panicked) lands as `abandoned` says, so that no waiter, now or
    /// later, is left holding a flight that will never come down.
    pub(crate) fn launch(
        refresh: impl Future<Output = Landing> + Send + 'static,
        abandoned: impl FnOnce(JoinError) -> Landing + Send + 'static,
        span: Span,
    ) -> Option<Flight> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, receiver) = watch::channel(None);
        let refresh = runtime.spawn(REFRESHING.scope((), refresh).instrument(span.clone()));
        runtime.spawn(
            async move {
                let landing = refresh.await.unwrap_or_else(abandoned);
                // Waiters may all be gone; the state is already updated for whoever comes next.
                let _ = sender.send(Some(landing));
            }
            .instrument(span),
        );
        Some(Flight(receiver))
    }

    /// Waits for the landing. A flight whose task was dropped without landing (the runtime shut down)
    /// counts as a transient failure.
    pub(crate) async fn landing(mut self) -> Landing {
        match self.0.wait_for(Option::is_some).await {
            Ok(landing) => landing.clone().unwrap_or(Landing::Refreshed),
            Err(_) => Landing::Failed(Failure::Transient(Arc::new(RefreshError::Other(
                "the refresh task ended without an answer".into(),
            )))),
        }
    }
}
