//! Access-token denials: what a token service publishes when it revokes access tokens ([`Denial`], and the
//! [`DenialPage`]s of its feed), and [`Denylist`], the in-memory set a layer checks every verified token
//! against.
//!
//! A denial ends access tokens by one of three claims, and lasts until `until`: the moment every token it
//! covers has expired, plus the largest clock leeway a verifier allows (a verifier accepts a token until
//! `exp + leeway`, so a denial dropped at `exp` would bring the token back).
//!
//! | target | ends | JSON |
//! |---|---|---|
//! | [`DenialTarget::Token`] | the token with this `jti` (RFC 7009 revocation) | `{"jti":"…","until":…}` |
//! | [`DenialTarget::Session`] | every token with this `sid` (logout, a revoked refresh-token family) | `{"sid":"…","until":…}` |
//! | [`DenialTarget::Subject`] | every token of this `sub` with an `iat` before `issued_before` (logout everywhere) | `{"sub":"…","issued_before":…,"until":…}` |
//!
//! Times are seconds since the Unix epoch.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::{
    Clock, RevocationAnswer, RevocationCheck, RevocationError, SystemClock, TokenStatus,
    VerifiedToken,
};

/// What a [`Denial`] ends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DenialTarget {
    /// The access token with this `jti`.
    Token(String),
    /// Every access token with this `sid` (one session: a token service's refresh-token family).
    Session(String),
    /// Every access token of the subject `sub` issued before `issued_before` (`iat < issued_before`),
    /// and every one of its tokens without `iat`.
    Subject {
        /// The subject (`sub`).
        subject: String,
        /// Tokens with an `iat` before this second are denied.
        issued_before: i64,
    },
}

/// One access-token denial: what it ends ([`DenialTarget`]: one token by `jti`, a session by `sid`, or a
/// subject's tokens issued before a time), and `until`, when every token it covers has expired plus the
/// largest clock leeway of the verifiers (a verifier accepts a token until `exp + leeway`, so a denial
/// dropped at `exp` would bring the token back).
///
/// Serialized as one flat JSON object, as the token service's feed publishes it (`{"jti":"…","until":…}`,
/// `{"sid":"…","until":…}`, `{"sub":"…","issued_before":…,"until":…}`):
///
/// ```
/// use tessera_server::Denial;
///
/// let denial = Denial::subject("alice", 1_800_000_000, 1_800_001_200);
/// let json = serde_json::to_string(&denial)?;
/// assert_eq!(json, r#"{"sub":"alice","issued_before":1800000000,"until":1800001200}"#);
/// assert_eq!(serde_json::from_str::<Denial>(&json)?, denial);
/// assert!(serde_json::from_str::<Denial>(r#"{"jti":"a","sid":"b","until":1}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "WireDenial", into = "WireDenial")]
pub struct Denial {
    /// What it ends.
    pub target: DenialTarget,
    /// When every token it covers has expired (plus the verifiers' leeway): the denial may go then.
    pub until: i64,
}

impl Denial {
    /// Denies the access token `jti` until `until`.
    pub fn token(jti: impl Into<String>, until: i64) -> Denial {
        Denial {
            target: DenialTarget::Token(jti.into()),
            until,
        }
    }

    /// Denies every access token of the session `sid` until `until`.
    pub fn session(sid: impl Into<String>, until: i64) -> Denial {
        Denial {
            target: DenialTarget::Session(sid.into()),
            until,
        }
    }

    /// Denies every access token of `subject` issued before `issued_before`, until `until`.
    pub fn subject(subject: impl Into<String>, issued_before: i64, until: i64) -> Denial {
        Denial {
            target: DenialTarget::Subject {
                subject: subject.into(),
                issued_before,
            },
            until,
        }
    }

    /// The identity of the denial: its kind and key, without the bounds a later denial may raise.
    pub fn key(&self) -> (DenialKind, &str) {
        match &self.target {
            DenialTarget::Token(jti) => (DenialKind::Token, jti),
            DenialTarget::Session(sid) => (DenialKind::Session, sid),
            DenialTarget::Subject { subject, .. } => (DenialKind::Subject, subject),
        }
    }

    /// `issued_before` of a subject denial; 0 for the other kinds.
    pub fn issued_before(&self) -> i64 {
        match &self.target {
            DenialTarget::Subject { issued_before, .. } => *issued_before,
            DenialTarget::Token(_) | DenialTarget::Session(_) => 0,
        }
    }

