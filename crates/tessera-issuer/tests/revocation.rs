//! Revocation holes an adversarial review found (issue 12), each shut: concurrent guesses bypassing the
//! login throttle (#1), logout-all sparing tokens of the same second or of a racing refresh (#3), revoked
//! families whose access tokens stay valid (#4), denials dropped while verifiers still accept the token
//! (#5), and a restart that briefly accepts revoked tokens (#14).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use tessera_issuer::{
    CredentialVerifier, Issuer, MemoryStore, SqliteStore, VerifiedUser, VerifyFuture,
};

use support::*;

/// A verifier that counts the passwords it checks and takes its time, as a real hash does.
#[derive(Clone, Default)]
struct SlowCounting(Arc<AtomicUsize>);

impl CredentialVerifier for SlowCounting {
    fn verify<'a>(&'a self, username: &'a str, password: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(
                (username == "alice" && password == "wonderland").then(|| VerifiedUser {
                    subject: "alice".into(),
                    roles: Vec::new(),
                }),
            )
        })
    }
}

/// #1: each attempt is reserved before its password is checked, so 20 guesses sent at once are throttled
/// as 20 sent one after another: the free budget (5) is checked, the rest answered 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_are_throttled_before_their_password_is_checked() {
    for store in ["memory", "sqlite"] {
        let verifier = SlowCounting::default();
        let builder = Issuer::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .public_client("demo")
            .credential_verifier(verifier.clone());
        let app = match store {
            "memory" => {
                let issuer = builder.start(MemoryStore::new()).await.unwrap();
                issuer.router(&issuer.auth_layer().unwrap())
            }
            _ => {
                let issuer = builder
                    .start(SqliteStore::in_memory().await.unwrap())
                    .await
                    .unwrap();
                issuer.router(&issuer.auth_layer().unwrap())
            }
        };
        let guesses = (0..20).map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let request = http::Request::post("/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(axum::body::Body::from(
                        "grant_type=password&client_id=demo&username=alice&password=guess",
                    ))
                    .unwrap();
                tower::ServiceExt::oneshot(app, request)
                    .await
                    .unwrap()
                    .status()
            })
        });
        let mut statuses = Vec::new();
        for guess in guesses.collect::<Vec<_>>() {
            statuses.push(guess.await.unwrap());
        }
        let checked = verifier.0.load(Ordering::SeqCst);
        assert_eq!(
            checked, 5,
            "{store}: the free budget is checked, no more: {statuses:?}"
        );
        let throttled = statuses
            .iter()
            .filter(|&&status| status == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!(throttled, 15, "{store}: {statuses:?}");
    }
}

/// #3: logout-all denies every access token of the sessions it ends, also one minted in the same second
/// (whose `iat` equals the revocation's time).
#[tokio::test]
async fn logout_all_denies_tokens_minted_in_the_same_second() {
    let h = harness(MemoryStore::new()).await;
    let login = h.login("alice", "wonderland").await;
    let refreshed = h.refresh(&login.refresh_token()).await.access_token();
    assert_eq!(
        claims_of(&refreshed)["iat"],
        START,
        "minted in the revocation's second"
    );
    let logout = h
        .bearer("POST", "/auth/logout-all", &login.access_token())
        .await;
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.text());
    assert_eq!(
        h.sessions(&refreshed).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A login after the revocation, in the same second, is a new session and works.
    let again = h.login("alice", "wonderland").await.access_token();
    assert_eq!(h.sessions(&again).await.status, StatusCode::OK);
}

/// #3: a refresh racing logout-all either loses (its family is revoked first) or wins, and then the
/// token it minted belongs to a session the logout ends: it is refused either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_racing_logout_all_keeps_no_token_alive() {
    let h = harness(SqliteStore::in_memory().await.unwrap()).await;
    for _ in 0..10 {
        let login = h.login("alice", "wonderland").await;
        let refreshes: Vec<_> = (0..8)
            .map(|_| {
                let (h, token) = (h.clone(), login.refresh_token());
                tokio::spawn(async move { h.refresh(&token).await })
            })
            .collect();
        let logout = h
            .bearer("POST", "/auth/logout-all", &login.access_token())
            .await;
        assert_eq!(logout.status, StatusCode::OK, "{}", logout.text());
        for refresh in refreshes {
            let answer = refresh.await.unwrap();
            if answer.status == StatusCode::OK {
                let minted = answer.access_token();
                assert_eq!(
                    h.sessions(&minted).await.status,
                    StatusCode::UNAUTHORIZED,
                    "a token minted by a refresh racing logout-all is still accepted"
                );
            }
        }
    }
}

/// The ways a session ends.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Logout,
    RefreshTokenRevoked,
    SessionDeleted,
    ReuseDetected,
}

