//! The stale/fresh interleavings of issue 4, made deterministic by holding answers at the API's door and
//! at the token endpoint, and observed through the middleware's tracing events.
//!
//! Alone in its test binary: tracing caches callsite interest process-wide, so a thread-local subscriber
//! only sees every event when no other test runs alongside.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, expired_session, outcome};
use reqwest::StatusCode;

// Current-thread, so the event log sees the events of every task.
#[tokio::test]
async fn stale_and_fresh_interleavings_share_one_refresh() {
    let log = common::EventLog::default();
    let _guard = log.install();
    let server = TestServer::start().await;
    let (auth, client) = expired_session(&server).await;
    let url = |query: &str| format!("{}/data{query}", server.url);
    let send = |url: String| {
        let client = client.clone();
        tokio::spawn(async move { client.get(url).send().await.unwrap() })
    };

    // Two requests reach the API with the old token but are held at its door.
    let in_flight_401 = send(url("?hold=during"));
    let stale_401 = send(url("?hold=after"));
    server.api.wait_for_arrivals("during", 1).await;
    server.api.wait_for_arrivals("after", 1).await;

    // A third gets its 401 at once and starts the refresh, which the token endpoint holds.
    server.issuer.close();
    let trigger = send(url(""));
    server.issuer.wait_for_calls(1).await;

    // One request starts while the refresh is in flight: it waits for it instead of sending the old token.
    let fresh = send(url("?fresh"));
    // The first held request gets its 401 while the refresh is still in flight: it joins.
    server.api.release("during");
    common::wait_until(|| log.count("joining the refresh in flight") >= 2).await;

    server.issuer.open();
    let trigger = trigger.await.unwrap();
    let in_flight_401 = in_flight_401.await.unwrap();
    let fresh = fresh.await.unwrap();

    // The second held request gets its 401 for the old token only after the refresh: it replays at once.
    server.api.release("after");
    let stale_401 = stale_401.await.unwrap();

    assert_eq!(
        server.issuer.calls(),
        1,
        "one refresh for every interleaving"
    );
    let new = auth.generation().unwrap();
    for response in [&trigger, &in_flight_401, &fresh, &stale_401] {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(outcome(response).generation(), Some(new));
    }
    assert!(outcome(&trigger).replayed() && outcome(&trigger).refreshed());
    assert!(outcome(&in_flight_401).replayed() && outcome(&in_flight_401).refreshed());
    assert!(!outcome(&fresh).replayed() && outcome(&fresh).refreshed());
    assert!(
        outcome(&stale_401).replayed() && !outcome(&stale_401).refreshed(),
        "a stale 401 does not refresh"
    );

    // The waiting request never sent the old token: the API saw it exactly once, with the new one.
    let new_token = format!("Bearer {}", auth.tokens().unwrap().access_token());
    let fresh_attempts: Vec<_> = server
        .api
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/data")
        .map(|(_, authorization)| authorization.clone())
        .collect();
    assert_eq!(
        fresh_attempts
            .iter()
            .filter(|auth| auth.as_deref() == Some(new_token.as_str()))
            .count(),
        4
    );
    assert_eq!(fresh_attempts.len(), 7, "three 401s, four successes");

    // Observability: the refresh and the replays are reported, the tokens never.
    assert_eq!(log.count("access token refreshed"), 1);
    assert_eq!(
        log.count("replaying the request with a newer token"),
        3,
        "{}",
        log.all()
    );
    let events = log.all();
    assert!(
        !events.contains(auth.tokens().unwrap().access_token()),
        "{events}"
    );
    assert!(
        !events.contains("rt-0") && !events.contains("rt-login"),
        "{events}"
    );
}
