//! The timing rules, as pure functions: when a token is due for a proactive refresh, how long to back off
//! after a failed one, the jitter that keeps a fleet of clients from acting in step, and until when a
//! refresh token whose fate is unknown may still be presented.
//!
//! Nothing here reads a clock or draws a random number: the caller passes the [`Moment`] and a random
//! fraction in [0, 1) (from [`random_fraction`] in production), so every rule is tested deterministically.

use std::time::{Duration, Instant, SystemTime};

use crate::Clock;
use crate::error::BuildError;

/// Token services count time in whole seconds, so a grace window may close up to this much early.
const SERVER_CLOCK_STEP: Duration = Duration::from_secs(1);

/// How long a token request that presented a refresh token, and can no longer be retried, is still awaited
/// for a late answer before the session is given up.
pub(crate) const LATE_ANSWER_WAIT: Duration = Duration::from_secs(60);

/// Timing rules for refreshing, as configured on the
/// [`AuthMiddlewareBuilder`](crate::AuthMiddlewareBuilder).
#[derive(Debug, Clone)]
pub(crate) struct RefreshPolicy {
    /// How long before expiry a token is refreshed before sending.
    pub(crate) skew: Duration,
    /// The most the skew is lengthened at random, as a fraction of itself (0..=1).
    pub(crate) skew_jitter: f64,
    /// How long one refresh may take.
    pub(crate) timeout: Duration,
    /// The backoff after the first consecutive failure (before jitter).
    pub(crate) backoff_base: Duration,
    /// The longest backoff, `Retry-After` included.
    pub(crate) backoff_max: Duration,
    /// Every token is treated as expiring at most this long after it was published.
    pub(crate) max_lifetime: Option<Duration>,
    /// Whether to refresh in the background at half of each token's lifetime.
    pub(crate) background: bool,
    /// The token service's grace window: how long after rotating a refresh token it still answers the
    /// previous one (with the same successor) instead of treating it as reuse. Zero: no grace window.
    pub(crate) grace: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            skew: Duration::from_secs(60),
            skew_jitter: 0.2,
            timeout: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_lifetime: None,
            background: false,
            grace: Duration::from_secs(15),
        }
    }
}

/// Where a token pair being published comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provenance {
    /// Just obtained from the token endpoint by a refresh.
    Refreshed,
    /// Just handed over by the application.
    Issued,
    /// Read back from the store, possibly long after it was issued.
    Stored,
}

/// One moment read from both clocks: the monotonic one that deadlines are kept on, and the wall clock that
/// expiry times are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moment {
    pub(crate) monotonic: Instant,
    pub(crate) wall: SystemTime,
}

impl Moment {
    pub(crate) fn of(clock: &dyn Clock) -> Moment {
        Moment {
            monotonic: clock.monotonic(),
            wall: clock.now(),
        }
    }
}

/// A published token's deadlines, on the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadlines {
    /// When the token stops being worth sending; `None` when unknown (only a 401 ends it).
    pub(crate) expires_at: Option<Instant>,
    /// From when a request refreshes before sending; `Some` exactly when `expires_at` is.
    pub(crate) refresh_at: Option<Instant>,
    /// The token was issued already expired by this machine's clock, so its expiry was ignored.
    pub(crate) looked_expired: bool,
}

impl RefreshPolicy {
    /// The deadlines of a token whose wall-clock expiry is `expiry`, published at `now`.
    ///
    /// The expiry is moved onto the monotonic clock: what is left of the lifetime by the wall clock, counted
    /// from `now` on the monotonic clock, so a later wall-clock step moves nothing. A just-issued token that
    /// is already expired by this clock means this clock and the issuer's disagree (typically a JWT `exp`
    /// read on a clock running ahead): refreshing before every request would hammer the token endpoint, so
    /// its expiry is ignored and the API decides when it has expired. A stored token gets no such benefit
    /// of the doubt: it is simply due. Then `max_lifetime` caps the lifetime, and the refresh time is
    /// [`refresh_at`].
    pub(crate) fn deadlines(
        &self,
        expiry: Option<SystemTime>,
        provenance: Provenance,
        now: Moment,
        random: f64,
    ) -> Deadlines {
        let mut expires_at = expiry.and_then(|expiry| on_monotonic_clock(expiry, now));
        let looked_expired =
            provenance != Provenance::Stored && expires_at.is_some_and(|at| at <= now.monotonic);
        if looked_expired {
            expires_at = None;
        }
        if let Some(cap) = self.max_lifetime {
            expires_at = capped(expires_at, now.monotonic, cap);
        }
        Deadlines {
            expires_at,
            refresh_at: expires_at
                .map(|at| refresh_at(at, now.monotonic, self.skew, self.skew_jitter, random)),
            looked_expired,
        }
    }

