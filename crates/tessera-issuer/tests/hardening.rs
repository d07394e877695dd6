//! The defects an adversarial review found in the token endpoint (issue 12), each pinned by a test that
//! failed before its fix: echoed input in error descriptions, the throttle's error code, grant checks a
//! client could step around, over-long usernames, an unbounded queue in front of the password check,
//! client tokens on the user endpoints, and grace-window retries anyone could claim.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{Request, StatusCode};
use tessera_core::GrantType;
use tessera_issuer::store::RefreshStore as _;
use tessera_issuer::{
    AuthEvent, ClientRegistration, CredentialVerifier, MemoryStore, SqliteStore, VerifiedUser,
    VerifyFuture,
};
use tokio::sync::Semaphore;

use support::*;

/// The bytes RFC 6749 §5.2 allows in `error_description`: `%x20-21 / %x23-5B / %x5D-7E`.
#[cfg(test)]
fn assert_description_is_rfc6749(answer: &Answer) {
    let description = answer.json()["error_description"]
        .as_str()
        .unwrap_or_else(|| panic!("no error_description: {}", answer.text()))
        .to_owned();
    assert!(
        description
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
        "characters RFC 6749 §5.2 forbids: {description:?}"
    );
}

#[tokio::test]
async fn error_descriptions_never_echo_what_the_client_sent() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.client(ClientRegistration::public("narrow").scopes(["email"]))
    })
    .await;
    let json = |body: &'static str| {
        Request::post("/auth/token")
            .header(CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let token = h.login("alice", "wonderland").await.refresh_token();
    let forms = [
        "grant_type=password&client_id=ma%22rk%5Cer&username=a&password=b".to_owned(),
        "grant_type=mark%22er".to_owned(),
        "grant_type=password&client_id=svc&username=a&password=b".to_owned(),
        "grant_type=password&client_id=narrow&username=alice&password=wonderland&scope=marker"
            .to_owned(),
        format!("grant_type=refresh_token&client_id=demo&refresh_token={token}&scope=marker"),
        "grant_type=client_credentials&client_id=marker&client_secret=x".to_owned(),
    ];
    let mut answers = Vec::new();
    for form in &forms {
        answers.push((form.clone(), h.post_form("/auth/token", form).await));
    }
    for body in [
        r#"{"mark\"er": 5}"#,
        r#""marker""#,
        r#"{"grant_type": ["marker"]}"#,
    ] {
        answers.push((body.to_owned(), h.send(json(body)).await));
    }
    for (sent, answer) in answers {
        assert!(answer.status.is_client_error(), "{sent}: {}", answer.text());
        assert_description_is_rfc6749(&answer);
        let description = answer.json()["error_description"].to_string();
        assert!(
            !description.contains("mark") && !description.contains("svc"),
            "{sent}: the description echoes the request: {description}"
        );
    }
}

#[tokio::test]
async fn throttled_logins_get_429_slow_down_and_retry_after() {
    let h = harness(MemoryStore::new()).await;
    for _ in 0..6 {
        h.login("alice", "wrong").await;
    }
    let throttled = h.login("alice", "wonderland").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        throttled.error(),
        "slow_down",
        "RFC 6749 §5.2 defines no throttling code; slow_down is the token endpoint's registered one"
    );
    assert_eq!(throttled.headers[RETRY_AFTER], "1");
    assert_description_is_rfc6749(&throttled);
}

