//! Per-request cost of `JwtAuthLayer` against calling `jsonwebtoken::decode` directly, for HS256 and ES256,
//! with the verified-token cache on and off.
//!
//! The `layer_*` variants end with typed `AccessTokenClaims` in hand, like `jsonwebtoken_decode`, so the
//! comparison is like for like: they include building the request, the middleware, and deserializing the
//! claims in the inner service. `passthrough` is the same request through the same inner service without the
//! layer; the `*_no_claims` variants stop at the `VerifiedToken` the layer hands over (the layer's own cost).
//! `layer_cache_on_revocation_no_claims` adds a revocation check that answers at once (an in-memory
//! denylist, as the token service's is), and `layer_cache_on_expired_401` is the 401 a token seen valid
//! gets once it expired, answered from the cache.
//!
//! The `dpop` group is the price of DPoP (RFC 9449) on the cached path: an ES256 access token bound to the
//! client's key, sent with a fresh proof (EdDSA or ES256) per request, against the same token unbound and
//! sent as a bearer token. The access token comes from the cache either way; the proof is parsed, its key
//! built and its signature verified on every request, and its `jti` recorded.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use tessera_core::AccessTokenClaims;
use tessera_core::jose::SigningKey;
use tessera_server::{
    Algorithm, DEFAULT_LEEWAY, JwtAuthLayer, JwtKey, ManualClock, RevocationAnswer, TokenStatus,
    VerifiedToken,
};

use tower::{Layer, Service, service_fn};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-secret";
mod common;

use common::{P256_PRIVATE, P256_PUBLIC, dpop_fixture, dpop_request, presence, ready};

fn token(alg: JwtAlgorithm, key: &EncodingKey) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "iss": "https://auth.example", "aud": "api", "sub": "alice", "client_id": "web",
        "jti": "0b7d1c4e-5f7a-4d7e-9b8e-2a1f0c3d4e5f", "iat": now, "nbf": now, "exp": now + 3600,
        "scope": "read write", "roles": ["editor"],
    });
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, &claims, key).expect("the bench token signs")
}

async fn handler(request: Request<String>) -> Result<Response<Vec<u8>>, Infallible> {
    let claims = request
        .extensions()
        .get::<VerifiedToken>()
        .map(|token| token.claims::<AccessTokenClaims>().expect("claims fit"));
    Ok(Response::new(
        claims
            .map(|claims| claims.sub.into_bytes())
            .unwrap_or_default(),
    ))
}

