//! Where tokens live between refreshes and across restarts.

mod file;
mod memory;

use std::path::PathBuf;

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
/// The default is [`MemoryTokenStore`]; [`FileTokenStore`] keeps tokens across restarts.
#[async_trait]
pub trait TokenStore: std::fmt::Debug + Send + Sync + 'static {
    /// The stored tokens, or `None` if there are none.
    async fn load(&self) -> Result<Option<TokenSet>, StoreError>;

    /// Replaces the stored tokens. Must be durable (or as durable as the store promises) when it returns.
    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError>;

    /// Forgets the stored tokens: after a terminal refresh failure or a logout.
    async fn clear(&self) -> Result<(), StoreError>;
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
