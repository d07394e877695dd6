//! The response future of [`JwtAuth`](crate::JwtAuth).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project::pin_project;

type Deferred<O> = Pin<Box<dyn Future<Output = O> + Send>>;

/// The response future of [`JwtAuth`](crate::JwtAuth): the inner service's own future when the request was
/// decided without waiting (the common case, nothing boxed), the rendered rejection, or a boxed future for
/// a request that waits on a key refetch or a revocation lookup.
#[pin_project]
pub struct ResponseFuture<F: Future> {
    #[pin]
    state: State<F>,
}

#[pin_project(project = StateProj)]
enum State<F: Future> {
    /// Authenticated synchronously: the inner service's future.
    Inner {
        #[pin]
        future: F,
    },
    /// Refused synchronously: the rendered rejection.
    Ready { output: Option<F::Output> },
    /// Waiting on a key refetch or the revocation check, then on the inner service.
    Deferred { future: Deferred<F::Output> },
}

impl<F: Future> ResponseFuture<F> {
    pub(super) fn inner(future: F) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    pub(super) fn ready(output: F::Output) -> Self {
        ResponseFuture {
            state: State::Ready {
                output: Some(output),
            },
        }
    }

    pub(super) fn deferred(future: Deferred<F::Output>) -> Self {
        ResponseFuture {
            state: State::Deferred { future },
        }
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Ready { output } => {
                Poll::Ready(output.take().expect("future polled after completion"))
            }
            StateProj::Deferred { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F: Future> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "Inner",
            State::Ready { .. } => "Ready",
            State::Deferred { .. } => "Deferred",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
