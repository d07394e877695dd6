//! DPoP (RFC 9449) at the token endpoint: bound tokens, every rule a proof is checked against, refresh
//! tokens of public clients bound to the key, server nonces and the per-client policy.

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use http::header::WWW_AUTHENTICATE;
use serde_json::json;
use tessera_issuer::jose::SigningKey;
use tessera_issuer::store::RefreshStore as _;
use tessera_issuer::{Algorithm, AuthEvent, ClientRegistration, MemoryStore, SqliteStore};

use support::*;

const LOGIN: &str = "grant_type=password&client_id=demo&username=alice&password=wonderland";

#[cfg(test)]
fn refresh_form(token: &str) -> String {
    format!("grant_type=refresh_token&client_id=demo&refresh_token={token}")
}

#[cfg(test)]
async fn with_proof<S>(h: &Harness<S>, form: &str, proof: &str) -> Answer {
    h.post_form_with("/auth/token", form, &[("DPoP", proof)])
        .await
}

#[cfg(test)]
fn assert_invalid_proof(answer: &Answer, why: &str) {
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "{why}: {}",
        answer.text()
    );
    assert_eq!(answer.error(), "invalid_dpop_proof", "{why}");
}

#[tokio::test]
async fn a_login_with_a_proof_gets_a_dpop_token_bound_to_the_key_and_refreshes_with_it() {
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Ps256] {
        let h = harness(MemoryStore::new()).await;
        let key = DpopKey::new(algorithm);
        let login = with_proof(&h, LOGIN, &key.proof(START, None)).await;
        assert_eq!(
            login.status,
            StatusCode::OK,
            "{algorithm}: {}",
            login.text()
        );
        assert_eq!(login.json()["token_type"], "DPoP");
        let claims = claims_of(&login.access_token());
        assert_eq!(claims["cnf"], json!({"jkt": key.jkt()}), "{algorithm}");

        let family = h
            .issuer
            .store()
            .live_families("alice", START)
            .await
            .unwrap();
        assert_eq!(
            family[0].dpop_jkt.as_deref(),
            Some(key.jkt().as_str()),
            "a public client's refresh tokens are bound to the key"
        );
        let refreshed = with_proof(
            &h,
            &refresh_form(&login.refresh_token()),
            &key.proof(START, None),
        )
        .await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
        assert_eq!(refreshed.json()["token_type"], "DPoP");
        assert_eq!(
            claims_of(&refreshed.access_token())["cnf"]["jkt"],
            key.jkt().as_str()
        );
    }
}

#[tokio::test]
async fn without_a_proof_tokens_stay_bearer_tokens() {
    let h = harness(MemoryStore::new()).await;
    let login = h.login("alice", "wonderland").await;
    assert_eq!(login.json()["token_type"], "Bearer");
    assert!(claims_of(&login.access_token()).get("cnf").is_none());
}

