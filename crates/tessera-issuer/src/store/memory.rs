//! A store in process memory: for tests, demos and single-instance deployments that accept losing every
//! session on restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    ChangeNotifier, Denial, DenialBatch, DenialKind, Family, FamilyId, LastRotation, LoginAttempt,
    NewFamily, OnceKey, PurgeReport, RefreshStore, RequestFingerprint, Revocation, Revoke,
    RevokeReason, Rotation, RotationOutcome, RotationSalt, StoreChanges, StoreError, StoredKey,
    ThrottleEntry, ThrottleKey, ThrottleRule, TokenHash, Verdict, key_matches,
};

/// How many login-throttle entries a [`MemoryStore`] keeps by default; past it, the least recently
/// touched entry is forgotten.
pub const DEFAULT_THROTTLE_CAPACITY: usize = 100_000;

/// How many expired one-time values a use of another one deletes on the way, so that memory stays bounded
/// between purges however many values arrive.
const ONCE_EXPIRY_PER_USE: usize = 4;

/// A [`RefreshStore`] in memory. Every operation takes one short lock, costs at most a logarithm of what
/// the store holds (purges: per deleted record), and never awaits while holding it.
///
/// The login throttle keeps at most [`DEFAULT_THROTTLE_CAPACITY`] entries (see
/// [`MemoryStore::with_throttle_capacity`]), forgetting the least recently touched one when full.
///
/// ```
/// use tessera_issuer::MemoryStore;
///
/// let store = MemoryStore::new();
/// # let _ = store;
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    closed: AtomicBool,
    state: Mutex<State>,
    throttle: Mutex<Throttle>,
    changes: ChangeNotifier,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_throttle_capacity(DEFAULT_THROTTLE_CAPACITY)
    }
}

#[derive(Debug, Default)]
struct State {
    families: HashMap<FamilyId, Entry>,
    tokens: HashMap<TokenHash, (FamilyId, u64)>,
    denials: Denials,
    once: HashMap<OnceKey, i64>,
    /// `(expires_at, key)` of every one-time value, to expire them oldest first.
    once_expiry: BTreeSet<(i64, OnceKey)>,
    /// By `active_from`, then `kid`.
    keys: Vec<StoredKey>,
    secrets: HashMap<String, Vec<u8>>,
}

#[derive(Debug)]
struct Entry {
    family: Family,
    current: TokenHash,
    salt: Option<RotationSalt>,
    /// The fingerprint of the request that last rotated the family.
    fingerprint: Option<RequestFingerprint>,
    /// Retries served since the last rotation.
    retries: u32,
    /// Every token hash of the family, so purging can find them without scanning all tokens.
    tokens: Vec<TokenHash>,
}

/// The denial log: every denial with the sequence number of its last write.
#[derive(Debug, Default)]
struct Denials {
    by_key: HashMap<(DenialKind, String), (Denial, u64)>,
    by_seq: BTreeMap<u64, (DenialKind, String)>,
    /// `(until, seq)`, to purge the ended ones first.
    by_end: BTreeSet<(i64, u64)>,
    last: u64,
}

impl Denials {
    /// Records `denial`; whether it changed anything.
    fn write(&mut self, denial: Denial) -> bool {
        let (kind, key) = denial.key();
        let id = (kind, key.to_owned());
        let (denial, old_seq) = match self.by_key.get(&id) {
            Some((known, seq)) => {
                let merged = known.clone().merged(&denial);
                if merged == *known {
                    return false;
                }
                self.by_end.remove(&(known.until, *seq));
                (merged, Some(*seq))
            }
            None => (denial, None),
        };
        if let Some(seq) = old_seq {
            self.by_seq.remove(&seq);
        }
        self.last += 1;
        self.by_seq.insert(self.last, id.clone());
        self.by_end.insert((denial.until, self.last));
        self.by_key.insert(id, (denial, self.last));
        true
    }

    fn after(&self, after: u64, now: i64, limit: usize) -> DenialBatch {
        let mut batch = DenialBatch {
            last: after,
            ..DenialBatch::default()
        };
        for (seq, id) in self.by_seq.range(after.saturating_add(1)..) {
            if batch.denials.len() == limit {
                break;
            }
            let (denial, _) = &self.by_key[id];
            if denial.until > now {
                batch.denials.push(denial.clone());
                batch.last = *seq;
            }
        }
        batch.more = batch.denials.len() == limit;
        batch
    }

    /// Deletes at most `batch` denials that ended by `now`; returns how many.
    fn purge(&mut self, now: i64, batch: usize) -> u64 {
        let mut deleted = 0;
        while deleted < batch {
            let Some(&(until, seq)) = self.by_end.first() else {
                break;
            };
            if until > now {
                break;
            }
            self.by_end.pop_first();
            if let Some(id) = self.by_seq.remove(&seq) {
                self.by_key.remove(&id);
            }
            deleted += 1;
        }
        deleted as u64
    }
}

