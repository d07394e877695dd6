//! Reactive refresh against a real local server: single flight, generations, replay, pass-through.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{TestServer, capture_server, client, expired_session, log_in_expired, mint, outcome};
use reqwest::StatusCode;
use tessera_client::{Error, SkipAuth, TokenSet};

#[tokio::test]
async fn a_401_that_is_not_about_expiry_passes_through() {
    let server = TestServer::start().await;
    let auth = server.auth().build().unwrap();
    auth.set_tokens(TokenSet::new(mint(300)).with_refresh_token("rt"))
        .await
        .unwrap();
    let client = client(&auth);

    let response = server.get(&client, "/plain-401").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!outcome(&response).replayed());

    let response = server.get(&client, "/admin").await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "insufficient_scope passes through"
    );
    assert!(!outcome(&response).replayed());

    assert_eq!(
        server.issuer.calls(),
        0,
        "no refresh for a 401 without invalid_token, nor for a 403"
    );
    assert_eq!(server.api.authorizations("/plain-401").len(), 1);
    assert_eq!(server.api.authorizations("/admin").len(), 1);
}

#[tokio::test]
async fn a_json_post_is_replayed_byte_identical() {
    let server = TestServer::start().await;
    let (_auth, client) = expired_session(&server).await;
    let body = serde_json::json!({ "amount": 12.5, "note": "naïve \"quote\"", "items": [1, 2, 3] });
    let sent = serde_json::to_vec(&body).unwrap();

    let response = client
        .post(format!("{}/echo", server.url))
        .header("content-type", "application/json")
        .body(sent.clone())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert!(outcome(&response).replayed());
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.bytes().await.unwrap(), Bytes::from(sent));
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(server.api.authorizations("/echo").len(), 2);
}

#[tokio::test]
async fn a_streaming_body_is_sent_once_and_the_token_still_refreshed() {
    let server = TestServer::start().await;
    let (auth, client) = expired_session(&server).await;
    let before = auth.generation().unwrap();
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"chunk-1,")),
        Ok(Bytes::from_static(b"chunk-2")),
    ];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));

    let error = client
        .post(format!("{}/echo", server.url))
        .body(body)
        .send()
        .await
        .unwrap_err();
    let Ok(Error::BodyNotReplayable { response }) = Error::try_from_middleware(error) else {
        panic!("expected BodyNotReplayable");
    };
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the original answer is handed back"
    );
    assert_eq!(response.headers()["token-expired"], "true");
    assert_eq!(
        server.api.authorizations("/echo").len(),
        1,
        "the stream was sent once"
    );
    assert_eq!(server.issuer.calls(), 1, "the token was refreshed anyway");
    assert_eq!(auth.generation().unwrap().get(), before.get() + 1);

    // The next call goes out with the new token straight away.
    let response = client
        .post(format!("{}/echo", server.url))
        .body("again")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!outcome(&response).replayed());
    assert_eq!(server.issuer.calls(), 1);
}

