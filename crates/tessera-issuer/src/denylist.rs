//! Revoked access tokens: a `jti` denylist and per-user "revoked before" marks, each entry kept only until
//! the tokens it covers expire anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::clock::Clock;

/// Revoked access tokens, consulted by `tessera_server::JwtAuthLayer` through
/// [`tessera_server::RevocationCheck`].
///
/// Cheap to clone (shared state). Entries live in memory until the tokens they cover expire; expired
/// entries are swept by the issuer's purge task.
#[derive(Debug, Clone)]
pub struct AccessTokenDenylist {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Arc<dyn Clock>,
    /// Access-token lifetime: how long a per-user mark must outlive the revocation.
    access_ttl: i64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `jti` -> the token's `exp`.
    jtis: HashMap<String, i64>,
    /// user -> tokens issued before this second are revoked.
    users: HashMap<String, i64>,
}

impl AccessTokenDenylist {
    pub(crate) fn new(clock: Arc<dyn Clock>, access_ttl: i64) -> Self {
        AccessTokenDenylist {
            inner: Arc::new(Inner {
                clock,
                access_ttl,
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Denies the token with this `jti` until its `exp`.
    pub fn revoke_jti(&self, jti: impl Into<String>, expires_at: i64) {
        if expires_at > self.inner.clock.now() {
            self.state().jtis.insert(jti.into(), expires_at);
        }
    }

    /// Denies every access token of `user_id` issued before now.
    pub fn revoke_user(&self, user_id: impl Into<String>) {
        let now = self.inner.clock.now();
        self.state().users.insert(user_id.into(), now);
    }

    /// Whether a token with these claims is revoked.
    pub fn is_revoked(
        &self,
        jti: Option<&str>,
        subject: Option<&str>,
        issued_at: Option<i64>,
    ) -> bool {
        let state = self.state();
        let by_jti = jti.is_some_and(|jti| state.jtis.contains_key(jti));
        let by_user = subject
            .and_then(|subject| state.users.get(subject))
            .is_some_and(|revoked_at| issued_at.is_none_or(|iat| iat < *revoked_at));
        by_jti || by_user
    }

    /// Drops entries whose tokens have all expired; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now();
        let ttl = self.inner.access_ttl;
        let mut state = self.state();
        let before = state.jtis.len() + state.users.len();
        state.jtis.retain(|_, exp| *exp > now);
        state
            .users
            .retain(|_, revoked_at| revoked_at.saturating_add(ttl) > now);
        before - state.jtis.len() - state.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn entries_deny_until_the_tokens_expire() {
        let clock = ManualClock::new(1_000);
        let denylist = AccessTokenDenylist::new(Arc::new(clock.clone()), 900);
        denylist.revoke_jti("j1", 1_100);
        denylist.revoke_jti("already-expired", 1_000);
        assert!(denylist.is_revoked(Some("j1"), None, None));
        assert!(!denylist.is_revoked(Some("already-expired"), None, None));
        denylist.revoke_user("alice");
        assert!(denylist.is_revoked(Some("j2"), Some("alice"), Some(999)));
        assert!(
            !denylist.is_revoked(Some("j2"), Some("alice"), Some(1_000)),
            "tokens issued after are fine"
        );
        assert!(!denylist.is_revoked(Some("j2"), Some("bob"), Some(999)));
        clock.advance(100);
        assert_eq!(denylist.sweep(), 1);
        clock.advance(800);
        assert_eq!(denylist.sweep(), 1);
        assert!(!denylist.is_revoked(Some("j1"), Some("alice"), Some(999)));
    }
}
