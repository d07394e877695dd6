//! Refresh-token rotations per second and latency percentiles: through the token endpoint and through the
//! store alone, on file-backed SQLite and (cargo feature `postgres`) PostgreSQL, one and two instances; and
//! how the cost grows with the live families the store holds, with the purge's cost at that size.
//!
//! ```text
//! cargo bench -p tessera-issuer --bench rotation                         # SQLite
//! TESSERA_BENCH_POSTGRES_URL=postgres://… \
//!   cargo bench -p tessera-issuer --features postgres --bench rotation   # SQLite and PostgreSQL
//! ```
//!
//! It prints Markdown tables. In the endpoint tables each client owns one session and refreshes it in a
//! loop through `POST /auth/token` (every request a real rotation: the compare-and-swap in the store and a
//! new EdDSA access token; the axum router in-process, without TCP); "2 instances" are two `Issuer`s on two
//! store handles of one database, the clients split between them. The store tables call
//! `RefreshStore::rotate` directly. The scale table seeds N live families straight into the database (not
//! through argon2 logins), 10% of them expired, rotates 16 other families at 16 clients, then times the
//! purge of the expired ones (batches of 500) and a purge pass that finds nothing.
//!
//! Environment: `TESSERA_BENCH_SECS` (measured seconds per row, default 5), `TESSERA_BENCH_SCALE` (the
//! family counts, default `10000,100000`; add `1000000` for the full run), `TESSERA_BENCH_POSTGRES_URL`
//! (else `TESSERA_TEST_POSTGRES_URL`): the database; each run uses fresh schemas in it.

#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]
#![allow(clippy::unwrap_used, reason = "a benchmark aborts on any failure")]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use tessera_issuer::store::{
    FamilyId, NewFamily, RefreshStore, RequestFingerprint, Rotation, RotationOutcome, RotationSalt,
    TokenHash,
};
use tessera_issuer::{Issuer, PasswordHashing, SqliteStore};
use tower::ServiceExt as _;

/// The time every seeded family and store-level rotation uses.
const NOW: i64 = 1_800_000_000;

