//! Time-dependent behaviour with an injected clock: proactive and background refresh, timeouts, backoff,
//! persistence. Nothing here sleeps for real; the manual clock is advanced instead.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use common::{
    Behaviour, TestServer, client, fresh_session, log_in_expired, log_in_fresh, mint, outcome,
};
use reqwest::StatusCode;
use tessera_client::{
    AuthMiddleware, Error, FileTokenStore, ManualClock, MemoryTokenStore, RefreshContext,
    RefreshError, StoreError, TokenSet, TokenStore,
};
use tessera_core::TokenResponse;

#[tokio::test]
async fn refreshes_proactively_inside_the_skew_window() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let (auth, client) = fresh_session(&server, &clock).await;
    let url = format!("{}/data", server.url);

    // 300 s lifetime, 60 s skew plus up to 20 % jitter: due between 228 s and 240 s.
    clock.advance(Duration::from_secs(227));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!outcome(&response).refreshed());
    assert_eq!(server.issuer.calls(), 0, "not yet due");

    clock.advance(Duration::from_secs(14));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = outcome(&response);
    assert!(
        seen.refreshed() && !seen.replayed(),
        "refreshed before sending, not after a 401"
    );
    assert_eq!(seen.generation().unwrap().get(), 2);
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(
        server.api.authorizations("/data").len(),
        2,
        "no request was rejected"
    );
    assert_eq!(
        auth.tokens().unwrap().refresh_token().unwrap().as_str(),
        "rt-0"
    );
    let debug = format!("{auth:?} {:?}", auth.tokens().unwrap());
    let access = auth.tokens().unwrap().access_token().to_owned();
    assert!(
        !debug.contains(&access) && !debug.contains("rt-0"),
        "{debug}"
    );
}

#[tokio::test]
async fn background_refresh_runs_at_half_the_lifetime() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let auth = server
        .auth()
        .clock(clock.clone())
        .background_refresh(true)
        .build()
        .unwrap();
    server.issuer.accept_refresh_token("rt-login");
    let expires_at = tessera_client::Clock::now(&clock) + Duration::from_secs(300);
    auth.set_tokens(
        TokenSet::new(mint(300))
            .with_refresh_token("rt-login")
            .with_expires_at(expires_at),
    )
    .await
    .unwrap();

    clock.advance(Duration::from_secs(149));
    tokio::task::yield_now().await;
    assert_eq!(server.issuer.calls(), 0);
    clock.advance(Duration::from_secs(2));
    server.issuer.wait_for_calls(1).await;
    common::wait_until(|| auth.generation().unwrap().get() == 2).await;
    assert!(
        server.api.authorizations("/data").is_empty(),
        "no request was needed"
    );

    // The new token schedules its own background refresh.
    clock.advance(Duration::from_secs(151));
    server.issuer.wait_for_calls(2).await;
    common::wait_until(|| auth.generation().unwrap().get() == 3).await;
}

#[tokio::test]
async fn an_unavailable_token_endpoint_is_retried_with_backoff_not_hammered() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let auth = server
        .auth()
        .clock(clock.clone())
        .refresh_backoff(Duration::from_secs(10), Duration::from_secs(60))
        .build()
        .unwrap();
    log_in_expired(&server, &auth).await;
    let client = client(&auth);
    let url = format!("{}/data", server.url);
    server.issuer.set_behaviour(Behaviour::Unavailable);

    let requests = (0..10).map(|_| client.get(&url).send());
    for result in futures_util::future::join_all(requests).await {
        let error = result.unwrap_err();
        let Some(Error::RefreshUnavailable { retry_in, .. }) = Error::from_middleware(&error)
        else {
            panic!("expected RefreshUnavailable, got {error:?}");
        };
        assert!(*retry_in <= Duration::from_secs(10));
    }
    assert_eq!(server.issuer.calls(), 1, "ten failures, one token request");

    // Within the cooldown nobody calls the endpoint, and nobody sends the token known to be rejected.
    for _ in 0..5 {
        let error = client.get(&url).send().await.unwrap_err();
        assert!(matches!(
            Error::from_middleware(&error),
            Some(Error::RefreshUnavailable { .. })
        ));
    }
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(server.api.authorizations("/data").len(), 10);

    // After it, one more attempt; the second failure backs off longer (at least 10 s of 10-20 s).
    clock.advance(Duration::from_secs(10));
    assert!(client.get(&url).send().await.is_err());
    assert_eq!(server.issuer.calls(), 2);
    clock.advance(Duration::from_secs(9));
    assert!(client.get(&url).send().await.is_err());
    assert_eq!(server.issuer.calls(), 2);

    // Once the endpoint is back, the next attempt after the cooldown succeeds and the tokens were kept.
    server.issuer.set_behaviour(Behaviour::Issue);
    clock.advance(Duration::from_secs(11));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.issuer.calls(), 3);
    assert_eq!(
        server.issuer.forms.lock().unwrap()[2]["refresh_token"],
        "rt-login"
    );
}

