//! The middleware's cost per request on the happy path: the same GET against the same local API behind
//! `JwtAuthLayer`, once from a plain reqwest client that sets the bearer header itself and once through
//! `AuthMiddleware` (origin check, token lease, request clone for replay, outcome extension).
//!
//! Run: `cargo bench -p tessera-client --bench overhead`. The target is a median ratio of at most 1.05; the
//! run ends with a paired measurement of that ratio (both clients timed in the same windows).
//!
//! `dpop_proof` measures what DPoP adds to each request on the client: signing one proof (EdDSA, ES256),
//! `ath` included. Run it alone with `cargo bench -p tessera-client --bench overhead -- dpop_proof`.

// A benchmark binary: it reports on stdout and may panic on a broken fixture.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest_middleware::ClientBuilder;
use tessera_client::{
    AuthMiddleware, Dpop, DpopKey, RefreshContext, RefreshError, SystemClock, TokenSet,
};
use tessera_core::TokenResponse;
use tessera_server::{Claims, JwtAuthLayer};

const SECRET: &[u8; 32] = b"tessera-client-bench-hs256-key!!";

fn token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://issuer.bench", "aud": "api", "sub": "alice", "client_id": "bench", "jti": "b1",
        "iat": now, "exp": now + 3600, "scope": "read",
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn overhead(c: &mut Criterion) {
    // One thread runs client and server: no cross-thread wake-ups, so the comparison is not drowned in
    // scheduling noise on a shared machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let auth = JwtAuthLayer::builder()
            .hmac_secret(SECRET)
            .issuer("https://issuer.bench")
            .audience("api")
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/data",
                get(|Claims(claims): Claims| async move { claims.sub }),
            )
            .layer(auth);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    });
    let token = token();

    let plain = reqwest::Client::new();
    // Never called on the happy path: the token stays fresh for the whole run.
    let refresher =
        |_: RefreshContext| async { Err::<TokenResponse, _>(RefreshError::NoRefreshToken) };
    let middleware = AuthMiddleware::builder(refresher)
        .allow_origin(&url)
        .build()
        .unwrap();
    runtime
        .block_on(
            middleware.set_tokens(
                TokenSet::new(token.clone())
                    .with_expires_at(SystemTime::now() + Duration::from_secs(3600)),
            ),
        )
        .unwrap();
    let with_middleware = ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    let endpoint = format!("{url}/data");

    let plain_request = || async {
        let response = plain
            .get(&endpoint)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap()
    };
    let middleware_request = || async {
        let response = with_middleware.get(&endpoint).send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap()
    };

    // Each measured request is paired with an unmeasured one from the other client, so both see the same
    // warm pools, the same server cache and the same background noise; only their own time is counted.
    let mut group = c.benchmark_group("per_request");
    group.bench_function("plain_reqwest", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    black_box(plain_request().await);
                    measured += start.elapsed();
                    black_box(middleware_request().await);
                }
                measured
            })
        });
    });
    group.bench_function("auth_middleware", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    black_box(plain_request().await);
                    let start = Instant::now();
                    black_box(middleware_request().await);
                    measured += start.elapsed();
                }
                measured
            })
        });
    });
    group.finish();

    // Criterion measures the two functions in different 10 s windows; on a shared machine the load can
    // change between them. This pass times both clients in the same windows, request by request, and
    // reports the median over 30 windows of the per-window ratio.
    let mut ratios = Vec::new();
    let (mut plain_us, mut middleware_us) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for _ in 0..30 {
            let (mut plain_time, mut middleware_time) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..1000 {
                let start = Instant::now();
                black_box(plain_request().await);
                plain_time += start.elapsed();
                let start = Instant::now();
                black_box(middleware_request().await);
                middleware_time += start.elapsed();
            }
            ratios.push(middleware_time.as_secs_f64() / plain_time.as_secs_f64());
            plain_us.push(plain_time.as_secs_f64() * 1e3);
            middleware_us.push(middleware_time.as_secs_f64() * 1e3);
        }
    });
    println!(
        "paired: plain {:.2} us, middleware {:.2} us, median ratio {:.3}",
        median(&mut plain_us),
        median(&mut middleware_us),
        median(&mut ratios)
    );
}

fn dpop_proof(c: &mut Criterion) {
    let url: reqwest::Url = "https://api.example/v1/items?page=2".parse().unwrap();
    let token = token();
    let mut group = c.benchmark_group("dpop_proof");
    for algorithm in [
        tessera_core::jose::Algorithm::EdDsa,
        tessera_core::jose::Algorithm::Es256,
    ] {
        let dpop = Dpop::new(
            DpopKey::generate(algorithm).unwrap(),
            std::sync::Arc::new(SystemClock),
        );
        group.bench_function(algorithm.as_str(), |b| {
            b.iter(|| {
                black_box(
                    dpop.proof(&reqwest::Method::GET, &url, Some(&token))
                        .unwrap(),
                )
            });
        });
    }
    group.finish();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

criterion_group!(benches, overhead, dpop_proof);
criterion_main!(benches);
