//! How many heap allocations one request costs the layer (on success, and on the 401 a cached token gets
//! once it expired), counted with an instrumented global allocator. One test in its own binary, so nothing
//! else allocates concurrently.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use common::*;
use http::{Request, Response};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::sync::Arc;

use tessera_server::{
    Algorithm, JwtAuthLayer, JwtKey, RevocationAnswer, RevocationCheck, TokenStatus, VerifiedToken,
};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("nothing here waits"),
    }
}

async fn handler(request: Request<()>) -> Result<Response<Vec<u8>>, Infallible> {
    assert!(request.extensions().get::<VerifiedToken>().is_some());
    Ok(Response::new(Vec::new()))
}

/// Allocations made by `service.call(request)` through to a 200, request construction excluded.
fn allocations<S>(service: &mut S, token: &str) -> usize
where
    S: Service<Request<()>, Response = Response<Vec<u8>>, Error = Infallible>,
{
    answer_allocations(service, token, 200)
}

/// Allocations made by `service.call(request)` through to the response, which must have `status`.
fn answer_allocations<S>(service: &mut S, token: &str, status: u16) -> usize
where
    S: Service<Request<()>, Response = Response<Vec<u8>>, Error = Infallible>,
{
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let region = Region::new(GLOBAL);
    let response = ready(service.call(request)).unwrap();
    let count = region.change().allocations;
    assert_eq!(response.status(), status);
    count
}

#[test]
fn request_allocations_are_pinned() {
    let hs256 = || JwtKey::hmac(SECRET).unwrap();
    let es256 = || JwtKey::from_pem(Algorithm::Es256, P256_PUBLIC).unwrap();
    let cases: [(&str, &dyn Fn() -> JwtKey, Signer); 2] = [
        ("HS256", &hs256, Signer::hs256()),
        ("ES256", &es256, Signer::es256()),
    ];
    for (name, key, signer) in cases {
        let clock = TestClock::at_unix(NOW);
        let token = signer.sign(None, &claims());
        let other = signer.sign(None, &claims_with(serde_json::json!({"jti": "jti-2"})));
        let build = |cached: bool, revocation: bool| {
            let builder = JwtAuthLayer::builder()
                .key(key())
                .issuer(ISSUER)
                .audience(AUDIENCE)
                .clock(clock.clone());
            let builder = if cached {
                builder
            } else {
                builder.without_cache()
            };
            let builder = if revocation {
                builder.revocation(Arc::new(InMemoryDenylist))
            } else {
                builder
            };
            builder.build().unwrap().layer(service_fn(handler))
        };
        let mut uncached = build(false, false);
        let mut cached = build(true, false);
        let mut revoking = build(true, true);
        // Warm up first: one-time lazy initialisation (thread-locals, cache shards) is not per-request cost.
        allocations(&mut uncached, &token);
        allocations(&mut cached, &token);
        allocations(&mut revoking, &token);
        let full = allocations(&mut uncached, &token);
        let miss = allocations(&mut cached, &other);
        let hit = allocations(&mut cached, &other);
        let revocation_hit = allocations(&mut revoking, &token);
        println!(
            "{name}: full verification {full}, cache miss {miss}, cache hit {hit}, cache hit with a \
             synchronous revocation check {revocation_hit} allocations"
        );
        // A cache hit allocates only to hand the token over: `http::Extensions` boxes its map, allocates the
        // map's table and boxes the `VerifiedToken` (3). A full verification adds the decoded claims JSON,
        // the shared token record and, for a token with `roles`, the list of role spans (3). A cache miss
        // adds what the cache needs to store the entry: its copy of the signed part `header.payload` (the
        // entry's key, compared on every hit) and the cache's own bookkeeping (at most 2 more).
        assert_eq!(hit, 3, "{name} cache hit");
        // A revocation check that answers at once (an in-memory denylist, like the issuer's) adds nothing.
        assert_eq!(
            revocation_hit, 3,
            "{name} cache hit with a revocation check"
        );
        assert_eq!(full, 6, "{name} full verification");
        assert!(miss <= full + 3, "{name} cache miss: {miss}");
        let without_roles = signer.sign(None, &claims_with(serde_json::json!({"roles": null})));
        allocations(&mut uncached, &without_roles);
        assert_eq!(
            allocations(&mut uncached, &without_roles),
            5,
            "{name} full verification without roles"
        );

        // Seen valid, now expired: the 401 comes from the cache entry and the answer prepared when the
        // layer was built. What it allocates is the response: its header map (2: indices and entries) and
        // the body, which this inner service's `Vec<u8>` copies out of the prepared bytes (1).
        clock.set_unix(NOW + 300 + 30);
        let expired = answer_allocations(&mut cached, &other, 401);
        println!("{name}: 401 for an expired token answered from the cache {expired} allocations");
        assert_eq!(expired, 3, "{name} 401 from the cache");
    }
}

/// A denylist that answers without waiting, and has nothing on it.
struct InMemoryDenylist;

impl RevocationCheck for InMemoryDenylist {
    fn status(&self, _token: &VerifiedToken) -> RevocationAnswer {
        TokenStatus::Active.into()
    }
}