#[tokio::test]
async fn retry_after_from_the_token_endpoint_stretches_the_backoff() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let auth = server.auth().clock(clock.clone()).build().unwrap();
    log_in_expired(&server, &auth).await;
    let client = client(&auth);
    let url = format!("{}/data", server.url);
    server.issuer.set_behaviour(Behaviour::Throttled);

    let error = client.get(&url).send().await.unwrap_err();
    let Some(Error::RefreshUnavailable { retry_in, .. }) = Error::from_middleware(&error) else {
        panic!("expected RefreshUnavailable, got {error:?}");
    };
    assert_eq!(
        *retry_in,
        Duration::from_secs(45),
        "Retry-After: 45 beats the 1 s backoff"
    );

    server.issuer.set_behaviour(Behaviour::Issue);
    clock.advance(Duration::from_secs(44));
    assert!(client.get(&url).send().await.is_err());
    assert_eq!(server.issuer.calls(), 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.issuer.calls(), 2);
}

#[tokio::test]
async fn a_clock_running_ahead_of_the_issuer_does_not_cause_a_refresh_per_request() {
    let server = TestServer::start().await;
    server.issuer.set_send_expires_in(false);
    let clock = ManualClock::new();
    // This machine's wall clock is 400 s ahead: the issuer's 300 s JWTs look expired on arrival.
    clock.advance(Duration::from_secs(400));
    let auth = server.auth().clock(clock.clone()).build().unwrap();
    log_in_expired(&server, &auth).await;
    let client = client(&auth);

    for _ in 0..5 {
        let response = server.get(&client, "/data").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        server.issuer.calls(),
        1,
        "one refresh for the expired login token, then none"
    );
}

#[tokio::test]
async fn a_hanging_token_endpoint_times_out_and_the_valid_token_keeps_being_served() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let (_auth, client) = fresh_session(&server, &clock).await;
    let url = format!("{}/data", server.url);
    server.issuer.set_behaviour(Behaviour::Hang);

    // Inside the skew window: the request waits for the refresh, which hangs until the 5 s timeout.
    clock.advance(Duration::from_secs(241));
    let request = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move { client.get(url).send().await }
    });
    server.issuer.wait_for_calls(1).await;
    clock.advance(Duration::from_secs(5));
    let response = request.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the still-valid token was served"
    );
    assert!(!outcome(&response).refreshed());

    // During the backoff the still-valid token keeps being served without new token requests.
    for _ in 0..5 {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(server.issuer.calls(), 1);
}

/// A store that refuses to save while `failing` is set.
#[derive(Debug, Default, Clone)]
struct FlakyStore(Arc<FlakyState>);

#[derive(Debug, Default)]
struct FlakyState {
    failing: std::sync::atomic::AtomicBool,
    inner: MemoryTokenStore,
    saves: AtomicUsize,
}

impl std::ops::Deref for FlakyStore {
    type Target = FlakyState;

    fn deref(&self) -> &FlakyState {
        &self.0
    }
}

#[async_trait]
impl TokenStore for FlakyStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::backend("disk full"));
        }
        self.inner.save(tokens).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear().await
    }
}

