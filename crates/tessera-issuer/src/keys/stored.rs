//! Signing keys kept in the store, so that every instance of the token service signs with, and publishes,
//! the same keys, and a key rotation reaches them all.
//!
//! A key's life, driven by times every instance computes alike from the store:
//!
//! 1. **Pending**: added with `active_from` in the future. It is published (JWKS) and verifies, but does not
//!    sign yet, so that verifiers that cache the JWKS have it before the first token it signs.
//! 2. **Signing**: from `active_from` on, until a newer key's `active_from` passes. The signer is the key
//!    with the latest `active_from` not in the future.
//! 3. **Retiring**: superseded, it still verifies and is published until every token it signed has expired
//!    (the access-token lifetime plus the verifiers' leeway after it was superseded).
//! 4. Then it is deleted from the store.
//!
//! The first instance to start on an empty store creates the first key; instances starting together agree
//! on one ([`RefreshStore::add_signing_key`] with `only_if_none`).

use tessera_core::jose::{Algorithm, KeyError, SigningKey};
use tessera_core::random;

use super::sealing::{OpenError, Sealer};
use super::{SigningKeys, decode_material, encode_material, new_kid};
use crate::store::{RefreshStore, StoreError, StoredKey};

/// The name the refresh-token secret is stored under.
const REFRESH_SECRET_NAME: &str = "refresh-token-secret";

/// A key operation on the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredKeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be generated or decoded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A stored key or secret is sealed but no key-encryption secret is configured.
    #[error(
        "the stored `{0}` is sealed, but no key-encryption secret is configured; set the same \
         IssuerBuilder::key_encryption_secret on every instance"
    )]
    SealedWithoutSecret(String),
    /// A stored key or secret does not open with the configured key-encryption secret.
    #[error(
        "the stored `{0}` does not open with the configured key-encryption secret (another secret sealed \
         it, or the record was altered)"
    )]
    Unseal(String),
    /// A stored secret has the wrong length.
    #[error("the stored `{0}` is not a {1}-byte secret")]
    SecretLength(String, usize),
    /// This issuer's keys are not in its store (it was built with fixed keys or a key directory).
    #[error(
        "this issuer's signing keys are not kept in its store (it was built with .keys or .key_dir); \
         rotate them where they live"
    )]
    NotInStore,
}

impl StoredKeyError {
    fn opening(name: &str, error: OpenError) -> StoredKeyError {
        match error {
            OpenError::NoSecret => StoredKeyError::SealedWithoutSecret(name.to_owned()),
            OpenError::Invalid => StoredKeyError::Unseal(name.to_owned()),
        }
    }
}

/// Where a stored key is in its life: published before it signs, signing, then verifying until the last
/// token it signed has expired ([`Issuer::rotate_signing_key`](crate::Issuer::rotate_signing_key)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// Published, signing from its `active_from`.
    Pending,
    /// Signing new access tokens.
    Signing,
    /// Superseded; published and verifying until `until`, then deleted.
    Retiring {
        /// When the last token it signed has expired (plus leeway).
        until: i64,
    },
    /// Verifying without signing, kept where the keys were given (the builder, a key directory), not in
    /// the store: retire it there.
    Verifying,
}

/// A signing key as an operator sees it ([`Issuer::signing_keys`](crate::Issuer::signing_keys)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyStatus {
    /// Its `kid`.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// When it was added (seconds since the Unix epoch; 0 when unknown: keys not kept in the store).
    pub created_at: i64,
    /// When it signs from (0 when unknown).
    pub active_from: i64,
    /// Where it is in its life.
    pub state: KeyState,
}

/// The store's keys, decoded, by `active_from` then `kid`.
#[derive(Debug, Clone)]
pub(crate) struct StoredKeys {
    keys: Vec<(StoredKey, SigningKey)>,
}

/// Reads, creates and seals the keys in the store.
#[derive(Debug)]
pub(crate) struct KeyVault {
    sealer: Sealer,
    algorithm: Algorithm,
    /// How long a superseded key keeps verifying: the access-token lifetime plus the verifiers' leeway.
    horizon: i64,
}

impl KeyVault {
    pub(crate) fn new(sealer: Sealer, algorithm: Algorithm, horizon: i64) -> KeyVault {
        KeyVault {
            sealer,
            algorithm,
            horizon,
        }
    }

