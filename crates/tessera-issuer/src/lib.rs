//! Tessera's token service: RFC 9068 access tokens, rotating refresh tokens with reuse detection and a
//! grace window, DPoP-bound tokens (RFC 9449), revocation (RFC 7009), introspection (RFC 7662), metadata
//! (RFC 8414), and the stores that keep it all (SQLite; PostgreSQL behind the cargo feature `postgres`,
//! for several instances; in-memory).
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
//!     .issuer("http://127.0.0.1:8080") // the issuer identifier: https, or http on loopback
//!     .audience("demo-api")
//!     .access_ttl(Duration::from_secs(15 * 60))
//!     .signing_algorithm(Algorithm::EdDsa)
//!     .user("alice", "wonderland", ["admin"])
//!     .public_client("demo")
//!     .start(store) // keys, refresh secret and revocations loaded from the store before it answers
//!     .await?;
//!
//! let auth = issuer.auth_layer()?; // JwtAuthLayer trusting this issuer, consulting its denylist
//! let app: Router = Router::new()
//!     .nest("/auth", issuer.router(&auth)) // token, revoke, introspect, logout, sessions, denials
//!     .merge(issuer.well_known_router()) // JWKS and RFC 8414 metadata, public
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
//! # Where the service is
//!
//! The issuer identifier is a URL ([`IssuerBuilder::issuer`]): the `iss` of every access token and the
//! `issuer` of the metadata, which clients fetch from `/.well-known/oauth-authorization-server` inserted
//! after its host. The endpoints' URLs, which the metadata lists and DPoP proofs and client assertions must
//! name, follow from [`IssuerBuilder::public_url`] (default: the issuer; set it behind a proxy) and
//! [`IssuerBuilder::router_path`] (default [`DEFAULT_ROUTER_PATH`], `/auth`):
//!
//! ```
//! use tessera_issuer::{Issuer, MemoryStore};
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = Issuer::builder()
//!     .issuer("https://auth.example")
//!     .public_url("https://edge.example") // where clients reach it, e.g. behind a proxy
//!     .audience("api")
//!     .public_client("spa")
//!     .build(MemoryStore::new())?;
//! let request = http::Request::get("/.well-known/oauth-authorization-server").body(axum::body::Body::empty())?;
//! let answer = issuer.well_known_router().oneshot(request).await?;
//! let body = axum::body::to_bytes(answer.into_body(), 64 * 1024).await?;
//! let metadata: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!(metadata["issuer"], "https://auth.example");
//! assert_eq!(metadata["token_endpoint"], "https://edge.example/auth/token");
//! assert_eq!(metadata["introspection_endpoint"], "https://edge.example/auth/introspect");
//! # Ok(())
//! # }
//! ```
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
//! - the previous generation within the grace window ([`DEFAULT_GRACE`], 15 s), presented by the request
//!   that rotated it (the same client, `User-Agent` and DPoP key) and at most [`DEFAULT_GRACE_RETRIES`]
//!   times: an idempotent retry, answered with **the same successor** (so the family never forks) and a
//!   fresh access token;
//! - anything else: a replay. The family is revoked, an [`AuthEvent::ReuseDetected`] is emitted, and the
//!   answer is `invalid_grant`.
//!
//! Stores keep only `HMAC-SHA256` hashes of tokens. The successor of a token is
//! `HMAC-SHA256(server secret, presented token ‖ rotation salt)`, the salt being 32 fresh random bytes kept
//! with the family; so a retry re-derives the same successor, while the database (even with the server
//! secret) holds nothing that yields a usable token.
//!
//! **What the grace window still allows.** Someone who copied the previous refresh token, and presents it
//! within 15 s of a legitimate rotation with the same client id and `User-Agent` as the legitimate client,
//! gets the live successor; if they keep doing that at each rotation, they share the session without
//! tripping reuse detection. Retries from anywhere else, late ones and a fourth one are reuse. Binding the
//! tokens to a key removes this: a public client that logs in with a DPoP proof has its refresh tokens
//! bound to that key, and without a proof of that key a refresh token is refused, grace window or not. A
//! deployment that cannot use DPoP and has no lost-answer retries to serve can turn the window off
//! (`.grace(Duration::ZERO)`).
//!
//! # Binding tokens to a key (DPoP, RFC 9449)
//!
//! A token request that carries a `DPoP` proof gets `token_type: DPoP` and an access token bound to the
//! proof's key (`cnf.jkt`, its RFC 7638 thumbprint); a public client's refresh tokens are bound to the key
//! too. [`ClientRegistration::require_dpop`] makes proofs mandatory for a client,
//! [`IssuerBuilder::dpop_nonces`] turns on server nonces (`use_dpop_nonce`), [`IssuerBuilder::dpop_algorithms`]
//! and [`IssuerBuilder::dpop_proof_window`] tune the checks. Each proof is accepted once.
//!
//! ```
//! use serde_json::json;
//! use tessera_issuer::jose::{JwsHeader, SigningKey};
//! use tessera_issuer::{Algorithm, ClientRegistration, Issuer, MemoryStore, PasswordHashing};
//! use tower::ServiceExt as _;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = Issuer::builder()
//!     .issuer("https://auth.example")
//!     .audience("api")
//!     .password_hashing(PasswordHashing::new(64, 1)?) // cheap, for the example only
//!     .user("alice", "wonderland", Vec::<String>::new())
//!     .client(ClientRegistration::public("spa").require_dpop())
//!     .build(MemoryStore::new())?;
//! let router = issuer.router(&issuer.auth_layer()?);
//!
//! // The client's key, and a proof for this one request (what tessera-client does for you).
//! let key = SigningKey::generate(Algorithm::Es256)?;
//! let now = tessera_core::unix_seconds(std::time::SystemTime::now());
//! let claims = json!({
//!     "jti": "a-fresh-random-id", "htm": "POST", "htu": "https://auth.example/auth/token", "iat": now,
//! });
//! let proof = key.sign_jwt(JwsHeader { typ: Some("dpop+jwt"), embed_jwk: true }, &claims)?;
//!
//! let request = http::Request::post("/token")
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .header("DPoP", proof)
//!     .body(axum::body::Body::from(
//!         "grant_type=password&client_id=spa&username=alice&password=wonderland",
//!     ))?;
//! let answer = router.oneshot(request).await?;
//! let body = axum::body::to_bytes(answer.into_body(), 64 * 1024).await?;
//! let tokens: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!(tokens["token_type"], "DPoP");
//! # Ok(())
//! # }
//! ```
//!
//! The resource server checks the proof that comes with each API request (`Authorization: DPoP`); an API
//! that is not written in Rust can ask [the introspection endpoint](Issuer::router) instead, whose answer
//! carries `cnf` for bound tokens.
//!
//! # Introspection (RFC 7662)
//!
//! `POST /auth/introspect` answers confidential clients that authenticate: about tokens issued to
//! themselves, or about any access token for a client registered with
//! [`ClientRegistration::allow_introspection`] (an API). Revoked, expired, foreign and malformed tokens,
//! and every refresh token, are `{"active": false}`.
//!
//! # Under attack
//!
//! - Logins: usernames longer than [`MAX_USERNAME_LEN`] bytes are refused (`invalid_request`) before any
//!   check; repeated failures are throttled (`429 slow_down` with `Retry-After`: RFC 6749 defines no
//!   throttling code, `slow_down` is the one registered for token endpoint responses); at most
//!   [`IssuerBuilder::credential_checks`] password and client-secret checks run and wait at once, the
//!   rest are shed with `503 temporarily_unavailable` and `Retry-After`.
//! - `error_description`s never repeat what the client sent, and say the same for an unknown client
//!   and a wrong secret.
//! - A client-credentials token's `sub` is [`CLIENT_SUBJECT_PREFIX`] and the client id, never a
//!   username, and the user endpoints (`/sessions`, `/logout-all`) refuse it with `403`.