    /// This denial merged with a later one of the same [`key`](Denial::key): the later bounds of each,
    /// so that a later write never shortens or narrows a denial.
    #[must_use]
    pub fn merged(mut self, later: &Denial) -> Denial {
        if let (
            DenialTarget::Subject { issued_before, .. },
            DenialTarget::Subject {
                issued_before: later_before,
                ..
            },
        ) = (&mut self.target, &later.target)
        {
            *issued_before = (*issued_before).max(*later_before);
        }
        self.until = self.until.max(later.until);
        self
    }
}

/// The three kinds of [`DenialTarget`], as stores and feeds name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DenialKind {
    /// [`DenialTarget::Token`].
    Token,
    /// [`DenialTarget::Session`].
    Session,
    /// [`DenialTarget::Subject`].
    Subject,
}

impl DenialKind {
    /// The stable text form (`jti`, `sid`, `sub`), the JSON member that names the target.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialKind::Token => "jti",
            DenialKind::Session => "sid",
            DenialKind::Subject => "sub",
        }
    }

    /// Parses [`DenialKind::as_str`]'s output.
    pub fn parse(text: &str) -> Option<DenialKind> {
        [DenialKind::Token, DenialKind::Session, DenialKind::Subject]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// A denial as the feed's JSON holds it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireDenial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_before: Option<i64>,
    until: i64,
}

impl TryFrom<WireDenial> for Denial {
    type Error = &'static str;

    fn try_from(wire: WireDenial) -> Result<Denial, Self::Error> {
        let target = match (wire.jti, wire.sid, wire.sub, wire.issued_before) {
            (Some(jti), None, None, None) => DenialTarget::Token(jti),
            (None, Some(sid), None, None) => DenialTarget::Session(sid),
            (None, None, Some(subject), Some(issued_before)) => DenialTarget::Subject {
                subject,
                issued_before,
            },
            _ => {
                return Err(
                    "a denial names exactly one of `jti`, `sid` or `sub`, and `issued_before` only with `sub`",
                );
            }
        };
        Ok(Denial {
            target,
            until: wire.until,
        })
    }
}

impl From<Denial> for WireDenial {
    fn from(denial: Denial) -> WireDenial {
        let mut wire = WireDenial {
            jti: None,
            sid: None,
            sub: None,
            issued_before: None,
            until: denial.until,
        };
        match denial.target {
            DenialTarget::Token(jti) => wire.jti = Some(jti),
            DenialTarget::Session(sid) => wire.sid = Some(sid),
            DenialTarget::Subject {
                subject,
                issued_before,
            } => {
                wire.sub = Some(subject);
                wire.issued_before = Some(issued_before);
            }
        }
        wire
    }
}

/// One page of a token service's denials feed: the denials written after the cursor the request named, in
/// the order they were written.
///
/// ```json
/// {"denials":[{"sid":"Zk3…","until":1800001200}],"cursor":"q8Xw…:42","more":false}
/// ```
///
/// Ask again with `after=<cursor>` for what came next; `more` says a next page is already waiting. A
/// denial appears again (with its new bounds) when a later write extends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialPage {
    /// The denials, oldest write first.
    pub denials: Vec<Denial>,
    /// Where the next request starts: opaque, pass it back as `after`.
    pub cursor: String,
    /// Whether more denials are waiting past this page.
    pub more: bool,
}

/// Whether a [`Denylist`] can be trusted to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// The denials in force were never loaded (a process just started): answering "not revoked" could let
    /// a revoked token through, so every check fails (the layer answers 503).
    NotLoaded,
    /// Loaded and kept up to date.
    Available,
    /// Its source has been unreachable for longer than its owner tolerates: checks fail (503) until it
    /// answers again.
    Stale,
}

impl Availability {
    fn code(self) -> u8 {
        match self {
            Availability::NotLoaded => 0,
            Availability::Available => 1,
            Availability::Stale => 2,
        }
    }

    fn from_code(code: u8) -> Availability {
        match code {
            1 => Availability::Available,
            2 => Availability::Stale,
            _ => Availability::NotLoaded,
        }
    }
}

