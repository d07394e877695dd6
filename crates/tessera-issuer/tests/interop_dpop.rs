//! Interop: the token endpoint driven by a DPoP client nobody here wrote, `oauth4webapi` (node), through
//! `tests/interop/dpop-client.mjs` over a real listener: a token request with a proof (`token_type: DPoP`,
//! `cnf.jkt` = the client's key), a refresh with the same key, and the `use_dpop_nonce` retry. The API half
//! (a resource request with the bound token) needs the resource server's DPoP support and is not run here.
//!
//! Node and the npm packages come from `scripts/test.sh`; without them these tests fail, saying so.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tessera_issuer::{Algorithm, ClientRegistration, Issuer, MemoryStore};
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

/// A token service listening on a loopback port, its issuer the URL it is reached at.
#[cfg(test)]
async fn serve(
    configure: fn(tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder,
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
    let issuer = configure(builder).build(MemoryStore::new()).unwrap();
    let auth = issuer.auth_layer().unwrap();
    let app = Router::new()
        .nest("/auth", issuer.router(&auth))
        .merge(issuer.well_known_router());
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
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_gets_dpop_bound_tokens_and_refreshes_them_with_its_key() {
    let base = serve(|builder| builder).await;
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_retries_with_the_servers_nonce() {
    let base = serve(|builder| builder.dpop_nonces(Duration::from_secs(300))).await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_client_credentials_with_a_secret_are_bound_too() {
    let base = serve(|builder| builder).await;
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
