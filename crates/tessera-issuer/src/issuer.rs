//! [`Issuer`]: the token service, cheap to clone, shared by its HTTP handlers and your code.
//!
//! It composes one part per concern, each with its own state, and holds no logic of its own beyond
//! handing calls to them:
//!
//! | part | concern |
//! |---|---|
//! | `Grants` (`grants.rs`) | the token endpoint: client authentication, the three grants, scopes |
//! | `RefreshTokens` (`refresh/`) | families in the store: start, rotate, look up |
//! | `Sessions` (`sessions.rs`) | revocation, logout, the session list, revoking a user |
//! | `Minter` (`minting.rs`) | signing access tokens and recognising them again |
//! | `Maintenance` (`maintenance.rs`) | reloading the denylist, purging, the background task |
//! | `ClientDirectory` (`clients.rs`) | registered clients, their authentication, who may act for whom |
//! | `ProofChecker` (`dpop/`) | DPoP proofs at the token endpoint, nonces, replayed `jti`s (in the store) |
//! | `Introspection` (`introspection.rs`) | RFC 7662 answers about access tokens |
//! | `Metadata` (`metadata.rs`) | the RFC 8414 document, built once |

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use tessera_core::Clock;
use tessera_core::jose::JwkSet;
use tessera_server::{Availability, Denylist, JwtAuthLayer};

use crate::clients::ClientDirectory;
use crate::config::{IssuerBuilder, Settings};
use crate::credentials::CredentialChecks;
use crate::denylist::DenialSync;
use crate::dpop::ProofChecker;
use crate::events::Events;
use crate::grants::{Grants, Logins};
use crate::http;
use crate::introspection::Introspection;
use crate::keys::{LiveKeys, SigningKeyStatus, SigningKeys, StoredKeyError};
use crate::maintenance::{Maintenance, StoreKeys};
use crate::metadata::Metadata;
use crate::metrics::{CountingHook, EventCounters};
use crate::minting::Minter;
use crate::observed::Observed;
use crate::refresh::RefreshTokens;
use crate::sessions::Sessions;
use crate::store::{OneTimeValues, PurgeReport, RefreshStore, RevokeReason, StoreError};
use crate::throttle::LoginThrottle;

