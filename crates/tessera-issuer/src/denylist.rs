//! Revoked access tokens: a `jti` denylist and per-user "issued before" marks, each entry kept only until
//! the tokens it covers expire anyway. The store holds the durable copy; this is the in-memory view that
//! every authenticated request consults.
//!
//! Reads are lock-free: a request loads the current immutable snapshot (an atomic pointer load, no lock, no
//! reference count on the fast path) and looks the token up in it. Revocations and sweeps are rare; each
//! builds the next snapshot from a copy of the current one and swaps it in. Concurrent writers retry on the
//! newer snapshot, so none is lost.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::store::{AccessDenials, UserDenial};
use tessera_core::Clock;

/// Revoked access tokens, consulted by `tessera_server::JwtAuthLayer` through
/// [`tessera_server::RevocationCheck`] (see [`Issuer::auth_layer`](crate::Issuer::auth_layer)), which it
/// answers without waiting or locking.
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
    denials: ArcSwap<Denials>,
}

/// One immutable snapshot of the denylist.
#[derive(Debug, Clone, Default)]
struct Denials {
    /// `jti` -> the token's `exp`.
    jtis: HashMap<Box<str>, i64>,
    /// user -> (tokens issued before this second are revoked, until when).
    users: HashMap<Box<str>, (i64, i64)>,
}

impl Denials {
    /// Whether adding the `jti` changes anything.
    fn adds_jti(&self, jti: &str, expires_at: i64) -> bool {
        self.jtis.get(jti).is_none_or(|&known| known < expires_at)
    }

    fn add_jti(&mut self, jti: &str, expires_at: i64) {
        let entry = self.jtis.entry(jti.into()).or_insert(expires_at);
        *entry = (*entry).max(expires_at);
    }

    /// Whether adding the user's mark changes anything.
    fn adds_user(&self, denial: &UserDenial) -> bool {
        self.users
            .get(denial.user_id.as_str())
            .is_none_or(|&(issued_before, until)| {
                issued_before < denial.issued_before || until < denial.until
            })
    }

    fn add_user(&mut self, denial: &UserDenial) {
        let entry = self
            .users
            .entry(denial.user_id.as_str().into())
            .or_insert((denial.issued_before, denial.until));
        *entry = (entry.0.max(denial.issued_before), entry.1.max(denial.until));
    }

    fn is_revoked(&self, jti: Option<&str>, subject: Option<&str>, issued_at: Option<i64>) -> bool {
        let by_jti = jti.is_some_and(|jti| self.jtis.contains_key(jti));
        let by_user = subject
            .and_then(|subject| self.users.get(subject))
            .is_some_and(|(issued_before, _)| issued_at.is_none_or(|iat| iat < *issued_before));
        by_jti || by_user
    }

    /// How many entries have outlived every token they cover at `now`.
    fn expired(&self, now: i64) -> usize {
        self.jtis.values().filter(|&&exp| exp <= now).count()
            + self
                .users
                .values()
                .filter(|&&(_, until)| until <= now)
                .count()
    }
}

impl AccessTokenDenylist {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        AccessTokenDenylist {
            inner: Arc::new(Inner {
                clock,
                denials: ArcSwap::from_pointee(Denials::default()),
            }),
        }
    }

    /// Replaces the snapshot with `change` applied to a copy of it, unless `changes` says there is nothing
    /// to do; retried on the newer snapshot when another writer got there first.
    fn update(&self, changes: impl Fn(&Denials) -> bool, change: impl Fn(&mut Denials)) {
        if !changes(&self.inner.denials.load()) {
            return;
        }
        self.inner.denials.rcu(|current| {
            let mut next = Denials::clone(current);
            change(&mut next);
            next
        });
    }

    pub(crate) fn insert_jti(&self, jti: &str, expires_at: i64) {
        self.update(
            |denials| denials.adds_jti(jti, expires_at),
            |denials| denials.add_jti(jti, expires_at),
        );
    }

    pub(crate) fn insert_user(&self, denial: &UserDenial) {
        self.update(
            |denials| denials.adds_user(denial),
            |denials| denials.add_user(denial),
        );
    }

    /// Adds the store's denials (one new snapshot at most); returns how many there were.
    pub(crate) fn merge(&self, denials: &AccessDenials) -> usize {
        self.update(
            |current| {
                denials
                    .tokens
                    .iter()
                    .any(|(jti, expires_at)| current.adds_jti(jti, *expires_at))
                    || denials.users.iter().any(|denial| current.adds_user(denial))
            },
            |next| {
                for (jti, expires_at) in &denials.tokens {
                    next.add_jti(jti, *expires_at);
                }
                for denial in &denials.users {
                    next.add_user(denial);
                }
            },
        );
        denials.tokens.len() + denials.users.len()
    }

    /// Whether a token with these claims is revoked. Lock-free.
    pub fn is_revoked(
        &self,
        jti: Option<&str>,
        subject: Option<&str>,
        issued_at: Option<i64>,
    ) -> bool {
        self.inner
            .denials
            .load()
            .is_revoked(jti, subject, issued_at)
    }

    /// Drops entries whose tokens have all expired; returns how many.
    pub(crate) fn sweep(&self) -> usize {
        let now = self.inner.clock.unix_seconds();
        let expired = self.inner.denials.load().expired(now);
        if expired == 0 {
            return 0;
        }
        let previous = self.inner.denials.rcu(|current| {
            let mut next = Denials::clone(current);
            next.jtis.retain(|_, exp| *exp > now);
            next.users.retain(|_, (_, until)| *until > now);
            next
        });
        previous.expired(now)
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

    #[test]
    fn a_user_mark_without_iat_denies_and_marks_only_grow() {
        let denylist = AccessTokenDenylist::new(Arc::new(ManualClock::at_unix(1_000)));
        let mark = |issued_before, until| UserDenial {
            user_id: "alice".into(),
            issued_before,
            until,
        };
        denylist.insert_user(&mark(1_000, 2_000));
        assert!(denylist.is_revoked(None, Some("alice"), None));
        denylist.insert_user(&mark(900, 1_500));
        assert!(denylist.is_revoked(None, Some("alice"), Some(999)));
        denylist.insert_jti("j", 1_500);
        denylist.insert_jti("j", 1_200);
        assert_eq!(denylist.inner.denials.load().jtis["j"], 1_500);
    }

    #[test]
    fn writes_that_change_nothing_keep_the_snapshot() {
        let clock = ManualClock::at_unix(1_000);
        let denylist = AccessTokenDenylist::new(Arc::new(clock.clone()));
        let denials = AccessDenials {
            tokens: vec![("j1".into(), 1_100)],
            users: vec![UserDenial {
                user_id: "alice".into(),
                issued_before: 1_000,
                until: 1_900,
            }],
        };
        denylist.merge(&denials);
        let before = denylist.inner.denials.load_full();
        assert_eq!(denylist.merge(&denials), 2);
        denylist.insert_jti("j1", 1_050);
        assert_eq!(denylist.sweep(), 0);
        assert!(Arc::ptr_eq(&before, &denylist.inner.denials.load_full()));
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let denylist = AccessTokenDenylist::new(Arc::new(ManualClock::at_unix(1_000)));
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let denylist = denylist.clone();
                scope.spawn(move || {
                    for index in 0..50 {
                        denylist.insert_jti(&format!("{writer}-{index}"), 2_000);
                    }
                });
            }
        });
        assert_eq!(denylist.inner.denials.load().jtis.len(), 200);
    }
}