/// Why a [`Denylist`] could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DenylistUnavailable {
    /// The denials were never loaded.
    #[error("the access-token denylist has not been loaded yet")]
    NotLoaded,
    /// The denials are out of date.
    #[error("the access-token denylist is out of date: its source has been unreachable too long")]
    Stale,
}

/// The denied access tokens, in memory, shared by clones: a [`RevocationCheck`] that answers every token at
/// once, without locking.
///
/// A check loads the current immutable snapshot (an atomic pointer load) and looks the token up by `jti`,
/// `sid` and `sub`. Writes are rare and batched: [`Denylist::insert`] builds the next snapshot from a copy of
/// the current one and swaps it in (concurrent writers retry on the newer snapshot, so none is lost), and
/// does nothing when the denials add nothing new.
///
/// A new denylist is [`Availability::NotLoaded`] and fails every check (the layer answers 503) until its
/// owner, having loaded what is in force, calls [`Denylist::set_availability`]: a process that has just
/// started never accepts a token revoked before it started. Entries leave at their `until`
/// ([`Denylist::expire`]), so its size is bounded by the revocations of the last access-token lifetime.
///
/// ```
/// use tessera_server::{Availability, Denial, Denylist};
///
/// let denylist = Denylist::new();
/// assert_eq!(denylist.availability(), Availability::NotLoaded);
/// denylist.insert(&[Denial::session("family-1", 1_800_000_900)]);
/// denylist.set_availability(Availability::Available);
/// assert!(denylist.denies(None, Some("family-1"), Some("alice"), Some(1_800_000_000)));
/// assert_eq!(denylist.expire(1_800_000_900), 1);
/// assert!(denylist.is_empty());
/// ```
#[derive(Clone)]
pub struct Denylist {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    availability: AtomicU8,
    freshness: Freshness,
}

/// When the list was last brought up to date, and how long it may go without.
struct Freshness {
    clock: Arc<dyn Clock>,
    started: Instant,
    /// Milliseconds since `started` of the last successful sync; 0 before the first.
    last_sync_ms: AtomicU64,
    stale_after: Option<Duration>,
}

