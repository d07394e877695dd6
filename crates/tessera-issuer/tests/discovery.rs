//! RFC 8414 metadata (public, at the issuer's well-known URL, with every required member) and RFC 7662
//! introspection (client-authenticated; active, expired, revoked, foreign and refresh tokens).

mod support;

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use tessera_issuer::{Algorithm, ClientRegistration, Issuer, MemoryStore, SigningKeys};

use support::*;

/// The metadata document at `path`, checked for what RFC 8414 requires of every answer.
#[cfg(test)]
async fn metadata_at<S>(h: &Harness<S>, path: &str) -> Value {
    let answer = h
        .send(Request::get(path).body(Body::empty()).unwrap())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text());
    assert_eq!(answer.headers["content-type"], "application/json");
    answer.json()
}

/// The JSON body `router` answers `request` with.
#[cfg(test)]
async fn json_from(router: axum::Router, request: Request<Body>) -> Value {
    let answer = tower::ServiceExt::oneshot(router, request).await.unwrap();
    let body = axum::body::to_bytes(answer.into_body(), 1 << 16)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[cfg(test)]
fn assert_url(value: &Value, member: &str) {
    let url = value[member]
        .as_str()
        .unwrap_or_else(|| panic!("{member} is missing: {value}"));
    assert!(
        url.starts_with("https://") && !url.contains(['?', '#']),
        "{member}: {url}"
    );
}

#[tokio::test]
async fn the_metadata_is_public_and_has_every_member_rfc8414_requires() {
    let h = harness(MemoryStore::new()).await;
    let metadata = metadata_at(&h, "/.well-known/oauth-authorization-server").await;
    // RFC 8414 §2 and §3.3: `issuer` is exactly the identifier the document was found by.
    assert_eq!(metadata["issuer"], ISSUER);
    for member in [
        "issuer",
        "token_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        assert_url(&metadata, member);
    }
    assert_eq!(metadata["token_endpoint"], TOKEN_ENDPOINT);
    assert_eq!(
        metadata["jwks_uri"],
        "https://auth.test/.well-known/jwks.json"
    );
    assert_eq!(
        metadata["revocation_endpoint"],
        "https://auth.test/auth/revoke"
    );
    assert_eq!(
        metadata["introspection_endpoint"],
        "https://auth.test/auth/introspect"
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["password", "refresh_token", "client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!([
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    // Required once private_key_jwt is listed, and never `none` (RFC 8414 §2).
    assert_eq!(
        metadata["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(
        metadata["introspection_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ]),
        "introspection needs an authenticated client"
    );
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256", "ES384", "PS256", "RS256"])
    );
    assert_eq!(
        metadata["scopes_supported"],
        json!(["email", "profile", "reports"])
    );
    assert!(
        metadata.get("authorization_endpoint").is_none()
            && metadata.get("response_types_supported").is_none(),
        "no authorization endpoint, so neither member (RFC 8414 §3.2, erratum 7793)"
    );

    let login = h.login("alice", "wonderland").await;
    assert_eq!(
        claims_of(&login.access_token())["iss"],
        metadata["issuer"],
        "RFC 9068: the tokens' iss is the metadata's issuer"
    );
    let jwks = h
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(jwks.status, StatusCode::OK);
}

#[tokio::test]
async fn an_issuer_with_a_path_serves_its_metadata_after_the_well_known_prefix() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder
            .issuer("https://auth.test/tenant-a")
            .public_url("https://edge.test")
            .router_path("/oauth")
    })
    .await;
    let metadata = metadata_at(&h, "/.well-known/oauth-authorization-server/tenant-a").await;
    assert_eq!(metadata["issuer"], "https://auth.test/tenant-a");
    assert_eq!(metadata["token_endpoint"], "https://edge.test/oauth/token");
    assert_eq!(
        metadata["jwks_uri"],
        "https://edge.test/.well-known/jwks.json"
    );
    let missing = h
        .send(
            Request::get("/.well-known/oauth-authorization-server")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_metadata_follows_the_configured_dpop_algorithms_and_clients() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.dpop_algorithms([Algorithm::Es256])
    })
    .await;
    let metadata = metadata_at(&h, "/.well-known/oauth-authorization-server").await;
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256"])
    );

    let only_public = Issuer::builder()
        .issuer("http://127.0.0.1:8080")
        .audience("api")
        .password_hashing(cheap_hashing())
        .public_client("spa")
        .keys(SigningKeys::generate(Algorithm::EdDsa).unwrap())
        .build(MemoryStore::new())
        .unwrap();
    let metadata = json_from(
        only_public.well_known_router(),
        Request::get("/.well-known/oauth-authorization-server")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(metadata["issuer"], "http://127.0.0.1:8080");
    assert_eq!(
        metadata["grant_types_supported"],
        json!(["password", "refresh_token"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["none"])
    );
    for absent in [
        "token_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_methods_supported",
        "scopes_supported",
    ] {
        assert!(metadata.get(absent).is_none(), "{absent}: {metadata}");
    }
}

/// A harness with the confidential client `api`, allowed to introspect any token (secret
/// [`CLIENT_SECRET`]).
#[cfg(test)]
fn with_api(builder: tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder {
    builder.client(
        ClientRegistration::with_secret_hash("api", cheap_hashing().hash(CLIENT_SECRET).unwrap())
            .unwrap()
            .grant_types([])
            .allow_introspection(),
    )
}

#[cfg(test)]
fn basic(id: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{}", CLIENT_SECRET.replace(' ', "+")))
    )
}

/// Introspects `token` as the confidential client `client`.
#[cfg(test)]
async fn introspect<S>(h: &Harness<S>, client: &str, token: &str) -> Answer {
    let answer = h
        .post_form_with(
            "/auth/introspect",
            &format!("token={token}&token_type_hint=access_token"),
            &[("authorization", &basic(client))],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.headers[CACHE_CONTROL], "no-store");
    answer
}

#[tokio::test]
async fn an_active_access_token_is_described() {
    let h = harness_with(MemoryStore::new(), with_api).await;
    let token = h.login("alice", "wonderland").await.access_token();
    let answer = introspect(&h, "api", &token).await.json();
    let claims = claims_of(&token);
    assert_eq!(
        answer,
        json!({
            "active": true,
            "token_type": "Bearer",
            "scope": "profile email",
            "client_id": "demo",
            "sub": "alice",
            "exp": START + 900,
            "iat": START,
            "nbf": START,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": claims["jti"],
        })
    );
}

#[tokio::test]
async fn a_dpop_bound_token_is_introspected_with_its_key() {
    let h = harness_with(MemoryStore::new(), with_api).await;
    let key = DpopKey::new(Algorithm::Es256);
    let token = h
        .post_form_with(
            "/auth/token",
            "grant_type=password&client_id=demo&username=alice&password=wonderland",
            &[("DPoP", &key.proof(START, None))],
        )
        .await
        .access_token();
    let answer = introspect(&h, "api", &token).await.json();
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "DPoP");
    assert_eq!(answer["cnf"], json!({"jkt": key.jkt()}));
}

