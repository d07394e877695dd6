//! Values that may be used once (a client assertion's `jti`, a DPoP proof's `jti`), as a store keeps them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use aws_lc_rs::digest::{Context, SHA256};

use super::{RefreshStore, StoreError};

/// The key of a one-time value: SHA-256 of its purpose and the parts that name it (for a client
/// assertion, the client id and the `jti`), so that every entry has the same small size whatever the client
/// sent, and values of different purposes never collide.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnceKey([u8; 32]);

impl OnceKey {
    /// The key of the value named by `parts`, used for `purpose` (a short constant such as
    /// `"client_assertion"`).
    pub fn new(purpose: &str, parts: &[&str]) -> OnceKey {
        let mut context = Context::new(&SHA256);
        for part in std::iter::once(&purpose).chain(parts) {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part.as_bytes());
        }
        let mut key = [0; 32];
        key.copy_from_slice(context.finish().as_ref());
        OnceKey(key)
    }

    /// A key from its 32 stored bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<OnceKey> {
        bytes.try_into().ok().map(OnceKey)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for OnceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OnceKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The one-time values of a store, for the parts of the service that are not generic over the store (client
/// authentication): every [`RefreshStore`] is one.
pub(crate) trait OneTimeValues: Send + Sync + 'static {
    /// [`RefreshStore::use_once`].
    fn first_use(
        &self,
        key: OnceKey,
        expires_at: i64,
        now: i64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + '_>>;
}

impl<S: RefreshStore> OneTimeValues for S {
    fn first_use(
        &self,
        key: OnceKey,
        expires_at: i64,
        now: i64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + '_>> {
        Box::pin(async move { self.use_once(&key, expires_at, now).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_purposes_never_collide() {
        let key = OnceKey::new("client_assertion", &["ab", "c"]);
        assert_ne!(key, OnceKey::new("client_assertion", &["a", "bc"]));
        assert_ne!(key, OnceKey::new("dpop_proof", &["ab", "c"]));
        assert_eq!(key, OnceKey::new("client_assertion", &["ab", "c"]));
        assert_eq!(OnceKey::from_slice(key.as_bytes()), Some(key));
    }
}