impl Freshness {
    /// Milliseconds since the list was built, on the clock's monotonic time; at least 1.
    fn now_ms(&self) -> u64 {
        let elapsed = self
            .clock
            .monotonic()
            .saturating_duration_since(self.started);
        u64::try_from(elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// Denials by kind and key.
#[derive(Debug, Clone, Default)]
struct Sets {
    /// `jti` -> until.
    tokens: HashMap<Box<str>, i64>,
    /// `sid` -> until.
    sessions: HashMap<Box<str>, i64>,
    /// `sub` -> (issued before, until).
    subjects: HashMap<Box<str>, (i64, i64)>,
}

impl Sets {
    /// Whether adding `denial` would deny more, or for longer.
    fn extended_by(&self, denial: &Denial) -> bool {
        match &denial.target {
            DenialTarget::Token(jti) => self
                .tokens
                .get(jti.as_str())
                .is_none_or(|&until| until < denial.until),
            DenialTarget::Session(sid) => self
                .sessions
                .get(sid.as_str())
                .is_none_or(|&until| until < denial.until),
            DenialTarget::Subject {
                subject,
                issued_before,
            } => self
                .subjects
                .get(subject.as_str())
                .is_none_or(|&(before, until)| before < *issued_before || until < denial.until),
        }
    }

    fn add(&mut self, denial: &Denial) {
        match &denial.target {
            DenialTarget::Token(jti) => raise(&mut self.tokens, jti, denial.until),
            DenialTarget::Session(sid) => raise(&mut self.sessions, sid, denial.until),
            DenialTarget::Subject {
                subject,
                issued_before,
            } => {
                let entry = self
                    .subjects
                    .entry(subject.as_str().into())
                    .or_insert((*issued_before, denial.until));
                *entry = (entry.0.max(*issued_before), entry.1.max(denial.until));
            }
        }
    }

    fn denies(
        &self,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<i64>,
    ) -> bool {
        jti.is_some_and(|jti| self.tokens.contains_key(jti))
            || sid.is_some_and(|sid| self.sessions.contains_key(sid))
            || sub
                .and_then(|sub| self.subjects.get(sub))
                .is_some_and(|&(issued_before, _)| iat.is_none_or(|iat| iat < issued_before))
    }

    /// How many entries have ended by `now`.
    fn ended(&self, now: i64) -> usize {
        self.tokens.values().filter(|&&until| until <= now).count()
            + self
                .sessions
                .values()
                .filter(|&&until| until <= now)
                .count()
            + self
                .subjects
                .values()
                .filter(|&&(_, until)| until <= now)
                .count()
    }

    fn len(&self) -> usize {
        self.tokens.len() + self.sessions.len() + self.subjects.len()
    }

    /// Adds every entry of `other`, keeping the later bounds.
    fn merge(&mut self, other: Sets) {
        for (jti, until) in other.tokens {
            raise(&mut self.tokens, &jti, until);
        }
        for (sid, until) in other.sessions {
            raise(&mut self.sessions, &sid, until);
        }
        for (sub, (issued_before, until)) in other.subjects {
            let entry = self.subjects.entry(sub).or_insert((issued_before, until));
            *entry = (entry.0.max(issued_before), entry.1.max(until));
        }
    }
}

/// How many denials a snapshot collects on top of its base before they are merged into a new base.
const MERGE_AT: usize = 1_024;

/// One immutable state of the denylist: a large base shared by successive snapshots, and the recent
/// denials on top of it. A write copies only the recent ones (and, every [`MERGE_AT`] denials, the base), so
/// revoking stays cheap however many denials are in force.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    base: Arc<Sets>,
    recent: Sets,
}

impl Snapshot {
    fn extended_by(&self, denial: &Denial) -> bool {
        self.recent.extended_by(denial) && self.base.extended_by(denial)
    }

    /// The next snapshot: this one with `denials` added.
    fn with(&self, denials: &[Denial]) -> Snapshot {
        let mut next = self.clone();
        for denial in denials {
            next.recent.add(denial);
        }
        if next.recent.len() >= MERGE_AT {
            let mut base = Sets::clone(&next.base);
            base.merge(std::mem::take(&mut next.recent));
            next.base = Arc::new(base);
        }
        next
    }

    /// The next snapshot: this one without the entries that ended by `now`, merged into one base.
    fn without_ended(&self, now: i64) -> Snapshot {
        let mut base = Sets::clone(&self.base);
        base.merge(self.recent.clone());
        base.tokens.retain(|_, until| *until > now);
        base.sessions.retain(|_, until| *until > now);
        base.subjects.retain(|_, (_, until)| *until > now);
        Snapshot {
            base: Arc::new(base),
            recent: Sets::default(),
        }
    }

    fn denies(
        &self,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<i64>,
    ) -> bool {
        self.recent.denies(jti, sid, sub, iat) || self.base.denies(jti, sid, sub, iat)
    }

    fn ended(&self, now: i64) -> usize {
        self.recent.ended(now) + self.base.ended(now)
    }

    /// Entries, counting a key in both the base and the recent denials once per place.
    fn len(&self) -> usize {
        self.recent.len() + self.base.len()
    }
}

fn raise(map: &mut HashMap<Box<str>, i64>, key: &str, until: i64) {
    let entry = map.entry(key.into()).or_insert(until);
    *entry = (*entry).max(until);
}

impl Default for Denylist {
    fn default() -> Self {
        Denylist::new()
    }
}

impl Denylist {
    /// An empty denylist, [`Availability::NotLoaded`] until its owner says otherwise, never going stale by
    /// itself.
    pub fn new() -> Denylist {
        Denylist::kept_fresh(Arc::new(SystemClock), None)
    }

    /// An empty denylist whose owner reports each attempt to bring it up to date
    /// ([`Denylist::synced`], [`Denylist::sync_failed`]): once the last success is older than
    /// `stale_after` (on `clock`'s monotonic time), it turns [`Availability::Stale`].
    pub fn kept_fresh(clock: Arc<dyn Clock>, stale_after: Option<Duration>) -> Denylist {
        Denylist {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                availability: AtomicU8::new(Availability::NotLoaded.code()),
                freshness: Freshness {
                    started: clock.monotonic(),
                    clock,
                    last_sync_ms: AtomicU64::new(0),
                    stale_after,
                },
            }),
        }
    }

    /// The list holds every denial its source has: it is [`Availability::Available`].
    pub fn synced(&self) {
        let freshness = &self.inner.freshness;
        freshness
            .last_sync_ms
            .store(freshness.now_ms(), Ordering::Release);
        self.set_availability(Availability::Available);
    }

