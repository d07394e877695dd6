//! RFC 8414 authorization server metadata: what a client needs to find and use this service, served at
//! `/.well-known/oauth-authorization-server` (followed by the issuer's path, if it has one).
//!
//! The document is built once, from the settings and the registered clients, and says only what is true
//! of this deployment: the grant types and client authentication methods the registered clients use, the
//! scopes they may ask for. `response_types_supported`, which RFC 8414 §2 lists as required, is left out:
//! the service has no authorization endpoint, §3.2 omits members with zero elements, and erratum 7793
//! makes the member required only where the authorization endpoint exists.

use serde::Serialize;
use tessera_core::GrantType;
use tessera_core::jose::Algorithm;

use crate::clients::ClientRegistration;
use crate::endpoints::Endpoints;

/// The metadata document (RFC 8414 §2, RFC 9449 §5.1), in member order.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Document {
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scopes_supported: Vec<String>,
    dpop_signing_alg_values_supported: Vec<&'static str>,
}

/// Every client authentication method, in the order the document lists them.
const METHODS: [&str; 4] = [
    "none",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// The metadata and where it is served.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    /// Where it is served, relative to the public origin's root.
    pub(crate) path: String,
    pub(crate) document: Document,
}

impl Metadata {
    /// The metadata of a service at `endpoints` with `clients`, accepting DPoP proofs signed with
    /// `dpop_algorithms`.
    pub(crate) fn new<'a>(
        endpoints: &Endpoints,
        clients: impl IntoIterator<Item = &'a ClientRegistration>,
        dpop_algorithms: &[Algorithm],
    ) -> Self {
        let registrations: Vec<_> = clients.into_iter().collect();
        let grant_types_supported = [
            GrantType::Password,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ]
        .into_iter()
        .filter(|grant| registrations.iter().any(|client| client.allows(*grant)))
        .map(GrantType::as_str)
        .collect();
        let token_methods: Vec<&'static str> = METHODS
            .into_iter()
            .filter(|method| {
                registrations
                    .iter()
                    .any(|client| client.authentication_methods().contains(method))
            })
            .collect();
        let mut assertion_algorithms: Vec<&'static str> = registrations
            .iter()
            .flat_map(|client| client.assertion_algorithms())
            .map(Algorithm::as_str)
            .collect();
        assertion_algorithms.sort_unstable();
        assertion_algorithms.dedup();
        let mut scopes: Vec<String> = registrations
            .iter()
            .flat_map(|client| client.allowed_scopes())
            .cloned()
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let document = Document {
            issuer: endpoints.issuer.clone(),
            token_endpoint: endpoints.token.clone(),
            jwks_uri: endpoints.jwks.clone(),
            revocation_endpoint: endpoints.revocation.clone(),
            introspection_endpoint: endpoints.introspection.clone(),
            grant_types_supported,
            // Introspection needs an authenticated client, so `none` is no way in there.
            introspection_endpoint_auth_methods_supported: token_methods
                .iter()
                .copied()
                .filter(|method| *method != "none")
                .collect(),
            revocation_endpoint_auth_methods_supported: token_methods.clone(),
            token_endpoint_auth_methods_supported: token_methods,
            token_endpoint_auth_signing_alg_values_supported: assertion_algorithms,
            scopes_supported: scopes,
            dpop_signing_alg_values_supported: dpop_algorithms
                .iter()
                .map(|algorithm| algorithm.as_str())
                .collect(),
        };
        Metadata {
            path: endpoints.metadata_path.clone(),
            document,
        }
    }
}
