//! `JwtAuthLayer` against an authorization server nobody here wrote: node's certified `oidc-provider` 9
//! (tests/interop/provider.mjs), started on loopback. Its keys are found by discovery, its access tokens of
//! every algorithm it signs are accepted, its key rotation is followed, its DPoP-bound tokens are accepted
//! with a proof of their key and refused without.
//!
//! Needs Node.js and tests/interop/node_modules: `scripts/test.sh` installs both (by hand:
//! `source scripts/node.sh && node_ensure_installed && node_install_interop`). Without them this test
//! fails; it never skips.
#![cfg(feature = "remote-jwks")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera_core::jose::{Algorithm, Jws, SigningKey};
use tessera_server::{AuthRejection, Dpop, JwtAuthLayer, ManualClock, RemoteJwks, VerifiedToken};
use tower::ServiceExt;

const ALGORITHMS: [&str; 5] = ["RS256", "PS256", "ES256", "EdDSA", "Ed25519"];

/// The running provider; killed when dropped (and it exits by itself when its stdin closes).
struct Provider {
    child: Child,
    _stdin: ChildStdin,
    ready: Value,
    http: reqwest::Client,
}

impl Provider {
    fn start() -> Provider {
        let dir = std::env::var_os("TESSERA_INTEROP_DIR").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop"),
            PathBuf::from,
        );
        let how = "run the tests through scripts/test.sh, which installs them, or by hand: \
                   source scripts/node.sh && node_ensure_installed && node_install_interop";
        let node = Command::new("node").arg("--version").output();
        assert!(
            node.as_ref().is_ok_and(|output| output.status.success()),
            "node is not on PATH ({node:?}): the interop test needs Node.js >= 20.12; {how}"
        );
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules/oidc-provider: the interop peers are not installed; {how}",
            dir.display()
        );
        let log =
            std::env::temp_dir().join(format!("tessera-oidc-provider-{}.log", std::process::id()));
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args(["--port", "0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn node provider.mjs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_default();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "provider.mjs printed no ready line ({line:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Provider {
            child,
            _stdin: stdin,
            ready,
            http: reqwest::Client::new(),
        }
    }

    fn get(&self, field: &str) -> &str {
        self.ready[field].as_str().unwrap()
    }

    /// A client-credentials access token of `tessera-secret` for `resource`, with `scope`, and a DPoP
    /// proof when `dpop` is given: the token response.
    async fn token(&self, resource: &str, scope: &str, dpop: Option<&SigningKey>) -> Value {
        let client = &self.ready["clients"]["secret"];
        let token_endpoint = self.get("token_endpoint");
        let body = format!(
            "grant_type=client_credentials&resource={}&scope={}",
            encode(resource),
            encode(scope)
        );
        let mut request = self
            .http
            .post(token_endpoint)
            .basic_auth(
                client["client_id"].as_str().unwrap(),
                client["client_secret"].as_str(),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(key) = dpop {
            let proof = proof(key, "POST", token_endpoint, None);
            request = request.header("dpop", proof);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(status, 200, "token request for {resource}: {body}");
        body
    }

    async fn access_token(&self, alg: &str, scope: &str) -> String {
        let resource = self.ready["resources"][alg].as_str().unwrap();
        let response = self.token(resource, scope, None).await;
        response["access_token"].as_str().unwrap().to_owned()
    }

    async fn rotate_keys(&self) -> Value {
        let route = self.ready["test_routes"]["rotate_keys"].as_str().unwrap();
        let response = self.http.post(route).send().await.unwrap();
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn now() -> i64 {
    tessera_core::unix_seconds(std::time::SystemTime::now())
}

/// A DPoP proof by `key` for `method` `url`, with `ath` of `token` when given.
fn proof(key: &SigningKey, method: &str, url: &str, token: Option<&str>) -> String {
    let mut claims = json!({
        "jti": tessera_core::random::id::<12>().unwrap(), "htm": method, "htu": url, "iat": now(),
    });
    if let Some(token) = token {
        claims["ath"] = common::ath(token).into();
    }
    common::dpop_proof(key, &claims)
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, String, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map_or_else(String::new, |value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), challenge)
}

fn bearer(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_tokens_are_accepted_as_its_keys_rotate() {
    let provider = Provider::start();
    let issuer = provider.get("issuer").to_owned();
    let audience = provider.get("audience").to_owned();

    // Discovery: RFC 8414 metadata at the provider, whose `issuer` is exactly the URL, leads to its JWKS.
    // The key set's own clock steps instead of the test waiting out the unknown-kid cooldown.
    let jwks_clock = ManualClock::new();
    let remote = RemoteJwks::discover_with(&issuer, |builder| builder.clock(jwks_clock.clone()))
        .await
        .unwrap();
    remote.refresh().await.unwrap();
    let auth = JwtAuthLayer::builder()
        .remote_jwks(remote.clone())
        .issuer(&issuer)
        .audience(&audience)
        .strict_rfc9068(true)
        .build()
        .unwrap();

    // Every algorithm it signs with, RSA and OKP keys being published without `alg`.
    for alg in ALGORITHMS {
        let token = provider.access_token(alg, "api:read api:write").await;
        assert_eq!(Jws::parse(&token).unwrap().algorithm().as_str(), alg);
        let verified = auth
            .verify(&token)
            .await
            .unwrap_or_else(|rejection| panic!("{alg}: {rejection}"));
        assert_eq!(verified.algorithm().as_str(), alg);
        assert_eq!(verified.key_id(), provider.ready["kids"][alg].as_str());
        assert_eq!(
            verified.scopes().collect::<Vec<_>>(),
            ["api:read", "api:write"]
        );
        assert_eq!(verified.client_id(), Some("tessera-secret"));
    }

    // Through the layer: scopes decide the route.
    let app = Router::new()
        .route(
            "/whoami",
            get(|token: VerifiedToken| async move { token.subject().unwrap_or("-").to_owned() }),
        )
        .route(
            "/write",
            get(|| async { "written" }).route_layer(auth.require_scope("api:write")),
        )
        .layer(auth.clone());
    let read_only = provider.access_token("ES256", "api:read").await;
    let (status, body, _) = call(&app, bearer("/whoami", &read_only)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "tessera-secret"));
    let (status, _, challenge) = call(&app, bearer("/write", &read_only)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.contains(r#"scope="api:write""#), "{challenge}");

    // A token for another audience.
    let other = provider
        .token(provider.get("other_audience_resource"), "api:read", None)
        .await;
    let other = other["access_token"].as_str().unwrap();
    assert_eq!(
        auth.verify(other).await.unwrap_err(),
        AuthRejection::InvalidAudience
    );

    // The JWKS carries no Cache-Control: the key set refreshes on its default schedule (15 min).
    let jwks = reqwest::get(provider.get("jwks_uri")).await.unwrap();
    assert!(jwks.headers().get("cache-control").is_none());
    let fetches = remote.fetch_counts().0;
    auth.verify(&read_only).await.unwrap();
    assert_eq!(remote.fetch_counts().0, fetches, "no refresh is due yet");
    jwks_clock.advance(Duration::from_secs(15 * 60 + 1));
    auth.verify(&read_only).await.unwrap();
    wait_for_fetch(&remote, fetches + 1).await;

    // Key rotation: the provider signs with new keys, published next to the old ones; a token naming a
    // new kid makes the layer refetch once the cooldown allows.
    let before = provider.access_token("PS256", "api:read").await;
    let rotated = provider.rotate_keys().await;
    let new_kid = rotated["kids"]["PS256"].as_str().unwrap().to_owned();
    assert_ne!(
        Some(new_kid.as_str()),
        provider.ready["kids"]["PS256"].as_str()
    );
    let after = provider.access_token("PS256", "api:read").await;
    assert_eq!(Jws::parse(&after).unwrap().kid(), Some(new_kid.as_str()));
    jwks_clock.advance(Duration::from_secs(31));
    let verified = auth.verify(&after).await.unwrap();
    assert_eq!(verified.key_id(), Some(new_kid.as_str()));
    auth.verify(&before).await.unwrap();
}

async fn wait_for_fetch(remote: &RemoteJwks, fetches: u64) {
    for _ in 0..500 {
        if remote.fetch_counts().0 >= fetches {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "expected {fetches} JWKS fetches, saw {:?}",
        remote.fetch_counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_dpop_bound_tokens_need_a_proof_of_their_key() {
    let provider = Provider::start();
    let issuer = provider.get("issuer").to_owned();
    let audience = provider.get("audience").to_owned();
    let auth = JwtAuthLayer::builder()
        .remote_jwks(RemoteJwks::discover(&issuer).await.unwrap())
        .issuer(&issuer)
        .audience(&audience)
        .dpop(Dpop::new("https://api.example"))
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/jkt",
            get(|token: VerifiedToken| async move { token.jkt().unwrap_or("-").to_owned() }),
        )
        .layer(auth);

    for algorithm in [Algorithm::Es256, Algorithm::EdDsa, Algorithm::Ed25519] {
        let key = SigningKey::generate(algorithm).unwrap();
        let response = provider
            .token(provider.get("resource"), "api:read", Some(&key))
            .await;
        assert_eq!(response["token_type"], "DPoP", "{algorithm}: {response}");
        let token = response["access_token"].as_str().unwrap();
        let thumbprint = key.public_jwk().unwrap().thumbprint().unwrap();

        // With a proof of the key the provider bound it to (its `cnf.jkt` is our RFC 7638 thumbprint).
        let request = Request::get("/jkt")
            .header("authorization", format!("DPoP {token}"))
            .header(
                "dpop",
                proof(&key, "GET", "https://api.example/jkt", Some(token)),
            )
            .body(Body::empty())
            .unwrap();
        let (status, body, challenge) = call(&app, request).await;
        assert_eq!(status, StatusCode::OK, "{algorithm}: {challenge}");
        assert_eq!(body, thumbprint);

        // As a bearer token, or with another key's proof: refused.
        let (status, _, challenge) = call(&app, bearer("/jkt", token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenge.starts_with(r#"DPoP error="invalid_token""#),
            "{challenge}"
        );
        let thief = SigningKey::generate(algorithm).unwrap();
        let request = Request::get("/jkt")
            .header("authorization", format!("DPoP {token}"))
            .header(
                "dpop",
                proof(&thief, "GET", "https://api.example/jkt", Some(token)),
            )
            .body(Body::empty())
            .unwrap();
        let (status, _, challenge) = call(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            challenge.starts_with(r#"DPoP error="invalid_dpop_proof""#),
            "{challenge}"
        );
    }
}
