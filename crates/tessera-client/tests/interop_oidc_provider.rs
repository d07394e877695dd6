//! The client against an implementation nobody here wrote: node's `oidc-provider` 9 (tests/interop), with
//! a protected API behind tessera-server's `JwtAuthLayer` that reads the provider's JWKS (`RemoteJwks`).
//!
//! Needs Node.js and `npm ci` in tests/interop (scripts/test.sh does both and exports
//! `TESSERA_INTEROP_DIR`). Without them these tests fail, saying so: they never skip.
//!
//! One provider process serves every test of this file (and a second one demands DPoP nonces); each test
//! uses its own clients, tokens and code flows, so they do not interfere. The processes exit with this
//! test binary (`--exit-with-stdin`).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::Value;
use tessera_client::{
    AuthMiddleware, AuthOutcome, AuthorizationServerMetadata, ClientAuth, ClientCredentialsGrant,
    Clock, DiscoveryError, DpopKey, Error, ManualClock, PrivateKeyJwt, RefreshError,
    RefreshTokenGrant, TokenSet,
};
use tessera_core::TokenResponse;
use tessera_core::jose::{Algorithm, Jwk, JwkSet, Jws, SigningKey};
use tessera_server::{Claims, JwtAuthLayer, RemoteJwks};

/// A running provider and what its ready line says.
struct Provider {
    ready: Value,
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

impl Provider {
    fn get(&self, name: &str) -> &str {
        self.ready[name]
            .as_str()
            .unwrap_or_else(|| panic!("the ready line has no {name}"))
    }

    fn issuer(&self) -> &str {
        self.get("issuer")
    }

    fn token_endpoint(&self) -> reqwest::Url {
        self.get("token_endpoint").parse().unwrap()
    }

    fn resource(&self, alg: &str) -> &str {
        self.ready["resources"][alg].as_str().unwrap()
    }

    fn secret_client(&self) -> ClientAuth {
        let secret = &self.ready["clients"]["secret"];
        ClientAuth::secret_basic(
            secret["client_id"].as_str().unwrap(),
            secret["client_secret"].as_str().unwrap(),
        )
    }
}

/// Where tests/interop is: `TESSERA_INTEROP_DIR`, or found from this crate's directory.
fn interop_dir() -> PathBuf {
    let dir = std::env::var_os("TESSERA_INTEROP_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop"),
        PathBuf::from,
    );
    assert!(
        dir.join("provider.mjs").is_file(),
        "{} holds no provider.mjs: set TESSERA_INTEROP_DIR to the repository's tests/interop",
        dir.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|output| output.status.success()),
        "node is not on PATH ({node:?}): these interop tests need Node.js >= 20.12; run scripts/test.sh, which installs it"
    );
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "{}/node_modules is missing: run scripts/test.sh, or `npm ci` in tests/interop",
        dir.display()
    );
    dir
}

/// The `private_key_jwt` client's key: the provider is given its public JWKS at start.
fn assertion_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate_with_kid("pkjwt-1", Algorithm::Es256).unwrap())
}

fn start(extra: &[&str]) -> Provider {
    let dir = interop_dir();
    let jwks = std::env::temp_dir().join(format!(
        "tessera-client-interop-{}-{}.json",
        std::process::id(),
        extra.len()
    ));
    let public = JwkSet {
        keys: vec![assertion_key().public_jwk().unwrap().clone()],
    };
    std::fs::write(&jwks, serde_json::to_vec(&public).unwrap()).unwrap();
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .args(["--port", "0", "--exit-with-stdin", "--private-key-jwt-jwks"])
        .arg(&jwks)
        .args(extra)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node provider.mjs");
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("provider.mjs printed no ready line within 60 s");
    assert!(
        !line.trim().is_empty(),
        "provider.mjs exited before it was ready (run it by hand in tests/interop to see why)"
    );
    let ready: Value = serde_json::from_str(&line).expect("the provider's ready line is JSON");
    Provider {
        ready,
        _stdin: Mutex::new(child.stdin.take().unwrap()),
        _child: Mutex::new(child),
    }
}

fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| start(&[]))
}

fn nonce_provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| start(&["--dpop-nonce"]))
}

