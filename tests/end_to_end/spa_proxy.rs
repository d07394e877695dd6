//! The SPA proxy over plain HTTP (the browser test covers the page itself): cookie flags, the origin
//! check, the CSRF token, the dot-segment guard, logout revoking the family (and keeping the session until
//! it did), one refresh per session for concurrent calls, idle sessions ending, the session bound,
//! `nosniff` on every answer, and upstreams that redirect or answer without end.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::LOCATION;
use axum::response::IntoResponse;
use axum::routing::post;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN, RETRY_AFTER, SET_COOKIE};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_examples::bff;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{TestApi, logout_everywhere, spawn_proxy, wait_past};

const ACCESS_TTL: Duration = Duration::from_secs(2);

/// A browser of the proxy at `origin` (no cookie jar: tests pass the cookie they mean).
struct Browser {
    origin: String,
    http: reqwest::Client,
}

impl Browser {
    fn of(origin: String) -> Self {
        Browser {
            origin,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    async fn login(&self, origin: &str, body: Value) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .http
            .post(self.url("/session/login"))
            .header(ORIGIN, origin)
            .json(&body)
            .send()
            .await?)
    }

    /// Signs `username` in; returns the `Cookie` header to send and the session's CSRF token.
    async fn sign_in_as(&self, username: &str, password: &str) -> anyhow::Result<(String, String)> {
        let response = self
            .login(
                &self.origin,
                json!({ "username": username, "password": password }),
            )
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()[SET_COOKIE].to_str()?.to_owned();
        let cookie = set_cookie
            .split(';')
            .next()
            .context("empty Set-Cookie")?
            .to_owned();
        let body: Value = response.json().await?;
        let csrf = body["csrf_token"]
            .as_str()
            .context("no csrf_token")?
            .to_owned();
        Ok((cookie, csrf))
    }

    /// Signs alice in.
    async fn sign_in(&self) -> anyhow::Result<(String, String)> {
        self.sign_in_as("alice", "wonderland").await
    }

    /// `GET path` with the session cookie.
    async fn get(&self, path: &str, cookie: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .http
            .get(self.url(path))
            .header(COOKIE, cookie)
            .send()
            .await?)
    }

    /// `POST /session/logout` the way the page sends it.
    async fn logout(&self, cookie: &str, csrf: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .http
            .post(self.url("/session/logout"))
            .header(COOKIE, cookie)
            .header(ORIGIN, &self.origin)
            .header("x-csrf-token", csrf)
            .send()
            .await?)
    }
}

/// The demo server and the proxy in front of it.
struct Setup {
    api: TestApi,
    browser: Browser,
}

