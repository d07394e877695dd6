//! Tessera client: a [reqwest-middleware] that attaches a bearer token, refreshes it once for everyone, and
//! replays.
//!
//! Put [`AuthMiddleware`] on a `reqwest_middleware::ClientWithMiddleware` and call APIs protected by
//! Tessera's `JwtAuthLayer` (or any OAuth 2.0 resource server):
//!
//! - **Attach**: `Authorization: Bearer` goes only to the origins you allow. Redirects are followed by reqwest
//!   below the middleware, and reqwest drops `Authorization` whenever a redirect changes scheme, host or
//!   port, so the token never follows a redirect to another origin. A request that already carries an
//!   `Authorization` header is sent as it is.
//! - **Proactive refresh**: a token within 60 s (+0-20 % jitter) of its expiry is refreshed before sending.
//!   Expiry is `expires_in` measured on a monotonic clock from when the answer arrived (fallback: the JWT
//!   `exp`, read unverified). Optionally also in the background at half the lifetime.
//! - **Reactive refresh**: a 401 with `Token-Expired: true` or `WWW-Authenticate: Bearer
//!   error="invalid_token"` refreshes and replays the request once. Other 401s, `insufficient_scope` and
//!   403 pass through.
//! - **Single flight**: one token request however many requests need it; each request remembers the
//!   [`TokenGeneration`] it used, so a late 401 for an old token replays with the current one instead of
//!   refreshing again.
//! - **Replay**: buffered bodies are replayed; a streaming body cannot be, so the token is still refreshed
//!   and [`Error::BodyNotReplayable`] hands back the 401. At most one replay per request: no loop.
//! - **Failures**: a rejected refresh (`invalid_grant`, any 400/401) ends the session: tokens cleared,
//!   `on_session_expired` called once, [`Error::ReauthenticationRequired`] for every waiter. Timeouts, 5xx
//!   and network errors keep the tokens, keep serving a still-valid access token, and back off with jitter.
//! - **Persistence**: a [`TokenStore`] ([`MemoryTokenStore`], [`FileTokenStore`]) and an awaited
//!   `on_tokens_changed` hook must accept a new pair before it is used.
//! - **Reporting**: [`SkipAuth`] in a request's extensions opts it out; every response's extensions carry an
//!   [`AuthOutcome`].
//!
//! The crate enables no reqwest features: no TLS backend is forced on you. Enable one (e.g. `rustls`) on
//! your own `reqwest` dependency; Cargo unifies the features.
//!
//! ```
//! use reqwest_middleware::ClientBuilder;
//! use tessera_client::{AuthMiddleware, AuthOutcome, RefreshContext, RefreshError, TokenSet};
//! use tessera_core::TokenResponse;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let api = format!("http://{}", listener.local_addr()?);
//! # let echo = axum::Router::new().route("/whoami", axum::routing::get(|headers: axum::http::HeaderMap| async move {
//! #     headers.get("authorization").map(|value| value.to_str().unwrap_or_default().to_owned()).unwrap_or_default()
//! # }));
//! # tokio::spawn(async move { axum::serve(listener, echo).await });
//! // Any closure can refresh; the built-in `RefreshTokenGrant` calls a token endpoint.
//! let refresher = |_context: RefreshContext| async {
//!     Ok::<_, RefreshError>(TokenResponse {
//!         access_token: "fresh-token".into(),
//!         token_type: "Bearer".into(),
//!         expires_in: Some(900),
//!         refresh_token: Some("next-refresh-token".into()),
//!         scope: None,
//!     })
//! };
//! let auth = AuthMiddleware::builder(refresher).allow_origin(&api).build()?;
//! let client = ClientBuilder::new(reqwest::Client::new()).with(auth.clone()).build();
//!
//! // After logging in, hand the tokens over.
//! auth.set_tokens(TokenSet::new("login-token").with_refresh_token("refresh-token")).await?;
//!
//! let response = client.get(format!("{api}/whoami")).send().await?;
//! assert_eq!(response.extensions().get::<AuthOutcome>().and_then(|outcome| outcome.generation()), auth.generation());
//! assert_eq!(response.text().await?, "Bearer login-token");
//! # Ok(())
//! # }
//! ```
//!
//! [reqwest-middleware]: https://docs.rs/reqwest-middleware

mod builder;
mod challenge;
mod dpop;
mod error;
mod extensions;
mod middleware;
mod origin;
mod refresher;
mod session;
mod store;
mod tokens;

pub use builder::AuthMiddlewareBuilder;
pub use dpop::{Dpop, DpopError, DpopKey};
pub use error::{BuildError, Error};
pub use extensions::{AuthOutcome, SkipAuth, TokenGeneration};
pub use middleware::AuthMiddleware;
pub use refresher::{
    AuthorizationServerMetadata, ClientAuth, ClientCredentialsGrant, DiscoveryError, PrivateKeyJwt,
    RefreshContext, RefreshError, RefreshTokenGrant, Refresher, ReservedParameter,
};
pub use store::{FileTokenStore, MemoryTokenStore, StoreError, StoreLock, TokenStore};
pub use tessera_core::{Clock, ManualClock, SystemClock};
pub use tokens::{RefreshToken, TokenSet};
