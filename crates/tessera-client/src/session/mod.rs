//! The token session shared by every request: which token to send, and the one refresh in flight.
//!
//! One job per module:
//! - [`lease`]: the [`Session`] the middleware asks for tokens; control flow only.
//! - [`state`]: the token state (current pair, generation, kept-aside pair, cooldown, end of session) with
//!   its transitions and decisions, all synchronous.
//! - [`schedule`]: the timing rules as pure functions: proactive refresh time, backoff, jitter.
//! - [`flight`]: single flight: one refresh task, its landing broadcast to every waiter.
//! - [`refresh`]: what a flight does: lock a shared store, load, refresh, persist, publish, or fail.
//! - [`exchange`]: the flight's token requests, and what it does when one presenting the refresh token gets
//!   no usable answer (wait for the late answer, retry once inside the server's grace window, never after).
//! - [`background`]: the optional background refresh at half of each token's lifetime.
//! - [`persist`]: the hand-off to the token store and the `on_tokens_changed` hook, one writer at a time.
//!
//! The state sits in one small struct behind a `std::sync::Mutex` that is never held across an `.await`.

mod background;
mod exchange;
mod flight;
mod lease;
mod persist;
mod refresh;
mod schedule;
mod state;

pub(crate) use flight::inside_refresh;
pub(crate) use lease::{Session, SessionExpiredHook};
pub(crate) use persist::{Persistence, TokensChangedHook};
pub(crate) use schedule::RefreshPolicy;
pub(crate) use state::{Lease, Rejection};
