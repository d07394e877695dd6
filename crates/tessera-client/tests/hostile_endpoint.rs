//! Token endpoints that misbehave on purpose (issue 12, defect 10): redirects to another origin, and an
//! endless 200 body. The refresh token and client secrets must never reach another origin, no token from
//! there may be used, and an endless answer must cost bounded memory and time.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use common::{CLIENT_ID, CLIENT_SECRET, TestServer, client, mint};
use tessera_client::{
    AuthMiddleware, ClientAuth, ClientCredentialsGrant, Error, RefreshError, RefreshTokenGrant,
    TokenSet,
};

/// What another origin saw: each request's method, `Authorization` header and body.
#[derive(Debug, Default)]
struct Elsewhere {
    seen: Mutex<Vec<(String, Option<String>, String)>>,
}

/// An origin that answers every request with a token of its own, recording what it received.
async fn elsewhere() -> (String, Arc<Elsewhere>) {
    async fn record(State(seen): State<Arc<Elsewhere>>, request: Request) -> Response {
        let method = request.method().to_string();
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .unwrap();
        seen.seen.lock().unwrap().push((
            method,
            authorization,
            String::from_utf8_lossy(&body).into_owned(),
        ));
        axum::Json(serde_json::json!({
            "access_token": "minted-elsewhere", "token_type": "Bearer", "expires_in": 300,
            "refresh_token": "rt-elsewhere",
        }))
        .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Elsewhere::default());
    let app = Router::new()
        .route("/{*path}", any(record))
        .with_state(Arc::clone(&seen));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A token endpoint that redirects every request to `target` with `status`.
async fn redirecting_endpoint(status: StatusCode, target: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/auth/token",
        post(move || {
            let target = target.clone();
            async move { (status, [(header::LOCATION, target)]).into_response() }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A refresh-token grant at `{endpoint}/auth/token`, through a client that follows redirects (reqwest's
/// default): the middleware must not rely on the application having turned that off.
fn grant_at(endpoint: &str) -> RefreshTokenGrant {
    RefreshTokenGrant::new(
        reqwest::Client::new(),
        format!("{endpoint}/auth/token").parse().unwrap(),
    )
}

/// Builds `builder` and logs in with an expired access token and the refresh token `rt-login`.
async fn logged_in(builder: tessera_client::AuthMiddlewareBuilder) -> AuthMiddleware {
    let auth = builder.build().unwrap();
    auth.set_tokens(TokenSet::new(mint(-120)).with_refresh_token("rt-login"))
        .await
        .unwrap();
    auth
}

fn refresh_error(error: &reqwest_middleware::Error) -> &RefreshError {
    match Error::from_middleware(error) {
        Some(Error::RefreshUnavailable { source, .. }) => source,
        other => panic!("expected RefreshUnavailable, got {other:?} from {error:?}"),
    }
}

#[tokio::test]
async fn a_token_endpoint_redirecting_elsewhere_gets_nothing_and_gives_nothing() {
    for status in [
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
        StatusCode::SEE_OTHER,
        StatusCode::FOUND,
        StatusCode::MOVED_PERMANENTLY,
    ] {
        let api = TestServer::start().await;
        let (other, seen) = elsewhere().await;
        let endpoint = redirecting_endpoint(status, format!("{other}/steal")).await;
        let grant =
            grant_at(&endpoint).client_auth(ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET));
        let auth = logged_in(AuthMiddleware::builder(grant).allow_origin(&api.url)).await;

        let error = api.get(&client(&auth), "/data").await.unwrap_err();
        let source = refresh_error(&error);
        assert!(
            matches!(source, RefreshError::Redirected { .. }),
            "{status}: {source}"
        );
        assert!(source.to_string().contains("redirect"), "{source}");
        for (method, authorization, body) in seen.seen.lock().unwrap().iter() {
            assert!(
                !body.contains("rt-login") && !body.contains("s3cret"),
                "{status}: the other origin got {method} {body:?}"
            );
            assert!(authorization.is_none(), "{status}: {authorization:?}");
        }
        assert_eq!(
            auth.tokens().unwrap().refresh_token().unwrap().as_str(),
            "rt-login",
            "{status}: nothing minted elsewhere was taken"
        );
        assert_eq!(
            api.api.authorizations("/data").len(),
            1,
            "{status}: no API call with another origin's token"
        );
    }
}

#[tokio::test]
async fn client_credentials_never_follow_a_redirect_with_the_secret() {
    let (other, seen) = elsewhere().await;
    let endpoint =
        redirecting_endpoint(StatusCode::TEMPORARY_REDIRECT, format!("{other}/steal")).await;
    let api = TestServer::start().await;
    let grant = ClientCredentialsGrant::new(
        reqwest::Client::new(),
        format!("{endpoint}/auth/token").parse().unwrap(),
        ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET),
    );
    let auth = AuthMiddleware::builder(grant)
        .allow_origin(&api.url)
        .build()
        .unwrap();

    let error = api.get(&client(&auth), "/data").await.unwrap_err();
    assert!(matches!(
        refresh_error(&error),
        RefreshError::Redirected { .. }
    ));
    assert!(
        seen.seen.lock().unwrap().is_empty(),
        "the secret was never sent elsewhere"
    );
}

/// A token endpoint whose 200 answer never ends, counting the bytes it managed to hand over.
async fn endless_endpoint() -> (String, Arc<AtomicUsize>) {
    async fn endless(State(sent): State<Arc<AtomicUsize>>, _: HeaderMap) -> Response {
        let chunk = Bytes::from(vec![b' '; 64 * 1024]);
        let stream = futures_util::stream::unfold((sent, chunk), |(sent, chunk)| async move {
            // Throttled to about 64 MiB/s, so that even an unbounded reader stays within reason.
            tokio::time::sleep(Duration::from_millis(1)).await;
            sent.fetch_add(chunk.len(), Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(chunk.clone()), (sent, chunk)))
        });
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(stream),
        )
            .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/auth/token", post(endless))
        .with_state(Arc::clone(&sent));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, sent)
}

#[tokio::test]
async fn an_endless_token_answer_is_cut_off_at_the_size_cap() {
    let (endpoint, sent) = endless_endpoint().await;
    let api = TestServer::start().await;
    let auth = logged_in(
        AuthMiddleware::builder(grant_at(&endpoint))
            .allow_origin(&api.url)
            .refresh_timeout(Duration::from_secs(3)),
    )
    .await;

    let started = Instant::now();
    let error = api.get(&client(&auth), "/data").await.unwrap_err();
    let elapsed = started.elapsed();
    let source = refresh_error(&error);
    assert!(
        matches!(source, RefreshError::ResponseTooLarge { limit: 65_536 }),
        "{source}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "cut off at the cap, not at the timeout: {elapsed:?}"
    );
    // What the server managed to push: the cap plus what the sockets buffer, far from unbounded.
    let pushed = sent.load(Ordering::SeqCst);
    assert!(pushed < 16 << 20, "{pushed} bytes");
}

#[tokio::test]
async fn a_token_answer_announcing_too_much_is_refused_unread() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/auth/token",
        post(|| async {
            let body = format!(
                r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
                "a".repeat(100_000)
            );
            ([(header::CONTENT_TYPE, "application/json")], body)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let api = TestServer::start().await;
    let auth = logged_in(AuthMiddleware::builder(grant_at(&endpoint)).allow_origin(&api.url)).await;
    let error = api.get(&client(&auth), "/data").await.unwrap_err();
    assert!(matches!(
        refresh_error(&error),
        RefreshError::ResponseTooLarge { .. }
    ));
}
