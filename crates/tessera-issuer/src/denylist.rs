//! Revoked access tokens: a `jti` denylist and per-user "issued before" marks, each entry kept only until
//! the tokens it covers expire anyway. The store holds the durable copy; this is the in-memory view that
//! every authenticated request consults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::store::{AccessDenials, UserDenial};
use tessera_core::Clock;

/// Revoked access tokens, consulted by `tessera_server::JwtAuthLayer` through
/// [`tessera_server::RevocationCheck`] (see [`Issuer::auth_layer`](crate::Issuer::auth_layer)).
///
/// Cheap to clone (shared state). Revocations are written through to the store and reloaded from it by
/// [`Issuer::load_denylist`](crate::Issuer::load_denylist), so they survive restarts.
#[derive(Debug, Clone)]
pub struct AccessTokenDenylist {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `jti` -> the token's `exp`.
    jtis: HashMap<String, i64>,
    /// user -> (tokens issued before this second are revoked, until when).
    users: HashMap<String, (i64, i64)>,
}

impl AccessTokenDenylist {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        AccessTokenDenylist {
            inner: Arc::new(Inner {
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert_jti(&self, jti: &str, expires_at: i64) {
        let mut state = self.state();
        let entry = state.jtis.entry(jti.to_owned()).or_insert(expires_at);
        *entry = (*entry).max(expires_at);
    }

    pub(crate) fn insert_user(&self, denial: &UserDenial) {
        let mut state = self.state();
        let entry = state
            .users
            .entry(denial.user_id.clone())
            .or_insert((denial.issued_before, denial.until));
        *entry = (entry.0.max(denial.issued_before), entry.1.max(denial.until));
    }

    /// Adds the store's denials; returns how many there were.
    pub(crate) fn merge(&self, denials: &AccessDenials) -> usize {
        for (jti, expires_at) in &denials.tokens {
            self.insert_jti(jti, *expires_at);
        }
        for denial in &denials.users {
            self.insert_user(denial);
        }
        denials.tokens.len() + denials.users.len()
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
            .is_some_and(|(issued_before, _)| issued_at.is_none_or(|iat| iat < *issued_before));
        by_jti || by_user
    }

    /// Drops entries whose tokens have all expired; returns how many.
    pub(crate) fn sweep(&self) -> usize {
        let now = self.inner.clock.unix_seconds();
        let mut state = self.state();
        let before = state.jtis.len() + state.users.len();
        state.jtis.retain(|_, exp| *exp > now);
        state.users.retain(|_, (_, until)| *until > now);
        before - state.jtis.len() - state.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::ManualClock;

    #[test]
    fn entries_deny_until_the_tokens_expire() {
        let clock = ManualClock::at_unix(1_000);
        let denylist = AccessTokenDenylist::new(Arc::new(clock.clone()));
        denylist.insert_jti("j1", 1_100);
        assert!(denylist.is_revoked(Some("j1"), None, None));
        let alice = UserDenial {
            user_id: "alice".into(),
            issued_before: 1_000,
            until: 1_900,
        };
        denylist.insert_user(&alice);
        denylist.insert_user(&UserDenial {
            issued_before: 990,
            until: 1_890,
            ..alice.clone()
        });
        assert!(
            denylist.is_revoked(Some("j2"), Some("alice"), Some(999)),
            "the later mark wins"
        );
        assert!(
            !denylist.is_revoked(Some("j2"), Some("alice"), Some(1_000)),
            "tokens issued after are fine"
        );
        assert!(!denylist.is_revoked(Some("j2"), Some("bob"), Some(999)));
        clock.advance_secs(100);
        assert_eq!(denylist.sweep(), 1);
        clock.advance_secs(800);
        assert_eq!(denylist.sweep(), 1);
        assert!(!denylist.is_revoked(Some("j1"), Some("alice"), Some(999)));
        let merged = denylist.merge(&AccessDenials {
            tokens: vec![("j3".into(), 5_000)],
            users: vec![alice],
        });
        assert_eq!(merged, 2);
        assert!(denylist.is_revoked(Some("j3"), None, None));
    }
}
