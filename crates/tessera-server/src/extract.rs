//! axum extractors for what the layer verified.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::de::DeserializeOwned;
use tessera_core::AccessTokenClaims;

use crate::layer::Anonymous;
use crate::{AuthRejection, VerifiedToken};

/// The verified token's claims, deserialized into `T` (by default [`AccessTokenClaims`]).
///
/// Needs a [`JwtAuthLayer`](crate::JwtAuthLayer) in front of the handler. On a route behind an
/// [optional](crate::JwtAuthLayer::optional) layer, take `Option<Claims<T>>`: `None` for an anonymous request.
///
/// Rejections: 401 `invalid_token` when the claims do not fit `T`; 401 (no error code) when an optional
/// layer let an anonymous request through to a handler that requires claims; 500 when no layer is installed.
///
/// ```
/// use axum::{Router, routing::get};
/// use serde::Deserialize;
/// use tessera_server::Claims;
///
/// #[derive(Deserialize)]
/// struct MyClaims {
///     sub: String,
///     tenant: String,
/// }
///
/// async fn me(Claims(claims): Claims<MyClaims>) -> String {
///     format!("{} of {}", claims.sub, claims.tenant)
/// }
///
/// async fn greeting(claims: Option<Claims>) -> String {
///     match claims {
///         Some(Claims(claims)) => format!("hello {}", claims.sub),
///         None => "hello stranger".to_owned(),
///     }
/// }
///
/// let app: Router = Router::new().route("/me", get(me)).route("/greeting", get(greeting));
/// # let _ = app;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Claims<T = AccessTokenClaims>(pub T);

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let token = required_token(parts)?;
        claims_of(&token)
    }
}

impl<S, T> OptionalFromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<VerifiedToken>() {
            Some(token) => claims_of(token).map(Some),
            None => Ok(None),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required_token(parts)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedToken>().cloned())
    }
}

fn required_token(parts: &Parts) -> Result<VerifiedToken, AuthRejection> {
    if let Some(token) = parts.extensions.get::<VerifiedToken>() {
        return Ok(token.clone());
    }
    let rejection = if parts.extensions.get::<Anonymous>().is_some() {
        AuthRejection::MissingCredentials
    } else {
        AuthRejection::LayerMissing
    };
    rejection.trace();
    Err(rejection)
}

fn claims_of<T: DeserializeOwned>(token: &VerifiedToken) -> Result<Claims<T>, AuthRejection> {
    token.claims().map(Claims).map_err(|error| {
        tracing::debug!(%error, "verified claims do not fit the handler's claims type");
        let rejection = AuthRejection::UnexpectedClaims;
        rejection.trace();
        rejection
    })
}