/// `pw-only`: a public client allowed the password grant but not the refresh grant.
#[cfg(test)]
fn password_only(builder: tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder {
    builder.client(ClientRegistration::public("pw-only").grant_types([GrantType::Password]))
}

#[tokio::test]
async fn the_password_grant_issues_no_refresh_token_to_a_client_not_allowed_the_refresh_grant() {
    let h = harness_with(MemoryStore::new(), password_only).await;
    let login = h
        .post_form(
            "/auth/token",
            "grant_type=password&client_id=pw-only&username=alice&password=wonderland",
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    assert!(
        login.json().get("refresh_token").is_none(),
        "a refresh token the client may never use: {}",
        login.text()
    );
    assert!(
        h.issuer
            .store()
            .live_families("alice", START)
            .await
            .unwrap()
            .is_empty(),
        "no session is started for it either"
    );
}

#[tokio::test]
async fn a_refresh_without_client_id_still_checks_the_clients_grant_types() {
    // A family started while `pw-only` was still allowed to refresh, then the client loses the grant.
    let store = SqliteStore::in_memory().await.unwrap();
    let secret = [7; 32];
    let before = harness_with(store.clone(), |builder| {
        builder.refresh_secret(secret).client(
            ClientRegistration::public("pw-only")
                .grant_types([GrantType::Password, GrantType::RefreshToken]),
        )
    })
    .await;
    let token = before
        .post_form(
            "/auth/token",
            "grant_type=password&client_id=pw-only&username=alice&password=wonderland",
        )
        .await
        .refresh_token();
    let after = harness_with(store, |builder| {
        password_only(builder.refresh_secret(secret))
    })
    .await;
    for form in [
        format!("grant_type=refresh_token&refresh_token={token}"),
        format!("grant_type=refresh_token&client_id=pw-only&refresh_token={token}"),
    ] {
        let answer = after.post_form("/auth/token", &form).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{form}");
        assert_eq!(answer.error(), "unauthorized_client", "{form}");
    }
}

#[tokio::test]
async fn over_long_usernames_are_refused_before_any_password_check_or_throttle_entry() {
    let checks = Arc::new(AtomicUsize::new(0));
    let verifier = Counting {
        checks: Arc::clone(&checks),
        gate: None,
    };
    let h = harness_with_verifier(MemoryStore::new(), verifier, |builder| builder).await;
    let long = "a".repeat(257);
    for _ in 0..8 {
        let answer = h.login(&long, "wrong").await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
        assert_eq!(answer.error(), "invalid_request");
        assert!(answer.text().contains("256"), "{}", answer.text());
    }
    assert_eq!(checks.load(Ordering::SeqCst), 0, "no password was checked");
    assert!(
        h.events()
            .iter()
            .all(|event| !matches!(event, AuthEvent::LoginFailed { .. })),
        "nothing was recorded against the username"
    );
    let longest = "a".repeat(256);
    assert_eq!(
        h.login(&longest, "wrong").await.error(),
        "invalid_grant",
        "256 bytes is still a username"
    );
    assert_eq!(checks.load(Ordering::SeqCst), 1);
}

/// A credential backend that counts its checks and, with a gate, holds each until the gate lets it
/// through; it knows nobody.
struct Counting {
    checks: Arc<AtomicUsize>,
    gate: Option<Arc<Semaphore>>,
}

impl CredentialVerifier for Counting {
    fn verify<'a>(&'a self, _: &'a str, _: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            self.checks.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                // A permit lets one check through and comes back for the next.
                drop(gate.acquire().await);
            }
            Ok(None::<VerifiedUser>)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_password_check_queue_sheds_logins_with_503_and_retry_after() {
    let checks = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let verifier = Counting {
        checks: Arc::clone(&checks),
        gate: Some(Arc::clone(&gate)),
    };
    let h = harness_with_verifier(
        SqliteStore::in_memory().await.unwrap(),
        verifier,
        |builder| builder.credential_checks(1, 2),
    )
    .await;
    let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..8 {
        let (h, answers) = (h.clone(), answers.clone());
        tokio::spawn(async move { answers.send(h.login(&format!("user{i}"), "pw").await) });
    }
    // The gate holds the one running check and the two queued behind it: whenever the other five
    // arrive, they find the queue full and are answered at once.
    for _ in 0..5 {
        let answer = tokio::time::timeout(Duration::from_secs(10), answered.recv())
            .await
            .expect("the logins beyond the queue are shed at once, not queued")
            .unwrap();
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.text()
        );
        assert_eq!(answer.error(), "temporarily_unavailable");
        assert_eq!(answer.headers[RETRY_AFTER], "1");
        assert_description_is_rfc6749(&answer);
    }
    // The login holding the turn reserves its throttle attempt before its check starts.
    tokio::time::timeout(Duration::from_secs(10), async {
        while checks.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the login holding the turn is checked");
    assert_eq!(checks.load(Ordering::SeqCst), 1, "one check runs at a time");
    gate.add_permits(1);
    for _ in 0..3 {
        let answer = answered.recv().await.unwrap();
        assert_eq!(answer.error(), "invalid_grant", "{}", answer.text());
    }
    assert_eq!(
        checks.load(Ordering::SeqCst),
        3,
        "the queued ones were checked in turn"
    );
}

/// A credential backend that knows alice (`wonderland`) and holds every check of `slow` until the gate
/// lets it through, saying when one started.
struct SlowForOne {
    gate: Arc<Semaphore>,
    started: Arc<tokio::sync::Notify>,
}

impl CredentialVerifier for SlowForOne {
    fn verify<'a>(&'a self, username: &'a str, password: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            if username == "slow" {
                self.started.notify_one();
                drop(self.gate.acquire().await);
            }
            Ok(
                (username == "alice" && password == "wonderland").then(|| VerifiedUser {
                    subject: "alice".into(),
                    roles: Vec::new(),
                }),
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_shed_by_the_check_queue_do_not_spend_the_users_throttle_budget() {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let h = harness_with_verifier(
        SqliteStore::in_memory().await.unwrap(),
        SlowForOne {
            gate: Arc::clone(&gate),
            started: Arc::clone(&started),
        },
        |builder| builder.credential_checks(1, 0),
    )
    .await;
    let slow = tokio::spawn({
        let h = h.clone();
        async move { h.login("slow", "pw").await }
    });
    started.notified().await;
    // The slow check holds the only turn and nothing may queue: every login of alice is shed, four
    // times the attempts the throttle lets through.
    for _ in 0..20 {
        let answer = h.login("alice", "wrong").await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.text()
        );
    }
    gate.add_permits(1);
    assert_eq!(slow.await.unwrap().error(), "invalid_grant");
    let login = h.login("alice", "wonderland").await;
    assert_eq!(
        login.status,
        StatusCode::OK,
        "logins never checked counted against alice: {}",
        login.text()
    );
}

/// A harness with a user named like the confidential client `svc`.
#[cfg(test)]
fn with_user_named_svc(builder: tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder {
    builder.user("svc", "service-user-password", Vec::<String>::new())
}

#[cfg(test)]
async fn client_token<S>(h: &Harness<S>) -> String {
    h.post_form(
        "/auth/token",
        &format!(
            "grant_type=client_credentials&client_id=svc&client_secret={}",
            CLIENT_SECRET.replace(' ', "+")
        ),
    )
    .await
    .access_token()
}

#[tokio::test]
async fn client_tokens_are_refused_on_the_user_endpoints() {
    let h = harness_with(MemoryStore::new(), with_user_named_svc).await;
    h.login("svc", "service-user-password").await;
    let token = client_token(&h).await;
    for (method, path) in [
        ("GET", "/auth/sessions"),
        ("POST", "/auth/logout-all"),
        ("DELETE", "/auth/sessions/anything"),
    ] {
        let answer = h.bearer(method, path, &token).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            answer.text()
        );
        assert_eq!(answer.error(), "insufficient_scope");
    }
    assert_eq!(
        h.issuer
            .store()
            .live_families("svc", START)
            .await
            .unwrap()
            .len(),
        1,
        "the user's session is untouched"
    );
}

#[tokio::test]
async fn a_user_named_like_a_client_cannot_revoke_the_clients_tokens() {
    let h = harness_with(MemoryStore::new(), with_user_named_svc).await;
    let token = client_token(&h).await;
    let claims = claims_of(&token);
    assert_ne!(
        claims["sub"], "svc",
        "a client token's sub is not a username"
    );
    assert_eq!(claims["client_id"], "svc");
    h.clock.advance_secs(1);
    let user = h.login("svc", "service-user-password").await.access_token();
    let all = h.bearer("POST", "/auth/logout-all", &user).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    assert!(
        !h.issuer.denylist().denies(
            claims["jti"].as_str(),
            claims["sid"].as_str(),
            claims["sub"].as_str(),
            claims["iat"].as_i64()
        ),
        "the service's token survives the user's logout-all"
    );
}
