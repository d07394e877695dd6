//! `RemoteDenylist` against a stand-in denials feed on 127.0.0.1:0: nothing accepted before the first load,
//! the cursor sent back so each poll brings only what changed, pages followed, the bearer token sent,
//! entries gone at their `until`, failing closed after the grace (or never, when open), counters.
#![cfg(feature = "remote-denylist")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use http::StatusCode;
use tessera_server::{
    Availability, Denial, DenialPage, JwtAuthLayer, RemoteDenylist, RemoteDenylistBuilder,
};

const TOKEN: &str = "the-feed-token";

/// A stand-in feed: a log of denials served two per page, that can go down.
#[derive(Default)]
struct Feed {
    log: Mutex<Vec<Denial>>,
    down: Mutex<bool>,
    /// The `after` of every request, in order.
    cursors: Mutex<Vec<Option<String>>>,
}

/// The `after` parameter of a query string.
fn after(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("after="))
        .map(str::to_owned)
}

async fn serve_feed(
    State(feed): State<Arc<Feed>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if *feed.down.lock().unwrap() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let after = after(query.as_deref());
    feed.cursors.lock().unwrap().push(after.clone());
    let start: usize = after.map_or(0, |after| after.parse().unwrap());
    let log = feed.log.lock().unwrap();
    let end = (start + 2).min(log.len());
    let page = DenialPage {
        denials: log[start..end].to_vec(),
        cursor: end.to_string(),
        more: end < log.len(),
    };
    (
        [("content-type", "application/json")],
        serde_json::to_string(&page).unwrap(),
    )
        .into_response()
}

struct Harness {
    feed: Arc<Feed>,
    clock: TestClock,
    denylist: RemoteDenylist,
    app: Router,
    _server: tokio::task::JoinHandle<()>,
}

async fn harness(
    configure: impl FnOnce(RemoteDenylistBuilder) -> RemoteDenylistBuilder,
) -> Harness {
    harness_on(Feed::default(), configure).await
}

async fn harness_on(
    feed: Feed,
    configure: impl FnOnce(RemoteDenylistBuilder) -> RemoteDenylistBuilder,
) -> Harness {
    let feed = Arc::new(feed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/auth/denials", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/auth/denials", get(serve_feed))
        .with_state(Arc::clone(&feed));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let clock = TestClock::at_unix(NOW);
    // The background poll runs once at start; the tests poll themselves.
    let builder = RemoteDenylist::builder(url)
        .bearer_token(TOKEN)
        .poll_interval(Duration::from_secs(3_600))
        .clock(clock.clone());
    let denylist = configure(builder).spawn().unwrap();
    // Let the background poll's first round finish, so the tests' polls are the only ones.
    while denylist.stats().polls == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let auth: JwtAuthLayer = builder_with_revocation(&clock, &denylist);
    Harness {
        feed,
        clock,
        app: routes().layer(auth),
        denylist,
        _server: server,
    }
}

fn builder_with_revocation(clock: &TestClock, denylist: &RemoteDenylist) -> JwtAuthLayer {
    builder(clock)
        .revocation(Arc::new(denylist.clone()))
        .build()
        .unwrap()
}

impl Harness {
    async fn me(&self, token: &str) -> StatusCode {
        send(&self.app, get_with_bearer("/me", token)).await.status
    }

    fn publish(&self, denials: impl IntoIterator<Item = Denial>) {
        self.feed.log.lock().unwrap().extend(denials);
    }
}

fn get_with_bearer(path: &str, token: &str) -> http::Request<axum::body::Body> {
    http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap()
}

