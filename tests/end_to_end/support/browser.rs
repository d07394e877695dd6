//! Debian's Chromium, driven through chromedriver with `fantoccini`.
//!
//! chromedriver runs as a child process on a free loopback port and is killed when [`Browser`] drops;
//! Chromium runs headless with a fresh profile in a temporary directory and everything that would reach
//! the network on its own (component updates, sync, QUIC) switched off. Nothing here skips: a missing
//! browser or driver fails the test with a message saying how to install them.

use std::env;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::process::{Child, Command};

/// A running chromedriver and a headless Chromium session it controls.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session.
    pub(crate) async fn launch() -> anyhow::Result<Browser> {
        let driver_path = find_program("CHROMEDRIVER", "chromedriver")?;
        let chromium_path = find_program("CHROMIUM", "chromium")?;
        let port = free_port()?;
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", driver_path.display()))?;

        let profile = tempfile::tempdir()?;
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium_path,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1100,760",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );

        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                // chromedriver takes a moment to listen; anything but "not reachable yet" is a real failure.
                Err(fantoccini::error::NewSessionError::FailedC(_))
                    if started.elapsed() < Duration::from_secs(20) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => {
                    bail!("chromedriver at {url} did not open a Chromium session: {error}")
                }
            }
        };
        Ok(Browser {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// Ends the browser session (chromedriver itself dies with `self`).
    pub(crate) async fn close(self) -> anyhow::Result<()> {
        self.client
            .close()
            .await
            .context("closing the browser session")
    }
}

/// The program named by the environment variable `variable`, else `name` on `PATH`.
fn find_program(variable: &str, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = env::var_os(variable) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{variable}={} is not a file", path.display());
    }
    env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "`{name}` not found on PATH: the browser test needs Debian's chromium and chromium-driver \
                 (scripts/test.sh installs them), or set {variable} to the program's path"
            )
        })
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Where a screenshot goes: `target/<name>`, next to the build output.
pub(crate) fn target_path(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join(name)
}
