//! Fixtures shared by the integration tests: key material, token minting, a steppable clock, and a
//! request helper.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm as JwtAlgorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tessera_server::{Claims, JwtAuthBuilder, JwtAuthLayer, VerifiedToken};
use tower::ServiceExt;

pub const ISSUER: &str = "https://auth.example";
pub const AUDIENCE: &str = "api";
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
/// A fixed "now" for deterministic lifetimes: 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600;

pub const RSA_PRIVATE: &str = include_str!("../keys/rsa.key");
pub const RSA_PUBLIC: &str = include_str!("../keys/rsa.pub");
pub const RSA_PKCS1_PUBLIC: &str = include_str!("../keys/rsa.pkcs1.pub");
pub const RSA2_PRIVATE: &str = include_str!("../keys/rsa2.key");
pub const RSA2_PUBLIC: &str = include_str!("../keys/rsa2.pub");
pub const P256_PRIVATE: &str = include_str!("../keys/p256.key");
pub const P256_PUBLIC: &str = include_str!("../keys/p256.pub");
pub const P256B_PRIVATE: &str = include_str!("../keys/p256b.key");
pub const P256B_PUBLIC: &str = include_str!("../keys/p256b.pub");
pub const P384_PRIVATE: &str = include_str!("../keys/p384.key");
pub const P384_PUBLIC: &str = include_str!("../keys/p384.pub");
pub const ED25519_PRIVATE: &str = include_str!("../keys/ed25519.key");
pub const ED25519_PUBLIC: &str = include_str!("../keys/ed25519.pub");
/// Self-signed certificates of `rsa.key`, `p256.key` and `ed25519.key`, for keys published as `x5c`.
pub const RSA_CERT: &str = include_str!("../keys/rsa.crt");
pub const P256_CERT: &str = include_str!("../keys/p256.crt");
pub const ED25519_CERT: &str = include_str!("../keys/ed25519.crt");

pub use tessera_server::ManualClock as TestClock;

/// Signing material for one algorithm.
pub struct Signer {
    pub alg: JwtAlgorithm,
    pub key: EncodingKey,
}

impl Signer {
    pub fn hs256() -> Signer {
        Signer {
            alg: JwtAlgorithm::HS256,
            key: EncodingKey::from_secret(SECRET),
        }
    }
    pub fn rs256() -> Signer {
        Signer {
            alg: JwtAlgorithm::RS256,
            key: EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        }
    }
    pub fn ps256() -> Signer {
        Signer {
            alg: JwtAlgorithm::PS256,
            key: EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        }
    }
    pub fn es256() -> Signer {
        Signer {
            alg: JwtAlgorithm::ES256,
            key: EncodingKey::from_ec_pem(P256_PRIVATE.as_bytes()).unwrap(),
        }
    }
    pub fn es256_second() -> Signer {
        Signer {
            alg: JwtAlgorithm::ES256,
            key: EncodingKey::from_ec_pem(P256B_PRIVATE.as_bytes()).unwrap(),
        }
    }
    pub fn es384() -> Signer {
        Signer {
            alg: JwtAlgorithm::ES384,
            key: EncodingKey::from_ec_pem(P384_PRIVATE.as_bytes()).unwrap(),
        }
    }
    pub fn eddsa() -> Signer {
        Signer {
            alg: JwtAlgorithm::EdDSA,
            key: EncodingKey::from_ed_pem(ED25519_PRIVATE.as_bytes()).unwrap(),
        }
    }

    /// A token with `claims`, `kid` and `typ: at+jwt`.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// The public JWK of this key, named `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        serde_json::to_value(jwk).unwrap()
    }
}

/// RFC 9068 claims valid from `NOW` for five minutes.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "web", "jti": "jti-1",
        "iat": NOW, "nbf": NOW, "exp": NOW + 300, "scope": "read write", "roles": ["editor"],
    })
}

/// `claims()` with `changes` merged in (a `null` removes the claim).
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// A builder for an HS256 layer trusting `SECRET`, `ISSUER` and `AUDIENCE`, on `clock`.
pub fn builder(clock: &TestClock) -> JwtAuthBuilder {
    JwtAuthLayer::builder()
        .hmac_secret(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(clock.clone())
}

/// An HS256 token with `claims()` and `changes` merged in, no `kid`.
pub fn token(changes: Value) -> String {
    Signer::hs256().sign(None, &claims_with(changes))
}

/// Routes the tests call: `/me` needs claims, `/maybe` takes them optionally, `/raw` echoes the verified
/// token's accessors.
pub fn routes() -> Router {
    Router::new()
        .route(
            "/me",
            get(|Claims(claims): Claims| async move { claims.sub }),
        )
        .route(
            "/maybe",
            get(|claims: Option<Claims>| async move {
                claims.map_or_else(|| "anonymous".to_owned(), |Claims(claims)| claims.sub)
            }),
        )
        .route(
            "/raw",
            get(|token: VerifiedToken| async move {
                format!(
                    "{}|{}|{:?}",
                    token.subject().unwrap_or("-"),
                    token.jti().unwrap_or("-"),
                    token.key_id()
                )
            }),
        )
}

/// A parsed answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn challenge(&self) -> &str {
        self.headers
            .get("www-authenticate")
            .map_or("", |value| value.to_str().unwrap())
    }

    pub fn token_expired(&self) -> bool {
        self.headers
            .get("token-expired")
            .is_some_and(|value| value == "true")
    }

    pub fn description(&self) -> String {
        self.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub fn get_with_token(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

pub fn get_plain(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// A DPoP proof (`typ: dpop+jwt`, the public key embedded) of `claims`, signed by `key`.
pub fn dpop_proof(key: &tessera_core::jose::SigningKey, claims: &Value) -> String {
    let header = tessera_core::jose::JwsHeader {
        typ: Some("dpop+jwt"),
        embed_jwk: true,
    };
    key.sign_jwt(header, claims).unwrap()
}

/// A proof's `ath` for `token`: base64url of its SHA-256.
pub fn ath(token: &str) -> String {
    use base64::Engine;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}
