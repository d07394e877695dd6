//! The verified-token cache on the 401 path: a token seen valid and then expired is answered from the cache,
//! exactly as a full verification would answer it, and nothing else is.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use axum::Router;
use common::*;
use http::StatusCode;
use serde_json::json;
use tessera_server::{
    DEFAULT_EXPIRED_TOKEN_RETENTION, DEFAULT_LEEWAY, JwtAuthLayer, JwtKey, KeyRing, KeySet,
};

const LEEWAY: i64 = DEFAULT_LEEWAY.as_secs() as i64;
const RETENTION: i64 = DEFAULT_EXPIRED_TOKEN_RETENTION.as_secs() as i64;

/// The same answer, header for header and byte for byte.
fn assert_same(cached: &Answer, full: &Answer) {
    assert_eq!(cached.status, full.status);
    assert_eq!(cached.headers, full.headers);
    assert_eq!(cached.body, full.body);
}

#[tokio::test]
async fn a_token_seen_valid_then_expired_is_answered_from_the_cache() {
    let clock = TestClock::at_unix(NOW);
    let cached = builder(&clock).build().unwrap();
    let uncached = builder(&clock).without_cache().build().unwrap();
    let (cached_app, uncached_app) = (
        routes().route_layer(cached.clone()),
        routes().route_layer(uncached.clone()),
    );
    let token = token(json!({}));
    assert_eq!(
        send(&cached_app, get_with_token("/me", &token))
            .await
            .status,
        StatusCode::OK
    );

    // exp + leeway is the first second the token is refused.
    clock.set_unix(NOW + 300 + LEEWAY);
    let from_cache = send(&cached_app, get_with_token("/me", &token)).await;
    assert!(from_cache.token_expired());
    let stats = cached.stats();
    assert_eq!(
        (stats.cache_hits, stats.cache_misses),
        (1, 1),
        "the expired token was answered from the cache, not verified again"
    );
    assert_eq!((stats.authenticated, stats.rejected), (1, 1));

    let verified = send(&uncached_app, get_with_token("/me", &token)).await;
    assert_same(&from_cache, &verified);
    assert_eq!(
        cached.verify(&token).await.unwrap_err(),
        uncached.verify(&token).await.unwrap_err()
    );
    assert_eq!(cached.stats().cache_hits, 2);
}

#[tokio::test]
async fn a_token_whose_key_left_the_key_set_is_verified_again() {
    let clock = TestClock::at_unix(NOW);
    let old = || JwtKey::hmac(SECRET).unwrap().with_kid("old");
    let new = || JwtKey::hmac([7; 32]).unwrap().with_kid("new");
    let ring = KeyRing::new(KeySet::new([old()]).unwrap());
    let auth = JwtAuthLayer::builder()
        .key_ring(ring.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = routes().route_layer(auth.clone());
    let with_kid = Signer::hs256().sign(Some("old"), &claims());
    let without_kid = token(json!({"jti": "no-kid"}));
    for token in [&with_kid, &without_kid] {
        assert_eq!(
            send(&app, get_with_token("/me", token)).await.status,
            StatusCode::OK
        );
    }

    ring.replace(KeySet::new([new()]).unwrap());
    clock.set_unix(NOW + 300 + LEEWAY);
    let answer = send(&app, get_with_token("/me", &with_kid)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(!answer.token_expired());
    assert_eq!(
        answer.description(),
        "The access token is signed by an unknown key"
    );
    let answer = send(&app, get_with_token("/me", &without_kid)).await;
    assert!(!answer.token_expired());
    assert_eq!(
        answer.description(),
        "The access token signature is invalid"
    );
    let stats = auth.stats();
    assert_eq!((stats.cache_hits, stats.cache_misses), (0, 4));

    // The key coming back does not resurrect the entries: they were dropped.
    ring.replace(KeySet::new([old()]).unwrap());
    assert!(
        send(&app, get_with_token("/me", &with_kid))
            .await
            .token_expired()
    );
    assert_eq!(auth.stats().cache_misses, 5);
}

#[tokio::test]
async fn a_cached_token_before_its_nbf_answers_as_a_full_verification_would() {
    let clock = TestClock::at_unix(NOW);
    let cached = routes().route_layer(builder(&clock).build().unwrap());
    let uncached = routes().route_layer(builder(&clock).without_cache().build().unwrap());
    let token = token(json!({}));
    assert_eq!(
        send(&cached, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );

    // The host's clock steps back beyond the leeway.
    clock.set_unix(NOW - LEEWAY - 1);
    let from_cache = send(&cached, get_with_token("/me", &token)).await;
    assert_eq!(
        from_cache.description(),
        "The access token is not valid yet"
    );
    assert!(!from_cache.token_expired());
    assert_same(
        &from_cache,
        &send(&uncached, get_with_token("/me", &token)).await,
    );

    clock.set_unix(NOW - LEEWAY);
    assert_eq!(
        send(&cached, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn expired_entries_are_answered_for_the_retention_window_then_verified_again() {
    let clock = TestClock::at_unix(NOW);
    let auth = builder(&clock).build().unwrap();
    let app = routes().route_layer(auth.clone());
    let token = token(json!({}));
    send(&app, get_with_token("/me", &token)).await;

    clock.set_unix(NOW + 300 + LEEWAY + RETENTION - 1);
    assert!(
        send(&app, get_with_token("/me", &token))
            .await
            .token_expired()
    );
    assert_eq!(auth.stats().cache_hits, 1);

    clock.set_unix(NOW + 300 + LEEWAY + RETENTION);
    assert!(
        send(&app, get_with_token("/me", &token))
            .await
            .token_expired()
    );
    let stats = auth.stats();
    assert_eq!(
        (stats.cache_hits, stats.cache_misses, stats.cache_entries),
        (1, 2, 0),
        "past the window the token is verified in full, and not cached again"
    );
}

#[tokio::test]
async fn expired_entries_are_swept_once_past_the_retention_window() {
    let clock = TestClock::at_unix(NOW);
    // One shard of 32 entries, swept every 16 inserts.
    let auth = builder(&clock).cache_capacity(32).build().unwrap();
    let app: Router = routes().route_layer(auth.clone());
    let insert = async |prefix: &str, count: usize| {
        for index in 0..count {
            let token = token(json!({"jti": format!("{prefix}-{index}"), "exp": NOW + 60 + 3600}));
            assert_eq!(
                send(&app, get_with_token("/me", &token)).await.status,
                StatusCode::OK
            );
        }
    };
    for index in 0..10 {
        let token = token(json!({"jti": format!("short-{index}"), "exp": NOW + 60}));
        send(&app, get_with_token("/me", &token)).await;
    }
    // Expired but within the window: the sweep before the 16th insert keeps them.
    clock.set_unix(NOW + 60 + LEEWAY);
    insert("kept", 6).await;
    assert_eq!(auth.stats().cache_entries, 16);
    // Past the window, the sweep before the 32nd insert drops all ten, unasked.
    clock.set_unix(NOW + 60 + LEEWAY + RETENTION);
    insert("later", 16).await;
    assert_eq!(auth.stats().cache_entries, 22);
}
