//! The proxy's side of the wire: the token service (login, revocation) and the API server (forwarding).
//!
//! Nothing here follows a redirect: a token request answered with a redirect would otherwise carry the
//! password or the refresh token to wherever it points. And no answer is read past a size cap, so a hostile
//! or broken upstream cannot make the proxy buffer without end.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reqwest_middleware::ClientWithMiddleware;
use tessera_client::{AuthMiddleware, AuthOutcome, ClientAuth, RefreshTokenGrant, TokenSet};
use tessera_core::{ErrorCode, ErrorResponse, TokenResponse};

use super::{ProxyError, REFRESHED_HEADER};

/// Request headers passed on to the API server; everything else (cookies above all) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 3] = [
    header::ACCEPT,
    header::CONTENT_TYPE,
    header::ACCEPT_LANGUAGE,
];

/// Response headers passed back to the browser.
const FORWARDED_RESPONSE_HEADERS: [HeaderName; 2] =
    [header::CONTENT_TYPE, header::CONTENT_LANGUAGE];

/// The largest answer of the token service the proxy reads: a token response is a few KiB.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 16 * 1024;

/// The largest API answer the proxy forwards; a larger one is answered `502`.
pub const MAX_API_RESPONSE_BYTES: usize = 1024 * 1024;

/// No upstream call (answer included) may take longer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The API server (and its token service under `/auth`) the proxy talks to.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: reqwest::Url,
    client_id: String,
    refresh_skew: Duration,
    http: reqwest::Client,
}

/// One session's API client: its own middleware, holding the session's token pair.
pub(super) struct ApiSession {
    auth: AuthMiddleware,
    client: ClientWithMiddleware,
}

impl Upstream {
    /// The API server at `base` (e.g. `http://127.0.0.1:8080`), with the token service at `base/auth`,
    /// logging in as the public client `client_id`.
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(base: reqwest::Url, client_id: impl Into<String>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(UPSTREAM_TIMEOUT)
            .build()?;
        Ok(Upstream {
            base,
            client_id: client_id.into(),
            refresh_skew: Duration::from_secs(60),
            http,
        })
    }