/// The token service: grants, rotation, revocation, on a [`RefreshStore`].
///
/// Start it with [`IssuerBuilder::start`] (or build it with [`IssuerBuilder::build`]); mount
/// [`Issuer::router`] under `/auth` and [`Issuer::well_known_router`] at the root, and [`Issuer::close`] it on
/// shutdown. Clones share everything.
pub struct Issuer<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S> Clone for Issuer<S> {
    fn clone(&self) -> Self {
        Issuer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for Issuer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("minter", &self.inner.minter)
            .field("denylist", self.inner.denials.denylist())
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// The store as every part sees it: timed, its denials mirrored on this instance's denylist.
pub(crate) type Store<S> = Observed<S>;

/// The parts of an [`Issuer`], assembled once by [`Issuer::assemble_shared`].
pub(crate) struct Inner<S> {
    store: Arc<Store<S>>,
    minter: Arc<Minter>,
    grants: Grants<Store<S>>,
    sessions: Sessions<Store<S>>,
    maintenance: Maintenance<Store<S>>,
    introspection: Introspection,
    metadata: Metadata,
    denials: Arc<DenialSync<Store<S>>>,
    keys: Option<Arc<StoreKeys<Store<S>>>>,
    events: Arc<EventCounters>,
    /// The background work started by [`IssuerBuilder::start`], stopped by [`Issuer::close`].
    background: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The bearer tokens of the denials feed.
    pub(crate) feed_tokens: Vec<String>,
    /// The store's identity in the feed's cursors, read from the store on the feed's first request.
    pub(crate) denial_log: tokio::sync::OnceCell<String>,
    /// The clock every part reads; also the `JwtAuthLayer`'s (`auth.rs`).
    pub(crate) clock: Arc<dyn Clock>,
    max_body_bytes: usize,
}

impl Issuer<()> {
    /// Starts configuring a token service.
    pub fn builder() -> IssuerBuilder {
        IssuerBuilder::default()
    }
}

impl<S: RefreshStore> Issuer<S> {
    /// Wires the parts together on `store`.
    pub(crate) fn assemble(store: S, settings: Settings) -> Self {
        Issuer::assemble_shared(Arc::new(store), settings)
    }

    /// Wires the parts together on `store`: the one place that knows which part needs which.
    pub(crate) fn assemble_shared(store: Arc<S>, settings: Settings) -> Self {
        let clock = settings.clock;
        let denylist = Denylist::kept_fresh(Arc::clone(&clock), settings.stale_after);
        let store = Arc::new(Observed::new(store, denylist.clone()));
        let counters = Arc::new(EventCounters::default());
        let events = Events::new(Some(Arc::new(CountingHook::new(
            Arc::clone(&counters),
            settings.events,
        ))));
        let denials = Arc::new(DenialSync::new(
            Arc::clone(&store),
            denylist.clone(),
            Arc::clone(&clock),
        ));
        let minter = Arc::new(settings.minter);
        let metadata = Metadata::new(
            &settings.endpoints,
            settings.clients.values().map(Arc::as_ref),
            &settings.dpop.algorithms,
        );
        let (concurrent, queued) = settings.credential_checks;
        let checks = Arc::new(CredentialChecks::new(concurrent, queued));
        let once = Arc::clone(&store) as Arc<dyn OneTimeValues>;
        let clients = Arc::new(ClientDirectory::new(
            settings.clients,
            settings.assertion_audiences,
            Arc::clone(&once),
            Arc::clone(&checks),
            events.clone(),
        ));
        let refresh = Arc::new(RefreshTokens::new(
            Arc::clone(&store),
            settings.secret,
            settings.families,
            events.clone(),
        ));
        let grants = Grants::new(
            Arc::clone(&clients),
            Logins {
                verifier: settings.verifier,
                checks,
                throttle: LoginThrottle::new(Arc::clone(&store), settings.throttle),
            },
            Arc::clone(&refresh),
            Arc::clone(&minter),
            ProofChecker::new(settings.dpop, settings.endpoints.token, once),
            events.clone(),
            Arc::clone(&clock),
        );
        let introspection = Introspection::new(
            Arc::clone(&clients),
            Arc::clone(&minter),
            denylist,
            Arc::clone(&clock),
        );
        let sessions = Sessions::new(
            Arc::clone(&store),
            refresh,
            Arc::clone(&minter),
            clients,
            settings.denials,
            events,
            Arc::clone(&clock),
        );
        let keys = settings.stored_keys.map(|stored| {
            Arc::new(StoreKeys::new(
                Arc::clone(&store),
                stored.vault,
                stored.live,
                stored.stored,
            ))
        });
        let maintenance = Maintenance::new(
            Arc::clone(&store),
            Arc::clone(&denials),
            keys.clone(),
            Arc::clone(&clock),
            settings.maintenance,
        );
        Issuer {
            inner: Arc::new(Inner {
                store,
                minter,
                grants,
                sessions,
                maintenance,
                introspection,
                metadata,
                denials,
                keys,
                events: counters,
                background: Mutex::new(None),
                feed_tokens: settings.feed_tokens,
                denial_log: tokio::sync::OnceCell::new(),
                clock,
                max_body_bytes: settings.max_body_bytes,
            }),
        }
    }

    /// Spawns the background work and keeps its handle, for [`Issuer::close`] to stop it.
    pub(crate) fn start_background(&self) {
        let handle = self.inner.maintenance.clone().spawn();
        let previous = self
            .inner
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(handle);
        if let Some(previous) = previous {
            previous.abort();
        }
    }
}

impl<S> Issuer<S> {
    /// The signing and verifying keys in use now (keys kept in the store change when they rotate).
    pub fn keys(&self) -> Arc<SigningKeys> {
        self.inner.minter.keys().current()
    }

    /// The public keys in use now, as a JWKS document.
    pub fn jwks(&self) -> JwkSet {
        self.keys().jwks().clone()
    }

    /// The keys in use, followed by the service's own `JwtAuthLayer`.
    pub(crate) fn live_keys(&self) -> &LiveKeys {
        self.inner.minter.keys()
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        self.inner.minter.issuer()
    }

    /// The `aud` values of the tokens.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.inner.minter.audience().iter()
    }

    /// The revoked access tokens; the service's `JwtAuthLayer` consults it (see [`Issuer::auth_layer`]).
    pub fn denylist(&self) -> &Denylist {
        self.inner.denials.denylist()
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.inner.store.inner()
    }

    /// The store as the parts see it (observed).
    pub(crate) fn observed_store(&self) -> &Store<S> {
        &self.inner.store
    }

    /// The issuer's event counters.
    pub(crate) fn event_counters(&self) -> &EventCounters {
        &self.inner.events
    }

    pub(crate) fn grants(&self) -> &Grants<Store<S>> {
        &self.inner.grants
    }

    pub(crate) fn sessions(&self) -> &Sessions<Store<S>> {
        &self.inner.sessions
    }

    pub(crate) fn introspection(&self) -> &Introspection {
        &self.inner.introspection
    }

    pub(crate) fn metadata(&self) -> &Metadata {
        &self.inner.metadata
    }

    /// The largest request body the endpoints read.
    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }
}

