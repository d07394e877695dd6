//! Test fixtures: a manual clock, a counting token endpoint that mints real JWTs, and an API behind
//! `tessera_server::JwtAuthLayer`, all on 127.0.0.1:0.

// Fixture code: each test binary uses part of it, and a broken fixture should fail loudly.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tessera_client::{
    AuthMiddleware, AuthMiddlewareBuilder, AuthOutcome, Clock, ManualClock, RefreshTokenGrant,
    TokenSet,
};
use tessera_server::{Claims, JwtAuthLayer};
use tokio::sync::Semaphore;

pub const SECRET: &[u8; 32] = b"tessera-client-tests-hs256-key!!";
pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "api";
pub const CLIENT_ID: &str = "svc";
pub const CLIENT_SECRET: &str = "cc s3cret:/";

/// An HS256 access token as the token service would mint it, expiring `lifetime` seconds from now
/// (negative: already expired).
pub fn mint(lifetime: i64) -> String {
    mint_with_scope(lifetime, "read")
}

pub fn mint_with_scope(lifetime: i64, scope: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "web", "scope": scope,
        "jti": format!("at-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        "iat": now, "nbf": now - 1, "exp": now + lifetime,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// What the token endpoint does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Issue,
    InvalidGrant,
    Unavailable,
    /// 429 with `Retry-After: 45`.
    Throttled,
    Hang,
    /// 403 `invalid_grant`, as Auth0 answers an unknown or revoked refresh token.
    Forbidden,
}

/// The token endpoint's state: counts every call.
#[derive(Debug)]
pub struct Issuer {
    calls: AtomicUsize,
    behaviour: Mutex<Behaviour>,
    gated: AtomicBool,
    gate: Semaphore,
    /// The refresh token the endpoint accepts next (rotation: each success replaces it).
    refresh_token: Mutex<Option<String>>,
    rotate: AtomicBool,
    lifetime: AtomicI64,
    send_expires_in: AtomicBool,
    expires_in_as_text: AtomicBool,
    next_refresh: AtomicUsize,
    assertion_key: Mutex<Option<DecodingKey>>,
    seen_jti: Mutex<HashSet<String>>,
    token_url: Mutex<String>,
    pub forms: Mutex<Vec<HashMap<String, String>>>,
    /// Every form as sent, repeated parameters included.
    pub raw_forms: Mutex<Vec<Vec<(String, String)>>>,
    pub authorizations: Mutex<Vec<Option<String>>>,
}

impl Issuer {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Holds every token answer until [`Issuer::open`].
    pub fn close(&self) {
        self.gated.store(true, Ordering::SeqCst);
    }

    pub fn open(&self) {
        self.gated.store(false, Ordering::SeqCst);
        self.gate.add_permits(1 << 20);
    }

    pub fn accept_refresh_token(&self, token: &str) {
        *self.refresh_token.lock().unwrap() = Some(token.to_owned());
    }

    pub fn current_refresh_token(&self) -> Option<String> {
        self.refresh_token.lock().unwrap().clone()
    }

    /// Whether answers carry a new refresh token (rotation) or none (the old one stays valid).
    pub fn set_rotate(&self, rotate: bool) {
        self.rotate.store(rotate, Ordering::SeqCst);
    }

    pub fn set_lifetime(&self, seconds: i64) {
        self.lifetime.store(seconds, Ordering::SeqCst);
    }

    /// Whether answers carry `expires_in`; without it the client reads the JWT's `exp`.
    pub fn set_send_expires_in(&self, send: bool) {
        self.send_expires_in.store(send, Ordering::SeqCst);
    }

    /// Whether `expires_in` is sent as a string (`"300"`), as some providers do.
    pub fn set_expires_in_as_text(&self, text: bool) {
        self.expires_in_as_text.store(text, Ordering::SeqCst);
    }

    pub fn trust_assertion_key(&self, key: DecodingKey) {
        *self.assertion_key.lock().unwrap() = Some(key);
    }

    pub async fn wait_for_calls(&self, calls: usize) {
        wait_until(|| self.calls() >= calls).await;
    }
}

/// Polls `condition` until it holds; fails the test after 10 s of real time.
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "error": code })),
    )
        .into_response()
}

