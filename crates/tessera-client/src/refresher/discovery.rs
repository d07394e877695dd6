//! Authorization server metadata (RFC 8414), and OpenID Connect discovery as the fallback.

use std::fmt;

use http::header::{ACCEPT, HeaderValue};
use reqwest::Url;
use serde::Deserialize;

use super::RefreshError;
use super::wire;

/// The RFC 8414 well-known suffix.
const OAUTH_METADATA: &str = "/.well-known/oauth-authorization-server";

/// The OpenID Connect Discovery 1.0 well-known suffix.
const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";

/// The largest metadata document read. Real ones are a few KiB (Keycloak's, among the largest, about 6).
const MAX_METADATA: usize = 256 * 1024;

/// What an authorization server says about itself (RFC 8414 §2): where its endpoints are and what it
/// supports. Fetched with [`AuthorizationServerMetadata::discover`]; the built-in grants take it through
/// [`RefreshTokenGrant::from_metadata`](crate::RefreshTokenGrant::from_metadata) and
/// [`ClientCredentialsGrant::from_metadata`](crate::ClientCredentialsGrant::from_metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier, identical to the URL it was discovered from (RFC 8414 §3.3).
    pub issuer: String,
    /// The token endpoint.
    pub token_endpoint: Url,
    /// Where the server publishes its signing keys, if it does.
    pub jwks_uri: Option<Url>,
    /// The RFC 7009 revocation endpoint, if any.
    pub revocation_endpoint: Option<Url>,
    /// The RFC 7662 introspection endpoint, if any.
    pub introspection_endpoint: Option<Url>,
    /// The grant types the server supports, if it says (RFC 8414's default is `authorization_code` and
    /// `implicit`).
    pub grant_types_supported: Vec<String>,
    /// The client authentication methods the token endpoint supports, if it says (default
    /// `client_secret_basic`).
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithms the server accepts for DPoP proofs (RFC 9449 §5.1); empty when it does not do DPoP.
    pub dpop_signing_alg_values_supported: Vec<String>,
}