#[tokio::test]
async fn the_token_never_follows_a_redirect_to_another_origin() {
    let server = TestServer::start().await;
    let (other, other_api) = capture_server().await;
    let auth = server.auth().build().unwrap();
    auth.set_tokens(TokenSet::new(mint(300))).await.unwrap();
    let client = client(&auth);

    let response = client
        .get(format!("{}/redirect?to={other}/capture", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "captured");
    assert!(
        server.api.authorizations("/redirect")[0].is_some(),
        "the allowed origin got the token"
    );
    assert_eq!(
        other_api.authorizations("/capture"),
        [None],
        "the other origin did not"
    );

    // A redirect within the allowed origin keeps it.
    let response = server.get(&client, "/redirect?to=/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Another host name for the same machine and port is another origin too.
    let other_host = other.replace("127.0.0.1", "localhost");
    let response = client
        .get(format!("{}/redirect?to={other_host}/capture", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A request straight to a non-allowed origin carries no token either.
    let response = client.get(format!("{other}/capture")).send().await.unwrap();
    assert!(!outcome(&response).attached());
    assert_eq!(other_api.authorizations("/capture"), [None, None, None]);
}

#[tokio::test]
async fn skip_auth_opts_one_request_out() {
    let server = TestServer::start().await;
    let auth = server.auth().build().unwrap();
    auth.set_tokens(TokenSet::new(mint(300))).await.unwrap();
    let client = client(&auth);

    let response = client
        .get(format!("{}/data", server.url))
        .with_extension(SkipAuth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!outcome(&response).attached());
    assert_eq!(server.api.authorizations("/data"), [None]);
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(outcome(&response).generation(), auth.generation());
}

#[tokio::test]
async fn the_token_request_is_never_intercepted() {
    let server = TestServer::start().await;
    // A refresher that (wrongly) calls the token endpoint through a client carrying the same middleware.
    let slot: Arc<std::sync::OnceLock<reqwest_middleware::ClientWithMiddleware>> = Arc::default();
    let refresher_client = Arc::clone(&slot);
    let token_url = server.token_url();
    let refresher = move |context: tessera_client::RefreshContext| {
        let client = refresher_client.get().unwrap().clone();
        let token_url = token_url.clone();
        async move {
            let form = format!(
                "grant_type=refresh_token&refresh_token={}",
                context.refresh_token().unwrap().as_str()
            );
            let response = client
                .post(token_url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .map_err(|error| tessera_client::RefreshError::Other(error.into()))?;
            let body = response
                .bytes()
                .await
                .map_err(|error| tessera_client::RefreshError::Other(error.into()))?;
            serde_json::from_slice(&body)
                .map_err(|error| tessera_client::RefreshError::Other(error.into()))
        }
    };
    let auth = tessera_client::AuthMiddleware::builder(refresher)
        .allow_origin(&server.url)
        .build()
        .unwrap();
    let client = client(&auth);
    slot.set(client.clone()).unwrap();
    log_in_expired(&server, &auth).await;

    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(
        *server.issuer.authorizations.lock().unwrap(),
        [None],
        "no bearer token on the token request"
    );
}

#[tokio::test]
async fn invalid_grant_ends_the_session_once_for_every_waiter() {
    let server = TestServer::start().await;
    server.issuer.set_behaviour(common::Behaviour::InvalidGrant);
    server.issuer.close();
    let expired = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&expired);
    let auth = server
        .auth()
        .on_session_expired(move |error| {
            assert!(error.is_terminal());
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    auth.set_tokens(TokenSet::new(mint(-120)).with_refresh_token("rt-revoked"))
        .await
        .unwrap();
    let client = client(&auth);

    let requests: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            let url = format!("{}/data", server.url);
            tokio::spawn(async move { client.get(url).send().await })
        })
        .collect();
    server.issuer.wait_for_calls(1).await;
    common::wait_until(|| server.api.authorizations("/data").len() >= 20).await;
    server.issuer.open();

    for request in requests {
        let error = request.await.unwrap().unwrap_err();
        assert!(
            matches!(
                Error::from_middleware(&error),
                Some(Error::ReauthenticationRequired { .. })
            ),
            "{error:?}"
        );
    }
    assert_eq!(
        expired.load(Ordering::SeqCst),
        1,
        "on_session_expired fires exactly once"
    );
    assert_eq!(server.issuer.calls(), 1);
    assert!(auth.tokens().is_none(), "tokens are cleared");

    // Nothing loops: later requests fail at once without calling anyone.
    let error = server.get(&client, "/data").await.unwrap_err();
    assert!(matches!(
        Error::from_middleware(&error),
        Some(Error::ReauthenticationRequired { .. })
    ));
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(server.api.authorizations("/data").len(), 20);
    assert_eq!(expired.load(Ordering::SeqCst), 1);

    // Signing in again starts a new session.
    server.issuer.set_behaviour(common::Behaviour::Issue);
    auth.set_tokens(TokenSet::new(mint(300))).await.unwrap();
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_new_token_that_is_rejected_again_is_not_refreshed_in_a_loop() {
    let server = TestServer::start().await;
    let (_auth, client) = expired_session(&server).await;
    // The issuer hands out tokens that are already expired: the replay fails too, and that is the answer.
    server.issuer.set_lifetime(-120);

    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(outcome(&response).replayed());
    assert_eq!(server.issuer.calls(), 1);
    assert_eq!(
        server.api.authorizations("/data").len(),
        2,
        "one attempt and one replay"
    );
}

#[tokio::test]
async fn an_invalid_token_challenge_without_token_expired_also_refreshes() {
    let server = TestServer::start().await;
    server.issuer.accept_refresh_token("rt-login");
    let auth = server.auth().build().unwrap();
    // Signed with another key: the layer answers 401 error="invalid_token" without Token-Expired.
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "iss": common::ISSUER, "aud": common::AUDIENCE, "sub": "alice", "exp": 4_000_000_000_u64 }),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-of-32-bytes!!!"),
    )
    .unwrap();
    auth.set_tokens(TokenSet::new(foreign).with_refresh_token("rt-login"))
        .await
        .unwrap();

    let response = server.get(&client(&auth), "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(outcome(&response).replayed());
    assert_eq!(server.issuer.calls(), 1);
}

#[tokio::test]
async fn an_expiry_401_from_another_origin_after_a_redirect_is_not_acted_on() {
    let server = TestServer::start().await;
    let (other, other_api) = capture_server().await;
    let auth = server.auth().build().unwrap();
    auth.set_tokens(TokenSet::new(mint(300)).with_refresh_token("rt"))
        .await
        .unwrap();

    let url = format!("{}/redirect?to={other}/expired", server.url);
    let response = client(&auth).get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "handed back as it is"
    );
    assert!(!outcome(&response).replayed());
    assert_eq!(
        server.issuer.calls(),
        0,
        "that origin never saw our token, so its 401 is not about it"
    );
    assert_eq!(other_api.authorizations("/expired"), [None]);
}

#[tokio::test]
async fn an_api_refusing_every_token_without_an_expiry_signal_costs_one_refresh_not_one_per_request()
 {
    let server = TestServer::start().await;
    server.issuer.accept_refresh_token("rt-login");
    let auth = server.auth().build().unwrap();
    auth.set_tokens(TokenSet::new(mint(300)).with_refresh_token("rt-login"))
        .await
        .unwrap();
    let client = client(&auth);

    for attempt in 0..5 {
        let response = server.get(&client, "/refuses").await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "handed back");
        assert_eq!(
            outcome(&response).replayed(),
            attempt == 0,
            "attempt {attempt}"
        );
    }
    assert_eq!(
        server.issuer.calls(),
        1,
        "one refresh in case the token was the trouble; not one rotation per request"
    );

    // The new token is fine elsewhere: once an API accepted it, an unexplained refusal may refresh again.
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = server.get(&client, "/refuses").await.unwrap();
    assert!(outcome(&response).replayed());
    assert_eq!(server.issuer.calls(), 2);
    let response = server.get(&client, "/refuses").await.unwrap();
    assert!(!outcome(&response).replayed());
    assert_eq!(server.issuer.calls(), 2);
}