async fn token_endpoint(
    State(issuer): State<Arc<Issuer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    issuer.calls.fetch_add(1, Ordering::SeqCst);
    let raw: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let form: HashMap<String, String> = raw.iter().cloned().collect();
    issuer.raw_forms.lock().unwrap().push(raw);
    issuer.forms.lock().unwrap().push(form.clone());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap().to_owned());
    issuer
        .authorizations
        .lock()
        .unwrap()
        .push(authorization.clone());
    if issuer.gated.load(Ordering::SeqCst) {
        issuer.gate.acquire().await.unwrap().forget();
    }
    let behaviour = *issuer.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Hang => std::future::pending::<Response>().await,
        Behaviour::InvalidGrant => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant"),
        Behaviour::Forbidden => oauth_error(StatusCode::FORBIDDEN, "invalid_grant"),
        Behaviour::Unavailable => {
            oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        Behaviour::Throttled => {
            let mut response =
                oauth_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("45"));
            response
        }
        Behaviour::Issue => match form.get("grant_type").map(String::as_str) {
            Some("refresh_token") => {
                let accepted = issuer.refresh_token.lock().unwrap().clone();
                if !form.contains_key("refresh_token")
                    || form.get("refresh_token") != accepted.as_ref()
                {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
                }
                issue(&issuer)
            }
            Some("client_credentials") => {
                if client_is_authenticated(&issuer, authorization.as_deref(), &form) {
                    issue(&issuer)
                } else {
                    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client")
                }
            }
            _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        },
    }
}

fn issue(issuer: &Issuer) -> Response {
    let lifetime = issuer.lifetime.load(Ordering::SeqCst);
    let mut body = serde_json::json!({ "access_token": mint(lifetime), "token_type": "Bearer" });
    if lifetime > 0 && issuer.send_expires_in.load(Ordering::SeqCst) {
        body["expires_in"] = if issuer.expires_in_as_text.load(Ordering::SeqCst) {
            lifetime.to_string().into()
        } else {
            lifetime.into()
        };
    }
    if issuer.rotate.load(Ordering::SeqCst) {
        let next = format!("rt-{}", issuer.next_refresh.fetch_add(1, Ordering::SeqCst));
        *issuer.refresh_token.lock().unwrap() = Some(next.clone());
        body["refresh_token"] = next.into();
    }
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// client_secret_basic, client_secret_post, or private_key_jwt with signature, `aud`, `exp` and single-use
/// `jti` checks (RFC 7523 §3).
fn client_is_authenticated(
    issuer: &Issuer,
    authorization: Option<&str>,
    form: &HashMap<String, String>,
) -> bool {
    if let Some(basic) = authorization.and_then(|value| value.strip_prefix("Basic ")) {
        let Some(decoded) = STANDARD
            .decode(basic)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
        else {
            return false;
        };
        let Some((id, secret)) = decoded.split_once(':') else {
            return false;
        };
        let decode = |part: &str| {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned()
        };
        return decode(id) == CLIENT_ID && decode(secret) == CLIENT_SECRET;
    }
    if let Some(secret) = form.get("client_secret") {
        return form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && secret == CLIENT_SECRET;
    }
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return false;
    }
    let (Some(assertion), Some(key)) = (
        form.get("client_assertion"),
        issuer.assertion_key.lock().unwrap().clone(),
    ) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 0;
    validation.set_audience(&[issuer.token_url.lock().unwrap().clone()]);
    validation.set_issuer(&[CLIENT_ID]);
    validation.sub = Some(CLIENT_ID.to_owned());
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation) else {
        return false;
    };
    let (Some(iat), Some(exp), Some(jti)) = (
        data.claims["iat"].as_u64(),
        data.claims["exp"].as_u64(),
        data.claims["jti"].as_str(),
    ) else {
        return false;
    };
    exp <= iat + 60 && issuer.seen_jti.lock().unwrap().insert(jti.to_owned())
}

/// What the API saw: every request's path and `Authorization` header, before any check. Requests with
/// `?hold=NAME` wait at the door until [`Api::release`]`(NAME)`.
#[derive(Debug, Default)]
pub struct Api {
    pub seen: Mutex<Vec<(String, Option<String>)>>,
    holds: Mutex<HashMap<String, Arc<Semaphore>>>,
    arrived: Mutex<HashMap<String, usize>>,
}

