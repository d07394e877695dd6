use std::sync::Mutex;

use async_trait::async_trait;

use super::{StoreError, TokenStore};
use crate::TokenSet;

/// Keeps tokens in memory only: they are gone when the process exits. The default store.
#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<Option<TokenSet>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryTokenStore::default()
    }

    /// A store that starts with `tokens`, e.g. the answer of a login made before building the client.
    pub fn with_tokens(tokens: TokenSet) -> Self {
        MemoryTokenStore {
            tokens: Mutex::new(Some(tokens)),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<TokenSet>> {
        // The guarded value is replaced whole, so a panic elsewhere cannot leave it half-written.
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("has_tokens", &self.slot().is_some())
            .finish()
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        Ok(self.slot().clone())
    }

    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        *self.slot() = Some(tokens.clone());
        Ok(())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        *self.slot() = None;
        Ok(())
    }
}
