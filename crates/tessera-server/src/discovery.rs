//! Finding an issuer's key set from its identifier: RFC 8414 authorization-server metadata, or OpenID
//! Connect discovery for providers that only serve that.

use std::time::Duration;

use serde::Deserialize;

use crate::fetch::{self, GetError};
use crate::{RemoteJwks, RemoteJwksBuilder, RemoteJwksError};

/// The largest metadata document accepted: real ones are a few KiB.
const MAX_METADATA_LEN: usize = 64 * 1024;
/// How long one metadata request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why [`RemoteJwks::discover`] found no key set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer is not an `https` URL (or `http` to a loopback address) without query or fragment.
    #[error(
        "the issuer {0:?} is not a URL metadata can be fetched from: use https://host[/path], without query or fragment (plain http only to a loopback address)"
    )]
    InvalidIssuer(String),
    /// The HTTP client could not be set up.
    #[error("the HTTP client for discovery could not be built: {0}")]
    Client(reqwest::Error),
    /// A metadata request failed or timed out.
    #[error("fetching {url} failed: {source}")]
    Request {
        /// The metadata URL.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// No metadata: the RFC 8414 document answered 404 and so did OpenID Connect discovery, or one of them
    /// answered another error status.
    #[error("{url} answered {status}")]
    Status {
        /// The metadata URL that answered last.
        url: String,
        /// Its status.
        status: http::StatusCode,
    },
    /// A metadata URL answered with a redirect, which is not followed.
    #[error("{url} answered {status} to {location}; redirects are not followed")]
    Redirect {
        /// The metadata URL.
        url: String,
        /// The 3xx status.
        status: http::StatusCode,
        /// Where it pointed.
        location: String,
    },
    /// The document is larger than 64 KiB.
    #[error("the metadata at {url} is larger than {limit} bytes")]
    TooLarge {
        /// The metadata URL.
        url: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The document is not a JSON object with string `issuer` and `jwks_uri`.
    #[error("the metadata at {url} is not usable: {reason}")]
    NotMetadata {
        /// The metadata URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The document's `issuer` is not exactly the issuer it was fetched for (RFC 8414 §3.3): it may be
    /// another issuer's, and its keys must not be trusted for this one.
    #[error("the metadata names the issuer {found:?}, not {expected:?}; refusing its keys")]
    IssuerMismatch {
        /// The issuer discovery was asked for.
        expected: String,
        /// The `issuer` of the document.
        found: String,
    },
    /// The `jwks_uri` is unusable.
    #[error(transparent)]
    Jwks(#[from] RemoteJwksError),
}

/// The members of RFC 8414 (and OpenID Connect discovery) metadata a resource server needs.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

impl RemoteJwks {
    /// The key set of `issuer`, found in its metadata: RFC 8414's
    /// `/.well-known/oauth-authorization-server` (inserted before the issuer's path), or when that answers
    /// 404, OpenID Connect's `/.well-known/openid-configuration` (appended to it). The document's `issuer`
    /// must be exactly `issuer` (RFC 8414 §3.3); its `jwks_uri` becomes a [`RemoteJwks`] with the default
    /// settings. The keys themselves are fetched by the first request, or by [`RemoteJwks::refresh`].
    ///
    /// Metadata requests follow the rules of key-set fetches: https (or http to a loopback address), no
    /// redirects, 5 s, at most 64 KiB.
    ///
    /// ```no_run
    /// use tessera_server::{JwtAuthLayer, RemoteJwks};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = "https://auth.example";
    /// let auth = JwtAuthLayer::builder()
    ///     .remote_jwks(RemoteJwks::discover(issuer).await?)
    ///     .issuer(issuer)
    ///     .audience("https://api.example")
    ///     .build()?;
    /// # let _ = auth;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`DiscoveryError`]: a bad issuer URL, no metadata, metadata of another issuer, no `jwks_uri`.
    pub async fn discover(issuer: &str) -> Result<RemoteJwks, DiscoveryError> {
        RemoteJwks::discover_with(issuer, |builder| builder).await
    }

    /// As [`RemoteJwks::discover`], with the key set's settings changed by `configure` (its timeout,
    /// refresh bounds, clock).
    ///
    /// # Errors
    /// As [`RemoteJwks::discover`].
    pub async fn discover_with(
        issuer: &str,
        configure: impl FnOnce(RemoteJwksBuilder) -> RemoteJwksBuilder,
    ) -> Result<RemoteJwks, DiscoveryError> {
        let invalid = || DiscoveryError::InvalidIssuer(issuer.to_owned());
        let url = reqwest::Url::parse(issuer).map_err(|_| invalid())?;
        if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
            return Err(invalid());
        }
        let https = fetch::trusted_url(&url).ok_or_else(invalid)?;
        let client = fetch::client(https, TIMEOUT).map_err(DiscoveryError::Client)?;
        let path = url.path().trim_end_matches('/');
        let mut rfc8414 = url.clone();
        rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        let mut openid = url.clone();
        openid.set_path(&format!("{path}/.well-known/openid-configuration"));
        let metadata = match metadata(&client, &rfc8414).await {
            Err(DiscoveryError::Status { status, .. }) if status == http::StatusCode::NOT_FOUND => {
                metadata(&client, &openid).await?
            }
            other => other?,
        };
        if metadata.issuer != issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: metadata.issuer,
            });
        }
        Ok(configure(RemoteJwks::builder(metadata.jwks_uri)).build()?)
    }
}

async fn metadata(
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<Metadata, DiscoveryError> {
    let at = || url.to_string();
    let (document, _) = fetch::get(client, url, "application/json", MAX_METADATA_LEN)
        .await
        .map_err(|error| match error {
            GetError::Request(source) => DiscoveryError::Request { url: at(), source },
            GetError::Status(status) => DiscoveryError::Status { url: at(), status },
            GetError::Redirect { status, location } => DiscoveryError::Redirect {
                url: at(),
                status,
                location,
            },
            GetError::TooLarge { limit } => DiscoveryError::TooLarge { url: at(), limit },
        })?;
    serde_json::from_slice(&document).map_err(|error| DiscoveryError::NotMetadata {
        url: at(),
        reason: error.to_string(),
    })
}
