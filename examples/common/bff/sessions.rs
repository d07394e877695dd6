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
}

/// Every live session, by id, each ending after `idle_timeout` without a request.
pub(super) struct Sessions {
    idle_timeout: Duration,
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

impl Sessions {
    pub(super) fn new(idle_timeout: Duration) -> Self {
        Sessions {
            idle_timeout,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `session` under a fresh id and returns the id, plus the idle sessions swept out on the way
    /// (their families still need revoking).
    pub(super) fn insert(
        &self,
        session: Session,
    ) -> Result<(String, Vec<Arc<Session>>), getrandom::Error> {
        let id = random_token()?;
        let now = Instant::now();
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let idle: Vec<String> = by_id
            .iter()
            .filter(|(_, session)| self.is_idle(session, now))
            .map(|(id, _)| id.clone())
            .collect();
        let swept = idle.iter().filter_map(|id| by_id.remove(id)).collect();
        by_id.insert(id.clone(), Arc::new(session));
        Ok((id, swept))
    }

    pub(super) fn lookup(&self, id: &str) -> Lookup {
        let now = Instant::now();
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(session) = by_id.get(id) else {
            return Lookup::Unknown;
        };
        if self.is_idle(session, now) {
            return by_id.remove(id).map_or(Lookup::Unknown, Lookup::Expired);
        }
        *session
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = now;
        Lookup::Live(Arc::clone(session))
    }

    pub(super) fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.by_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    fn is_idle(&self, session: &Session, now: Instant) -> bool {
        let last_seen = *session
            .last_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        now.duration_since(last_seen) >= self.idle_timeout
    }
}