impl std::ops::Deref for Setup {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

async fn setup() -> anyhow::Result<Setup> {
    setup_with(|_| {}).await
}

async fn setup_with(configure: impl FnOnce(&mut bff::ProxyConfig)) -> anyhow::Result<Setup> {
    let api = TestApi::start(ACCESS_TTL).await?;
    let origin = spawn_proxy(&api.base_url, configure).await?;
    Ok(Setup {
        api,
        browser: Browser::of(origin),
    })
}

async fn error_code(response: reqwest::Response) -> anyhow::Result<String> {
    let body: Value = response.json().await?;
    Ok(body["error"].as_str().context("no error code")?.to_owned())
}

/// Polls until the token service has counted `revoked` revoked families, for at most 5 s.
async fn wait_for_revoked(api: &TestApi, revoked: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.events.snapshot().revoked < revoked {
        anyhow::ensure!(
            Instant::now() < deadline,
            "expected {revoked} revoked families, the token service counted {}",
            api.events.snapshot().revoked
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_locked_down_cookie_and_refuses_bad_requests() -> anyhow::Result<()> {
    let setup = setup().await?;
    let alice = json!({ "username": "alice", "password": "wonderland" });

    let foreign = setup.login("http://evil.example", alice.clone()).await?;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(foreign).await?, "foreign_origin");

    let wrong = setup
        .login(
            &setup.origin,
            json!({ "username": "alice", "password": "nope" }),
        )
        .await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert_eq!(error_code(wrong).await?, "bad_credentials");

    let form = setup
        .http
        .post(setup.url("/session/login"))
        .header(ORIGIN, &setup.origin)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("username=alice&password=wonderland")
        .send()
        .await?;
    assert_eq!(
        form.status(),
        StatusCode::BAD_REQUEST,
        "a form post (no preflight cross-site) is refused"
    );

    let response = setup.login(&setup.origin, alice).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = response.headers()[SET_COOKIE].to_str()?.to_owned();
    let (pair, attributes) = cookie.split_once(';').context("no cookie attributes")?;
    let (name, value) = pair.split_once('=').context("no cookie value")?;
    assert_eq!(name, "tessera_session", "plain http: no __Host- prefix");
    assert_eq!(value.len(), 43, "256 random bits, base64url");
    assert_eq!(attributes, " Path=/; HttpOnly; SameSite=Strict");
    let body: Value = response.json().await?;
    assert_eq!(body["user"], "alice");
    let body_text = body.to_string();
    assert!(
        !body_text.contains("eyJ"),
        "no token in what the page gets: {body_text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_need_the_csrf_token_and_logout_revokes_the_family() -> anyhow::Result<()> {
    let setup = setup().await?;
    let (cookie, csrf) = setup.sign_in().await?;

    let session: Value = setup.get("/session", &cookie).await?.json().await?;
    assert_eq!(session, json!({ "user": "alice", "csrf_token": csrf }));
    let me = setup.get("/api/me", &cookie).await?;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await?["sub"], "alice");

    let logout = |origin: &str, csrf: Option<&str>| {
        let mut request = setup
            .http
            .post(setup.url("/session/logout"))
            .header(COOKIE, &cookie)
            .header(ORIGIN, origin);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    let missing = logout(&setup.origin, None).await?;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(missing).await?, "csrf_mismatch");
    let forged = logout(&setup.origin, Some("forged")).await?;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let cross_site = logout("http://evil.example", Some(&csrf)).await?;
    assert_eq!(error_code(cross_site).await?, "foreign_origin");
    let api_post = setup
        .http
        .post(setup.url("/api/me"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, &setup.origin);
    assert_eq!(
        error_code(api_post.send().await?).await?,
        "csrf_mismatch",
        "API writes need the token too"
    );
    assert_eq!(setup.api.events.snapshot().revoked, 0);

    let done = logout(&setup.origin, Some(&csrf)).await?;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert!(
        done.headers()[SET_COOKIE].to_str()?.contains("Max-Age=0"),
        "the cookie is cleared"
    );
    assert_eq!(
        setup.api.events.snapshot().revoked,
        1,
        "logout revoked the family at the token service"
    );

    let after = setup.get("/api/me", &cookie).await?;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(after).await?, "session_ended");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_cannot_reach_the_token_service() -> anyhow::Result<()> {
    let setup = setup().await?;
    let (cookie, _) = setup.sign_in().await?;
    // HTTP clients normalise `..` away, so this request is written by hand.
    for path in [
        "/api/../auth/sessions",
        "/api/%2e%2e/auth/sessions",
        "/api/%2E./auth/sessions",
    ] {
        let mut stream =
            tokio::net::TcpStream::connect(setup.origin.trim_start_matches("http://")).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: proxy\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_family_was_revoked_ends_with_401_after_expiry() -> anyhow::Result<()> {
    let setup = setup().await?;
    let (cookie, _) = setup.sign_in().await?;
    let me: Value = setup.get("/api/me", &cookie).await?.json().await?;

    // alice ends all her sessions from another device.
    logout_everywhere(&setup.api, "alice", "wonderland").await?;

    wait_past(&me["exp"]).await?;
    let after = setup.get("/api/me", &cookie).await?;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert!(after.headers()[SET_COOKIE].to_str()?.contains("Max-Age=0"));
    assert_eq!(error_code(after).await?, "session_ended");
    let session = setup.get("/session", &cookie).await?;
    assert_eq!(
        session.status(),
        StatusCode::UNAUTHORIZED,
        "the proxy dropped the session"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_refresh_once_per_session() -> anyhow::Result<()> {
    let setup = setup().await?;
    let (alice, _) = setup.sign_in().await?;
    let (bob, _) = setup.sign_in_as("bob", "builder").await?;
    let me: Value = setup.get("/api/me", &bob).await?.json().await?;
    wait_past(&me["exp"]).await?;

    // Two browsers, ten tabs each, all calling at once with expired tokens.
    let setup = &setup;
    let calls = [&alice, &bob].into_iter().flat_map(|cookie| {
        (0..10).map(move |_| {
            setup
                .http
                .get(setup.url("/api/me"))
                .header(COOKIE, cookie)
                .send()
        })
    });
    let mut refreshed = 0;
    for response in futures_util::future::join_all(calls).await {
        let response = response?;
        assert_eq!(response.status(), StatusCode::OK);
        refreshed += usize::from(response.headers().contains_key("x-tessera-refreshed"));
    }
    assert!(
        refreshed >= 2,
        "the answers say the proxy refreshed for them"
    );
    assert_eq!(
        setup.api.events.snapshot().refreshed,
        2,
        "one refresh per session, not per call and not one for both"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_and_its_family_is_revoked() -> anyhow::Result<()> {
    let setup = setup_with(|config| config.idle_timeout = Duration::from_millis(300)).await?;
    let (cookie, _) = setup.sign_in().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let session = setup.get("/session", &cookie).await?;
    assert_eq!(session.status(), StatusCode::UNAUTHORIZED);
    assert!(
        session.headers()[SET_COOKIE]
            .to_str()?
            .contains("Max-Age=0")
    );
    assert_eq!(error_code(session).await?, "session_ended");

    // The revocation runs in the background; give it a moment.
    for _ in 0..100 {
        if setup.api.events.snapshot().revoked == 1 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the idle session's family was not revoked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_the_cookie_is_secure_and_host_prefixed() -> anyhow::Result<()> {
    let api = TestApi::start(ACCESS_TTL).await?;
    // A TLS-terminating front end serves https://app.example and forwards to the proxy over loopback.
    let public_origin = "https://app.example";
    let local = spawn_proxy(&api.base_url, |config| {
        config.public_origin = public_origin.into();
    })
    .await?;

    let http = reqwest::Client::new();
    let login = |origin: &'static str| {
        http.post(format!("{local}/session/login"))
            .header(ORIGIN, origin)
            .json(&json!({ "username": "alice", "password": "wonderland" }))
            .send()
    };
    let plain = login("http://app.example").await?;
    assert_eq!(
        plain.status(),
        StatusCode::FORBIDDEN,
        "the http:// origin is another origin"
    );
    let response = login(public_origin).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()[SET_COOKIE].to_str()?;
    assert!(cookie.starts_with("__Host-tessera_session="), "{cookie}");
    assert!(
        cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"),
        "{cookie}"
    );
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_revoked_even_if_the_browser_never_comes_back() -> anyhow::Result<()> {
    let setup = setup_with(|config| config.idle_timeout = Duration::from_millis(300)).await?;
    let (cookie, _) = setup.sign_in().await?;

    // Nothing touches the session: the sweeper alone must end it and revoke its family.
    wait_for_revoked(&setup.api, 1).await?;
    let session = setup.get("/session", &cookie).await?;
    assert_eq!(session.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(session).await?, "session_ended");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_keeps_the_session_until_the_token_service_confirms_the_revocation()
-> anyhow::Result<()> {
    let Setup { api, browser } = setup().await?;
    let (cookie, csrf) = browser.sign_in().await?;

    // The token service is down: the family cannot be revoked, so the user must not be told otherwise.
    let stopped = api.stop_for_restart().await?;
    let refused = browser.logout(&cookie, &csrf).await?;
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    assert!(
        refused.headers().get(SET_COOKIE).is_none(),
        "the cookie stays"
    );
    assert_eq!(error_code(refused).await?, "logout_failed");
    let still = browser.get("/session", &cookie).await?;
    assert_eq!(
        still.status(),
        StatusCode::OK,
        "still signed in, and the page says so"
    );

    // Back up: the same logout now revokes the family, and only then ends the session.
    let api = stopped.restart().await?;
    let done = browser.logout(&cookie, &csrf).await?;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    assert_eq!(api.events.snapshot().revoked, 1);
    let after = browser.get("/session", &cookie).await?;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_map_is_bounded_and_a_login_at_the_bound_leaves_no_family_behind()
-> anyhow::Result<()> {
    let setup = setup_with(|config| config.limits.max_sessions = 2).await?;
    let (alice, _) = setup.sign_in().await?;
    setup.sign_in_as("bob", "builder").await?;

    // A third browser: nobody is idle, so the login is refused, and the family the token service started
    // for it is revoked rather than left behind.
    let third = setup
        .login(
            &setup.origin,
            json!({ "username": "alice", "password": "wonderland" }),
        )
        .await?;
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(third.headers().get(SET_COOKIE).is_none());
    let retry_after: u64 = third.headers()[RETRY_AFTER].to_str()?.parse()?;
    assert!(
        (1..=30 * 60).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(error_code(third).await?, "server_busy");
    wait_for_revoked(&setup.api, 1).await?;
    assert_eq!(
        setup.get("/session", &alice).await?.status(),
        StatusCode::OK,
        "signed-in users are not pushed out"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_fill_the_proxy() -> anyhow::Result<()> {
    let setup = setup_with(|config| config.limits.max_per_user = 2).await?;
    let (first, _) = setup.sign_in().await?;
    let (second, _) = setup.sign_in().await?;
    let (third, _) = setup.sign_in().await?;

    // alice's least recently used session made room, and its family was revoked.
    wait_for_revoked(&setup.api, 1).await?;
    assert_eq!(
        setup.get("/session", &first).await?.status(),
        StatusCode::UNAUTHORIZED
    );
    for cookie in [&second, &third] {
        assert_eq!(
            setup.get("/session", cookie).await?.status(),
            StatusCode::OK
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_forbids_content_sniffing() -> anyhow::Result<()> {
    let setup = setup().await?;
    let (cookie, _) = setup.sign_in().await?;
    let forwarded = setup.get("/api/me", &cookie).await?;
    assert_eq!(forwarded.status(), StatusCode::OK);
    let refused = setup.get("/api/me", "tessera_session=unknown").await?;
    let page = setup.http.get(setup.url("/")).send().await?;
    for answer in [&forwarded, &refused, &page] {
        assert_eq!(
            answer
                .headers()
                .get("x-content-type-options")
                .map(|value| value.as_bytes()),
            Some(&b"nosniff"[..]),
            "{} {}",
            answer.url(),
            answer.status()
        );
    }
    Ok(())
}

/// A stand-in for the API server and token service, on a free loopback port.
async fn spawn_upstream(router: Router) -> anyhow::Result<reqwest::Url> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = reqwest::Url::parse(&format!("http://{}", listener.local_addr()?))?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

/// A body that never ends.
fn endless() -> Body {
    Body::from_stream(futures_util::stream::repeat_with(|| {
        Ok::<_, Infallible>(Bytes::from_static(&[b' '; 16 * 1024]))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_token_service_never_sees_the_password_go_elsewhere() -> anyhow::Result<()> {
    // The other origin counts what reaches it.
    let stolen = Arc::new(AtomicUsize::new(0));
    let thief = spawn_upstream(Router::new().fallback({
        let stolen = Arc::clone(&stolen);
        move || async move {
            stolen.fetch_add(1, Ordering::SeqCst);
            StatusCode::NOT_FOUND
        }
    }))
    .await?;
    let elsewhere = thief.join("/steal")?.to_string();
    let token_service = spawn_upstream(Router::new().route(
        "/auth/token",
        post(move || async move {
            (StatusCode::TEMPORARY_REDIRECT, [(LOCATION, elsewhere)]).into_response()
        }),
    ))
    .await?;
    let browser = Browser::of(spawn_proxy(&token_service, |_| {}).await?);

    let login = browser
        .login(
            &browser.origin,
            json!({ "username": "alice", "password": "wonderland" }),
        )
        .await?;
    assert_eq!(login.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the login form was sent to the redirect's target"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_upstream_answers_are_cut_at_a_size_cap() -> anyhow::Result<()> {
    let endless_tokens = spawn_upstream(Router::new().route(
        "/auth/token",
        post(|| async { ([(CONTENT_TYPE, "application/json")], endless()) }),
    ))
    .await?;
    let endless_api = spawn_upstream(
        Router::new()
            .route(
                "/auth/token",
                post(|| async {
                    axum::Json(json!({
                        "access_token": "opaque", "token_type": "Bearer", "expires_in": 3600,
                        "refresh_token": "opaque-refresh",
                    }))
                }),
            )
            .route("/api/big", axum::routing::get(|| async { endless() })),
    )
    .await?;
    let bounded = Duration::from_secs(10);

    let browser = Browser::of(spawn_proxy(&endless_tokens, |_| {}).await?);
    let login = tokio::time::timeout(
        bounded,
        browser.login(
            &browser.origin,
            json!({ "username": "alice", "password": "wonderland" }),
        ),
    )
    .await
    .context("the proxy kept reading an endless token response")??;
    assert_eq!(login.status(), StatusCode::BAD_GATEWAY);

    let browser = Browser::of(spawn_proxy(&endless_api, |_| {}).await?);
    let (cookie, _) = browser.sign_in().await?;
    let answer = tokio::time::timeout(bounded, browser.get("/api/big", &cookie))
        .await
        .context("the proxy kept reading an endless API answer")??;
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    Ok(())
}
