//! What happened, as typed [`AuthEvent`]s: delivered to an [`AuthEventHook`] and logged through `tracing`.
//!
//! Events name users, clients, families and generations, never a token or a password.

use std::fmt;
use std::sync::Arc;

use tessera_core::GrantType;

use crate::store::{FamilyId, RevokeReason};

/// Something the token service did or refused to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthEvent {
    /// A user logged in (password grant): a new family started, unless the client may not refresh.
    LoginSucceeded {
        /// The user.
        user_id: String,
        /// The client.
        client_id: String,
        /// The new family; `None` for a client not allowed the refresh grant, which gets an access
        /// token only.
        family_id: Option<FamilyId>,
    },
    /// A login was refused.
    LoginFailed {
        /// The username as presented (it may not exist).
        username: String,
        /// The client.
        client_id: String,
        /// Why.
        reason: LoginFailure,
    },
    /// A refresh token was rotated.
    Refreshed {
        /// The user.
        user_id: String,
        /// The client.
        client_id: String,
        /// The family.
        family_id: FamilyId,
        /// The generation of the new refresh token.
        generation: u64,
    },
    /// The previous refresh token came back within the grace window: the same successor was served again.
    RetryServed {
        /// The user.
        user_id: String,
        /// The client.
        client_id: String,
        /// The family.
        family_id: FamilyId,
        /// The generation of the successor served again.
        generation: u64,
    },
    /// A consumed refresh token was presented again: the family was revoked.
    ReuseDetected {
        /// The user.
        user_id: String,
        /// The client.
        client_id: String,
        /// The family, now revoked.
        family_id: FamilyId,
        /// The generation of the presented token.
        presented_generation: u64,
        /// The family's current generation.
        current_generation: u64,
    },
    /// A family was revoked by logout, RFC 7009 revocation, the session list or a user-wide revocation.
    ///
    /// Each revocation is reported by exactly one event: a family revoked because of token reuse is
    /// reported only as [`AuthEvent::ReuseDetected`], one evicted by the session cap only as
    /// [`AuthEvent::EvictedByCap`]; count all three to count revoked families.
    Revoked {
        /// The user.
        user_id: String,
        /// The client.
        client_id: String,
        /// The family.
        family_id: FamilyId,
        /// Why.
        reason: RevokeReason,
    },
    /// A new login pushed the user over the per-client session cap; the oldest family was revoked.
    EvictedByCap {
        /// The user.
        user_id: String,
        /// The client.
        client_id: String,
        /// The evicted family.
        family_id: FamilyId,
    },
    /// An access token was put on the denylist (RFC 7009 revocation).
    AccessTokenRevoked {
        /// The token's subject.
        subject: String,
        /// The token's `jti`.
        jti: String,
    },
    /// A client obtained an access token for itself (client-credentials grant).
    ClientTokenIssued {
        /// The client.
        client_id: String,
    },
    /// Client authentication failed at the token or revocation endpoint.
    ClientAuthenticationFailed {
        /// The client id presented, if any.
        client_id: Option<String>,
        /// The grant asked for, if it was known.
        grant_type: Option<GrantType>,
    },
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong password (deliberately not told apart).
    BadCredentials,
    /// Too many recent failures for this username.
    Throttled,
}

impl fmt::Display for LoginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoginFailure::BadCredentials => "bad credentials",
            LoginFailure::Throttled => "throttled",
        })
    }
}

/// Receives every [`AuthEvent`]: audit logs, metrics, alerting on reuse.
///
/// Called inline on the request path: keep it fast and hand slow work to a channel. Any
/// `Fn(&AuthEvent) + Send + Sync` closure is a hook.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tessera_issuer::{AuthEvent, AuthEventHook};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let hook = {
///     let seen = seen.clone();
///     move |event: &AuthEvent| seen.lock().unwrap().push(event.clone())
/// };
/// hook.on_event(&AuthEvent::ClientTokenIssued { client_id: "svc".into() });
/// assert_eq!(seen.lock().unwrap().len(), 1);
/// ```
pub trait AuthEventHook: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &AuthEvent);
}

impl<F> AuthEventHook for F
where
    F: Fn(&AuthEvent) + Send + Sync + 'static,
{
    fn on_event(&self, event: &AuthEvent) {
        self(event);
    }
}

/// Where the token service's parts report events: the log, and the hook if one is set.
#[derive(Clone, Default)]
pub(crate) struct Events {
    hook: Option<Arc<dyn AuthEventHook>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Events {
    pub(crate) fn new(hook: Option<Arc<dyn AuthEventHook>>) -> Self {
        Events { hook }
    }

    /// Logs `event` and hands it to the hook.
    pub(crate) fn emit(&self, event: AuthEvent) {
        trace(&event);
        if let Some(hook) = &self.hook {
            hook.on_event(&event);
        }
    }
}

/// Logs an event at a level that matches its gravity.
fn trace(event: &AuthEvent) {
    match event {
        AuthEvent::LoginSucceeded {
            user_id,
            client_id,
            family_id,
        } => {
            tracing::info!(
                user_id,
                client_id,
                family_id = family_id.as_ref().map(FamilyId::as_str),
                "login succeeded"
            );
        }
        AuthEvent::LoginFailed {
            username,
            client_id,
            reason,
        } => {
            tracing::warn!(username, client_id, reason = %reason, "login failed");
        }
        AuthEvent::Refreshed {
            user_id,
            client_id,
            family_id,
            generation,
        } => {
            tracing::debug!(user_id, client_id, family_id = %family_id, generation, "refresh token rotated");
        }
        AuthEvent::RetryServed {
            user_id,
            client_id,
            family_id,
            generation,
        } => {
            tracing::info!(user_id, client_id, family_id = %family_id, generation, "refresh retried within grace");
        }
        AuthEvent::ReuseDetected {
            user_id,
            client_id,
            family_id,
            presented_generation,
            current_generation,
        } => {
            tracing::warn!(
                user_id,
                client_id,
                family_id = %family_id,
                presented_generation,
                current_generation,
                "refresh token reuse detected; family revoked"
            );
        }
        AuthEvent::Revoked {
            user_id,
            client_id,
            family_id,
            reason,
        } => {
            tracing::info!(user_id, client_id, family_id = %family_id, reason = reason.as_str(), "family revoked");
        }
        AuthEvent::EvictedByCap {
            user_id,
            client_id,
            family_id,
        } => {
            tracing::info!(user_id, client_id, family_id = %family_id, "oldest session evicted by the cap");
        }
        AuthEvent::AccessTokenRevoked { subject, jti } => {
            tracing::info!(subject, jti, "access token revoked");
        }
        AuthEvent::ClientTokenIssued { client_id } => {
            tracing::debug!(client_id, "client credentials token issued");
        }
        AuthEvent::ClientAuthenticationFailed {
            client_id,
            grant_type,
        } => {
            tracing::warn!(
                client_id,
                grant_type = grant_type.map(GrantType::as_str),
                "client authentication failed"
            );
        }
    }
}
