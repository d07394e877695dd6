//! The hook through which a token service's revocation list vetoes verified tokens.

use std::future::Future;
use std::pin::Pin;

use crate::VerifiedToken;

/// Whether a verified token may still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Not revoked.
    Active,
    /// Revoked: the request is answered 401 `invalid_token` ("The access token has been revoked").
    Revoked,
}

/// The revocation list could not be consulted. The layer fails closed: 503 `temporarily_unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("the revocation list could not be consulted: {source}")]
pub struct RevocationError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl RevocationError {
    /// Wraps the store's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> RevocationError {
        RevocationError {
            source: source.into(),
        }
    }
}

/// The future a [`RevocationCheck`] returns.
pub type RevocationFuture<'a> =
    Pin<Box<dyn Future<Output = Result<TokenStatus, RevocationError>> + Send + 'a>>;

/// Consulted for every token that passed verification (signature, issuer, audience, lifetime), and for every
/// verified-token cache hit, before the request reaches the handler.
///
/// Decide from what the token carries: [`VerifiedToken::jti`] against a denylist of revoked access tokens,
/// or [`VerifiedToken::subject`] with [`VerifiedToken::issued_at`] for "everything issued to this subject
/// before T" (logout everywhere, password change). Entries only need to outlive the token's
/// [`VerifiedToken::expires_at`]: an expired token is refused before this check runs.
///
/// The trait is object-safe; the layer holds it as `Arc<dyn RevocationCheck>`. Keep it fast: it runs on
/// every authenticated request.
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::{Arc, RwLock};
/// use tessera_server::{RevocationCheck, RevocationFuture, TokenStatus, VerifiedToken};
///
/// /// Revoked `jti`s, in memory.
/// #[derive(Default)]
/// struct Denylist(RwLock<HashSet<String>>);
///
/// impl RevocationCheck for Denylist {
///     fn status<'a>(&'a self, token: &'a VerifiedToken) -> RevocationFuture<'a> {
///         Box::pin(async move {
///             let revoked = token.jti().is_some_and(|jti| self.0.read().unwrap().contains(jti));
///             Ok(if revoked { TokenStatus::Revoked } else { TokenStatus::Active })
///         })
///     }
/// }
///
/// let check: Arc<dyn RevocationCheck> = Arc::new(Denylist::default());
/// # let _ = check;
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// The status of `token`.
    fn status<'a>(&'a self, token: &'a VerifiedToken) -> RevocationFuture<'a>;
}
