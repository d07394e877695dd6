//! The HTTP contract of the token service: every grant, every RFC 6749 §5.2 error, malformed bodies,
//! revocation, logout and the session endpoints.

mod support;

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use serde_json::json;
use tessera_issuer::jose::{Jws, JwsHeader, SigningKey};
use tessera_issuer::store::{FamilyId, RefreshStore as _, RevokeReason};
use tessera_issuer::{
    Algorithm, AuthEvent, JWT_BEARER_ASSERTION_TYPE, MemoryStore, SigningKeys, SqliteStore,
};

use support::*;

fn assert_no_store(answer: &Answer) {
    assert_eq!(
        answer.headers[CACHE_CONTROL],
        "no-store",
        "{}",
        answer.text()
    );
    assert_eq!(answer.headers[PRAGMA], "no-cache");
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    assert_eq!(answer.error(), code, "{}", answer.text());
    let description = answer.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!description.is_empty(), "{}", answer.text());
    assert!(
        description
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
        "RFC 6749 §5.2 allows no such character in error_description: {description:?}"
    );
    assert_no_store(answer);
}

#[tokio::test]
async fn password_login_issues_an_rfc9068_access_token_and_a_refresh_token() {
    let h = harness(MemoryStore::new()).await;
    let answer = h.login("alice", "wonderland").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_no_store(&answer);
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "profile email");
    assert_eq!(answer.refresh_token().len(), 43);

    let token = answer.access_token();
    let jws = Jws::parse(&token).unwrap();
    assert_eq!(jws.typ(), Some("at+jwt"));
    assert_eq!(jws.algorithm(), Algorithm::EdDsa);
    assert_eq!(jws.kid(), Some(h.issuer.keys().signer().kid()));
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "demo");
    assert_eq!(claims["scope"], "profile email");
    assert_eq!(claims["roles"], json!(["admin"]));
    assert_eq!(
        (claims["iat"].as_i64(), claims["nbf"].as_i64()),
        (Some(START), Some(START))
    );
    assert_eq!(claims["exp"].as_i64(), Some(START + 900));
    assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() >= 22));
    assert!(claims["sid"].is_string(), "the session (family) id");
    assert!(
        matches!(&h.events()[..], [AuthEvent::LoginSucceeded { user_id, .. }] if user_id == "alice")
    );
}

