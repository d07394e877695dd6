//! A backend-for-frontend for single-page apps: the browser never holds a token.
//!
//! The proxy serves a small static SPA and keeps every signed-in browser's token pair server-side, each
//! session with its own `tessera-client` middleware, so the access token is refreshed (once, however many
//! tabs call at the same time) without the page noticing. The browser holds only an `HttpOnly`,
//! `SameSite=Strict` session cookie; state-changing requests must also come from the proxy's origin and
//! carry the session's CSRF token.
//!
//! Routes: `GET /` (the SPA), `GET /session`, `POST /session/login`, `POST /session/logout`, and `/api/*`
//! forwarded to the API server with the session's access token. Every answer carries
//! `X-Content-Type-Options: nosniff`.
//!
//! Sessions end on logout, after `idle_timeout` without a request (a background sweep finds them even if
//! the browser never comes back), or when the token service refuses their refresh. Whenever a session ends
//! the proxy revokes its refresh-token family; a revocation that fails is retried at every sweep. Logout
//! answers success only once the token service confirmed the revocation: until then the user stays
//! signed in and is told so.

mod guard;
mod sessions;
mod upstream;

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::{Deserialize, Serialize};
use tower_http::set_header::SetResponseHeaderLayer;

use guard::CookiePolicy;
pub use sessions::SessionLimits;
use sessions::{Lookup, Session, Sessions};
pub use upstream::{MAX_API_RESPONSE_BYTES, MAX_TOKEN_RESPONSE_BYTES, Upstream};

/// Largest request body the proxy forwards or parses.
const BODY_LIMIT: usize = 64 * 1024;

/// Set on a forwarded answer when the proxy had to refresh the session's access token for it.
pub const REFRESHED_HEADER: &str = "x-tessera-refreshed";

/// Where the proxy sends requests and how it presents itself.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The origin browsers load the SPA from, e.g. `http://127.0.0.1:8081` or `https://app.example` when a
    /// TLS-terminating front end sits before the proxy. State-changing requests must carry it as `Origin`;
    /// `https://` turns on the `Secure` flag and the `__Host-` cookie prefix.
    pub public_origin: String,
    /// Sessions end after this long without a request; their token family is revoked.
    pub idle_timeout: Duration,
    /// How many sessions the proxy holds.
    pub limits: SessionLimits,
}

impl ProxyConfig {
    /// Serving `public_origin`, with 30-minute idle sessions and the default [`SessionLimits`].
    pub fn new(public_origin: impl Into<String>) -> Self {
        ProxyConfig {
            public_origin: public_origin.into(),
            idle_timeout: Duration::from_secs(30 * 60),
            limits: SessionLimits::default(),
        }
    }

    /// How often the sweeper looks for idle sessions: a quarter of the idle timeout, so a session ends at
    /// most 25 % late, between 50 ms and a minute.
    fn sweep_interval(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(60))
    }
}

/// The proxy's routes, ready to serve. Spawns the idle-session sweeper (so call it inside a tokio
/// runtime); the sweeper stops once the router and all its clones are dropped.
pub fn router(config: ProxyConfig, upstream: Upstream) -> Router {
    let proxy = Arc::new(Proxy {
        cookie: CookiePolicy::for_origin(&config.public_origin),
        sessions: Sessions::new(config.idle_timeout, config.limits),
        unrevoked: Mutex::new(Vec::new()),
        config,
        upstream,
    });
    spawn_sweeper(Arc::downgrade(&proxy), proxy.config.sweep_interval());
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", include_str!("spa/index.html")) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("spa/app.js")) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("spa/app.css")) }),
        )
        .route("/session", get(current_session))
        .route("/session/login", post(login))
        .route("/session/logout", post(logout))
        .route("/api/{*path}", any(forward))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Forwarded API answers included: a browser must never sniff a JSON answer into HTML or script.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(proxy)
}

/// Ends idle sessions every `every`, and retries the revocations that failed, until the proxy is gone.
fn spawn_sweeper(proxy: Weak<Proxy>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(proxy) = proxy.upgrade() else {
                return;
            };
            proxy.sweep().await;
        }
    });
}

struct Proxy {
    config: ProxyConfig,
    cookie: CookiePolicy,
    sessions: Sessions,
    /// Ended sessions whose family the token service has not confirmed revoked yet, oldest first.
    unrevoked: Mutex<Vec<Arc<Session>>>,
    upstream: Upstream,
}

impl Proxy {
    /// The live session the request's cookie names.
    fn session(self: &Arc<Self>, headers: &HeaderMap) -> Result<Arc<Session>, ProxyError> {
        let id = self
            .cookie
            .session_id(headers)
            .ok_or(ProxyError::NotSignedIn)?;
        match self.sessions.lookup(id) {
            Lookup::Live(session) => Ok(session),
            Lookup::Expired(session) => {
                self.end_in_background(session);
                Err(ProxyError::SessionEnded)
            }
            Lookup::Unknown => Err(ProxyError::SessionEnded),
        }
    }