#[tokio::test]
async fn expired_revoked_foreign_refresh_and_garbage_tokens_are_inactive() {
    let h = harness_with(MemoryStore::new(), with_api).await;
    let inactive = json!({"active": false});
    let login = h.login("alice", "wonderland").await;

    let stranger = Issuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .password_hashing(cheap_hashing())
        .user("alice", "wonderland", ["admin"])
        .public_client("demo")
        .build(MemoryStore::new())
        .unwrap();
    let auth = stranger.auth_layer().unwrap();
    let foreign_app = axum::Router::new().nest("/auth", stranger.router(&auth));
    let foreign = json_from(
        foreign_app,
        Request::post("/auth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(
                "grant_type=password&client_id=demo&username=alice&password=wonderland",
            ))
            .unwrap(),
    )
    .await;
    let foreign = foreign["access_token"].as_str().unwrap().to_owned();

    for (token, why) in [
        (foreign.as_str(), "signed by another key"),
        (login.refresh_token().as_str(), "a refresh token"),
        ("garbage", "garbage"),
    ] {
        assert_eq!(introspect(&h, "api", token).await.json(), inactive, "{why}");
    }

    let revoked = h.login("alice", "wonderland").await.access_token();
    let revoke = h
        .post_form("/auth/revoke", &format!("token={revoked}"))
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    assert_eq!(
        introspect(&h, "api", &revoked).await.json(),
        inactive,
        "revoked through RFC 7009"
    );

    let bob = h.login("bob", "builder").await.access_token();
    h.clock.advance_secs(1);
    let all = h.bearer("POST", "/auth/logout-all", &bob).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    assert_eq!(
        introspect(&h, "api", &bob).await.json(),
        inactive,
        "revoked with every session of its user"
    );

    assert_eq!(
        introspect(&h, "api", &login.access_token()).await.json()["active"],
        true
    );
    h.clock.advance_secs(899);
    assert_eq!(
        introspect(&h, "api", &login.access_token()).await.json(),
        inactive,
        "expired at exp, no leeway"
    );
}