    /// The store's keys, with a first one created (signing from `now`) if it holds none.
    pub(crate) async fn load_or_create<S: RefreshStore>(
        &self,
        store: &S,
        now: i64,
    ) -> Result<StoredKeys, StoredKeyError> {
        let stored = store.signing_keys().await?;
        if !stored.is_empty() {
            return self.decode(stored);
        }
        let (first, _) = self.generate(now, now)?;
        let stored = store.add_signing_key(first, true).await?;
        let keys = self.decode(stored)?;
        tracing::info!("created the first access-token signing key in the store");
        Ok(keys)
    }

    /// The store's keys.
    pub(crate) async fn load<S: RefreshStore>(
        &self,
        store: &S,
    ) -> Result<StoredKeys, StoredKeyError> {
        self.decode(store.signing_keys().await?)
    }

    /// Adds a new key of the configured algorithm that signs from `active_from`; returns its `kid` and
    /// every key afterwards.
    pub(crate) async fn add<S: RefreshStore>(
        &self,
        store: &S,
        now: i64,
        active_from: i64,
    ) -> Result<(String, StoredKeys), StoredKeyError> {
        let (key, kid) = self.generate(now, active_from)?;
        let stored = store.add_signing_key(key, false).await?;
        tracing::info!(
            kid,
            active_from,
            "added an access-token signing key to the store"
        );
        Ok((kid, self.decode(stored)?))
    }

    /// Deletes the keys that finished retiring by `now`; returns their `kid`s.
    pub(crate) async fn remove_retired<S: RefreshStore>(
        &self,
        store: &S,
        keys: &StoredKeys,
        now: i64,
    ) -> Result<Vec<String>, StoredKeyError> {
        let mut removed = Vec::new();
        for (status, _) in keys.lives(now, self.horizon) {
            if let KeyState::Retiring { until } = status.state
                && until <= now
            {
                if store.remove_signing_key(&status.kid).await? {
                    tracing::info!(
                        kid = status.kid,
                        "deleted a retired access-token signing key"
                    );
                }
                removed.push(status.kid);
            }
        }
        Ok(removed)
    }

    /// The refresh-token secret every instance shares: the stored one, or a fresh one stored now.
    pub(crate) async fn refresh_secret<S: RefreshStore, const LEN: usize>(
        &self,
        store: &S,
    ) -> Result<[u8; LEN], StoredKeyError> {
        let candidate = random::bytes::<LEN>().map_err(KeyError::from)?;
        let sealed = self
            .sealer
            .seal(REFRESH_SECRET_NAME, &candidate)
            .map_err(|_| KeyError::Generate {
                algorithm: self.algorithm,
            })?;
        let stored = store.shared_secret(REFRESH_SECRET_NAME, &sealed).await?;
        let secret = self
            .sealer
            .open(REFRESH_SECRET_NAME, &stored)
            .map_err(|error| StoredKeyError::opening(REFRESH_SECRET_NAME, error))?;
        secret
            .try_into()
            .map_err(|_| StoredKeyError::SecretLength(REFRESH_SECRET_NAME.to_owned(), LEN))
    }

    /// The signing-key horizon: how long a superseded key keeps verifying.
    pub(crate) fn horizon(&self) -> i64 {
        self.horizon
    }

    fn generate(&self, now: i64, active_from: i64) -> Result<(StoredKey, String), StoredKeyError> {
        let kid = new_kid(self.algorithm, now)?;
        let key = SigningKey::generate_with_kid(kid.clone(), self.algorithm)?;
        let material = self
            .sealer
            .seal(&kid, &encode_material(&key)?)
            .map_err(|_| KeyError::Generate {
                algorithm: self.algorithm,
            })?;
        let stored = StoredKey {
            kid: kid.clone(),
            algorithm: self.algorithm,
            material,
            created_at: now,
            active_from,
        };
        Ok((stored, kid))
    }

    fn decode(&self, stored: Vec<StoredKey>) -> Result<StoredKeys, StoredKeyError> {
        let mut keys = Vec::with_capacity(stored.len());
        for record in stored {
            let material = self
                .sealer
                .open(&record.kid, &record.material)
                .map_err(|error| StoredKeyError::opening(&record.kid, error))?;
            let key = decode_material(&record.kid, record.algorithm, &material)?;
            keys.push((record, key));
        }
        keys.sort_by(|(a, _), (b, _)| (a.active_from, &a.kid).cmp(&(b.active_from, &b.kid)));
        Ok(StoredKeys { keys })
    }
}