impl Api {
    fn hold(&self, name: &str) -> Arc<Semaphore> {
        Arc::clone(
            self.holds
                .lock()
                .unwrap()
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(0))),
        )
    }

    /// Lets every present and future request held under `name` through.
    pub fn release(&self, name: &str) {
        self.hold(name).add_permits(1 << 20);
    }

    pub async fn wait_for_arrivals(&self, name: &str, count: usize) {
        wait_until(|| self.arrived.lock().unwrap().get(name).copied().unwrap_or(0) >= count).await;
    }

    /// The `Authorization` headers sent to `path`, in order.
    pub fn authorizations(&self, path: &str) -> Vec<Option<String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(seen, _)| seen == path)
            .map(|(_, auth)| auth.clone())
            .collect()
    }
}

async fn door(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    api.seen.lock().unwrap().push((path, authorization));
    let hold = request
        .uri()
        .query()
        .and_then(|query| query.strip_prefix("hold="))
        .map(str::to_owned);
    if let Some(name) = hold {
        *api.arrived.lock().unwrap().entry(name.clone()).or_default() += 1;
        api.hold(&name).acquire().await.unwrap().forget();
    }
    next.run(request).await
}

/// Answers with the `jti` of the token the layer accepted.
async fn data(Claims(claims): Claims) -> String {
    claims.jti
}

async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("none"));
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An API that refuses every token with `invalid_token` and no expiry signal (as one configured for another
/// audience would).
async fn refuses() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            r#"Bearer error="invalid_token", error_description="wrong audience""#,
        ),
    );
    response
}

/// Refuses an expired token (read without verification) the way a server offering several schemes does:
/// `Basic` and `Bearer` challenges in one `WWW-Authenticate` line, or with `?lines` one line each.
async fn several_challenges(headers: HeaderMap, request_uri: axum::http::Uri) -> Response {
    let expired = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| {
            tessera_core::jose::Jws::parse(token)
                .ok()?
                .unverified_claims::<serde_json::Value>()
                .ok()
        })
        .and_then(|claims| claims["exp"].as_i64())
        .is_none_or(|exp| exp < tessera_core::unix_seconds(SystemTime::now()));
    if !expired {
        return "accepted".into_response();
    }
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    let headers = response.headers_mut();
    if request_uri.query() == Some("lines") {
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="legacy""#),
        );
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="api", error="invalid_token""#),
        );
    } else {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Basic realm="legacy", DPoP algs="ES256 EdDSA", Bearer realm="api", error="invalid_token", error_description="expired""#,
            ),
        );
    }
    response
}

/// Routes that are not protected: a 401 that is not about the token, and redirects.
async fn plain_401() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="api""#),
    );
    response
}

async fn redirect(request: Request) -> Response {
    let target = request
        .uri()
        .query()
        .and_then(|query| query.strip_prefix("to="))
        .unwrap_or("/")
        .to_owned();
    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response()
}

/// The issuer and the API on one loopback port.
#[derive(Debug, Clone)]
pub struct TestServer {
    pub url: String,
    pub issuer: Arc<Issuer>,
    pub api: Arc<Api>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Arc::new(Issuer {
            calls: AtomicUsize::new(0),
            behaviour: Mutex::new(Behaviour::Issue),
            gated: AtomicBool::new(false),
            gate: Semaphore::new(0),
            refresh_token: Mutex::new(None),
            rotate: AtomicBool::new(true),
            lifetime: AtomicI64::new(300),
            send_expires_in: AtomicBool::new(true),
            expires_in_as_text: AtomicBool::new(false),
            next_refresh: AtomicUsize::new(0),
            assertion_key: Mutex::new(None),
            seen_jti: Mutex::new(HashSet::new()),
            token_url: Mutex::new(format!("{url}/auth/token")),
            forms: Mutex::new(Vec::new()),
            raw_forms: Mutex::new(Vec::new()),
            authorizations: Mutex::new(Vec::new()),
        });
        let api = Arc::new(Api::default());
        let auth = JwtAuthLayer::builder()
            .hmac_secret(SECRET)
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .build()
            .unwrap();
        let protected = Router::new()
            .route("/data", get(data))
            .route("/echo", post(echo))
            .route("/admin", get(data).route_layer(auth.require_scope("admin")))
            .layer(auth);
        let app = Router::new()
            .route("/auth/token", post(token_endpoint))
            .with_state(Arc::clone(&issuer))
            .route("/plain-401", get(plain_401))
            .route("/refuses", get(refuses))
            .route("/several-challenges", get(several_challenges))
            .route("/redirect", get(redirect))
            .merge(protected)
            .layer(middleware::from_fn_with_state(Arc::clone(&api), door));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer { url, issuer, api }
    }

    pub fn token_url(&self) -> reqwest::Url {
        format!("{}/auth/token", self.url).parse().unwrap()
    }

    /// A middleware builder refreshing against this server, allowed to send tokens to it.
    pub fn auth(&self) -> AuthMiddlewareBuilder {
        AuthMiddleware::builder(RefreshTokenGrant::new(
            reqwest::Client::new(),
            self.token_url(),
        ))
        .allow_origin(&self.url)
    }

    /// `GET` of `path` on this server through `client`.
    pub async fn get(
        &self,
        client: &ClientWithMiddleware,
        path: &str,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        client.get(format!("{}{path}", self.url)).send().await
    }
}

