//! The hand-off of tokens to the application: the [`TokenStore`] keeps them, and the awaited
//! `on_tokens_changed` hook learns of every new pair, both before any request may use it.
//!
//! Writes are serialised: a [`Writing`] is the only way to save or clear, and holding it keeps every other
//! writer out, so a refresh landing, a login and a session ending cannot interleave their saves and clears.
//! A store shared with other processes also has a lock of its own ([`Persistence::lock`]): a flight holds
//! it from re-reading the store to saving, and a login or logout takes it before writing. It is always
//! taken before the right to write, never the other way round.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{self, BoxFuture, Either};
use tokio::sync::{Mutex, MutexGuard};

use crate::{Clock, StoreError, StoreLock, TokenSet, TokenStore};

/// The awaited hook run after the store accepted a new pair and before any request uses it.
pub(crate) type TokensChangedHook =
    Arc<dyn Fn(TokenSet) -> BoxFuture<'static, Result<(), StoreError>> + Send + Sync>;

pub(crate) struct Persistence {
    pub(crate) store: Arc<dyn TokenStore>,
    on_tokens_changed: Option<TokensChangedHook>,
    writes: Mutex<()>,
}

impl Persistence {
    pub(crate) fn new(
        store: Arc<dyn TokenStore>,
        on_tokens_changed: Option<TokensChangedHook>,
    ) -> Self {
        Persistence {
            store,
            on_tokens_changed,
            writes: Mutex::new(()),
        }
    }

    /// The stored tokens, if any.
    pub(crate) async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.store.load().await
    }

    /// The store's lock, for a store shared with other holders (see [`TokenStore::lock`]), waiting at most
    /// `patience` on `clock`; `None` for a store this middleware alone uses.
    pub(crate) async fn lock(
        &self,
        clock: &dyn Clock,
        patience: Duration,
    ) -> Result<Option<StoreLock>, StoreError> {
        match future::select(pin!(self.store.lock()), clock.sleep(patience)).await {
            Either::Left((lock, _)) => lock,
            Either::Right(((), _)) => Err(StoreError::Locked(patience)),
        }
    }

    /// Waits until no one else writes. Hold it across the write and the state change that goes with it.
    pub(crate) async fn begin(&self) -> Writing<'_> {
        Writing {
            persistence: self,
            _exclusive: self.writes.lock().await,
        }
    }
}

/// The right to write, held by one writer at a time.
pub(crate) struct Writing<'a> {
    persistence: &'a Persistence,
    _exclusive: MutexGuard<'a, ()>,
}

impl Writing<'_> {
    /// Saves, then runs the hook: both must accept the pair before anyone may use it.
    pub(crate) async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        self.persistence.store.save(tokens).await?;
        if let Some(hook) = &self.persistence.on_tokens_changed {
            hook(tokens.clone()).await?;
        }
        Ok(())
    }

    /// Forgets the stored tokens.
    pub(crate) async fn clear(&self) -> Result<(), StoreError> {
        self.persistence.store.clear().await
    }
}
