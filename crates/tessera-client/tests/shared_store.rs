//! Issue 12, defect 13: two clients sharing one token file must never present the same refresh token
//! twice (the token service takes that for theft and ends the session). Two middlewares in one process on
//! one `FileTokenStore` stand for two processes: the lock is an OS file lock, per open file.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{TestServer, client, mint, outcome};
use reqwest::StatusCode;
use tessera_client::{AuthMiddleware, Clock, FileTokenStore, ManualClock, TokenSet};

/// Two middlewares on the token file `path`, on `clock`, refreshing against `server`.
fn two_clients(
    server: &TestServer,
    path: &std::path::Path,
    clock: &ManualClock,
) -> (AuthMiddleware, AuthMiddleware) {
    let make = || {
        server
            .auth()
            .store(FileTokenStore::new(path))
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    (make(), make())
}

/// Logs `first` in with a token valid for 300 s and the refresh token `rt-login`; `second` loads it from
/// the shared file on its first request.
async fn share_a_login(
    server: &TestServer,
    clock: &ManualClock,
    first: &AuthMiddleware,
    second: &AuthMiddleware,
) {
    server.issuer.accept_refresh_token("rt-login");
    first
        .set_tokens(
            TokenSet::new(mint(300))
                .with_refresh_token("rt-login")
                .with_expires_at(clock.now() + Duration::from_secs(300)),
        )
        .await
        .unwrap();
    let response = server.get(&client(second), "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        second.tokens().unwrap().refresh_token().unwrap().as_str(),
        "rt-login"
    );
}

fn presented_refresh_tokens(server: &TestServer) -> Vec<String> {
    server
        .issuer
        .forms
        .lock()
        .unwrap()
        .iter()
        .filter_map(|form| form.get("refresh_token").cloned())
        .collect()
}

#[tokio::test]
async fn a_client_sharing_the_file_takes_the_pair_another_refreshed() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let (first, second) = two_clients(&server, &dir.path().join("tokens.json"), &clock);
    share_a_login(&server, &clock, &first, &second).await;

    // Both are due. The first refreshes; the second, which still holds rt-login, finds rt-0 in the file.
    clock.advance(Duration::from_secs(241));
    let response = server.get(&client(&first), "/data").await.unwrap();
    assert!(outcome(&response).refreshed());
    let response = server.get(&client(&second), "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !outcome(&response).refreshed(),
        "it loaded the pair from the file instead of refreshing"
    );
    assert_eq!(server.issuer.calls(), 1, "one token request for both");
    assert_eq!(presented_refresh_tokens(&server), ["rt-login"]);
    assert_eq!(
        second.tokens().unwrap().refresh_token().unwrap().as_str(),
        "rt-0"
    );
}

#[tokio::test]
async fn two_clients_refreshing_at_once_present_each_refresh_token_once() {
    for _ in 0..5 {
        let server = TestServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let (first, second) = two_clients(&server, &dir.path().join("tokens.json"), &clock);
        share_a_login(&server, &clock, &first, &second).await;

        clock.advance(Duration::from_secs(241));
        let requests: Vec<_> = [&first, &second, &first, &second]
            .into_iter()
            .map(|auth| {
                let client = client(auth);
                let url = format!("{}/data", server.url);
                tokio::spawn(async move { client.get(url).send().await })
            })
            .collect();
        for request in requests {
            let response = request.await.unwrap().unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        let presented = presented_refresh_tokens(&server);
        assert_eq!(
            presented,
            ["rt-login"],
            "never the same refresh token twice"
        );
        let held = |auth: &AuthMiddleware| {
            let tokens = auth.tokens().unwrap();
            (
                tokens.access_token().to_owned(),
                tokens.refresh_token().unwrap().as_str().to_owned(),
            )
        };
        assert_eq!(held(&first), held(&second), "both hold the one new pair");
    }
}