    /// Refreshes this long before the access token expires (default 60 s, as `tessera-client`); zero
    /// refreshes once the announced lifetime is over, or when the API answers that the token expired.
    #[must_use]
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.refresh_skew = skew;
        self
    }

    /// Logs `username` in with the password grant and returns the session's API client.
    pub(super) async fn sign_in(
        &self,
        username: &str,
        password: &str,
        user_agent: Option<&str>,
    ) -> Result<ApiSession, ProxyError> {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", &self.client_id),
        ];
        let mut request = self.http.post(self.url("/auth/token")?).form(&form);
        if let Some(user_agent) = user_agent {
            request = request.header(header::USER_AGENT, user_agent);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ProxyError::Upstream(error.to_string()))?;
        let status = response.status();
        refuse_redirect(&response, "the token service")?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok())
                .unwrap_or(1);
            return Err(ProxyError::Throttled(retry_after));
        }
        if !status.is_success() {
            let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES).await?;
            let error: Option<ErrorResponse> = serde_json::from_slice(&body).ok();
            return Err(match error {
                Some(ErrorResponse {
                    error: ErrorCode::InvalidGrant,
                    ..
                }) => ProxyError::BadCredentials,
                Some(error) => ProxyError::Upstream(format!("login refused ({status}): {error}")),
                None => ProxyError::Upstream(format!("login failed with {status}")),
            });
        }
        let received_at = SystemTime::now();
        let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES).await?;
        let tokens: TokenResponse = serde_json::from_slice(&body)
            .map_err(|error| ProxyError::Upstream(format!("unreadable token response: {error}")))?;
        let grant = RefreshTokenGrant::new(self.http.clone(), self.url("/auth/token")?)
            .client_auth(ClientAuth::public(&self.client_id));
        let auth = AuthMiddleware::builder(grant)
            .allow_origin(self.base.origin().ascii_serialization())
            .refresh_skew(self.refresh_skew)
            .build()
            .map_err(|error| {
                ProxyError::Upstream(format!("cannot call the API server: {error}"))
            })?;
        auth.set_tokens(TokenSet::from_response(tokens, received_at))
            .await
            .map_err(|error| {
                ProxyError::Upstream(format!("cannot keep the session's tokens: {error}"))
            })?;
        let client = reqwest_middleware::ClientBuilder::new(self.http.clone())
            .with(auth.clone())
            .build();
        Ok(ApiSession { auth, client })
    }

    /// Revokes the session's refresh-token family (RFC 7009), so its tokens are dead even if stolen.
    pub(super) async fn revoke(&self, api: &ApiSession) -> Result<(), ProxyError> {
        // After a terminal refresh failure the middleware already dropped the tokens: nothing is left to revoke.
        let Some(refresh_token) = api
            .auth
            .tokens()
            .and_then(|tokens| tokens.refresh_token().cloned())
        else {
            return Ok(());
        };
        let form = [
            ("token", refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", &self.client_id),
        ];
        let response = self
            .http
            .post(self.url("/auth/revoke")?)
            .form(&form)
            .send()
            .await
            .map_err(|error| ProxyError::Upstream(error.to_string()))?;
        if response.status().is_success() {
            api.auth
                .clear()
                .await
                .map_err(|error| ProxyError::Upstream(format!("cannot drop the tokens: {error}")))
        } else {
            Err(ProxyError::Upstream(format!(
                "revocation failed with {}",
                response.status()
            )))
        }
    }

    /// Sends the browser's request to the API server with the session's access token.
    pub(super) async fn call(
        &self,
        api: &ApiSession,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ProxyError> {
        let url = self.url(path_and_query)?;
        let mut request = api.client.request(method, url).body(body);
        for name in &FORWARDED_REQUEST_HEADERS {
            for value in headers.get_all(name) {
                request = request.header(name, value);
            }
        }
        let response = request.send().await.map_err(|error| {
            match tessera_client::Error::from_middleware(&error) {
                Some(tessera_client::Error::ReauthenticationRequired { .. }) => {
                    ProxyError::SessionEnded
                }
                _ => ProxyError::Upstream(error.to_string()),
            }
        })?;
        let status = response.status();
        refuse_redirect(&response, "the API server")?;
        // The middleware already refreshed and replayed if the token had merely expired: a 401 now means the
        // session's tokens are unusable (revoked), so the session is over.
        if status == StatusCode::UNAUTHORIZED {
            return Err(ProxyError::SessionEnded);
        }
        let mut answer_headers = HeaderMap::new();
        for name in &FORWARDED_RESPONSE_HEADERS {
            if let Some(value) = response.headers().get(name) {
                answer_headers.insert(name, value.clone());
            }
        }
        if response
            .extensions()
            .get::<AuthOutcome>()
            .is_some_and(AuthOutcome::refreshed)
        {
            answer_headers.insert(REFRESHED_HEADER, HeaderValue::from_static("true"));
        }
        let body = read_capped(response, MAX_API_RESPONSE_BYTES).await?;
        Ok((status, answer_headers, body).into_response())
    }

    /// `path_and_query` on the API server. Dot segments are refused rather than resolved, so a request for
    /// `/api/../auth/...` can never be turned into a call to the token service with the session's token.
    fn url(&self, path_and_query: &str) -> Result<reqwest::Url, ProxyError> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let dotted = path.split('/').any(|segment| {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            decoded == "." || decoded == ".." || segment.contains('\\')
        });
        if dotted || !path.starts_with('/') {
            return Err(ProxyError::BadRequest(
                "the path may not contain dot segments".into(),
            ));
        }
        self.base
            .join(path_and_query)
            .map_err(|error| ProxyError::BadRequest(format!("bad path: {error}")))
    }
}

/// A redirect is never followed (the client is built with `Policy::none()`) nor passed on.
fn refuse_redirect(response: &reqwest::Response, who: &str) -> Result<(), ProxyError> {
    if response.status().is_redirection() {
        return Err(ProxyError::Upstream(format!(
            "{who} answered {} (a redirect); the proxy never follows one",
            response.status()
        )));
    }
    Ok(())
}

/// The body of `response`, refused as soon as it is announced or read beyond `limit` bytes.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Bytes, ProxyError> {
    let too_large = || ProxyError::Upstream(format!("the answer is larger than {limit} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| ProxyError::Upstream(error.to_string()))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
