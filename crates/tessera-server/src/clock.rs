//! Where the layer reads the time from: the system clock, or one a test controls.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The source of "now" for `exp`/`nbf` checks, cache expiry and JWKS refresh timing.
///
/// Implemented by [`SystemClock`] and by any `Fn() -> SystemTime`, so a test can pass a closure over a
/// shared counter and step time deterministically.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> SystemTime + Send + Sync + 'static,
{
    fn now(&self) -> SystemTime {
        self()
    }
}

/// Seconds since the Unix epoch; a clock set before 1970 reads as 0.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    })
}

/// A `Debug` stand-in for a boxed clock.
pub(crate) struct ClockName;

impl fmt::Debug for ClockName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Clock")
    }
}