fn bench_algorithm(
    c: &mut Criterion,
    name: &str,
    alg: JwtAlgorithm,
    encoding: EncodingKey,
    key: fn() -> JwtKey,
    decoding: DecodingKey,
) {
    let token = token(alg, &encoding);
    let bearer = format!("Bearer {token}");
    let request = || {
        Request::get("/")
            .header("authorization", bearer.as_str())
            .body(String::new())
            .expect("request")
    };
    let mut group = c.benchmark_group(name);

    let mut validation = Validation::new(alg);
    validation.set_issuer(&["https://auth.example"]);
    validation.set_audience(&["api"]);
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<AccessTokenClaims>(&token, &decoding, &validation)
                .expect("valid")
        })
    });

    let mut passthrough = service_fn(handler);
    group.bench_function("passthrough", |b| {
        b.iter(|| ready(passthrough.call(request())).expect("ok"))
    });

    for (variant, cached) in [("layer_cache_off", false), ("layer_cache_on", true)] {
        let builder = JwtAuthLayer::builder()
            .key(key())
            .issuer("https://auth.example")
            .audience("api");
        let layer = if cached {
            builder
        } else {
            builder.without_cache()
        }
        .build()
        .expect("layer builds");
        let mut with_claims = layer.layer(service_fn(handler));
        let mut no_claims = layer.layer(service_fn(presence));
        assert_eq!(
            ready(with_claims.call(request())).expect("ok").body(),
            b"alice",
            "the bench token must pass"
        );
        assert_eq!(
            ready(no_claims.call(request())).expect("ok").body(),
            b"alice",
            "the bench token must pass"
        );
        group.bench_function(variant, |b| {
            b.iter(|| ready(with_claims.call(request())).expect("ok"))
        });
        group.bench_function(format!("{variant}_no_claims"), |b| {
            b.iter(|| ready(no_claims.call(request())).expect("ok"))
        });
    }

    // A denylist holding other tokens' `jti`s, consulted on every request without waiting.
    let denied: HashSet<String> = (0..100).map(|index| format!("revoked-{index}")).collect();
    let check = move |token: &VerifiedToken| -> RevocationAnswer {
        TokenStatus::revoked_if(token.jti().is_some_and(|jti| denied.contains(jti))).into()
    };
    let revoking = JwtAuthLayer::builder()
        .key(key())
        .issuer("https://auth.example")
        .audience("api")
        .revocation(Arc::new(check))
        .build()
        .expect("layer builds");
    let mut revoking = revoking.layer(service_fn(presence));
    assert_eq!(
        ready(revoking.call(request())).expect("ok").body(),
        b"alice"
    );
    group.bench_function("layer_cache_on_revocation_no_claims", |b| {
        b.iter(|| ready(revoking.call(request())).expect("ok"))
    });

    // Seen valid, then expired: the 401 comes from the cache entry, not from a verification.
    let clock = ManualClock::new();
    let expiring = JwtAuthLayer::builder()
        .key(key())
        .issuer("https://auth.example")
        .audience("api")
        .clock(clock.clone())
        .build()
        .expect("layer builds");
    let mut expiring = expiring.layer(service_fn(presence));
    assert_eq!(ready(expiring.call(request())).expect("ok").status(), 200);
    clock.advance(Duration::from_secs(3600) + DEFAULT_LEEWAY);
    assert_eq!(ready(expiring.call(request())).expect("401").status(), 401);
    group.bench_function("layer_cache_on_expired_401", |b| {
        b.iter(|| ready(expiring.call(request())).expect("401"))
    });
    group.finish();
}

fn layer_vs_decode(c: &mut Criterion) {
    bench_algorithm(
        c,
        "hs256",
        JwtAlgorithm::HS256,
        EncodingKey::from_secret(SECRET),
        || JwtKey::hmac(SECRET).expect("secret"),
        DecodingKey::from_secret(SECRET),
    );
    bench_algorithm(
        c,
        "es256",
        JwtAlgorithm::ES256,
        EncodingKey::from_ec_pem(P256_PRIVATE.as_bytes()).expect("p256 private"),
        || JwtKey::from_pem(Algorithm::Es256, P256_PUBLIC).expect("p256 public"),
        DecodingKey::from_ec_pem(P256_PUBLIC.as_bytes()).expect("p256 public"),
    );
}

fn dpop_vs_bearer(c: &mut Criterion) {
    let mut group = c.benchmark_group("dpop");
    let (bearer_token, layer) = dpop_fixture(None, true);
    let authorization = format!("Bearer {bearer_token}");
    let mut service = layer.layer(service_fn(presence));
    let bearer = || {
        Request::get("/")
            .header("authorization", authorization.as_str())
            .body(String::new())
            .expect("request")
    };
    assert_eq!(ready(service.call(bearer())).expect("ok").body(), b"alice");
    group.bench_function("bearer_es256_cache_on_no_claims", |b| {
        b.iter(|| ready(service.call(bearer())).expect("ok"))
    });
    for (name, algorithm) in [("eddsa", Algorithm::EdDsa), ("es256", Algorithm::Es256)] {
        let client = SigningKey::generate(algorithm).expect("client key");
        let (token, layer) = dpop_fixture(Some(&client), true);
        let mut service = layer.layer(service_fn(presence));
        let answer = ready(service.call(dpop_request(&client, &token))).expect("ok");
        assert_eq!(
            answer.body(),
            b"alice",
            "the bench token and proof must pass"
        );
        group.bench_function(format!("dpop_{name}_proof_cache_on_no_claims"), |b| {
            b.iter_batched(
                || dpop_request(&client, &token),
                |request| ready(service.call(request)).expect("ok"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, layer_vs_decode, dpop_vs_bearer);
criterion_main!(benches);
