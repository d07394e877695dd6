//! The middleware service: authenticates each request, then calls the inner service or answers itself.

use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::future::ResponseFuture;
use super::pipeline::{Pending, Step};
use crate::JwtAuthLayer;
use crate::extract::Anonymous;
use crate::rejection::DPOP_NONCE;

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
        let pipeline = &self.layer.pipeline;
        let step = pipeline.request(
            &self.layer.policy,
            request.method(),
            request.headers(),
            request.uri(),
            request.extensions(),
        );
        match step {
            Step::Admit(token) => {
                pipeline.responder.admitted();
                request.extensions_mut().insert(token);
                ResponseFuture::inner(self.inner.call(request))
            }
            // Once per nonce rotation for a client: boxed, so that the common answers need no room for it.
            Step::AdmitWithNonce(token, nonce) => {
                pipeline.responder.admitted();
                request.extensions_mut().insert(token);
                let answer = self.inner.call(request);
                ResponseFuture::deferred(Box::pin(async move {
                    let mut response = answer.await?;
                    response.headers_mut().insert(DPOP_NONCE, *nonce);
                    Ok(response)
                }))
            }
            Step::AlreadyVerified => ResponseFuture::inner(self.inner.call(request)),
            Step::Anonymous => {
                request
                    .extensions_mut()
                    .insert(Anonymous(pipeline.responder.clone()));
                ResponseFuture::inner(self.inner.call(request))
            }
            Step::Refuse(rejection, scheme) => {
                ResponseFuture::ready(Ok(pipeline.responder.reject(&rejection, scheme)))
            }
            Step::Wait(pending) => self.deferred(request, pending),
        }
    }
}

impl<S> JwtAuth<S> {
    /// The slow path: a key refetch or a revocation lookup has to be awaited first. The inner service that
    /// `poll_ready` readied moves into the future; a fresh clone takes its place.
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
        let (scheme, nonce) = (pending.scheme(), pending.fresh_nonce());
        ResponseFuture::deferred(Box::pin(async move {
            let pipeline = &layer.pipeline;
            match pipeline.resume(&layer.policy, pending).await {
                Ok(token) => {
                    pipeline.responder.admitted();
                    request.extensions_mut().insert(token);
                    let mut response = inner.call(request).await?;
                    if let Some(nonce) = nonce {
                        response.headers_mut().insert(DPOP_NONCE, nonce);
                    }
                    Ok(response)
                }
                Err(rejection) => Ok(pipeline.responder.reject(&rejection, scheme)),
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
