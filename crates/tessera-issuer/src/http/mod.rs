//! The axum routers: the token service (`/token`, `/revoke`, `/logout`, `/logout-all`, `/sessions`,
//! `/sessions/{id}`) and the JWKS document.
//!
//! Handlers are one line each: extractors ([`extract`]) read the request, the issuer's parts do the work,
//! and [`NoStore`] or [`TokenError`](crate::error::TokenError) ([`response`]) render the answer.

mod extract;
mod response;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::StatusCode;
use http::header::CACHE_CONTROL;
use serde_json::json;
use tessera_server::JwtAuthLayer;

use self::extract::{BasicCredentials, UserAgent, UserClaims};
use self::response::NoStore;
use crate::error::TokenError;
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
        .route("/logout", post(logout::<S>))
        .merge(signed_in)
        .with_state(issuer)
}

/// The route of [`Issuer::jwks_router`].
pub(crate) fn jwks_router<S: RefreshStore>(issuer: Issuer<S>) -> Router {
    Router::new()
        .route(JWKS_PATH, get(jwks::<S>))
        .with_state(issuer)
}

type Answer<T> = Result<NoStore<T>, TokenError>;

async fn token<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    BasicCredentials(basic): BasicCredentials,
    UserAgent(agent): UserAgent,
    params: Params,
) -> Answer<impl IntoResponse> {
    let tokens = issuer
        .grants()
        .token(&params, basic.as_deref(), agent.as_deref())
        .await?;
    Ok(NoStore(Json(tokens)))
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

async fn jwks<S: RefreshStore>(State(issuer): State<Issuer<S>>) -> Response {
    // Verifiers may cache the keys briefly; a rotation adds the new key well before it signs.
    (
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(issuer.jwks()),
    )
        .into_response()
}
