//! What the handlers take from a request, as axum extractors: its [`Params`] (a form or JSON body within
//! the size limit), its `Authorization: Basic` credentials, its `User-Agent`, and on the user endpoints
//! the signed-in user's claims. A bad request is rejected with the [`TokenError`] that says why.

use std::convert::Infallible;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse as _, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, HeaderName};

use tessera_core::AccessTokenClaims;
use tessera_core::header::DPOP;
use tessera_core::jose::ProofError;
use tessera_server::Claims;

use crate::error::TokenError;
use crate::issuer::Issuer;
use crate::minting::is_client_subject;
use crate::params::Params;

/// The longest `User-Agent` kept for the session list.
const MAX_USER_AGENT: usize = 256;

/// The largest body [`Params`] reads, taken from the router's state.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimit(usize);

impl<S> FromRef<Issuer<S>> for BodyLimit {
    fn from_ref(issuer: &Issuer<S>) -> Self {
        BodyLimit(issuer.max_body_bytes())
    }
}

impl<St> FromRequest<St> for Params
where
    St: Send + Sync,
    BodyLimit: FromRef<St>,
{
    type Rejection = TokenError;

    async fn from_request(request: Request, state: &St) -> Result<Self, TokenError> {
        let BodyLimit(limit) = BodyLimit::from_ref(state);
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|error| {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if too_large {
                TokenError::PayloadTooLarge { limit }
            } else {
                TokenError::InvalidRequest("the request body could not be read".into())
            }
        })?;
        match media_type(&parts.headers)? {
            MediaType::Form => Params::from_form(&bytes),
            MediaType::Json => Params::from_json(&bytes),
            MediaType::None if bytes.is_empty() => Params::from_form(&bytes),
            MediaType::None => Err(TokenError::InvalidRequest(
                "the body has no Content-Type; send application/x-www-form-urlencoded or application/json".into(),
            )),
        }
    }
}

/// The credentials of an `Authorization: Basic` header, still encoded (the client directory decodes and
/// checks them). Other schemes are not client authentication and are ignored: a client library that
/// attaches its bearer token to every request must not break logout.
#[derive(Debug)]
pub(super) struct BasicCredentials(pub(super) Option<String>);

impl<St: Send + Sync> FromRequestParts<St> for BasicCredentials {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Infallible> {
        let credentials = header(parts, AUTHORIZATION)
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, credentials)| credentials.trim().to_owned());
        Ok(BasicCredentials(credentials))
    }
}

/// The request's DPoP proof (RFC 9449 §4.1): `Ok(None)` without a `DPoP` header, an error if there are
/// several or the value is not visible ASCII. Never a rejection, so that the token route answers every
/// failure itself (with its `DPoP-Nonce`).
#[derive(Debug)]
pub(super) struct DpopHeader(pub(super) Result<Option<String>, TokenError>);

impl<St: Send + Sync> FromRequestParts<St> for DpopHeader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Infallible> {
        let mut values = parts.headers.get_all(DPOP).iter();
        let proof = match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => value
                .to_str()
                .map(|proof| Some(proof.trim().to_owned()))
                .map_err(|_| ProofError::Malformed("the DPoP header is not visible ASCII")),
            (Some(_), Some(_)) => Err(ProofError::Multiple),
        }
        .map_err(TokenError::InvalidDpopProof);
        Ok(DpopHeader(proof))
    }
}

/// The `User-Agent`, cut to its first 256 characters, for the session list.
#[derive(Debug)]
pub(super) struct UserAgent(pub(super) Option<String>);

impl<St: Send + Sync> FromRequestParts<St> for UserAgent {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Infallible> {
        let agent =
            header(parts, USER_AGENT).map(|agent| agent.chars().take(MAX_USER_AGENT).collect());
        Ok(UserAgent(agent))
    }
}

/// The claims of the signed-in user's access token, as the `JwtAuthLayer` in front verified them. A
/// client-credentials token acts for no user: refused with 403 `insufficient_scope`.
#[derive(Debug)]
pub(super) struct UserClaims(pub(super) AccessTokenClaims);

impl<St: Send + Sync> FromRequestParts<St> for UserClaims {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        let Claims(claims) = Claims::<AccessTokenClaims>::from_request_parts(parts, state)
            .await
            .map_err(axum::response::IntoResponse::into_response)?;
        if is_client_subject(&claims.sub) {
            return Err(TokenError::NotAUser.into_response());
        }
        Ok(UserClaims(claims))
    }
}

/// A header's value, if it is there and visible ASCII.
fn header(parts: &Parts, name: HeaderName) -> Option<&str> {
    parts.headers.get(name)?.to_str().ok()
}

enum MediaType {
    Form,
    Json,
    None,
}

fn media_type(headers: &HeaderMap) -> Result<MediaType, TokenError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(MediaType::None);
    };
    let unsupported = || {
        TokenError::InvalidRequest(
            "unsupported Content-Type; send application/x-www-form-urlencoded or application/json"
                .into(),
        )
    };
    let value = value.to_str().map_err(|_| unsupported())?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(MediaType::Form),
        "application/json" => Ok(MediaType::Json),
        other if other.starts_with("application/") && other.ends_with("+json") => {
            Ok(MediaType::Json)
        }
        _ => Err(unsupported()),
    }
}
