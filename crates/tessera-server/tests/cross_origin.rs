//! Cookie-borne tokens and cross-site request forgery: an unsafe method authenticated by the token cookie
//! needs a same-origin `Sec-Fetch-Site` or a same-origin or trusted `Origin`; header tokens are unaffected.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use common::*;
use http::{Method, Request, StatusCode};
use tessera_server::{BuildError, JwtAuthBuilder, JwtAuthLayer};

fn builder(clock: &TestClock) -> JwtAuthBuilder {
    JwtAuthLayer::builder()
        .hmac_secret(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .token_cookie("at")
        .clock(clock.clone())
}

fn app(layer: JwtAuthLayer) -> Router {
    Router::new()
        .route(
            "/transfer",
            post(|| async { "done" }).get(|| async { "read" }),
        )
        .layer(layer)
}

/// A request to `/transfer` carrying the token in the cookie, with `headers`.
fn cookie_request(method: Method, headers: &[(&str, &str)]) -> Request<Body> {
    let token = Signer::hs256().sign(None, &claims());
    let mut request = Request::builder()
        .method(method)
        .uri("/transfer")
        .header("host", "api.example")
        .header("cookie", format!("at={token}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

const REFUSED: &str = "The request is not same-origin, and a token cookie authorizes only same-origin \
                       requests with unsafe methods";

#[tokio::test]
async fn unsafe_cookie_requests_need_a_same_origin_signal() {
    let clock = TestClock::at_unix(NOW);
    let app = app(builder(&clock)
        .cookie_trusted_origin("https://app.example")
        .build()
        .unwrap());
    let cases: [(&[(&str, &str)], StatusCode); 11] = [
        // A form posted from another site by an old browser, or a script that strips both: refused.
        (&[], StatusCode::FORBIDDEN),
        (&[("sec-fetch-site", "cross-site")], StatusCode::FORBIDDEN),
        (&[("sec-fetch-site", "same-site")], StatusCode::FORBIDDEN),
        (&[("origin", "https://evil.example")], StatusCode::FORBIDDEN),
        (&[("origin", "null")], StatusCode::FORBIDDEN),
        (
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example"),
            ],
            StatusCode::FORBIDDEN,
        ),
        // What browsers send for the API's own pages and for the trusted front end.
        (&[("sec-fetch-site", "same-origin")], StatusCode::OK),
        (&[("sec-fetch-site", "none")], StatusCode::OK),
        (&[("origin", "https://api.example")], StatusCode::OK),
        (&[("origin", "https://app.example")], StatusCode::OK),
        (
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "https://APP.example"),
            ],
            StatusCode::OK,
        ),
    ];
    for (headers, status) in cases {
        let answer = send(&app, cookie_request(Method::POST, headers)).await;
        assert_eq!(answer.status, status, "{headers:?}: {}", answer.body);
        if status == StatusCode::FORBIDDEN {
            assert_eq!(answer.json()["error"], "invalid_request", "{headers:?}");
            assert_eq!(answer.description(), REFUSED, "{headers:?}");
            assert!(answer.headers.get("www-authenticate").is_none());
            assert!(!answer.token_expired());
        }
    }
    // Safe methods need nothing: reading cannot be forged into a state change.
    let answer = send(&app, cookie_request(Method::GET, &[])).await;
    assert_eq!(answer.status, StatusCode::OK);
    // Two values of either header are not a signal one can trust.
    let answer = send(
        &app,
        cookie_request(
            Method::POST,
            &[
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-site", "cross-site"),
            ],
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn header_tokens_and_an_explicit_opt_out_are_unaffected() {
    let clock = TestClock::at_unix(NOW);
    let token = Signer::hs256().sign(None, &claims());
    let header_request = Request::post("/transfer")
        .header("authorization", format!("Bearer {token}"))
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let guarded = app(builder(&clock).build().unwrap());
    assert_eq!(send(&guarded, header_request).await.status, StatusCode::OK);

    let unguarded = app(builder(&clock)
        .cookie_cross_origin_check(false)
        .build()
        .unwrap());
    let answer = send(&unguarded, cookie_request(Method::POST, &[])).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn trusted_origins_are_checked_when_the_layer_is_built() {
    for bad in [
        "app.example",
        "https://app.example/path",
        "https://",
        "ftp://app.example",
    ] {
        let error = builder(&TestClock::at_unix(NOW))
            .cookie_trusted_origin(bad)
            .build()
            .unwrap_err();
        assert!(
            matches!(error, BuildError::InvalidOrigin(_)),
            "{bad}: {error}"
        );
    }
    // The default port and a trailing slash are what a browser would never send; they are normalised.
    let clock = TestClock::at_unix(NOW);
    let app = app(builder(&clock)
        .cookie_trusted_origin("HTTPS://App.Example:443/")
        .build()
        .unwrap());
    let answer = send(
        &app,
        cookie_request(Method::POST, &[("origin", "https://app.example")]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}
