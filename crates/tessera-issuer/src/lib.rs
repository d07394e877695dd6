//! Tessera's token service: RFC 9068 access tokens, rotating refresh tokens with reuse detection and a
//! grace window, revocation, and the stores that keep it all (SQLite; PostgreSQL behind the cargo feature
//! `postgres`, for several instances; in-memory).
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::Router;
//! use tessera_issuer::{Algorithm, Issuer, SqliteStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let db_path = dir.path().join("tessera.db");
//! let store = SqliteStore::open(&db_path).await?;
//! let issuer = Issuer::builder()
//!     .issuer("http://127.0.0.1:8080")
//!     .audience("demo-api")
//!     .access_ttl(Duration::from_secs(15 * 60))
//!     .grace(Duration::from_secs(30))
//!     .signing_algorithm(Algorithm::EdDsa)
//!     .user("alice", "wonderland", ["admin"])
//!     .public_client("demo")
//!     .start(store) // keys, refresh secret and revocations loaded from the store before it answers
//!     .await?;
//!
//! let auth = issuer.auth_layer()?; // JwtAuthLayer trusting this issuer, consulting its denylist
//! let app: Router = Router::new()
//!     .nest("/auth", issuer.router(&auth))
//!     .merge(issuer.jwks_router())
//!     .merge(issuer.health_router()); // GET /healthz, GET /readyz
//!
//! // ... serve `app` until shutdown, then:
//! issuer.close().await; // stops the background work, finishes the writes already queued
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # What is where
//!
//! - [`Issuer`] and [`IssuerBuilder`]: the service and every setting, validated by
//!   [`IssuerBuilder::start`] ([`StartError`]) or [`IssuerBuilder::build`] ([`BuildError`]).
//! - Who may log in: the built-in argon2id [`UserTable`] or your own [`CredentialVerifier`]; which clients
//!   may ask: [`ClientRegistration`].
//! - Hooks: [`AuthEventHook`] receives every [`AuthEvent`] (audit, metrics, alerts on reuse);
//!   [`ClaimsHook`] adds claims to access tokens.
//! - Keys: [`SigningKeys`], built from the [`jose`] types, or kept in the store and rotated with
//!   [`Issuer::rotate_signing_key`]; the JWKS is served at [`JWKS_PATH`].
//! - [`store`]: the [`RefreshStore`](store::RefreshStore) trait and its records, for writing a backend;
//!   [`SqliteStore`], `PostgresStore` and [`MemoryStore`] ship with the crate. With the cargo feature
//!   `testing`, `store::testing` holds the contract suite every backend must pass.
//! - Operations: [`Issuer::health_router`] (liveness, readiness), [`Issuer::metrics_router`] (Prometheus
//!   text), the denials feed (`GET /auth/denials`) for API processes (`tessera_server::RemoteDenylist`).
//! - Time is a [`tessera_core::Clock`], set with [`IssuerBuilder::clock`].
//!
//! # Several instances
//!
//! Every instance of the service is stateless: refresh-token families, access-token denials, the login
//! throttle, used client assertions, signing keys and the refresh-token secret live in the store. With
//! [`IssuerBuilder::start`] on one PostgreSQL database (`PostgresStore`), any number of instances behave as
//! one: a refresh token gets one successor whichever instance it is presented to; a revocation made on one
//! is refused by all within the revocation sync interval (1 s; PostgreSQL's `LISTEN/NOTIFY` makes it
//! milliseconds), and by API processes through the denials feed; concurrent guesses of one password are
//! throttled as if sequential; instances started together agree on one key set. A process that has just
//! started answers 503 rather than accept a token revoked before it started.
//!
//! # Refresh tokens
//!
//! Each login starts a *family* (one device session) with a generation counter. A refresh is one atomic
//! compare-and-swap on the generation in the store. The presented token is classified:
//!
//! - the current generation: rotated, a new access token and a successor refresh token;
//! - the previous generation within the grace window (default 30 s): an idempotent retry, answered with
//!   **the same successor** (so the family never forks) and a fresh access token;
//! - anything older, or the previous generation after the window: a replay. The family is revoked, an
//!   [`AuthEvent::ReuseDetected`] is emitted, and the answer is `invalid_grant`.
//!
//! Stores keep only `HMAC-SHA256` hashes of tokens. The successor of a token is
//! `HMAC-SHA256(server secret, presented token ‖ rotation salt)`, the salt being 32 fresh random bytes kept
//! with the family; so a retry re-derives the same successor, while the database (even with the server
//! secret) holds nothing that yields a usable token.

mod auth;
mod clients;
mod config;
mod credentials;
mod denylist;
mod error;
mod events;
mod feed;
mod grants;
mod http;
mod issuer;
mod keys;
mod maintenance;
mod metrics;
mod minting;
mod observed;
mod ops;
mod params;
mod password;
mod refresh;
mod sessions;
pub mod store;
mod throttle;

pub use clients::{ClientRegistration, JWT_BEARER_ASSERTION_TYPE};
pub use config::{
    BuildError, DEFAULT_MAX_LEEWAY, IssuerBuilder, MAX_GRACE, MIN_FEED_TOKEN_LEN,
    REFRESH_SECRET_FILE, StartError,
};
pub use credentials::{CredentialError, CredentialVerifier, UserTable, VerifiedUser, VerifyFuture};
pub use events::{AuthEvent, AuthEventHook, LoginFailure};
pub use http::JWKS_PATH;
pub use issuer::{Issuer, NotReady};
pub use keys::{
    KEY_ENCRYPTION_SECRET_LEN, KeyState, SigningKeyStatus, SigningKeys, StoredKeyError,
};
pub use minting::{ClaimsHook, TokenContext};
pub use password::{PasswordError, PasswordHashing};
pub use store::{MemoryStore, SqliteStore};
#[cfg(feature = "postgres")]
pub use store::{PostgresStore, PostgresStoreOptions};
pub use tessera_core::jose::{self, Algorithm};
pub use tessera_server::{Availability, Denial, DenialPage, Denylist};
pub use throttle::ThrottlePolicy;