/// Why [`Issuer::ready`] says the service should not get traffic yet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// The revocations in the store have not been loaded yet.
    #[error("the revocations have not been loaded from the store yet")]
    RevocationsNotLoaded,
    /// The revocations could not be read from the store for too long.
    #[error("the revocations could not be read from the store for too long")]
    RevocationsStale,
    /// The store does not answer.
    #[error("the store does not answer: {0}")]
    Store(#[source] StoreError),
}

impl<S: RefreshStore> Issuer<S> {
    /// The token service's routes, to mount with `.nest("/auth", issuer.router(&auth))` (or under the
    /// [`router_path`](crate::IssuerBuilder::router_path) you configured):
    ///
    /// | route | |
    /// |---|---|
    /// | `POST /token` | RFC 6749 grants `password`, `refresh_token`, `client_credentials`; DPoP proofs (RFC 9449) |
    /// | `POST /revoke` | RFC 7009 revocation of a refresh token's family or an access token |
    /// | `POST /introspect` | RFC 7662 introspection of access tokens, for authenticated confidential clients |
    /// | `POST /logout` | ends the session of the `refresh_token` in the body |
    /// | `POST /logout-all` | ends every session of the signed-in user (bearer access token) |
    /// | `GET /sessions` | the signed-in user's live sessions |
    /// | `DELETE /sessions/{id}` | ends one of them |
    /// | `GET /denials` | the denials feed for API processes ([`IssuerBuilder::denials_feed_token`]) |
    ///
    /// `auth` authenticates `/logout-all` and `/sessions` by access token; [`Issuer::auth_layer`] makes one
    /// that trusts this issuer's keys and consults its denylist.
    pub fn router(&self, auth: &JwtAuthLayer) -> Router {
        http::router(self.clone(), auth)
    }

    /// `GET /.well-known/jwks.json` ([`JWKS_PATH`](crate::JWKS_PATH)): the public verification keys
    /// (RFC 7517), to mount at the root. [`Issuer::well_known_router`] serves the metadata besides.
    pub fn jwks_router(&self) -> Router {
        http::jwks_router(self.clone())
    }

    /// The public documents, to merge at the root of the [public URL](crate::IssuerBuilder::public_url),
    /// outside any authentication:
    ///
    /// | route | |
    /// |---|---|
    /// | `GET /.well-known/jwks.json` | the public verification keys (RFC 7517) |
    /// | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata (followed by the issuer's path, if it has one) |
    pub fn well_known_router(&self) -> Router {
        http::well_known_router(self.clone())
    }