#[tokio::test]
async fn json_bodies_work_like_forms() {
    let h = harness(MemoryStore::new()).await;
    let request = Request::post("/auth/token")
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(
            json!({"grant_type":"password","client_id":"demo","username":"alice","password":"wonderland","scope":"email"})
                .to_string(),
        ))
        .unwrap();
    let answer = h.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["scope"], "email");
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_byte_identical_answers() {
    let h = harness(MemoryStore::new()).await;
    let wrong_password = h.login("alice", "nope").await;
    let unknown_user = h.login("mallory", "nope").await;
    assert_error(&wrong_password, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(wrong_password.status, unknown_user.status);
    assert_eq!(wrong_password.bytes, unknown_user.bytes);
    assert_eq!(wrong_password.headers, unknown_user.headers);
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after_for_any_username() {
    let h = harness(MemoryStore::new()).await;
    for username in ["alice", "nobody"] {
        // The default policy lets five attempts through, then locks the username out.
        for _ in 0..5 {
            assert_eq!(
                h.login(username, "wrong").await.status,
                StatusCode::BAD_REQUEST
            );
        }
        let throttled = h.login(username, "wonderland").await;
        assert_error(&throttled, StatusCode::TOO_MANY_REQUESTS, "slow_down");
        assert_eq!(throttled.headers[RETRY_AFTER], "1");
    }
    h.clock.advance_secs(1);
    assert_eq!(
        h.login("alice", "wonderland").await.status,
        StatusCode::OK,
        "the lockout ends"
    );
    assert_eq!(
        h.login("bob", "builder").await.status,
        StatusCode::OK,
        "other users were never affected"
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_retry_within_grace_gets_the_same_successor() {
    let h = harness(MemoryStore::new()).await;
    let first = h.login("alice", "wonderland").await.refresh_token();
    h.clock.advance_secs(60);
    let rotated = h.refresh(&first).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
    assert_no_store(&rotated);
    let second = rotated.refresh_token();
    assert_ne!(second, first);
    assert_eq!(
        claims_of(&rotated.access_token())["iat"].as_i64(),
        Some(START + 60)
    );

    h.clock.advance_secs(29);
    let retried = h.refresh(&first).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
    assert_eq!(
        retried.refresh_token(),
        second,
        "the same successor, so the family does not fork"
    );
    assert_ne!(
        retried.access_token(),
        rotated.access_token(),
        "a fresh access token"
    );

    let third = h.refresh(&second).await.refresh_token();
    assert_ne!(third, second);
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AuthEvent::RetryServed { generation: 1, .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AuthEvent::Refreshed { generation: 2, .. }))
    );
}

#[tokio::test]
async fn replay_after_grace_revokes_the_family() {
    let h = harness(MemoryStore::new()).await;
    let first = h.login("alice", "wonderland").await.refresh_token();
    let second = h.refresh(&first).await.refresh_token();
    h.clock.advance_secs(30);
    let replay = h.refresh(&first).await;
    assert_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        replay.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    let locked_out = h.refresh(&second).await;
    assert_error(&locked_out, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(h.events().iter().any(|event| matches!(
        event,
        AuthEvent::ReuseDetected {
            presented_generation: 0,
            current_generation: 1,
            ..
        }
    )));
}

#[tokio::test]
async fn refresh_can_narrow_the_scope_but_not_widen_it() {
    let h = harness(MemoryStore::new()).await;
    let login = h
        .post_form(
            "/auth/token",
            "grant_type=password&client_id=demo&username=alice&password=wonderland&scope=email",
        )
        .await;
    let token = login.refresh_token();
    let wider = h
        .post_form(
            "/auth/token",
            &format!(
                "grant_type=refresh_token&client_id=demo&refresh_token={token}&scope=email+profile"
            ),
        )
        .await;
    assert_error(&wider, StatusCode::BAD_REQUEST, "invalid_scope");
    // The refused request consumed nothing: the token still rotates normally.
    let narrowed = h
        .post_form(
            "/auth/token",
            &format!("grant_type=refresh_token&client_id=demo&refresh_token={token}&scope=email"),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text());
    assert_eq!(narrowed.json()["scope"], "email");
    assert!(
        h.events()
            .iter()
            .all(|event| !matches!(event, AuthEvent::ReuseDetected { .. }))
    );
}

#[tokio::test]
async fn refresh_without_client_id_works_for_public_clients_only_and_never_across_clients() {
    let h = harness(MemoryStore::new()).await;
    let token = h.login("alice", "wonderland").await.refresh_token();
    let foreign = h
        .post_form(
            "/auth/token",
            &format!("grant_type=refresh_token&client_id=other&refresh_token={token}"),
        )
        .await;
    assert_error(&foreign, StatusCode::BAD_REQUEST, "invalid_grant");
    let anonymous = h
        .post_form(
            "/auth/token",
            &format!("grant_type=refresh_token&refresh_token={token}"),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::OK, "{}", anonymous.text());
}

#[tokio::test]
async fn every_rfc6749_error_code_is_answered() {
    let h = harness(MemoryStore::new()).await;
    let cases: [(&str, StatusCode, &str); 12] = [
        ("", StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "grant_type=password&client_id=demo&username=alice",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type=password&grant_type=password",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type=authorization_code&code=x",
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "grant_type=password&client_id=ghost&username=a&password=b",
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "grant_type=password&username=alice&password=wonderland",
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "grant_type=password&client_id=svc&username=a&password=b",
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            "grant_type=client_credentials&client_id=demo",
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
        ),
        (
            "grant_type=password&client_id=demo&username=alice&password=wonderland&scope=admin",
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            "grant_type=password&client_id=demo&username=alice&password=wonderland&scope=bad%22scope",
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            "grant_type=refresh_token&client_id=demo&refresh_token=garbage",
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            "grant_type=refresh_token&client_id=demo&refresh_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
    ];
    for (form, status, code) in cases {
        let answer = h.post_form("/auth/token", form).await;
        assert_eq!(
            (answer.status, answer.error().as_str()),
            (status, code),
            "{form}: {}",
            answer.text()
        );
        assert_error(&answer, status, code);
        if status == StatusCode::UNAUTHORIZED {
            assert!(
                answer.headers[WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Basic realm=")
            );
        }
    }
}

#[tokio::test]
async fn malformed_bodies_are_invalid_requests_with_precise_descriptions() {
    let h = harness(MemoryStore::new()).await;
    let send = |content_type: Option<&'static str>, body: Vec<u8>| {
        let mut request = Request::post("/auth/token");
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        h.send(request.body(Body::from(body)).unwrap())
    };
    let form = Some("application/x-www-form-urlencoded");
    let cases: Vec<(Option<&'static str>, Vec<u8>, &str)> = vec![
        (form, b"grant_type=pass%ZZword".to_vec(), "percent-escape"),
        (form, b"grant_type=%FF%FE".to_vec(), "UTF-8"),
        (
            Some("application/json"),
            b"{\"grant_type\": 7}".to_vec(),
            "must be a string",
        ),
        (
            Some("application/json"),
            b"[\"password\"]".to_vec(),
            "JSON object",
        ),
        (
            Some("application/json"),
            b"{\"grant_type\":".to_vec(),
            "JSON object",
        ),
        (
            Some("text/plain"),
            b"grant_type=password".to_vec(),
            "Content-Type",
        ),
        (None, b"grant_type=password".to_vec(), "Content-Type"),
        (
            form,
            b"grant_type=password&client_id=demo&username=alice&password=".to_vec(),
            "`password` is missing",
        ),
    ];
    for (content_type, body, expected) in cases {
        let answer = send(content_type, body.clone()).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        let description = answer.json()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            description.contains(expected),
            "{:?}: {description}",
            String::from_utf8_lossy(&body)
        );
    }
    let oversized = send(form, vec![b'a'; 17 * 1024]).await;
    assert_error(&oversized, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");

    // A bearer header is not client authentication: ignored, so clients that attach it everywhere work.
    let bearer = h
        .send(
            Request::post("/auth/token")
                .header("authorization", "Bearer abc")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(
                    "grant_type=password&client_id=demo&username=alice&password=wonderland",
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(bearer.status, StatusCode::OK, "{}", bearer.text());
}

#[cfg(test)]
fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{}", secret.replace(' ', "+")))
    )
}

#[tokio::test]
async fn client_credentials_with_client_secret_basic_and_post() {
    let h = harness(MemoryStore::new()).await;
    let with_basic = |authorization: String| {
        h.send(
            Request::post("/auth/token")
                .header("authorization", authorization)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("grant_type=client_credentials"))
                .unwrap(),
        )
    };
    let answer = with_basic(basic("svc", CLIENT_SECRET)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert!(
        answer.json().get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );
    assert_eq!(answer.json()["scope"], "reports");
    let claims = claims_of(&answer.access_token());
    assert_eq!(
        (claims["sub"].as_str(), claims["client_id"].as_str()),
        (Some("client:svc"), Some("svc"))
    );

    let wrong = with_basic(basic("svc", "wrong")).await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(wrong.headers.contains_key(WWW_AUTHENTICATE));

    let post = h
        .post_form(
            "/auth/token",
            "grant_type=client_credentials&client_id=svc&client_secret=s3cret+with+spaces",
        )
        .await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.text());
    let both = h
        .send(
            Request::post("/auth/token")
                .header("authorization", basic("svc", CLIENT_SECRET))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(
                    "grant_type=client_credentials&client_id=svc&client_secret=x",
                ))
                .unwrap(),
        )
        .await;
    assert_error(&both, StatusCode::BAD_REQUEST, "invalid_request");
    let password_grant = with_basic(basic("svc", CLIENT_SECRET)).await;
    assert_eq!(password_grant.status, StatusCode::OK);
    let not_allowed = h
        .post_form("/auth/token", "grant_type=password&client_id=svc&client_secret=s3cret+with+spaces&username=alice&password=wonderland")
        .await;
    assert_error(&not_allowed, StatusCode::BAD_REQUEST, "unauthorized_client");
}

#[cfg(test)]
fn assertion<S>(h: &Harness<S>, audience: &str, jti: &str, lifetime: i64) -> String {
    let claims = json!({
        "iss": "jwt-svc", "sub": "jwt-svc", "aud": audience, "jti": jti,
        "iat": START, "exp": START + lifetime,
    });
    h.client_key
        .sign_jwt(JwsHeader::typed("JWT"), &claims)
        .unwrap()
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt_and_replay_protection() {
    let h = harness(MemoryStore::new()).await;
    let form = |assertion: String| {
        format!(
            "grant_type=client_credentials&client_assertion_type={JWT_BEARER_ASSERTION_TYPE}&client_assertion={assertion}"
        )
    };
    let token_endpoint = format!("{ISSUER}/auth/token");
    let first = assertion(&h, &token_endpoint, "a1", 60);
    let answer = h.post_form("/auth/token", &form(first.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(claims_of(&answer.access_token())["sub"], "client:jwt-svc");

    let replayed = h.post_form("/auth/token", &form(first)).await;
    assert_error(&replayed, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(replayed.text().contains("already used"));

    let issuer_audience = h
        .post_form("/auth/token", &form(assertion(&h, ISSUER, "a2", 60)))
        .await;
    assert_eq!(
        issuer_audience.status,
        StatusCode::OK,
        "the issuer is an accepted audience"
    );
    for (bad, why) in [
        (
            assertion(&h, "https://elsewhere", "a3", 60),
            "wrong audience",
        ),
        (assertion(&h, &token_endpoint, "a4", 0), "expired"),
        (
            assertion(&h, &token_endpoint, "a5", 3_600),
            "too long-lived",
        ),
    ] {
        let answer = h.post_form("/auth/token", &form(bad)).await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(!answer.text().is_empty(), "{why}");
    }
    let forged = {
        let other = SigningKey::generate(Algorithm::Es256).unwrap();
        let claims =
            json!({"iss":"jwt-svc","sub":"jwt-svc","aud":token_endpoint,"jti":"a6","exp":START+60});
        other.sign_jwt(JwsHeader::default(), &claims).unwrap()
    };
    assert_error(
        &h.post_form("/auth/token", &form(forged)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let wrong_type = h
        .post_form(
            "/auth/token",
            "grant_type=client_credentials&client_assertion_type=saml&client_assertion=x",
        )
        .await;
    assert_error(&wrong_type, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family() {
    let h = harness(MemoryStore::new()).await;
    let login = h.login("alice", "wonderland").await;
    let first = login.refresh_token();
    let second = h.refresh(&first).await.refresh_token();
    let revoke = h
        .post_form(
            "/auth/revoke",
            &format!("token={first}&token_type_hint=refresh_token&client_id=demo"),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.text());
    assert!(revoke.bytes.is_empty());
    assert_no_store(&revoke);
    assert_error(
        &h.refresh(&second).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        AuthEvent::Revoked {
            reason: RevokeReason::TokenRevoked,
            ..
        }
    )));

    let unknown = h
        .post_form("/auth/revoke", "token=not-a-token-at-all")
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::OK,
        "unknown tokens are fine (RFC 7009 §2.2)"
    );
    assert_error(
        &h.post_form("/auth/revoke", "token_type_hint=refresh_token")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let foreign = h
        .post_form("/auth/revoke", &format!("token={first}&client_id=other"))
        .await;
    assert_error(&foreign, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn revoking_an_access_token_denies_it_until_it_expires() {
    let h = harness(MemoryStore::new()).await;
    let access = h.login("alice", "wonderland").await.access_token();
    assert_eq!(h.sessions(&access).await.status, StatusCode::OK);
    let revoke = h
        .post_form(
            "/auth/revoke",
            &format!("token={access}&token_type_hint=access_token"),
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.text());
    let denied = h.sessions(&access).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(
        denied.headers[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert!(
        h.events().iter().any(
            |e| matches!(e, AuthEvent::AccessTokenRevoked { subject, .. } if subject == "alice")
        )
    );
    // Another access token of the same session is unaffected.
    let other = h.login("alice", "wonderland").await.access_token();
    assert_eq!(h.sessions(&other).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_ends_the_session_of_the_refresh_token() {
    let h = harness(MemoryStore::new()).await;
    let token = h.login("alice", "wonderland").await.refresh_token();
    let logout = h
        .post_form(
            "/auth/logout",
            &format!("refresh_token={token}&client_id=demo"),
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{}", logout.text());
    assert_error(
        &h.refresh(&token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        AuthEvent::Revoked {
            reason: RevokeReason::Logout,
            ..
        }
    )));
    assert_error(
        &h.post_form("/auth/logout", "client_id=demo").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

#[tokio::test]
async fn sessions_are_listed_ended_one_by_one_or_all_at_once() {
    let h = harness(SqliteStore::in_memory().await.unwrap()).await;
    let phone = h.login("alice", "wonderland").await;
    h.clock.advance_secs(5);
    let laptop = h.login("alice", "wonderland").await;
    h.login("bob", "builder").await;
    let access = laptop.access_token();

    let list = h.sessions(&access).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text());
    assert_no_store(&list);
    let sessions = list.json();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2, "only alice's sessions");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(sessions[1]["current"], true, "the laptop logged in last");
    assert_eq!(sessions[0]["client_id"], "demo");
    assert_eq!(sessions[0]["created_at"], START);

    let phone_id = sessions[0]["id"].as_str().unwrap().to_owned();
    let ended = h
        .bearer("DELETE", &format!("/auth/sessions/{phone_id}"), &access)
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{}", ended.text());
    assert_error(
        &h.refresh(&phone.refresh_token()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let again = h
        .bearer("DELETE", &format!("/auth/sessions/{phone_id}"), &access)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bobs = h
        .issuer
        .store()
        .live_families("bob", START + 5)
        .await
        .unwrap()[0]
        .id
        .to_string();
    let not_mine = h
        .bearer("DELETE", &format!("/auth/sessions/{bobs}"), &access)
        .await;
    assert_eq!(
        not_mine.status,
        StatusCode::NOT_FOUND,
        "another user's session is not found, not forbidden"
    );

    let unauthenticated = h
        .send(Request::get("/auth/sessions").body(Body::empty()).unwrap())
        .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    h.clock.advance_secs(1);
    let all = h.bearer("POST", "/auth/logout-all", &access).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    assert_eq!(all.json()["sessions_ended"], 1);
    assert_error(
        &h.refresh(&laptop.refresh_token()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(h.sessions(&access).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.issuer
            .store()
            .live_families("bob", START + 6)
            .await
            .unwrap()
            .len(),
        1,
        "bob is untouched"
    );
}

#[tokio::test]
async fn revoking_a_user_ends_their_sessions_and_access_tokens() {
    let h = harness(MemoryStore::new()).await;
    let login = h.login("alice", "wonderland").await;
    h.clock.advance_secs(1);
    assert_eq!(h.issuer.revoke_user("alice").await.unwrap(), 1);
    assert_error(
        &h.refresh(&login.refresh_token()).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        h.sessions(&login.access_token()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let fresh = h.login("alice", "wonderland").await;
    assert_eq!(
        h.sessions(&fresh.access_token()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_session_cap_evicts_the_oldest_with_an_event() {
    let h = harness_with(MemoryStore::new(), |builder| builder.family_cap(2)).await;
    let oldest = h.login("alice", "wonderland").await.refresh_token();
    h.clock.advance_secs(1);
    h.login("alice", "wonderland").await;
    h.clock.advance_secs(1);
    h.login("alice", "wonderland").await;
    assert_error(
        &h.refresh(&oldest).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        h.events()
            .iter()
            .filter(|e| matches!(e, AuthEvent::EvictedByCap { .. }))
            .count(),
        1
    );
}

#[tokio::test]
async fn expired_families_are_refused_and_purged() {
    let h = harness(MemoryStore::new()).await;
    let token = h.login("alice", "wonderland").await.refresh_token();
    h.clock.advance_secs(14 * 86_400);
    assert!(
        h.refresh(&token).await.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let report = h.issuer.purge_expired().await.unwrap();
    assert_eq!((report.tokens, report.families), (1, 1));
}

#[tokio::test]
async fn the_jwks_lists_the_public_keys() {
    let h = harness(MemoryStore::new()).await;
    let answer = h
        .send(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let jwks = answer.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], h.issuer.keys().signer().kid());
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none(), "never the private part");
}

#[tokio::test(start_paused = true)]
async fn the_background_purge_runs_on_its_interval() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.purge(std::time::Duration::from_secs(60), 1)
    })
    .await;
    let family = |answer: &Answer| {
        FamilyId::from(
            claims_of(&answer.access_token())["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    let alice = family(&h.login("alice", "wonderland").await);
    h.clock.advance_secs(14 * 86_400);
    let purge = h.issuer.spawn_purge_task();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        h.issuer
            .store()
            .find_family(&alice)
            .await
            .unwrap()
            .is_none(),
        "purged on the first tick"
    );

    let bob = family(&h.login("bob", "builder").await);
    h.clock.advance_secs(14 * 86_400);
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert!(
        h.issuer.store().find_family(&bob).await.unwrap().is_some(),
        "kept until the next tick"
    );
    tokio::time::sleep(std::time::Duration::from_secs(31)).await;
    assert!(
        h.issuer.store().find_family(&bob).await.unwrap().is_none(),
        "purged on the next tick"
    );
    purge.abort();
}

#[tokio::test]
async fn every_signing_algorithm_works_end_to_end_through_the_auth_layer() {
    for algorithm in [
        Algorithm::Hs256,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Rs256,
        Algorithm::Ps256,
    ] {
        let keys = SigningKeys::generate(algorithm).unwrap();
        let h = harness_with(MemoryStore::new(), |builder| builder.keys(keys)).await;
        let login = h.login("alice", "wonderland").await;
        let token = login.access_token();
        let jws = Jws::parse(&token).unwrap();
        assert_eq!(jws.algorithm(), algorithm);
        let sessions = h.sessions(&login.access_token()).await;
        assert_eq!(
            sessions.status,
            StatusCode::OK,
            "{algorithm}: {}",
            sessions.text()
        );
        let jwks = h
            .send(
                Request::get("/.well-known/jwks.json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .json();
        let published = jwks["keys"].as_array().unwrap().len();
        assert_eq!(
            published,
            usize::from(algorithm != Algorithm::Hs256),
            "{algorithm}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn closing_the_issuer_closes_its_store_and_ends_the_purge_task() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.purge(std::time::Duration::from_secs(60), 100)
    })
    .await;
    let token = h.login("alice", "wonderland").await.refresh_token();
    let purge = h.issuer.spawn_purge_task();
    h.issuer.close().await;

    let refused = h.refresh(&token).await;
    assert_error(&refused, StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    assert!(
        !refused.text().contains("closed"),
        "the cause is logged, not sent: {}",
        refused.text()
    );
    tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    assert!(
        purge.is_finished(),
        "the purge task ends by itself once it finds the store closed"
    );
}
