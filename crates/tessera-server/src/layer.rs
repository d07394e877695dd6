//! The layer: configuration shared by every clone, and the authentication steps a request goes through.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Extensions, HeaderMap, Uri};
use tower::Layer;

use crate::cache::TokenCache;
use crate::rejection::RendererName;
use crate::source::{Candidate, TokenSources};
use crate::stats::Counters;
use crate::verify::Validator;
use crate::{
    AuthRejection, AuthStats, Clock, JwtAuth, JwtAuthBuilder, KeyRing, KeySet, RejectionBody,
    RevocationCheck, TokenStatus, VerifiedToken,
};

/// A tower [`Layer`] that verifies bearer JWTs and puts a [`VerifiedToken`] into the request extensions.
///
/// Built with [`JwtAuthLayer::builder`]; cheap to clone. Per route or router, derive variants that share the
/// keys, cache and counters: [`require_scope`](JwtAuthLayer::require_scope),
/// [`require_role`](JwtAuthLayer::require_role), [`optional`](JwtAuthLayer::optional). See the
/// [crate documentation](crate) for a complete example and the wire contract.
#[derive(Clone)]
pub struct JwtAuthLayer {
    pub(crate) core: Arc<Core>,
    pub(crate) policy: Arc<Policy>,
}

/// What every clone of one built layer shares.
pub(crate) struct Core {
    pub(crate) sources: TokenSources,
    pub(crate) validator: Validator,
    pub(crate) keys: KeySource,
    pub(crate) cache: Option<TokenCache>,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
    pub(crate) body: Arc<dyn RejectionBody>,
    pub(crate) realm: Box<str>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) counters: Counters,
}

/// Where the live keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    Ring(KeyRing),
    #[cfg(feature = "remote-jwks")]
    Remote(crate::RemoteJwks),
}

/// The per-route part: what a verified token must additionally satisfy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    pub(crate) anonymous: bool,
    pub(crate) scopes: Vec<Box<str>>,
    /// `scopes` joined by spaces: the `scope` of an `insufficient_scope` challenge.
    pub(crate) scope_param: Option<Arc<str>>,
    pub(crate) roles: Vec<Arc<str>>,
}

/// Marks a request that an optional layer let through without a token, so extractors can tell "anonymous"
/// from "no layer installed".
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

/// Where authentication of one request stands after the synchronous part.
pub(crate) enum Step {
    /// Let through, with the token (or anonymously, in optional mode).
    Pass(Option<VerifiedToken>),
    /// Refused.
    Reject(AuthRejection),
    /// An outer clone of this layer already verified the request's token; this one's policy holds too.
    AlreadyVerified,
    /// Verified; the revocation check (async) still has to run.
    CheckRevocation(VerifiedToken),
    /// The token's `kid` is unknown and the remote key set may be refetched for it.
    #[cfg(feature = "remote-jwks")]
    RefetchKeys(String),
}

impl JwtAuthLayer {
    /// A builder; see [`JwtAuthBuilder`] for the settings and their defaults.
    pub fn builder() -> JwtAuthBuilder {
        JwtAuthBuilder::default()
    }

    /// This layer, additionally requiring `scope` (all required scopes must be granted), answering 403
    /// `insufficient_scope` with `scope="..."` otherwise.
    #[must_use]
    pub fn require_scope(&self, scope: impl Into<String>) -> JwtAuthLayer {
        let mut policy = Policy::clone(&self.policy);
        policy.scopes.push(scope.into().into_boxed_str());
        let joined = policy
            .scopes
            .iter()
            .map(|scope| &**scope)
            .collect::<Vec<_>>()
            .join(" ");
        policy.scope_param = Some(joined.into());
        self.with_policy(policy)
    }

    /// This layer, additionally requiring the subject to hold `role` (in the `roles` claim), answering 403
    /// `insufficient_scope` otherwise.
    #[must_use]
    pub fn require_role(&self, role: impl Into<String>) -> JwtAuthLayer {
        let mut policy = Policy::clone(&self.policy);
        policy.roles.push(role.into().into());
        self.with_policy(policy)
    }

    /// This layer in optional mode: a request without any token passes through anonymously (handlers take
    /// `Option<Claims<T>>`), while a request with a bad token is still refused. Scope and role requirements
    /// apply to requests that carry a token.
    #[must_use]
    pub fn optional(&self) -> JwtAuthLayer {
        let mut policy = Policy::clone(&self.policy);
        policy.anonymous = true;
        self.with_policy(policy)
    }

    /// The layer's counters, shared by all clones and derived variants.
    pub fn stats(&self) -> AuthStats {
        let cached = self.core.cache.as_ref().map_or(0, TokenCache::len);
        let stats = AuthStats {
            cache_entries: u64::try_from(cached).unwrap_or(u64::MAX),
            ..self.core.counters.snapshot()
        };
        match &self.core.keys {
            KeySource::Ring(_) => stats,
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => {
                let (jwks_fetches, jwks_fetch_failures) = remote.fetch_counts();
                AuthStats {
                    jwks_fetches,
                    jwks_fetch_failures,
                    ..stats
                }
            }
        }
    }

