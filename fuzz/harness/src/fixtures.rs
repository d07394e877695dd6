//! The fixed keys, the genuine tokens signed with them, and the services under test, built once.

use std::sync::OnceLock;

use axum::Router;
use tessera_core::jose::{JwsHeader, SigningKey};
use tessera_issuer::{ClientRegistration, Issuer, MemoryStore, PasswordHashing};
use tessera_server::{JwtAuthLayer, KeySet};

pub(crate) const ISSUER: &str = "https://auth.fuzz";
pub(crate) const AUDIENCE: &str = "api";
/// The cookie the layer also reads tokens from.
pub(crate) const COOKIE: &str = "at";

/// The keys that sign the genuine tokens: HS256, and Ed25519 (RFC 8037 §A.1's example key).
pub(crate) struct Keys {
    pub(crate) hmac: SigningKey,
    pub(crate) ed25519: SigningKey,
}

/// Tokens the fuzzer may find in the seeds: the only inputs that may ever be accepted or called expired.
pub(crate) struct Genuine {
    pub(crate) valid: Vec<String>,
    pub(crate) expired: Vec<String>,
}

pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        hmac: SigningKey::from_hmac_secret("hs", b"tessera-fuzz-hs256-secret-32-byt")
            .expect("the secret has 32 bytes"),
        ed25519: SigningKey::from_jwk_json(
            r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .expect("RFC 8037's example key loads"),
    })
}

pub(crate) fn genuine() -> &'static Genuine {
    static GENUINE: OnceLock<Genuine> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let keys = keys();
        // Valid until 2100, and expired since 2001: fixed, so the seeds stay genuine.
        let sign = |key: &SigningKey, exp: i64| {
            let claims = serde_json::json!({
                "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "client_id": "web", "jti": "j1",
                "iat": 1_000_000_000, "nbf": 1_000_000_000, "exp": exp, "scope": "read",
                "roles": ["admin"],
            });
            key.sign_jwt(JwsHeader::typed("at+jwt"), &claims)
                .expect("signing cannot fail with a valid key")
        };
        Genuine {
            valid: vec![
                sign(&keys.hmac, 4_102_444_800),
                sign(&keys.ed25519, 4_102_444_800),
            ],
            expired: vec![
                sign(&keys.hmac, 1_000_000_600),
                sign(&keys.ed25519, 1_000_000_600),
            ],
        }
    })
}

/// A layer trusting both keys, reading tokens from the header, the cookie and the query, cache on.
pub(crate) fn layer() -> &'static JwtAuthLayer {
    static LAYER: OnceLock<JwtAuthLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        let keys = keys();
        let set = KeySet::from_shared(vec![
            keys.hmac.verifying_key().clone(),
            keys.ed25519.verifying_key().clone(),
        ])
        .expect("two keys with distinct kids");
        JwtAuthLayer::builder()
            .key_set(set)
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .token_cookie(COOKIE)
            .query_parameter(true)
            .build()
            .expect("a complete configuration")
    })
}

/// The token service's router, on a memory store, with a user, a public and a confidential client.
pub(crate) fn token_service() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let hashing = PasswordHashing::new(64, 1).expect("valid argon2 parameters");
        let confidential = ClientRegistration::with_secret_hash(
            "svc",
            hashing.hash("s3cret").expect("hashing works"),
        )
        .expect("a PHC hash");
        let issuer = Issuer::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .keys(tessera_issuer::SigningKeys::new(keys().ed25519.clone()).expect("one key"))
            .password_hashing(hashing)
            .user("alice", "wonderland", ["admin"])
            .public_client("demo")
            .client(confidential)
            .build(MemoryStore::new())
            .expect("a complete configuration");
        let auth = issuer.auth_layer().expect("the issuer's keys load");
        Router::new().nest("/auth", issuer.router(&auth))
    })
}

/// The request every genuine DPoP proof is made for.
pub(crate) const DPOP_URL: &str = "https://api.fuzz/me";
/// The access token the genuine proofs carry the hash of.
pub(crate) const DPOP_ACCESS_TOKEN: &str = "access-token";
/// When the genuine proofs were made: the target checks them at this time.
pub(crate) const DPOP_NOW: i64 = 1_700_000_000;

/// DPoP proofs signed with the Ed25519 key for [`DPOP_URL`]: one with `ath`, one with a nonce.
pub(crate) fn genuine_proofs() -> &'static [String] {
    static PROOFS: OnceLock<Vec<String>> = OnceLock::new();
    PROOFS.get_or_init(|| {
        use base64::Engine as _;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, DPOP_ACCESS_TOKEN.as_bytes());
        let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
        let header = JwsHeader {
            typ: Some("dpop+jwt"),
            embed_jwk: true,
        };
        [
            serde_json::json!({"jti": "p1", "htm": "GET", "htu": DPOP_URL, "iat": DPOP_NOW, "ath": ath}),
            serde_json::json!({"jti": "p2", "htm": "GET", "htu": DPOP_URL, "iat": DPOP_NOW, "ath": ath, "nonce": "n"}),
        ]
        .iter()
        .map(|claims| {
            keys()
                .ed25519
                .sign_jwt(header, claims)
                .expect("signing cannot fail with a valid key")
        })
        .collect()
    })
}
