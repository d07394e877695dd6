//! The hook through which a token service's revocation list vetoes verified tokens.

use std::fmt;
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

impl TokenStatus {
    /// [`TokenStatus::Revoked`] when `revoked`, else [`TokenStatus::Active`].
    pub fn revoked_if(revoked: bool) -> TokenStatus {
        if revoked {
            TokenStatus::Revoked
        } else {
            TokenStatus::Active
        }
    }
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

/// The lookup a [`RevocationCheck`] hands back when it has to wait ([`RevocationAnswer::Pending`]).
pub type RevocationFuture =
    Pin<Box<dyn Future<Output = Result<TokenStatus, RevocationError>> + Send + 'static>>;

/// What a [`RevocationCheck`] answers for one token: its status at once, or a lookup to wait for.
#[must_use]
pub enum RevocationAnswer {
    /// Known without waiting (an in-memory denylist). The request goes on at once: nothing is boxed, and a
    /// verified-token cache hit stays as cheap as without a revocation check.
    Ready(Result<TokenStatus, RevocationError>),
    /// A lookup to wait for (a database, a cache server). It owns what it needs: clone the token (one
    /// reference count) and the check's shared state into it. Build it with [`RevocationAnswer::pending`].
    Pending(RevocationFuture),
}

impl RevocationAnswer {
    /// An answer that has to wait for `lookup`.
    pub fn pending(
        lookup: impl Future<Output = Result<TokenStatus, RevocationError>> + Send + 'static,
    ) -> RevocationAnswer {
        RevocationAnswer::Pending(Box::pin(lookup))
    }
}

impl From<TokenStatus> for RevocationAnswer {
    fn from(status: TokenStatus) -> RevocationAnswer {
        RevocationAnswer::Ready(Ok(status))
    }
}

impl From<Result<TokenStatus, RevocationError>> for RevocationAnswer {
    fn from(status: Result<TokenStatus, RevocationError>) -> RevocationAnswer {
        RevocationAnswer::Ready(status)
    }
}

impl fmt::Debug for RevocationAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevocationAnswer::Ready(status) => f.debug_tuple("Ready").field(status).finish(),
            RevocationAnswer::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// Consulted for every token that passed verification (signature, issuer, audience, lifetime), and for every
/// verified-token cache hit, before the request reaches the handler.
///
/// Decide from what the token carries: [`VerifiedToken::jti`] against a denylist of revoked access tokens,
/// or [`VerifiedToken::subject`] with [`VerifiedToken::issued_at`] for "everything issued to this subject
/// before T" (logout everywhere, password change). Entries only need to outlive the token's
/// [`VerifiedToken::expires_at`]: an expired token is refused before this check runs.
///
/// Answer [`RevocationAnswer::Ready`] whenever the status is known without waiting, as an in-memory
/// denylist always is: the request then stays on the layer's synchronous path, so a cache hit costs no more
/// than without the check. Answer [`RevocationAnswer::pending`] only for a lookup that really waits. The
/// trait is object-safe (the layer holds it as `Arc<dyn RevocationCheck>`), and any
/// `Fn(&VerifiedToken) -> RevocationAnswer` implements it.
///
/// An in-memory denylist, answering at once:
///
/// ```
/// use std::collections::HashSet;
/// use std::sync::{Arc, RwLock};
/// use tessera_server::{RevocationAnswer, RevocationCheck, TokenStatus, VerifiedToken};
///
/// /// Revoked `jti`s.
/// #[derive(Default)]
/// struct Denylist(RwLock<HashSet<String>>);
///
/// impl RevocationCheck for Denylist {
///     fn status(&self, token: &VerifiedToken) -> RevocationAnswer {
///         let revoked = token.jti().is_some_and(|jti| self.0.read().unwrap().contains(jti));
///         TokenStatus::revoked_if(revoked).into()
///     }
/// }
///
/// let check: Arc<dyn RevocationCheck> = Arc::new(Denylist::default());
/// # let _ = check;
/// ```
///
/// A lookup in a store that has to be awaited, written as a closure:
///
/// ```
/// use std::sync::Arc;
/// use tessera_server::{
///     JwtAuthLayer, RevocationAnswer, RevocationCheck, RevocationError, TokenStatus, VerifiedToken,
/// };
///
/// /// A handle to a store of revoked `jti`s (a connection pool, say): cheap to clone.
/// #[derive(Clone)]
/// struct Store;
///
/// impl Store {
///     async fn is_revoked(&self, jti: &str) -> Result<bool, std::io::Error> {
///         Ok(jti == "revoked")
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Store;
/// let check = move |token: &VerifiedToken| {
///     let (store, token) = (store.clone(), token.clone());
///     RevocationAnswer::pending(async move {
///         let jti = token.jti().unwrap_or_default();
///         let revoked = store.is_revoked(jti).await.map_err(RevocationError::new)?;
///         Ok(TokenStatus::revoked_if(revoked))
///     })
/// };
/// let auth = JwtAuthLayer::builder()
///     .hmac_secret([7; 32])
///     .issuer("https://auth.example")
///     .audience("api")
///     .revocation(Arc::new(check))
///     .build()?;
/// # let _ = auth;
/// # Ok(())
/// # }
/// ```
pub trait RevocationCheck: Send + Sync + 'static {
    /// The status of `token`, at once or to be awaited.
    fn status(&self, token: &VerifiedToken) -> RevocationAnswer;
}

impl<F> RevocationCheck for F
where
    F: Fn(&VerifiedToken) -> RevocationAnswer + Send + Sync + 'static,
{
    fn status(&self, token: &VerifiedToken) -> RevocationAnswer {
        self(token)
    }
}
