//! Per-verify cost: one token through Tessera's layer (cache off and on) against `jsonwebtoken::decode` and
//! the peers' own verification calls, per algorithm. Group `verify-<alg>`, one function per library; the
//! `peers verify-report` subcommand turns the estimates into a table of ratios.

#![allow(clippy::unwrap_used, reason = "a benchmark aborts on any failure")]

use std::convert::Infallible;
use std::hint::black_box;

use axum::body::Body;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::{Request, Response, StatusCode};
use tessera_peer_bench::claims::BenchClaims;
use tessera_peer_bench::keys::{Alg, KeyMaterial};
use tessera_peer_bench::naive::{NaiveAuth, validation};
use tessera_peer_bench::variant::{axum_jwt_auth_decoder, jwt_authorizer, tessera_layer};
use tower::{Layer as _, Service as _};

fn request(token: &str) -> Request<Body> {
    Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for alg in Alg::ALL {
        let material = KeyMaterial::generate(alg).unwrap();
        let key = material.verify_key();
        let token = material.valid_token().unwrap();
        let mut group = c.benchmark_group(format!("verify-{}", alg.slug()));

        let decoding_key = key.decoding_key(alg).unwrap();
        let rules = validation(alg);
        assert!(NaiveAuth::new(alg, key).unwrap().decode(&token).is_ok());
        group.bench_function("jsonwebtoken", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<BenchClaims>(black_box(&token), &decoding_key, &rules)
                    .unwrap()
            })
        });

        for (name, cache) in [("tessera-cache-off", false), ("tessera-cache-on", true)] {
            let inner = tower::service_fn(|_request: Request<Body>| async {
                Ok::<_, Infallible>(Response::new(Body::empty()))
            });
            let mut service = tessera_layer(alg, key, cache).unwrap().layer(inner);
            let response = service
                .call(request(&token))
                .now_or_never()
                .unwrap()
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            group.bench_function(name, |b| {
                b.iter_batched(
                    || request(&token),
                    |request| service.call(request).now_or_never().unwrap().unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }

        let authorizer = runtime.block_on(jwt_authorizer(alg, key)).unwrap();
        assert!(
            authorizer
                .check_auth(&token)
                .now_or_never()
                .unwrap()
                .is_ok()
        );
        group.bench_function("jwt-authorizer", |b| {
            b.iter(|| {
                authorizer
                    .check_auth(black_box(&token))
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        });

        let decoder = axum_jwt_auth_decoder(alg, key).unwrap();
        group.bench_function("axum-jwt-auth", |b| {
            b.iter(|| {
                axum_jwt_auth::JwtDecoder::<BenchClaims>::decode(&decoder, black_box(&token))
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
