//! The axum routers: the token service (`/token`, `/revoke`, `/logout`, `/logout-all`, `/sessions`,
//! `/sessions/{id}`) and the JWKS document.

mod body;
mod response;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http::StatusCode;
use serde_json::json;
use tessera_server::{Claims, JwtAuthLayer};

use crate::error::TokenError;
use crate::issuer::Issuer;
use crate::store::RefreshStore;

use self::response::{no_store_empty, no_store_json};

/// Where [`Issuer::jwks_router`] serves the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

impl<S: RefreshStore> Issuer<S> {
    /// The token service's routes, to mount with `.nest("/auth", issuer.router(&auth))`:
    ///
    /// | route | |
    /// |---|---|
    /// | `POST /token` | RFC 6749 grants `password`, `refresh_token`, `client_credentials` |
    /// | `POST /revoke` | RFC 7009 revocation of a refresh token's family or an access token |
    /// | `POST /logout` | ends the session of the `refresh_token` in the body |
    /// | `POST /logout-all` | ends every session of the signed-in user (bearer access token) |
    /// | `GET /sessions` | the signed-in user's live sessions |
    /// | `DELETE /sessions/{id}` | ends one of them |
    ///
    /// `auth` authenticates the last three by access token; [`Issuer::auth_layer`] makes one that trusts
    /// this issuer's keys and consults its denylist.
    pub fn router(&self, auth: &JwtAuthLayer) -> Router {
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
            .with_state(self.clone())
    }

    /// `GET /.well-known/jwks.json`: the public verification keys (RFC 7517), to mount at the root.
    pub fn jwks_router(&self) -> Router {
        Router::new()
            .route(JWKS_PATH, get(jwks::<S>))
            .with_state(self.clone())
    }
}

async fn token<S: RefreshStore>(State(issuer): State<Issuer<S>>, request: Request) -> Response {
    let limit = issuer.inner.settings.max_body_bytes;
    let result = async {
        let request = body::parse(request, limit).await?;
        issuer
            .token(
                &request.params,
                request.basic.as_deref(),
                request.user_agent.as_deref(),
            )
            .await
    }
    .await;
    match result {
        Ok(tokens) => no_store_json(StatusCode::OK, &tokens),
        Err(error) => error.into_response(),
    }
}

async fn revoke<S: RefreshStore>(State(issuer): State<Issuer<S>>, request: Request) -> Response {
    let limit = issuer.inner.settings.max_body_bytes;
    let result = async {
        let request = body::parse(request, limit).await?;
        issuer
            .revoke(&request.params, request.basic.as_deref())
            .await
    }
    .await;
    respond_empty(result, StatusCode::OK)
}

async fn logout<S: RefreshStore>(State(issuer): State<Issuer<S>>, request: Request) -> Response {
    let limit = issuer.inner.settings.max_body_bytes;
    let result = async {
        let request = body::parse(request, limit).await?;
        issuer
            .logout(&request.params, request.basic.as_deref())
            .await
    }
    .await;
    respond_empty(result, StatusCode::NO_CONTENT)
}

async fn logout_all<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    Claims(claims): Claims,
) -> Response {
    match issuer.logout_all(&claims).await {
        Ok(ended) => no_store_json(StatusCode::OK, &json!({ "sessions_ended": ended })),
        Err(error) => error.into_response(),
    }
}

async fn sessions<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    Claims(claims): Claims,
) -> Response {
    match issuer.sessions(&claims).await {
        Ok(sessions) => no_store_json(StatusCode::OK, &sessions),
        Err(error) => error.into_response(),
    }
}

async fn end_session<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    Claims(claims): Claims,
    Path(id): Path<String>,
) -> Response {
    respond_empty(
        issuer.end_session(&claims, &id).await,
        StatusCode::NO_CONTENT,
    )
}

async fn jwks<S: RefreshStore>(State(issuer): State<Issuer<S>>) -> Response {
    let mut response = axum::Json(issuer.jwks()).into_response();
    // Verifiers may cache the keys briefly; a rotation adds the new key well before it signs.
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn respond_empty(result: Result<(), TokenError>, status: StatusCode) -> Response {
    match result {
        Ok(()) => no_store_empty(status),
        Err(error) => error.into_response(),
    }
}