pub fn client(auth: &AuthMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth.clone())
        .build()
}

/// What the middleware did for `response`.
pub fn outcome(response: &reqwest::Response) -> AuthOutcome {
    *response
        .extensions()
        .get::<AuthOutcome>()
        .expect("every response carries an AuthOutcome")
}

/// Hands `auth` a login whose access token the server already considers expired (the client does not know
/// its expiry), with the refresh token `rt-login` that the server accepts.
pub async fn log_in_expired(server: &TestServer, auth: &AuthMiddleware) {
    server.issuer.accept_refresh_token("rt-login");
    auth.set_tokens(TokenSet::new(mint(-120)).with_refresh_token("rt-login"))
        .await
        .unwrap();
}

/// A default middleware for `server` holding an expired login (see [`log_in_expired`]), and a client.
pub async fn expired_session(server: &TestServer) -> (AuthMiddleware, ClientWithMiddleware) {
    let auth = server.auth().build().unwrap();
    log_in_expired(server, &auth).await;
    let client = client(&auth);
    (auth, client)
}

/// A middleware on `clock` whose token is valid for 300 s on both the server's and the client's clock, and
/// a client.
pub async fn fresh_session(
    server: &TestServer,
    clock: &ManualClock,
) -> (AuthMiddleware, ClientWithMiddleware) {
    let auth = server.auth().clock(clock.clone()).build().unwrap();
    log_in_fresh(server, &auth, clock).await;
    let client = client(&auth);
    (auth, client)
}

/// Hands `auth` a login valid for 300 s on both the server's clock and `clock`, with the refresh token
/// `rt-login` that the server accepts.
pub async fn log_in_fresh(server: &TestServer, auth: &AuthMiddleware, clock: &ManualClock) {
    server.issuer.accept_refresh_token("rt-login");
    let tokens = TokenSet::new(mint(300))
        .with_refresh_token("rt-login")
        .with_expires_at(clock.now() + Duration::from_secs(300));
    auth.set_tokens(tokens).await.unwrap();
}

/// Another origin that records the `Authorization` headers it receives.
pub async fn capture_server() -> (String, Arc<Api>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let api = Arc::new(Api::default());
    let app = Router::new()
        .route("/capture", get(|| async { "captured" }))
        .route(
            "/expired",
            get(|| async {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                response
                    .headers_mut()
                    .insert("token-expired", HeaderValue::from_static("true"));
                response
            }),
        )
        .layer(middleware::from_fn_with_state(Arc::clone(&api), door));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, api)
}

/// Records every tracing event's fields, to check what the middleware reports (and that it never logs a
/// token). Install with `tracing::subscriber::set_default` on a current-thread runtime.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    pub events: Arc<Mutex<Vec<String>>>,
}

impl EventLog {
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::layer::SubscriberExt;
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    pub fn count(&self, needle: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.contains(needle))
            .count()
    }

    pub fn all(&self) -> String {
        self.events.lock().unwrap().join("\n")
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields(format!("{} ", event.metadata().level()));
        event.record(&mut fields);
        self.events.lock().unwrap().push(fields.0);
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields(format!("span {} ", attrs.metadata().name()));
        attrs.record(&mut fields);
        self.events.lock().unwrap().push(fields.0);
    }
}

/// An event's or span's fields, as `name=value` pairs.
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}
