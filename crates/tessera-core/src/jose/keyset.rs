use std::sync::Arc;

use super::jwk::{Secrets, keys_from_jwks};
use super::{Algorithm, JwtKey, KeyError};

/// The keys that are live at one moment: several during a rotation, each with its own `kid`.
///
/// Immutable and cheap to clone. A resource server swaps whole sets (tessera-server's `KeyRing`), so a
/// verification always sees one consistent set.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Arc<[Arc<JwtKey>]>,
}

/// The key a token selected, or why none could be. A key is a match for a token's `alg` when it
/// [accepts](JwtKey::accepts) it.
#[derive(Debug)]
pub enum Selection<'a> {
    /// The token named this key by `kid`, or it is the only key accepting the token's algorithm.
    One(&'a Arc<JwtKey>),
    /// The token has no `kid`; several keys accept its algorithm and each may have signed it.
    Candidates,
    /// No key has the token's `kid`, or the set is empty.
    UnknownKid,
    /// The key named by `kid`, or every key, does not accept the token's algorithm.
    AlgorithmMismatch,
}

impl KeySet {
    /// A set of keys.
    ///
    /// # Errors
    /// [`KeyError::DuplicateKid`] when two keys share a `kid`.
    pub fn new(keys: impl IntoIterator<Item = JwtKey>) -> Result<KeySet, KeyError> {
        KeySet::from_shared(keys.into_iter().map(Arc::new).collect())
    }

    /// A set of keys that are already shared, keeping their identity (see [`KeySet::contains`]).
    ///
    /// # Errors
    /// [`KeyError::DuplicateKid`] when two keys share a `kid`.
    pub fn from_shared(keys: Vec<Arc<JwtKey>>) -> Result<KeySet, KeyError> {
        for (index, key) in keys.iter().enumerate() {
            if let Some(kid) = key.kid()
                && keys[..index]
                    .iter()
                    .any(|earlier| earlier.kid() == Some(kid))
            {
                return Err(KeyError::DuplicateKid(kid.to_owned()));
            }
        }
        Ok(KeySet { keys: keys.into() })
    }

    /// The signature keys of a JWKS document (RFC 7517 §5); entries that are not usable signature keys
    /// (encryption keys, unsupported types) are skipped.
    ///
    /// # Errors
    /// [`KeyError::InvalidJwks`] when the document is not a key set, [`KeyError::Empty`] when no entry is
    /// usable, [`KeyError::DuplicateKid`] when two usable entries share a `kid`.
    pub fn from_jwks_json(json: &str) -> Result<KeySet, KeyError> {
        KeySet::new(keys_from_jwks(json.as_bytes(), Secrets::Allowed)?)
    }

    /// Parses a JWKS published by an issuer, where a shared secret has no business being: `oct` entries are
    /// skipped like any other unusable entry.
    ///
    /// # Errors
    /// As [`KeySet::from_jwks_json`].
    pub fn from_published_jwks(json: &[u8]) -> Result<KeySet, KeyError> {
        KeySet::new(keys_from_jwks(json, Secrets::Refused)?)
    }

    /// How many keys are live.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The live keys.
    pub fn iter(&self) -> impl Iterator<Item = &JwtKey> {
        self.keys.iter().map(|key| &**key)
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&JwtKey> {
        self.keys
            .iter()
            .find(|key| key.kid() == Some(kid))
            .map(|key| &**key)
    }

    /// The key a token with this `kid` and `alg` header selects.
    pub fn select(&self, kid: Option<&str>, algorithm: Algorithm) -> Selection<'_> {
        if self.keys.is_empty() {
            // Nothing loaded yet (a remote set before its first fetch): as unknown as a key can be.
            return Selection::UnknownKid;
        }
        match kid {
            Some(kid) => match self.keys.iter().find(|key| key.kid() == Some(kid)) {
                Some(key) if key.accepts(algorithm) => Selection::One(key),
                Some(_) => Selection::AlgorithmMismatch,
                None => Selection::UnknownKid,
            },
            None => {
                let mut matching = self.candidates(algorithm);
                match (matching.next(), matching.next()) {
                    (Some(only), None) => Selection::One(only),
                    (Some(_), Some(_)) => Selection::Candidates,
                    (None, _) => Selection::AlgorithmMismatch,
                }
            }
        }
    }

    /// The live keys, as shared handles.
    pub fn shared(&self) -> impl Iterator<Item = &Arc<JwtKey>> {
        self.keys.iter()
    }

    /// The live keys that accept `algorithm`.
    pub fn candidates(&self, algorithm: Algorithm) -> impl Iterator<Item = &Arc<JwtKey>> {
        self.keys.iter().filter(move |key| key.accepts(algorithm))
    }

    /// Whether this very key (not merely an equal one) is live: what a cached verification depends on.
    pub fn contains(&self, key: &Arc<JwtKey>) -> bool {
        self.keys.iter().any(|live| Arc::ptr_eq(live, key))
    }

    /// This set, with every key that `previous` already held replaced by the previous instance, so that
    /// cached verifications made with an unchanged key stay valid across a refresh.
    pub fn reusing(self, previous: &KeySet) -> KeySet {
        let keys = self
            .keys
            .iter()
            .map(|key| {
                let same = previous.keys.iter().find(|old| old.same_key(key));
                Arc::clone(same.unwrap_or(key))
            })
            .collect::<Vec<_>>();
        KeySet { keys: keys.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(byte: u8, kid: &str) -> JwtKey {
        JwtKey::hmac([byte; 32]).unwrap().with_kid(kid)
    }

    #[test]
    fn duplicate_kids_are_refused() {
        assert!(
            matches!(KeySet::new([hmac(1, "a"), hmac(2, "a")]), Err(KeyError::DuplicateKid(kid)) if kid == "a")
        );
    }

    #[test]
    fn kid_selects_and_algorithm_must_match() {
        let set = KeySet::new([hmac(1, "a"), hmac(2, "b")]).unwrap();
        assert!(
            matches!(set.select(Some("b"), Algorithm::Hs256), Selection::One(key) if key.kid() == Some("b"))
        );
        assert!(matches!(
            set.select(Some("b"), Algorithm::Rs256),
            Selection::AlgorithmMismatch
        ));
        assert!(matches!(
            set.select(Some("c"), Algorithm::Hs256),
            Selection::UnknownKid
        ));
        assert!(matches!(
            set.select(None, Algorithm::Hs256),
            Selection::Candidates
        ));
        assert!(matches!(
            set.select(None, Algorithm::Es256),
            Selection::AlgorithmMismatch
        ));
    }
}
