//! What a successful verification hands to handlers.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::rejection::Responder;
use crate::{Algorithm, JwtKey};

/// A string claim: a span of the claims JSON when it needed no unescaping (the common case, no
/// allocation), or its own copy when it did.
pub(crate) enum Text {
    Span { start: usize, end: usize },
    Owned(Box<str>),
}

impl Text {
    /// `value`, which was deserialized from `payload`, as a span of it when borrowed.
    pub(crate) fn from_claim(payload: &str, value: Cow<'_, str>) -> Text {
        match value {
            Cow::Borrowed(borrowed) => {
                let start = (borrowed.as_ptr() as usize).wrapping_sub(payload.as_ptr() as usize);
                let end = start.wrapping_add(borrowed.len());
                if payload.get(start..end) == Some(borrowed) {
                    Text::Span { start, end }
                } else {
                    Text::Owned(borrowed.into())
                }
            }
            Cow::Owned(owned) => Text::Owned(owned.into_boxed_str()),
        }
    }

    fn resolve<'a>(&'a self, payload: &'a str) -> &'a str {
        match self {
            Text::Span { start, end } => payload.get(*start..*end).unwrap_or_default(),
            Text::Owned(owned) => owned,
        }
    }
}

/// The granted scopes, as the token carries them.
pub(crate) enum Scopes {
    /// Space-separated: `scope` (RFC 9068, RFC 8693 §4.2), or `scp` as a string (Entra ID).
    Spaced(Option<Text>),
    /// One per element: `scp` as an array (Okta).
    Listed(Vec<Text>),
}

pub(crate) struct TokenParts {
    /// The layer that verified the token: its identity, and how rejections about the token are answered.
    pub(crate) responder: Responder,
    pub(crate) payload: Box<str>,
    pub(crate) key: Arc<JwtKey>,
    /// The token's `alg`, one of those its key accepts.
    pub(crate) algorithm: Algorithm,
    pub(crate) expires_at: i64,
    pub(crate) not_before: Option<i64>,
    pub(crate) issued_at: Option<i64>,
    pub(crate) issuer: Option<Text>,
    pub(crate) subject: Option<Text>,
    pub(crate) jti: Option<Text>,
    pub(crate) session_id: Option<Text>,
    pub(crate) client_id: Option<Text>,
    pub(crate) scopes: Scopes,
    pub(crate) roles: Vec<Text>,
    /// `cnf.jkt`: the thumbprint of the DPoP key the token is bound to.
    pub(crate) jkt: Option<Text>,
}

/// An access token that passed verification: its claims, and the key that signed it.
///
/// [`JwtAuth`](crate::JwtAuth) inserts one into the request extensions; handlers usually take
/// [`Claims<T>`](crate::Claims) instead, or this type directly as an extractor. Cloning is cheap (one
/// reference count). The raw token is not kept.
#[derive(Clone)]
pub struct VerifiedToken {
    parts: Arc<TokenParts>,
}

impl VerifiedToken {
    pub(crate) fn new(parts: TokenParts) -> VerifiedToken {
        VerifiedToken {
            parts: Arc::new(parts),
        }
    }

    /// The claims as the JSON text the token carried.
    pub fn claims_json(&self) -> &str {
        &self.parts.payload
    }

    /// The claims deserialized into `T`, e.g. [`tessera_core::AccessTokenClaims`] or an application type.
    ///
    /// # Errors
    /// When the claims do not fit `T`.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.parts.payload)
    }

    /// `exp`, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.parts.expires_at
    }

    /// `nbf`, seconds since the Unix epoch.
    pub fn not_before(&self) -> Option<i64> {
        self.parts.not_before
    }

    /// `iat`, seconds since the Unix epoch: what a "revoke everything issued before T" check compares.
    pub fn issued_at(&self) -> Option<i64> {
        self.parts.issued_at
    }

    /// `iss`.
    pub fn issuer(&self) -> Option<&str> {
        self.text(&self.parts.issuer)
    }

    /// `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.text(&self.parts.subject)
    }

    /// `jti`: the key of a revocation denylist.
    pub fn jti(&self) -> Option<&str> {
        self.text(&self.parts.jti)
    }

    /// `sid`: the session the token was issued in (a token service's refresh-token family), the key of a
    /// denial that ends every token of one session.
    pub fn session_id(&self) -> Option<&str> {
        self.text(&self.parts.session_id)
    }

    /// `client_id` (RFC 9068 §2.2).
    pub fn client_id(&self) -> Option<&str> {
        self.text(&self.parts.client_id)
    }

    /// The granted scopes, one by one: from `scope` (space-separated, RFC 9068), or when it is absent from
    /// `scp`, which Entra ID sends as a space-separated string and Okta as an array.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        let (spaced, listed) = match &self.parts.scopes {
            Scopes::Spaced(scope) => (self.text(scope), &[][..]),
            Scopes::Listed(scopes) => (None, scopes.as_slice()),
        };
        let payload = &self.parts.payload;
        spaced
            .unwrap_or_default()
            .split_ascii_whitespace()
            .chain(listed.iter().map(|scope| scope.resolve(payload)))
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|granted| granted == scope)
    }

    /// The subject's roles: the `roles` claim (RFC 9068 §7.2.1.1, Entra ID), or wherever
    /// [`JwtAuthBuilder::role_claims`](crate::JwtAuthBuilder::role_claims) points (Keycloak's
    /// `realm_access.roles`, say).
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.parts
            .roles
            .iter()
            .map(|role| role.resolve(&self.parts.payload))
    }

    /// Whether the subject holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|held| held == role)
    }

    /// The `kid` of the key that verified the signature.
    pub fn key_id(&self) -> Option<&str> {
        self.parts.key.kid()
    }

    /// The token's `alg`: one of the algorithms of the key that verified it.
    pub fn algorithm(&self) -> Algorithm {
        self.parts.algorithm
    }

    /// `cnf.jkt` (RFC 9449 §6.1): the SHA-256 thumbprint of the DPoP key the token is bound to. Such a
    /// token is only accepted with the DPoP scheme and a proof signed by that key.
    pub fn jkt(&self) -> Option<&str> {
        self.text(&self.parts.jkt)
    }

    /// Whether the token is bound to a DPoP key (has `cnf.jkt`).
    pub(crate) fn is_bound(&self) -> bool {
        self.parts.jkt.is_some()
    }

    /// Whether the layer `responder` answers for verified this token.
    pub(crate) fn verified_by(&self, responder: &Responder) -> bool {
        self.parts.responder.is(responder)
    }

    /// How the layer that verified this token answers.
    pub(crate) fn responder(&self) -> &Responder {
        &self.parts.responder
    }

    pub(crate) fn key(&self) -> &Arc<JwtKey> {
        &self.parts.key
    }

    fn text<'a>(&'a self, text: &'a Option<Text>) -> Option<&'a str> {
        text.as_ref().map(|text| text.resolve(&self.parts.payload))
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("iss", &self.issuer())
            .field("sub", &self.subject())
            .field("jti", &self.jti())
            .field("sid", &self.session_id())
            .field("exp", &self.expires_at())
            .field("kid", &self.key_id())
            .field("alg", &self.algorithm())
            .field("jkt", &self.jkt())
            .finish_non_exhaustive()
    }
}
