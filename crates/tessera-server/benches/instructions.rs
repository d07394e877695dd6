//! Instructions per request under callgrind, a measure the machine's load cannot move: a bearer token
//! answered from the cache (by a Bearer-only layer, and by one with DPoP on) against the same token
//! DPoP-bound, with a fresh EdDSA or ES256 proof per request.
//!
//! `cargo bench -p tessera-server --bench instructions` runs each variant under
//! `valgrind --tool=callgrind --toggle-collect=*count_requests*` (itself, with `count <variant>`), so only
//! the layer's calls are counted: requests and proofs are made before, and the token is cached by a first
//! request. Needs valgrind (`scripts/bench.sh` installs it).
#![allow(clippy::print_stdout, reason = "a benchmark binary reports on stdout")]

use std::process::Command;

use http::Request;
use tessera_core::jose::SigningKey;
use tessera_server::Algorithm;
use tower::{Layer, Service, service_fn};

mod common;

use common::{dpop_fixture, dpop_request, presence, ready};

const ITERATIONS: usize = 200;
const VARIANTS: [&str; 4] = [
    "bearer-es256",
    "bearer-es256-dpop-layer",
    "dpop-eddsa",
    "dpop-es256",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|arg| arg == "count") {
        Some(at) => count(&args[at + 1]),
        None => measure(),
    }
}

/// Runs every variant under callgrind and prints instructions per request.
fn measure() {
    let program = std::env::current_exe().expect("the bench's own path");
    let out = std::env::temp_dir().join(format!("tessera-callgrind-{}.out", std::process::id()));
    let mut counts = Vec::new();
    for variant in VARIANTS {
        let output = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--toggle-collect=*count_requests*")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&program)
            .arg("count")
            .arg(variant)
            .output()
            .expect("valgrind runs (scripts/bench.sh installs it)");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "callgrind failed:\n{stderr}");
        let collected: f64 = stderr
            .lines()
            .find_map(|line| {
                line.split_once("Collected :")
                    .map(|(_, count)| count.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no `Collected :` line from callgrind:\n{stderr}"))
            .parse()
            .expect("a count");
        counts.push((variant, collected / ITERATIONS as f64));
    }
    let _ = std::fs::remove_file(&out);
    let bearer = counts[0].1;
    println!("| variant | instructions per request | over bearer |");
    println!("|---|---|---|");
    for (variant, count) in counts {
        println!(
            "| {variant} | {:.1}k | +{:.1}k |",
            count / 1_000.0,
            (count - bearer) / 1_000.0
        );
    }
}

/// Makes `ITERATIONS` requests of `variant`, caches the token with one more, then sends them.
fn count(variant: &str) {
    let (layer, requests): (_, Vec<Request<String>>) = match variant {
        "bearer-es256" | "bearer-es256-dpop-layer" => {
            let (token, layer) = dpop_fixture(None, variant == "bearer-es256-dpop-layer");
            let request = || {
                Request::get("/")
                    .header("authorization", format!("Bearer {token}"))
                    .body(String::new())
                    .expect("request")
            };
            (layer, (0..=ITERATIONS).map(|_| request()).collect())
        }
        "dpop-eddsa" | "dpop-es256" => {
            let algorithm = if variant == "dpop-eddsa" {
                Algorithm::EdDsa
            } else {
                Algorithm::Es256
            };
            let client = SigningKey::generate(algorithm).expect("client key");
            let (token, layer) = dpop_fixture(Some(&client), true);
            let requests = (0..=ITERATIONS)
                .map(|_| dpop_request(&client, &token))
                .collect();
            (layer, requests)
        }
        other => panic!("unknown variant {other:?}: one of {VARIANTS:?}"),
    };
    let mut service = layer.layer(service_fn(presence));
    let mut requests = requests.into_iter();
    let first = requests.next().expect("a request");
    assert_eq!(ready(service.call(first)).expect("ok").body(), b"alice");
    count_requests(&mut service, requests);
}

#[inline(never)]
fn count_requests<S>(service: &mut S, requests: impl Iterator<Item = Request<String>>)
where
    S: Service<Request<String>, Response = http::Response<Vec<u8>>>,
    S::Error: std::fmt::Debug,
{
    for request in requests {
        let response = ready(service.call(request)).expect("ok");
        assert_eq!(response.body(), b"alice");
        drop(std::hint::black_box(response));
    }
}
