//! Refresh-token rotations per second and latency percentiles through the token endpoint on a
//! file-backed SQLite store, at 1, 16 and 64 concurrent clients.
//!
//! `cargo bench -p tessera-issuer --bench rotation` prints two Markdown tables. In the first, each client
//! owns one session and refreshes it in a loop through the token endpoint (every request a real rotation:
//! the CAS in SQLite and a new EdDSA access token; the axum router in-process, without TCP). The second
//! calls `SqliteStore::rotate` directly, to show how much of the cost is the database.
//! `TESSERA_BENCH_SECS` sets the measured time per row (default 5).

#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]
#![allow(clippy::unwrap_used, reason = "a benchmark aborts on any failure")]

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use tessera_issuer::store::{
    FamilyId, NewFamily, RefreshStore as _, RequestFingerprint, Rotation, RotationOutcome,
    RotationSalt, TokenHash,
};
use tessera_issuer::{Issuer, PasswordHashing, SqliteStore};
use tower::ServiceExt as _;

async fn call(app: &Router, form: String) -> serde_json::Value {
    let request = Request::post("/auth/token")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

async fn refresh(app: &Router, token: &str) -> String {
    let answer = call(
        app,
        format!("grant_type=refresh_token&client_id=bench&refresh_token={token}"),
    )
    .await;
    answer["refresh_token"].as_str().unwrap().to_owned()
}

struct Row {
    clients: usize,
    rotations: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn run(clients: usize, measure: Duration) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bench.db"))
        .await
        .unwrap();
    let issuer = Issuer::builder()
        .issuer("https://auth.bench")
        .audience("api")
        .password_hashing(PasswordHashing::new(64, 1).unwrap())
        .user("user", "password", ["reader"])
        .public_client("bench")
        .family_cap(clients + 1)
        .build(store)
        .unwrap();
    let auth = issuer.auth_layer().unwrap();
    let app = Router::new().nest("/auth", issuer.router(&auth));

    let mut tokens = Vec::with_capacity(clients);
    for _ in 0..clients {
        let login = call(
            &app,
            "grant_type=password&client_id=bench&username=user&password=password".into(),
        )
        .await;
        tokens.push(login["refresh_token"].as_str().unwrap().to_owned());
    }
    // Warm up: page cache, statement caches, connection pools.
    for token in &mut tokens {
        for _ in 0..20 {
            *token = refresh(&app, token).await;
        }
    }

    let start = Instant::now();
    let deadline = start + measure;
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|mut token| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    token = refresh(&app, &token).await;
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    issuer.close().await;
    latencies.sort_unstable();
    Row {
        clients,
        rotations: latencies.len(),
        elapsed,
        latencies,
    }
}

/// A distinct 32-byte value per (client, generation), standing in for token hashes and salts.
fn bytes32(client: usize, generation: u64) -> [u8; 32] {
    let mut bytes = [0_u8; 32];
    bytes[..8].copy_from_slice(&(client as u64).to_le_bytes());
    bytes[8..16].copy_from_slice(&generation.to_le_bytes());
    bytes
}

async fn run_store(clients: usize, measure: Duration) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("bench.db"))
        .await
        .unwrap();
    let now = 1_800_000_000;
    for client in 0..clients {
        let family = NewFamily {
            id: FamilyId::from(format!("family-{client}")),
            user_id: format!("user-{client}"),
            client_id: "bench".into(),
            scope: None,
            roles: Vec::new(),
            user_agent: None,
            dpop_jkt: None,
            token: TokenHash::from_slice(&bytes32(client, 0)).unwrap(),
            created_at: now,
            absolute_expires_at: now + 86_400,
            idle_expires_at: now + 86_400,
        };
        store.create_family(family, 50).await.unwrap();
    }
    let start = Instant::now();
    let deadline = start + measure;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut generation = 0;
                while Instant::now() < deadline {
                    let rotation = Rotation {
                        presented: TokenHash::from_slice(&bytes32(client, generation)).unwrap(),
                        client_id: "bench".into(),
                        successor: TokenHash::from_slice(&bytes32(client, generation + 1)).unwrap(),
                        salt: RotationSalt::from_slice(&bytes32(client, generation + 1)).unwrap(),
                        now,
                        idle_ttl: 86_400,
                        grace: 30,
                        fingerprint: RequestFingerprint::from_slice(&[1; 32]).unwrap(),
                        max_retries: 3,
                        dpop_jkt: None,
                    };
                    let sent = Instant::now();
                    let outcome = store.rotate(rotation).await.unwrap();
                    latencies.push(sent.elapsed());
                    assert!(matches!(outcome, RotationOutcome::Rotated(_)));
                    generation += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    store.close().await;
    latencies.sort_unstable();
    Row {
        clients,
        rotations: latencies.len(),
        elapsed,
        latencies,
    }
}

fn print_row(row: &Row) {
    println!(
        "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
        row.clients,
        row.rotations,
        row.rotations as f64 / row.elapsed.as_secs_f64(),
        percentile(&row.latencies, 0.50),
        percentile(&row.latencies, 0.99),
        percentile(&row.latencies, 1.0),
    );
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1_000.0
}

fn main() {
    let seconds = std::env::var("TESSERA_BENCH_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let measure = Duration::from_secs(seconds);
    let header = "| concurrent clients | rotations | rotations/s | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|";
    println!(
        "Token endpoint (`POST /auth/token`, grant_type=refresh_token), file-backed SQLite:\n"
    );
    println!("{header}");
    for clients in [1, 16, 64] {
        print_row(&runtime.block_on(run(clients, measure)));
    }
    println!("\nStore only (`SqliteStore::rotate`), file-backed SQLite:\n");
    println!("{header}");
    for clients in [1, 16, 64] {
        print_row(&runtime.block_on(run_store(clients, measure)));
    }
}
