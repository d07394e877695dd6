//! The client side of the examples: the token service's endpoints called by hand (a password login, a
//! refresh, logout, revocation), and a reqwest client carrying `tessera-client`'s middleware for one API
//! origin.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest_middleware::ClientWithMiddleware;
use tessera_client::{AuthMiddleware, ClientAuth, Dpop, DpopKey, RefreshTokenGrant};
use tessera_core::{ErrorCode, ErrorResponse, TokenResponse, header};

/// Logs in with the password grant (RFC 6749 §4.3) at `base/auth/token` as the public client `client_id`.
pub async fn password_login(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<TokenResponse> {
    password_login_with(http, base, client_id, username, password, None).await
}

/// As [`password_login`], with a DPoP proof of `dpop`'s key (RFC 9449), so the tokens are bound to it; a
/// `use_dpop_nonce` answer is retried once with the nonce it brought.
pub async fn dpop_password_login(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    username: &str,
    password: &str,
    dpop: &Dpop,
) -> anyhow::Result<TokenResponse> {
    password_login_with(http, base, client_id, username, password, Some(dpop)).await
}

async fn password_login_with(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    username: &str,
    password: &str,
    dpop: Option<&Dpop>,
) -> anyhow::Result<TokenResponse> {
    let form = [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", client_id),
    ];
    let endpoint = base.join("/auth/token")?;
    let mut retried_with_nonce = false;
    loop {
        let mut request = http.post(endpoint.clone()).form(&form);
        if let Some(dpop) = dpop {
            request = request.header(header::DPOP, dpop.token_request_proof(&endpoint)?);
        }
        let response = request.send().await.context("calling /auth/token")?;
        let status = response.status();
        if status.is_success() {
            return response.json().await.context("reading the token response");
        }
        let fresh_nonce =
            dpop.is_some_and(|dpop| dpop.remember_nonce(&endpoint, response.headers()));
        let error: ErrorResponse = response
            .json()
            .await
            .with_context(|| format!("login failed with {status}"))?;
        if error.error == ErrorCode::UseDpopNonce && fresh_nonce && !retried_with_nonce {
            retried_with_nonce = true;
            continue;
        }
        bail!("login as {username} refused ({status}): {error}");
    }
}

/// A client that sends requests to `base` with the access token its middleware holds, refreshing through
/// `base/auth/token`. `refresh_skew` zero means: refresh only when the token is past its known expiry or
/// the API answers that it expired.
pub fn api_client(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    refresh_skew: Duration,
) -> anyhow::Result<(AuthMiddleware, ClientWithMiddleware)> {
    middleware_client(http, base, client_id, refresh_skew, None)
}

/// As [`api_client`], with every token bound to `key` (DPoP, RFC 9449): log in with
/// [`dpop_password_login`] and the middleware's [`AuthMiddleware::dpop`].
pub fn dpop_api_client(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    refresh_skew: Duration,
    key: DpopKey,
) -> anyhow::Result<(AuthMiddleware, ClientWithMiddleware)> {
    middleware_client(http, base, client_id, refresh_skew, Some(key))
}

fn middleware_client(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    refresh_skew: Duration,
    key: Option<DpopKey>,
) -> anyhow::Result<(AuthMiddleware, ClientWithMiddleware)> {
    let grant = RefreshTokenGrant::new(http.clone(), base.join("/auth/token")?)
        .client_auth(ClientAuth::public(client_id));
    let mut builder = AuthMiddleware::builder(grant)
        .allow_origin(base.origin().ascii_serialization())
        .refresh_skew(refresh_skew)
        .skew_jitter(0.0);
    if let Some(key) = key {
        builder = builder.dpop(key);
    }
    let auth = builder.build()?;
    let client = reqwest_middleware::ClientBuilder::new(http.clone())
        .with(auth.clone())
        .build();
    Ok((auth, client))
}

/// Presents `refresh_token` at the token endpoint `base/auth/token` (RFC 6749 §6) as the public client
/// `client_id`, without any middleware: the answer as it comes.
///
/// # Errors
/// If no answer came.
pub async fn refresh(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    refresh_token: &str,
) -> anyhow::Result<reqwest::Response> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    Ok(http
        .post(base.join("/auth/token")?)
        .form(&form)
        .send()
        .await?)
}

/// Ends the session of `refresh_token` (`POST base/auth/logout`).
///
/// # Errors
/// If no answer came, or the token service refused.
pub async fn logout(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    refresh_token: &str,
) -> anyhow::Result<()> {
    let form = [("refresh_token", refresh_token), ("client_id", client_id)];
    let response = http
        .post(base.join("/auth/logout")?)
        .form(&form)
        .send()
        .await?;
    let status = response.status();
    if !status.is_success() {
        bail!("logout answered {status}");
    }
    Ok(())
}

/// Revokes `token` (RFC 7009 `POST base/auth/revoke`); `hint` is `access_token` or `refresh_token`.
///
/// # Errors
/// If no answer came, or the answer is not RFC 7009's `200` (given even for unknown tokens).
pub async fn revoke(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    token: &str,
    hint: &str,
) -> anyhow::Result<()> {
    let form = [
        ("token", token),
        ("token_type_hint", hint),
        ("client_id", client_id),
    ];
    let response = http
        .post(base.join("/auth/revoke")?)
        .form(&form)
        .send()
        .await?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        bail!("revocation answered {status}");
    }
    Ok(())
}
