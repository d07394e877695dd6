//! PostgreSQL restarted under load: requests fail (500 or 503) while it is down, never with a wrong answer
//! and never forking a family, and the instances recover by themselves. Alone in its test binary: it takes
//! the database down for everyone.
#![cfg(feature = "postgres")]

mod instances;
mod postgres;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use instances::*;
use tessera_core::{Clock as _, SystemClock};
use tessera_issuer::PostgresStore;
use tessera_issuer::store::RefreshStore as _;

#[cfg(test)]
/// Runs the cluster's control script with `command` (restart, stop, start).
async fn control(command: &'static str) {
    let ctl = postgres::ctl();
    let script = ctl.clone();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(script)
            .arg(command)
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await
    .unwrap()
    .unwrap_or_else(|error| panic!("running {ctl} {command}: {error}"));
    assert!(
        status.success(),
        "{command} of the test cluster failed: {status}"
    );
}

/// What one client saw: its family, and each answer by kind.
#[derive(Debug, Default)]
struct Seen {
    rotations: u64,
    failures: u64,
    ok_after_restart: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_fails_requests_then_recovers_without_forking() {
    let schema = postgres::schema("outage");
    let mut instances: Vec<Instance<PostgresStore>> = Vec::new();
    for _ in 0..2 {
        instances.push(serve(postgres::store_in(&schema).await, builder()).await);
    }
    let urls: Vec<String> = instances
        .iter()
        .map(|instance| instance.url.clone())
        .collect();
    let client = Client::default();
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));

    let mut tasks = Vec::new();
    for index in 0..8 {
        // One after another: the throttle lets only five attempts of one username run at once.
        let login = client.login(&urls[index % 2], "alice", "wonderland").await;
        assert_eq!(login.status, 200, "{}", login.body);
        let mut token = login.field("refresh_token");
        let (client, urls) = (client.clone(), urls.clone());
        let (stop, restarted) = (Arc::clone(&stop), Arc::clone(&restarted));
        tasks.push(tokio::spawn(async move {
            // Every successor ever served for a presented token: a second, different one is a fork.
            let mut successor_of: HashMap<String, String> = HashMap::new();
            let mut seen = Seen::default();
            let mut turn = index;
            while !stop.load(Ordering::SeqCst) {
                turn += 1;
                let answer = client.refresh(&urls[turn % 2], &token).await;
                match answer.status {
                    200 => {
                        let next = answer.field("refresh_token");
                        if let Some(earlier) = successor_of.insert(token.clone(), next.clone()) {
                            assert_eq!(
                                earlier, next,
                                "two successors of one token: the family forked"
                            );
                        } else {
                            seen.rotations += 1;
                        }
                        if restarted.load(Ordering::SeqCst) {
                            seen.ok_after_restart += 1;
                        }
                        token = next;
                    }
                    0 | 500 | 503 => {
                        seen.failures += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    status => panic!("a wrong answer during the outage: {status} {}", answer.body),
                }
            }
            (seen, token)
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let outage = Instant::now();
    control("restart").await;
    restarted.store(true, Ordering::SeqCst);
    let down_for = outage.elapsed();
    // Recovered by themselves: every client rotates again, well within the grace window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::SeqCst);

    let mut failures = 0;
    let mut rotations = Vec::new();
    let mut tokens = Vec::new();
    for task in tasks {
        let (seen, token) = task.await.unwrap();
        failures += seen.failures;
        assert!(
            seen.ok_after_restart > 0,
            "a client never succeeded after the restart: {seen:?}"
        );
        rotations.push(seen.rotations);
        tokens.push(token);
    }
    let store = instances[0].issuer.store();
    let families = store
        .live_families("alice", SystemClock.unix_seconds())
        .await
        .unwrap();
    assert_eq!(families.len(), 8, "no family was revoked");
    let mut generations: Vec<u64> = families.iter().map(|family| family.generation).collect();
    generations.sort_unstable();
    rotations.sort_unstable();
    assert_eq!(
        generations, rotations,
        "each family rotated exactly as often as its client saw a new successor"
    );
    for token in tokens {
        assert_eq!(
            client.refresh(&urls[0], &token).await.status,
            200,
            "its last token is live"
        );
    }
    println!("restart took {down_for:?}; {failures} requests failed meanwhile");

    // Readiness follows the database: not ready while it is down, ready again by itself.
    control("stop").await;
    let health = format!("{}/readyz", urls[1]);
    let not_ready = within(Duration::from_secs(10), || async {
        client.get(&health).await.status == 503
    })
    .await;
    control("start").await;
    assert!(not_ready.is_some(), "still ready with the database down");
    let ready = within(Duration::from_secs(15), || async {
        client.get(&health).await.status == 200
    })
    .await;
    assert!(
        ready.is_some(),
        "not ready again after the database came back"
    );
    let login = client.login(&urls[1], "alice", "wonderland").await;
    assert_eq!(login.status, 200, "{}", login.body);
}