    /// Checks that a refresh whose answer is lost can be retried inside the token service's grace window:
    /// the first request times out after `timeout`, and the retry must reach the service within `timeout`
    /// too, a second before the window (counted in whole seconds) may close.
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        let needed = self
            .timeout
            .saturating_mul(2)
            .saturating_add(SERVER_CLOCK_STEP);
        if self.grace.is_zero() || self.grace >= needed {
            return Ok(());
        }
        Err(BuildError::GraceTooShort {
            grace: self.grace,
            timeout: self.timeout,
            longest_timeout: self.grace.saturating_sub(SERVER_CLOCK_STEP) / 2,
        })
    }

    /// The latest moment a refresh token, presented in a request sent at `sent` that got no usable answer,
    /// may be presented once more: the token service cannot have rotated it before `sent`, so it answers it
    /// as a retry until `sent + grace`; the retry needs up to `timeout` to get there, and the service's
    /// whole-second clock may close the window a second early. `None` without a grace window.
    pub(crate) fn retry_by(&self, sent: Instant) -> Option<Instant> {
        if self.grace.is_zero() {
            return None;
        }
        let room = self
            .grace
            .checked_sub(self.timeout)?
            .checked_sub(SERVER_CLOCK_STEP)?;
        sent.checked_add(room)
    }

    /// How long to wait after the `failures`-th consecutive failed refresh: the [`backoff`], lengthened to
    /// the token endpoint's `Retry-After` (its own estimate wins over ours) within the configured maximum.
    pub(crate) fn retry_delay(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        random: f64,
    ) -> Duration {
        let delay = backoff(self.backoff_base, self.backoff_max, failures, random);
        retry_after.map_or(delay, |asked| delay.max(asked.min(self.backoff_max)))
    }
}

/// The wall-clock `expiry` as seen from `now`, on the monotonic clock: a token already past it expires at
/// `now`; an expiry further away than the monotonic clock can count is no expiry at all.
fn on_monotonic_clock(expiry: SystemTime, now: Moment) -> Option<Instant> {
    let left = expiry.duration_since(now.wall).unwrap_or(Duration::ZERO);
    now.monotonic.checked_add(left)
}

/// `expires_at`, but no later than `cap` after `now`; a cap beyond what the monotonic clock can count caps
/// nothing.
fn capped(expires_at: Option<Instant>, now: Instant, cap: Duration) -> Option<Instant> {
    match (expires_at, now.checked_add(cap)) {
        (Some(at), Some(limit)) => Some(at.min(limit)),
        (None, limit) => limit,
        (at, None) => at,
    }
}

/// When to refresh a token that expires at `expires_at`: `skew` (lengthened by up to `skew_jitter` of
/// itself) before it, but never earlier than half of the lifetime left at `now`, so that a token
/// shorter-lived than twice the skew is not due the moment it arrives.
pub(crate) fn refresh_at(
    expires_at: Instant,
    now: Instant,
    skew: Duration,
    skew_jitter: f64,
    random: f64,
) -> Instant {
    let lifetime = expires_at.saturating_duration_since(now);
    expires_at - jitter(skew, skew_jitter, random).min(lifetime / 2)
}

/// Exponential backoff with jitter: the n-th consecutive failure waits between half and all of
/// `base * 2^(n-1)`, capped at `max`, so a fleet that failed together does not retry together.
pub(crate) fn backoff(base: Duration, max: Duration, failures: u32, random: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << exponent).min(max);
    jitter(ceiling / 2, 1.0, random).min(ceiling)
}

