//! Login throttling: repeated password failures for one username slow that username down.
//!
//! Keyed by the username as presented, whether or not it exists, so throttling reveals nothing about which
//! accounts exist. The first failures are free; after that each failure doubles a lockout, up to a cap.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Past this many tracked usernames, stale entries are swept on the next failure.
const SWEEP_THRESHOLD: usize = 50_000;

/// How repeated login failures are slowed down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before the first lockout.
    pub free_failures: u32,
    /// The first lockout; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest lockout.
    pub max_delay: Duration,
    /// Failures older than this are forgotten.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    /// 5 free failures, then 1 s, 2 s, 4 s, ... up to 15 min; forgotten after 15 min without failures.
    fn default() -> Self {
        ThrottlePolicy {
            free_failures: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: i64,
    locked_until: i64,
}

/// Failure counts per username.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    policy: ThrottlePolicy,
    failures: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    pub(crate) fn new(policy: ThrottlePolicy) -> Self {
        LoginThrottle {
            policy,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` while `username` is locked out.
    pub(crate) fn check(&self, username: &str, now: i64) -> Result<(), u64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match failures.get(username) {
            Some(entry) if entry.locked_until > now => {
                Err(u64::try_from(entry.locked_until - now).unwrap_or(1))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn record_failure(&self, username: &str, now: i64) {
        let window = seconds(self.policy.window);
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= SWEEP_THRESHOLD {
            failures.retain(|_, entry| entry.last + window > now || entry.locked_until > now);
        }
        let entry = failures.entry(username.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: 0,
        });
        if entry.last + window <= now {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if let Some(over) = entry.count.checked_sub(self.policy.free_failures + 1) {
            let delay = seconds(self.policy.base_delay)
                .saturating_mul(1_i64.checked_shl(over.min(40)).unwrap_or(i64::MAX))
                .min(seconds(self.policy.max_delay));
            entry.locked_until = now + delay.max(1);
        }
    }

    pub(crate) fn record_success(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(username);
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_after_the_free_failures_and_double() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        for _ in 0..5 {
            assert_eq!(throttle.check("alice", 100), Ok(()));
            throttle.record_failure("alice", 100);
        }
        assert_eq!(
            throttle.check("alice", 100),
            Ok(()),
            "five failures are free"
        );
        throttle.record_failure("alice", 100);
        assert_eq!(throttle.check("alice", 100), Err(1));
        throttle.record_failure("alice", 101);
        assert_eq!(throttle.check("alice", 101), Err(2));
        assert_eq!(
            throttle.check("bob", 101),
            Ok(()),
            "other usernames are unaffected"
        );
        throttle.record_success("alice");
        assert_eq!(throttle.check("alice", 101), Ok(()));
    }

    #[test]
    fn lockouts_are_capped_and_failures_forgotten_after_the_window() {
        let policy = ThrottlePolicy {
            max_delay: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        let throttle = LoginThrottle::new(policy);
        for _ in 0..30 {
            throttle.record_failure("alice", 100);
        }
        assert_eq!(throttle.check("alice", 100), Err(60));
        throttle.record_failure("alice", 100 + 15 * 60);
        assert_eq!(
            throttle.check("alice", 100 + 15 * 60),
            Ok(()),
            "the count restarted"
        );
    }
}
