//! The built-in refreshers against the test token endpoint: client credentials with a secret (Basic and
//! form) and with `private_key_jwt`, and client authentication on the refresh-token grant.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{CLIENT_ID, CLIENT_SECRET, TestServer, client, log_in_expired, outcome};
use jsonwebtoken::DecodingKey;
use reqwest::StatusCode;
use tessera_client::{
    AuthMiddleware, ClientAuth, ClientCredentialsGrant, Error, ManualClock, PrivateKeyJwt,
    RefreshTokenGrant,
};
use tessera_core::jose::{Algorithm, SigningKey};

fn client_credentials(
    server: &TestServer,
    auth: ClientAuth,
    clock: &ManualClock,
) -> AuthMiddleware {
    let grant =
        ClientCredentialsGrant::new(reqwest::Client::new(), server.token_url(), auth).scope("read");
    AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// A fresh Ed25519 key pair: a Tessera signing key, and the same key's public half as jsonwebtoken reads it: the test server checks
/// assertions with an implementation that is not ours.
fn ed25519_keys() -> (SigningKey, DecodingKey) {
    let signing = SigningKey::generate_with_kid("k1", Algorithm::EdDsa).unwrap();
    let x = signing.public_jwk().unwrap().x.clone().unwrap();
    let public = URL_SAFE_NO_PAD.decode(x).unwrap();
    (signing, DecodingKey::from_ed_der(&public))
}

#[tokio::test]
async fn client_credentials_with_a_secret_are_fetched_once_and_cached() {
    for auth in [
        ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET),
        ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET),
    ] {
        let server = TestServer::start().await;
        server.issuer.set_rotate(false);
        let clock = ManualClock::new();
        let middleware = client_credentials(&server, auth, &clock);
        let client = client(&middleware);

        for _ in 0..5 {
            let response = server.get(&client, "/data").await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(server.issuer.calls(), 1, "cached until the skew window");
        let form = server.issuer.forms.lock().unwrap()[0].clone();
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["scope"], "read");

        // Past the skew window (300 s lifetime, at most 72 s early) a new token is fetched first.
        clock.advance(Duration::from_secs(241));
        let response = server.get(&client, "/data").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(outcome(&response).refreshed());
        assert_eq!(server.issuer.calls(), 2);
    }
}

#[tokio::test]
async fn max_token_lifetime_caps_the_cache_whatever_the_issuer_says() {
    let server = TestServer::start().await;
    server.issuer.set_rotate(false);
    server.issuer.set_lifetime(3600);
    let clock = ManualClock::new();
    let grant = ClientCredentialsGrant::new(
        reqwest::Client::new(),
        server.token_url(),
        ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET),
    );
    let middleware = AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .clock(clock.clone())
        .max_token_lifetime(Duration::from_secs(120))
        .build()
        .unwrap();
    let client = client(&middleware);

    assert_eq!(
        server.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
    // Capped at 120 s: the skew shrinks to half of that, so the token is due after 60 s, not 3540 s.
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        server.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.issuer.calls(), 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        server.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.issuer.calls(), 2);
}

#[tokio::test]
async fn a_wrong_client_secret_is_terminal() {
    let server = TestServer::start().await;
    let clock = ManualClock::new();
    let middleware = client_credentials(
        &server,
        ClientAuth::secret_basic(CLIENT_ID, "wrong"),
        &clock,
    );
    let client = client(&middleware);

    let error = server.get(&client, "/data").await.unwrap_err();
    let Some(Error::ReauthenticationRequired { source }) = Error::from_middleware(&error) else {
        panic!("expected ReauthenticationRequired, got {error:?}");
    };
    assert!(source.to_string().contains("invalid_client"), "{source}");
    assert_eq!(server.issuer.calls(), 1);
    assert!(
        server.api.authorizations("/data").is_empty(),
        "no request went out without a token"
    );
}

