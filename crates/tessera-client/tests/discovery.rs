//! RFC 8414 discovery against local metadata documents: which document is read, the exact-issuer rule,
//! and redirects (an impostor's document could name the right issuer and its own token endpoint).

#![allow(clippy::unwrap_used)]

mod common;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{TestServer, client, log_in_expired};
use tessera_client::{
    AuthMiddleware, AuthorizationServerMetadata, DiscoveryError, RefreshTokenGrant,
};

/// Serves `app` on loopback; its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn document(issuer: &str, token_endpoint: &str) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "issuer": issuer, "token_endpoint": token_endpoint,
        "grant_types_supported": ["refresh_token", "client_credentials"],
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
    }))
}

#[tokio::test]
async fn the_rfc_8414_document_is_preferred_and_its_issuer_must_match() {
    let server = TestServer::start().await;
    let token_url = server.token_url().to_string();
    // The issuer has a path: RFC 8414 inserts the well-known suffix before it, OpenID appends it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/tenant");
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server/tenant",
            get({
                let (issuer, token_url) = (issuer.clone(), token_url.clone());
                move || async move { document(&issuer, &token_url) }
            }),
        )
        .route(
            "/tenant/.well-known/openid-configuration",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "never asked").into_response() }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let http = reqwest::Client::new();
    let metadata = AuthorizationServerMetadata::discover(&http, &issuer)
        .await
        .unwrap();
    assert_eq!(metadata.token_endpoint.as_str(), token_url);
    assert_eq!(
        metadata.dpop_signing_alg_values_supported,
        ["EdDSA", "ES256"]
    );

    // The discovered grant refreshes against the endpoint the document names.
    let grant = RefreshTokenGrant::discover(http.clone(), &issuer)
        .await
        .unwrap();
    let auth = AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .build()
        .unwrap();
    log_in_expired(&server, &auth).await;
    assert_eq!(
        server.get(&client(&auth), "/data").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.issuer.calls(), 1);

    let error = AuthorizationServerMetadata::discover(&http, &format!("{issuer}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::IssuerMismatch { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_redirected_metadata_document_is_refused() {
    // The impostor names the real issuer, and its own token endpoint.
    let impostor = serve(Router::new()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let impostor_document = serve(Router::new().route(
        "/metadata",
        get({
            let (issuer, impostor) = (issuer.clone(), impostor.clone());
            move || async move { document(&issuer, &format!("{impostor}/token")) }
        }),
    ))
    .await;
    let app = Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            let target = format!("{impostor_document}/metadata");
            async move { (StatusCode::FOUND, [(header::LOCATION, target)]).into_response() }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let error = AuthorizationServerMetadata::discover(&reqwest::Client::new(), &issuer)
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::Fetch { .. }), "{error}");
    assert!(error.to_string().contains("redirect"), "{error}");
}

#[tokio::test]
async fn an_issuer_serving_no_metadata_says_so() {
    let issuer = serve(Router::new()).await;
    let error = AuthorizationServerMetadata::discover(&reqwest::Client::new(), &issuer)
        .await
        .unwrap_err();
    assert!(matches!(error, DiscoveryError::NotFound { .. }), "{error}");
    let error =
        AuthorizationServerMetadata::discover(&reqwest::Client::new(), "http://auth.example")
            .await
            .unwrap_err();
    assert!(
        matches!(error, DiscoveryError::InvalidIssuer { .. }),
        "{error}"
    );
}