#[tokio::test]
async fn a_pair_the_store_refuses_is_never_used_and_never_lost() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let store = FlakyStore::default();
    let auth = server
        .auth()
        .clock(clock.clone())
        .store(store.clone())
        .build()
        .unwrap();
    log_in_expired(&server, &auth).await;
    let client = client(&auth);
    let url = format!("{}/data", server.url);
    store.failing.store(true, Ordering::SeqCst);

    let error = client.get(&url).send().await.unwrap_err();
    assert!(
        matches!(
            Error::from_middleware(&error),
            Some(Error::TokenStore { .. })
        ),
        "{error:?}"
    );
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(
        auth.generation().unwrap().get(),
        1,
        "the unsaved pair was not handed out"
    );
    assert_eq!(server.api.authorizations("/data").len(), 1);

    // The refresh token was rotated server-side: the retry saves the pair it already has instead of
    // presenting the consumed refresh token again.
    store.failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(2));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.issuer.calls(), 1, "no second token request");
    assert_eq!(
        store
            .inner
            .load()
            .await
            .unwrap()
            .unwrap()
            .refresh_token()
            .unwrap()
            .as_str(),
        "rt-0"
    );
}

#[tokio::test]
async fn on_tokens_changed_is_awaited_before_use_and_can_refuse() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let auth = server
        .auth()
        .clock(clock.clone())
        .on_tokens_changed({
            let accepted = Arc::clone(&accepted);
            let refuse = Arc::clone(&refuse);
            move |tokens: TokenSet| {
                let accepted = Arc::clone(&accepted);
                let refuse = refuse.load(Ordering::SeqCst);
                async move {
                    tokio::task::yield_now().await;
                    if refuse {
                        return Err(StoreError::backend("session store offline"));
                    }
                    accepted
                        .lock()
                        .unwrap()
                        .push(tokens.access_token().to_owned());
                    Ok(())
                }
            }
        })
        .build()
        .unwrap();
    server.issuer.accept_refresh_token("rt-login");
    let login = TokenSet::new(mint(-120)).with_refresh_token("rt-login");
    let error = auth.set_tokens(login.clone()).await.unwrap_err();
    assert!(
        matches!(error, Error::TokenStore { .. }),
        "set_tokens fails closed too"
    );
    assert!(auth.tokens().is_none());

    refuse.store(false, Ordering::SeqCst);
    auth.set_tokens(login).await.unwrap();
    refuse.store(true, Ordering::SeqCst);
    let client = client(&auth);
    let error = server.get(&client, "/data").await.unwrap_err();
    assert!(matches!(
        Error::from_middleware(&error),
        Some(Error::TokenStore { .. })
    ));
    assert_eq!(accepted.lock().unwrap().len(), 1);

    refuse.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(2));
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let accepted = accepted.lock().unwrap();
    assert_eq!(accepted.len(), 2);
    assert_eq!(
        accepted[1],
        auth.tokens().unwrap().access_token(),
        "the token in use is the one the hook saw"
    );
    assert_eq!(server.issuer.calls(), 1);
}

#[tokio::test]
async fn a_file_store_survives_a_restart() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    {
        let auth = server
            .auth()
            .store(FileTokenStore::new(&path))
            .build()
            .unwrap();
        log_in_expired(&server, &auth).await;
        let response = server.get(&client(&auth), "/data").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(server.issuer.calls(), 1);

    // A new process loads the rotated pair on first use and needs no token request.
    let auth = server
        .auth()
        .store(FileTokenStore::new(&path))
        .build()
        .unwrap();
    assert!(auth.tokens().is_none());
    let response = server.get(&client(&auth), "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!outcome(&response).refreshed(), "loaded, not refreshed");
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(
        auth.tokens().unwrap().refresh_token().unwrap().as_str(),
        "rt-0"
    );
}

/// Logs `auth` in with a token valid for 300 s, then checks that a request `not_yet` seconds later goes out
/// with it and that one `due` seconds later refreshes it first, with a single token request.
async fn assert_refreshed_between(
    server: &TestServer,
    auth: &AuthMiddleware,
    clock: &ManualClock,
    not_yet: u64,
    due: u64,
) {
    log_in_fresh(server, auth, clock).await;
    let client = client(auth);
    clock.advance(Duration::from_secs(not_yet));
    assert!(!outcome(&server.get(&client, "/data").await.unwrap()).refreshed());
    clock.advance(Duration::from_secs(due - not_yet));
    assert!(outcome(&server.get(&client, "/data").await.unwrap()).refreshed());
    assert_eq!(server.issuer.calls(), 1);
}

#[tokio::test]
async fn a_lifetime_cap_too_long_for_the_clock_caps_nothing() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let auth = server
        .auth()
        .clock(clock.clone())
        .max_token_lifetime(Duration::MAX)
        .build()
        .unwrap();
    // The token's own 300 s rule: due between 228 s and 240 s.
    assert_refreshed_between(&server, &auth, &clock, 227, 241).await;
}

