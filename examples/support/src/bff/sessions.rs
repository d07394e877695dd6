//! The proxy's server-side sessions: the browser holds an unguessable id in an `HttpOnly` cookie; the user,
//! the CSRF token and the token pair (inside the session's API client) stay here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::upstream::ApiSession;

/// 256 bits from the OS CSPRNG, base64url: session ids and CSRF tokens.
pub(super) fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// One signed-in browser.
pub(super) struct Session {
    /// The signed-in username, shown by the page.
    pub(super) user: String,
    /// Sent back by the page in a header on every state-changing request.
    pub(super) csrf_token: String,
    /// The session's own API client: its token pair and its refresh middleware, so refreshes deduplicate
    /// per session and never mix two users' tokens.
    pub(super) api: ApiSession,
    last_seen: Mutex<Instant>,
}

impl Session {
    pub(super) fn new(user: String, csrf_token: String, api: ApiSession) -> Self {
        Session {
            user,
            csrf_token,
            api,
            last_seen: Mutex::new(Instant::now()),
        }
    }

    fn last_seen(&self) -> Instant {
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn touch(&self, now: Instant) {
        *self
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now;
    }

    fn is_idle(&self, idle_timeout: Duration, now: Instant) -> bool {
        now.duration_since(self.last_seen()) >= idle_timeout
    }
}

/// How many sessions the proxy keeps: memory is bounded whoever logs in how often.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sessions held at most. At the bound, idle sessions are ended first; if none is idle, the new login
    /// is refused with `503` and `Retry-After` (the time until the least recently used session turns
    /// idle). Signed-in users are never pushed out by other people's logins.
    pub max_sessions: usize,
    /// Sessions one user holds at most: a further login ends that user's least recently used session
    /// (its family revoked), so one account cannot fill the proxy.
    pub max_per_user: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: 10_000,
            max_per_user: 10,
        }
    }
}

/// Every live session, by id, each ending after `idle_timeout` without a request.
pub(super) struct Sessions {
    idle_timeout: Duration,
    limits: SessionLimits,
    by_id: Mutex<HashMap<String, Arc<Session>>>,
}

/// What a cookie's session id points at.
pub(super) enum Lookup {
    /// A live session, now touched.
    Live(Arc<Session>),
    /// A session that sat idle too long: removed, handed back so its token family can be revoked.
    Expired(Arc<Session>),
    /// No such session (never existed, logged out, or the proxy restarted).
    Unknown,
}

/// What became of a new session.
pub(super) struct Admission {
    /// Its id, or why it was refused.
    pub(super) outcome: Result<String, Refused>,
    /// Sessions that ended to make room (idle ones, the user's least recently used one): their families
    /// still need revoking.
    pub(super) ended: Vec<Arc<Session>>,
}

/// [`SessionLimits::max_sessions`] are live and none is idle.
pub(super) struct Refused {
    /// The session that was not stored: its family needs revoking.
    pub(super) session: Arc<Session>,
    /// How long until the least recently used session turns idle.
    pub(super) retry_after: Duration,
}

impl Sessions {
    pub(super) fn new(idle_timeout: Duration, limits: SessionLimits) -> Self {
        Sessions {
            idle_timeout,
            limits,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `session` under a fresh id, within [`SessionLimits`].
    pub(super) fn insert(&self, session: Session) -> Result<Admission, getrandom::Error> {
        let id = random_token()?;
        let now = Instant::now();
        let mut by_id = self.lock();
        let mut ended = Vec::new();
        let mine: Vec<(Instant, String)> = by_id
            .iter()
            .filter(|(_, other)| other.user == session.user)
            .map(|(id, other)| (other.last_seen(), id.clone()))
            .collect();
        if mine.len() >= self.limits.max_per_user.max(1)
            && let Some((_, oldest)) = mine.iter().min()
        {
            ended.extend(by_id.remove(oldest));
        }
        if by_id.len() >= self.limits.max_sessions {
            ended.extend(Self::remove_idle(&mut by_id, self.idle_timeout, now));
        }
        if by_id.len() >= self.limits.max_sessions {
            let least_recent = by_id.values().map(|other| other.last_seen()).min();
            let retry_after = least_recent.map_or(self.idle_timeout, |seen| {
                self.idle_timeout.saturating_sub(now.duration_since(seen))
            });
            return Ok(Admission {
                outcome: Err(Refused {
                    session: Arc::new(session),
                    retry_after,
                }),
                ended,
            });
        }
        by_id.insert(id.clone(), Arc::new(session));
        Ok(Admission {
            outcome: Ok(id),
            ended,
        })
    }

    /// Removes and returns every session idle for `idle_timeout`: the sweeper revokes their families.
    pub(super) fn sweep_idle(&self) -> Vec<Arc<Session>> {
        Self::remove_idle(&mut self.lock(), self.idle_timeout, Instant::now())
    }

    fn remove_idle(
        by_id: &mut HashMap<String, Arc<Session>>,
        idle_timeout: Duration,
        now: Instant,
    ) -> Vec<Arc<Session>> {
        let idle: Vec<String> = by_id
            .iter()
            .filter(|(_, session)| session.is_idle(idle_timeout, now))
            .map(|(id, _)| id.clone())
            .collect();
        idle.iter().filter_map(|id| by_id.remove(id)).collect()
    }

    pub(super) fn lookup(&self, id: &str) -> Lookup {
        let now = Instant::now();
        let mut by_id = self.lock();
        let Some(session) = by_id.get(id) else {
            return Lookup::Unknown;
        };
        if session.is_idle(self.idle_timeout, now) {
            return by_id.remove(id).map_or(Lookup::Unknown, Lookup::Expired);
        }
        session.touch(now);
        Lookup::Live(Arc::clone(session))
    }

    pub(super) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().remove(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
