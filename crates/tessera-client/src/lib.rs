//! Tessera client: a [reqwest-middleware] that attaches an access token (bearer, or DPoP-bound), refreshes it
//! once for everyone, and replays.
//!
//! Put [`AuthMiddleware`] on a `reqwest_middleware::ClientWithMiddleware` and call APIs protected by
//! Tessera's `JwtAuthLayer` (or any OAuth 2.0 resource server):
//!
//! - **Attach**: `Authorization: Bearer` (or `DPoP`, see [below](#dpop-sender-constrained-tokens)) goes only
//!   to the origins you allow. Redirects are followed by reqwest below the middleware, and reqwest drops
//!   `Authorization` whenever a redirect changes scheme, host or port, so the token never follows a
//!   redirect to another origin. A request that already carries an `Authorization` header is sent as it is.
//! - **Proactive refresh**: a token within 60 s (+0-20 % jitter) of its expiry is refreshed before sending.
//!   Expiry is `expires_in` (a number, or a string of digits as some providers send it) measured on a
//!   monotonic clock from when the answer arrived (fallback: the JWT `exp`, read unverified). Optionally
//!   also in the background at half the lifetime.
//! - **Reactive refresh**: a 401 with `Token-Expired: true` refreshes and replays the request once. A 401
//!   whose challenge says `error="invalid_token"` without that signal (one per scheme, whatever else the
//!   `WWW-Authenticate` header lists) refreshes too, but only once in a row: if the token that refresh
//!   brought is refused the same way before any API accepted it, the answer is handed back, so an API that
//!   refuses the token for another reason (audience, revocation) does not cost a rotation per request.
//!   Other 401s, `insufficient_scope` and 403 pass through.
//! - **Single flight**: one token request however many requests need it; each request remembers the
//!   [`TokenGeneration`] it used, so a late 401 for an old token replays with the current one instead of
//!   refreshing again.
//! - **Replay**: buffered bodies are replayed; a streaming body cannot be, so the token is still refreshed
//!   and [`Error::BodyNotReplayable`] hands back the 401. At most one replay per request: no loop.
//! - **Failures**: a refresh the token endpoint refuses (`invalid_grant` or `invalid_client`, with 400,
//!   401 or the 403 some providers use; any other 400 or 401 too) ends the session: tokens cleared,
//!   `on_session_expired` called once, [`Error::ReauthenticationRequired`] for every waiter. Timeouts, 5xx,
//!   network errors and codes retrying can fix (`temporarily_unavailable`, `slow_down`, `use_dpop_nonce`)
//!   keep the tokens, keep serving a still-valid access token, and back off with jitter.
//! - **Lost answers**: a refresh whose answer never arrives may still have rotated the refresh token on
//!   the server. The middleware keeps waiting for the late answer, presents the refresh token once more
//!   only while that retry still reaches the token service inside its grace window
//!   ([`AuthMiddlewareBuilder::server_grace`], checked against the refresh timeout when building), and
//!   never after: a refresh token the service may have consumed is never replayed into its reuse
//!   detection. If no answer ever comes, the session ends with [`RefreshError::OutcomeUnknown`].
//! - **Token requests**: the built-in grants ([`RefreshTokenGrant`], [`ClientCredentialsGrant`]) never
//!   follow a redirect, whatever `reqwest::Client` you give them (a 3xx is refused with
//!   [`RefreshError::Redirected`], and nothing is sent on), and read answers with a 64 KiB cap
//!   ([`RefreshError::ResponseTooLarge`]). They send RFC 8707 `resource` indicators, `audience` and any
//!   other parameter a provider wants, authenticate with a secret or `private_key_jwt` ([`ClientAuth`],
//!   whose [`apply`](ClientAuth::apply) custom refreshers use too), and can be
//!   [discovered](AuthorizationServerMetadata::discover) from an issuer URL (RFC 8414, or OpenID Connect
//!   discovery).
//! - **Persistence**: a [`TokenStore`] ([`MemoryTokenStore`], [`FileTokenStore`]) and an awaited
//!   `on_tokens_changed` hook must accept a new pair before it is used. A [`FileTokenStore`] may be shared
//!   by several processes: it locks the file from re-reading it through the refresh to saving, so a second
//!   process takes the pair the first one saved instead of presenting a consumed refresh token.
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
//! # DPoP: sender-constrained tokens
//!
//! A bearer token works for whoever holds it: an access or refresh token copied from a log, a backup, a
//! proxy or a compromised dependency is as good as the real client. With DPoP (RFC 9449) the client holds a
//! key pair, and the token endpoint binds the tokens it issues to the public key's thumbprint (`cnf.jkt`);
//! every request then carries a fresh proof signed with the private key, for that one method and URL, and
//! for that one access token (`ath`). A stolen token is useless without the key, a captured proof cannot
//! be replayed for another request (servers reject a `jti` seen before, and a stale `iat` or nonce), and
//! the token service's grace window stops handing a thief the live successor of a stolen refresh token,
//! because the refresh needs a proof from the key too.
//!
//! A proof names one method and URL, so one that a redirect carries to another origin is worth nothing there
//! (and reqwest drops the `Authorization` header it would go with).
//!
//! It does not protect against code running inside the client process, which can use the key as the
//! client does (keep the key as private as the refresh token: [`FileTokenStore`] writes both to one
//! owner-only file); nor does it hide tokens on the wire (TLS does that).
//!
//! One builder call turns it on: [`AuthMiddlewareBuilder::dpop`] with a [`DpopKey`] (EdDSA or ES256,
//! generated or loaded). Then:
//! - token requests of the built-in grants carry a proof (no `ath`); a token endpoint that answers
//!   `use_dpop_nonce` is asked once more with its nonce. A custom [`Refresher`] finds the same proof maker
//!   in [`RefreshContext::dpop`], and a login the application makes itself uses [`AuthMiddleware::dpop`];
//! - every API request presenting a `token_type: DPoP` token gets `Authorization: DPoP <token>` and a new
//!   proof (`typ` `dpop+jwt`, the public `jwk`, `htm`, `htu` without query and fragment, `iat`, a 128-bit
//!   `jti`, `ath`, and the origin's latest nonce). A `WWW-Authenticate: DPoP error="use_dpop_nonce"` answer
//!   is sent once more with the nonce it brought; nonces are remembered per origin (the 32 most recent
//!   origins) from every `DPoP-Nonce` header. Refresh, replay and proactive refresh work as without DPoP,
//!   and a replay gets a new proof;
//! - the key is saved with the tokens it bound ([`TokenSet::dpop_key`]), so a restart that loads them keeps
//!   the binding; token files written before DPoP still load.
//!
//! What it costs: one signature per request (about 13 µs with EdDSA and 20 µs with ES256 on the
//! development machine, `cargo bench -p tessera-client --bench overhead -- dpop_proof`; the `ath` hash is
//! computed once per token), about 400 bytes of `DPoP` header per
//! request, and with a server that demands nonces, one extra round trip whenever an origin's nonce changes.
//! A server that does not support DPoP answers with `Bearer` tokens, which are sent as bearer tokens.
//!
//! ```
//! use reqwest_middleware::ClientBuilder;
//! use tessera_client::{AuthMiddleware, DpopKey, RefreshContext, RefreshError};
//! use tessera_core::TokenResponse;
//! use tessera_core::jose::Algorithm;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let api = format!("http://{}", listener.local_addr()?);
//! # let echo = axum::Router::new().route("/whoami", axum::routing::get(|headers: axum::http::HeaderMap| async move {
//! #     let header = |name: &str| headers.get(name).map(|value| value.to_str().unwrap_or_default().to_owned()).unwrap_or_default();
//! #     format!("{}|{}", header("authorization"), header("dpop"))
//! # }));
//! # tokio::spawn(async move { axum::serve(listener, echo).await });
//! // A refresher standing in for a DPoP-capable token endpoint (the built-in grants sign for you): it gets
//! // the proof maker, and answers as such an endpoint does.
//! let refresher = |context: RefreshContext| async move {
//!     let dpop = context.dpop().ok_or_else(|| RefreshError::Other("DPoP is on".into()))?;
//!     let _proof = dpop.token_request_proof(&"https://auth.example/token".parse().unwrap())?;
//!     Ok::<_, RefreshError>(TokenResponse {
//!         access_token: "bound-token".into(),
//!         token_type: "DPoP".into(),
//!         expires_in: Some(900),
//!         refresh_token: Some("next-refresh-token".into()),
//!         scope: None,
//!     })
//! };
//! let auth = AuthMiddleware::builder(refresher)
//!     .allow_origin(&api)
//!     .dpop(DpopKey::generate(Algorithm::EdDsa)?)
//!     .build()?;
//! let client = ClientBuilder::new(reqwest::Client::new()).with(auth.clone()).build();
//!
//! let seen = client.get(format!("{api}/whoami?page=1")).send().await?.text().await?;
//! let (authorization, proof) = seen.split_once('|').unwrap();
//! assert_eq!(authorization, "DPoP bound-token");
//! let proof = tessera_core::jose::Jws::parse(proof)?;
//! assert_eq!(proof.typ(), Some("dpop+jwt"));
//! let claims: serde_json::Value = proof.unverified_claims()?;
//! assert_eq!(claims["htu"], format!("{api}/whoami"));
//! assert_eq!(auth.tokens().unwrap().dpop_key().unwrap().thumbprint(), auth.dpop().unwrap().key().thumbprint());
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