#[tokio::test]
async fn nothing_is_accepted_before_the_first_load_then_denials_are_refused() {
    let down = Feed {
        down: Mutex::new(true),
        ..Feed::default()
    };
    let h = harness_on(down, |builder| builder).await;
    assert_eq!(h.denylist.stats().availability, Availability::NotLoaded);
    assert_eq!(
        h.me(&token(json_jti("j1"))).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    *h.feed.down.lock().unwrap() = false;
    h.publish([
        Denial::token("j1", NOW + 600),
        Denial::session("s1", NOW + 600),
    ]);
    h.denylist.refresh().await.unwrap();
    assert_eq!(h.me(&token(json_jti("j1"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.me(&token(serde_json::json!({ "jti": "j2", "sid": "s1" })))
            .await,
        StatusCode::UNAUTHORIZED,
        "denied by its session"
    );
    assert_eq!(h.me(&token(json_jti("j3"))).await, StatusCode::OK);
}

fn json_jti(jti: &str) -> serde_json::Value {
    serde_json::json!({ "jti": jti })
}

#[tokio::test]
async fn each_poll_sends_the_cursor_back_and_follows_the_pages() {
    let h = harness(|builder| builder).await;
    h.denylist.refresh().await.unwrap();
    h.feed.cursors.lock().unwrap().clear();
    h.publish((1..=5).map(|n| Denial::token(format!("j{n}"), NOW + 600)));
    assert_eq!(h.denylist.refresh().await.unwrap(), 5);
    assert_eq!(
        *h.feed.cursors.lock().unwrap(),
        [
            Some("0".to_owned()),
            Some("2".to_owned()),
            Some("4".to_owned())
        ],
        "three pages of two, each asked after the last cursor"
    );
    assert_eq!(h.denylist.refresh().await.unwrap(), 0, "nothing new");
    assert_eq!(h.denylist.denylist().len(), 5);
    let stats = h.denylist.stats();
    assert_eq!(stats.denials_received, 5);
    assert_eq!(stats.poll_failures, 0);
    assert!(stats.polls >= 3);
}

#[tokio::test]
async fn entries_leave_at_their_until() {
    let h = harness(|builder| builder).await;
    h.publish([
        Denial::token("j1", NOW + 60),
        Denial::token("j2", NOW + 600),
    ]);
    h.denylist.refresh().await.unwrap();
    assert_eq!(h.denylist.denylist().len(), 2);
    h.clock.advance_secs(60);
    h.denylist.refresh().await.unwrap();
    assert_eq!(h.denylist.denylist().len(), 1, "bounded by time");
}

#[tokio::test]
async fn a_failing_feed_is_tolerated_for_the_grace_then_fails_closed() {
    let h = harness(|builder| builder.fail_closed_after(Duration::from_secs(120))).await;
    h.denylist.refresh().await.unwrap();
    *h.feed.down.lock().unwrap() = true;
    h.clock.advance_secs(120);
    assert!(h.denylist.refresh().await.is_err());
    assert_eq!(
        h.me(&token(json_jti("j9"))).await,
        StatusCode::OK,
        "within the grace"
    );
    h.clock.advance_secs(1);
    assert!(h.denylist.refresh().await.is_err());
    assert_eq!(h.denylist.stats().availability, Availability::Stale);
    assert_eq!(
        h.me(&token(json_jti("j9"))).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    *h.feed.down.lock().unwrap() = false;
    h.denylist.refresh().await.unwrap();
    assert_eq!(
        h.me(&token(json_jti("j9"))).await,
        StatusCode::OK,
        "back once it answers"
    );
    assert!(h.denylist.stats().poll_failures >= 2);
}

#[tokio::test]
async fn open_it_keeps_answering_from_the_last_denials() {
    let h = harness(|builder| {
        builder
            .fail_closed_after(Duration::from_secs(10))
            .fail_open()
    })
    .await;
    h.publish([Denial::token("j1", NOW + 6_000)]);
    h.denylist.refresh().await.unwrap();
    *h.feed.down.lock().unwrap() = true;
    // Long past the default grace (the tokens are still valid).
    h.clock.advance_secs(200);
    assert!(h.denylist.refresh().await.is_err());
    assert_eq!(h.denylist.stats().availability, Availability::Available);
    assert_eq!(h.me(&token(json_jti("j1"))).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.me(&token(json_jti("j2"))).await, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_token_is_a_failed_poll() {
    let h = harness(|builder| builder.bearer_token("wrong")).await;
    let error = h.denylist.refresh().await.unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    assert_eq!(h.denylist.stats().availability, Availability::NotLoaded);
}
