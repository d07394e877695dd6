//! The reqwest-middleware: attach, refresh once, replay once.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest::{Request, Response, Url};
use reqwest_middleware::{Middleware, Next};
use tracing::debug;

use crate::challenge::asks_for_new_token;
use crate::error::BuildError;
use crate::extensions::{AuthOutcome, SkipAuth, TokenGeneration};
use crate::origin::Origin;
use crate::session::{self, RefreshPolicy, Session};
use crate::{
    Clock, Error, MemoryTokenStore, RefreshError, Refresher, StoreError, SystemClock, TokenSet,
    TokenStore,
};

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
        AuthMiddlewareBuilder {
            refresher: Box::new(refresher),
            origins: Vec::new(),
            store: None,
            on_tokens_changed: None,
            on_session_expired: None,
            clock: None,
            policy: RefreshPolicy {
                skew: Duration::from_secs(60),
                skew_jitter: 0.2,
                timeout: Duration::from_secs(5),
                backoff_base: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                max_lifetime: None,
                background: false,
            },
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
}

impl fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("origins", &self.origins)
            .field("store", &self.session.store)
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
        if extensions.get::<SkipAuth>().is_some()
            || session::inside_refresh()
            || request.headers().contains_key(AUTHORIZATION)
            || !self.allows(request.url())
        {
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

/// Configures an [`AuthMiddleware`]; made by [`AuthMiddleware::builder`].
pub struct AuthMiddlewareBuilder {
    refresher: Box<dyn Refresher>,
    origins: Vec<String>,
    store: Option<Arc<dyn TokenStore>>,
    on_tokens_changed: Option<session::TokensChangedHook>,
    on_session_expired: Option<session::SessionExpiredHook>,
    clock: Option<Arc<dyn Clock>>,
    policy: RefreshPolicy,
}

impl AuthMiddlewareBuilder {
    /// Allows sending the token to `origin` (`https://api.example.com`, `http://127.0.0.1:8080`): scheme,
    /// host and port must match exactly. Call once per origin; at least one is required.
    #[must_use]
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Where tokens are loaded from and saved to; default [`MemoryTokenStore`].
    #[must_use]
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Awaited after the store accepted a new pair and before any request uses it; an error keeps the pair
    /// out of use, like a store error. Runs for refreshed pairs and for [`AuthMiddleware::set_tokens`].
    ///
    /// Store writes are serialised, so the hook must not call [`AuthMiddleware::set_tokens`] or
    /// [`AuthMiddleware::clear`] itself (that would wait on itself).
    #[must_use]
    pub fn on_tokens_changed<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(TokenSet) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        self.on_tokens_changed = Some(Arc::new(move |tokens| Box::pin(hook(tokens))));
        self
    }

    /// Called once when the session ends (the token endpoint rejected the refresh): tokens are already
    /// cleared; every waiting request gets [`Error::ReauthenticationRequired`]. Keep it quick; spawn for
    /// async work.
    #[must_use]
    pub fn on_session_expired(
        mut self,
        hook: impl Fn(&RefreshError) + Send + Sync + 'static,
    ) -> Self {
        self.on_session_expired = Some(Arc::new(hook));
        self
    }

    /// Refresh this long before expiry (default 60 s), plus a random 0-20 % so a fleet does not refresh in
    /// step. Never more than half the token's lifetime.
    #[must_use]
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.policy.skew = skew;
        self
    }

    /// The maximum extra skew as a fraction of the skew (default 0.2, clamped to 0..=1).
    #[must_use]
    pub fn skew_jitter(mut self, fraction: f64) -> Self {
        self.policy.skew_jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How long one refresh may take before it counts as a transient failure (default 5 s).
    #[must_use]
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = timeout;
        self
    }

    /// Backoff after consecutive transient failures: the n-th waits a random 50-100 % of
    /// `base * 2^(n-1)`, at most `max` (defaults 1 s and 60 s). A token endpoint's `Retry-After` (seconds)
    /// lengthens the wait, up to `max`.
    #[must_use]
    pub fn refresh_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.policy.backoff_base = base;
        self.policy.backoff_max = max.max(base);
        self
    }

    /// Treats every token as expiring at most `lifetime` after it was received, whatever the issuer says
    /// (useful to bound how long a client-credentials token is cached).
    #[must_use]
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.policy.max_lifetime = Some(lifetime);
        self
    }

    /// Also refreshes in the background at about half of each token's lifetime, so long-lived tokens are
    /// renewed before any request has to wait (default off).
    #[must_use]
    pub fn background_refresh(mut self, enabled: bool) -> Self {
        self.policy.background = enabled;
        self
    }

    /// The clock and sleep to use; default [`SystemClock`]. Tests inject a manual clock.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the middleware; fails if no origin, or an invalid one, was given.
    pub fn build(self) -> Result<AuthMiddleware, BuildError> {
        if self.origins.is_empty() {
            return Err(BuildError::NoAllowedOrigin);
        }
        let origins = self
            .origins
            .iter()
            .map(|origin| Origin::parse(origin))
            .collect::<Result<Arc<[_]>, _>>()?;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryTokenStore::new()));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let mut session = Session::new(self.refresher, store, clock, self.policy);
        session.on_tokens_changed = self.on_tokens_changed;
        session.on_session_expired = self.on_session_expired;
        Ok(AuthMiddleware {
            session: Arc::new(session),
            origins,
        })
    }
}

impl fmt::Debug for AuthMiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddlewareBuilder")
            .field("origins", &self.origins)
            .field("store", &self.store)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