    /// Ends every session of a user (for a password change or an administrator): revokes all their
    /// refresh-token families and denies their access tokens, on every instance. Returns how many
    /// sessions were ended.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails.
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.inner
            .sessions
            .revoke_user(user_id, RevokeReason::UserRevoked)
            .await
    }

    /// Reads the access-token revocations in the store (made before a restart, or by another instance)
    /// that this instance has not seen yet into its denylist, and marks the denylist loaded; returns how
    /// many it read. [`IssuerBuilder::start`] does it before returning, and the background work on every
    /// notification of the store and every sync interval; call it yourself after
    /// [`IssuerBuilder::build`] if you run no background work.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails.
    pub async fn load_denylist(&self) -> Result<usize, StoreError> {
        self.inner.denials.catch_up().await
    }

    /// Whether this instance should get traffic: ready once the revocations are loaded and as long as they
    /// are kept current, and the store answers. For a load balancer's readiness probe
    /// ([`Issuer::health_router`] serves it as `GET /readyz`).
    ///
    /// # Errors
    /// [`NotReady`], saying why.
    pub async fn ready(&self) -> Result<(), NotReady> {
        match self.denylist().availability() {
            Availability::NotLoaded => return Err(NotReady::RevocationsNotLoaded),
            Availability::Stale => return Err(NotReady::RevocationsStale),
            Availability::Available => {}
        }
        self.inner.store.ping().await.map_err(NotReady::Store)
    }

    /// Deletes everything that expired, batch by batch, and drops the denylist entries that ended.
    ///
    /// Each batch is one short store operation and the loop yields between batches, so requests
    /// interleave with a long purge instead of waiting for it.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails; what was purged before stays purged.
    pub async fn purge_expired(&self) -> Result<PurgeReport, StoreError> {
        self.inner.maintenance.purge_expired().await
    }

    /// Spawns the background work that [`IssuerBuilder::start`] runs by itself: the denylist (and keys kept
    /// in the store) kept in step with the store, at once and then every sync interval and on the store's
    /// notifications, and expired records purged every purge interval. Failures are logged and retried;
    /// the task ends by itself once the store is closed ([`Issuer::close`]), or when the handle is aborted.
    /// Needs a tokio runtime with the time driver.
    pub fn spawn_purge_task(&self) -> tokio::task::JoinHandle<()> {
        self.inner.maintenance.clone().spawn()
    }

    /// Adds a new signing key that every instance publishes at once and signs with from `delay` on; the
    /// key it supersedes keeps verifying (and stays published) until every token it signed has expired,
    /// then it is deleted. Choose `delay` longer than the JWKS caching of your verifiers (this service sends
    /// `max-age=300`; `RemoteJwks` also refetches on an unknown `kid`): ten minutes is safe. Returns the new
    /// key's status.
    ///
    /// Only for keys kept in the store ([`IssuerBuilder::start`] without `.keys`/`.key_dir`); other
    /// instances follow within their sync interval.
    ///
    /// # Errors
    /// [`StoredKeyError::NotInStore`] for keys from the builder or a directory; store and key failures.
    pub async fn rotate_signing_key(
        &self,
        delay: Duration,
    ) -> Result<SigningKeyStatus, StoredKeyError> {
        let keys = self.inner.keys.as_ref().ok_or(StoredKeyError::NotInStore)?;
        let delay = i64::try_from(delay.as_secs()).unwrap_or(i64::MAX);
        keys.rotate(self.inner.clock.unix_seconds(), delay).await
    }

    /// Every signing key and where it is in its life (pending, signing, retiring until when), for an
    /// operator. For keys not kept in the store, the signer, then the other verifying keys as retiring
    /// (with no end).
    pub fn signing_keys(&self) -> Vec<SigningKeyStatus> {
        let now = self.inner.clock.unix_seconds();
        match &self.inner.keys {
            Some(keys) => keys.statuses(now),
            None => crate::keys::statuses_of(&self.keys()),
        }
    }

    /// Closes the service, for a clean shutdown: call it once the HTTP server has stopped taking requests
    /// (after axum's graceful shutdown). Stops the background work; writes the store has already accepted
    /// finish first (with [`SqliteStore`](crate::SqliteStore): queued rotations are committed, and the
    /// WAL is checkpointed into the database file); afterwards every store call fails with
    /// [`StoreError::Closed`], so a request that still arrives is answered `500 server_error`.
    pub async fn close(&self) {
        let background = self
            .inner
            .background
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(background) = background {
            background.abort();
        }
        self.inner.store.close().await;
    }
}