    /// Runs a token that did not arrive in an HTTP request (a WebSocket message, a gRPC metadata value, a
    /// job payload) through everything a request goes through: length limit, cache, verification, a remote
    /// key refetch for an unknown `kid`, the revocation check, and this layer's scope and role requirements.
    ///
    /// ```
    /// use tessera_server::{AuthRejection, JwtAuthLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let auth = JwtAuthLayer::builder().hmac_secret([7; 32]).issuer("iss").audience("api").build()?;
    /// let outcome = auth.verify("not.a.jwt").await;
    /// assert!(matches!(outcome, Err(AuthRejection::MalformedToken(_))));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The [`AuthRejection`] a request with this token would have been answered with.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, AuthRejection> {
        let core = &self.core;
        let outcome = match core.authenticate_token(&self.policy, Candidate::direct(token)) {
            Step::Pass(Some(verified)) => Ok(verified),
            Step::Reject(rejection) => Err(rejection),
            Step::CheckRevocation(verified) => core
                .check_revocation(&self.policy, &verified)
                .await
                .map(|()| verified),
            #[cfg(feature = "remote-jwks")]
            Step::RefetchKeys(token) => match core.verify_after_refetch(&token).await {
                Ok(verified) => core
                    .check_revocation(&self.policy, &verified)
                    .await
                    .map(|()| verified),
                Err(rejection) => Err(rejection),
            },
            // Only a request can be anonymous or already verified; a bare token never is.
            Step::Pass(None) | Step::AlreadyVerified => Err(AuthRejection::MissingCredentials),
        };
        match &outcome {
            Ok(_) => core.admitted(),
            Err(rejection) => core.refuse(rejection),
        }
        outcome
    }

    /// The keys in use right now.
    pub fn current_keys(&self) -> Arc<KeySet> {
        match &self.core.keys {
            KeySource::Ring(ring) => ring.current(),
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.current(),
        }
    }

    fn with_policy(&self, policy: Policy) -> JwtAuthLayer {
        JwtAuthLayer {
            core: Arc::clone(&self.core),
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> JwtAuth<S> {
        JwtAuth::new(inner, self.clone())
    }
}

impl Core {
    pub(crate) fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }

    /// Everything that can be decided without waiting: extraction, the cache, verification against the
    /// live keys, and (when no revocation check is configured) the route's policy.
    pub(crate) fn authenticate(
        &self,
        policy: &Policy,
        headers: &HeaderMap,
        uri: &Uri,
        extensions: &Extensions,
    ) -> Step {
        // `.layer(auth)` on a router plus `.route_layer(auth.require_scope(..))` on a route: the token was
        // verified (and revocation-checked) by the outer clone moments ago; only the policy is new.
        if let Some(verified) = extensions.get::<VerifiedToken>()
            && verified.verified_by(self.validator.id)
        {
            return match self.authorize(policy, verified) {
                Ok(()) => Step::AlreadyVerified,
                Err(rejection) => Step::Reject(rejection),
            };
        }
        let token = match self.sources.extract(headers, uri) {
            Ok(Some(token)) => token,
            Ok(None) if policy.anonymous => return Step::Pass(None),
            Ok(None) => return Step::Reject(AuthRejection::MissingCredentials),
            Err(rejection) => return Step::Reject(rejection),
        };
        self.authenticate_token(policy, token)
    }

    /// The synchronous checks of one token: the cache, or verification against the live keys.
    pub(crate) fn authenticate_token(&self, policy: &Policy, token: Candidate<'_>) -> Step {
        if token.bytes().len() > self.sources.max_len {
            return Step::Reject(AuthRejection::TokenTooLong {
                limit: self.sources.max_len,
            });
        }
        let now = self.now();
        let keys = self.load_keys();
        // The cache is consulted before the charset check: a hit is byte for byte a token that passed it.
        let cached = self
            .cache
            .as_ref()
            .map(|cache| (cache, cache.key(token.bytes())));
        if let Some((cache, key)) = &cached {
            let hit = key.as_ref().and_then(|key| {
                cache.get(key, &keys, |token| {
                    self.validator.within_lifetime(token, now)
                })
            });
            if let Some(verified) = hit {
                Counters::bump(&self.counters.cache_hits);
                return self.after_verification(policy, verified);
            }
            Counters::bump(&self.counters.cache_misses);
        }
        let token = match token.checked() {
            Ok(token) => token,
            Err(rejection) => return Step::Reject(rejection),
        };
        match self.validator.verify(token, &keys, now) {
            Ok(verified) => {
                if let Some((cache, Some(key))) = &cached {
                    cache.insert(key, verified.clone(), |token| {
                        self.validator.within_lifetime(token, now)
                    });
                }
                self.after_verification(policy, verified)
            }
            Err(AuthRejection::UnknownKey) => match &self.keys {
                KeySource::Ring(_) => Step::Reject(AuthRejection::UnknownKey),
                #[cfg(feature = "remote-jwks")]
                KeySource::Remote(remote) => unknown_remote_kid(remote, token),
            },
            Err(rejection) => Step::Reject(rejection),
        }
    }

    fn after_verification(&self, policy: &Policy, verified: VerifiedToken) -> Step {
        if self.revocation.is_some() {
            return Step::CheckRevocation(verified);
        }
        match self.authorize(policy, &verified) {
            Ok(()) => Step::Pass(Some(verified)),
            Err(rejection) => Step::Reject(rejection),
        }
    }

    /// After a refetch for an unknown `kid`: verify once more against whatever is live now.
    #[cfg(feature = "remote-jwks")]
    pub(crate) async fn verify_after_refetch(
        &self,
        token: &str,
    ) -> Result<VerifiedToken, AuthRejection> {
        let KeySource::Remote(remote) = &self.keys else {
            return Err(AuthRejection::UnknownKey);
        };
        remote.refetch_for_unknown_kid().await;
        let keys = remote.current();
        let now = self.now();
        match self.validator.verify(token, &keys, now) {
            Err(AuthRejection::UnknownKey) if remote.never_loaded() => {
                Err(AuthRejection::KeysUnavailable)
            }
            Ok(verified) => {
                if let Some(cache) = &self.cache
                    && let Some(key) = cache.key(token.as_bytes())
                {
                    cache.insert(&key, verified.clone(), |token| {
                        self.validator.within_lifetime(token, now)
                    });
                }
                Ok(verified)
            }
            other => other,
        }
    }

    /// The revocation check, then the route's policy.
    pub(crate) async fn check_revocation(
        &self,
        policy: &Policy,
        verified: &VerifiedToken,
    ) -> Result<(), AuthRejection> {
        if let Some(check) = &self.revocation {
            match check.status(verified).await {
                Ok(TokenStatus::Active) => {}
                Ok(TokenStatus::Revoked) => return Err(AuthRejection::Revoked),
                Err(error) => {
                    tracing::warn!(%error, "revocation check failed; refusing the request");
                    return Err(AuthRejection::RevocationUnavailable);
                }
            }
        }
        self.authorize(policy, verified)
    }

    fn authorize(&self, policy: &Policy, verified: &VerifiedToken) -> Result<(), AuthRejection> {
        if let Some(scope) = &policy.scope_param
            && !policy
                .scopes
                .iter()
                .all(|required| verified.has_scope(required))
        {
            return Err(AuthRejection::InsufficientScope {
                scope: Arc::clone(scope),
            });
        }
        if let Some(role) = policy.roles.iter().find(|role| !verified.has_role(role)) {
            return Err(AuthRejection::MissingRole {
                role: Arc::clone(role),
            });
        }
        Ok(())
    }

    fn load_keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        match &self.keys {
            KeySource::Ring(ring) => ring.load(),
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.load(),
        }
    }

    /// Counts and traces a rejection.
    pub(crate) fn refuse(&self, rejection: &AuthRejection) {
        Counters::bump(&self.counters.rejected);
        rejection.trace();
    }

    /// Counts, traces and renders a rejection.
    pub(crate) fn reject<B: From<bytes::Bytes>>(
        &self,
        rejection: &AuthRejection,
    ) -> http::Response<B> {
        self.refuse(rejection);
        rejection.render(&self.realm, &*self.body)
    }

    pub(crate) fn admitted(&self) {
        self.counters.authenticated.fetch_add(1, Ordering::Relaxed);
    }
}

/// A `kid` the remote key set does not know: refetch if the cooldown allows, else refuse at once.
#[cfg(feature = "remote-jwks")]
fn unknown_remote_kid(remote: &crate::RemoteJwks, token: &str) -> Step {
    if remote.may_refetch() {
        Step::RefetchKeys(token.to_owned())
    } else if remote.never_loaded() {
        Step::Reject(AuthRejection::KeysUnavailable)
    } else {
        Step::Reject(AuthRejection::UnknownKey)
    }
}

impl fmt::Debug for JwtAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("core", &self.core)
            .field("policy", &self.policy)
            .finish()
    }
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("sources", &self.sources)
            .field("validator", &self.validator)
            .field("keys", &self.keys)
            .field("cache", &self.cache)
            .field(
                "revocation",
                &self.revocation.as_ref().map(|_| "dyn RevocationCheck"),
            )
            .field("body", &RendererName)
            .field("realm", &self.realm)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
