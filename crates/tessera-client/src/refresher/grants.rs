//! The two grants a client refreshes with: `refresh_token` (RFC 6749 §6) and `client_credentials` (§4.4).

use async_trait::async_trait;
use reqwest::Url;
use tessera_core::{GrantType, TokenResponse};

use super::discovery::{AuthorizationServerMetadata, DiscoveryError};
use super::endpoint::TokenRequest;
use super::{ClientAuth, RefreshContext, RefreshError, Refresher};

/// Form parameters a grant or its client authentication sets itself; [`RefreshTokenGrant::param`] and
/// [`ClientCredentialsGrant::param`] refuse them.
const RESERVED: [&str; 9] = [
    "grant_type",
    "refresh_token",
    "scope",
    "resource",
    "audience",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// An extra form parameter that the grant, or the client authentication, sets itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is set by the grant or its client authentication; use scope(), resource(), audience() or ClientAuth instead of param()"
)]
pub struct ReservedParameter(pub String);

/// What both grants may add to every token request: scope, RFC 8707 resource indicators, an `audience`
/// (Auth0 and others), and any other parameter a provider asks for.
#[derive(Debug, Clone, Default)]
struct Parameters {
    scope: Option<String>,
    resources: Vec<String>,
    audience: Option<String>,
    extra: Vec<(String, String)>,
}

impl Parameters {
    fn param(&mut self, name: String, value: String) -> Result<(), ReservedParameter> {
        if RESERVED.contains(&name.as_str()) {
            return Err(ReservedParameter(name));
        }
        self.extra.push((name, value));
        Ok(())
    }

    fn add_to(&self, request: &mut TokenRequest) {
        if let Some(scope) = &self.scope {
            request.push("scope", scope);
        }
        for resource in &self.resources {
            request.push("resource", resource);
        }
        if let Some(audience) = &self.audience {
            request.push("audience", audience);
        }
        for (name, value) in &self.extra {
            request.push(name, value);
        }
    }
}

/// Refreshes with `grant_type=refresh_token` (RFC 6749 §6), form-encoded, with optional client
/// authentication. A rotated refresh token in the answer replaces the old one; an answer without one keeps
/// it. With DPoP on (see [`AuthMiddlewareBuilder::dpop`](crate::AuthMiddlewareBuilder::dpop)) every request
/// carries a proof, and a `use_dpop_nonce` answer is retried once with the server's nonce.
///
/// ```
/// use tessera_client::{ClientAuth, RefreshTokenGrant};
///
/// let grant = RefreshTokenGrant::new(reqwest::Client::new(), "https://auth.example/auth/token".parse()?)
///     .client_auth(ClientAuth::public("web-app"))
///     .resource("https://api.example")
///     .param("prompt", "none")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RefreshTokenGrant {
    http: reqwest::Client,
    endpoint: Url,
    auth: ClientAuth,
    parameters: Parameters,
}

impl RefreshTokenGrant {
    /// Sends token requests to `token_endpoint` with `http`. Pass a plain `reqwest::Client`, not the one
    /// carrying the middleware. Token requests never follow redirects, whatever `http`'s redirect policy.
    pub fn new(http: reqwest::Client, token_endpoint: Url) -> Self {
        RefreshTokenGrant {
            http,
            endpoint: token_endpoint,
            auth: ClientAuth::none(),
            parameters: Parameters::default(),
        }
    }

    /// The grant for the token endpoint that `metadata` announces.
    pub fn from_metadata(http: reqwest::Client, metadata: &AuthorizationServerMetadata) -> Self {
        RefreshTokenGrant::new(http, metadata.token_endpoint.clone())
    }

    /// Discovers the token endpoint of the authorization server `issuer` (RFC 8414, falling back to OpenID
    /// Connect discovery); see [`AuthorizationServerMetadata::discover`].
    ///
    /// # Errors
    /// As [`AuthorizationServerMetadata::discover`].
    pub async fn discover(http: reqwest::Client, issuer: &str) -> Result<Self, DiscoveryError> {
        let metadata = AuthorizationServerMetadata::discover(&http, issuer).await?;
        Ok(RefreshTokenGrant::from_metadata(http, &metadata))
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
        self.parameters.scope = Some(scope.into());
        self
    }

    /// Asks for a token for the resource server `resource` (RFC 8707 resource indicator: an absolute URI
    /// without fragment). Call once per resource; each is sent as its own `resource` parameter.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.parameters.resources.push(resource.into());
        self
    }

    /// Sends `audience` (the parameter Auth0 and some other providers use instead of `resource`).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.parameters.audience = Some(audience.into());
        self
    }

    /// Adds a form parameter to every token request.
    ///
    /// # Errors
    /// [`ReservedParameter`] for a parameter the grant or the client authentication sets itself.
    pub fn param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ReservedParameter> {
        self.parameters.param(name.into(), value.into())?;
        Ok(self)
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
        self.parameters.add_to(&mut request);
        request
            .send(
                &self.http,
                &self.endpoint,
                &self.auth,
                context.dpop(),
                context.now(),
            )
            .await
    }
}

