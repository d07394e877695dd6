//! Stopping a server cleanly on Ctrl-C or `SIGTERM`.

use std::future::Future;

/// A future that resolves on Ctrl-C (`SIGINT`) or, on Unix, `SIGTERM`.
///
/// The signal handlers are installed when this is called, not when the future is first polled: call it at
/// the start of `main`, so a signal sent during a slow startup (key generation, password hashing) is not
/// lost, even where the shell started the process with `SIGINT` ignored.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        let ctrl_c = tokio::signal::ctrl_c();
        Ok(async move {
            if let Err(error) = ctrl_c.await {
                tracing::warn!(%error, "cannot listen for Ctrl-C; stop the process another way");
                std::future::pending::<()>().await;
            }
        })
    }
}
