//! Issue 12, defect 6: a refresh whose answer is lost must not log the user out. The token endpoint here
//! rotates like Tessera's token service: it commits the rotation before answering, answers the previous
//! refresh token with the same successor within its grace window, and takes it for reuse (revoking the
//! family) after that. It is driven on the test's manual clock, and it can commit and then hold or drop
//! its answer.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{TestServer, client, mint};
use reqwest_middleware::ClientWithMiddleware;
use tessera_client::{
    AuthMiddleware, AuthMiddlewareBuilder, BuildError, Clock, Error, ManualClock, RefreshError,
    RefreshTokenGrant, TokenSet,
};
use tokio::sync::Semaphore;

const GRACE: Duration = Duration::from_secs(30);

/// What the endpoint does with one request, after rotating (or re-serving) the refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Answers at once.
    Now,
    /// Holds the answer until [`Rotating::release`].
    Held,
    /// Never answers (the connection hangs; the client's answer is lost).
    Never,
    /// Answers 502 as a gateway would that lost the upstream's answer.
    BadGateway,
}

#[derive(Debug)]
struct Family {
    current: String,
    /// The previous token, when it was rotated (on the manual clock), and the answer that rotated it.
    previous: Option<(String, Duration, serde_json::Value)>,
    revoked: bool,
    next: usize,
}

#[derive(Debug)]
struct Rotating {
    clock: ManualClock,
    started: std::time::Instant,
    family: Mutex<Family>,
    script: Mutex<VecDeque<Answer>>,
    /// Every refresh token presented, with when (on the manual clock, since the test began).
    presented: Mutex<Vec<(String, Duration)>>,
    held: Semaphore,
    calls: AtomicUsize,
}

impl Rotating {
    fn elapsed(&self) -> Duration {
        self.clock.monotonic() - self.started
    }

    fn release(&self) {
        self.held.add_permits(1 << 20);
    }

    fn presented(&self) -> Vec<(String, Duration)> {
        self.presented.lock().unwrap().clone()
    }

    fn revoked(&self) -> bool {
        self.family.lock().unwrap().revoked
    }

    async fn wait_for_calls(&self, calls: usize) {
        common::wait_until(|| self.calls.load(Ordering::SeqCst) >= calls).await;
    }

    /// Rotates (or re-serves within grace, or detects reuse): the decision is committed before any answer.
    fn rotate(&self, presented: &str) -> Result<serde_json::Value, ()> {
        let now = self.elapsed();
        let mut family = self.family.lock().unwrap();
        if family.revoked {
            return Err(());
        }
        if presented == family.current {
            family.next += 1;
            let successor = format!("rt-{}", family.next);
            let answer = serde_json::json!({
                "access_token": mint(300), "token_type": "Bearer", "expires_in": 300,
                "refresh_token": successor,
            });
            let previous = std::mem::replace(&mut family.current, successor);
            family.previous = Some((previous, now, answer.clone()));
            return Ok(answer);
        }
        match &family.previous {
            Some((previous, at, answer)) if previous == presented && now - *at < GRACE => {
                Ok(answer.clone())
            }
            _ => {
                family.revoked = true;
                Err(())
            }
        }
    }
}

async fn token(
    State(endpoint): State<Arc<Rotating>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    endpoint.calls.fetch_add(1, Ordering::SeqCst);
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    endpoint
        .presented
        .lock()
        .unwrap()
        .push((presented.clone(), endpoint.elapsed()));
    let rotated = endpoint.rotate(&presented);
    let answer = endpoint
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Now);
    match answer {
        Answer::Now => {}
        Answer::Held => endpoint.held.acquire().await.unwrap().forget(),
        Answer::Never => std::future::pending::<()>().await,
        Answer::BadGateway => return StatusCode::BAD_GATEWAY.into_response(),
    }
    match rotated {
        Ok(body) => axum::Json(body).into_response(),
        Err(()) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": "invalid_grant" })),
        )
            .into_response(),
    }
}

