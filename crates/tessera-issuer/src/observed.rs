//! The store as the token service's parts see it ([`Observed`]): every call timed for the metrics, and
//! every denial the store writes, including those it makes on its own (a replayed refresh token revokes its
//! family), put on this instance's denylist as the call returns, before the request that caused it is
//! answered. Other instances learn them from the store (`denylist.rs`).

use std::sync::Arc;

use tessera_server::Denylist;

use crate::metrics::{Operation, StoreLatency};
use crate::store::{
    Denial, DenialBatch, Family, FamilyId, LoginAttempt, NewFamily, OnceKey, PurgeReport,
    RefreshStore, Revoke, Rotation, RotationOutcome, StoreChanges, StoreError, StoredKey,
    ThrottleKey, ThrottleRule, TokenHash,
};

/// A [`RefreshStore`] that times every call of the one it wraps and mirrors its denials on `denylist`.
pub(crate) struct Observed<S> {
    inner: Arc<S>,
    latency: StoreLatency,
    denylist: Denylist,
}

impl<S> Observed<S> {
    pub(crate) fn new(inner: Arc<S>, denylist: Denylist) -> Self {
        Observed {
            inner,
            latency: StoreLatency::default(),
            denylist,
        }
    }

    /// The wrapped store.
    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }

    /// The latency counters.
    pub(crate) fn latency(&self) -> &StoreLatency {
        &self.latency
    }

    /// Puts the denials of the families `revoke` ended on the denylist.
    fn deny_sessions<'a>(&self, revoke: &Revoke, ended: impl IntoIterator<Item = &'a Family>) {
        let denials: Vec<Denial> = ended
            .into_iter()
            .map(|family| revoke.session_denial(&family.id))
            .collect();
        self.denylist.insert(&denials);
    }
}

impl<S: RefreshStore> RefreshStore for Observed<S> {
    async fn create_family(
        &self,
        family: NewFamily,
        cap: usize,
    ) -> Result<Vec<Family>, StoreError> {
        let call = self.inner.create_family(family, cap);
        self.latency.time(Operation::CreateFamily, call).await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        let revoke = rotation.replay_revocation();
        let call = self.inner.rotate(rotation);
        let outcome = self.latency.time(Operation::Rotate, call).await?;
        if let RotationOutcome::Replay { family, .. } = &outcome {
            self.deny_sessions(&revoke, [family]);
        }
        Ok(outcome)
    }

    async fn find_by_token(&self, token: TokenHash) -> Result<Option<Family>, StoreError> {
        let call = self.inner.find_by_token(token);
        self.latency.time(Operation::FindByToken, call).await
    }

    async fn find_family(&self, id: &FamilyId) -> Result<Option<Family>, StoreError> {
        let call = self.inner.find_family(id);
        self.latency.time(Operation::FindFamily, call).await
    }

    async fn revoke_family(
        &self,
        id: &FamilyId,
        revoke: Revoke,
    ) -> Result<Option<Family>, StoreError> {
        let call = self.inner.revoke_family(id, revoke);
        let revoked = self.latency.time(Operation::RevokeFamily, call).await?;
        self.deny_sessions(&revoke, &revoked);
        Ok(revoked)
    }

    async fn revoke_user(&self, user_id: &str, revoke: Revoke) -> Result<Vec<Family>, StoreError> {
        let call = self.inner.revoke_user(user_id, revoke);
        let revoked = self.latency.time(Operation::RevokeUser, call).await?;
        self.deny_sessions(&revoke, &revoked);
        self.denylist
            .insert(&[Denial::subject(user_id, revoke.now, revoke.denied_until())]);
        Ok(revoked)
    }

    async fn live_families(&self, user_id: &str, now: i64) -> Result<Vec<Family>, StoreError> {
        let call = self.inner.live_families(user_id, now);
        self.latency.time(Operation::LiveFamilies, call).await
    }

    async fn deny(&self, denial: Denial) -> Result<(), StoreError> {
        // On the list first: even if the store fails, this instance refuses the token.
        self.denylist.insert(std::slice::from_ref(&denial));
        let call = self.inner.deny(denial);
        self.latency.time(Operation::Deny, call).await
    }

    async fn denials_after(
        &self,
        after: u64,
        now: i64,
        limit: usize,
    ) -> Result<DenialBatch, StoreError> {
        let call = self.inner.denials_after(after, now, limit);
        self.latency.time(Operation::DenialsAfter, call).await
    }

    async fn reserve_login(
        &self,
        key: &ThrottleKey,
        rule: &ThrottleRule,
        now: i64,
    ) -> Result<LoginAttempt, StoreError> {
        let call = self.inner.reserve_login(key, rule, now);
        self.latency.time(Operation::ReserveLogin, call).await
    }

    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        let call = self.inner.clear_login_attempts(key);
        self.latency.time(Operation::ClearLoginAttempts, call).await
    }

    async fn use_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        let call = self.inner.use_once(key, expires_at, now);
        self.latency.time(Operation::UseOnce, call).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let call = self.inner.signing_keys();
        self.latency.time(Operation::SigningKeys, call).await
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        only_if_none: bool,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let call = self.inner.add_signing_key(key, only_if_none);
        self.latency.time(Operation::AddSigningKey, call).await
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let call = self.inner.remove_signing_key(kid);
        self.latency.time(Operation::RemoveSigningKey, call).await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let call = self.inner.shared_secret(name, candidate);
        self.latency.time(Operation::SharedSecret, call).await
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        let call = self.inner.purge_expired(now, batch);
        self.latency.time(Operation::PurgeExpired, call).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.latency.time(Operation::Ping, self.inner.ping()).await
    }

    fn subscribe(&self) -> Option<StoreChanges> {
        self.inner.subscribe()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