    /// Bringing the list up to date failed; it turns [`Availability::Stale`] if the last success is older
    /// than its limit. Returns whether it just did.
    pub fn sync_failed(&self) -> bool {
        let freshness = &self.inner.freshness;
        let Some(limit) = freshness.stale_after else {
            return false;
        };
        let last = freshness.last_sync_ms.load(Ordering::Acquire);
        let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let stale = last > 0
            && freshness.now_ms().saturating_sub(last) > limit_ms
            && self.availability() == Availability::Available;
        if stale {
            self.set_availability(Availability::Stale);
        }
        stale
    }

    /// Seconds since the list was last brought up to date; `None` before the first time.
    pub fn seconds_since_sync(&self) -> Option<u64> {
        let freshness = &self.inner.freshness;
        let last = freshness.last_sync_ms.load(Ordering::Acquire);
        (last > 0).then(|| freshness.now_ms().saturating_sub(last) / 1_000)
    }

    /// Adds `denials` (one new snapshot at most, none if they add nothing); returns how many of them
    /// denied more or for longer than what the list held.
    pub fn insert(&self, denials: &[Denial]) -> usize {
        let current = self.inner.snapshot.load();
        let news = denials
            .iter()
            .filter(|denial| current.extended_by(denial))
            .count();
        if news == 0 {
            return 0;
        }
        drop(current);
        self.inner.snapshot.rcu(|current| current.with(denials));
        news
    }

    /// Drops the entries that ended by `now` (`until <= now`); returns how many.
    pub fn expire(&self, now: i64) -> usize {
        if self.inner.snapshot.load().ended(now) == 0 {
            return 0;
        }
        let previous = self
            .inner
            .snapshot
            .rcu(|current| current.without_ended(now));
        previous.ended(now)
    }

    /// Whether a token with these claims is denied. Lock-free; answers whatever the availability.
    pub fn denies(
        &self,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<i64>,
    ) -> bool {
        self.inner.snapshot.load().denies(jti, sid, sub, iat)
    }

    /// Whether `token` is denied (by its `jti`, `sid`, or `sub` and `iat`).
    pub fn denies_token(&self, token: &VerifiedToken) -> bool {
        self.denies(
            token.jti(),
            token.session_id(),
            token.subject(),
            token.issued_at(),
        )
    }

    /// Whether checks are answered (see [`Availability`]).
    pub fn availability(&self) -> Availability {
        Availability::from_code(self.inner.availability.load(Ordering::Acquire))
    }

    /// Sets whether checks are answered: the owner marks the list [`Availability::Available`] once it
    /// holds every denial in force, and [`Availability::Stale`] when its source has been unreachable longer
    /// than it tolerates.
    pub fn set_availability(&self, availability: Availability) {
        self.inner
            .availability
            .store(availability.code(), Ordering::Release);
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.inner.snapshot.load().len()
    }

    /// Whether the list holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The check's answer for `token`: 503 unless available, else denied or not.
    fn answer(&self, token: &VerifiedToken) -> Result<TokenStatus, RevocationError> {
        match self.availability() {
            Availability::Available => Ok(TokenStatus::revoked_if(self.denies_token(token))),
            Availability::NotLoaded => Err(RevocationError::new(DenylistUnavailable::NotLoaded)),
            Availability::Stale => Err(RevocationError::new(DenylistUnavailable::Stale)),
        }
    }
}

/// Answers at once from the in-memory snapshot, so the layer stays on its synchronous path: a cached token
/// costs the same with the denylist as without it. Unless [`Availability::Available`], every token is
/// answered with a [`RevocationError`] (503 `temporarily_unavailable`).
impl RevocationCheck for Denylist {
    fn status(&self, token: &VerifiedToken) -> RevocationAnswer {
        self.answer(token).into()
    }
}

