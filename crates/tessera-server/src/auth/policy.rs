//! The per-route part of a layer: what a verified token must additionally satisfy, and whether a request
//! may come without one.

use std::sync::Arc;

use crate::{AuthRejection, VerifiedToken};

/// What [`JwtAuthLayer::require_scope`](crate::JwtAuthLayer::require_scope),
/// [`require_role`](crate::JwtAuthLayer::require_role) and [`optional`](crate::JwtAuthLayer::optional)
/// add to a layer. Pure: it decides from the token alone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// A request without any token passes anonymously.
    pub(crate) anonymous: bool,
    scopes: Vec<Box<str>>,
    /// `scopes` joined by spaces: the `scope` of an `insufficient_scope` challenge.
    scope_param: Option<Arc<str>>,
    roles: Vec<Arc<str>>,
}

impl Policy {
    /// This policy, additionally requiring `scope`.
    pub(crate) fn with_scope(&self, scope: String) -> Policy {
        let mut policy = self.clone();
        policy.scopes.push(scope.into_boxed_str());
        let joined = policy
            .scopes
            .iter()
            .map(|scope| &**scope)
            .collect::<Vec<_>>()
            .join(" ");
        policy.scope_param = Some(joined.into());
        policy
    }

    /// This policy, additionally requiring the subject to hold `role`.
    pub(crate) fn with_role(&self, role: String) -> Policy {
        let mut policy = self.clone();
        policy.roles.push(role.into());
        policy
    }

    /// This policy, letting requests without any token through.
    pub(crate) fn anonymous_allowed(&self) -> Policy {
        Policy {
            anonymous: true,
            ..self.clone()
        }
    }

    /// Whether `token` satisfies the scope and role requirements: every required scope granted, every
    /// required role held.
    pub(crate) fn authorize(&self, token: &VerifiedToken) -> Result<(), AuthRejection> {
        if let Some(scope) = &self.scope_param
            && !self.scopes.iter().all(|required| token.has_scope(required))
        {
            return Err(AuthRejection::InsufficientScope {
                scope: Arc::clone(scope),
            });
        }
        if let Some(role) = self.roles.iter().find(|role| !token.has_role(role)) {
            return Err(AuthRejection::MissingRole {
                role: Arc::clone(role),
            });
        }
        Ok(())
    }
}