#[tokio::test]
async fn every_denial_the_auth_layer_honours_makes_a_token_inactive() {
    let h = harness_with(MemoryStore::new(), with_api).await;
    let inactive = json!({"active": false});
    // Introspection and the auth layer in front of the session endpoints agree on every token.
    let agree = async |token: &str, active: bool, why: &str| {
        assert_eq!(
            introspect(&h, "api", token).await.json()["active"],
            active,
            "{why}"
        );
        let sessions = h.sessions(token).await.status;
        assert_eq!(sessions == StatusCode::OK, active, "{why}: {sessions}");
    };

    let by_jti = h.login("alice", "wonderland").await.access_token();
    agree(&by_jti, true, "before its revocation").await;
    let revoke = h
        .post_form("/auth/revoke", &format!("token={by_jti}"))
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    agree(&by_jti, false, "denied by jti (RFC 7009)").await;

    let logged_out = h.login("alice", "wonderland").await;
    let logout = h
        .post_form(
            "/auth/logout",
            &format!(
                "refresh_token={}&client_id=demo",
                logged_out.refresh_token()
            ),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text());
    agree(&logged_out.access_token(), false, "its session ended (sid)").await;

    let reused = h.login("alice", "wonderland").await;
    let first = reused.refresh_token();
    h.refresh(&first).await.refresh_token();
    h.clock.advance_secs(31);
    assert_eq!(h.refresh(&first).await.error(), "invalid_grant");
    agree(
        &reused.access_token(),
        false,
        "its family revoked for reuse (sid)",
    )
    .await;

    let ended = h.login("alice", "wonderland").await;
    let current = h.login("alice", "wonderland").await.access_token();
    let id = claims_of(&ended.access_token())["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let end = h
        .bearer("DELETE", &format!("/auth/sessions/{id}"), &current)
        .await;
    assert_eq!(end.status, StatusCode::NO_CONTENT, "{}", end.text());
    agree(
        &ended.access_token(),
        false,
        "its session ended by id (sid)",
    )
    .await;
    agree(&current, true, "another session of the user").await;

    h.clock.advance_secs(1);
    let all = h.bearer("POST", "/auth/logout-all", &current).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    agree(&current, false, "every session of its user (sub and iat)").await;
    assert_eq!(introspect(&h, "api", &current).await.json(), inactive);
}

#[tokio::test]
async fn a_client_learns_about_its_own_tokens_only_unless_allowed_more() {
    let h = harness_with(MemoryStore::new(), with_api).await;
    let secret = CLIENT_SECRET.replace(' ', "+");
    let own = h
        .post_form(
            "/auth/token",
            &format!("grant_type=client_credentials&client_id=svc&client_secret={secret}"),
        )
        .await
        .access_token();
    let alices = h.login("alice", "wonderland").await.access_token();
    let own_answer = introspect(&h, "svc", &own).await.json();
    assert_eq!(own_answer["active"], true);
    assert_eq!(own_answer["sub"], "client:svc");
    assert_eq!(
        introspect(&h, "svc", &alices).await.json(),
        json!({"active": false}),
        "another client's token"
    );
    assert_eq!(introspect(&h, "api", &own).await.json()["active"], true);
}

#[tokio::test]
async fn introspection_needs_an_authenticated_confidential_client() {
    let h = harness_with(MemoryStore::new(), with_api).await;
    let token = h.login("alice", "wonderland").await.access_token();
    for (form, headers, why) in [
        (format!("token={token}"), vec![], "no client"),
        (
            format!("token={token}&client_id=demo"),
            vec![],
            "a public client",
        ),
        (
            format!("token={token}"),
            vec![(
                "authorization",
                format!("Basic {}", STANDARD.encode("api:wrong")),
            )],
            "a wrong secret",
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let answer = h.post_form_with("/auth/introspect", &form, &headers).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(answer.error(), "invalid_client", "{why}");
        assert!(answer.headers.contains_key(WWW_AUTHENTICATE), "{why}");
        assert!(!answer.text().contains("active"), "{why}");
    }
    let missing = h
        .post_form_with("/auth/introspect", "", &[("authorization", &basic("api"))])
        .await;
    assert_eq!(missing.error(), "invalid_request");
}
