//! Login throttling: repeated login attempts for one username slow that username down, across every
//! instance of the token service.
//!
//! Keyed by the username as presented (its SHA-256, so every entry is small), whether or not it exists, so
//! throttling reveals nothing about which accounts exist. Each attempt is reserved in the store, atomically,
//! *before* the password is checked, and a success clears the username's entry: so however many guesses
//! arrive at once, on however many instances, at most [`ThrottlePolicy::free_failures`] of them are checked
//! before the lockout, exactly as if they had come one after another. Since a password is only known to be
//! right once it was checked, this also bounds attempts in flight: more than `free_failures` logins of one
//! username at the same moment, right or wrong, are answered 429 with `Retry-After` (a success clears the
//! count, so logins one after another are never throttled).

use std::sync::Arc;
use std::time::Duration;

use crate::store::{
    LoginAttempt, MAX_LOCKOUT, RefreshStore, StoreError, ThrottleKey, ThrottleRule,
};

/// How repeated login failures are slowed down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Attempts allowed in a row before the first lockout (at least 1 is let through).
    pub free_failures: u32,
    /// The first lockout; each further attempt doubles it (whole seconds, at least 1).
    pub base_delay: Duration,
    /// The longest lockout.
    pub max_delay: Duration,
    /// Attempts older than this are forgotten.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    /// 5 free attempts, then lockouts of 1 s, 2 s, 4 s, ... up to 15 min; forgotten after 15 min without
    /// attempts.
    fn default() -> Self {
        ThrottlePolicy {
            free_failures: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl ThrottlePolicy {
    /// The rule a store applies: the attempt numbered `free_failures` starts the first lockout.
    pub fn rule(&self) -> ThrottleRule {
        let base_delay = seconds(self.base_delay).clamp(1, MAX_LOCKOUT);
        ThrottleRule {
            lock_after: self.free_failures.max(1),
            base_delay,
            max_delay: seconds(self.max_delay).clamp(base_delay, MAX_LOCKOUT),
            window: seconds(self.window).max(1),
        }
    }
}

/// The throttle of the password grant, kept in the store.
#[derive(Debug)]
pub(crate) struct LoginThrottle<S> {
    store: Arc<S>,
    rule: ThrottleRule,
}

impl<S: RefreshStore> LoginThrottle<S> {
    pub(crate) fn new(store: Arc<S>, policy: ThrottlePolicy) -> Self {
        LoginThrottle {
            store,
            rule: policy.rule(),
        }
    }

    /// Reserves an attempt for `username` at `now`: `Ok(Err(seconds))` while it is locked out (nothing
    /// counted), `Ok(Ok(()))` if the attempt was counted and may check the password.
    pub(crate) async fn reserve(
        &self,
        username: &str,
        now: i64,
    ) -> Result<Result<(), u64>, StoreError> {
        let key = ThrottleKey::for_username(username);
        Ok(
            match self.store.reserve_login(&key, &self.rule, now).await? {
                LoginAttempt::Allowed => Ok(()),
                LoginAttempt::Locked { retry_after } => {
                    Err(u64::try_from(retry_after).unwrap_or(1))
                }
            },
        )
    }

    /// Forgets `username`'s attempts: the password was right.
    pub(crate) async fn record_success(&self, username: &str) -> Result<(), StoreError> {
        let key = ThrottleKey::for_username(username);
        self.store.clear_login_attempts(&key).await
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn lockouts_start_after_the_free_attempts_and_double() {
        let throttle = LoginThrottle::new(Arc::new(MemoryStore::new()), ThrottlePolicy::default());
        for _ in 0..5 {
            assert_eq!(throttle.reserve("alice", 100).await.unwrap(), Ok(()));
        }
        assert_eq!(
            throttle.reserve("alice", 100).await.unwrap(),
            Err(1),
            "five attempts are free"
        );
        assert_eq!(throttle.reserve("alice", 101).await.unwrap(), Ok(()));
        assert_eq!(throttle.reserve("alice", 101).await.unwrap(), Err(2));
        assert_eq!(
            throttle.reserve("bob", 101).await.unwrap(),
            Ok(()),
            "other usernames are unaffected"
        );
        throttle.record_success("alice").await.unwrap();
        assert_eq!(throttle.reserve("alice", 101).await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn lockouts_are_capped_and_attempts_forgotten_after_the_window() {
        let policy = ThrottlePolicy {
            max_delay: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        let throttle = LoginThrottle::new(Arc::new(MemoryStore::new()), policy);
        let mut now = 100;
        for _ in 0..30 {
            if let Err(wait) = throttle.reserve("alice", now).await.unwrap() {
                now += i64::try_from(wait).unwrap();
                assert_eq!(throttle.reserve("alice", now).await.unwrap(), Ok(()));
            }
        }
        assert_eq!(throttle.reserve("alice", now).await.unwrap(), Err(60));
        let later = now + 15 * 60;
        assert_eq!(throttle.reserve("alice", later).await.unwrap(), Ok(()));
        assert_eq!(
            throttle.reserve("alice", later).await.unwrap(),
            Ok(()),
            "the count restarted"
        );
    }
}
