//! Serving a router until told to stop, then draining it: what the demo server ([`crate::app`]) and the
//! API process ([`crate::api`]) share.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A router served on a listener in a background task, until [`Serving::stop`] (or until dropped, which
/// aborts it).
pub struct Serving {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://{addr}`.
    pub base_url: reqwest::Url,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Listens on `addr`.
///
/// # Errors
/// If `addr` cannot be bound.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

impl Serving {
    /// Serves `router` on `listener`.
    ///
    /// # Errors
    /// If the listener's address cannot be read.
    pub fn start(listener: TcpListener, router: Router) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let base_url = reqwest::Url::parse(&format!("http://{addr}"))?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Ok(Serving {
            addr,
            base_url,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// `path` on this server.
    pub fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        url.set_path(path);
        url
    }

    /// Stops accepting connections and lets the requests in flight finish.
    ///
    /// # Errors
    /// If the server task failed or panicked.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .context("the server task panicked")?
                .context("the server failed")?;
        }
        Ok(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
