//! The remote key set against a real JWKS server on 127.0.0.1:0: first fetch, rotation, an unknown-`kid`
//! storm, `Cache-Control: max-age`, timeouts, and the issuer going down.
#![cfg(feature = "remote-jwks")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use http::StatusCode;
use serde_json::{Value, json};
use tessera_server::{AuthStats, JwtAuthLayer, RemoteJwks};
use tokio::task::JoinSet;

/// A stand-in issuer publishing a JWKS it can change, slow down or stop serving.
struct Issuer {
    keys: Mutex<Vec<Value>>,
    cache_control: Mutex<Option<String>>,
    up: AtomicBool,
    delay: Mutex<Duration>,
    hits: AtomicUsize,
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> Response {
    issuer.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *issuer.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !issuer.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = json!({ "keys": *issuer.keys.lock().unwrap() }).to_string();
    let cache_control = issuer.cache_control.lock().unwrap().clone();
    let mut response = ([("content-type", "application/jwk-set+json")], body).into_response();
    if let Some(value) = cache_control {
        response
            .headers_mut()
            .insert(CACHE_CONTROL, value.parse().unwrap());
    }
    response
}

struct Harness {
    issuer: Arc<Issuer>,
    url: String,
    server: tokio::task::JoinHandle<()>,
    clock: TestClock,
    auth: JwtAuthLayer,
    app: Router,
}

impl Harness {
    async fn start(keys: Vec<Value>) -> Harness {
        Harness::start_with(keys, |builder| builder).await
    }

