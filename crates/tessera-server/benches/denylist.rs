//! What a [`Denylist`] (the in-memory list behind the issuer's layer and `RemoteDenylist`) costs: per request
//! with the verified-token cache on, against the same layer without revocation check, at 0, 100k and 1M
//! entries; one revocation added to a list of 1M (amortised: recent denials are merged into the shared
//! base every 1,024); and, printed before the timings, its memory per entry and that of the verified-token
//! cache (at its default bound of 10,000 tokens and at 100,000).
//!
//! `cargo bench -p tessera-server --bench denylist`

#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tessera_server::{Availability, Denial, Denylist, JwtAuthLayer, JwtKey, VerifiedToken};
use tower::{Layer, Service, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-bench-secret";

fn token() -> String {
    token_with_jti("Zk3xQ8sdf0Aa9pPqRr2LmN")
}

/// A token as the token service mints them (RFC 9068 claims, 22-character ids), with this `jti`.
fn token_with_jti(jti: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "iss": "https://auth.example", "aud": "api", "sub": "alice", "client_id": "web",
        "jti": jti, "sid": "q8XwYt5uVb3cDe7fGh1iJk", "iat": now, "nbf": now,
        "exp": now + 3600, "scope": "read write",
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .expect("the bench token signs")
}

fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the bench services never wait"),
    }
}

async fn presence(request: Request<String>) -> Result<Response<Vec<u8>>, Infallible> {
    let present = request.extensions().get::<VerifiedToken>().is_some();
    Ok(Response::new(if present {
        b"alice".to_vec()
    } else {
        Vec::new()
    }))
}

/// `count` denials as a token service writes them: a third each by `jti`, `sid` and `sub` (22-character
/// random-looking ids, as the service mints them).
fn denials(count: usize) -> Vec<Denial> {
    (0..count)
        .map(|index| {
            let id = format!("{index:0>22}");
            match index % 3 {
                0 => Denial::token(id, i64::MAX),
                1 => Denial::session(id, i64::MAX),
                _ => Denial::subject(id, 1_800_000_000, i64::MAX),
            }
        })
        .collect()
}

/// A loaded denylist holding `count` denials.
fn loaded(count: usize) -> Denylist {
    let denylist = Denylist::new();
    denylist.insert(&denials(count));
    denylist.set_availability(Availability::Available);
    denylist
}

/// Bytes the process holds for a denylist of `count` entries (its final snapshot).
fn bytes_held(count: usize) -> isize {
    let batch = denials(count);
    let region = Region::new(GLOBAL);
    let denylist = Denylist::new();
    denylist.insert(&batch);
    let stats = region.change();
    drop(denylist);
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// Bytes a layer's verified-token cache holds once `count` distinct tokens went through it (its capacity
/// set to `count`): what the process gained over the requests, the requests' own allocations freed.
fn cache_bytes_held(count: usize) -> isize {
    let headers: Vec<String> = (0..count)
        .map(|index| format!("Bearer {}", token_with_jti(&format!("{index:0>22}"))))
        .collect();
    let mut service = JwtAuthLayer::builder()
        .key(JwtKey::hmac(SECRET).expect("secret"))
        .issuer("https://auth.example")
        .audience("api")
        .cache_capacity(count)
        .build()
        .expect("layer builds")
        .layer(service_fn(presence));
    let region = Region::new(GLOBAL);
    for header in &headers {
        let request = Request::get("/")
            .header("authorization", header.as_str())
            .body(String::new())
            .expect("request");
        assert_eq!(ready(service.call(request)).expect("ok").body(), b"alice");
    }
    let stats = region.change();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

fn per_request(c: &mut Criterion) {
    for count in [10_000, 100_000, 1_000_000] {
        let held = bytes_held(count);
        println!(
            "denylist memory: {count} entries hold {:.1} MiB, {:.0} bytes per entry",
            held as f64 / 1_048_576.0,
            held as f64 / count as f64
        );
    }
    for count in [10_000, 100_000] {
        let held = cache_bytes_held(count);
        println!(
            "verified-token cache memory: {count} tokens hold {:.1} MiB, {:.0} bytes per token",
            held as f64 / 1_048_576.0,
            held as f64 / count as f64
        );
    }

    let bearer = format!("Bearer {}", token());
    let request = || {
        Request::get("/")
            .header("authorization", bearer.as_str())
            .body(String::new())
            .expect("request")
    };
    let layer = |denylist: Option<Denylist>| {
        let builder = JwtAuthLayer::builder()
            .key(JwtKey::hmac(SECRET).expect("secret"))
            .issuer("https://auth.example")
            .audience("api");
        let builder = match denylist {
            Some(denylist) => builder.revocation(Arc::new(denylist)),
            None => builder,
        };
        builder
            .build()
            .expect("layer builds")
            .layer(service_fn(presence))
    };
    let mut group = c.benchmark_group("denylist");
    let mut plain = layer(None);
    assert_eq!(ready(plain.call(request())).expect("ok").body(), b"alice");
    group.bench_function("layer_cache_on_no_revocation", |b| {
        b.iter(|| ready(plain.call(request())).expect("ok"))
    });
    for count in [0, 100_000, 1_000_000] {
        let mut checked = layer(Some(loaded(count)));
        assert_eq!(ready(checked.call(request())).expect("ok").body(), b"alice");
        group.bench_function(format!("layer_cache_on_denylist_{count}"), |b| {
            b.iter(|| ready(checked.call(request())).expect("ok"))
        });
    }
    let large = loaded(1_000_000);
    let mut next = 0_u64;
    group.bench_function("insert_one_into_1000000", |b| {
        b.iter(|| {
            next += 1;
            large.insert(&[Denial::token(format!("new-{next}"), i64::MAX)])
        })
    });
    group.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