/// One row of a table.
struct Row {
    label: String,
    clients: usize,
    rotations: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn print_header() {
    println!(
        "| run | clients | rotations | rotations/s | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|"
    );
}

fn print_row(row: &Row) {
    println!(
        "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
        row.label,
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

/// Runs `clients` loops at once until `measure` passes, each iteration of client `i` being `step(i, n)`
/// for its `n`-th rotation; the row of their latencies.
async fn measure<F, Fut>(label: String, clients: usize, measure: Duration, step: F) -> Row
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let deadline = start + measure;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let step = step.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    step(client, n).await;
                    latencies.push(sent.elapsed());
                    n += 1;
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
    latencies.sort_unstable();
    Row {
        label,
        clients,
        rotations: latencies.len(),
        elapsed,
        latencies,
    }
}

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

/// The token service on `store`, as a deployment starts it.
async fn start<S: RefreshStore>(store: S, clients: usize) -> (Issuer<S>, Router) {
    let issuer = Issuer::builder()
        .issuer("https://auth.bench")
        .audience("api")
        .password_hashing(PasswordHashing::new(64, 1).unwrap())
        .user("user", "password", ["reader"])
        .public_client("bench")
        .family_cap(clients + 1)
        .start(store)
        .await
        .unwrap();
    let auth = issuer.auth_layer().unwrap();
    let app = Router::new().nest("/auth", issuer.router(&auth));
    (issuer, app)
}

/// `clients` clients each refreshing its own session in a loop through the token endpoint, client `i` on
/// `apps[i % apps.len()]`.
async fn endpoint(label: &str, apps: &[Router], clients: usize, duration: Duration) -> Row {
    let mut sessions = Vec::with_capacity(clients);
    for client in 0..clients {
        let app = apps[client % apps.len()].clone();
        let login = call(
            &app,
            "grant_type=password&client_id=bench&username=user&password=password".into(),
        )
        .await;
        let mut token = login["refresh_token"].as_str().unwrap().to_owned();
        // Warm up: page cache, statement caches, connection pools.
        for _ in 0..20 {
            token = call(
                &app,
                format!("grant_type=refresh_token&client_id=bench&refresh_token={token}"),
            )
            .await["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        sessions.push((app, std::sync::Arc::new(tokio::sync::Mutex::new(token))));
    }
    let sessions = std::sync::Arc::new(sessions);
    measure(label.to_owned(), clients, duration, move |client, _| {
        let sessions = std::sync::Arc::clone(&sessions);
        async move {
            let (app, token) = &sessions[client];
            let mut token = token.lock().await;
            *token = call(
                app,
                format!("grant_type=refresh_token&client_id=bench&refresh_token={token}"),
            )
            .await["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    })
    .await
}

/// A distinct 32-byte value per (client, generation), standing in for token hashes and salts.
fn bytes32(client: usize, generation: u64) -> [u8; 32] {
    let mut bytes = [0xbe; 32];
    bytes[..8].copy_from_slice(&(client as u64).to_le_bytes());
    bytes[8..16].copy_from_slice(&generation.to_le_bytes());
    bytes
}

/// Creates the families the store-level clients rotate.
async fn create_clients<S: RefreshStore>(store: &S, clients: usize) {
    for client in 0..clients {
        let family = NewFamily {
            id: FamilyId::from(format!("bench-{client}")),
            user_id: format!("bench-user-{client}"),
            client_id: "bench".into(),
            scope: None,
            roles: Vec::new(),
            user_agent: None,
            dpop_jkt: None,
            token: TokenHash::from_slice(&bytes32(client, 0)).unwrap(),
            created_at: NOW,
            absolute_expires_at: NOW + 86_400,
            idle_expires_at: NOW + 86_400,
        };
        store.create_family(family, 50).await.unwrap();
    }
}

/// `clients` clients rotating their own family through `RefreshStore::rotate`.
async fn store_only<S: RefreshStore + Clone>(
    label: &str,
    store: &S,
    clients: usize,
    duration: Duration,
) -> Row {
    create_clients(store, clients).await;
    let store = store.clone();
    measure(
        label.to_owned(),
        clients,
        duration,
        move |client, generation| {
            let store = store.clone();
            async move {
                let rotation = Rotation {
                    presented: TokenHash::from_slice(&bytes32(client, generation)).unwrap(),
                    client_id: "bench".into(),
                    successor: TokenHash::from_slice(&bytes32(client, generation + 1)).unwrap(),
                    salt: RotationSalt::from_slice(&bytes32(client, generation + 1)).unwrap(),
                    now: NOW,
                    idle_ttl: 86_400,
                    grace: 30,
                    fingerprint: RequestFingerprint::from_slice(&[1; 32]).unwrap(),
                    max_retries: 3,
                    dpop_jkt: None,
                    deny_access_for: 1_200,
                };
                let outcome = store.rotate(rotation).await.unwrap();
                assert!(matches!(outcome, RotationOutcome::Rotated(_)));
            }
        },
    )
    .await
}

/// What the scale table measures at one size.
struct Scale {
    row: Row,
    purged: u64,
    purge: Duration,
    empty_purge: Duration,
}

/// Seeds `families` (10% expired), rotates at 16 clients, then purges.
async fn scale<S: RefreshStore + Clone>(
    label: String,
    store: &S,
    families: u64,
    seed: impl Future<Output = ()>,
    duration: Duration,
) -> Scale {
    seed.await;
    let row = store_only(&label, store, 16, duration).await;
    let started = Instant::now();
    let mut purged = 0;
    loop {
        let batch = store.purge_expired(NOW, 500).await.unwrap();
        if batch.is_empty() {
            break;
        }
        purged += batch.families;
    }
    let purge = started.elapsed();
    let started = Instant::now();
    assert!(store.purge_expired(NOW, 500).await.unwrap().is_empty());
    let empty_purge = started.elapsed();
    assert_eq!(purged, families / 10, "the expired tenth was purged");
    Scale {
        row,
        purged,
        purge,
        empty_purge,
    }
}

/// Inserts `families` families (and their token records) into the SQLite file at `path`, one in ten
/// already expired at [`NOW`].
async fn seed_sqlite(path: &Path, families: u64) {
    use sqlx::ConnectOptions as _;
    let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    // The trigger records each family's first token.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO token_families (id, user_id, client_id, scope, roles, user_agent, generation, \
         current_hash, created_at, last_used_at, absolute_expires_at, idle_expires_at) \
         SELECT 'seed-' || i, 'user-' || (i % 10000), 'bench', NULL, '[]', NULL, 0, randomblob(32), \
         ?2, ?2, ?2 + 86400, CASE WHEN i % 10 = 0 THEN ?2 ELSE ?2 + 86400 END FROM n",
    )
    .bind(i64::try_from(families).unwrap())
    .bind(NOW)
    .execute(&mut connection)
    .await
    .unwrap();
}

fn print_scale_header() {
    println!(
        "| store | live families | rotations/s (16 clients) | p50 ms | p99 ms | purge of the expired tenth | families purged | empty purge pass |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
}

fn print_scale(store: &str, families: u64, scale: &Scale) {
    let row = &scale.row;
    println!(
        "| {store} | {families} | {:.0} | {:.2} | {:.2} | {:.2} s | {} | {:.1} ms |",
        row.rotations as f64 / row.elapsed.as_secs_f64(),
        percentile(&row.latencies, 0.50),
        percentile(&row.latencies, 0.99),
        scale.purge.as_secs_f64(),
        scale.purged,
        scale.empty_purge.as_secs_f64() * 1_000.0,
    );
}

fn main() {
    let seconds = std::env::var("TESSERA_BENCH_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(5);
    let sizes: Vec<u64> = std::env::var("TESSERA_BENCH_SCALE")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|size| size.trim().parse().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let duration = Duration::from_secs(seconds);

    println!("Token endpoint (`POST /auth/token`, grant_type=refresh_token):\n");
    print_header();
    for clients in [1, 16, 64] {
        let row = runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("bench.db"))
                .await
                .unwrap();
            let (issuer, app) = start(store, clients).await;
            let row = endpoint("SQLite file", &[app], clients, duration).await;
            issuer.close().await;
            row
        });
        print_row(&row);
    }
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres::url() {
        for (instances, clients) in [(1, 1), (1, 16), (1, 64), (2, 16)] {
            print_row(&runtime.block_on(postgres::endpoint(&url, instances, clients, duration)));
        }
    }

    println!("\nStore only (`RefreshStore::rotate`):\n");
    print_header();
    for clients in [1, 16, 64] {
        let row = runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("bench.db"))
                .await
                .unwrap();
            let row = store_only("SQLite file", &store, clients, duration).await;
            store.close().await;
            row
        });
        print_row(&row);
    }
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres::url() {
        for clients in [1, 16, 64] {
            print_row(&runtime.block_on(postgres::store(&url, clients, duration)));
        }
    }

    println!("\nScale (store only, 16 clients; seeded families, one in ten expired):\n");
    print_scale_header();
    for &families in &sizes {
        let scale = runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bench.db");
            let store = SqliteStore::open(&path).await.unwrap();
            let label = format!("SQLite, {families} families");
            let scale = scale(
                label,
                &store,
                families,
                seed_sqlite(&path, families),
                duration,
            )
            .await;
            store.close().await;
            scale
        });
        print_scale("SQLite file", families, &scale);
    }
    #[cfg(feature = "postgres")]
    if let Some(url) = postgres::url() {
        for &families in &sizes {
            let scale = runtime.block_on(postgres::scale(&url, families, duration));
            print_scale("PostgreSQL", families, &scale);
        }
    }
    #[cfg(feature = "postgres")]
    if postgres::url().is_none() {
        println!(
            "\n(PostgreSQL rows skipped: set TESSERA_BENCH_POSTGRES_URL or TESSERA_TEST_POSTGRES_URL)"
        );
    }
}

