//! The public face of the middleware: [`JwtAuthLayer`], its per-route variants, its counters, and
//! verification of tokens that did not come in a request.

use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::pipeline::{Flow, KeySource, Pipeline, Presentation};
use super::policy::Policy;
use crate::cache::TokenCache;
use crate::source::Candidate;
use crate::{AuthRejection, AuthStats, JwtAuth, JwtAuthBuilder, KeySet, VerifiedToken};

/// A tower [`Layer`] that verifies bearer JWTs and puts a [`VerifiedToken`] into the request extensions.
///
/// Built with [`JwtAuthLayer::builder`]; cheap to clone. Per route or router, derive variants that share the
/// keys, cache and counters: [`require_scope`](JwtAuthLayer::require_scope),
/// [`require_role`](JwtAuthLayer::require_role), [`optional`](JwtAuthLayer::optional). See the
/// [crate documentation](crate) for a complete example and the wire contract.
#[derive(Clone)]
pub struct JwtAuthLayer {
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) policy: Arc<Policy>,
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
        self.with_policy(self.policy.with_scope(scope.into()))
    }

    /// This layer, additionally requiring the subject to hold `role` (in the `roles` claim), answering 403
    /// `insufficient_scope` otherwise.
    #[must_use]
    pub fn require_role(&self, role: impl Into<String>) -> JwtAuthLayer {
        self.with_policy(self.policy.with_role(role.into()))
    }

    /// This layer in optional mode: a request without any token passes through anonymously (handlers take
    /// `Option<Claims<T>>`), while a request with a bad token is still refused. Scope and role requirements
    /// apply to requests that carry a token.
    #[must_use]
    pub fn optional(&self) -> JwtAuthLayer {
        self.with_policy(self.policy.anonymous_allowed())
    }

    /// The layer's counters, shared by all clones and derived variants.
    pub fn stats(&self) -> AuthStats {
        let pipeline = &self.pipeline;
        let cached = pipeline.cache.as_ref().map_or(0, TokenCache::len);
        let stats = AuthStats {
            cache_entries: u64::try_from(cached).unwrap_or(u64::MAX),
            ..pipeline.responder.counters().snapshot()
        };
        match &pipeline.keys {
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
    /// It comes as a bearer token: one bound to a DPoP key is refused
    /// ([`AuthRejection::BoundTokenAsBearer`]), since there is no request to prove possession in.
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
        let pipeline = &self.pipeline;
        let outcome =
            match pipeline.token(&self.policy, Candidate::direct(token), Presentation::Bearer) {
                Flow::Done(outcome) => outcome,
                Flow::Wait(pending) => pipeline.resume(&self.policy, pending).await,
            };
        pipeline.record(&outcome);
        outcome
    }

    /// A router serving the RFC 9728 metadata document configured with
    /// [`JwtAuthBuilder::resource_metadata`] at its well-known path; without one, a router with no route.
    /// The document is public: merge the router outside this layer (see [`ResourceMetadata`]).
    ///
    /// [`ResourceMetadata`]: crate::ResourceMetadata
    pub fn resource_metadata_router(&self) -> axum::Router {
        self.pipeline
            .metadata
            .as_ref()
            .map_or_else(axum::Router::new, |metadata| metadata.router())
    }

    /// The keys in use right now.
    pub fn current_keys(&self) -> Arc<KeySet> {
        match &self.pipeline.keys {
            KeySource::Ring(ring) => ring.current(),
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.current(),
        }
    }

    fn with_policy(&self, policy: Policy) -> JwtAuthLayer {
        JwtAuthLayer {
            pipeline: Arc::clone(&self.pipeline),
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

impl fmt::Debug for JwtAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("pipeline", &self.pipeline)
            .field("policy", &self.policy)
            .finish()
    }
}
