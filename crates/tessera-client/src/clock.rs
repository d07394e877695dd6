//! Time as the middleware sees it: a monotonic clock for expiry, a wall clock for JWT claims, and sleeping.
//!
//! Everything time-dependent goes through [`Clock`], so tests inject a manual clock and never sleep for real.

use std::fmt::Debug;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;

/// The source of time and of sleeping for [`AuthMiddleware`](crate::AuthMiddleware) and the built-in
/// refreshers.
///
/// The default is [`SystemClock`]. Tests implement this trait over a manually advanced instant so that
/// proactive refresh, refresh timeouts and backoff are exercised without real sleeping.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current monotonic instant: access-token expiry is tracked against this, so a wall-clock jump
    /// never makes a token look fresher or staler than it is.
    fn now(&self) -> Instant;

    /// The current wall-clock time: used for the `exp` claim of a JWT without `expires_in`, for persisted
    /// expiry times, and for the `iat`/`exp` of client assertions.
    fn system_now(&self) -> SystemTime;

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock: [`Instant::now`], [`SystemTime::now`] and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}
