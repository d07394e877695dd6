//! Grace-window retries (issue 12, item 7): the previous refresh token gets the same successor back only
//! from the client that rotated it (its user agent, its DPoP key), a few times at most, and only for a
//! short while; anything else is reuse.

mod support;

use axum::body::Body;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{Request, StatusCode};
use std::time::Duration;
use tessera_issuer::{AuthEvent, MemoryStore, SqliteStore};

use support::*;

#[cfg(test)]
async fn refresh_as<S>(h: &Harness<S>, token: &str, agent: &str) -> Answer {
    h.send(
        Request::post("/auth/token")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(USER_AGENT, agent)
            .body(Body::from(format!(
                "grant_type=refresh_token&client_id=demo&refresh_token={token}"
            )))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_retry_from_another_user_agent_is_a_replay_even_within_grace() {
    let h = harness(SqliteStore::in_memory().await.unwrap()).await;
    let first = h.login("alice", "wonderland").await.refresh_token();
    let rotated = refresh_as(&h, &first, "app/1.0").await;
    assert_eq!(rotated.status, StatusCode::OK);
    h.clock.advance_secs(5);
    let thief = refresh_as(&h, &first, "curl/8.0").await;
    assert_eq!(thief.status, StatusCode::BAD_REQUEST, "{}", thief.text());
    assert_eq!(thief.error(), "invalid_grant");
    assert!(
        h.events()
            .iter()
            .any(|event| matches!(event, AuthEvent::ReuseDetected { .. })),
        "a retry from elsewhere is reuse"
    );
    let owner = refresh_as(&h, &rotated.refresh_token(), "app/1.0").await;
    assert_eq!(owner.error(), "invalid_grant", "the family was revoked");
}

#[tokio::test]
async fn retries_of_one_generation_are_capped() {
    let h = harness(MemoryStore::new()).await;
    let first = h.login("alice", "wonderland").await.refresh_token();
    let second = refresh_as(&h, &first, "app/1.0").await.refresh_token();
    for _ in 0..3 {
        let retry = refresh_as(&h, &first, "app/1.0").await;
        assert_eq!(retry.refresh_token(), second, "{}", retry.text());
    }
    let fourth = refresh_as(&h, &first, "app/1.0").await;
    assert_eq!(fourth.status, StatusCode::BAD_REQUEST, "{}", fourth.text());
    assert_eq!(fourth.error(), "invalid_grant");
    assert_eq!(
        refresh_as(&h, &second, "app/1.0").await.error(),
        "invalid_grant",
        "the fourth retry counted as reuse and revoked the family"
    );
}

#[tokio::test]
async fn the_default_grace_window_is_15_seconds() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.grace(tessera_issuer::DEFAULT_GRACE)
    })
    .await;
    assert_eq!(tessera_issuer::DEFAULT_GRACE, Duration::from_secs(15));
    let first = h.login("alice", "wonderland").await.refresh_token();
    refresh_as(&h, &first, "app/1.0").await.refresh_token();
    h.clock.advance_secs(14);
    assert_eq!(
        refresh_as(&h, &first, "app/1.0").await.status,
        StatusCode::OK
    );
    h.clock.advance_secs(1);
    assert_eq!(
        refresh_as(&h, &first, "app/1.0").await.error(),
        "invalid_grant"
    );
}
