//! RFC 9728 protected-resource metadata: where a client learns which authorization servers issue tokens
//! for this API, and how to present them.

use std::fmt;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::BuildError;

/// The well-known path of the metadata document (RFC 9728 §3).
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the metadata document of an API says about it (RFC 9728 §2), given to
/// [`JwtAuthBuilder::resource_metadata`](crate::JwtAuthBuilder::resource_metadata). The layer adds what it
/// knows itself: its DPoP algorithms, whether DPoP is required, and whether tokens may come in the query.
///
/// ```
/// use axum::{Router, routing::get};
/// use http::{Request, StatusCode};
/// use tessera_server::{JwtAuthLayer, ResourceMetadata};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = JwtAuthLayer::builder()
///     .hmac_secret([7; 32])
///     .issuer("https://auth.example")
///     .audience("https://api.example")
///     .resource_metadata(
///         ResourceMetadata::new("https://api.example")
///             .authorization_server("https://auth.example")
///             .scopes_supported(["orders:read", "orders:write"]),
///     )
///     .build()?;
/// // The document is public: merge its router outside the layer.
/// let app = Router::new()
///     .route("/orders", get(|| async { "orders" }))
///     .layer(auth.clone())
///     .merge(auth.resource_metadata_router());
///
/// let unauthenticated = app.clone().oneshot(Request::get("/orders").body(axum::body::Body::empty())?).await?;
/// assert_eq!(
///     unauthenticated.headers()["www-authenticate"],
///     r#"Bearer realm="api", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#
/// );
/// let document = app
///     .oneshot(Request::get("/.well-known/oauth-protected-resource").body(axum::body::Body::empty())?)
///     .await?;
/// assert_eq!(document.status(), StatusCode::OK);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
}

impl ResourceMetadata {
    /// Metadata of the API whose identifier is `resource`: its `https` URL (what tokens name in `aud`
    /// when the issuer follows RFC 8707, usually). The document is served at the well-known path
    /// inserted between its host and path: for `https://api.example/v1`,
    /// `https://api.example/.well-known/oauth-protected-resource/v1`.
    pub fn new(resource: impl Into<String>) -> ResourceMetadata {
        ResourceMetadata {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
        }
    }

    /// Adds an issuer of tokens for this API (its RFC 8414 identifier); call again for several. Default:
    /// the layer's trusted issuers.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> ResourceMetadata {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// The scopes this API understands (`scopes_supported`).
    pub fn scopes_supported(
        mut self,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> ResourceMetadata {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A name for people (`resource_name`).
    pub fn resource_name(mut self, name: impl Into<String>) -> ResourceMetadata {
        self.resource_name = Some(name.into());
        self
    }

    /// Where developers read about the API (`resource_documentation`).
    pub fn documentation(mut self, url: impl Into<String>) -> ResourceMetadata {
        self.resource_documentation = Some(url.into());
        self
    }
}

/// The document as served, and where.
#[derive(Clone)]
pub(crate) struct PublishedMetadata {
    /// The absolute URL of the document: the challenges' `resource_metadata`.
    pub(crate) url: Box<str>,
    /// Its path on this server.
    path: Box<str>,
    document: Bytes,
}

/// What the layer knows that the document says.
pub(crate) struct LayerFacts<'a> {
    pub(crate) issuers: &'a [Box<str>],
    pub(crate) query_tokens: bool,
    pub(crate) dpop_algorithms: Option<&'a str>,
    pub(crate) dpop_required: bool,
}

/// RFC 9728 §2, the members this layer fills in.
#[derive(Serialize)]
struct Document<'a> {
    resource: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    authorization_servers: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    scopes_supported: &'a [String],
    bearer_methods_supported: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_signing_alg_values_supported: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
}

impl PublishedMetadata {
    pub(crate) fn new(
        metadata: ResourceMetadata,
        facts: &LayerFacts<'_>,
    ) -> Result<PublishedMetadata, BuildError> {
        let invalid = || BuildError::InvalidResource(metadata.resource.clone());
        let (scheme, rest) = metadata.resource.split_once("://").ok_or_else(invalid)?;
        let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
        let valid = matches!(scheme, "https" | "http")
            && !authority.is_empty()
            && !rest.contains(['?', '#', '@', ' ']);
        if !valid {
            return Err(invalid());
        }
        let path = path.trim_end_matches('/');
        let served_at = format!("{WELL_KNOWN}{path}");
        let issuers: Vec<String>;
        let authorization_servers = if metadata.authorization_servers.is_empty() {
            issuers = facts
                .issuers
                .iter()
                .map(|issuer| issuer.to_string())
                .collect();
            &issuers
        } else {
            &metadata.authorization_servers
        };
        let methods: &[&str] = if facts.query_tokens {
            &["header", "query"]
        } else {
            &["header"]
        };
        let document = Document {
            resource: &metadata.resource,
            authorization_servers,
            scopes_supported: &metadata.scopes_supported,
            bearer_methods_supported: methods,
            resource_name: metadata.resource_name.as_deref(),
            resource_documentation: metadata.resource_documentation.as_deref(),
            dpop_signing_alg_values_supported: facts
                .dpop_algorithms
                .map(|algs| algs.split(' ').collect()),
            dpop_bound_access_tokens_required: facts.dpop_required,
        };
        let document = serde_json::to_vec(&document).map_err(|_| invalid())?;
        Ok(PublishedMetadata {
            url: format!("{scheme}://{authority}{served_at}").into_boxed_str(),
            path: served_at.into_boxed_str(),
            document: document.into(),
        })
    }

    /// A router answering `GET` on the document's path.
    pub(crate) fn router(&self) -> Router {
        let document = self.document.clone();
        Router::new().route(
            &self.path,
            get(move || {
                let document = document.clone();
                async move {
                    (
                        StatusCode::OK,
                        [
                            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                            (
                                CACHE_CONTROL,
                                HeaderValue::from_static("public, max-age=3600"),
                            ),
                        ],
                        document,
                    )
                }
            }),
        )
    }
}

impl fmt::Debug for PublishedMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishedMetadata")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}
