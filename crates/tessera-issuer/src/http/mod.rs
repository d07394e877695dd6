//! The axum routers: the token service (`/token`, `/revoke`, `/introspect`, `/logout`, `/logout-all`,
//! `/sessions`, `/sessions/{id}`) and the public documents (the JWKS, the RFC 8414 metadata).
//!
//! Handlers are one line each: extractors ([`extract`]) read the request, the issuer's parts do the work,
//! and [`NoStore`] or [`TokenError`](crate::error::TokenError) ([`response`]) render the answer.

mod extract;
mod response;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::header::{CACHE_CONTROL, HeaderName};
use http::{HeaderValue, StatusCode};
use serde_json::json;
use tessera_core::header::DPOP_NONCE;
use tessera_server::JwtAuthLayer;

use self::extract::{BasicCredentials, DpopHeader, UserAgent, UserClaims};
use self::response::NoStore;
use crate::error::TokenError;
use crate::grants::TokenRequest;
use crate::issuer::Issuer;
use crate::params::Params;
use crate::store::RefreshStore;

/// Where [`Issuer::jwks_router`] serves the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The routes of [`Issuer::router`].
pub(crate) fn router<S: RefreshStore>(issuer: Issuer<S>, auth: &JwtAuthLayer) -> Router {
    let signed_in = Router::new()
        .route("/logout-all", post(logout_all::<S>))
        .route("/sessions", get(sessions::<S>))
        .route("/sessions/{id}", delete(end_session::<S>))
        .route_layer(auth.clone());
    Router::new()
        .route("/token", post(token::<S>))
        .route("/revoke", post(revoke::<S>))
        .route("/introspect", post(introspect::<S>))
        .route("/logout", post(logout::<S>))
        .route(crate::feed::DENIALS_PATH, get(crate::feed::denials::<S>))
        .merge(signed_in)
        .with_state(issuer)
}

/// The route of [`Issuer::jwks_router`].
pub(crate) fn jwks_router<S: RefreshStore>(issuer: Issuer<S>) -> Router {
    Router::new()
        .route(JWKS_PATH, get(jwks::<S>))
        .with_state(issuer)
}

/// The routes of [`Issuer::well_known_router`].
pub(crate) fn well_known_router<S: RefreshStore>(issuer: Issuer<S>) -> Router {
    Router::new()
        .route(JWKS_PATH, get(jwks::<S>))
        .route(&issuer.metadata().path, get(metadata::<S>))
        .with_state(issuer)
}

type Answer<T> = Result<NoStore<T>, TokenError>;

/// `POST /token`. With DPoP nonces on, every answer carries the current one (RFC 9449 §8).
async fn token<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    BasicCredentials(basic): BasicCredentials,
    UserAgent(agent): UserAgent,
    DpopHeader(proof): DpopHeader,
    params: Params,
) -> Response {
    let answer = match proof {
        Ok(proof) => {
            let request = TokenRequest {
                params: &params,
                basic: basic.as_deref(),
                user_agent: agent.as_deref(),
                dpop: proof.as_deref(),
            };
            issuer.grants().token(request).await
        }
        Err(error) => Err(error),
    };
    let mut response = match answer {
        Ok(tokens) => NoStore(Json(tokens)).into_response(),
        Err(error) => error.into_response(),
    };
    if let Some(nonce) = issuer.grants().dpop_nonce()
        && let Ok(nonce) = HeaderValue::try_from(nonce)
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static(DPOP_NONCE), nonce);
    }
    response
}

async fn introspect<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    BasicCredentials(basic): BasicCredentials,
    params: Params,
) -> Answer<impl IntoResponse> {
    let answer = issuer
        .introspection()
        .introspect(&params, basic.as_deref())
        .await?;
    Ok(NoStore(Json(answer)))
}

async fn revoke<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    BasicCredentials(basic): BasicCredentials,
    params: Params,
) -> Answer<impl IntoResponse> {
    issuer.sessions().revoke(&params, basic.as_deref()).await?;
    Ok(NoStore(StatusCode::OK))
}

async fn logout<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    BasicCredentials(basic): BasicCredentials,
    params: Params,
) -> Answer<impl IntoResponse> {
    issuer.sessions().logout(&params, basic.as_deref()).await?;
    Ok(NoStore(StatusCode::NO_CONTENT))
}

async fn logout_all<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    UserClaims(claims): UserClaims,
) -> Answer<impl IntoResponse> {
    let ended = issuer.sessions().logout_all(&claims).await?;
    Ok(NoStore(Json(json!({ "sessions_ended": ended }))))
}

async fn sessions<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    UserClaims(claims): UserClaims,
) -> Answer<impl IntoResponse> {
    let sessions = issuer.sessions().list(&claims).await?;
    Ok(NoStore(Json(sessions)))
}

async fn end_session<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    UserClaims(claims): UserClaims,
    Path(id): Path<String>,
) -> Answer<impl IntoResponse> {
    issuer.sessions().end(&claims, id).await?;
    Ok(NoStore(StatusCode::NO_CONTENT))
}

async fn metadata<S: RefreshStore>(State(issuer): State<Issuer<S>>) -> Response {
    // Stable for the life of the process; clients may cache it like the keys.
    (
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(&issuer.metadata().document),
    )
        .into_response()
}

async fn jwks<S: RefreshStore>(State(issuer): State<Issuer<S>>) -> Response {
    // Verifiers may cache the keys briefly; a rotation adds the new key well before it signs.
    (
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(issuer.jwks()),
    )
        .into_response()
}
