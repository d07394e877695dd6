//! Resource-server side of Tessera: [`JwtAuthLayer`], a tower layer that verifies JWT access tokens
//! (bearer, or DPoP-bound with a proof) and tells an *expired* token (refresh and retry) from an *invalid*
//! one (log in again).
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use jsonwebtoken::{EncodingKey, Header, encode};
//! use tessera_server::{Claims, JwtAuthLayer};
//! use tower::ServiceExt;
//!
//! async fn me(Claims(claims): Claims) -> String {
//!     format!("hello {}", claims.sub)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"an HS256 secret of at least 32 bytes!";
//! let auth = JwtAuthLayer::builder()
//!     .hmac_secret(secret)
//!     .issuer("https://auth.example")
//!     .audience("api")
//!     .build()?;
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .route("/admin", get(|| async { "admin" }).route_layer(auth.require_scope("admin")))
//!     .layer(auth);
//!
//! let now = jsonwebtoken::get_current_timestamp();
//! let claims = serde_json::json!({
//!     "iss": "https://auth.example", "aud": "api", "sub": "alice", "client_id": "web",
//!     "jti": "t1", "iat": now, "exp": now + 300, "scope": "read",
//! });
//! let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))?;
//!
//! let request = Request::get("/me").header("authorization", format!("Bearer {token}")).body(Body::empty())?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let request = Request::get("/admin").header("authorization", format!("Bearer {token}")).body(Body::empty())?;
//! let response = app.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::FORBIDDEN);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="admin""#
//! );
//!
//! let response = app.oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="api""#);
//! # Ok(())
//! # }
//! ```
//!
//! # The answers (the wire contract)
//!
//! | case | status | `WWW-Authenticate` | extra |
//! |---|---|---|---|
//! | no token | 401 | `Bearer realm="api"` (plus `DPoP realm="api", algs="..."` with DPoP on; only that one when DPoP is required) | body `{"error":"unauthorized"}` |
//! | malformed `Authorization`, two tokens | 400 | `error="invalid_request"` | |
//! | bad signature, algorithm, `kid`, issuer, audience, `nbf`, malformed or revoked token | 401 | `error="invalid_token"` | |
//! | expired (and otherwise valid) | 401 | `error="invalid_token"`, `error_description="The access token expired"` | `Token-Expired: true` |
//! | lacks scope or role | 403 | `error="insufficient_scope", scope="..."` | |
//! | token cookie on an unsafe method, not same-origin (see [`JwtAuthBuilder::token_cookie`]) | 403 | none | `invalid_request` |
//! | remote keys never fetched, revocation list down | 503 | none | `temporarily_unavailable` |
//! | DPoP-bound token (`cnf.jkt`) sent as `Bearer`; bearer token where DPoP is required | 401 | `DPoP error="invalid_token", error_description="...", algs="..."` | |
//! | DPoP proof missing, repeated, malformed or mismatched (`htm`, `htu`, `iat`, `jti` replay, `ath`, key ≠ `cnf.jkt`) | 401 | `DPoP error="invalid_dpop_proof", error_description="...", algs="..."` | |
//! | server nonce required ([`Dpop::require_nonce`]) | 401 | `DPoP error="use_dpop_nonce", ...` | `DPoP-Nonce: ...` |
//! | expired DPoP-bound token, proof valid | 401 | `DPoP error="invalid_token", ...` | `Token-Expired: true` |
//!
//! A token sent with the DPoP scheme is answered with `DPoP` challenges, a bearer token with `Bearer` ones.
//! With [protected-resource metadata](ResourceMetadata), every challenge also carries
//! `resource_metadata="..."` (RFC 9728 §5.1).
//!
//! Every answer is an [`AuthRejection`] rendering itself; bodies are [`tessera_core::ErrorResponse`] JSON
//! unless a [`RejectionBody`] renders them differently. The extractors behind a layer answer with its realm
//! and body too, and count in its [`AuthStats::rejected`]. Each rejection emits one `tracing` event with
//! its reason; the token is never logged.
//!
//! # Verification
//!
//! Keys ([`JwtKey`]: HMAC secret, PEM, JWK, JWKS, or [`RemoteJwks`]) are each bound to the algorithms they
//! may verify: the one they were loaded for (a PEM, a JWK with `alg`), or for a JWK without `alg` its key
//! type's family, never across families (RSA: RS256 and PS256; Ed25519: EdDSA and RFC 9864's `Ed25519`;
//! EC: the curve's algorithm). The token's `alg` must be one of them and inside the layer's
//! [allow-list](JwtAuthBuilder::algorithms); it never picks the verification method. Its `kid` picks among
//! live keys. Checks run in the order signature, `iss`, `aud`, (strict RFC 9068 requirements), then the
//! DPoP binding, `nbf`, `exp`, so an "expired" answer is only ever given to a genuine token presented the
//! way it must be, and a forged one cannot trigger a refresh.
//!
//! # DPoP (RFC 9449)
//!
//! One builder call, [`JwtAuthBuilder::dpop`], turns it on: `Authorization: DPoP <token>` is then accepted
//! with one `DPoP` proof, signed by the key the token is bound to (`cnf.jkt`) for this request's method and
//! public URL, fresh (`iat`), unused (`jti`, remembered in bounded memory) and for this token (`ath`).
//! [`Dpop::required`] refuses bearer tokens; [`Dpop::require_nonce`] hands out rotating server nonces.
//! A token bound to a key is refused as a bearer token whatever the mode, so a stolen one is worth nothing
//! without the key. The verified-token cache still serves the access token; the proof costs one signature
//! verification per request, about 90% of its price: on the machine this was written on, a cached
//! bearer request took 0.56 µs (5.6k instructions), a DPoP one 45 µs with an EdDSA proof (547k) and 65 µs
//! with an ES256 proof (814k). `cargo bench -p tessera-server --bench layer -- dpop` and
//! `--bench instructions` (callgrind) measure it.
//!
//! ```
//! use tessera_server::{Dpop, JwtAuthLayer, RemoteJwks, ResourceMetadata};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jwks = RemoteJwks::new("https://auth.example/.well-known/jwks.json")?;
//! let auth = JwtAuthLayer::builder()
//!     .remote_jwks(jwks) // or RemoteJwks::discover("https://auth.example").await?
//!     .issuer("https://auth.example")
//!     .audience("https://api.example")
//!     .dpop(Dpop::new("https://api.example"))
//!     .resource_metadata(ResourceMetadata::new("https://api.example"))
//!     .build()?;
//! # let _ = auth;
//! # Ok(())
//! # }
//! ```
//!
//! # Discovery
//!
//! [`RemoteJwks::discover`] finds an issuer's key set from its identifier: RFC 8414 metadata
//! (`/.well-known/oauth-authorization-server`), or OpenID Connect discovery for providers that serve only
//! that, whose `issuer` must be exactly the identifier. The other way round, [`ResourceMetadata`] publishes
//! this API's RFC 9728 metadata ([`JwtAuthLayer::resource_metadata_router`]) and names it in challenges.
//!
//! # Tokens from other providers
//!
//! Checked against a live node `oidc-provider` 9 (`tests/interop_oidc_provider.rs`): discovery, RS256,
//! PS256, ES256, EdDSA and Ed25519 tokens (its RSA and OKP keys carry no `alg`), `aud`, `scope`, key
//! rotation, a JWKS without `Cache-Control` (refreshed every 15 minutes), DPoP-bound tokens. Checked from
//! the providers' documented token shapes (`tests/providers.rs`):
//!
//! - Keycloak: roles live in `realm_access.roles` and `resource_access.<client>.roles`; read them with
//!   [`JwtAuthBuilder::role_claims`]. Its audience is often `account` unless an audience mapper adds yours.
//! - Entra ID: `scp` (space-separated) and `roles` are read as they are; v2 tokens' `iss` ends in `/v2.0`.
//! - Okta: `scp` is an array, read as the scopes.
//! - Auth0: `scope` is standard; `aud` is often an array (the API and `userinfo`), which matches when one
//!   element is this audience.
//!
//! Encryption keys (`use: enc`, or an encryption `alg`) in a JWKS are skipped; a key given only as a
//! certificate chain (`x5c`) is read from its first certificate.
//!
//! # The verified-token cache
//!
//! On by default ([`JwtAuthBuilder::cache_capacity`]). A token seen before skips the charset check, the
//! signature and the claims parsing; its lifetime, the liveness of the key that verified it, the revocation
//! check and the route's policy are still checked on every request. The answer is always the one a full
//! verification would give at that moment: once a token it saw valid has expired, the cache answers
//! `401 Token-Expired` itself for [`DEFAULT_EXPIRED_TOKEN_RETENTION`] (configurable), so a client whose
//! token just expired costs no signature verification either. A token whose key left the key set is never
//! answered from the cache.
//!
//! # Revocation
//!
//! A [`RevocationCheck`] vetoes verified tokens. [`Denylist`] is the in-memory one a token service keeps
//! (by `jti`, by session `sid`, by subject and `iat`): lock-free, answered without leaving the synchronous
//! path, and refusing everything (503) until it is loaded, so a process that has just started never accepts
//! a revoked token. An API process that is not the token service uses [`RemoteDenylist`], which keeps one
//! in step with the token service's denials feed, polling in the background (1 s by default), and fails
//! closed when the feed has been unreachable for longer than its grace (2 min by default).
//!
//! # Browsers and `Token-Expired`
//!
//! A script on another origin can only read `Token-Expired` (and `DPoP-Nonce`, with nonces on) if the API
//! lists it in `Access-Control-Expose-Headers`; with tower-http's CORS layer, put the CORS layer outside
//! this one:
//!
//! ```
//! use axum::{Router, routing::get};
//! use http::HeaderName;
//! use tessera_core::header::TOKEN_EXPIRED;
//! use tower_http::cors::{AllowOrigin, CorsLayer};
//! # let auth = tessera_server::JwtAuthLayer::builder().hmac_secret([7; 32]).allow_any_issuer()
//! #     .allow_any_audience().build().unwrap();
//!
//! let cors = CorsLayer::new()
//!     .allow_origin(AllowOrigin::exact("https://app.example".parse().unwrap()))
//!     .allow_headers([http::header::AUTHORIZATION])
//!     .expose_headers([HeaderName::from_static(TOKEN_EXPIRED)]);
//! let app: Router = Router::new().route("/me", get(|| async { "me" })).layer(auth).layer(cors);
//! # let _ = app;
//! ```