#[cfg(test)]
impl Ending {
    /// Ends the session `login` started, in this way.
    async fn end(self, h: &Harness<MemoryStore>, login: &Answer, other_access: &str) {
        let answer = match self {
            Ending::Logout => {
                let form = format!("client_id=demo&refresh_token={}", login.refresh_token());
                h.post_form("/auth/logout", &form).await
            }
            Ending::RefreshTokenRevoked => {
                let form = format!(
                    "client_id=demo&token={}&token_type_hint=refresh_token",
                    login.refresh_token()
                );
                h.post_form("/auth/revoke", &form).await
            }
            Ending::SessionDeleted => {
                let sid = claims_of(&login.access_token())["sid"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                h.bearer("DELETE", &format!("/auth/sessions/{sid}"), other_access)
                    .await
            }
            Ending::ReuseDetected => {
                // Rotate, then replay the consumed token after the grace window.
                assert_eq!(
                    h.refresh(&login.refresh_token()).await.status,
                    StatusCode::OK
                );
                h.clock.advance_secs(31);
                let replay = h.refresh(&login.refresh_token()).await;
                assert_eq!(replay.error(), "invalid_grant");
                return;
            }
        };
        assert!(answer.status.is_success(), "{self:?}: {}", answer.text());
    }
}

/// #4: ending a session in any way denies its access tokens by `sid`; the user's other sessions keep
/// working.
#[tokio::test]
async fn every_way_of_ending_a_session_denies_its_access_tokens() {
    let h = harness(MemoryStore::new()).await;
    for ending in [
        Ending::Logout,
        Ending::RefreshTokenRevoked,
        Ending::SessionDeleted,
        Ending::ReuseDetected,
    ] {
        let other = h.login("alice", "wonderland").await.access_token();
        let login = h.login("alice", "wonderland").await;
        let access = login.access_token();
        assert_eq!(
            h.sessions(&access).await.status,
            StatusCode::OK,
            "{ending:?}"
        );
        ending.end(&h, &login, &other).await;
        let session = h.sessions(&access).await;
        assert_eq!(
            session.status,
            StatusCode::UNAUTHORIZED,
            "{ending:?}: the session's access token still works"
        );
        assert!(
            session.text().contains("revoked"),
            "{ending:?}: {}",
            session.text()
        );
        assert_eq!(
            h.sessions(&other).await.status,
            StatusCode::OK,
            "{ending:?}: another session of the user is unaffected"
        );
    }
}

/// #5: the layer accepts a token until `exp` plus its leeway, so its denial is kept past that: purging at
/// `exp` must not bring a revoked token back.
#[tokio::test]
async fn a_revoked_token_stays_refused_during_the_verifiers_leeway() {
    let h = harness(MemoryStore::new()).await;
    let access = h.login("alice", "wonderland").await.access_token();
    let revoke = h
        .post_form(
            "/auth/revoke",
            &format!("token={access}&token_type_hint=access_token"),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    let exp = claims_of(&access)["exp"].as_i64().unwrap();
    // Past `exp`, within the layer's 30 s leeway; the purge has run.
    h.clock.set_unix(exp + 10);
    h.issuer.purge_expired().await.unwrap();
    let denied = h.sessions(&access).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(denied.text().contains("revoked"), "{}", denied.text());
}

/// #14: a process that starts on a database holding revocations never accepts a revoked token, not even
/// before it has read them.
#[tokio::test]
async fn a_restart_never_accepts_a_revoked_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.db");
    let keys = dir.path().join("keys");
    let clock = tessera_core::ManualClock::at_unix(START);
    let before = harness_on(
        SqliteStore::open(&path).await.unwrap(),
        clock.clone(),
        |builder| builder.key_dir(&keys),
    )
    .await;
    let access = before.login("alice", "wonderland").await.access_token();
    let revoke = before
        .post_form(
            "/auth/revoke",
            &format!("token={access}&token_type_hint=access_token"),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    before.issuer.close().await;

    // Built without loading the revocations: the layer refuses everything until they are loaded.
    let issuer = Issuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .public_client("demo")
        .key_dir(&keys)
        .clock(clock.clone())
        .build(SqliteStore::open(&path).await.unwrap())
        .unwrap();
    let auth = issuer.auth_layer().unwrap();
    let app = axum::Router::new().nest("/auth", issuer.router(&auth));
    let sessions = |token: &str| {
        http::Request::get("/auth/sessions")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let early = tower::ServiceExt::oneshot(app.clone(), sessions(&access))
        .await
        .unwrap();
    assert_eq!(
        early.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "before the revocations are loaded"
    );
    issuer.load_denylist().await.unwrap();
    let loaded = tower::ServiceExt::oneshot(app, sessions(&access))
        .await
        .unwrap();
    assert_eq!(loaded.status(), StatusCode::UNAUTHORIZED);
    issuer.close().await;

    // Started (the deployment's way), it is loaded before it answers anything.
    let after = harness_on(SqliteStore::open(&path).await.unwrap(), clock, |builder| {
        builder.key_dir(&keys)
    })
    .await;
    assert_eq!(
        after.sessions(&access).await.status,
        StatusCode::UNAUTHORIZED
    );
}
