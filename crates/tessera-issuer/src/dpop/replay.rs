//! Remembering DPoP proof `jti`s so that each proof is accepted once (RFC 9449 §11.1).
//!
//! Behind a small trait, [`OneTimeValues`], so that a deployment of several instances can keep them where
//! every instance sees them (the store); [`MemoryOneTimeValues`] keeps them in this process, in bounded
//! memory.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use crate::error::TokenError;

/// The future [`OneTimeValues::first_use`] returns.
pub(crate) type FirstUse<'a> = Pin<Box<dyn Future<Output = Result<bool, TokenError>> + Send + 'a>>;

/// Values that may be used once each, until they expire.
pub(crate) trait OneTimeValues: Send + Sync + 'static {
    /// Records `value` as used until `expires_at`: `true` the first time, `false` if it was already used
    /// and has not expired by `now`.
    fn first_use(&self, value: [u8; 32], expires_at: i64, now: i64) -> FirstUse<'_>;
}

/// How long a client refused by a full replay cache is asked to wait, seconds.
const FULL_RETRY_AFTER: u64 = 1;

/// [`OneTimeValues`] in this process's memory, at most `capacity` of them. When it is full of values that
/// have not expired, new ones are refused with `503` rather than forgetting old ones early, which would
/// let their proofs be replayed.
#[derive(Debug)]
pub(crate) struct MemoryOneTimeValues {
    capacity: usize,
    seen: Mutex<HashMap<[u8; 32], i64>>,
}

impl MemoryOneTimeValues {
    pub(crate) fn new(capacity: usize) -> Self {
        MemoryOneTimeValues {
            capacity,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl OneTimeValues for MemoryOneTimeValues {
    fn first_use(&self, value: [u8; 32], expires_at: i64, now: i64) -> FirstUse<'_> {
        let answer = {
            // Every change below completes or leaves the map untouched, so a poisoned lock holds valid data.
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.get(&value).is_some_and(|&until| until > now) {
                Ok(false)
            } else {
                if seen.len() >= self.capacity {
                    seen.retain(|_, until| *until > now);
                }
                if seen.len() >= self.capacity {
                    Err(TokenError::Overloaded {
                        retry_after: FULL_RETRY_AFTER,
                    })
                } else {
                    seen.insert(value, expires_at);
                    Ok(true)
                }
            }
        };
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_is_accepted_once_until_it_expires_and_memory_is_bounded() {
        let seen = MemoryOneTimeValues::new(2);
        assert_eq!(seen.first_use([1; 32], 110, 100).await, Ok(true));
        assert_eq!(seen.first_use([1; 32], 110, 105).await, Ok(false));
        assert_eq!(seen.first_use([2; 32], 120, 105).await, Ok(true));
        assert!(
            matches!(
                seen.first_use([3; 32], 120, 105).await,
                Err(TokenError::Overloaded { .. })
            ),
            "full of live values: refused, nothing forgotten early"
        );
        assert_eq!(
            seen.first_use([3; 32], 130, 110).await,
            Ok(true),
            "the expired one made room"
        );
        assert_eq!(
            seen.first_use([1; 32], 140, 115).await,
            Err(TokenError::Overloaded { retry_after: 1 }),
            "an expired value may come back only when there is room"
        );
    }
}
