//! The reqwest-middleware: attach, refresh once, replay once. Control flow only: which requests get a token
//! is [`Origin`]'s and [`SkipAuth`]'s call, what an answer says about the token is [`verdict`]'s, and when
//! and how tokens are refreshed is the [`Session`]'s.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use tracing::debug;

use crate::challenge::{Verdict, verdict};
use crate::dpop::{DPOP, DPOP_SCHEME};
use crate::extensions::{AuthOutcome, SkipAuth, TokenGeneration};
use crate::origin::Origin;
use crate::session::{self, Lease, Session};
use crate::{AuthMiddlewareBuilder, Error, Refresher, StoreError, TokenSet};

/// A reqwest-middleware that sends an access token to the allowed origins (as a bearer token, or DPoP-bound
/// with a fresh proof per request), refreshes it before it expires or when the API says it expired (one
/// token request for all concurrent callers), and replays the rejected request once.
///
/// Cloning is cheap and shares the tokens: keep a clone to call [`set_tokens`](AuthMiddleware::set_tokens)
/// after a login. See the [crate documentation](crate) for the full behaviour and an example.
#[derive(Clone)]
pub struct AuthMiddleware {
    session: Arc<Session>,
    origins: Arc<[Origin]>,
}

impl AuthMiddleware {
    /// Starts a builder around `refresher`, e.g. a [`RefreshTokenGrant`](crate::RefreshTokenGrant).
    pub fn builder(refresher: impl Refresher) -> AuthMiddlewareBuilder {
        AuthMiddlewareBuilder::new(Box::new(refresher))
    }

    pub(crate) fn new(session: Session, origins: Arc<[Origin]>) -> Self {
        AuthMiddleware {
            session: Arc::new(session),
            origins,
        }
    }

    /// Replaces the tokens, e.g. with a login answer. They are saved to the store and passed to
    /// `on_tokens_changed` before any request uses them; a session that had ended starts again, and a
    /// refresh in flight is abandoned. With DPoP on, tokens not bound to a key are bound to the configured
    /// one: sign the login's proof with it (see [`AuthMiddleware::dpop`]).
    pub async fn set_tokens(&self, tokens: TokenSet) -> Result<TokenGeneration, Error> {
        self.session.set_tokens(tokens).await
    }

    /// Forgets the tokens here and in the store (a logout). The next request asks the refresher afresh.
    pub async fn clear(&self) -> Result<(), StoreError> {
        self.session.clear().await
    }

    /// The generation of the current access token, if there is one. Tokens in the store are loaded on the
    /// first request, so this is `None` until then unless [`set_tokens`](AuthMiddleware::set_tokens) ran.
    pub fn generation(&self) -> Option<TokenGeneration> {
        self.session.generation()
    }

    /// A copy of the current tokens, if any (e.g. for a backend-for-frontend to update its session); like
    /// [`generation`](AuthMiddleware::generation), `None` before the store was read on the first request.
    pub fn tokens(&self) -> Option<TokenSet> {
        self.session.tokens()
    }

    /// With DPoP on, what signs proofs: the key the current tokens are bound to (or the configured key),
    /// sharing the nonces this middleware learnt. Use it for requests the middleware does not make, such as
    /// the login that obtains the first tokens (see the crate documentation's DPoP section).
    pub fn dpop(&self) -> Option<crate::Dpop> {
        self.session.dpop()
    }

    fn allows(&self, url: &Url) -> bool {
        self.origins.iter().any(|origin| origin.matches(url))
    }

    /// Whether `request` gets a token: not opted out, not the token request of a refresh, not already
    /// authorized, and bound for an allowed origin.
    fn attaches(&self, request: &Request, extensions: &Extensions) -> bool {
        extensions.get::<SkipAuth>().is_none()
            && !session::inside_refresh()
            && !request.headers().contains_key(AUTHORIZATION)
            && self.allows(request.url())
    }