    async fn start_with(
        keys: Vec<Value>,
        configure: impl FnOnce(tessera_server::RemoteJwksBuilder) -> tessera_server::RemoteJwksBuilder,
    ) -> Harness {
        let issuer = Arc::new(Issuer {
            keys: Mutex::new(keys),
            cache_control: Mutex::new(None),
            up: AtomicBool::new(true),
            delay: Mutex::new(Duration::ZERO),
            hits: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(Arc::clone(&issuer));
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let clock = TestClock::at_unix(NOW);
        let url = format!("http://{address}/.well-known/jwks.json");
        let remote = configure(RemoteJwks::builder(url.clone()).clock(clock.clone()))
            .build()
            .unwrap();
        let auth = JwtAuthLayer::builder()
            .remote_jwks(remote)
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .clock(clock.clone())
            .build()
            .unwrap();
        let app = routes().route_layer(auth.clone());
        Harness {
            issuer,
            url,
            server,
            clock,
            auth,
            app,
        }
    }

    fn hits(&self) -> usize {
        self.issuer.hits.load(Ordering::SeqCst)
    }

    fn stats(&self) -> AuthStats {
        self.auth.stats()
    }

    async fn status(&self, token: &str) -> StatusCode {
        send(&self.app, get_with_token("/me", token)).await.status
    }

    /// Waits (briefly, on real time) until a background fetch has completed.
    async fn await_fetches(&self, fetches: u64) {
        for _ in 0..200 {
            if self.stats().jwks_fetches >= fetches {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {fetches} JWKS fetches, saw {:?}", self.stats());
    }
}

/// Long-lived claims, so that stepping the clock for JWKS timing never expires the token.
fn long_claims() -> Value {
    claims_with(json!({ "exp": NOW + 7 * 86_400 }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_request_fetches_then_keys_are_reused() {
    let harness = Harness::start(vec![Signer::es256().jwk("k1")]).await;
    let token = Signer::es256().sign(Some("k1"), &long_claims());
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    assert_eq!(harness.hits(), 1);
    assert_eq!(harness.stats().jwks_fetches, 1);
    assert_eq!(harness.auth.current_keys().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_kid_also_triggers_the_first_fetch() {
    let harness = Harness::start(vec![Signer::es256().jwk("k1")]).await;
    let token = Signer::es256().sign(None, &long_claims());
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    assert_eq!(harness.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_storm_fetches_at_most_once_per_cooldown() {
    let harness = Harness::start(vec![Signer::es256().jwk("k1")]).await;
    assert_eq!(
        harness
            .status(&Signer::es256().sign(Some("k1"), &long_claims()))
            .await,
        StatusCode::OK
    );
    assert_eq!(harness.hits(), 1);

    let storm = |round: usize| {
        let mut requests = JoinSet::new();
        for index in 0..200 {
            let app = harness.app.clone();
            let token =
                Signer::es256().sign(Some(&format!("garbage-{round}-{index}")), &long_claims());
            requests.spawn(async move { send(&app, get_with_token("/me", &token)).await });
        }
        requests
    };

    // Within the cooldown of the first fetch: no fetch at all, every request answered 401 at once.
    let mut requests = storm(0);
    while let Some(answer) = requests.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer.description(),
            "The access token is signed by an unknown key"
        );
    }
    assert_eq!(harness.hits(), 1);

    // After the cooldown: the whole storm shares a single refetch.
    harness.clock.advance(Duration::from_secs(31));
    let mut requests = storm(1);
    while let Some(answer) = requests.join_next().await {
        assert_eq!(answer.unwrap().status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(harness.hits(), 2);
    assert_eq!(harness.stats().jwks_fetches, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_new_kid_is_fetched_and_removed_kid_stops_working() {
    let harness = Harness::start(vec![Signer::es256().jwk("old")]).await;
    *harness.issuer.cache_control.lock().unwrap() = Some("max-age=300".into());
    let old = Signer::es256().sign(Some("old"), &long_claims());
    let new = Signer::es256_second().sign(Some("new"), &long_claims());
    assert_eq!(harness.status(&old).await, StatusCode::OK);

    // The issuer publishes the next key before signing with it; a token naming it triggers a refetch.
    harness
        .issuer
        .keys
        .lock()
        .unwrap()
        .push(Signer::es256_second().jwk("new"));
    harness.clock.advance(Duration::from_secs(31));
    assert_eq!(harness.status(&new).await, StatusCode::OK);
    assert_eq!(harness.status(&old).await, StatusCode::OK);
    assert_eq!(harness.hits(), 2);

    // The old key is retired; the next scheduled refresh (max-age 300) drops it.
    harness.issuer.keys.lock().unwrap().remove(0);
    harness.clock.advance(Duration::from_secs(301));
    assert_eq!(harness.status(&new).await, StatusCode::OK);
    harness.await_fetches(3).await;
    assert_eq!(harness.status(&old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(harness.status(&new).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_is_honoured_within_bounds() {
    let harness = Harness::start_with(vec![Signer::es256().jwk("k1")], |builder| {
        builder.refresh_bounds(Duration::from_secs(60), Duration::from_secs(3600))
    })
    .await;
    *harness.issuer.cache_control.lock().unwrap() = Some("public, max-age=120".into());
    let token = Signer::es256().sign(Some("k1"), &long_claims());
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    harness.clock.advance(Duration::from_secs(100));
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    assert_eq!(harness.hits(), 1, "still fresh at 100 s of 120");
    harness.clock.advance(Duration::from_secs(21));
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    harness.await_fetches(2).await;
    assert_eq!(harness.hits(), 2);

    // A max-age below the lower bound is raised to it.
    *harness.issuer.cache_control.lock().unwrap() = Some("max-age=1".into());
    harness.clock.advance(Duration::from_secs(121));
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    harness.await_fetches(3).await;
    harness.clock.advance(Duration::from_secs(30));
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(harness.hits(), 3, "max-age=1 is clamped to the 60 s floor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_and_cooldown_run_on_monotonic_time_not_the_wall_clock() {
    let harness = Harness::start(vec![Signer::es256().jwk("k1")]).await;
    let token = Signer::es256().sign(Some("k1"), &long_claims());
    let unknown = Signer::es256().sign(Some("unknown"), &long_claims());
    assert_eq!(harness.status(&token).await, StatusCode::OK);

    // The host's clock jumps a day ahead: no time has passed, so neither the scheduled refresh (15 min)
    // nor the unknown-kid cooldown (30 s) is due.
    harness.clock.set_unix(NOW + 86_400);
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    assert_eq!(harness.status(&unknown).await, StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(harness.hits(), 1, "a wall-clock jump triggered a fetch");

    // It jumps back a day behind: 31 s later the cooldown has passed all the same.
    harness.clock.set_unix(NOW - 86_400);
    harness.clock.advance(Duration::from_secs(31));
    assert_eq!(harness.status(&unknown).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        harness.hits(),
        2,
        "a wall-clock step back delayed the refetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_down_keeps_the_last_good_keys() {
    let harness = Harness::start(vec![Signer::es256().jwk("k1")]).await;
    let token = Signer::es256().sign(Some("k1"), &long_claims());
    assert_eq!(harness.status(&token).await, StatusCode::OK);

    // The issuer answers 503, then stops accepting connections; scheduled refreshes fail, keys stay.
    harness.issuer.up.store(false, Ordering::SeqCst);
    harness.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    harness.await_fetches(2).await;
    assert_eq!(harness.stats().jwks_fetch_failures, 1);

    harness.server.abort();
    while !harness.server.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    harness.clock.advance(Duration::from_secs(31));
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    for _ in 0..200 {
        if harness.stats().jwks_fetch_failures >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(harness.stats().jwks_fetch_failures, 2);
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    // An unknown kid while the issuer is down is still a 401, never a 500.
    harness.clock.advance(Duration::from_secs(31));
    let unknown = send(
        &harness.app,
        get_with_token("/me", &Signer::es256().sign(Some("k9"), &long_claims())),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.json()["error"], "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_loaded_keys_answer_503_until_the_issuer_is_back() {
    let harness = Harness::start(vec![Signer::es256().jwk("k1")]).await;
    harness.issuer.up.store(false, Ordering::SeqCst);
    let token = Signer::es256().sign(Some("k1"), &long_claims());
    let answer = send(&harness.app, get_with_token("/me", &token)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["error"], "temporarily_unavailable");
    assert!(answer.headers.get("www-authenticate").is_none());
    // Within the cooldown, no second fetch: still 503, answered at once.
    assert_eq!(
        harness.status(&token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(harness.hits(), 1);

    harness.issuer.up.store(true, Ordering::SeqCst);
    harness.clock.advance(Duration::from_secs(31));
    assert_eq!(harness.status(&token).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_issuer_times_out_without_blocking_other_requests() {
    let harness = Harness::start_with(vec![Signer::es256().jwk("k1")], |builder| {
        builder.timeout(Duration::from_secs(1))
    })
    .await;
    let token = Signer::es256().sign(Some("k1"), &long_claims());
    assert_eq!(harness.status(&token).await, StatusCode::OK);

    *harness.issuer.delay.lock().unwrap() = Duration::from_secs(5);
    harness.clock.advance(Duration::from_secs(31));
    let app = harness.app.clone();
    let unknown = Signer::es256().sign(Some("k2"), &long_claims());
    let waiting =
        tokio::spawn(async move { send(&app, get_with_token("/me", &unknown)).await.status });
    // While that request waits on the refetch, requests with known keys go straight through.
    while harness.hits() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(harness.status(&token).await, StatusCode::OK);
    assert!(
        !waiting.is_finished(),
        "the refetch (1 s timeout) is still in flight"
    );
    assert_eq!(waiting.await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(harness.stats().jwks_fetch_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secrets_in_a_published_set_are_ignored() {
    let oct = json!({"kty": "oct", "kid": "h", "k": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYtdGVzdC1zZWNyZXQ"});
    let harness = Harness::start(vec![oct, Signer::es256().jwk("k1")]).await;
    let hmac = Signer::hs256().sign(Some("h"), &long_claims());
    assert_eq!(harness.status(&hmac).await, StatusCode::UNAUTHORIZED);
    assert_eq!(harness.auth.current_keys().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_documents_are_refused_and_refresh_reports_errors() {
    let harness = Harness::start_with(vec![Signer::es256().jwk("k1")], |builder| {
        builder.max_document_len(64)
    })
    .await;
    let answer = send(
        &harness.app,
        get_with_token("/me", &Signer::es256().sign(Some("k1"), &long_claims())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(harness.stats().jwks_fetch_failures, 1);

    // An explicit refresh reports what went wrong, and succeeds once the document fits.
    let remote = RemoteJwks::builder(harness.url.clone())
        .max_document_len(64)
        .build()
        .unwrap();
    let error = remote.refresh().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the JWKS document is larger than 64 bytes"
    );
    let remote = RemoteJwks::builder(harness.url.clone()).build().unwrap();
    remote.refresh().await.unwrap();
    assert_eq!((remote.fetch_counts(), remote.current().len()), ((1, 0), 1));
}

/// A plain HTTP server on 127.0.0.1:0 running `router`; its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_refused_and_the_last_good_keys_stay() {
    // Another origin publishing a key the attacker holds.
    let attacker = serve(Router::new().route(
        "/jwks",
        get(|| async { json!({"keys": [Signer::es256_second().jwk("evil")]}).to_string() }),
    ))
    .await;
    // The issuer's JWKS URL serves its key first, then answers 307 to the attacker's document.
    let redirecting = Arc::new(AtomicBool::new(false));
    let state = (Arc::clone(&redirecting), format!("{attacker}/jwks"));
    let issuer = serve(
        Router::new()
            .route(
                "/jwks",
                get(
                    |State((redirecting, target)): State<(Arc<AtomicBool>, String)>| async move {
                        if redirecting.load(Ordering::SeqCst) {
                            (StatusCode::TEMPORARY_REDIRECT, [("location", target)]).into_response()
                        } else {
                            json!({"keys": [Signer::es256().jwk("k1")]})
                                .to_string()
                                .into_response()
                        }
                    },
                ),
            )
            .with_state(state),
    )
    .await;
    let remote = RemoteJwks::new(format!("{issuer}/jwks")).unwrap();
    remote.refresh().await.unwrap();
    assert_eq!(
        remote.current().get("k1").map(|key| key.kid()),
        Some(Some("k1"))
    );

    redirecting.store(true, Ordering::SeqCst);
    let error = remote.refresh().await.unwrap_err();
    assert!(
        matches!(error, tessera_server::JwksFetchError::Redirect { .. }),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "the JWKS endpoint answered 307 Temporary Redirect to {attacker}/jwks; redirects are \
             not followed: configure the final JWKS URL"
        )
    );
    let keys = remote.current();
    assert!(keys.get("evil").is_none(), "the redirect was followed");
    assert!(keys.get("k1").is_some(), "the last good keys were dropped");
    assert_eq!(remote.fetch_counts(), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_document_is_cut_at_the_cap_not_buffered() {
    // A raw HTTP/1.1 answer without a length, whose body never ends: only the cap can stop the read.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&written);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut request = [0; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 16 * 1024];
                while socket.write_all(&chunk).await.is_ok() {
                    counter.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            });
        }
    });
    let remote = RemoteJwks::builder(format!("http://{address}/jwks"))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let error = remote.refresh().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the JWKS document is larger than 262144 bytes"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the read stopped at the cap, not at the timeout"
    );
    assert_eq!(remote.current().len(), 0);
}