#[tokio::test]
async fn every_proof_rule_is_enforced_at_the_endpoint() {
    let h = harness(MemoryStore::new()).await;
    let key = DpopKey::new(Algorithm::Es256);
    let claims = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = json!({"jti": "j-1", "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": START});
        change(&mut claims);
        key.sign(&claims)
    };
    let valid = key.proof(START, None);
    let (input, _) = valid.rsplit_once('.').unwrap();
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let forged = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(other.sign(input.as_bytes()).unwrap())
    );
    let hmac = SigningKey::from_hmac_secret("shared", &[7; 32]).unwrap();
    let hs256 = {
        let header = URL_SAFE_NO_PAD.encode(
            json!({"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}).to_string(),
        );
        let payload = URL_SAFE_NO_PAD
            .encode(json!({"jti":"j-2","htm":"POST","htu":TOKEN_ENDPOINT,"iat":START}).to_string());
        let input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(hmac.sign(input.as_bytes()).unwrap());
        format!("{input}.{signature}")
    };
    let cases = [
        (claims(&|c| c["htm"] = json!("GET")), "wrong htm"),
        (
            claims(&|c| c["htu"] = json!("https://auth.test/auth/revoke")),
            "wrong htu",
        ),
        (
            claims(&|c| c["htu"] = json!("https://elsewhere.test/auth/token")),
            "another host",
        ),
        (claims(&|c| c["iat"] = json!(START - 61)), "stale iat"),
        (
            claims(&|c| c["iat"] = json!(START + 61)),
            "iat in the future",
        ),
        (hs256, "symmetric alg"),
        (forged, "invalid signature"),
        (format!("{input}."), "missing signature"),
        (
            claims(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "no jti",
        ),
        ("not-a-jwt".to_owned(), "not a JWS"),
    ];
    for (proof, why) in cases {
        let answer = with_proof(&h, LOGIN, &proof).await;
        assert_invalid_proof(&answer, why);
        let description = answer.json()["error_description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(description.contains("DPoP"), "{why}: {description}");
    }
    assert!(
        h.events()
            .iter()
            .all(|event| !matches!(event, AuthEvent::LoginSucceeded { .. })),
        "no proof failing a check got a token"
    );
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let h = harness(MemoryStore::new()).await;
    let key = DpopKey::new(Algorithm::EdDsa);
    let proof = key.proof(START, None);
    assert_eq!(with_proof(&h, LOGIN, &proof).await.status, StatusCode::OK);
    let replayed = with_proof(&h, LOGIN, &proof).await;
    assert_invalid_proof(&replayed, "replayed jti");
    assert!(replayed.text().contains("already used"));
}

#[tokio::test]
async fn a_proof_is_accepted_once_by_every_instance_sharing_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let first = harness(SqliteStore::open(&path).await.unwrap()).await;
    let second = harness(SqliteStore::open(&path).await.unwrap()).await;
    let key = DpopKey::new(Algorithm::EdDsa);
    let proof = key.proof(START, None);
    let served = with_proof(&first, LOGIN, &proof).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text());
    let replayed = with_proof(&second, LOGIN, &proof).await;
    assert_invalid_proof(&replayed, "replayed to another instance");
    assert!(replayed.text().contains("already used"));
}

#[tokio::test]
async fn a_request_refused_before_it_is_served_does_not_spend_its_proof() {
    let h = harness(MemoryStore::new()).await;
    let key = DpopKey::new(Algorithm::EdDsa);
    let proof = key.proof(START, None);
    let unknown_client = with_proof(
        &h,
        "grant_type=password&client_id=ghost&username=alice&password=wonderland",
        &proof,
    )
    .await;
    assert_eq!(unknown_client.error(), "invalid_client");
    assert_eq!(with_proof(&h, LOGIN, &proof).await.status, StatusCode::OK);
}

#[tokio::test]
async fn two_dpop_headers_are_refused() {
    let h = harness(MemoryStore::new()).await;
    let key = DpopKey::new(Algorithm::EdDsa);
    let (first, second) = (key.proof(START, None), key.proof(START, None));
    let answer = h
        .post_form_with("/auth/token", LOGIN, &[("DPoP", &first), ("dpop", &second)])
        .await;
    assert_invalid_proof(&answer, "two headers");
}

#[tokio::test]
async fn a_stolen_refresh_token_is_useless_without_the_key_even_inside_the_grace_window() {
    let h = harness(MemoryStore::new()).await;
    let key = DpopKey::new(Algorithm::Es256);
    let first = with_proof(&h, LOGIN, &key.proof(START, None))
        .await
        .refresh_token();
    let second = with_proof(&h, &refresh_form(&first), &key.proof(START, None))
        .await
        .refresh_token();

    h.clock.advance_secs(1);
    let thief = DpopKey::new(Algorithm::Es256);
    for (token, proof, why) in [
        (
            &first,
            None,
            "the previous token inside the grace window, no proof",
        ),
        (
            &first,
            Some(thief.proof(START + 1, None)),
            "the previous token inside the grace window, another key",
        ),
        (&second, None, "the current token, no proof"),
        (
            &second,
            Some(thief.proof(START + 1, None)),
            "the current token, another key",
        ),
    ] {
        let answer = match proof {
            Some(proof) => with_proof(&h, &refresh_form(token), &proof).await,
            None => h.refresh(token).await,
        };
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{why}");
        assert_eq!(answer.error(), "invalid_grant", "{why}");
        assert!(answer.text().contains("bound to a DPoP key"), "{why}");
    }
    assert!(
        h.events()
            .iter()
            .all(|event| !matches!(event, AuthEvent::ReuseDetected { .. })),
        "without the key nothing happens: no rotation, and no revocation a thief could use to log the user out"
    );

    let retry = with_proof(&h, &refresh_form(&first), &key.proof(START + 1, None)).await;
    assert_eq!(
        retry.refresh_token(),
        second,
        "the key's holder still gets its retry inside the grace window"
    );
    let third = with_proof(&h, &refresh_form(&second), &key.proof(START + 1, None)).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text());
}