    /// Sends `request` with `lease`'s token (and, DPoP-bound, a fresh proof). An answer asking for a DPoP
    /// nonce is retried once, with a new proof carrying it, if the body can be sent again. Also hands back
    /// a copy of the request for a replay, if the body allows one.
    async fn send(
        &self,
        mut request: Request,
        lease: &Lease,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<(Response, Option<Request>)> {
        let spare = request.try_clone();
        self.authorize(&mut request, lease)
            .map_err(reqwest_middleware::Error::middleware)?;
        let response = next.clone().run(request, extensions).await?;
        let Some(bound) = &lease.dpop else {
            return Ok((response, spare));
        };
        if !self.allows(response.url()) {
            return Ok((response, spare));
        }
        let fresh_nonce = bound.remember_nonce(response.url(), response.headers());
        let asks_for_nonce =
            verdict(response.status(), response.headers(), DPOP_SCHEME) == Verdict::UseDpopNonce;
        if !(fresh_nonce && asks_for_nonce) {
            return Ok((response, spare));
        }
        let Some(mut again) = spare else {
            return Ok((response, None));
        };
        debug!("the resource server asked for a DPoP nonce; sending again with it");
        let spare = again.try_clone();
        self.authorize(&mut again, lease)
            .map_err(reqwest_middleware::Error::middleware)?;
        let response = next.run(again, extensions).await?;
        bound.remember_nonce(response.url(), response.headers());
        Ok((response, spare))
    }

    /// Puts `lease`'s `Authorization` (and `DPoP` proof) on `request`.
    fn authorize(&self, request: &mut Request, lease: &Lease) -> Result<(), Error> {
        if let Some(bound) = &lease.dpop {
            let proof = bound
                .proof(request.method(), request.url())
                .map_err(Error::Dpop)?;
            request.headers_mut().insert(DPOP, proof);
        }
        request
            .headers_mut()
            .insert(AUTHORIZATION, lease.authorization.clone());
        Ok(())
    }

    fn scheme(lease: &Lease) -> &'static str {
        if lease.dpop.is_some() {
            DPOP_SCHEME
        } else {
            tessera_core::BEARER
        }
    }
}

impl fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("origins", &self.origins)
            .field("store", &self.session.persistence.store)
            .field("policy", &self.session.policy)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.attaches(&request, extensions) {
            let mut response = next.run(request, extensions).await?;
            response.extensions_mut().insert(AuthOutcome::NOT_ATTACHED);
            return Ok(response);
        }

        let lease = self
            .session
            .lease()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let (mut response, replay) = self.send(request, &lease, extensions, next.clone()).await?;
        let outcome = AuthOutcome {
            generation: Some(lease.generation),
            refreshed: lease.refreshed,
            replayed: false,
        };

        // Only an answer from an origin that received the token can refuse it: after a redirect elsewhere,
        // reqwest has already dropped the header.
        let refused = match verdict(response.status(), response.headers(), Self::scheme(&lease)) {
            Verdict::Refused(why) if self.allows(response.url()) => why,
            _ => {
                if lease.suspect && response.status() != http::StatusCode::UNAUTHORIZED {
                    self.session.vouch(lease.generation);
                }
                response.extensions_mut().insert(outcome);
                return Ok(response);
            }
        };

        // At most one replay per request: the renewed lease is used whatever the replay's answer.
        let renewed = self
            .session
            .renew(lease.generation, refused)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let Some(renewed) = renewed else {
            response.extensions_mut().insert(outcome);
            return Ok(response);
        };
        let Some(replay) = replay else {
            debug!(
                generation = renewed.generation.get(),
                "token renewed, but a streaming body cannot be replayed"
            );
            return Err(reqwest_middleware::Error::middleware(
                Error::BodyNotReplayable {
                    response: Box::new(response),
                },
            ));
        };
        debug!(
            from = lease.generation.get(),
            to = renewed.generation.get(),
            "replaying the request with a newer token"
        );
        let (mut response, _) = self.send(replay, &renewed, extensions, next).await?;
        if renewed.suspect && response.status() != http::StatusCode::UNAUTHORIZED {
            self.session.vouch(renewed.generation);
        }
        response.extensions_mut().insert(AuthOutcome {
            generation: Some(renewed.generation),
            refreshed: lease.refreshed || renewed.refreshed,
            replayed: true,
        });
        Ok(response)
    }
}
