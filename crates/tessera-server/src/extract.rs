//! axum extractors for what the layer verified, and their rejection.

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;
use tessera_core::AccessTokenClaims;

use crate::auth::scheme_of;
use crate::rejection::{Responder, Scheme};
use crate::{AuthRejection, VerifiedToken};

/// The verified token's claims, deserialized into `T` (by default [`AccessTokenClaims`]).
///
/// Needs a [`JwtAuthLayer`](crate::JwtAuthLayer) in front of the handler. On a route behind an
/// [optional](crate::JwtAuthLayer::optional) layer, take `Option<Claims<T>>`: `None` for an anonymous request.
///
/// Rejections ([`ClaimsRejection`], answered with the layer's realm and body and counted with its
/// rejections): 401 `invalid_token` when the claims do not fit `T`; 401 (no error code) when an optional
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

/// Why a [`Claims`] or [`VerifiedToken`] extractor refused a request.
///
/// Answers exactly as the [`JwtAuthLayer`](crate::JwtAuthLayer) in front of the handler would (its realm,
/// its [`RejectionBody`](crate::RejectionBody)), and counts in that layer's
/// [`AuthStats::rejected`](crate::AuthStats::rejected) when it is rendered. Without any layer
/// ([`AuthRejection::LayerMissing`]) it answers with the defaults.
#[derive(Debug, Clone)]
pub struct ClaimsRejection {
    reason: AuthRejection,
    /// The layer that let the request through; `None` when there is none.
    responder: Option<Responder>,
    /// How the request presented its token, for the challenge's scheme.
    scheme: Scheme,
}

impl ClaimsRejection {
    /// Why the request was refused.
    pub fn reason(&self) -> &AuthRejection {
        &self.reason
    }

    /// Why the request was refused, without the layer's way of answering.
    pub fn into_reason(self) -> AuthRejection {
        self.reason
    }
}

impl fmt::Display for ClaimsRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.reason, f)
    }
}

impl std::error::Error for ClaimsRejection {}

impl IntoResponse for ClaimsRejection {
    fn into_response(self) -> Response {
        match &self.responder {
            Some(responder) => responder.reject(&self.reason, self.scheme),
            None => {
                self.reason.trace();
                self.reason.render_default()
            }
        }
    }
}

/// Marks a request that an optional layer let through without a token, so extractors can tell "anonymous"
/// from "no layer installed", and answer the way that layer does.
#[derive(Debug, Clone)]
pub(crate) struct Anonymous(pub(crate) Responder);

impl<S, T> FromRequestParts<S> for Claims<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ClaimsRejection;

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
    type Rejection = ClaimsRejection;

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
    type Rejection = ClaimsRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required_token(parts)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = ClaimsRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<VerifiedToken>().cloned())
    }
}

fn required_token(parts: &Parts) -> Result<VerifiedToken, ClaimsRejection> {
    if let Some(token) = parts.extensions.get::<VerifiedToken>() {
        return Ok(token.clone());
    }
    Err(match parts.extensions.get::<Anonymous>() {
        Some(Anonymous(responder)) => ClaimsRejection {
            reason: AuthRejection::MissingCredentials,
            responder: Some(responder.clone()),
            scheme: Scheme::Bearer,
        },
        None => ClaimsRejection {
            reason: AuthRejection::LayerMissing,
            responder: None,
            scheme: Scheme::Bearer,
        },
    })
}

fn claims_of<T: DeserializeOwned>(token: &VerifiedToken) -> Result<Claims<T>, ClaimsRejection> {
    token.claims().map(Claims).map_err(|error| {
        tracing::debug!(%error, "verified claims do not fit the handler's claims type");
        ClaimsRejection {
            reason: AuthRejection::UnexpectedClaims,
            responder: Some(token.responder().clone()),
            scheme: scheme_of(token),
        }
    })
}
