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
//! | `ProofChecker` (`dpop/`) | DPoP proofs at the token endpoint, nonces, replayed `jti`s |
//! | `Introspection` (`introspection.rs`) | RFC 7662 answers about access tokens |
//! | `Metadata` (`metadata.rs`) | the RFC 8414 document, built once |

use std::fmt;
use std::sync::Arc;

use axum::Router;
use tessera_core::Clock;
use tessera_core::jose::JwkSet;
use tessera_server::JwtAuthLayer;

use crate::clients::ClientDirectory;
use crate::config::{IssuerBuilder, Settings};
use crate::credentials::CredentialChecks;
use crate::denylist::AccessTokenDenylist;
use crate::dpop::ProofChecker;
use crate::events::Events;
use crate::grants::{Grants, Logins};
use crate::http;
use crate::introspection::Introspection;
use crate::keys::SigningKeys;
use crate::maintenance::Maintenance;
use crate::metadata::Metadata;
use crate::minting::Minter;
use crate::refresh::RefreshTokens;
use crate::sessions::Sessions;
use crate::store::{PurgeReport, RefreshStore, RevokeReason, StoreError};
use crate::throttle::LoginThrottle;

/// The token service: grants, rotation, revocation, on a [`RefreshStore`].
///
/// Build it with [`Issuer::builder`]; mount [`Issuer::router`] under `/auth` and
/// [`Issuer::well_known_router`] at the root, run [`Issuer::spawn_purge_task`], and [`Issuer::close`] it on
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
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// The parts of an [`Issuer`], assembled once by [`Issuer::assemble`].
pub(crate) struct Inner<S> {
    store: Arc<S>,
    minter: Arc<Minter>,
    grants: Grants<S>,
    sessions: Sessions<S>,
    maintenance: Maintenance<S>,
    introspection: Introspection,
    metadata: Metadata,
    denylist: AccessTokenDenylist,
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
    /// Wires the parts together on `store`: the one place that knows which part needs which.
    pub(crate) fn assemble(store: S, settings: Settings) -> Self {
        let store = Arc::new(store);
        let clock = settings.clock;
        let events = Events::new(settings.events);
        let denylist = AccessTokenDenylist::new(Arc::clone(&clock));
        let minter = Arc::new(settings.minter);
        let metadata = Metadata::new(
            &settings.endpoints,
            settings.clients.values().map(Arc::as_ref),
            &settings.dpop.algorithms,
        );
        let (concurrent, queued) = settings.credential_checks;
        let checks = Arc::new(CredentialChecks::new(concurrent, queued));
        let clients = Arc::new(ClientDirectory::new(
            settings.clients,
            settings.assertion_audiences,
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
                throttle: LoginThrottle::new(settings.throttle),
            },
            Arc::clone(&refresh),
            Arc::clone(&minter),
            ProofChecker::new(settings.dpop, settings.endpoints.token),
            events.clone(),
            Arc::clone(&clock),
        );
        let introspection = Introspection::new(
            Arc::clone(&clients),
            Arc::clone(&minter),
            denylist.clone(),
            Arc::clone(&clock),
        );
        let sessions = Sessions::new(
            Arc::clone(&store),
            refresh,
            Arc::clone(&minter),
            clients,
            denylist.clone(),
            events,
            Arc::clone(&clock),
        );
        let maintenance = Maintenance::new(
            Arc::clone(&store),
            denylist.clone(),
            Arc::clone(&clock),
            settings.purge,
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
                denylist,
                clock,
                max_body_bytes: settings.max_body_bytes,
            }),
        }
    }
}

impl<S> Issuer<S> {
    /// The signing and verifying keys.
    pub fn keys(&self) -> &SigningKeys {
        self.inner.minter.keys()
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> &JwkSet {
        self.keys().jwks()
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        self.inner.minter.issuer()
    }

    /// The `aud` values of the tokens.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.inner.minter.audience().iter()
    }

    /// The revoked access tokens; `JwtAuthLayer` consults it (see [`Issuer::auth_layer`]).
    pub fn denylist(&self) -> &AccessTokenDenylist {
        &self.inner.denylist
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    pub(crate) fn grants(&self) -> &Grants<S> {
        &self.inner.grants
    }

    pub(crate) fn sessions(&self) -> &Sessions<S> {
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
    ///
    /// `auth` authenticates the last three by access token; [`Issuer::auth_layer`] makes one that trusts
    /// this issuer's keys and consults its denylist.
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
    /// refresh-token families and denies their access tokens issued so far. Returns how many sessions
    /// were ended.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails.
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.inner
            .sessions
            .revoke_user(user_id, RevokeReason::UserRevoked)
            .await
    }

    /// Loads the access-token revocations the store holds (made before a restart, or by another instance
    /// on the same database) into the in-memory denylist; returns how many are in force.
    /// [`Issuer::spawn_purge_task`] calls it at start and on every tick; call it yourself before serving
    /// if you do not run that task.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails.
    pub async fn load_denylist(&self) -> Result<usize, StoreError> {
        self.inner.maintenance.load_denylist().await
    }

    /// Deletes everything that expired, batch by batch, and sweeps the access-token denylist.
    ///
    /// Each batch is one short store operation and the loop yields between batches, so requests
    /// interleave with a long purge instead of waiting for it.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails; what was purged before stays purged.
    pub async fn purge_expired(&self) -> Result<PurgeReport, StoreError> {
        self.inner.maintenance.purge_expired().await
    }

    /// Spawns the background maintenance: at start and then at the configured interval,
    /// [`Issuer::load_denylist`] and [`Issuer::purge_expired`]. Failures are logged and retried on the
    /// next tick; the task ends by itself once the store is closed ([`Issuer::close`]), or when the handle
    /// is aborted. Needs a tokio runtime with the time driver.
    pub fn spawn_purge_task(&self) -> tokio::task::JoinHandle<()> {
        self.inner.maintenance.clone().spawn()
    }

    /// Closes the store, for a clean shutdown: call it once the HTTP server has stopped taking requests
    /// (after axum's graceful shutdown). Writes the store has already accepted finish first (with
    /// [`SqliteStore`](crate::SqliteStore): queued rotations are committed, and the WAL is checkpointed
    /// into the database file); afterwards every store call fails with [`StoreError::Closed`], so a request
    /// that still arrives is answered `500 server_error`, and the purge task stops at its next tick.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }
}
