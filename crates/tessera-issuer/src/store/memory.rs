//! A store in process memory: for tests, demos and single-instance deployments that accept losing every
//! session on restart.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    AccessDenials, Family, FamilyId, LastRotation, NewFamily, PurgeReport, RefreshStore,
    RequestFingerprint, Revocation, RevokeReason, Rotation, RotationOutcome, RotationSalt,
    StoreError, TokenHash, UserDenial, Verdict, key_matches,
};

/// A [`RefreshStore`] in memory. Every operation takes one short lock and never awaits while holding it.
///
/// ```
/// use tessera_issuer::MemoryStore;
///
/// let store = MemoryStore::new();
/// # let _ = store;
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Set by [`RefreshStore::close`]: every later call fails.
    closed: bool,
    families: HashMap<FamilyId, Entry>,
    tokens: HashMap<TokenHash, (FamilyId, u64)>,
    denied_tokens: HashMap<String, i64>,
    denied_users: HashMap<String, UserDenial>,
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

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// The state, unless the store was closed.
    fn lock(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        // Every mutation below completes or leaves state untouched, so a poisoned lock holds valid data.
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return Err(StoreError::Closed);
        }
        Ok(state)
    }
}

impl State {
    fn revoke(&mut self, id: &FamilyId, reason: RevokeReason, now: i64) -> Option<Family> {
        let entry = self.families.get_mut(id)?;
        if entry.family.revoked.is_some() {
            return None;
        }
        entry.family.revoked = Some(Revocation { at: now, reason });
        Some(entry.family.clone())
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
        let evicted = live
            .iter()
            .take(excess)
            .filter_map(|(_, id)| state.revoke(id, RevokeReason::Evicted, now))
            .collect();
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
                entry.family.revoked = Some(Revocation {
                    at: rotation.now,
                    reason: RevokeReason::ReuseDetected,
                });
                RotationOutcome::Replay {
                    family: entry.family.clone(),
                    presented_generation,
                }
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
        reason: RevokeReason,
        now: i64,
    ) -> Result<Option<Family>, StoreError> {
        Ok(self.lock()?.revoke(id, reason, now))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        reason: RevokeReason,
        now: i64,
    ) -> Result<Vec<Family>, StoreError> {
        let mut state = self.lock()?;
        let ids: Vec<FamilyId> = state
            .families
            .values()
            .filter(|entry| entry.family.user_id == user_id)
            .map(|entry| entry.family.id.clone())
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| state.revoke(id, reason, now))
            .collect())
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

    async fn deny_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let entry = state
            .denied_tokens
            .entry(jti.to_owned())
            .or_insert(expires_at);
        *entry = (*entry).max(expires_at);
        Ok(())
    }

    async fn deny_user_tokens(&self, denial: UserDenial) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        let entry = state
            .denied_users
            .entry(denial.user_id.clone())
            .or_insert_with(|| denial.clone());
        entry.issued_before = entry.issued_before.max(denial.issued_before);
        entry.until = entry.until.max(denial.until);
        Ok(())
    }

    async fn access_denials(&self, now: i64) -> Result<AccessDenials, StoreError> {
        let state = self.lock()?;
        Ok(AccessDenials {
            tokens: state
                .denied_tokens
                .iter()
                .filter(|(_, expires_at)| **expires_at > now)
                .map(|(jti, expires_at)| (jti.clone(), *expires_at))
                .collect(),
            users: state
                .denied_users
                .values()
                .filter(|denial| denial.until > now)
                .cloned()
                .collect(),
        })
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        let mut state = self.lock()?;
        let State {
            closed: _,
            families,
            tokens,
            denied_tokens,
            denied_users,
        } = &mut *state;
        let mut report = PurgeReport::default();
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
        let ended_tokens: Vec<String> = denied_tokens
            .iter()
            .filter(|(_, exp)| **exp <= now)
            .map(|(jti, _)| jti.clone())
            .take(batch)
            .collect();
        for jti in ended_tokens {
            denied_tokens.remove(&jti);
            report.denials += 1;
        }
        let budget = batch.saturating_sub(usize::try_from(report.denials).unwrap_or(batch));
        let ended_users: Vec<String> = denied_users
            .values()
            .filter(|denial| denial.until <= now)
            .map(|d| d.user_id.clone())
            .take(budget)
            .collect();
        for user in ended_users {
            denied_users.remove(&user);
            report.denials += 1;
        }
        Ok(report)
    }

    async fn close(&self) {
        // Unlike `lock`, closing an already closed store is fine.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = State {
            closed: true,
            ..State::default()
        };
    }
}