    /// Revokes the family of a session that ended, without making the request wait.
    fn end_in_background(self: &Arc<Self>, session: Arc<Session>) {
        let proxy = Arc::clone(self);
        tokio::spawn(async move { proxy.revoke_or_keep(session).await });
    }

    /// Revokes the family of a session that ended; if the token service does not confirm it, keeps the
    /// session for the next sweep. At most [`SessionLimits::max_sessions`] wait; beyond that the oldest is
    /// given up (its family then lives until the token service's own idle timeout), loudly.
    async fn revoke_or_keep(&self, session: Arc<Session>) {
        let Err(error) = self.upstream.revoke(&session.api).await else {
            return;
        };
        tracing::warn!(%error, "could not revoke an ended session's token family; retrying at the next sweep");
        let mut unrevoked = self
            .unrevoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        unrevoked.push(session);
        let excess = unrevoked
            .len()
            .saturating_sub(self.config.limits.max_sessions);
        if excess > 0 {
            unrevoked.drain(..excess);
            tracing::error!(
                given_up = excess,
                "too many unconfirmed revocations; the oldest families stay live until the token service's idle timeout"
            );
        }
    }

    /// One round of the sweeper: ends idle sessions and retries unconfirmed revocations.
    async fn sweep(&self) {
        let mut ended = self.sessions.sweep_idle();
        ended.append(
            &mut self
                .unrevoked
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if !ended.is_empty() {
            tracing::debug!(
                sessions = ended.len(),
                "revoking the families of ended sessions"
            );
        }
        for session in ended {
            self.revoke_or_keep(session).await;
        }
    }
}

/// The SPA's static files: no inline script, so the CSP can forbid it.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body).into_response()
}

/// What the page learns about its session: who is signed in and the CSRF token to send back. Never a
/// token of the API.
#[derive(Serialize)]
struct SessionView {
    user: String,
    csrf_token: String,
}

impl SessionView {
    fn of(session: &Session) -> SessionView {
        SessionView {
            user: session.user.clone(),
            csrf_token: session.csrf_token.clone(),
        }
    }
}

async fn current_session(State(proxy): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
    match proxy.session(&headers) {
        Ok(session) => no_store(axum::Json(SessionView::of(&session))),
        Err(error) => error.into_response_clearing(&proxy.cookie, &headers),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(proxy): State<Arc<Proxy>>, headers: HeaderMap, body: Bytes) -> Response {
    match sign_in(&proxy, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn sign_in(
    proxy: &Arc<Proxy>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ProxyError> {
    guard::check_origin(headers, &proxy.config.public_origin)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return Err(ProxyError::BadRequest(
            "send the login as application/json".into(),
        ));
    }
    let form: LoginForm = serde_json::from_slice(body).map_err(|error| {
        ProxyError::BadRequest(format!(
            "the login body is not {{username, password}}: {error}"
        ))
    })?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    let api = proxy
        .upstream
        .sign_in(&form.username, &form.password, user_agent)
        .await?;
    let csrf_token = sessions::random_token().map_err(|_| ProxyError::Randomness)?;
    let session = Session::new(form.username, csrf_token, api);
    let view = SessionView::of(&session);

    // A fresh id on every login (no session fixation); the browser's previous session, if any, ends.
    if let Some(previous) = proxy
        .cookie
        .session_id(headers)
        .and_then(|id| proxy.sessions.remove(id))
    {
        proxy.end_in_background(previous);
    }
    let admission = proxy
        .sessions
        .insert(session)
        .map_err(|_| ProxyError::Randomness)?;
    for ended in admission.ended {
        proxy.end_in_background(ended);
    }
    let id = match admission.outcome {
        Ok(id) => id,
        Err(refused) => {
            // The token service started a family for this login; it must not outlive the refusal.
            proxy.end_in_background(refused.session);
            return Err(ProxyError::Busy(refused.retry_after));
        }
    };
    Ok((
        [(header::SET_COOKIE, proxy.cookie.set(&id))],
        no_store(axum::Json(view)),
    )
        .into_response())
}

async fn logout(State(proxy): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
    let result = async {
        guard::check_origin(&headers, &proxy.config.public_origin)?;
        let session = proxy.session(&headers)?;
        guard::check_csrf(&headers, &session.csrf_token)?;
        // The session stays until the token service confirms the revocation: a user told "logged out"
        // while the family lives could walk away from a session someone else holds the tokens of.
        proxy
            .upstream
            .revoke(&session.api)
            .await
            .map_err(|error| match error {
                ProxyError::Upstream(detail) => ProxyError::LogoutFailed(detail),
                other => other,
            })?;
        if let Some(id) = proxy.cookie.session_id(&headers) {
            proxy.sessions.remove(id);
        }
        Ok::<_, ProxyError>(())
    }
    .await;
    match result {
        Ok(()) => (
            [(header::SET_COOKIE, proxy.cookie.clear())],
            StatusCode::NO_CONTENT,
        )
            .into_response(),
        Err(error) => error.into_response_clearing(&proxy.cookie, &headers),
    }
}

async fn forward(
    State(proxy): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        if guard::is_state_changing(&method) {
            guard::check_origin(&headers, &proxy.config.public_origin)?;
        }
        let session = proxy.session(&headers)?;
        if guard::is_state_changing(&method) {
            guard::check_csrf(&headers, &session.csrf_token)?;
        }
        let path_and_query = uri.path_and_query().map_or("/", |value| value.as_str());
        let answer = proxy
            .upstream
            .call(&session.api, method, path_and_query, &headers, body)
            .await;
        if matches!(answer, Err(ProxyError::SessionEnded))
            && let Some(ended) = proxy
                .cookie
                .session_id(&headers)
                .and_then(|id| proxy.sessions.remove(id))
        {
            proxy.end_in_background(ended);
        }
        answer
    }
    .await;
    match result {
        Ok(answer) => answer,
        Err(error) => error.into_response_clearing(&proxy.cookie, &headers),
    }
}

fn no_store(response: impl IntoResponse) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        response,
    )
        .into_response()
}

