//! Where the service is: its issuer identifier (a URL, RFC 8414 §2) and the public URLs of its endpoints,
//! derived from the URL clients reach it at, so metadata, DPoP `htu` checks and client-assertion audiences
//! all name the same URLs.

use http::Uri;

/// Where [`Issuer::router`](crate::Issuer::router) is nested unless
/// [`IssuerBuilder::router_path`](crate::IssuerBuilder::router_path) says otherwise.
pub const DEFAULT_ROUTER_PATH: &str = "/auth";

/// The RFC 8414 well-known path, inserted between the issuer's host and its path.
pub(crate) const METADATA_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

/// Why a URL setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not an absolute URL.
    #[error("{what} {url:?} is not an absolute URL like https://auth.example")]
    NotAbsolute {
        /// Which setting.
        what: &'static str,
        /// The value given.
        url: String,
    },
    /// Neither `https`, nor `http` on a loopback host.
    #[error("{what} {url:?} must use https (http only on 127.0.0.1, [::1] or localhost)")]
    Insecure {
        /// Which setting.
        what: &'static str,
        /// The value given.
        url: String,
    },
    /// A query, a fragment or user information.
    #[error("{what} {url:?} must have no query, fragment or user information")]
    Extra {
        /// Which setting.
        what: &'static str,
        /// The value given.
        url: String,
    },
    /// A router path that does not start with `/` or ends with one.
    #[error("the router path {0:?} must be empty or start with / and not end with one, like /auth")]
    RouterPath(String),
}

/// The validated URLs of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// The issuer identifier, exactly as configured (`iss` and the metadata's `issuer`).
    pub(crate) issuer: String,
    pub(crate) token: String,
    pub(crate) revocation: String,
    pub(crate) introspection: String,
    pub(crate) jwks: String,
    /// The path the metadata is served at, relative to the public origin's root.
    pub(crate) metadata_path: String,
}

impl Endpoints {
    /// The URLs for `issuer`, reached at `public_url` (default: the issuer) with the router nested at
    /// `router_path`.
    pub(crate) fn new(
        issuer: &str,
        public_url: Option<&str>,
        router_path: &str,
    ) -> Result<Self, UrlError> {
        let issuer_uri = checked_url(issuer, "the issuer")?;
        let base = match public_url {
            Some(url) => {
                checked_url(url, "the public URL")?;
                url
            }
            None => issuer,
        };
        if !router_path.is_empty() && (!router_path.starts_with('/') || router_path.ends_with('/'))
        {
            return Err(UrlError::RouterPath(router_path.to_owned()));
        }
        let base = base.trim_end_matches('/');
        let routes = format!("{base}{router_path}");
        // RFC 8414 §3.1: the well-known path goes between the host and the issuer's path, whose trailing
        // slash is dropped.
        let metadata_path = format!(
            "{METADATA_WELL_KNOWN}{}",
            issuer_uri.path().trim_end_matches('/')
        );
        Ok(Endpoints {
            issuer: issuer.to_owned(),
            token: format!("{routes}/token"),
            revocation: format!("{routes}/revoke"),
            introspection: format!("{routes}/introspect"),
            jwks: format!("{base}{}", crate::http::JWKS_PATH),
            metadata_path,
        })
    }
}

/// `url` parsed, if it may identify this service: absolute, `https` (or `http` on loopback), with no
/// query, fragment or user information.
fn checked_url(url: &str, what: &'static str) -> Result<Uri, UrlError> {
    let owned = || url.to_owned();
    if url.contains(['#', '?']) {
        return Err(UrlError::Extra { what, url: owned() });
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| UrlError::NotAbsolute { what, url: owned() })?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(UrlError::NotAbsolute { what, url: owned() });
    };
    if authority.as_str().contains('@') {
        return Err(UrlError::Extra { what, url: owned() });
    }
    let loopback = matches!(authority.host(), "127.0.0.1" | "[::1]" | "localhost");
    if !(scheme.eq_ignore_ascii_case("https") || (scheme.eq_ignore_ascii_case("http") && loopback))
    {
        return Err(UrlError::Insecure { what, url: owned() });
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_derive_from_the_public_url_and_the_router_path() {
        let endpoints = Endpoints::new("https://auth.example", None, "/auth").unwrap();
        assert_eq!(endpoints.token, "https://auth.example/auth/token");
        assert_eq!(endpoints.revocation, "https://auth.example/auth/revoke");
        assert_eq!(
            endpoints.introspection,
            "https://auth.example/auth/introspect"
        );
        assert_eq!(endpoints.jwks, "https://auth.example/.well-known/jwks.json");
        assert_eq!(
            endpoints.metadata_path,
            "/.well-known/oauth-authorization-server"
        );

        let proxied = Endpoints::new(
            "https://example.com/tenant/",
            Some("https://edge.example.com/"),
            "",
        )
        .unwrap();
        assert_eq!(proxied.issuer, "https://example.com/tenant/");
        assert_eq!(proxied.token, "https://edge.example.com/token");
        assert_eq!(
            proxied.metadata_path, "/.well-known/oauth-authorization-server/tenant",
            "RFC 8414 §3.1: inserted before the path, its trailing slash dropped"
        );
        let local = Endpoints::new("http://127.0.0.1:8080", None, "/auth").unwrap();
        assert_eq!(local.token, "http://127.0.0.1:8080/auth/token");
    }

    #[test]
    fn only_https_urls_or_loopback_http_without_extras_identify_the_service() {
        for ok in [
            "https://auth.example",
            "https://auth.example:8443/tenant",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert!(Endpoints::new(ok, None, "/auth").is_ok(), "{ok}");
        }
        let refused = |url: &str| Endpoints::new(url, None, "/auth").unwrap_err();
        assert!(matches!(
            refused("tessera-demo"),
            UrlError::NotAbsolute { .. }
        ));
        assert!(matches!(
            refused("http://auth.example"),
            UrlError::Insecure { .. }
        ));
        assert!(matches!(
            refused("ftp://auth.example"),
            UrlError::Insecure { .. }
        ));
        for extra in [
            "https://auth.example/?tenant=1",
            "https://auth.example/#top",
            "https://user@auth.example",
        ] {
            assert!(matches!(refused(extra), UrlError::Extra { .. }), "{extra}");
        }
        for path in ["auth", "/auth/"] {
            assert!(matches!(
                Endpoints::new("https://auth.example", None, path),
                Err(UrlError::RouterPath(_))
            ));
        }
        assert!(
            refused("http://auth.example")
                .to_string()
                .contains("must use https")
        );
    }
}