/// The login throttle: bounded, least recently touched entry forgotten first.
#[derive(Debug)]
struct Throttle {
    /// key -> (entry, when it may be forgotten, its place in `recency`).
    entries: HashMap<ThrottleKey, (ThrottleEntry, i64, u64)>,
    recency: BTreeMap<u64, ThrottleKey>,
    next: u64,
    capacity: usize,
}

impl Throttle {
    fn put(&mut self, key: ThrottleKey, entry: ThrottleEntry, forget_at: i64) {
        if let Some((_, _, place)) = self.entries.remove(&key) {
            self.recency.remove(&place);
        } else if self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.recency.pop_first()
        {
            self.entries.remove(&oldest);
        }
        self.next += 1;
        self.recency.insert(self.next, key);
        self.entries.insert(key, (entry, forget_at, self.next));
    }

    fn remove(&mut self, key: &ThrottleKey) {
        if let Some((_, _, place)) = self.entries.remove(key) {
            self.recency.remove(&place);
        }
    }

    /// Deletes at most `batch` entries that may be forgotten at `now`, least recently touched first (an
    /// entry still locked stops the sweep: the capacity bounds the rest).
    fn purge(&mut self, now: i64, batch: usize) -> u64 {
        let mut deleted = 0;
        while deleted < batch {
            let Some((&place, key)) = self.recency.first_key_value() else {
                break;
            };
            if self
                .entries
                .get(key)
                .is_none_or(|(_, forget_at, _)| *forget_at > now)
            {
                break;
            }
            let key = *key;
            self.recency.remove(&place);
            self.entries.remove(&key);
            deleted += 1;
        }
        deleted as u64
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// An empty store keeping at most `capacity` login-throttle entries (at least 1).
    pub fn with_throttle_capacity(capacity: usize) -> Self {
        MemoryStore {
            closed: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            throttle: Mutex::new(Throttle {
                entries: HashMap::new(),
                recency: BTreeMap::new(),
                next: 0,
                capacity: capacity.max(1),
            }),
            changes: ChangeNotifier::new(),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// The state, unless the store was closed.
    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.check_open()?;
        // Every mutation below completes or leaves state untouched, so a poisoned lock holds valid data.
        Ok(self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn throttle(&self) -> Result<MutexGuard<'_, Throttle>, StoreError> {
        self.check_open()?;
        Ok(self.throttle.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl State {
    /// Revokes a family and denies its access tokens.
    fn revoke(&mut self, id: &FamilyId, revoke: Revoke) -> Option<Family> {
        let entry = self.families.get_mut(id)?;
        if entry.family.revoked.is_some() {
            return None;
        }
        entry.family.revoked = Some(Revocation {
            at: revoke.now,
            reason: revoke.reason,
        });
        let family = entry.family.clone();
        self.denials.write(revoke.session_denial(id));
        Some(family)
    }
}

impl RefreshStore for MemoryStore {
    async fn create_family(&self, new: NewFamily, cap: usize) -> Result<Vec<Family>, StoreError> {
        let mut state = self.lock()?;
        let now = new.created_at;
        let mut live: Vec<(i64, FamilyId)> = state
            .families
            .values()
            .map(|entry| &entry.family)
            .filter(|family| {
                family.user_id == new.user_id
                    && family.client_id == new.client_id
                    && family.is_live(now)
            })
            .map(|family| (family.created_at, family.id.clone()))
            .collect();
        live.sort();
        let excess = (live.len() + 1).saturating_sub(cap.max(1));
        let mut evicted = Vec::new();
        for (_, id) in live.iter().take(excess) {
            if let Some(entry) = state.families.get_mut(id) {
                entry.family.revoked = Some(Revocation {
                    at: now,
                    reason: RevokeReason::Evicted,
                });
                evicted.push(entry.family.clone());
            }
        }
        let family = Family::created(&new);
        state.tokens.insert(new.token, (new.id.clone(), 0));
        state.families.insert(
            new.id,
            Entry {
                family,
                current: new.token,
                salt: None,
                fingerprint: None,
                retries: 0,
                tokens: vec![new.token],
            },
        );
        Ok(evicted)
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        let mut state = self.lock()?;
        let Some((family_id, presented_generation)) =
            state.tokens.get(&rotation.presented).cloned()
        else {
            return Ok(RotationOutcome::Unknown);
        };
        let Some(entry) = state.families.get_mut(&family_id) else {
            return Ok(RotationOutcome::Unknown);
        };
        if entry.family.client_id != rotation.client_id {
            return Ok(RotationOutcome::WrongClient(entry.family.clone()));
        }
        if !key_matches(&entry.family, &rotation) {
            return Ok(RotationOutcome::KeyMismatch(entry.family.clone()));
        }
        let last = LastRotation {
            fingerprint: entry.fingerprint.as_ref(),
            retries: entry.retries,
        };
        let outcome = match Verdict::of(&entry.family, presented_generation, &rotation, last) {
            Verdict::Rotate => {
                let family = &mut entry.family;
                family.generation += 1;
                family.last_used_at = rotation.now;
                family.idle_expires_at = rotation
                    .now
                    .saturating_add(rotation.idle_ttl)
                    .min(family.absolute_expires_at);
                entry.current = rotation.successor;
                entry.salt = Some(rotation.salt);
                entry.fingerprint = Some(rotation.fingerprint);
                entry.retries = 0;
                entry.tokens.push(rotation.successor);
                let generation = family.generation;
                let outcome = RotationOutcome::Rotated(family.clone());
                state
                    .tokens
                    .insert(rotation.successor, (family_id, generation));
                outcome
            }
            Verdict::Retry => match entry.salt {
                Some(salt) => {
                    entry.retries += 1;
                    RotationOutcome::Retry {
                        family: entry.family.clone(),
                        salt,
                        successor: entry.current,
                    }
                }
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "family {family_id} was rotated without a salt"
                    )));
                }
            },
            Verdict::Replay => {
                let revoked = state.revoke(&family_id, rotation.replay_revocation());
                drop(state);
                self.changes.notify();
                let family = revoked.ok_or_else(|| {
                    StoreError::Corrupt(format!("family {family_id} vanished while being revoked"))
                })?;
                return Ok(RotationOutcome::Replay {
                    family,
                    presented_generation,
                });
            }
            Verdict::Revoked => RotationOutcome::Revoked(entry.family.clone()),
            Verdict::Expired => RotationOutcome::Expired(entry.family.clone()),
        };
        Ok(outcome)
    }

    async fn find_by_token(&self, token: TokenHash) -> Result<Option<Family>, StoreError> {
        let state = self.lock()?;
        Ok(state
            .tokens
            .get(&token)
            .and_then(|(id, _)| state.families.get(id))
            .map(|entry| entry.family.clone()))
    }

    async fn find_family(&self, id: &FamilyId) -> Result<Option<Family>, StoreError> {
        Ok(self
            .lock()?
            .families
            .get(id)
            .map(|entry| entry.family.clone()))
    }

    async fn revoke_family(
        &self,
        id: &FamilyId,
        revoke: Revoke,
    ) -> Result<Option<Family>, StoreError> {
        let revoked = self.lock()?.revoke(id, revoke);
        if revoked.is_some() {
            self.changes.notify();
        }
        Ok(revoked)
    }

    async fn revoke_user(&self, user_id: &str, revoke: Revoke) -> Result<Vec<Family>, StoreError> {
        let mut state = self.lock()?;
        let ids: Vec<FamilyId> = state
            .families
            .values()
            .filter(|entry| entry.family.user_id == user_id)
            .map(|entry| entry.family.id.clone())
            .collect();
        let revoked = ids
            .iter()
            .filter_map(|id| state.revoke(id, revoke))
            .collect();
        state
            .denials
            .write(Denial::subject(user_id, revoke.now, revoke.denied_until()));
        drop(state);
        self.changes.notify();
        Ok(revoked)
    }

    async fn live_families(&self, user_id: &str, now: i64) -> Result<Vec<Family>, StoreError> {
        let state = self.lock()?;
        let mut live: Vec<Family> = state
            .families
            .values()
            .map(|entry| &entry.family)
            .filter(|family| family.user_id == user_id && family.is_live(now))
            .cloned()
            .collect();
        live.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(live)
    }

    async fn deny(&self, denial: Denial) -> Result<(), StoreError> {
        if self.lock()?.denials.write(denial) {
            self.changes.notify();
        }
        Ok(())
    }

    async fn denials_after(
        &self,
        after: u64,
        now: i64,
        limit: usize,
    ) -> Result<DenialBatch, StoreError> {
        Ok(self.lock()?.denials.after(after, now, limit.max(1)))
    }

    async fn reserve_login(
        &self,
        key: &ThrottleKey,
        rule: &ThrottleRule,
        now: i64,
    ) -> Result<LoginAttempt, StoreError> {
        let mut throttle = self.throttle()?;
        let entry = throttle.entries.get(key).map(|(entry, _, _)| *entry);
        let (verdict, next) = rule.reserve(entry, now);
        if let Some(next) = next {
            throttle.put(*key, next, rule.forget_at(&next));
        }
        Ok(verdict)
    }

    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.throttle()?.remove(key);
        Ok(())
    }

    async fn use_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let State {
            once, once_expiry, ..
        } = &mut *state;
        for _ in 0..ONCE_EXPIRY_PER_USE {
            match once_expiry.first() {
                Some(&(expiry, expired)) if expiry <= now => {
                    once_expiry.pop_first();
                    once.remove(&expired);
                }
                _ => break,
            }
        }
        if let Some(&known) = once.get(key) {
            if known > now {
                return Ok(false);
            }
            once_expiry.remove(&(known, *key));
        }
        once.insert(*key, expires_at);
        once_expiry.insert((expires_at, *key));
        Ok(true)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        Ok(self.lock()?.keys.clone())
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        only_if_none: bool,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let mut state = self.lock()?;
        if state.keys.iter().any(|known| known.kid == key.kid) {
            return Err(super::duplicate_kid(&key.kid));
        }
        let added = !only_if_none || state.keys.is_empty();
        if added {
            state.keys.push(key);
            state
                .keys
                .sort_by(|a, b| (a.active_from, &a.kid).cmp(&(b.active_from, &b.kid)));
        }
        let keys = state.keys.clone();
        drop(state);
        if added {
            self.changes.notify();
        }
        Ok(keys)
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let mut state = self.lock()?;
        let before = state.keys.len();
        state.keys.retain(|key| key.kid != kid);
        let removed = state.keys.len() < before;
        drop(state);
        if removed {
            self.changes.notify();
        }
        Ok(removed)
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .lock()?
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_vec())
            .clone())
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        let throttle = self.throttle()?.purge(now, batch);
        let mut state = self.lock()?;
        let State {
            families,
            tokens,
            denials,
            once,
            once_expiry,
            ..
        } = &mut *state;
        let mut report = PurgeReport {
            throttle,
            ..PurgeReport::default()
        };
        let mut budget = batch;
        let mut emptied = Vec::new();
        for entry in families
            .values_mut()
            .filter(|entry| now >= entry.family.expires_at())
        {
            while budget > 0 {
                let Some(hash) = entry.tokens.pop() else {
                    break;
                };
                tokens.remove(&hash);
                report.tokens += 1;
                budget -= 1;
            }
            if entry.tokens.is_empty() {
                emptied.push(entry.family.id.clone());
            }
            if budget == 0 {
                break;
            }
        }
        for id in emptied.into_iter().take(batch) {
            families.remove(&id);
            report.families += 1;
        }
        report.denials = denials.purge(now, batch);
        while (report.one_time as usize) < batch {
            match once_expiry.first() {
                Some(&(expiry, key)) if expiry <= now => {
                    once_expiry.pop_first();
                    once.remove(&key);
                    report.one_time += 1;
                }
                _ => break,
            }
        }
        Ok(report)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.check_open()
    }

    fn subscribe(&self) -> Option<StoreChanges> {
        Some(self.changes.subscribe())
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = State::default();
        let mut throttle = self.throttle.lock().unwrap_or_else(PoisonError::into_inner);
        throttle.entries.clear();
        throttle.recency.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12 #2: one entry per presented username, but never more than the capacity: the least recently
    /// touched entry goes first, and no operation walks the whole table.
    #[tokio::test]
    async fn the_login_throttle_keeps_at_most_its_capacity() {
        let store = MemoryStore::with_throttle_capacity(2);
        let rule = ThrottleRule {
            lock_after: 1,
            base_delay: 60,
            max_delay: 60,
            window: 600,
        };
        let [alice, bob, carol] = ["alice", "bob", "carol"].map(ThrottleKey::for_username);
        for key in [&alice, &bob] {
            assert_eq!(
                store.reserve_login(key, &rule, 0).await.unwrap(),
                LoginAttempt::Allowed
            );
        }
        assert!(matches!(
            store.reserve_login(&alice, &rule, 1).await.unwrap(),
            LoginAttempt::Locked { .. }
        ));
        // A locked-out username does not move; the oldest touched (alice's reservation at 0 was touched
        // before bob's) is forgotten for carol.
        store.reserve_login(&carol, &rule, 2).await.unwrap();
        assert_eq!(store.throttle().unwrap().entries.len(), 2);
        assert_eq!(
            store.reserve_login(&alice, &rule, 3).await.unwrap(),
            LoginAttempt::Allowed,
            "forgotten"
        );
        assert!(matches!(
            store.reserve_login(&carol, &rule, 3).await.unwrap(),
            LoginAttempt::Locked { .. }
        ));
    }
}