mod auth;
mod clients;
mod config;
mod credentials;
mod denylist;
mod dpop;
mod endpoints;
mod error;
mod events;
mod feed;
mod grants;
mod http;
mod introspection;
mod issuer;
mod keys;
mod maintenance;
mod metadata;
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
    BuildError, DEFAULT_GRACE, DEFAULT_GRACE_RETRIES, DEFAULT_MAX_LEEWAY, IssuerBuilder, MAX_GRACE,
    MIN_FEED_TOKEN_LEN, REFRESH_SECRET_FILE, StartError,
};
pub use credentials::{CredentialError, CredentialVerifier, UserTable, VerifiedUser, VerifyFuture};
pub use dpop::{DEFAULT_DPOP_ALGORITHMS, DEFAULT_DPOP_PROOF_WINDOW};
pub use endpoints::{DEFAULT_ROUTER_PATH, UrlError};
pub use events::{AuthEvent, AuthEventHook, LoginFailure};
pub use grants::MAX_USERNAME_LEN;
pub use http::JWKS_PATH;
pub use issuer::{Issuer, NotReady};
pub use keys::{
    KEY_ENCRYPTION_SECRET_LEN, KeyState, SigningKeyStatus, SigningKeys, StoredKeyError,
};
pub use minting::{CLIENT_SUBJECT_PREFIX, ClaimsHook, TokenContext};
pub use password::{PasswordError, PasswordHashing};
pub use store::{MemoryStore, SqliteStore};
#[cfg(feature = "postgres")]
pub use store::{PostgresStore, PostgresStoreOptions};
pub use tessera_core::jose::{self, Algorithm};
pub use tessera_server::{Availability, Denial, DenialPage, Denylist};
pub use throttle::ThrottlePolicy;
