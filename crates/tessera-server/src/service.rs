//! The middleware service and its response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project::pin_project;
use tower::Service;

use crate::layer::{Anonymous, Step};
use crate::{JwtAuthLayer, VerifiedToken};

/// The middleware [`JwtAuthLayer`] wraps a service in. See the [crate documentation](crate).
#[derive(Clone)]
pub struct JwtAuth<S> {
    inner: S,
    layer: JwtAuthLayer,
}

impl<S> JwtAuth<S> {
    /// Wraps `inner`; usually done by [`JwtAuthLayer`] through `ServiceBuilder` or `Router::layer`.
    pub fn new(inner: S, layer: JwtAuthLayer) -> JwtAuth<S> {
        JwtAuth { inner, layer }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let core = &self.layer.core;
        let step = core.authenticate(
            &self.layer.policy,
            request.headers(),
            request.uri(),
            request.extensions(),
        );
        match step {
            Step::Pass(Some(verified)) => {
                core.admitted();
                request.extensions_mut().insert(verified);
                ResponseFuture::inner(self.inner.call(request))
            }
            Step::AlreadyVerified => ResponseFuture::inner(self.inner.call(request)),
            Step::Pass(None) => {
                request.extensions_mut().insert(Anonymous);
                ResponseFuture::inner(self.inner.call(request))
            }
            Step::Reject(rejection) => ResponseFuture::ready(Ok(core.reject(&rejection))),
            Step::CheckRevocation(verified) => {
                self.deferred(request, Pending::Revocation(verified))
            }
            #[cfg(feature = "remote-jwks")]
            Step::RefetchKeys(token) => self.deferred(request, Pending::Refetch(token)),
        }
    }
}

impl<S> JwtAuth<S> {
    /// The slow path: a key refetch and/or the revocation check has to be awaited first. The inner service
    /// that `poll_ready` readied moves into the future; a fresh clone takes its place.
    fn deferred<ReqBody, ResBody>(
        &mut self,
        mut request: Request<ReqBody>,
        pending: Pending,
    ) -> ResponseFuture<S::Future>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: From<Bytes> + Send + 'static,
    {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        ResponseFuture::deferred(Box::pin(async move {
            let core = &layer.core;
            let verified = match pending {
                Pending::Revocation(verified) => Ok(verified),
                #[cfg(feature = "remote-jwks")]
                Pending::Refetch(token) => core.verify_after_refetch(&token).await,
            };
            let checked = match verified {
                Ok(verified) => core
                    .check_revocation(&layer.policy, &verified)
                    .await
                    .map(|()| verified),
                Err(rejection) => Err(rejection),
            };
            match checked {
                Ok(verified) => {
                    core.admitted();
                    request.extensions_mut().insert(verified);
                    inner.call(request).await
                }
                Err(rejection) => Ok(core.reject(&rejection)),
            }
        }))
    }
}

impl<S: fmt::Debug> fmt::Debug for JwtAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

/// What the slow path has to wait for.
enum Pending {
    /// The token verified; the revocation check remains.
    Revocation(VerifiedToken),
    /// The token's `kid` is unknown; refetch the remote key set, then verify it again.
    #[cfg(feature = "remote-jwks")]
    Refetch(String),
}

type Deferred<O> = Pin<Box<dyn Future<Output = O> + Send>>;

/// The response future of [`JwtAuth`].
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
    fn inner(future: F) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    fn ready(output: F::Output) -> Self {
        ResponseFuture {
            state: State::Ready {
                output: Some(output),
            },
        }
    }

    fn deferred(future: Deferred<F::Output>) -> Self {
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