#[tokio::test]
async fn a_skew_longer_than_the_lifetime_is_held_to_half_of_it() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let auth = server
        .auth()
        .clock(clock.clone())
        .refresh_skew(Duration::MAX)
        .build()
        .unwrap();
    assert_refreshed_between(&server, &auth, &clock, 149, 150).await;
}

#[tokio::test]
async fn a_backoff_too_long_for_the_clock_still_reports_the_failure() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let auth = server
        .auth()
        .clock(clock.clone())
        .refresh_backoff(Duration::MAX, Duration::MAX)
        .build()
        .unwrap();
    log_in_expired(&server, &auth).await;
    let client = client(&auth);
    server.issuer.set_behaviour(Behaviour::Unavailable);

    for _ in 0..2 {
        let error = server.get(&client, "/data").await.unwrap_err();
        let Some(Error::RefreshUnavailable { source, retry_in }) = Error::from_middleware(&error)
        else {
            panic!("expected RefreshUnavailable, got {error:?}");
        };
        assert!(
            matches!(**source, RefreshError::Unavailable { .. }),
            "{source}"
        );
        assert!(*retry_in >= Duration::MAX / 2, "{retry_in:?}");
    }
    assert_eq!(
        server.issuer.calls(),
        1,
        "the second request waits out the backoff"
    );
    assert!(auth.tokens().is_some(), "the tokens are kept");
}

#[tokio::test]
async fn an_expiry_too_far_for_the_clock_means_refreshing_only_on_a_401() {
    let server = TestServer::start().await;
    // A host whose clock says 1970, and a token that claims to live for ever.
    let clock = ManualClock::at_unix(0);
    let auth = server.auth().clock(clock.clone()).build().unwrap();
    let forever = UNIX_EPOCH + Duration::from_secs(i64::MAX.unsigned_abs());
    auth.set_tokens(TokenSet::new(mint(300)).with_expires_at(forever))
        .await
        .unwrap();
    let client = client(&auth);

    clock.advance(Duration::from_secs(100_000));
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!outcome(&response).refreshed());
    assert_eq!(server.issuer.calls(), 0);
}

#[tokio::test]
async fn a_panicking_refresher_is_a_transient_failure_and_the_next_attempt_runs() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let refresher = {
        let calls = Arc::clone(&calls);
        move |_: RefreshContext| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                assert!(!first, "the refresher's first call panics");
                Ok::<_, RefreshError>(TokenResponse {
                    access_token: mint(300),
                    token_type: "Bearer".into(),
                    expires_in: Some(300),
                    refresh_token: None,
                    scope: None,
                })
            }
        }
    };
    let auth = AuthMiddleware::builder(refresher)
        .allow_origin(&server.url)
        .clock(clock.clone())
        .build()
        .unwrap();
    auth.set_tokens(TokenSet::new(mint(-120)).with_refresh_token("rt"))
        .await
        .unwrap();
    let client = client(&auth);

    let error = server.get(&client, "/data").await.unwrap_err();
    assert!(
        matches!(
            Error::from_middleware(&error),
            Some(Error::RefreshUnavailable { .. })
        ),
        "{error:?}"
    );

    // After the backoff (at most 1 s), the next request runs a new refresh instead of joining the dead one.
    clock.advance(Duration::from_secs(2));
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(outcome(&response).refreshed());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