/// The rotating endpoint with `script` for its first answers, an API, and a middleware builder for both,
/// on a manual clock.
async fn setup(
    script: &[Answer],
) -> (
    Arc<Rotating>,
    TestServer,
    ManualClock,
    AuthMiddlewareBuilder,
) {
    let clock = ManualClock::new();
    let endpoint = Arc::new(Rotating {
        started: clock.monotonic(),
        clock: clock.clone(),
        family: Mutex::new(Family {
            current: "rt-0".into(),
            previous: None,
            revoked: false,
            next: 0,
        }),
        script: Mutex::new(script.iter().copied().collect()),
        presented: Mutex::default(),
        held: Semaphore::new(0),
        calls: AtomicUsize::new(0),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/token", post(token))
        .with_state(Arc::clone(&endpoint));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let api = TestServer::start().await;
    let builder = AuthMiddleware::builder(RefreshTokenGrant::new(
        reqwest::Client::new(),
        url.parse().unwrap(),
    ))
    .allow_origin(&api.url)
    .clock(clock.clone());
    (endpoint, api, clock, builder)
}

/// Logs in with an access token the API considers expired and the refresh token `rt-0`.
async fn log_in(auth: &AuthMiddleware) {
    auth.set_tokens(TokenSet::new(mint(-120)).with_refresh_token("rt-0"))
        .await
        .unwrap();
}

fn refresh_token(auth: &AuthMiddleware) -> Option<String> {
    auth.tokens().and_then(|tokens| {
        tokens
            .refresh_token()
            .map(|token| token.as_str().to_owned())
    })
}

/// Sends a request with the expired login token: its refresh reaches the endpoint and gets no answer within
/// the 5 s refresh timeout, so the request fails with `RefreshUnavailable` (the token is not served).
async fn first_refresh_times_out(
    endpoint: &Rotating,
    api: &TestServer,
    client: &ClientWithMiddleware,
    clock: &ManualClock,
) {
    let request = tokio::spawn({
        let client = client.clone();
        let url = format!("{}/data", api.url);
        async move { client.get(url).send().await }
    });
    endpoint.wait_for_calls(1).await;
    clock.advance(Duration::from_secs(5));
    let error = request.await.unwrap().unwrap_err();
    assert!(
        matches!(
            Error::from_middleware(&error),
            Some(Error::RefreshUnavailable { .. })
        ),
        "{error:?}"
    );
}

/// Builds `builder` with a 30-60 s backoff (a client that forgot a lost answer would present `rt-0` again
/// only after the grace window, and be taken for a thief), logs in, and makes a client.
async fn with_long_backoff(
    builder: AuthMiddlewareBuilder,
) -> (AuthMiddleware, ClientWithMiddleware) {
    let auth = builder
        .refresh_backoff(Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .unwrap();
    log_in(&auth).await;
    let client = client(&auth);
    (auth, client)
}

#[tokio::test]
async fn a_refresh_answered_after_the_timeout_is_taken_not_presented_again() {
    let (endpoint, api, clock, builder) = setup(&[Answer::Held]).await;
    let (auth, client) = with_long_backoff(builder).await;
    first_refresh_times_out(&endpoint, &api, &client, &clock).await;

    // The rotation was committed; its answer arrives late, and is taken.
    clock.advance(Duration::from_secs(5));
    endpoint.release();
    common::wait_until(|| refresh_token(&auth).as_deref() == Some("rt-1")).await;

    clock.advance(Duration::from_secs(60));
    let response = api.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        endpoint.presented().len(),
        1,
        "rt-0 was presented once: {:?}",
        endpoint.presented()
    );
    assert!(!endpoint.revoked());
}

#[tokio::test]
async fn a_lost_refresh_answer_is_retried_once_inside_the_grace_window() {
    let (endpoint, api, clock, builder) = setup(&[Answer::Never]).await;
    let (auth, client) = with_long_backoff(builder).await;
    first_refresh_times_out(&endpoint, &api, &client, &clock).await;

    // The answer never comes. The retry goes out 30 s - 5 s - 1 s after the first request, still inside
    // the grace window: the endpoint answers it with the successor it already issued.
    clock.advance(Duration::from_secs(18));
    tokio::task::yield_now().await;
    assert_eq!(endpoint.calls.load(Ordering::SeqCst), 1, "not before");
    clock.advance(Duration::from_secs(1));
    endpoint.wait_for_calls(2).await;
    common::wait_until(|| refresh_token(&auth).as_deref() == Some("rt-1")).await;

    let presented = endpoint.presented();
    assert_eq!(presented.len(), 2);
    assert!(presented.iter().all(|(token, _)| token == "rt-0"));
    assert!(presented[1].1 < GRACE, "{presented:?}");
    assert!(!endpoint.revoked());
    let response = api.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_token_that_may_be_spent_is_never_presented_after_the_grace_window() {
    let (endpoint, api, clock, builder) = setup(&[Answer::Never, Answer::Never]).await;
    let ended = Arc::new(AtomicUsize::new(0));
    let auth = builder
        .refresh_backoff(Duration::from_secs(60), Duration::from_secs(60))
        .on_session_expired({
            let ended = Arc::clone(&ended);
            move |error| {
                assert!(
                    matches!(error, RefreshError::OutcomeUnknown { .. }),
                    "{error}"
                );
                ended.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    log_in(&auth).await;
    let client = client(&auth);

    first_refresh_times_out(&endpoint, &api, &client, &clock).await;
    clock.advance(Duration::from_secs(19));
    endpoint.wait_for_calls(2).await;

    // Neither request is ever answered. Requests meanwhile fail without presenting rt-0 a third time,
    // however much time passes, until the session is given up.
    for _ in 0..12 {
        clock.advance(Duration::from_secs(10));
        tokio::task::yield_now().await;
        let _ = api.get(&client, "/data").await;
    }
    common::wait_until(|| ended.load(Ordering::SeqCst) == 1).await;
    let error = api.get(&client, "/data").await.unwrap_err();
    let Some(Error::ReauthenticationRequired { source }) = Error::from_middleware(&error) else {
        panic!("expected ReauthenticationRequired, got {error:?}");
    };
    assert!(
        matches!(**source, RefreshError::OutcomeUnknown { .. }),
        "{source}"
    );
    let presented = endpoint.presented();
    assert_eq!(presented.len(), 2, "{presented:?}");
    assert!(presented.iter().all(|(_, at)| *at < GRACE), "{presented:?}");
    assert!(
        !endpoint.revoked(),
        "no reuse was ever presented: the family was not revoked as stolen"
    );
    assert_eq!(ended.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_gateway_error_after_the_rotation_is_retried_inside_the_grace_window_whatever_the_backoff()
 {
    let (endpoint, api, clock, builder) = setup(&[Answer::BadGateway]).await;
    let auth = builder
        .refresh_backoff(Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .unwrap();
    log_in(&auth).await;
    let client = client(&auth);

    assert!(api.get(&client, "/data").await.is_err());
    // The backoff says 30-60 s; the retry goes out at 24 s, inside the grace window, all the same.
    clock.advance(Duration::from_secs(24));
    endpoint.wait_for_calls(2).await;
    common::wait_until(|| refresh_token(&auth).as_deref() == Some("rt-1")).await;
    assert!(!endpoint.revoked());
    assert_eq!(
        api.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_a_grace_window_a_lost_answer_is_awaited_but_never_retried() {
    let (endpoint, api, clock, builder) = setup(&[Answer::Held]).await;
    let auth = builder.server_grace(Duration::ZERO).build().unwrap();
    log_in(&auth).await;
    let client = client(&auth);

    first_refresh_times_out(&endpoint, &api, &client, &clock).await;
    clock.advance(Duration::from_secs(50));
    tokio::task::yield_now().await;
    assert!(api.get(&client, "/data").await.is_err());
    endpoint.release();
    common::wait_until(|| refresh_token(&auth).as_deref() == Some("rt-1")).await;
    assert_eq!(endpoint.presented().len(), 1);
    assert_eq!(
        api.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_grace_window_too_short_for_the_timeout_is_refused_at_build() {
    let (_, _, _, builder) = setup(&[]).await;
    let error = builder
        .refresh_timeout(Duration::from_secs(5))
        .server_grace(Duration::from_secs(10))
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::GraceTooShort { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("refresh_timeout") && message.contains("server_grace"),
        "{message}"
    );
}

#[tokio::test]
async fn a_login_or_logout_while_a_refresh_awaits_its_answer_stops_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let (endpoint, api, clock, builder) = setup(&[Answer::Never]).await;
    let (auth, client) =
        with_long_backoff(builder.store(tessera_client::FileTokenStore::new(&path))).await;
    first_refresh_times_out(&endpoint, &api, &client, &clock).await;

    // The flight holds the token file's lock while it waits for the lost answer; a new login does not
    // wait for it to give up.
    let login = TokenSet::new(mint(300))
        .with_refresh_token("rt-new-login")
        .with_expires_at(clock.now() + Duration::from_secs(300));
    tokio::time::timeout(Duration::from_secs(10), auth.set_tokens(login))
        .await
        .expect("the login does not wait for the refresh")
        .unwrap();
    assert_eq!(refresh_token(&auth).as_deref(), Some("rt-new-login"));
    clock.advance(Duration::from_secs(60));
    tokio::task::yield_now().await;
    assert_eq!(
        api.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        endpoint.presented().len(),
        1,
        "the stopped refresh never retried"
    );

    // The same for a logout.
    let (endpoint, api, clock, builder) = setup(&[Answer::Never]).await;
    let (auth, client) =
        with_long_backoff(builder.store(tessera_client::FileTokenStore::new(&path))).await;
    first_refresh_times_out(&endpoint, &api, &client, &clock).await;
    tokio::time::timeout(Duration::from_secs(10), auth.clear())
        .await
        .expect("the logout does not wait for the refresh")
        .unwrap();
    assert!(!path.exists());
    assert!(auth.tokens().is_none());
}
