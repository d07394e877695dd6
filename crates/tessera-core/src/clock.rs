//! Time, as every part of Tessera reads it: wall-clock time for claims, monotonic time for lifetimes measured
//! in-process, and sleeping. Tests replace the clock with a [`ManualClock`] and never sleep for real.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The future [`Clock::sleep`] returns.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The source of time for the resource server (`exp`/`nbf`, cache expiry, JWKS refresh timing), the token
/// service (every lifetime decision) and the client (proactive refresh, timeouts, backoff).
///
/// [`SystemClock`] is the real one; [`ManualClock`] moves only when told to.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The wall-clock time: what `iat`, `exp` and `nbf` are compared with.
    fn now(&self) -> SystemTime;

    /// The monotonic time: what durations measured inside one process use, so that a wall-clock jump never
    /// makes a token look fresher or staler than it is.
    fn monotonic(&self) -> Instant;

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// [`Clock::now`] in whole seconds since the Unix epoch (a clock before 1970 reads 0).
    fn unix_seconds(&self) -> i64 {
        unix_seconds(self.now())
    }
}

/// Seconds since the Unix epoch, rounded down; a time before 1970 reads as 0, which keeps every "is it
/// expired" check conservative on a broken host.
pub fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    })
}

/// The time `seconds` after the Unix epoch (negative values clamp to the epoch).
pub fn from_unix_seconds(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn monotonic(&self) -> Instant {
        (**self).monotonic()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }
}

/// The operating system's clocks, and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when told to, for tests and simulations. Clones share one time.
///
/// Wall-clock and monotonic time advance together; [`ManualClock::set_wall`] moves the wall clock alone
/// (a host whose clock is wrong). A [`Clock::sleep`] completes once the clock has been advanced past its
/// deadline.
///
/// ```
/// use std::time::Duration;
/// use tessera_core::{Clock, ManualClock};
///
/// let clock = ManualClock::at_unix(1_000);
/// let started = clock.monotonic();
/// clock.advance(Duration::from_secs(30));
/// assert_eq!(clock.unix_seconds(), 1_030);
/// assert_eq!(clock.monotonic() - started, Duration::from_secs(30));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

struct ManualState {
    wall: SystemTime,
    base: Instant,
    elapsed: Duration,
    sleepers: Vec<Waker>,
}

impl ManualClock {
    /// A clock standing at the current system time.
    pub fn new() -> ManualClock {
        ManualClock::at(SystemTime::now())
    }

    /// A clock standing at `wall`.
    pub fn at(wall: SystemTime) -> ManualClock {
        ManualClock {
            state: Arc::new(Mutex::new(ManualState {
                wall,
                base: Instant::now(),
                elapsed: Duration::ZERO,
                sleepers: Vec::new(),
            })),
        }
    }

    /// A clock standing at `seconds` after the Unix epoch.
    pub fn at_unix(seconds: i64) -> ManualClock {
        ManualClock::at(from_unix_seconds(seconds))
    }

    /// Moves both clocks forward by `by`, waking the sleeps that are now due.
    pub fn advance(&self, by: Duration) {
        let wakers = {
            let mut state = self.lock();
            state.wall += by;
            state.elapsed += by;
            std::mem::take(&mut state.sleepers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Moves both clocks forward by `seconds` (whole seconds; a negative value moves the wall clock back and
    /// leaves the monotonic clock where it is, as a real host's clock step would).
    pub fn advance_secs(&self, seconds: i64) {
        match u64::try_from(seconds) {
            Ok(forward) => self.advance(Duration::from_secs(forward)),
            Err(_) => {
                let mut state = self.lock();
                state.wall -= Duration::from_secs(seconds.unsigned_abs());
            }
        }
    }

    /// Sets the wall clock to `wall`; the monotonic clock does not move.
    pub fn set_wall(&self, wall: SystemTime) {
        self.lock().wall = wall;
    }

    /// Sets the wall clock to `seconds` after the Unix epoch; the monotonic clock does not move.
    pub fn set_unix(&self, seconds: i64) {
        self.set_wall(from_unix_seconds(seconds));
    }

    fn lock(&self) -> MutexGuard<'_, ManualState> {
        // The state stays consistent whatever panicked while holding the lock: every update is one field.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("ManualClock")
            .field("wall", &unix_seconds(state.wall))
            .field("elapsed", &state.elapsed)
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().wall
    }

    fn monotonic(&self) -> Instant {
        let state = self.lock();
        state.base + state.elapsed
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.lock().elapsed.saturating_add(duration);
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: Duration,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.clock.lock();
        if state.elapsed >= self.deadline {
            Poll::Ready(())
        } else {
            state.sleepers.push(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_clamps_before_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(unix_seconds(from_unix_seconds(42)), 42);
        assert_eq!(from_unix_seconds(-3), UNIX_EPOCH);
    }

    #[test]
    fn a_wall_clock_step_back_leaves_monotonic_time_alone() {
        let clock = ManualClock::at_unix(100);
        let before = clock.monotonic();
        clock.advance_secs(-50);
        assert_eq!(clock.unix_seconds(), 50);
        assert_eq!(clock.monotonic(), before);
    }

    #[tokio::test]
    async fn a_sleep_completes_only_when_advanced_past_its_deadline() {
        let clock = ManualClock::new();
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(10)));
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(9));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        sleeper.await.unwrap();
    }
}
