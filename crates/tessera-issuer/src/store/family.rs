//! A token family (one device session) as a store keeps it: its id, the record, why it was revoked.

use std::fmt;

use serde::Serialize;
use tessera_core::random::{self, RandomError};

use crate::refresh::TokenHash;

/// The identifier of a token family, i.e. of one device session: 128 random bits, base64url.
///
/// Public (it names a session in `GET /sessions`), but useless without a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FamilyId(String);

impl FamilyId {
    /// A fresh random id.
    pub(crate) fn generate() -> Result<Self, RandomError> {
        random::id::<16>().map(FamilyId)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for FamilyId {
    fn from(id: String) -> Self {
        FamilyId(id)
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user logged out of this session (`POST /logout`).
    Logout,
    /// The refresh token was revoked through RFC 7009 `POST /revoke`.
    TokenRevoked,
    /// A consumed refresh token was presented again: the family is presumed stolen.
    ReuseDetected,
    /// The user exceeded the per-client cap of live sessions and this was the oldest.
    Evicted,
    /// The user ended this session from the session list (`DELETE /sessions/{id}`).
    SessionEnded,
    /// Every session of the user was ended (`POST /logout-all`, a password change, an administrator).
    UserRevoked,
}

impl RevokeReason {
    const ALL: [RevokeReason; 6] = [
        RevokeReason::Logout,
        RevokeReason::TokenRevoked,
        RevokeReason::ReuseDetected,
        RevokeReason::Evicted,
        RevokeReason::SessionEnded,
        RevokeReason::UserRevoked,
    ];

    /// The stable text form stores persist.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::TokenRevoked => "token_revoked",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::Evicted => "evicted",
            RevokeReason::SessionEnded => "session_ended",
            RevokeReason::UserRevoked => "user_revoked",
        }
    }

    /// Parses [`RevokeReason::as_str`]'s output.
    pub fn parse(text: &str) -> Option<Self> {
        RevokeReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

/// When and why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// Why.
    pub reason: RevokeReason,
}

/// A revocation to carry out: why, when, and for how long afterwards the access tokens of each family it
/// ends are denied (by their `sid`): at least the access-token lifetime plus the largest leeway of the
/// verifiers, so that no token minted before the revocation outlives the denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoke {
    /// Why.
    pub reason: RevokeReason,
    /// The current time, seconds since the Unix epoch.
    pub now: i64,
    /// How long the families' access tokens stay denied, in seconds.
    pub deny_access_for: i64,
}

impl Revoke {
    /// When the denials this revocation writes end.
    pub fn denied_until(&self) -> i64 {
        self.now.saturating_add(self.deny_access_for)
    }

    /// The denial of `family`'s access tokens (its `sid`) this revocation writes.
    pub fn session_denial(&self, family: &FamilyId) -> tessera_server::Denial {
        tessera_server::Denial::session(family.as_str(), self.denied_until())
    }
}

/// A family to create: the first refresh token of a new session. Times are seconds since the Unix epoch.
#[derive(Debug, Clone)]
pub struct NewFamily {
    /// Its id.
    pub id: FamilyId,
    /// The user (the access token's `sub`).
    pub user_id: String,
    /// The client the tokens are issued to.
    pub client_id: String,
    /// The granted scope, space-separated.
    pub scope: Option<String>,
    /// The user's roles at login, carried into every access token of the family.
    pub roles: Vec<String>,
    /// The `User-Agent` of the login request, shown in the session list.
    pub user_agent: Option<String>,
    /// The RFC 7638 thumbprint of the DPoP key the family's refresh tokens are bound to (a public
    /// client that logged in with a DPoP proof, RFC 9449 §5); `None` for an unbound family.
    pub dpop_jkt: Option<String>,
    /// Hash of the first refresh token (generation 0).
    pub token: TokenHash,
    /// Creation time.
    pub created_at: i64,
    /// End of the absolute lifetime, fixed now.
    pub absolute_expires_at: i64,
    /// End of the idle lifetime, slid forward by each rotation (never past the absolute end).
    pub idle_expires_at: i64,
}

/// A stored family: one device session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Its id.
    pub id: FamilyId,
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// The granted scope.
    pub scope: Option<String>,
    /// The user's roles at login.
    pub roles: Vec<String>,
    /// The `User-Agent` at login.
    pub user_agent: Option<String>,
    /// The DPoP key thumbprint the family's refresh tokens are bound to, if any: every rotation (and
    /// retry) must prove possession of that key.
    pub dpop_jkt: Option<String>,
    /// The generation of the current refresh token: 0 at login, +1 per rotation.
    pub generation: u64,
    /// Creation time.
    pub created_at: i64,
    /// Time of the last rotation (creation time before the first); the grace window counts from here.
    pub last_used_at: i64,
    /// End of the absolute lifetime.
    pub absolute_expires_at: i64,
    /// End of the idle lifetime; never after `absolute_expires_at`.
    pub idle_expires_at: i64,
    /// Set once the family is revoked.
    pub revoked: Option<Revocation>,
}

impl Family {
    /// The record of a family just created from `new`, at generation 0 (the idle end clamped to the
    /// absolute end).
    pub fn created(new: &NewFamily) -> Family {
        Family {
            id: new.id.clone(),
            user_id: new.user_id.clone(),
            client_id: new.client_id.clone(),
            scope: new.scope.clone(),
            roles: new.roles.clone(),
            user_agent: new.user_agent.clone(),
            dpop_jkt: new.dpop_jkt.clone(),
            generation: 0,
            created_at: new.created_at,
            last_used_at: new.created_at,
            absolute_expires_at: new.absolute_expires_at,
            idle_expires_at: new.idle_expires_at.min(new.absolute_expires_at),
            revoked: None,
        }
    }

    /// When the family stops being usable (the idle end, which never passes the absolute end).
    pub fn expires_at(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// Whether the family is neither revoked nor expired at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked.is_none() && now < self.expires_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoke_reasons_round_trip_through_their_stored_text() {
        for reason in RevokeReason::ALL {
            assert_eq!(RevokeReason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::Value::from(reason.as_str())
            );
        }
        assert_eq!(RevokeReason::parse("stolen"), None);
    }
}
