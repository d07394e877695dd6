//! Discovery both ways: RFC 9728 metadata this API publishes (and names in its challenges), and RFC 8414 /
//! OpenID Connect metadata of an issuer, from which `RemoteJwks::discover` finds the keys.
#![cfg(feature = "remote-jwks")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use common::*;
use http::StatusCode;
use serde_json::{Value, json};
use tessera_server::{
    Algorithm, BuildError, DiscoveryError, Dpop, JwtAuthLayer, RemoteJwks, ResourceMetadata,
};

const METADATA_URL: &str = "https://api.example/.well-known/oauth-protected-resource";

fn layer_with(metadata: ResourceMetadata, dpop: Option<Dpop>) -> JwtAuthLayer {
    let builder = builder(&TestClock::at_unix(NOW)).resource_metadata(metadata);
    match dpop {
        Some(dpop) => builder.dpop(dpop),
        None => builder,
    }
    .build()
    .unwrap()
}

fn app(layer: &JwtAuthLayer) -> Router {
    routes()
        .layer(layer.clone())
        .merge(layer.resource_metadata_router())
}

#[tokio::test]
async fn challenges_name_the_metadata_and_the_document_is_public() {
    let layer = layer_with(
        ResourceMetadata::new("https://api.example")
            .scopes_supported(["read", "write"])
            .resource_name("Example API"),
        Some(Dpop::new("https://api.example").proof_algorithms([Algorithm::Es256])),
    );
    let app = app(&layer);
    let answer = send(&app, get_plain("/me")).await;
    assert_eq!(
        answer.challenge(),
        format!(
            r#"Bearer realm="api", resource_metadata="{METADATA_URL}", DPoP realm="api", algs="ES256", resource_metadata="{METADATA_URL}""#
        )
    );
    let answer = send(&app, get_with_token("/me", "a.b.c")).await;
    assert!(
        answer
            .challenge()
            .starts_with("Bearer error=\"invalid_token\"")
            && answer
                .challenge()
                .ends_with(&format!(r#"resource_metadata="{METADATA_URL}""#)),
        "{}",
        answer.challenge()
    );

    let answer = send(&app, get_plain("/.well-known/oauth-protected-resource")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    // RFC 9728 §2: `resource` is required; the rest says what this layer accepts.
    assert_eq!(
        answer.json(),
        json!({
            "resource": "https://api.example",
            "authorization_servers": [ISSUER],
            "scopes_supported": ["read", "write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Example API",
            "dpop_signing_alg_values_supported": ["ES256"],
        })
    );
}

#[tokio::test]
async fn a_resource_with_a_path_is_served_below_the_well_known_prefix() {
    let layer = layer_with(
        ResourceMetadata::new("https://api.example/v1/")
            .authorization_server("https://login.example")
            .documentation("https://docs.example/api"),
        Some(Dpop::new("https://api.example/v1").required()),
    );
    let app = app(&layer);
    let answer = send(&app, get_plain("/.well-known/oauth-protected-resource/v1")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.json();
    assert_eq!(document["resource"], "https://api.example/v1/");
    assert_eq!(
        document["authorization_servers"],
        json!(["https://login.example"])
    );
    assert_eq!(
        document["resource_documentation"],
        "https://docs.example/api"
    );
    assert_eq!(document["dpop_bound_access_tokens_required"], true);
    let answer = send(&app, get_plain("/me")).await;
    assert!(
        answer.challenge().ends_with(
            r#"resource_metadata="https://api.example/.well-known/oauth-protected-resource/v1""#
        ),
        "{}",
        answer.challenge()
    );
    for bad in [
        "api.example",
        "https://api.example/?x",
        "https://user@api.example",
    ] {
        let error = builder(&TestClock::at_unix(NOW))
            .resource_metadata(ResourceMetadata::new(bad))
            .build()
            .unwrap_err();
        assert!(matches!(error, BuildError::InvalidResource(_)), "{bad}");
    }
    // Without metadata, the router serves nothing.
    let plain = builder(&TestClock::at_unix(NOW)).build().unwrap();
    let answer = send(
        &plain.resource_metadata_router(),
        get_plain("/.well-known/oauth-protected-resource"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

/// An issuer on 127.0.0.1:0 publishing `documents` by path (`{base}` in them is its base URL); a string
/// document is a redirect to it. Its base URL.
async fn serve_issuer(documents: Vec<(&'static str, Value)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let documents: Vec<(String, Value)> = documents
        .into_iter()
        .map(|(path, document)| {
            let text = document.to_string().replace("{base}", &base);
            (path.to_owned(), serde_json::from_str(&text).unwrap())
        })
        .collect();
    let state = Arc::new(documents);
    let router = Router::new()
        .fallback(
            |State(documents): State<Arc<Vec<(String, Value)>>>, uri: http::Uri| async move {
                match documents.iter().find(|(path, _)| *path == uri.path()) {
                    Some((_, Value::String(location))) => {
                        (StatusCode::FOUND, [("location", location.clone())]).into_response()
                    }
                    Some((_, document)) => {
                        ([("content-type", "application/json")], document.to_string())
                            .into_response()
                    }
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            },
        )
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn jwks() -> Value {
    json!({"keys": [Signer::es256().jwk("k1")]})
}

async fn assert_discovered_keys_verify(issuer: &str, remote: RemoteJwks) {
    remote.refresh().await.unwrap();
    let auth = JwtAuthLayer::builder()
        .remote_jwks(remote)
        .issuer(issuer)
        .audience(AUDIENCE)
        .clock(TestClock::at_unix(NOW))
        .build()
        .unwrap();
    let token = Signer::es256().sign(Some("k1"), &claims_with(json!({ "iss": issuer })));
    assert_eq!(auth.verify(&token).await.unwrap().key_id(), Some("k1"));
}

#[tokio::test]
async fn rfc_8414_metadata_leads_to_the_keys() {
    let base = serve_issuer(vec![
        (
            "/.well-known/oauth-authorization-server/tenant",
            json!({"issuer": "{base}/tenant", "jwks_uri": "{base}/tenant/jwks"}),
        ),
        ("/tenant/jwks", jwks()),
    ])
    .await;
    let issuer = format!("{base}/tenant");
    let remote = RemoteJwks::discover(&issuer).await.unwrap();
    assert_discovered_keys_verify(&issuer, remote).await;
}

#[tokio::test]
async fn openid_connect_discovery_is_the_fallback() {
    let base = serve_issuer(vec![
        (
            "/realms/acme/.well-known/openid-configuration",
            json!({"issuer": "{base}/realms/acme", "jwks_uri": "{base}/certs"}),
        ),
        ("/certs", jwks()),
    ])
    .await;
    let issuer = format!("{base}/realms/acme");
    let remote = RemoteJwks::discover(&issuer).await.unwrap();
    assert_discovered_keys_verify(&issuer, remote).await;
}

#[tokio::test]
async fn metadata_of_another_issuer_or_behind_a_redirect_is_refused() {
    let base = serve_issuer(vec![
        (
            "/.well-known/oauth-authorization-server",
            json!({"issuer": "https://evil.example", "jwks_uri": "{base}/jwks"}),
        ),
        (
            "/.well-known/oauth-authorization-server/moved",
            json!("https://evil.example/.well-known/oauth-authorization-server"),
        ),
        (
            "/.well-known/oauth-authorization-server/nokeys",
            json!({"issuer": "{base}/nokeys"}),
        ),
    ])
    .await;
    let error = RemoteJwks::discover(&base).await.unwrap_err();
    assert!(
        matches!(&error, DiscoveryError::IssuerMismatch { found, .. } if found == "https://evil.example"),
        "{error}"
    );
    // RFC 8414 §3.3 compares exactly: a trailing slash is another issuer.
    let error = RemoteJwks::discover(&format!("{base}/")).await.unwrap_err();
    assert!(
        matches!(error, DiscoveryError::IssuerMismatch { .. }),
        "{error}"
    );
    let error = RemoteJwks::discover(&format!("{base}/moved"))
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::Redirect { .. }), "{error}");
    let error = RemoteJwks::discover(&format!("{base}/nokeys"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::NotMetadata { .. }),
        "{error}"
    );
    let error = RemoteJwks::discover(&format!("{base}/nothing"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DiscoveryError::Status { url, status } if *status == StatusCode::NOT_FOUND && url.ends_with("/nothing/.well-known/openid-configuration")),
        "{error}"
    );
    for bad in [
        "http://auth.example",
        "not a url",
        "https://auth.example/?x=1",
    ] {
        let error = RemoteJwks::discover(bad).await.unwrap_err();
        assert!(
            matches!(error, DiscoveryError::InvalidIssuer(_)),
            "{bad}: {error}"
        );
    }
}