/// The PostgreSQL rows: a fresh schema per run in the given database.
#[cfg(feature = "postgres")]
mod postgres {
    use std::time::Duration;

    use tessera_issuer::store::RefreshStore as _;
    use tessera_issuer::{PostgresStore, PostgresStoreOptions};

    use super::{NOW, Row, Scale};

    /// The benchmark's database, if one is configured.
    pub(super) fn url() -> Option<String> {
        std::env::var("TESSERA_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("TESSERA_TEST_POSTGRES_URL"))
            .ok()
    }

    fn schema(what: &str) -> String {
        format!(
            "bench_{what}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        )
    }

    async fn connect(url: &str, schema: &str) -> PostgresStore {
        PostgresStore::connect_with(url, PostgresStoreOptions::new().schema(schema))
            .await
            .unwrap()
    }

    pub(super) async fn endpoint(
        url: &str,
        instances: usize,
        clients: usize,
        duration: Duration,
    ) -> Row {
        let schema = schema("endpoint");
        let mut issuers = Vec::new();
        let mut apps = Vec::new();
        for _ in 0..instances {
            let (issuer, app) = super::start(connect(url, &schema).await, clients).await;
            issuers.push(issuer);
            apps.push(app);
        }
        let label = match instances {
            1 => "PostgreSQL, 1 instance".to_owned(),
            n => format!("PostgreSQL, {n} instances"),
        };
        let row = super::endpoint(&label, &apps, clients, duration).await;
        for issuer in issuers {
            issuer.close().await;
        }
        row
    }

    pub(super) async fn store(url: &str, clients: usize, duration: Duration) -> Row {
        let store = connect(url, &schema("store")).await;
        let row = super::store_only("PostgreSQL", &store, clients, duration).await;
        store.close().await;
        row
    }

    pub(super) async fn scale(url: &str, families: u64, duration: Duration) -> Scale {
        let schema = schema("scale");
        let store = connect(url, &schema).await;
        let seed = async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "WITH family AS (INSERT INTO {schema}.token_families (id, user_id, client_id, roles, \
                 generation, current_hash, created_at, last_used_at, absolute_expires_at, idle_expires_at) \
                 SELECT 'seed-' || i, 'user-' || (i % 10000), 'bench', '[]', 0, sha256(i::text::bytea), \
                 $2, $2, $2 + 86400, CASE WHEN i % 10 = 0 THEN $2 ELSE $2 + 86400 END \
                 FROM generate_series(1, $1) AS i RETURNING id, current_hash) \
                 INSERT INTO {schema}.refresh_tokens (hash, family_id, generation) \
                 SELECT current_hash, id, 0 FROM family"
            )))
            .bind(i64::try_from(families).unwrap())
            .bind(NOW)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ANALYZE {schema}.token_families"
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        };
        let label = format!("PostgreSQL, {families} families");
        let scale = super::scale(label, &store, families, seed, duration).await;
        store.close().await;
        scale
    }
}
