//! Every rejection leaves one `tracing` event with its reason, and no event ever carries the token.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use http::StatusCode;
use serde_json::json;
use tessera_server::JwtAuthLayer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn rejections_are_traced_with_reason_and_never_the_token() {
    let captured = Captured::default();
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish()
        .set_default();

    let clock = TestClock::at_unix(NOW);
    let auth = JwtAuthLayer::builder()
        .hmac_secret(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = routes().route_layer(auth);
    let good = Signer::hs256().sign(None, &claims());
    let foreign = Signer::hs256().sign(None, &claims_with(json!({"aud": "billing"})));
    let (rest, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{rest}.AAAA");

    assert_eq!(
        send(&app, get_with_token("/me", &good)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_with_token("/me", &forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, get_with_token("/me", &foreign)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app, get_plain("/me")).await.status,
        StatusCode::UNAUTHORIZED
    );
    clock.set_unix(NOW + 1000);
    assert_eq!(
        send(&app, get_with_token("/me", &good)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let events: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("bearer authentication rejected"))
        .collect();
    assert_eq!(events.len(), 4, "{log}");
    for reason in [
        "The access token signature is invalid",
        "The access token is not meant for this audience",
        "The request carries no bearer token",
        "The access token expired",
    ] {
        assert!(
            events.iter().any(|event| event.contains(reason)),
            "{reason} missing from {log}"
        );
    }
    for token in [&good, &forged, &foreign] {
        for part in token.split('.') {
            assert!(
                !log.contains(part),
                "a token part leaked into the log: {log}"
            );
        }
    }
}