/// Why an authorization server's metadata could not be discovered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer is not an `https` URL (plain `http` is accepted for loopback hosts only) without query
    /// and fragment (RFC 8414 §2).
    #[error("the issuer {issuer:?} is not a valid issuer identifier: {reason}")]
    InvalidIssuer {
        /// The issuer given.
        issuer: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The metadata document could not be fetched: the server is unreachable, redirected, or answered too
    /// much.
    #[error("the metadata at {url} could not be fetched: {source}")]
    Fetch {
        /// The well-known URL.
        url: String,
        /// What went wrong.
        #[source]
        source: Box<RefreshError>,
    },
    /// Neither well-known document is served.
    #[error(
        "{url} answered {status} (and so did the RFC 8414 document): is {issuer:?} the issuer identifier?"
    )]
    NotFound {
        /// The issuer given.
        issuer: String,
        /// The last well-known URL tried.
        url: String,
        /// Its status.
        status: http::StatusCode,
    },
    /// The server failed to serve its metadata (a 5xx, say).
    #[error("{url} answered {status}")]
    Unavailable {
        /// The well-known URL.
        url: String,
        /// Its status.
        status: http::StatusCode,
    },
    /// The document is not authorization server metadata.
    #[error("the metadata at {url} is not valid: {reason}")]
    Malformed {
        /// The well-known URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The document names another issuer than the one asked for (RFC 8414 §3.3): it must not be used,
    /// or tokens could be sent to an impostor.
    #[error("the metadata at {url} is for the issuer {found:?}, not {expected:?}")]
    IssuerMismatch {
        /// The well-known URL.
        url: String,
        /// The issuer asked for.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
}

/// The members read from a metadata document; the rest is ignored.
#[derive(Deserialize)]
struct Document {
    issuer: String,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    revocation_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    #[serde(default)]
    grant_types_supported: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    dpop_signing_alg_values_supported: Vec<String>,
}

impl AuthorizationServerMetadata {
    /// Fetches the metadata of the authorization server `issuer` (e.g. `https://auth.example` or
    /// `https://auth.example/realms/main`): RFC 8414's `/.well-known/oauth-authorization-server` (inserted
    /// before the issuer's path), or, when that is not served (a 4xx), OpenID Connect's
    /// `/.well-known/openid-configuration` (appended to it).
    ///
    /// The document's `issuer` must be exactly `issuer` (RFC 8414 §3.3), redirects are refused, and the
    /// document is read with a size cap.
    ///
    /// ```no_run
    /// use tessera_client::{AuthorizationServerMetadata, RefreshTokenGrant};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let http = reqwest::Client::new();
    /// let metadata = AuthorizationServerMetadata::discover(&http, "https://auth.example").await?;
    /// let grant = RefreshTokenGrant::from_metadata(http, &metadata);
    /// # let _ = grant; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`DiscoveryError`] saying which step failed.
    pub async fn discover(
        http: &reqwest::Client,
        issuer: &str,
    ) -> Result<AuthorizationServerMetadata, DiscoveryError> {
        let [oauth, openid] = well_known_urls(issuer)?;
        let url = match fetch(http, &oauth).await? {
            Fetched::Document(body) => return parse(&oauth, issuer, &body),
            Fetched::ClientError(_) => openid,
        };
        match fetch(http, &url).await? {
            Fetched::Document(body) => parse(&url, issuer, &body),
            Fetched::ClientError(status) => Err(DiscoveryError::NotFound {
                issuer: issuer.to_owned(),
                url: url.to_string(),
                status,
            }),
        }
    }
}

/// The RFC 8414 and the OpenID Connect well-known URLs of `issuer`.
fn well_known_urls(issuer: &str) -> Result<[Url; 2], DiscoveryError> {
    let invalid = |reason| DiscoveryError::InvalidIssuer {
        issuer: issuer.to_owned(),
        reason,
    };
    let url = Url::parse(issuer).map_err(|_| invalid("it is not an absolute URL"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err(invalid("it must use https (http only on a loopback host)"));
    }
    if url.query().is_some() || url.fragment().is_some() || issuer.contains(['?', '#']) {
        return Err(invalid("an issuer has no query or fragment"));
    }
    let path = url.path().trim_end_matches('/');
    let mut oauth = url.clone();
    oauth.set_path(&format!("{OAUTH_METADATA}{path}"));
    let mut openid = url.clone();
    openid.set_path(&format!("{path}{OPENID_CONFIGURATION}"));
    Ok([oauth, openid])
}

enum Fetched {
    Document(bytes::Bytes),
    /// A 4xx: the document is not served there.
    ClientError(http::StatusCode),
}

async fn fetch(http: &reqwest::Client, url: &Url) -> Result<Fetched, DiscoveryError> {
    let failed = |source| DiscoveryError::Fetch {
        url: url.to_string(),
        source: Box::new(source),
    };
    let response = http
        .get(url.clone())
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .send()
        .await
        .map_err(|error| failed(RefreshError::Network(error)))?;
    // A redirect could point at an impostor's document naming the right issuer and its own endpoints.
    wire::refuse_redirects(&response, url).map_err(failed)?;
    let status = response.status();
    if status.is_client_error() {
        return Ok(Fetched::ClientError(status));
    }
    if !status.is_success() {
        return Err(DiscoveryError::Unavailable {
            url: url.to_string(),
            status,
        });
    }
    let (_, body) = wire::read_capped(response, MAX_METADATA)
        .await
        .map_err(failed)?;
    Ok(Fetched::Document(body))
}

fn parse(
    url: &Url,
    issuer: &str,
    body: &[u8],
) -> Result<AuthorizationServerMetadata, DiscoveryError> {
    let malformed = |reason: String| DiscoveryError::Malformed {
        url: url.to_string(),
        reason,
    };
    let document: Document = serde_json::from_slice(body)
        .map_err(|error| malformed(format!("not a metadata document ({error})")))?;
    if document.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.to_string(),
            expected: issuer.to_owned(),
            found: document.issuer,
        });
    }
    let endpoint = |name: &str, value: Option<String>| -> Result<Option<Url>, DiscoveryError> {
        value
            .map(|value| {
                Url::parse(&value)
                    .map_err(|error| malformed(format!("{name} is not a URL ({error})")))
            })
            .transpose()
    };
    let token_endpoint = endpoint("token_endpoint", document.token_endpoint)?
        .ok_or_else(|| malformed("it names no token_endpoint".to_owned()))?;
    Ok(AuthorizationServerMetadata {
        issuer: document.issuer,
        token_endpoint,
        jwks_uri: endpoint("jwks_uri", document.jwks_uri)?,
        revocation_endpoint: endpoint("revocation_endpoint", document.revocation_endpoint)?,
        introspection_endpoint: endpoint(
            "introspection_endpoint",
            document.introspection_endpoint,
        )?,
        grant_types_supported: document.grant_types_supported,
        token_endpoint_auth_methods_supported: document.token_endpoint_auth_methods_supported,
        dpop_signing_alg_values_supported: document.dpop_signing_alg_values_supported,
    })
}

impl fmt::Display for AuthorizationServerMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (token endpoint {})",
            self.issuer, self.token_endpoint
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_rfc_8414_and_openid_connect() {
        let [oauth, openid] = well_known_urls("https://auth.example").unwrap();
        assert_eq!(
            oauth.as_str(),
            "https://auth.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            openid.as_str(),
            "https://auth.example/.well-known/openid-configuration"
        );
        let [oauth, openid] = well_known_urls("https://auth.example/realms/main/").unwrap();
        assert_eq!(
            oauth.as_str(),
            "https://auth.example/.well-known/oauth-authorization-server/realms/main"
        );
        assert_eq!(
            openid.as_str(),
            "https://auth.example/realms/main/.well-known/openid-configuration"
        );
        assert!(well_known_urls("http://127.0.0.1:8080").is_ok());
        for bad in [
            "http://auth.example",
            "https://auth.example/?tenant=1",
            "https://auth.example/#x",
            "auth.example",
        ] {
            assert!(
                matches!(
                    well_known_urls(bad),
                    Err(DiscoveryError::InvalidIssuer { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        let url = Url::parse("https://auth.example/.well-known/openid-configuration").unwrap();
        let body =
            br#"{"issuer":"https://auth.example/","token_endpoint":"https://auth.example/token"}"#;
        assert!(matches!(
            parse(&url, "https://auth.example", body),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let metadata = parse(&url, "https://auth.example/", body).unwrap();
        assert_eq!(
            metadata.token_endpoint.as_str(),
            "https://auth.example/token"
        );
        assert!(metadata.dpop_signing_alg_values_supported.is_empty());
        for bad in [
            &br#"{"issuer":"https://auth.example/"}"#[..],
            br#"{"issuer":"https://auth.example/","token_endpoint":"not a url"}"#,
            b"[]",
        ] {
            assert!(matches!(
                parse(&url, "https://auth.example/", bad),
                Err(DiscoveryError::Malformed { .. })
            ));
        }
    }
}
