//! Where tokens live between refreshes and across restarts.

mod file;
mod memory;

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::TokenSet;

pub use file::FileTokenStore;
pub use memory::MemoryTokenStore;

/// Persistence for the client's tokens.
///
/// [`AuthMiddleware`](crate::AuthMiddleware) loads from the store on first use and saves every new pair
/// before any request may use it: if [`save`](TokenStore::save) fails, the new pair is not handed out (fail
/// closed) and is retried on the next refresh attempt instead of asking the token endpoint again, so a
/// rotated refresh token is never lost to a transient storage fault.
///
/// The default is [`MemoryTokenStore`]; [`FileTokenStore`] keeps tokens across restarts and can be shared by
/// several processes.
///
/// A store that several processes (or several middlewares) share implements [`TokenStore::lock`]: the
/// middleware then holds the lock from re-reading the store through the refresh to saving its result, so
/// that a refresh token is never presented twice (which a token service with reuse detection takes for
/// theft, revoking the session).
#[async_trait]
pub trait TokenStore: std::fmt::Debug + Send + Sync + 'static {
    /// The stored tokens, or `None` if there are none.
    async fn load(&self) -> Result<Option<TokenSet>, StoreError>;

    /// Replaces the stored tokens. Must be durable (or as durable as the store promises) when it returns.
    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError>;

    /// Forgets the stored tokens: after a terminal refresh failure or a logout.
    async fn clear(&self) -> Result<(), StoreError>;

    /// Takes the store's exclusive lock, held until the returned guard is dropped; `None` (the default)
    /// for a store that only one middleware uses.
    ///
    /// With a lock, the middleware re-reads the store before every refresh and adopts tokens another
    /// holder saved meanwhile instead of presenting its own, possibly consumed, refresh token. It waits for
    /// the lock at most the refresh timeout. [`set_tokens`](crate::AuthMiddleware::set_tokens) and
    /// [`clear`](crate::AuthMiddleware::clear) take it too, so a logout is not undone by another holder's
    /// refresh.
    async fn lock(&self) -> Result<Option<StoreLock>, StoreError> {
        Ok(None)
    }
}

/// A held [`TokenStore`] lock; dropping it releases the lock.
#[must_use = "the lock is released when this is dropped"]
pub struct StoreLock {
    _guard: Box<dyn Any + Send + Sync>,
}

impl StoreLock {
    /// Wraps whatever holds the lock (a locked file, a database transaction, a mutex guard).
    pub fn new(guard: impl Any + Send + Sync) -> Self {
        StoreLock {
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Why a [`TokenStore`] could not load, save or clear tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the token file failed; check the path and its permissions.
    #[error("token file {path} could not be accessed: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The stored data is not a token set; delete it and sign in again.
    #[error("token file {path} does not hold a token set: {source}")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// The parse error (it never quotes the file's content).
        #[source]
        source: serde_json::Error,
    },
    /// Another holder of the store's lock (another process sharing the token file) kept it longer than the
    /// refresh timeout. Transient: the next attempt waits again.
    #[error("the token store stayed locked by another holder for {0:?}")]
    Locked(Duration),
    /// A custom store's backend failed (or an `on_tokens_changed` hook refused the tokens).
    #[error("token storage failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a custom store's (or hook's) error.
    pub fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend(error.into())
    }
}
