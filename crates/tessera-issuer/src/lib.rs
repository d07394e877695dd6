//! Tessera's token service: RFC 9068 access tokens, rotating refresh tokens with reuse detection and a
//! grace window, revocation, and the stores that keep it all (SQLite, in-memory).
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
//! # let key_dir = dir.path().join("tessera.keys");
//! let store = SqliteStore::open(&db_path).await?;
//! let issuer = Issuer::builder()
//!     .issuer("http://127.0.0.1:8080")
//!     .audience("demo-api")
//!     .access_ttl(Duration::from_secs(15 * 60))
//!     .grace(Duration::from_secs(30))
//!     .signing_algorithm(Algorithm::EdDsa)
//!     .key_dir(&key_dir) // keys and the refresh secret persist here
//!     .user("alice", "wonderland", ["admin"])
//!     .public_client("demo")
//!     .build(store)?;
//!
//! let auth = issuer.auth_layer()?; // JwtAuthLayer trusting this issuer, consulting its denylist
//! let app: Router = Router::new()
//!     .nest("/auth", issuer.router(&auth))
//!     .merge(issuer.jwks_router());
//! let purge = issuer.spawn_purge_task();
//!
//! // ... serve `app` until shutdown, then:
//! purge.abort();
//! issuer.close().await; // finishes the writes already queued, then closes the database
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # What is where
//!
//! - [`Issuer`] and [`IssuerBuilder`]: the service and every setting, validated by
//!   [`IssuerBuilder::build`] ([`BuildError`]).
//! - Who may log in: the built-in argon2id [`UserTable`] or your own [`CredentialVerifier`]; which clients
//!   may ask: [`ClientRegistration`].
//! - Hooks: [`AuthEventHook`] receives every [`AuthEvent`] (audit, metrics, alerts on reuse);
//!   [`ClaimsHook`] adds claims to access tokens.
//! - Keys: [`SigningKeys`], built from the [`jose`] types; the JWKS is served at [`JWKS_PATH`].
//! - [`store`]: the [`RefreshStore`](store::RefreshStore) trait and its records, for writing a backend;
//!   [`SqliteStore`] and [`MemoryStore`] ship with the crate. With the cargo feature `testing`,
//!   `store::testing` holds the contract suite every backend must pass.
//! - Time is a [`tessera_core::Clock`], set with [`IssuerBuilder::clock`].
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
mod dpop;
mod endpoints;
mod error;
mod events;
mod grants;
mod http;
mod introspection;
mod issuer;
mod keys;
mod maintenance;
mod metadata;
mod minting;
mod params;
mod password;
mod refresh;
mod sessions;
pub mod store;
mod throttle;

pub use clients::{ClientRegistration, JWT_BEARER_ASSERTION_TYPE};
pub use config::{
    BuildError, DEFAULT_GRACE, DEFAULT_GRACE_RETRIES, IssuerBuilder, MAX_GRACE, REFRESH_SECRET_FILE,
};
pub use credentials::{CredentialError, CredentialVerifier, UserTable, VerifiedUser, VerifyFuture};
pub use denylist::AccessTokenDenylist;
pub use dpop::{DEFAULT_DPOP_ALGORITHMS, DEFAULT_DPOP_PROOF_WINDOW};
pub use endpoints::{DEFAULT_ROUTER_PATH, UrlError};
pub use events::{AuthEvent, AuthEventHook, LoginFailure};
pub use grants::MAX_USERNAME_LEN;
pub use http::JWKS_PATH;
pub use issuer::Issuer;
pub use keys::SigningKeys;
pub use minting::{CLIENT_SUBJECT_PREFIX, ClaimsHook, TokenContext};
pub use password::{PasswordError, PasswordHashing};
pub use store::{MemoryStore, SqliteStore};
pub use tessera_core::jose::{self, Algorithm};
pub use throttle::ThrottlePolicy;
