//! Tessera's token service: RFC 9068 access tokens, rotating refresh tokens with reuse detection and a
//! grace window, DPoP-bound tokens (RFC 9449), revocation (RFC 7009), introspection (RFC 7662), metadata
//! (RFC 8414), and the stores that keep it all (SQLite, in-memory).
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
//!     .issuer("http://127.0.0.1:8080") // the issuer identifier: https, or http on loopback
//!     .audience("demo-api")
//!     .access_ttl(Duration::from_secs(15 * 60))
//!     .signing_algorithm(Algorithm::EdDsa)
//!     .key_dir(&key_dir) // keys and the refresh secret persist here
//!     .user("alice", "wonderland", ["admin"])
//!     .public_client("demo")
//!     .build(store)?;
//!
//! let auth = issuer.auth_layer()?; // JwtAuthLayer trusting this issuer, consulting its denylist
//! let app: Router = Router::new()
//!     .nest("/auth", issuer.router(&auth)) // token, revoke, introspect, logout, sessions
//!     .merge(issuer.well_known_router()); // JWKS and RFC 8414 metadata, public
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