/// An API behind `JwtAuthLayer` trusting the provider's JWKS, issuer and audience: `GET /whoami` answers
/// the token's `sub`; `GET /headers` (unprotected) echoes the `Authorization` and `DPoP` headers.
async fn api(provider: &Provider) -> String {
    let jwks = RemoteJwks::new(provider.get("jwks_uri")).unwrap();
    jwks.refresh().await.unwrap();
    let layer = JwtAuthLayer::builder()
        .remote_jwks(jwks)
        .issuer(provider.issuer())
        .audience(provider.get("audience"))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/whoami",
            get(|Claims(claims): Claims| async move { claims.sub }),
        )
        .layer(layer)
        .route(
            "/headers",
            get(|headers: HeaderMap| async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                axum::Json(serde_json::json!({
                    "authorization": header("authorization"), "dpop": header("dpop"),
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A client-credentials grant at the provider, authenticated with `auth`, for the resource `resource`.
fn client_credentials(
    provider: &Provider,
    auth: ClientAuth,
    resource: &str,
) -> ClientCredentialsGrant {
    ClientCredentialsGrant::new(reqwest::Client::new(), provider.token_endpoint(), auth)
        .resource(resource)
}

/// The refresh-token grant of the provider's public client.
fn public_refresh(provider: &Provider) -> RefreshTokenGrant {
    RefreshTokenGrant::new(reqwest::Client::new(), provider.token_endpoint())
        .client_auth(ClientAuth::public("tessera-public"))
}

/// A middleware refreshing with `refresher`, sending tokens to `api`.
fn middleware(refresher: impl tessera_client::Refresher, api: &str) -> AuthMiddleware {
    AuthMiddleware::builder(refresher)
        .allow_origin(api)
        .build()
        .unwrap()
}

fn client(auth: &AuthMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth.clone())
        .build()
}

async fn whoami(auth: &AuthMiddleware, api: &str) -> (reqwest::StatusCode, String, AuthOutcome) {
    let response = client(auth)
        .get(format!("{api}/whoami"))
        .send()
        .await
        .unwrap();
    let outcome = *response.extensions().get::<AuthOutcome>().unwrap();
    (response.status(), response.text().await.unwrap(), outcome)
}

fn claims(token: &str) -> Value {
    Jws::parse(token).unwrap().unverified_claims().unwrap()
}

/// Runs the provider's authorization-code flow (PKCE, auto-approved as `alice`) with `body`.
async fn code_flow(provider: &Provider, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(provider.ready["test_routes"]["code_flow"].as_str().unwrap())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert!(status.is_success(), "code flow failed: {answer}");
    answer
}

#[tokio::test]
async fn client_credentials_with_client_secret_basic() {
    let provider = provider();
    let api = api(provider).await;
    let grant = client_credentials(
        provider,
        provider.secret_client(),
        provider.resource("ES256"),
    )
    .scope("api:read");
    let auth = middleware(grant, &api);
    let (status, sub, outcome) = whoami(&auth, &api).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(sub, "tessera-secret");
    assert!(outcome.refreshed());
    let token = auth.tokens().unwrap();
    assert_eq!(claims(token.access_token())["scope"], "api:read");
    assert_eq!(token.scope(), Some("api:read"));
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt() {
    let provider = provider();
    let api = api(provider).await;
    let client_id = provider.ready["clients"]["private_key_jwt"]["client_id"]
        .as_str()
        .expect("the provider registered the private_key_jwt client");
    let signed =
        ClientAuth::private_key_jwt(PrivateKeyJwt::new(client_id, assertion_key().clone()));
    let auth = middleware(
        client_credentials(provider, signed, provider.resource("EdDSA")),
        &api,
    );
    let (status, sub, _) = whoami(&auth, &api).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(sub, client_id);
}

#[tokio::test]
async fn the_resource_parameter_selects_every_signing_algorithm() {
    let provider = provider();
    let api = api(provider).await;
    let mut failures = Vec::new();
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let grant = client_credentials(provider, provider.secret_client(), provider.resource(alg));
        let auth = middleware(grant, &api);
        let (status, body, _) = whoami(&auth, &api).await;
        let token = auth.tokens().unwrap();
        let jws = Jws::parse(token.access_token()).unwrap();
        assert_eq!(
            jws.algorithm().as_str(),
            alg,
            "the provider signed with {alg}"
        );
        assert_eq!(jws.kid(), provider.ready["kids"][alg].as_str());
        if status != reqwest::StatusCode::OK {
            failures.push(format!("{alg}: the API answered {status} {body}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn refresh_token_rotation_through_the_refresh_token_grant() {
    let provider = provider();
    let api = api(provider).await;
    let login: TokenResponse =
        serde_json::from_value(code_flow(provider, serde_json::json!({})).await).unwrap();
    let first_refresh = login
        .refresh_token
        .clone()
        .expect("offline_access gives a refresh token");
    let clock = ManualClock::new();
    let auth = AuthMiddleware::builder(public_refresh(provider))
        .allow_origin(&api)
        .clock(clock.clone())
        .build()
        .unwrap();
    auth.set_tokens(TokenSet::from_response(login, clock.now()))
        .await
        .unwrap();
    let (status, sub, outcome) = whoami(&auth, &api).await;
    assert_eq!((status, sub.as_str()), (reqwest::StatusCode::OK, "alice"));
    assert!(!outcome.refreshed());

    // Inside the refresh window: a proactive refresh rotates the refresh token.
    clock.advance(Duration::from_secs(250));
    let (status, sub, outcome) = whoami(&auth, &api).await;
    assert_eq!((status, sub.as_str()), (reqwest::StatusCode::OK, "alice"));
    assert!(outcome.refreshed());
    let rotated = auth
        .tokens()
        .unwrap()
        .refresh_token()
        .unwrap()
        .as_str()
        .to_owned();
    assert_ne!(
        rotated, first_refresh,
        "oidc-provider rotates on every refresh"
    );

    // The consumed refresh token presented again is reuse: oidc-provider answers invalid_grant (and
    // revokes the grant), and the client's session ends cleanly.
    let replaying = middleware(public_refresh(provider), &api);
    replaying
        .set_tokens(TokenSet::new("stale").with_refresh_token(first_refresh))
        .await
        .unwrap();
    let error = client(&replaying)
        .get(format!("{api}/whoami"))
        .send()
        .await
        .unwrap_err();
    let Some(Error::ReauthenticationRequired { source }) = Error::from_middleware(&error) else {
        panic!("expected ReauthenticationRequired, got {error:?}");
    };
    assert!(
        matches!(&**source, RefreshError::Rejected { response, .. } if response.error.as_str() == "invalid_grant"),
        "{source}"
    );
}

/// Checks the middleware's DPoP-bound request as the echo route saw it: `Authorization: DPoP`, and a proof
/// by `key` with the token's `ath`.
async fn assert_sent_with_dpop(auth: &AuthMiddleware, api: &str, key: &DpopKey) {
    let response = client(auth)
        .get(format!("{api}/headers?x=1"))
        .send()
        .await
        .unwrap();
    let seen: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    let token = auth.tokens().unwrap();
    assert_eq!(
        seen["authorization"],
        format!("DPoP {}", token.access_token())
    );
    let proof = Jws::parse(seen["dpop"].as_str().unwrap()).unwrap();
    let jwk: Jwk = serde_json::from_value(proof.header()["jwk"].clone()).unwrap();
    assert_eq!(jwk.thumbprint().unwrap(), key.thumbprint());
    let proof: Value = proof
        .verify_with(&jwk.to_key().unwrap())
        .unwrap()
        .claims()
        .unwrap();
    assert_eq!(proof["htu"], format!("{api}/headers"));
    assert_eq!(proof["htm"], "GET");
    assert!(proof["ath"].is_string());
}

#[tokio::test]
async fn dpop_client_credentials_bind_the_token_to_the_key() {
    for (provider, alg) in [
        (provider(), Algorithm::EdDsa),
        (nonce_provider(), Algorithm::Es256),
    ] {
        let api = api(provider).await;
        let key = DpopKey::generate(alg).unwrap();
        let grant = client_credentials(
            provider,
            provider.secret_client(),
            provider.resource("ES256"),
        );
        let auth = AuthMiddleware::builder(grant)
            .allow_origin(&api)
            .dpop(key.clone())
            .build()
            .unwrap();
        assert_sent_with_dpop(&auth, &api, &key).await;
        let tokens = auth.tokens().unwrap();
        assert_eq!(
            tokens.token_type(),
            "DPoP",
            "nonce required: {}",
            provider.ready["dpop_nonce_required"]
        );
        assert_eq!(
            claims(tokens.access_token())["cnf"]["jkt"],
            key.thumbprint()
        );
    }
}

#[tokio::test]
async fn dpop_refresh_with_the_same_key_and_not_with_another() {
    for provider in [provider(), nonce_provider()] {
        let api = api(provider).await;
        let key = DpopKey::generate(Algorithm::Es256).unwrap();
        let clock = ManualClock::new();
        let auth = AuthMiddleware::builder(public_refresh(provider))
            .allow_origin(&api)
            .clock(clock.clone())
            .dpop(key.clone())
            .build()
            .unwrap();

        // The login: the code flow stops before the exchange, which the application makes itself with a
        // proof from the middleware's key (retrying once if the provider wants a nonce).
        let code = code_flow(provider, serde_json::json!({ "exchange": false })).await;
        let dpop = auth.dpop().unwrap();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code["code"].as_str().unwrap())
            .append_pair("code_verifier", code["code_verifier"].as_str().unwrap())
            .append_pair("redirect_uri", code["redirect_uri"].as_str().unwrap())
            .append_pair("resource", code["resource"].as_str().unwrap())
            .append_pair("client_id", "tessera-public")
            .finish();
        let mut answer = None;
        for _ in 0..2 {
            let response = reqwest::Client::new()
                .post(provider.token_endpoint())
                .header("content-type", "application/x-www-form-urlencoded")
                .header(
                    "dpop",
                    dpop.token_request_proof(&provider.token_endpoint())
                        .unwrap(),
                )
                .body(form.clone())
                .send()
                .await
                .unwrap();
            let fresh_nonce = dpop.remember_nonce(&provider.token_endpoint(), response.headers());
            let status = response.status();
            let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            if status.is_success() {
                answer = Some(body);
                break;
            }
            assert!(
                fresh_nonce && body["error"] == "use_dpop_nonce",
                "{status} {body}"
            );
        }
        let login: TokenResponse = serde_json::from_value(answer.unwrap()).unwrap();
        assert_eq!(login.token_type, "DPoP");
        auth.set_tokens(TokenSet::from_response(login, clock.now()))
            .await
            .unwrap();
        let first = auth.tokens().unwrap();

        // A proactive refresh, with a proof from the same key.
        clock.advance(Duration::from_secs(250));
        assert_sent_with_dpop(&auth, &api, &key).await;
        let refreshed = auth.tokens().unwrap();
        assert_ne!(refreshed.refresh_token(), first.refresh_token());
        assert_eq!(
            claims(refreshed.access_token())["cnf"]["jkt"],
            key.thumbprint()
        );

        // The refresh token is bound to the key: with another key it is refused.
        let other = AuthMiddleware::builder(public_refresh(provider))
            .allow_origin(&api)
            .clock(clock.clone())
            .dpop(DpopKey::generate(Algorithm::Es256).unwrap())
            .build()
            .unwrap();
        other
            .set_tokens(
                TokenSet::new("due")
                    .with_refresh_token(refreshed.refresh_token().unwrap().as_str())
                    .with_expires_at(clock.now() + Duration::from_secs(300)),
            )
            .await
            .unwrap();
        clock.advance(Duration::from_secs(250));
        let error = client(&other)
            .get(format!("{api}/headers"))
            .send()
            .await
            .unwrap_err();
        let Some(Error::ReauthenticationRequired { source }) = Error::from_middleware(&error)
        else {
            panic!("expected ReauthenticationRequired, got {error:?}");
        };
        assert!(source.to_string().contains("invalid_grant"), "{source}");
    }
}

#[tokio::test]
async fn discovery_reads_the_openid_configuration_and_checks_the_issuer() {
    let provider = provider();
    let http = reqwest::Client::new();
    let metadata = AuthorizationServerMetadata::discover(&http, provider.issuer())
        .await
        .unwrap();
    assert_eq!(metadata.issuer, provider.issuer());
    assert_eq!(metadata.token_endpoint, provider.token_endpoint());
    assert_eq!(
        metadata.jwks_uri.as_ref().map(reqwest::Url::as_str),
        Some(provider.get("jwks_uri"))
    );
    assert!(
        metadata
            .dpop_signing_alg_values_supported
            .iter()
            .any(|alg| alg == "ES256"),
        "{metadata:?}"
    );
    assert!(
        metadata
            .token_endpoint_auth_methods_supported
            .iter()
            .any(|method| method == "private_key_jwt")
    );

    // RFC 8414 §3.3: the issuer must be the very URL discovered from, trailing slash included.
    let error = AuthorizationServerMetadata::discover(&http, &format!("{}/", provider.issuer()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::IssuerMismatch { .. }),
        "{error}"
    );

    // A discovered grant works end to end.
    let api = api(provider).await;
    let grant = ClientCredentialsGrant::discover(http, provider.issuer(), provider.secret_client())
        .await
        .unwrap()
        .resource(provider.resource("RS256"));
    let auth = middleware(grant, &api);
    let (status, _, _) = whoami(&auth, &api).await;
    assert_eq!(status, reqwest::StatusCode::OK);
}
