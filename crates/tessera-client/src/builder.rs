//! Configuring an [`AuthMiddleware`]: origins, store, hooks, clock and the timing rules.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::error::BuildError;
use crate::origin::Origin;
use crate::session::{Persistence, RefreshPolicy, Session, SessionExpiredHook, TokensChangedHook};
use crate::{
    AuthMiddleware, Clock, DpopKey, MemoryTokenStore, RefreshError, Refresher, StoreError,
    SystemClock, TokenSet, TokenStore,
};

/// Configures an [`AuthMiddleware`]; made by [`AuthMiddleware::builder`].
pub struct AuthMiddlewareBuilder {
    refresher: Box<dyn Refresher>,
    origins: Vec<String>,
    store: Option<Arc<dyn TokenStore>>,
    on_tokens_changed: Option<TokensChangedHook>,
    on_session_expired: Option<SessionExpiredHook>,
    clock: Option<Arc<dyn Clock>>,
    policy: RefreshPolicy,
    dpop: Option<DpopKey>,
}

impl AuthMiddlewareBuilder {
    pub(crate) fn new(refresher: Box<dyn Refresher>) -> Self {
        AuthMiddlewareBuilder {
            refresher,
            origins: Vec::new(),
            store: None,
            on_tokens_changed: None,
            on_session_expired: None,
            clock: None,
            policy: RefreshPolicy::default(),
            dpop: None,
        }
    }

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
    /// cleared; every waiting request gets [`Error::ReauthenticationRequired`](crate::Error::ReauthenticationRequired). Keep it quick; spawn for
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

    /// How long one refresh may take before it counts as a transient failure (default 5 s). A request that
    /// presented a refresh token is not abandoned at the timeout: see
    /// [`server_grace`](AuthMiddlewareBuilder::server_grace).
    #[must_use]
    pub fn refresh_timeout(mut self, timeout: Duration) -> Self {
        self.policy.timeout = timeout;
        self
    }

    /// The token service's grace window (default 15 s, Tessera's token service default): how long after
    /// rotating a refresh token it still answers the previous one with the same successor instead of
    /// treating it as reuse. `Duration::ZERO` for a service without one (node's `oidc-provider`, for
    /// instance).
    ///
    /// When a refresh gets no usable answer (a timeout, a broken connection, a gateway error), the service
    /// may have rotated the refresh token, so the middleware keeps waiting for the late answer, presents
    /// the token once more only while that retry still reaches the service inside this window, and never
    /// after (the session then ends with [`RefreshError::OutcomeUnknown`] rather than trip reuse
    /// detection). [`build`](AuthMiddlewareBuilder::build) checks that the window holds a timed-out
    /// request and its retry: at least twice the
    /// [`refresh_timeout`](AuthMiddlewareBuilder::refresh_timeout) plus one second. The backoff needs no
    /// such check: the retry after a lost answer waits the first backoff step
    /// but never past the window. With `Duration::ZERO` there is no retry: a lost answer is awaited (for a
    /// minute) and the session ends if it never comes.
    #[must_use]
    pub fn server_grace(mut self, grace: Duration) -> Self {
        self.policy.grace = grace;
        self
    }

    /// Binds tokens to `key` with DPoP (RFC 9449): token requests of the built-in grants carry a proof
    /// signed with it (the token endpoint then issues `token_type: DPoP` tokens bound to the key's
    /// thumbprint), and every API request presenting such a token gets `Authorization: DPoP` and a fresh
    /// proof. The key is saved with the tokens it bound, so a restart that loads them keeps the binding;
    /// `key` only serves tokens bound to no key yet. See the crate documentation's DPoP section.
    ///
    /// ```
    /// use tessera_client::{AuthMiddleware, DpopKey, RefreshTokenGrant};
    /// use tessera_core::jose::Algorithm;
    ///
    /// let grant = RefreshTokenGrant::new(reqwest::Client::new(), "https://auth.example/token".parse()?);
    /// let auth = AuthMiddleware::builder(grant)
    ///     .allow_origin("https://api.example")
    ///     .dpop(DpopKey::generate(Algorithm::EdDsa)?)
    ///     .build()?;
    /// # let _ = auth;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
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

    /// Builds the middleware; fails if no origin, or an invalid one, was given, or if the
    /// [`server_grace`](AuthMiddlewareBuilder::server_grace) window is too short for the refresh timeout.
    pub fn build(self) -> Result<AuthMiddleware, BuildError> {
        if self.origins.is_empty() {
            return Err(BuildError::NoAllowedOrigin);
        }
        self.policy.validate()?;
        let origins = self
            .origins
            .iter()
            .map(|origin| Origin::parse(origin))
            .collect::<Result<Arc<[_]>, _>>()?;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryTokenStore::new()));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let session = Session::new(
            self.refresher,
            Persistence::new(store, self.on_tokens_changed),
            self.on_session_expired,
            clock,
            self.policy,
            self.dpop,
        );
        Ok(AuthMiddleware::new(session, origins))
    }
}

impl fmt::Debug for AuthMiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddlewareBuilder")
            .field("origins", &self.origins)
            .field("store", &self.store)
            .field("policy", &self.policy)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}
