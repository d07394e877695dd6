//! The two grants a client refreshes with: `refresh_token` (RFC 6749 §6) and `client_credentials` (§4.4).

use async_trait::async_trait;
use reqwest::Url;
use tessera_core::{GrantType, TokenResponse};

use super::endpoint::TokenRequest;
use super::{ClientAuth, RefreshContext, RefreshError, Refresher};

/// Refreshes with `grant_type=refresh_token` (RFC 6749 §6), form-encoded, with optional client
/// authentication. A rotated refresh token in the answer replaces the old one; an answer without one keeps
/// it.
///
/// ```
/// use tessera_client::{ClientAuth, RefreshTokenGrant};
///
/// let grant = RefreshTokenGrant::new(reqwest::Client::new(), "https://auth.example/auth/token".parse()?)
///     .client_auth(ClientAuth::public("web-app"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RefreshTokenGrant {
    http: reqwest::Client,
    endpoint: Url,
    auth: ClientAuth,
    scope: Option<String>,
}

impl RefreshTokenGrant {
    /// Sends token requests to `token_endpoint` with `http`. Pass a plain `reqwest::Client`, not the one
    /// carrying the middleware.
    pub fn new(http: reqwest::Client, token_endpoint: Url) -> Self {
        RefreshTokenGrant {
            http,
            endpoint: token_endpoint,
            auth: ClientAuth::none(),
            scope: None,
        }
    }

    /// Authenticates the client on each token request.
    #[must_use]
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Asks for a narrower `scope` than the one originally granted.
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

#[async_trait]
impl Refresher for RefreshTokenGrant {
    async fn refresh(&self, context: RefreshContext) -> Result<TokenResponse, RefreshError> {
        let refresh_token = context
            .refresh_token()
            .ok_or(RefreshError::NoRefreshToken)?;
        let mut request = TokenRequest::new(GrantType::RefreshToken.as_str());
        request.push("refresh_token", refresh_token.as_str());
        if let Some(scope) = &self.scope {
            request.push("scope", scope);
        }
        self.auth
            .apply(&mut request, &self.endpoint, context.now())?;
        request.send(&self.http, &self.endpoint).await
    }
}

/// Obtains tokens with `grant_type=client_credentials` (RFC 6749 §4.4) for service-to-service calls.
///
/// The client authenticates with a secret ([`ClientAuth::secret_basic`], [`ClientAuth::secret_post`]) or a
/// signed assertion ([`ClientAuth::private_key_jwt`]). The middleware caches the token until the refresh
/// window before its expiry; cap how long it is cached whatever the issuer says with
/// [`AuthMiddlewareBuilder::max_token_lifetime`](crate::AuthMiddlewareBuilder::max_token_lifetime).
#[derive(Debug, Clone)]
pub struct ClientCredentialsGrant {
    http: reqwest::Client,
    endpoint: Url,
    auth: ClientAuth,
    scope: Option<String>,
}

impl ClientCredentialsGrant {
    /// Sends token requests to `token_endpoint` with `http`, authenticating with `auth`.
    pub fn new(http: reqwest::Client, token_endpoint: Url, auth: ClientAuth) -> Self {
        ClientCredentialsGrant {
            http,
            endpoint: token_endpoint,
            auth,
            scope: None,
        }
    }

    /// Asks for `scope` (space-separated).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

#[async_trait]
impl Refresher for ClientCredentialsGrant {
    async fn refresh(&self, context: RefreshContext) -> Result<TokenResponse, RefreshError> {
        let mut request = TokenRequest::new(GrantType::ClientCredentials.as_str());
        if let Some(scope) = &self.scope {
            request.push("scope", scope);
        }
        self.auth
            .apply(&mut request, &self.endpoint, context.now())?;
        request.send(&self.http, &self.endpoint).await
    }
}