mod auth;
mod cache;
mod cross_origin;
mod denylist;
#[cfg(feature = "remote-jwks")]
mod discovery;
mod dpop;
mod extract;
#[cfg(any(feature = "remote-jwks", feature = "remote-denylist"))]
mod fetch;
mod keyring;
mod prometheus;
mod rejection;
#[cfg(feature = "remote-jwks")]
mod remote;
#[cfg(feature = "remote-denylist")]
mod remote_denylist;
mod resource_metadata;
mod revocation;
mod source;
mod stats;
mod token;
mod verify;

pub use auth::{
    BuildError, DEFAULT_CACHE_CAPACITY, DEFAULT_EXPIRED_TOKEN_RETENTION, DEFAULT_LEEWAY, JwtAuth,
    JwtAuthBuilder, JwtAuthLayer, ResponseFuture,
};
pub use denylist::{
    Availability, Denial, DenialKind, DenialPage, DenialTarget, Denylist, DenylistUnavailable,
};
#[cfg(feature = "remote-jwks")]
pub use discovery::DiscoveryError;
pub use dpop::{DEFAULT_NONCE_ROTATION, DEFAULT_PROOF_WINDOW, DEFAULT_REPLAY_CAPACITY, Dpop};
pub use extract::{Claims, ClaimsRejection};
pub use keyring::KeyRing;
pub use prometheus::{MetricKind, PrometheusText};
pub use rejection::{AuthRejection, JsonErrorBody, RejectionBody, RenderedBody};
#[cfg(feature = "remote-jwks")]
pub use remote::{JwksFetchError, RemoteJwks, RemoteJwksBuilder, RemoteJwksError};
#[cfg(feature = "remote-denylist")]
pub use remote_denylist::{
    DenialsFetchError, RemoteDenylist, RemoteDenylistBuilder, RemoteDenylistError,
    RemoteDenylistStats,
};
pub use resource_metadata::ResourceMetadata;
pub use revocation::{
    RevocationAnswer, RevocationCheck, RevocationError, RevocationFuture, TokenStatus,
};
pub use source::DEFAULT_MAX_TOKEN_LEN;
pub use stats::AuthStats;
pub use tessera_core::jose::{
    Algorithm, JwtKey, KeyError, KeySet, MIN_HMAC_SECRET_LEN, ProofError,
};
pub use tessera_core::{Clock, ManualClock, SystemClock};
pub use token::VerifiedToken;
