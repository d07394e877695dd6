//! Issue 4's headline test: 1000 concurrent requests whose token has just expired, through
//! `JwtAuthLayer`: every one succeeds and the token endpoint is called exactly once.
//!
//! Alone in its test binary so the thread-local event log reliably sees every event (tracing caches
//! callsite interest process-wide).

#![allow(clippy::unwrap_used)]

mod common;

use common::{EventLog, TestServer, client, log_in_expired, outcome};
use futures_util::future::join_all;
use reqwest::StatusCode;

// Current-thread, so the event log sees the events of every task.
#[tokio::test]
async fn a_thousand_concurrent_requests_with_an_expired_token_cause_one_refresh() {
    let log = EventLog::default();
    let _guard = log.install();
    let server = TestServer::start().await;
    let auth = server.auth().build().unwrap();
    // The client does not know the expiry; the API says the token expired.
    log_in_expired(&server, &auth).await;
    let first = auth.generation().unwrap();
    let client = client(&auth);

    // All requests reach the API before any is answered; the token endpoint then holds its answer until
    // every 401 has been handled, so the worst case (1000 failures during one refresh) really happens.
    server.issuer.close();
    let requests: Vec<_> = (0..1000)
        .map(|_| {
            let client = client.clone();
            let url = format!("{}/data?hold=all", server.url);
            tokio::spawn(async move { client.get(url).send().await })
        })
        .collect();
    server.api.wait_for_arrivals("all", 1000).await;
    server.api.release("all");
    server.issuer.wait_for_calls(1).await;
    common::wait_until(|| log.count("joining the refresh in flight") >= 999).await;
    server.issuer.open();

    let responses = join_all(requests).await;
    assert_eq!(
        server.issuer.calls(),
        1,
        "exactly one call to the token endpoint"
    );
    let second = auth.generation().unwrap();
    assert_eq!(second.get(), first.get() + 1);
    for response in responses {
        let response = response.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let outcome = outcome(&response);
        assert!(outcome.replayed() && outcome.refreshed());
        assert_eq!(outcome.generation(), Some(second));
    }
    assert_eq!(
        server.api.authorizations("/data").len(),
        2000,
        "each request: one 401, one replay"
    );
}
