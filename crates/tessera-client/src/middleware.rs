//! The reqwest-middleware: attach, refresh once, replay once. Control flow only: which requests get a token
//! is [`Origin`]'s and [`SkipAuth`]'s call, which answers ask for a new one is
//! [`asks_for_new_token`]'s, and when and how tokens are refreshed is the [`Session`]'s.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use tracing::debug;

use crate::challenge::asks_for_new_token;
use crate::extensions::{AuthOutcome, SkipAuth, TokenGeneration};
use crate::origin::Origin;
use crate::session::{self, Session};
use crate::{AuthMiddlewareBuilder, Error, Refresher, StoreError, TokenSet};

/// A reqwest-middleware that sends a bearer access token to the allowed origins, refreshes it before it
/// expires or when the API says it expired (one token request for all concurrent callers), and replays the
/// rejected request once.
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
    /// `on_tokens_changed` before any request uses them; a session that had ended starts again.
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
        mut request: Request,
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
        request
            .headers_mut()
            .insert(AUTHORIZATION, lease.authorization.clone());
        let replay = request.try_clone();
        let mut response = next.clone().run(request, extensions).await?;

        // Only an answer from an origin that received the token can say the token expired: after a redirect
        // elsewhere, reqwest has already dropped the header.
        if !asks_for_new_token(response.status(), response.headers())
            || !self.allows(response.url())
        {
            response.extensions_mut().insert(AuthOutcome {
                generation: Some(lease.generation),
                refreshed: lease.refreshed,
                replayed: false,
            });
            return Ok(response);
        }

        // At most one replay per request: the renewed lease is used whatever the replay's answer.
        let renewed = self
            .session
            .renew(lease.generation)
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let Some(mut replay) = replay else {
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
        replay
            .headers_mut()
            .insert(AUTHORIZATION, renewed.authorization.clone());
        let mut response = next.run(replay, extensions).await?;
        response.extensions_mut().insert(AuthOutcome {
            generation: Some(renewed.generation),
            refreshed: lease.refreshed || renewed.refreshed,
            replayed: true,
        });
        Ok(response)
    }
}