/// `value` lengthened by a random share of `spread` times itself: `value * (1 + spread * random)`, for a
/// `random` fraction in [0, 1). A negative or non-finite `spread` or `random` counts as 0, a `random` above
/// 1 as 1; the result saturates at `Duration::MAX`.
pub(crate) fn jitter(value: Duration, spread: f64, random: f64) -> Duration {
    let unit = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
    let factor = 1.0 + unit(spread) * unit(random).min(1.0);
    Duration::try_from_secs_f64(value.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// A uniform number in [0, 1) from the OS CSPRNG (only used for jitter, so a failure degrades to 0.5).
pub(crate) fn random_fraction() -> f64 {
    match tessera_core::random::bytes::<8>() {
        Ok(bytes) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1_u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use tessera_core::TokenResponse;

    use super::*;
    use crate::TokenSet;

    const fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    /// Just under 1: the largest `random_fraction` can return.
    const ALMOST_ONE: f64 = 1.0 - f64::EPSILON / 2.0;

    fn moment() -> Moment {
        Moment {
            monotonic: Instant::now(),
            wall: UNIX_EPOCH + secs(1_700_000_000),
        }
    }

    fn policy() -> RefreshPolicy {
        RefreshPolicy::default()
    }

    #[test]
    fn jitter_lengthens_by_a_random_share_of_the_spread() {
        assert_eq!(jitter(secs(10), 0.2, 0.0), secs(10));
        assert_eq!(jitter(secs(10), 0.2, 0.5), secs(11));
        assert_eq!(jitter(secs(10), 0.2, 1.0), secs(12));
        let top = jitter(secs(10), 0.2, ALMOST_ONE);
        assert!(
            top > Duration::from_millis(11_999) && top <= secs(12),
            "{top:?}"
        );
        assert_eq!(jitter(secs(10), 0.0, 0.7), secs(10));
        assert_eq!(jitter(Duration::ZERO, 1.0, 0.7), Duration::ZERO);
    }

    #[test]
    fn jitter_treats_out_of_range_inputs_as_their_nearest_sensible_value() {
        assert_eq!(jitter(secs(10), 0.2, 7.0), secs(12), "random above 1");
        for nonsense in [-0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                jitter(secs(10), 0.2, nonsense),
                secs(10),
                "random {nonsense}"
            );
            assert_eq!(
                jitter(secs(10), nonsense, 0.5),
                secs(10),
                "spread {nonsense}"
            );
        }
    }

    #[test]
    fn jitter_saturates_instead_of_overflowing() {
        assert_eq!(jitter(Duration::MAX, 0.2, 0.5), Duration::MAX);
        assert_eq!(jitter(Duration::MAX, 0.0, 0.0), Duration::MAX);
        assert_eq!(jitter(Duration::MAX / 2, 1.0, 1.0), Duration::MAX);
    }

    #[test]
    fn the_refresh_is_due_a_jittered_skew_before_expiry() {
        let now = Instant::now();
        let expires = now + secs(300);
        assert_eq!(
            refresh_at(expires, now, secs(60), 0.2, 0.0),
            now + secs(240)
        );
        assert_eq!(
            refresh_at(expires, now, secs(60), 0.2, 0.5),
            now + secs(234)
        );
        assert_eq!(
            refresh_at(expires, now, secs(60), 0.2, 1.0),
            now + secs(228)
        );
        let earliest = refresh_at(expires, now, secs(60), 0.2, ALMOST_ONE);
        assert!(earliest >= now + secs(228) && earliest < now + secs(229));
    }

    #[test]
    fn the_refresh_is_never_due_before_half_the_lifetime() {
        let now = Instant::now();
        assert_eq!(
            refresh_at(now + secs(100), now, secs(60), 0.2, 0.0),
            now + secs(50),
            "lifetime shorter than twice the skew"
        );
        assert_eq!(
            refresh_at(now + secs(300), now, Duration::MAX, 1.0, ALMOST_ONE),
            now + secs(150),
            "a skew too long for any clock"
        );
        assert_eq!(
            refresh_at(now, now, secs(60), 0.2, 0.5),
            now,
            "zero lifetime"
        );
        assert_eq!(
            refresh_at(now, now + secs(5), secs(60), 0.2, 0.5),
            now,
            "already expired: due at its expiry"
        );
        let century = secs(100 * 365 * 24 * 3600);
        assert_eq!(
            refresh_at(now + century, now, secs(60), 0.2, 0.0),
            now + century - secs(60),
            "huge lifetime"
        );
    }

    #[test]
    fn expires_in_and_the_jwt_exp_end_up_on_the_monotonic_clock() {
        let now = moment();
        let answer = |expires_in, access_token: &str| TokenResponse {
            access_token: access_token.into(),
            token_type: "Bearer".into(),
            expires_in,
            refresh_token: None,
            scope: None,
        };
        let with_expires_in = TokenSet::from_response(answer(Some(900), "opaque"), now.wall);
        let deadlines =
            policy().deadlines(with_expires_in.expires_at(), Provenance::Issued, now, 0.0);
        assert_eq!(deadlines.expires_at, Some(now.monotonic + secs(900)));
        assert_eq!(deadlines.refresh_at, Some(now.monotonic + secs(840)));

        // No `expires_in`: the unverified `exp` (here 1000 s after the wall-clock moment).
        let exp = r#"{"exp":1700001000}"#;
        let jwt = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(exp),
        );
        let with_exp = TokenSet::from_response(answer(None, &jwt), now.wall);
        let deadlines = policy().deadlines(with_exp.expires_at(), Provenance::Issued, now, 0.0);
        assert_eq!(deadlines.expires_at, Some(now.monotonic + secs(1_000)));
    }

    #[test]
    fn an_issued_token_that_looks_expired_is_left_to_the_api() {
        let now = moment();
        for expiry in [now.wall, now.wall - secs(30)] {
            let deadlines = policy().deadlines(Some(expiry), Provenance::Issued, now, 0.5);
            assert_eq!(
                deadlines,
                Deadlines {
                    expires_at: None,
                    refresh_at: None,
                    looked_expired: true,
                }
            );
        }
    }

    #[test]
    fn a_stored_token_that_is_expired_is_due_now() {
        let now = moment();
        let deadlines = policy().deadlines(Some(now.wall - secs(30)), Provenance::Stored, now, 0.5);
        assert_eq!(
            deadlines,
            Deadlines {
                expires_at: Some(now.monotonic),
                refresh_at: Some(now.monotonic),
                looked_expired: false,
            }
        );
    }

    #[test]
    fn an_unknown_expiry_has_no_deadlines() {
        let deadlines = policy().deadlines(None, Provenance::Issued, moment(), 0.5);
        assert_eq!(deadlines.expires_at, None);
        assert_eq!(deadlines.refresh_at, None);
        assert!(!deadlines.looked_expired);
    }

    #[test]
    fn an_expiry_too_far_for_the_monotonic_clock_is_no_expiry() {
        let now = Moment {
            monotonic: Instant::now(),
            wall: UNIX_EPOCH,
        };
        let forever = UNIX_EPOCH + secs(i64::MAX.unsigned_abs());
        let deadlines = policy().deadlines(Some(forever), Provenance::Issued, now, 0.5);
        assert_eq!(deadlines.expires_at, None);
        assert!(!deadlines.looked_expired);
    }

    #[test]
    fn the_lifetime_cap_shortens_known_and_unknown_expiries() {
        let now = moment();
        let capped = RefreshPolicy {
            max_lifetime: Some(secs(120)),
            ..policy()
        };
        for (expiry, provenance) in [
            (Some(now.wall + secs(3_600)), Provenance::Issued),
            (None, Provenance::Issued),
            // Looked expired, so its expiry is ignored; the cap still applies.
            (Some(now.wall - secs(30)), Provenance::Issued),
        ] {
            let deadlines = capped.deadlines(expiry, provenance, now, 1.0);
            assert_eq!(deadlines.expires_at, Some(now.monotonic + secs(120)));
            assert_eq!(deadlines.refresh_at, Some(now.monotonic + secs(60)));
        }
        let deadlines = capped.deadlines(Some(now.wall + secs(90)), Provenance::Issued, now, 0.0);
        assert_eq!(
            deadlines.expires_at,
            Some(now.monotonic + secs(90)),
            "a shorter expiry stays"
        );
    }

    #[test]
    fn a_lifetime_cap_too_long_for_the_clock_caps_nothing() {
        let now = moment();
        let uncapped = RefreshPolicy {
            max_lifetime: Some(Duration::MAX),
            ..policy()
        };
        let deadlines =
            uncapped.deadlines(Some(now.wall + secs(300)), Provenance::Issued, now, 0.0);
        assert_eq!(deadlines.expires_at, Some(now.monotonic + secs(300)));
        assert_eq!(
            uncapped
                .deadlines(None, Provenance::Issued, now, 0.0)
                .expires_at,
            None
        );
    }

    #[test]
    fn backoff_doubles_from_half_to_all_of_the_ceiling_up_to_the_max() {
        for (failures, ceiling) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 4),
            (5, 16),
            (6, 32),
            (7, 60),
            (40, 60),
        ] {
            let ceiling = secs(ceiling);
            assert_eq!(
                backoff(secs(1), secs(60), failures, 0.0),
                ceiling / 2,
                "{failures}"
            );
            assert_eq!(
                backoff(secs(1), secs(60), failures, 1.0),
                ceiling,
                "{failures}"
            );
            let top = backoff(secs(1), secs(60), failures, ALMOST_ONE);
            assert!(
                top <= ceiling && top > ceiling.mul_f64(0.99),
                "{failures}: {top:?}"
            );
        }
    }

    #[test]
    fn backoff_saturates_instead_of_overflowing() {
        assert_eq!(
            backoff(secs(1), Duration::MAX, u32::MAX, 0.0),
            secs(1 << 19)
        );
        assert_eq!(
            backoff(Duration::MAX, Duration::MAX, u32::MAX, 1.0),
            Duration::MAX
        );
        assert!(backoff(Duration::MAX, Duration::MAX, 1, 0.0) >= Duration::MAX / 2);
        assert_eq!(backoff(Duration::ZERO, secs(60), 3, 0.5), Duration::ZERO);
    }

    #[test]
    fn retry_after_lengthens_the_backoff_up_to_the_max() {
        let policy = policy();
        assert_eq!(policy.retry_delay(1, None, 0.0), Duration::from_millis(500));
        assert_eq!(policy.retry_delay(1, Some(secs(45)), 0.0), secs(45));
        assert_eq!(
            policy.retry_delay(1, Some(secs(3_600)), 0.0),
            secs(60),
            "Retry-After larger than the max"
        );
        assert_eq!(
            policy.retry_delay(1, Some(Duration::MAX), 1.0),
            secs(60),
            "Retry-After too long for any clock"
        );
        assert_eq!(
            policy.retry_delay(4, Some(secs(1)), 0.0),
            secs(4),
            "a shorter Retry-After does not shorten the backoff"
        );
    }

    #[test]
    fn the_grace_window_must_fit_a_timeout_and_a_retry() {
        let mut policy = policy();
        assert!(policy.validate().is_ok(), "15 s grace, 5 s timeout");
        policy.grace = secs(10);
        let error = policy.validate().unwrap_err().to_string();
        assert!(
            error.contains("refresh_timeout") && error.contains("4.5s"),
            "{error}"
        );
        policy.timeout = Duration::from_millis(4_500);
        assert!(policy.validate().is_ok(), "exactly 2 × 4.5 s + 1 s");
        policy.grace = Duration::ZERO;
        policy.timeout = Duration::MAX;
        assert!(
            policy.validate().is_ok(),
            "no grace window: never retried, nothing to fit"
        );
        policy.grace = secs(30);
        assert!(policy.validate().is_err(), "an endless timeout never fits");
    }

    #[test]
    fn a_doubtful_refresh_token_is_presented_again_only_inside_the_grace_window() {
        let sent = Instant::now();
        let policy = policy();
        assert_eq!(
            policy.retry_by(sent),
            Some(sent + secs(9)),
            "15 s - 5 s - 1 s"
        );
        let none = RefreshPolicy {
            grace: Duration::ZERO,
            ..policy
        };
        assert_eq!(none.retry_by(sent), None);
        let tight = RefreshPolicy {
            grace: secs(11),
            ..policy
        };
        assert_eq!(
            tight.retry_by(sent),
            Some(sent + secs(5)),
            "just after the first timeout"
        );
    }

    #[test]
    fn random_fractions_stay_in_the_unit_interval_and_vary() {
        let samples: Vec<f64> = (0..100).map(|_| random_fraction()).collect();
        assert!(samples.iter().all(|sample| (0.0..1.0).contains(sample)));
        assert!(samples.iter().any(|sample| *sample != samples[0]));
    }
}
