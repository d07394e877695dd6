//! The client side of the examples: the token service's endpoints called by hand (a password login, a
//! refresh, logout, revocation), and a reqwest client carrying `tessera-client`'s middleware for one API
//! origin.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest_middleware::ClientWithMiddleware;
use tessera_client::{AuthMiddleware, ClientAuth, RefreshTokenGrant};
use tessera_core::{ErrorResponse, TokenResponse};

/// Logs in with the password grant (RFC 6749 §4.3) at `base/auth/token` as the public client `client_id`.
pub async fn password_login(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<TokenResponse> {
    let form = [
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", client_id),
    ];
    let response = http
        .post(base.join("/auth/token")?)
        .form(&form)
        .send()
        .await
        .context("calling /auth/token")?;
    let status = response.status();
    if !status.is_success() {
        let error: ErrorResponse = response
            .json()
            .await
            .with_context(|| format!("login failed with {status}"))?;
        bail!("login as {username} refused ({status}): {error}");
    }
    response.json().await.context("reading the token response")
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
    let grant = RefreshTokenGrant::new(http.clone(), base.join("/auth/token")?)
        .client_auth(ClientAuth::public(client_id));
    let auth = AuthMiddleware::builder(grant)
        .allow_origin(base.origin().ascii_serialization())
        .refresh_skew(refresh_skew)
        .skew_jitter(0.0)
        .build()?;
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
