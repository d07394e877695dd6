//! The example server's request trace never carries a credential: `Authorization` and `Cookie` are
//! marked sensitive before `TraceLayer` logs the request's headers (`tessera_examples::app::http_stack`).
//!
//! A binary of its own, with this one test: `tracing` caches each callsite's interest process-wide, from
//! whichever thread reaches it first, so a sibling test running without a subscriber could blind the
//! subscriber this test captures with.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use tessera_examples::app::{self, AppConfig};
use tessera_examples::login;
use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// Everything the test's subscriber wrote.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> CapturedLogs {
        self.clone()
    }
}

/// Current-thread runtime: the server's tasks run on the test's thread, under the test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_traced_request_logs_the_request_line_but_no_credential() -> anyhow::Result<()> {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(Level::TRACE)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir()?;
    let api = app::spawn(&AppConfig::for_tests(
        dir.path().join("tessera.db"),
        Duration::from_secs(60),
    )?)
    .await?;
    let http = reqwest::Client::new();
    let tokens =
        login::password_login(&http, &api.base_url, app::CLIENT_ID, "alice", "wonderland").await?;
    let refresh_token = tokens.refresh_token.clone().unwrap_or_default();
    let cookie_secret = "b7c1e0f4d2a94e5f8a3c6d9e0f1a2b3c";
    let response = http
        .get(api.url("/api/me"))
        .bearer_auth(&tokens.access_token)
        .header(COOKIE, format!("tessera_session={cookie_secret}"))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    api.stop().await?;

    let logs = logs.text();
    assert!(
        logs.contains("uri=/api/me") && logs.contains("status=200"),
        "the request and its answer are traced:\n{logs}"
    );
    assert!(
        logs.contains(r#""authorization": Sensitive"#) && logs.contains(r#""cookie": Sensitive"#),
        "the headers are traced, credentials redacted:\n{logs}"
    );
    let signature = tokens
        .access_token
        .rsplit('.')
        .next()
        .unwrap_or(&tokens.access_token);
    for (what, secret) in [
        ("the access token", tokens.access_token.as_str()),
        ("the access token's signature", signature),
        ("the refresh token", refresh_token.as_str()),
        ("the cookie", cookie_secret),
        ("the password", "wonderland"),
    ] {
        assert!(!logs.contains(secret), "{what} reached the log:\n{logs}");
    }
    Ok(())
}
