//! Interop: the token endpoint and an API behind `JwtAuthLayer` driven by a DPoP client nobody here wrote,
//! `oauth4webapi` (node), through `tests/interop/dpop-client.mjs` over a real listener: a token request
//! with a proof (`token_type: DPoP`, `cnf.jkt` = the client's key), a refresh with the same key, a resource
//! request with the bound token and a proof for it (`ath`), and the `use_dpop_nonce` retry at both.
//!
//! Node and the npm packages come from `scripts/test.sh`; without them these tests fail, saying so.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_issuer::{Algorithm, ClientRegistration, Issuer, MemoryStore};
use tessera_server::{Claims, Dpop};
use tokio::net::TcpListener;

use support::{CLIENT_SECRET, cheap_hashing, claims_of};

/// `tests/interop`, with its `node_modules` installed, and `node` on PATH; panics saying how to get them.
#[cfg(test)]
fn interop_dir() -> PathBuf {
    const HOW: &str = "run the tests through scripts/test.sh, which installs Node.js and the interop \
                       packages (or by hand: source scripts/node.sh && node_ensure_installed && \
                       node_install_interop)";
    let dir = std::env::var_os("TESSERA_INTEROP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop"));
    assert!(
        dir.join("node_modules/oauth4webapi").is_dir(),
        "{} has no node_modules/oauth4webapi: {HOW}",
        dir.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|output| output.status.success()),
        "node is not on PATH: {HOW}"
    );
    dir
}

/// A token service listening on a loopback port, its issuer the URL it is reached at, with an API at
/// `/api/me` that accepts DPoP-bound tokens only (`api_dpop` configures its DPoP settings further).
#[cfg(test)]
async fn serve(
    configure: fn(tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder,
    api_dpop: fn(Dpop) -> Dpop,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let secret_hash = cheap_hashing().hash(CLIENT_SECRET).unwrap();
    let builder = Issuer::builder()
        .issuer(base.clone())
        .audience("api")
        .password_hashing(cheap_hashing())
        .user("alice", "wonderland", ["admin"])
        .public_client("demo")
        .client(ClientRegistration::with_secret_hash("svc", secret_hash).unwrap())
        .signing_algorithm(Algorithm::EdDsa);
    let issuer = configure(builder).start(MemoryStore::new()).await.unwrap();
    let auth = issuer.auth_layer().unwrap();
    let api_auth = issuer
        .auth_layer_builder()
        .unwrap()
        .dpop(api_dpop(Dpop::new(base.clone()).required()))
        .build()
        .unwrap();
    let api = Router::new()
        .route(
            "/api/me",
            get(|Claims(claims): Claims<Value>| async move {
                axum::Json(json!({ "sub": claims["sub"], "jkt": claims["cnf"]["jkt"] }))
            }),
        )
        .layer(api_auth);
    let app = Router::new()
        .nest("/auth", issuer.router(&auth))
        .merge(issuer.well_known_router())
        .merge(api);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Runs `dpop-client.mjs` with `args`; its JSON line and whether it exited 0.
#[cfg(test)]
async fn dpop_client(args: Vec<String>) -> (Value, bool) {
    let script = interop_dir().join("dpop-client.mjs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "dpop-client.mjs printed nothing; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let report = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    // The run's record, shown with --nocapture.
    eprintln!("dpop-client.mjs: {line}");
    (report, output.status.success())
}

#[cfg(test)]
fn password_grant(base: &str, key_alg: &str) -> Vec<String> {
    [
        "--token-endpoint",
        &format!("{base}/auth/token"),
        "--issuer",
        base,
        "--client-id",
        "demo",
        "--grant",
        "password",
        "--username",
        "alice",
        "--password",
        "wonderland",
        "--key-alg",
        key_alg,
        "--resource-url",
        &format!("{base}/api/me"),
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_gets_dpop_bound_tokens_refreshes_them_and_calls_the_api_with_its_key() {
    let base = serve(|builder| builder, |dpop| dpop).await;
    for key_alg in ["ES256", "EdDSA"] {
        let (report, ok) = dpop_client(password_grant(&base, key_alg)).await;
        assert!(ok, "{key_alg}: {report}");
        let jkt = report["jkt"].as_str().unwrap();
        let token = &report["token"];
        assert_eq!(token["token_type"], "DPoP", "{key_alg}: {report}");
        assert_eq!(token["nonce_retry"], false);
        let access = token["access_token"].as_str().unwrap();
        assert_eq!(claims_of(access)["cnf"]["jkt"], jkt, "{key_alg}");

        let refresh = &report["refresh"];
        assert_eq!(refresh["ok"], true, "{key_alg}: {report}");
        assert_eq!(refresh["token_type"], "DPoP");
        assert_eq!(refresh["rotated"], true, "the refresh token rotates");
        let refreshed = refresh["access_token"].as_str().unwrap();
        assert_eq!(claims_of(refreshed)["cnf"]["jkt"], jkt);

        // The refreshed token, presented with oauth4webapi's proof for it, to an API demanding DPoP.
        let resource = &report["resource"];
        assert_eq!(resource["status"], 200, "{key_alg}: {report}");
        assert_eq!(resource["nonce_retry"], false);
        assert_eq!(resource["json"], json!({ "sub": "alice", "jkt": jkt }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_retries_with_the_servers_nonce_at_the_token_endpoint_and_the_api() {
    let base = serve(
        |builder| builder.dpop_nonces(Duration::from_secs(300)),
        Dpop::require_nonce,
    )
    .await;
    let (report, ok) = dpop_client(password_grant(&base, "ES256")).await;
    assert!(ok, "{report}");
    assert_eq!(report["token"]["token_type"], "DPoP");
    assert_eq!(
        report["token"]["nonce_retry"], true,
        "the first proof had no nonce: use_dpop_nonce, then a retry with it"
    );
    assert_eq!(report["refresh"]["ok"], true, "{report}");
    assert_eq!(
        report["refresh"]["nonce_retry"], false,
        "the nonce from the last answer is still good"
    );
    let resource = &report["resource"];
    assert_eq!(resource["status"], 200, "{report}");
    assert_eq!(
        resource["nonce_retry"], true,
        "the API's nonces are its own: use_dpop_nonce with a DPoP-Nonce, then a retry with it"
    );
    assert_eq!(resource["json"]["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_client_credentials_with_a_secret_are_bound_too() {
    let base = serve(|builder| builder, |dpop| dpop).await;
    let args = [
        "--token-endpoint",
        &format!("{base}/auth/token"),
        "--issuer",
        &base,
        "--client-id",
        "svc",
        "--client-secret",
        CLIENT_SECRET,
        "--grant",
        "client_credentials",
    ]
    .map(str::to_owned)
    .to_vec();
    let (report, ok) = dpop_client(args).await;
    assert!(ok, "{report}");
    assert_eq!(report["token"]["token_type"], "DPoP");
    assert_eq!(
        claims_of(report["token"]["access_token"].as_str().unwrap())["cnf"]["jkt"],
        report["jkt"]
    );
    assert_eq!(report["refresh"]["skipped"], "no refresh_token issued");
}