/// Obtains tokens with `grant_type=client_credentials` (RFC 6749 §4.4) for service-to-service calls.
///
/// The client authenticates with a secret ([`ClientAuth::secret_basic`], [`ClientAuth::secret_post`]) or a
/// signed assertion ([`ClientAuth::private_key_jwt`]). The middleware caches the token until the refresh
/// window before its expiry; cap how long it is cached whatever the issuer says with
/// [`AuthMiddlewareBuilder::max_token_lifetime`](crate::AuthMiddlewareBuilder::max_token_lifetime).
///
/// ```
/// use tessera_client::{ClientAuth, ClientCredentialsGrant};
///
/// let grant = ClientCredentialsGrant::new(
///     reqwest::Client::new(),
///     "https://auth.example/oauth/token".parse()?,
///     ClientAuth::secret_basic("reporting-job", "s3cret"),
/// )
/// .scope("reports:read")
/// .resource("https://reports.example/api")
/// .audience("https://reports.example/");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientCredentialsGrant {
    http: reqwest::Client,
    endpoint: Url,
    auth: ClientAuth,
    parameters: Parameters,
}

impl ClientCredentialsGrant {
    /// Sends token requests to `token_endpoint` with `http`, authenticating with `auth`. Token requests
    /// never follow redirects, whatever `http`'s redirect policy.
    pub fn new(http: reqwest::Client, token_endpoint: Url, auth: ClientAuth) -> Self {
        ClientCredentialsGrant {
            http,
            endpoint: token_endpoint,
            auth,
            parameters: Parameters::default(),
        }
    }

    /// The grant for the token endpoint that `metadata` announces.
    pub fn from_metadata(
        http: reqwest::Client,
        metadata: &AuthorizationServerMetadata,
        auth: ClientAuth,
    ) -> Self {
        ClientCredentialsGrant::new(http, metadata.token_endpoint.clone(), auth)
    }

    /// Discovers the token endpoint of the authorization server `issuer`; see
    /// [`AuthorizationServerMetadata::discover`].
    ///
    /// # Errors
    /// As [`AuthorizationServerMetadata::discover`].
    pub async fn discover(
        http: reqwest::Client,
        issuer: &str,
        auth: ClientAuth,
    ) -> Result<Self, DiscoveryError> {
        let metadata = AuthorizationServerMetadata::discover(&http, issuer).await?;
        Ok(ClientCredentialsGrant::from_metadata(http, &metadata, auth))
    }

    /// Asks for `scope` (space-separated).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.parameters.scope = Some(scope.into());
        self
    }

    /// Asks for a token for the resource server `resource` (RFC 8707); call once per resource.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.parameters.resources.push(resource.into());
        self
    }

    /// Sends `audience` (the parameter Auth0 and some other providers use instead of `resource`).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.parameters.audience = Some(audience.into());
        self
    }

    /// Adds a form parameter to every token request.
    ///
    /// # Errors
    /// [`ReservedParameter`] for a parameter the grant or the client authentication sets itself.
    pub fn param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ReservedParameter> {
        self.parameters.param(name.into(), value.into())?;
        Ok(self)
    }
}

#[async_trait]
impl Refresher for ClientCredentialsGrant {
    async fn refresh(&self, context: RefreshContext) -> Result<TokenResponse, RefreshError> {
        let mut request = TokenRequest::new(GrantType::ClientCredentials.as_str());
        self.parameters.add_to(&mut request);
        request
            .send(
                &self.http,
                &self.endpoint,
                &self.auth,
                context.dpop(),
                context.now(),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_go_out_in_order_and_reserved_ones_are_refused() {
        let mut parameters = Parameters {
            scope: Some("read".into()),
            resources: vec!["https://a.example".into(), "https://b.example".into()],
            audience: Some("api".into()),
            extra: Vec::new(),
        };
        parameters.param("prompt".into(), "none".into()).unwrap();
        for reserved in RESERVED {
            assert_eq!(
                parameters.param(reserved.into(), "x".into()),
                Err(ReservedParameter(reserved.into()))
            );
        }
        let mut request = TokenRequest::new("client_credentials");
        parameters.add_to(&mut request);
        assert_eq!(
            request.form(),
            [
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("resource", "https://a.example"),
                ("resource", "https://b.example"),
                ("audience", "api"),
                ("prompt", "none"),
            ]
        );
    }
}