impl fmt::Debug for Denylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.inner.snapshot.load();
        f.debug_struct("Denylist")
            .field("availability", &self.availability())
            .field("entries", &snapshot.len())
            .field("recent", &snapshot.recent.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_denies_what_it_names_until_it_ends() {
        let denylist = Denylist::new();
        denylist.insert(&[
            Denial::token("j1", 1_100),
            Denial::session("s1", 1_200),
            Denial::subject("alice", 1_000, 1_900),
        ]);
        assert!(denylist.denies(Some("j1"), None, None, None));
        assert!(denylist.denies(Some("j2"), Some("s1"), Some("bob"), Some(5)));
        assert!(denylist.denies(None, None, Some("alice"), Some(999)));
        assert!(
            denylist.denies(None, None, Some("alice"), None),
            "no iat: the mark denies it"
        );
        assert!(
            !denylist.denies(Some("j2"), Some("s2"), Some("alice"), Some(1_000)),
            "issued at the mark's second or later: not denied"
        );
        assert_eq!(denylist.expire(1_100), 1);
        assert_eq!(denylist.expire(1_200), 1);
        assert_eq!(denylist.len(), 1);
        assert_eq!(denylist.expire(1_900), 1);
        assert!(denylist.is_empty());
    }

    #[test]
    fn later_denials_only_extend_and_unchanged_inserts_keep_the_snapshot() {
        let denylist = Denylist::new();
        assert_eq!(
            denylist.insert(&[
                Denial::subject("alice", 1_000, 1_900),
                Denial::token("j", 1_500)
            ]),
            2
        );
        let before = denylist.inner.snapshot.load_full();
        assert_eq!(
            denylist.insert(&[
                Denial::subject("alice", 900, 1_800),
                Denial::token("j", 1_200)
            ]),
            0
        );
        assert!(Arc::ptr_eq(&before, &denylist.inner.snapshot.load_full()));
        assert_eq!(
            denylist.insert(&[Denial::subject("alice", 1_100, 1_800)]),
            1
        );
        assert!(denylist.denies(None, None, Some("alice"), Some(1_050)));
        assert_eq!(
            Denial::subject("a", 5, 10).merged(&Denial::subject("a", 3, 20)),
            Denial::subject("a", 5, 20)
        );
    }

    #[test]
    fn recent_denials_merge_into_the_base_and_expire_with_it() {
        let denylist = Denylist::new();
        let batch = |from: usize, count: usize| -> Vec<Denial> {
            (from..from + count)
                .map(|n| Denial::token(format!("j{n}"), 2_000 + n as i64))
                .collect()
        };
        for start in (0..3 * MERGE_AT).step_by(100) {
            denylist.insert(&batch(start, 100));
        }
        let snapshot = denylist.inner.snapshot.load_full();
        assert!(
            snapshot.recent.len() < MERGE_AT,
            "merged into the base as they come"
        );
        assert!(denylist.denies(Some("j0"), None, None, None));
        assert!(denylist.denies(Some(&format!("j{}", 3 * MERGE_AT - 1)), None, None, None));
        assert_eq!(
            denylist.insert(&batch(0, 10)),
            0,
            "known denials change nothing"
        );
        denylist.expire(2_000 + 4 * MERGE_AT as i64);
        assert!(denylist.is_empty());
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let denylist = Denylist::new();
        std::thread::scope(|scope| {
            for writer in 0..4 {
                let denylist = denylist.clone();
                scope.spawn(move || {
                    for index in 0..50 {
                        denylist.insert(&[Denial::token(format!("{writer}-{index}"), 2_000)]);
                    }
                });
            }
        });
        assert_eq!(denylist.len(), 200);
    }

    #[test]
    fn the_wire_form_names_exactly_one_target() {
        for (json, denial) in [
            (r#"{"jti":"j","until":5}"#, Denial::token("j", 5)),
            (r#"{"sid":"s","until":5}"#, Denial::session("s", 5)),
        ] {
            assert_eq!(serde_json::to_string(&denial).unwrap(), json);
            assert_eq!(serde_json::from_str::<Denial>(json).unwrap(), denial);
        }
        for bad in [
            r#"{"until":5}"#,
            r#"{"sub":"a","until":5}"#,
            r#"{"jti":"j","issued_before":1,"until":5}"#,
            r#"{"jti":"j","until":5,"extra":1}"#,
        ] {
            assert!(serde_json::from_str::<Denial>(bad).is_err(), "{bad}");
        }
        for kind in [DenialKind::Token, DenialKind::Session, DenialKind::Subject] {
            assert_eq!(DenialKind::parse(kind.as_str()), Some(kind));
        }
    }
}
