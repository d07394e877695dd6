//! The origins (scheme, host, port) a bearer token may be sent to.

use std::fmt;

use reqwest::Url;

use crate::error::BuildError;

/// One origin on the allow-list: a request gets the bearer token only if its URL has exactly this scheme,
/// host and port.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `https://api.example.com` or `http://127.0.0.1:8080`; anything beyond an origin (a path other
    /// than `/`, a query, a fragment, credentials) is rejected so that nobody believes the allow-list
    /// matches on paths.
    pub(crate) fn parse(input: &str) -> Result<Origin, BuildError> {
        let invalid = |reason: &'static str| BuildError::InvalidOrigin {
            origin: input.to_owned(),
            reason,
        };
        let url = Url::parse(input).map_err(|_| invalid("it is not an absolute URL"))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("an origin has no path, query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("an origin carries no credentials"));
        }
        let host = url.host_str().ok_or_else(|| invalid("it has no host"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| invalid("it has no port"))?;
        Ok(Origin {
            scheme: url.scheme().to_owned(),
            host: host.to_owned(),
            port,
        })
    }

    /// The origin `url` belongs to; `None` for URLs without a host or port (not http or https).
    pub(crate) fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }

    /// Whether `url` belongs to this origin. Allocation-free: it runs on every request.
    pub(crate) fn matches(&self, url: &Url) -> bool {
        url.scheme() == self.scheme
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn matches_scheme_host_and_port_exactly() {
        let origin = Origin::parse("https://API.example.com").unwrap();
        assert!(origin.matches(&url("https://api.example.com/v1/items?x=1")));
        assert!(origin.matches(&url("https://api.example.com:443/")));
        assert!(!origin.matches(&url("http://api.example.com/")));
        assert!(!origin.matches(&url("https://api.example.com:8443/")));
        assert!(!origin.matches(&url("https://api.example.com.evil.test/")));
        assert!(!origin.matches(&url("https://evil.test/?https://api.example.com")));
    }

    #[test]
    fn rejects_what_is_not_an_origin() {
        for input in [
            "api.example.com",
            "ftp://a.example",
            "https://a.example/v1",
            "https://a.example/?q",
            "https://u:p@a.example",
        ] {
            let error = Origin::parse(input).unwrap_err();
            assert!(
                matches!(error, BuildError::InvalidOrigin { .. }),
                "{input}: {error}"
            );
        }
        assert!(Origin::parse("http://127.0.0.1:8080/").is_ok());
    }
}
