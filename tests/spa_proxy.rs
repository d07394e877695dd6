//! The SPA proxy over plain HTTP (the browser test covers the page itself): cookie flags, the origin
//! check, the CSRF token, the dot-segment guard, logout revoking the family, one refresh per session for
//! concurrent calls, idle sessions ending, and a session whose family was revoked elsewhere answering 401.

#[path = "../examples/common/app.rs"]
mod app;
#[path = "../examples/common/bff/mod.rs"]
mod bff;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ACCESS_TTL: Duration = Duration::from_secs(2);

struct Setup {
    api: app::RunningApp,
    origin: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn setup() -> anyhow::Result<Setup> {
    setup_with_idle_timeout(Duration::from_secs(600)).await
}

async fn setup_with_idle_timeout(idle_timeout: Duration) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let api = app::spawn(&app::AppConfig::for_tests(
        dir.path().join("tessera.db"),
        ACCESS_TTL,
    )?)
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let proxy_config = bff::ProxyConfig {
        public_origin: origin.clone(),
        idle_timeout,
    };
    let upstream =
        bff::Upstream::new(api.base_url.clone(), app::CLIENT_ID).refresh_skew(Duration::ZERO);
    let router = bff::router(proxy_config, upstream);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Setup {
        api,
        origin,
        http: reqwest::Client::new(),
        _dir: dir,
    })
}

impl Setup {
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

    /// Signs alice in; returns the `Cookie` header to send and the session's CSRF token.
    async fn sign_in(&self) -> anyhow::Result<(String, String)> {
        self.sign_in_as("alice", "wonderland").await
    }

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
}

async fn error_code(response: reqwest::Response) -> anyhow::Result<String> {
    let body: Value = response.json().await?;
    Ok(body["error"].as_str().context("no error code")?.to_owned())
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

    let session: Value = setup
        .http
        .get(setup.url("/session"))
        .header(COOKIE, &cookie)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(session, json!({ "user": "alice", "csrf_token": csrf }));
    let me = setup
        .http
        .get(setup.url("/api/me"))
        .header(COOKIE, &cookie)
        .send()
        .await?;
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

    let after = setup
        .http
        .get(setup.url("/api/me"))
        .header(COOKIE, &cookie)
        .send()
        .await?;
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
    let me: Value = setup
        .http
        .get(setup.url("/api/me"))
        .header(COOKIE, &cookie)
        .send()
        .await?
        .json()
        .await?;

    // alice ends all her sessions from another device.
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "wonderland"),
        ("client_id", "demo"),
    ];
    let other: Value = http
        .post(setup.api.url("/auth/token"))
        .form(&form)
        .send()
        .await?
        .json()
        .await?;
    let access = other["access_token"].as_str().context("no access token")?;
    let all = http
        .post(setup.api.url("/auth/logout-all"))
        .bearer_auth(access)
        .send()
        .await?;
    assert!(
        all.status().is_success(),
        "logout-all answered {}",
        all.status()
    );

    wait_past(&me).await?;
    let after = setup
        .http
        .get(setup.url("/api/me"))
        .header(COOKIE, &cookie)
        .send()
        .await?;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert!(after.headers()[SET_COOKIE].to_str()?.contains("Max-Age=0"));
    assert_eq!(error_code(after).await?, "session_ended");
    let session = setup
        .http
        .get(setup.url("/session"))
        .header(COOKIE, &cookie)
        .send()
        .await?;
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
    let me: Value = setup
        .http
        .get(setup.url("/api/me"))
        .header(COOKIE, &bob)
        .send()
        .await?
        .json()
        .await?;
    wait_past(&me).await?;

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
    let setup = setup_with_idle_timeout(Duration::from_millis(300)).await?;
    let (cookie, _) = setup.sign_in().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let session = setup
        .http
        .get(setup.url("/session"))
        .header(COOKIE, &cookie)
        .send()
        .await?;
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

/// Sleeps until the access token `/api/me` described is expired for a server without leeway.
async fn wait_past(me: &Value) -> anyhow::Result<()> {
    let exp = me["exp"].as_u64().context("no exp")?;
    let expired_at = UNIX_EPOCH + Duration::from_secs(exp + 1);
    tokio::time::sleep(
        expired_at
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_the_cookie_is_secure_and_host_prefixed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let api = app::spawn(&app::AppConfig::for_tests(
        dir.path().join("tessera.db"),
        ACCESS_TTL,
    )?)
    .await?;
    // A TLS-terminating front end serves https://app.example and forwards to the proxy over loopback.
    let public_origin = "https://app.example";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let local = format!("http://{}", listener.local_addr()?);
    let config = bff::ProxyConfig {
        public_origin: public_origin.into(),
        idle_timeout: Duration::from_secs(600),
    };
    let router = bff::router(
        config,
        bff::Upstream::new(api.base_url.clone(), app::CLIENT_ID),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });

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
