//! The login throttle as a store keeps it: one small entry per presented username, and the rule every
//! store applies to it in one atomic step (see [`ThrottleRule::reserve`]).

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};

/// The key of a throttle entry: SHA-256 of the username as presented, so that every entry has the same
/// small size whatever was sent, and the store never holds the usernames people tried.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThrottleKey([u8; 32]);

impl ThrottleKey {
    /// The key of `username`.
    pub fn for_username(username: &str) -> ThrottleKey {
        let mut key = [0; 32];
        key.copy_from_slice(digest(&SHA256, username.as_bytes()).as_ref());
        ThrottleKey(key)
    }

    /// A key from its 32 stored bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<ThrottleKey> {
        bytes.try_into().ok().map(ThrottleKey)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ThrottleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ThrottleKey({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// The longest lockout a rule may impose, in seconds (34 years): keeps the doubling in 64 bits.
pub const MAX_LOCKOUT: i64 = 1 << 30;

/// How far the doubling of lockouts goes: `base << 30` exceeds any allowed maximum.
const MAX_DOUBLINGS: u32 = 30;

/// The throttle policy as stores apply it: whole seconds.
///
/// Every attempt is counted when it is reserved, before the password is checked, and a success clears the
/// entry: so however many attempts arrive at once, at most `lock_after` of them are let through before the
/// first lockout. The attempt numbered `lock_after` (counted within `window` of the previous one) and every
/// later one lock the username for `base_delay`, doubling per attempt up to `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// The attempt that starts the first lockout (at least 1).
    pub lock_after: u32,
    /// The first lockout (at least 1 s).
    pub base_delay: i64,
    /// The longest lockout (at most [`MAX_LOCKOUT`]).
    pub max_delay: i64,
    /// Attempts older than this are forgotten.
    pub window: i64,
}

/// A throttle entry: what [`ThrottleRule::reserve`] decides from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleEntry {
    /// Attempts counted in the current window.
    pub attempts: u32,
    /// When the last one was reserved.
    pub last_attempt_at: i64,
    /// Until when the username is locked out (0: not locked).
    pub locked_until: i64,
}

/// What a reservation answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The attempt is counted and may check the password.
    Allowed,
    /// The username is locked out: nothing was counted.
    Locked {
        /// Seconds until the lockout ends (at least 1).
        retry_after: i64,
    },
}

impl ThrottleRule {
    /// The rule's reference semantics, which every store implements in one atomic step: the verdict for
    /// an attempt at `now` on `entry` (`None`: no entry), and the entry to keep if it was allowed.
    pub fn reserve(
        &self,
        entry: Option<ThrottleEntry>,
        now: i64,
    ) -> (LoginAttempt, Option<ThrottleEntry>) {
        if let Some(entry) = entry
            && entry.locked_until > now
        {
            let retry_after = (entry.locked_until - now).max(1);
            return (LoginAttempt::Locked { retry_after }, None);
        }
        let attempts = match entry {
            Some(entry) if entry.last_attempt_at.saturating_add(self.window) > now => {
                entry.attempts.saturating_add(1)
            }
            _ => 1,
        };
        let next = ThrottleEntry {
            attempts,
            last_attempt_at: now,
            locked_until: self.locked_until(attempts, now),
        };
        (LoginAttempt::Allowed, Some(next))
    }

    /// Until when the attempt numbered `attempts` at `now` locks the username out (0: not at all).
    pub fn locked_until(&self, attempts: u32, now: i64) -> i64 {
        match attempts.checked_sub(self.lock_after) {
            None => 0,
            Some(over) => {
                let delay = self
                    .base_delay
                    .checked_shl(over.min(MAX_DOUBLINGS))
                    .unwrap_or(self.max_delay)
                    .min(self.max_delay);
                now.saturating_add(delay)
            }
        }
    }

    /// When `entry` no longer matters and a store may delete it.
    pub fn forget_at(&self, entry: &ThrottleEntry) -> i64 {
        entry
            .last_attempt_at
            .saturating_add(self.window)
            .max(entry.locked_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_at_the_threshold_and_double_up_to_the_cap() {
        let rule = ThrottleRule {
            lock_after: 3,
            base_delay: 2,
            max_delay: 10,
            window: 100,
        };
        let mut entry = None;
        let mut locks = Vec::new();
        for now in [0, 0, 0, 2, 6, 14, 24] {
            let (verdict, next) = rule.reserve(entry, now);
            assert_eq!(verdict, LoginAttempt::Allowed, "at {now}");
            locks.push(next.unwrap().locked_until - now);
            entry = next;
        }
        assert_eq!(locks, [0, 0, 2, 4, 8, 10, 10]);
        assert_eq!(
            rule.reserve(entry, 25).0,
            LoginAttempt::Locked { retry_after: 9 }
        );
        let forgotten = rule.forget_at(&entry.unwrap());
        assert_eq!(forgotten, 124);
        assert_eq!(
            rule.reserve(entry, forgotten).1.unwrap().attempts,
            1,
            "past the window the count restarts"
        );
        assert_ne!(
            ThrottleKey::for_username("alice"),
            ThrottleKey::for_username("Alice")
        );
    }
}
