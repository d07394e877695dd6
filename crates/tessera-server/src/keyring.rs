//! The swappable key set a layer reads its keys from.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tessera_core::jose::KeySet;

/// A swappable [`KeySet`] shared by every layer built with it: replace the set to rotate keys while the
/// server runs. Reads never wait; a replacement is visible to the next request.
///
/// ```
/// use tessera_server::{JwtKey, KeyRing, KeySet};
///
/// let old = JwtKey::hmac([1; 32])?.with_kid("old");
/// let ring = KeyRing::new(KeySet::new([old])?);
/// let new = JwtKey::hmac([2; 32])?.with_kid("new");
/// ring.replace(KeySet::new([new])?);
/// assert!(ring.current().get("old").is_none());
/// # Ok::<(), tessera_server::KeyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeyRing {
    live: Arc<ArcSwap<KeySet>>,
}

impl KeyRing {
    /// A ring holding `keys`.
    pub fn new(keys: KeySet) -> KeyRing {
        KeyRing {
            live: Arc::new(ArcSwap::from_pointee(keys)),
        }
    }

    /// Makes `keys` the live set. Keys present in both sets keep their cached verifications.
    pub fn replace(&self, keys: KeySet) {
        self.live.rcu(|previous| keys.clone().reusing(previous));
    }

    /// The live set.
    pub fn current(&self) -> Arc<KeySet> {
        self.live.load_full()
    }

    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.live.load()
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::jose::JwtKey;

    use super::*;

    fn hmac(byte: u8, kid: &str) -> JwtKey {
        JwtKey::hmac([byte; 32]).unwrap().with_kid(kid)
    }

    #[test]
    fn replacing_keeps_instances_of_unchanged_keys() {
        let ring = KeyRing::new(KeySet::new([hmac(1, "a"), hmac(2, "b")]).unwrap());
        let before = ring.current();
        ring.replace(KeySet::new([hmac(2, "b"), hmac(3, "c")]).unwrap());
        let after = ring.current();
        let kept = before.shared().find(|key| key.kid() == Some("b")).unwrap();
        assert!(after.contains(kept));
        let dropped = before.shared().find(|key| key.kid() == Some("a")).unwrap();
        assert!(!after.contains(dropped));
    }
}
