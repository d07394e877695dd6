//! Two processes on one SQLite file (a rolling restart overlaps the old and the new process): started
//! together on an empty file and an empty key directory, they migrate once, agree on one signing key, and
//! serve concurrent logins and cross-process refreshes without a single 500.
//!
//! The processes are this test binary itself, run again with [`CHILD_DB`] set: its [`child_process`] test
//! then serves a token service on the file and prints its URL, until its stdin closes.

mod instances;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use instances::*;
use tessera_issuer::{Issuer, SqliteStore};

/// The database file a child process serves; unset in a normal test run.
const CHILD_DB: &str = "TESSERA_TEST_SQLITE_CHILD_DB";

/// What a child prints once it serves.
const LISTENING: &str = "TESSERA_CHILD_LISTENING ";

/// How many users the children know (`user0`..), so concurrent logins are not one user's.
const USERS: usize = 20;

/// In a child process: serves the token service on the file in [`CHILD_DB`] until stdin closes. In a normal
/// run: nothing.
#[test]
fn child_process() {
    let Ok(database) = std::env::var(CHILD_DB) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let database = PathBuf::from(database);
        let keys = database.with_extension("keys");
        let store = SqliteStore::open(&database).await.unwrap();
        let mut builder = builder().key_dir(keys);
        for user in 0..USERS {
            builder = builder.user(format!("user{user}"), "secret", ["reader"]);
        }
        let instance = serve(store, builder).await;
        println!("{LISTENING}{}", instance.url);
        // Serve until the parent closes stdin (or goes away).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .unwrap();
        instance.issuer.close().await;
    });
}

/// A child serving `database`, killed when dropped.
struct Process {
    child: Child,
    url: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
/// Starts a child on `database`; returns once it serves.
fn spawn(database: &Path) -> std::thread::JoinHandle<Process> {
    let database = database.to_owned();
    std::thread::spawn(move || {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let url = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                // libtest prints `test child_process ... ` on the same line first.
                line.split_once(LISTENING)
                    .map(|(_, url)| url.trim().to_owned())
            })
            .unwrap_or_else(|| {
                panic!(
                    "the child process exited without serving: {:?}",
                    child.wait()
                )
            });
        Process { child, url }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_file_serve_concurrent_logins_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("tessera.db");
    // Started together on an empty file and an empty key directory.
    let (a, b) = (spawn(&database), spawn(&database));
    let (a, b) = tokio::task::spawn_blocking(move || (a.join().unwrap(), b.join().unwrap()))
        .await
        .unwrap();
    let urls = [a.url.clone(), b.url.clone()];
    let client = Client::default();

    let jwks = |url: &str| {
        let (client, url) = (client.clone(), format!("{url}/.well-known/jwks.json"));
        async move { client.get(&url).await.json() }
    };
    assert_eq!(
        jwks(&urls[0]).await,
        jwks(&urls[1]).await,
        "one signing key"
    );

    for round in 0..3 {
        let logins = futures_util::future::join_all((0..2 * USERS).map(|index| {
            let (client, url) = (client.clone(), urls[index % 2].clone());
            async move {
                client
                    .login(&url, &format!("user{}", index / 2), "secret")
                    .await
            }
        }))
        .await;
        for login in &logins {
            assert_eq!(login.status, 200, "round {round}: {}", login.body);
        }
        // Each session refreshed on the other process.
        let refreshes =
            futures_util::future::join_all(logins.iter().enumerate().map(|(index, login)| {
                let (client, url, token) = (
                    client.clone(),
                    urls[(index + 1) % 2].clone(),
                    login.field("refresh_token"),
                );
                async move { client.refresh(&url, &token).await }
            }))
            .await;
        for refresh in &refreshes {
            assert_eq!(refresh.status, 200, "round {round}: {}", refresh.body);
        }
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop((a, b));

    // The file is whole: a third process opens it and finds every session.
    let store = SqliteStore::open(&database).await.unwrap();
    let issuer = Issuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .public_client("demo")
        .key_dir(database.with_extension("keys"))
        .start(store)
        .await
        .unwrap();
    assert_eq!(issuer.signing_keys().len(), 1, "one key in the directory");
    issuer.close().await;
}