/// Why the proxy refused or could not complete a request; each renders as a JSON error the page shows.
#[derive(Debug, thiserror::Error)]
enum ProxyError {
    /// No session cookie.
    #[error("you are not signed in")]
    NotSignedIn,
    /// The cookie names no live session: logged out, idle too long, or the token family ended.
    #[error("your session ended; sign in again")]
    SessionEnded,
    /// A state-changing request from another origin.
    #[error("cross-origin requests may not change state")]
    ForeignOrigin,
    /// A state-changing request without the session's CSRF token.
    #[error("the request lacks this session's CSRF token")]
    CsrfMismatch,
    /// The login was refused by the token service.
    #[error("wrong username or password")]
    BadCredentials,
    /// The token service is throttling this username.
    #[error("too many failed logins; retry in {0} s")]
    Throttled(u64),
    /// The request cannot be understood.
    #[error("{0}")]
    BadRequest(String),
    /// The API server or token service failed or could not be reached; the detail is logged, not sent.
    #[error("the API server failed or could not be reached")]
    Upstream(String),
    /// The token service did not confirm the revocation, so the session goes on; the detail is logged.
    #[error(
        "the sign-out did not reach the token service; you are still signed in, please try again"
    )]
    LogoutFailed(String),
    /// The proxy holds as many sessions as it may and none is idle.
    #[error("too many people are signed in; retry in {} s", retry_seconds(*.0))]
    Busy(Duration),
    /// The OS random number generator failed, so no session could be created.
    #[error("could not create a session")]
    Randomness,
}

impl ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            ProxyError::NotSignedIn | ProxyError::SessionEnded | ProxyError::BadCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ProxyError::ForeignOrigin | ProxyError::CsrfMismatch => StatusCode::FORBIDDEN,
            ProxyError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Upstream(_) | ProxyError::LogoutFailed(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Randomness => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ProxyError::NotSignedIn => "not_signed_in",
            ProxyError::SessionEnded => "session_ended",
            ProxyError::ForeignOrigin => "foreign_origin",
            ProxyError::CsrfMismatch => "csrf_mismatch",
            ProxyError::BadCredentials => "bad_credentials",
            ProxyError::Throttled(_) => "throttled",
            ProxyError::BadRequest(_) => "invalid_request",
            ProxyError::Upstream(_) => "bad_gateway",
            ProxyError::LogoutFailed(_) => "logout_failed",
            ProxyError::Busy(_) => "server_busy",
            ProxyError::Randomness => "server_error",
        }
    }

    /// Like `into_response`, and when the session is gone, also drops the browser's stale cookie.
    fn into_response_clearing(self, cookie: &CookiePolicy, headers: &HeaderMap) -> Response {
        let stale =
            matches!(self, ProxyError::SessionEnded) && cookie.session_id(headers).is_some();
        let mut response = self.into_response();
        if stale {
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie.clear());
        }
        response
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        match &self {
            ProxyError::Upstream(detail) => tracing::warn!(%detail, "upstream call failed"),
            ProxyError::LogoutFailed(detail) => {
                tracing::warn!(%detail, "logout failed; the session stays");
            }
            _ => {}
        }
        let body =
            serde_json::json!({ "error": self.code(), "error_description": self.to_string() });
        let mut response = (self.status(), no_store(axum::Json(body))).into_response();
        let retry_after = match self {
            ProxyError::Throttled(seconds) => Some(seconds),
            ProxyError::Busy(wait) => Some(retry_seconds(wait)),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Whole seconds to wait, rounded up, at least one.
fn retry_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
