//! What the benchmarks share: the ES256 issuer key, and a DPoP-bound token with fresh proofs.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use tessera_core::jose::{JwsHeader, SigningKey};
use tessera_server::{Algorithm, Dpop, JwtAuthLayer, JwtKey};

pub const P256_PRIVATE: &str = include_str!("../../tests/keys/p256.key");
pub const P256_PUBLIC: &str = include_str!("../../tests/keys/p256.pub");

/// An ES256 access token bound to `client` (or unbound), and the layer trusting its issuer, with DPoP on
/// when `dpop`.
pub fn dpop_fixture(client: Option<&SigningKey>, dpop: bool) -> (String, JwtAuthLayer) {
    let issuer = SigningKey::from_pem("issuer", Algorithm::Es256, P256_PRIVATE).expect("p256");
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "iss": "https://auth.example", "aud": "api", "sub": "alice", "client_id": "web",
        "jti": "0b7d1c4e-5f7a-4d7e-9b8e-2a1f0c3d4e5f", "iat": now, "nbf": now, "exp": now + 3600,
        "scope": "read write", "roles": ["editor"],
    });
    if let Some(client) = client {
        let jkt = client
            .public_jwk()
            .expect("public")
            .thumbprint()
            .expect("jkt");
        claims["cnf"] = serde_json::json!({ "jkt": jkt });
    }
    let token = issuer
        .sign_jwt(JwsHeader::typed("at+jwt"), &claims)
        .expect("token");
    let builder = JwtAuthLayer::builder()
        .key(
            JwtKey::from_pem(Algorithm::Es256, P256_PUBLIC)
                .expect("p256 public")
                .with_kid("issuer"),
        )
        .issuer("https://auth.example")
        .audience("api");
    let builder = if dpop {
        builder.dpop(Dpop::new("https://api.example"))
    } else {
        builder
    };
    let layer = builder.build().expect("layer builds");
    (token, layer)
}

/// A fresh proof by `client` for `GET https://api.example/` with `token`.
pub fn dpop_request(client: &SigningKey, token: &str) -> Request<String> {
    use base64::Engine;
    let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let claims = serde_json::json!({
        "jti": tessera_core::random::id::<12>().expect("random"), "htm": "GET",
        "htu": "https://api.example/", "iat": jsonwebtoken::get_current_timestamp(), "ath": ath,
    });
    let header = JwsHeader {
        typ: Some("dpop+jwt"),
        embed_jwk: true,
    };
    Request::get("/")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", client.sign_jwt(header, &claims).expect("proof"))
        .body(String::new())
        .expect("request")
}

/// The output of a future that is ready at its first poll, as every bench service is.
pub fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the bench services never wait"),
    }
}

/// The inner service: `alice` when the layer handed over a verified token.
pub async fn presence(request: Request<String>) -> Result<Response<Vec<u8>>, Infallible> {
    let present = request
        .extensions()
        .get::<tessera_server::VerifiedToken>()
        .is_some();
    Ok(Response::new(if present {
        b"alice".to_vec()
    } else {
        Vec::new()
    }))
}