impl StoredKeys {
    /// Each key's status at `now`, by `active_from`, with the key.
    fn lives(&self, now: i64, horizon: i64) -> Vec<(SigningKeyStatus, &SigningKey)> {
        let signer = self.signer_index(now);
        self.keys
            .iter()
            .enumerate()
            .map(|(index, (record, key))| {
                let state = if index == signer {
                    KeyState::Signing
                } else if index > signer {
                    KeyState::Pending
                } else {
                    // Superseded when the next key started signing.
                    let superseded = self.keys[index + 1].0.active_from;
                    KeyState::Retiring {
                        until: superseded.saturating_add(horizon),
                    }
                };
                let status = SigningKeyStatus {
                    kid: record.kid.clone(),
                    algorithm: record.algorithm,
                    created_at: record.created_at,
                    active_from: record.active_from,
                    state,
                };
                (status, key)
            })
            .collect()
    }

    /// The index of the signer at `now`: the latest `active_from` not after it, else the earliest key.
    fn signer_index(&self, now: i64) -> usize {
        self.keys
            .iter()
            .rposition(|(record, _)| record.active_from <= now)
            .unwrap_or(0)
    }

    /// The keys in use at `now`: the signer, and every pending or still-retiring key verifying; `None` if
    /// the store holds no key.
    pub(crate) fn at(&self, now: i64, horizon: i64) -> Result<Option<SigningKeys>, KeyError> {
        let lives = self.lives(now, horizon);
        let Some((_, signer)) = lives
            .iter()
            .find(|(status, _)| status.state == KeyState::Signing)
        else {
            return Ok(None);
        };
        let mut keys = SigningKeys::new((*signer).clone())?;
        for (status, key) in &lives {
            let verifying = match status.state {
                KeyState::Pending => true,
                KeyState::Retiring { until } => until > now,
                KeyState::Signing | KeyState::Verifying => false,
            };
            if verifying {
                keys = keys.with_retired(key)?;
            }
        }
        Ok(Some(keys))
    }

    /// The status of every key at `now`.
    pub(crate) fn statuses(&self, now: i64, horizon: i64) -> Vec<SigningKeyStatus> {
        self.lives(now, horizon)
            .into_iter()
            .map(|(status, _)| status)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    const NOW: i64 = 1_800_000_000;

    #[tokio::test]
    async fn a_rotation_publishes_first_switches_at_activation_and_retires_after_the_horizon() {
        let store = MemoryStore::new();
        let vault = KeyVault::new(Sealer::new(Some(&[3; 32])), Algorithm::EdDsa, 1_000);
        let first = vault.load_or_create(&store, NOW).await.unwrap();
        let at = |keys: &StoredKeys, now| keys.at(now, 1_000).unwrap().unwrap();
        let old = at(&first, NOW).signer().kid().to_owned();
        let again = vault.load_or_create(&store, NOW + 1).await.unwrap();
        assert_eq!(at(&again, NOW).signer().kid(), old, "created once");

        let (new, keys) = vault.add(&store, NOW + 10, NOW + 600).await.unwrap();
        let before = at(&keys, NOW + 599);
        assert_eq!(before.signer().kid(), old);
        assert!(
            before.verifying().get(&new).is_some(),
            "published before it signs"
        );
        let after = at(&keys, NOW + 600);
        assert_eq!(after.signer().kid(), new);
        assert!(
            after.verifying().get(&old).is_some(),
            "the old key still verifies"
        );
        assert_eq!(
            keys.statuses(NOW + 600, 1_000)[0].state,
            KeyState::Retiring { until: NOW + 1_600 }
        );
        assert!(
            vault
                .remove_retired(&store, &keys, NOW + 1_599)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(at(&keys, NOW + 1_600).verifying().get(&old).is_none());
        assert_eq!(
            vault
                .remove_retired(&store, &keys, NOW + 1_600)
                .await
                .unwrap(),
            std::slice::from_ref(&old)
        );
        let left = vault.load(&store).await.unwrap();
        assert_eq!(left.statuses(NOW + 1_600, 1_000).len(), 1);

        let plain = KeyVault::new(Sealer::new(None), Algorithm::EdDsa, 1_000);
        assert!(matches!(
            plain.load(&store).await,
            Err(StoredKeyError::SealedWithoutSecret(kid)) if kid == new
        ));
        let secret: [u8; 32] = vault.refresh_secret(&store).await.unwrap();
        assert_eq!(vault.refresh_secret::<_, 32>(&store).await.unwrap(), secret);
    }
}