#[tokio::test]
async fn a_confidential_clients_refresh_tokens_stay_bound_to_the_client_not_the_key() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.client(
            ClientRegistration::with_secret_hash(
                "backend",
                cheap_hashing().hash(CLIENT_SECRET).unwrap(),
            )
            .unwrap()
            .grant_types([
                tessera_core::GrantType::Password,
                tessera_core::GrantType::RefreshToken,
            ]),
        )
    })
    .await;
    let secret = CLIENT_SECRET.replace(' ', "+");
    let key = DpopKey::new(Algorithm::EdDsa);
    let login = with_proof(
        &h,
        &format!(
            "grant_type=password&client_id=backend&client_secret={secret}&username=bob&password=builder"
        ),
        &key.proof(START, None),
    )
    .await;
    assert_eq!(login.json()["token_type"], "DPoP", "{}", login.text());
    let refreshed = h
        .post_form(
            "/auth/token",
            &format!(
                "grant_type=refresh_token&client_id=backend&client_secret={secret}&refresh_token={}",
                login.refresh_token()
            ),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
    assert_eq!(
        refreshed.json()["token_type"],
        "Bearer",
        "authenticated: no key needed, and none bound without a proof"
    );
}

#[tokio::test]
async fn client_credentials_with_a_proof_are_bound_too() {
    let h = harness(MemoryStore::new()).await;
    let key = DpopKey::new(Algorithm::Es256);
    let answer = with_proof(
        &h,
        &format!(
            "grant_type=client_credentials&client_id=svc&client_secret={}",
            CLIENT_SECRET.replace(' ', "+")
        ),
        &key.proof(START, None),
    )
    .await;
    assert_eq!(answer.json()["token_type"], "DPoP", "{}", answer.text());
    assert_eq!(claims_of(&answer.access_token())["cnf"]["jkt"], key.jkt());
}

#[tokio::test]
async fn server_nonces_round_trip_and_rotate() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.dpop_nonces(Duration::from_secs(300))
    })
    .await;
    let key = DpopKey::new(Algorithm::EdDsa);
    let asked = with_proof(&h, LOGIN, &key.proof(START, None)).await;
    assert_eq!(asked.status, StatusCode::BAD_REQUEST, "{}", asked.text());
    assert_eq!(asked.error(), "use_dpop_nonce");
    assert!(
        asked.headers[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"use_dpop_nonce\"")
    );
    let nonce = asked.headers["dpop-nonce"].to_str().unwrap().to_owned();

    let login = with_proof(&h, LOGIN, &key.proof(START, Some(&nonce))).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    assert_eq!(login.headers["dpop-nonce"], nonce.as_str());
    assert_eq!(
        with_proof(&h, LOGIN, &key.proof(START, Some("made-up")))
            .await
            .error(),
        "use_dpop_nonce"
    );

    h.clock.advance_secs(600);
    let now = START + 600;
    let stale = with_proof(
        &h,
        &refresh_form(&login.refresh_token()),
        &key.proof(now, Some(&nonce)),
    )
    .await;
    assert_eq!(stale.error(), "use_dpop_nonce", "the nonce expired");
    let fresh = stale.headers["dpop-nonce"].to_str().unwrap().to_owned();
    assert_ne!(fresh, nonce, "a new nonce each period");
    let refreshed = with_proof(
        &h,
        &refresh_form(&login.refresh_token()),
        &key.proof(now, Some(&fresh)),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text());
}

#[tokio::test]
async fn a_client_may_require_dpop() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.client(ClientRegistration::public("spa").require_dpop())
    })
    .await;
    let form = "grant_type=password&client_id=spa&username=alice&password=wonderland";
    assert_invalid_proof(&h.post_form("/auth/token", form).await, "no proof");
    let key = DpopKey::new(Algorithm::Es256);
    let login = with_proof(&h, form, &key.proof(START, None)).await;
    assert_eq!(login.json()["token_type"], "DPoP", "{}", login.text());
    let token = login.refresh_token();
    assert_invalid_proof(
        &h.post_form(
            "/auth/token",
            &format!("grant_type=refresh_token&refresh_token={token}"),
        )
        .await,
        "a refresh naming no client still follows the family's client's policy",
    );
    let refreshed = with_proof(
        &h,
        &format!("grant_type=refresh_token&refresh_token={token}"),
        &key.proof(START, None),
    )
    .await;
    assert_eq!(
        refreshed.status,
        StatusCode::OK,
        "the refused request consumed nothing: {}",
        refreshed.text()
    );
}

#[tokio::test]
async fn the_accepted_algorithms_are_configurable() {
    let h = harness_with(MemoryStore::new(), |builder| {
        builder.dpop_algorithms([Algorithm::EdDsa])
    })
    .await;
    let es256 = DpopKey::new(Algorithm::Es256);
    assert_invalid_proof(
        &with_proof(&h, LOGIN, &es256.proof(START, None)).await,
        "ES256 not accepted",
    );
    let eddsa = DpopKey::new(Algorithm::EdDsa);
    assert_eq!(
        with_proof(&h, LOGIN, &eddsa.proof(START, None))
            .await
            .status,
        StatusCode::OK
    );
}