#[tokio::test]
async fn private_key_jwt_sends_a_fresh_verifiable_assertion_per_token_request() {
    let server = TestServer::start().await;
    server.issuer.set_rotate(false);
    let (signing, verifying) = ed25519_keys();
    server.issuer.trust_assertion_key(verifying);
    let clock = ManualClock::new();
    let auth = ClientAuth::private_key_jwt(PrivateKeyJwt::new(CLIENT_ID, signing));
    let middleware = client_credentials(&server, auth, &clock);
    let client = client(&middleware);

    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the server verified signature, aud, exp and jti"
    );
    clock.advance(Duration::from_secs(241));
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the second assertion has a new jti"
    );
    assert_eq!(server.issuer.calls(), 2);

    let forms = server.issuer.forms.lock().unwrap().clone();
    assert_ne!(forms[0]["client_assertion"], forms[1]["client_assertion"]);
    assert_eq!(
        forms[0]["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(!forms[0].contains_key("client_secret"));

    // The test server does reject a reused assertion: replaying a captured one fails.
    let replayed = reqwest::Client::new()
        .post(server.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(forms[0].iter())
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn private_key_jwt_signed_with_an_unknown_key_is_rejected() {
    let server = TestServer::start().await;
    let (_, trusted) = ed25519_keys();
    let (untrusted, _) = ed25519_keys();
    server.issuer.trust_assertion_key(trusted);
    let clock = ManualClock::new();
    let auth = ClientAuth::private_key_jwt(PrivateKeyJwt::new(CLIENT_ID, untrusted));
    let client = client(&client_credentials(&server, auth, &clock));

    let error = server.get(&client, "/data").await.unwrap_err();
    assert!(matches!(
        Error::from_middleware(&error),
        Some(Error::ReauthenticationRequired { .. })
    ));
    assert_eq!(server.issuer.calls(), 1);
}

#[tokio::test]
async fn the_refresh_token_grant_authenticates_the_client_when_asked() {
    let server = TestServer::start().await;
    let grant = RefreshTokenGrant::new(reqwest::Client::new(), server.token_url())
        .client_auth(ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET))
        .scope("read");
    let middleware = AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .build()
        .unwrap();
    log_in_expired(&server, &middleware).await;

    let response = server.get(&client(&middleware), "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let form = server.issuer.forms.lock().unwrap()[0].clone();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], "rt-login");
    assert_eq!(form["scope"], "read");
    let authorization = server.issuer.authorizations.lock().unwrap()[0]
        .clone()
        .unwrap();
    assert!(
        authorization.starts_with("Basic "),
        "client_secret_basic on the refresh request"
    );
}

#[tokio::test]
async fn without_a_refresh_token_the_session_needs_a_login() {
    let server = TestServer::start().await;
    let middleware = server.auth().build().unwrap();
    let error = server.get(&client(&middleware), "/data").await.unwrap_err();
    assert!(matches!(
        Error::from_middleware(&error),
        Some(Error::ReauthenticationRequired { .. })
    ));
    assert_eq!(
        server.issuer.calls(),
        0,
        "nothing to refresh with, nothing sent"
    );
}

#[tokio::test]
async fn expires_in_sent_as_a_string_is_understood() {
    let server = TestServer::start().await;
    server.issuer.set_expires_in_as_text(true);
    let clock = ManualClock::new();
    let middleware = client_credentials(
        &server,
        ClientAuth::secret_basic(CLIENT_ID, CLIENT_SECRET),
        &clock,
    );
    let client = client(&middleware);
    let response = server.get(&client, "/data").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let expires_at = middleware.tokens().unwrap().expires_at().unwrap();
    assert_eq!(
        expires_at,
        tessera_client::Clock::now(&clock) + Duration::from_secs(300),
        "\"expires_in\": \"300\" is 300 s"
    );
}

#[tokio::test]
async fn a_refresh_answer_without_a_refresh_token_keeps_the_old_one() {
    let server = TestServer::start().await;
    server.issuer.set_rotate(false);
    let middleware = AuthMiddleware::builder(RefreshTokenGrant::new(
        reqwest::Client::new(),
        server.token_url(),
    ))
    .allow_origin(&server.url)
    .build()
    .unwrap();
    log_in_expired(&server, &middleware).await;
    let client = client(&middleware);
    assert_eq!(
        server.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        middleware
            .tokens()
            .unwrap()
            .refresh_token()
            .unwrap()
            .as_str(),
        "rt-login"
    );
    // And it is presented again next time.
    let expired = tessera_client::TokenSet::new(common::mint(-120)).with_refresh_token("rt-login");
    middleware.set_tokens(expired).await.unwrap();
    assert_eq!(
        server.get(&client, "/data").await.unwrap().status(),
        StatusCode::OK
    );
    let forms = server.issuer.forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 2);
    assert!(forms.iter().all(|form| form["refresh_token"] == "rt-login"));
}

#[tokio::test]
async fn invalid_grant_answered_with_403_ends_the_session_too() {
    let server = TestServer::start().await;
    server.issuer.set_behaviour(common::Behaviour::Forbidden);
    let middleware = server.auth().build().unwrap();
    log_in_expired(&server, &middleware).await;
    let error = server.get(&client(&middleware), "/data").await.unwrap_err();
    let Some(Error::ReauthenticationRequired { source }) = Error::from_middleware(&error) else {
        panic!("expected ReauthenticationRequired, got {error:?}");
    };
    assert!(source.to_string().contains("invalid_grant"), "{source}");
    assert!(middleware.tokens().is_none());
}

#[tokio::test]
async fn challenges_of_several_schemes_are_read_through_the_middleware() {
    for path in ["/several-challenges", "/several-challenges?lines"] {
        let server = TestServer::start().await;
        let middleware = server.auth().build().unwrap();
        log_in_expired(&server, &middleware).await;
        let response = server.get(&client(&middleware), path).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(outcome(&response).replayed(), "{path}");
        assert_eq!(response.text().await.unwrap(), "accepted");
        assert_eq!(server.issuer.calls(), 1);
    }
}

#[tokio::test]
async fn both_grants_send_resources_audience_and_extra_parameters() {
    let server = TestServer::start().await;
    server.issuer.set_rotate(false);
    let grant = ClientCredentialsGrant::new(
        reqwest::Client::new(),
        server.token_url(),
        ClientAuth::secret_post(CLIENT_ID, CLIENT_SECRET),
    )
    .resource("https://a.example/api")
    .resource("https://b.example/api")
    .audience("api")
    .param("tenant", "blue")
    .unwrap();
    let middleware = AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .build()
        .unwrap();
    assert_eq!(
        server
            .get(&client(&middleware), "/data")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let grant = RefreshTokenGrant::new(reqwest::Client::new(), server.token_url())
        .resource("https://a.example/api")
        .audience("api")
        .param("tenant", "green")
        .unwrap();
    let middleware = AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .build()
        .unwrap();
    log_in_expired(&server, &middleware).await;
    assert_eq!(
        server
            .get(&client(&middleware), "/data")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let raw = server.issuer.raw_forms.lock().unwrap().clone();
    let resources = |form: &[(String, String)]| -> Vec<String> {
        form.iter()
            .filter(|(name, _)| name == "resource")
            .map(|(_, value)| value.clone())
            .collect()
    };
    assert_eq!(
        resources(&raw[0]),
        ["https://a.example/api", "https://b.example/api"],
        "repeated, in order"
    );
    assert!(raw[0].contains(&("audience".into(), "api".into())));
    assert!(raw[0].contains(&("tenant".into(), "blue".into())));
    assert_eq!(resources(&raw[1]), ["https://a.example/api"]);
    assert!(raw[1].contains(&("tenant".into(), "green".into())));
    assert!(raw[1].contains(&("grant_type".into(), "refresh_token".into())));

    let refused = RefreshTokenGrant::new(reqwest::Client::new(), server.token_url())
        .param("client_secret", "sneaky")
        .unwrap_err();
    assert!(refused.to_string().contains("client_secret"), "{refused}");
}
