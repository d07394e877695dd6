//! The URLs a layer fetches from (the issuer's JWKS, its denials feed): `https`, or plain `http` to this
//! machine only, since what crosses the network (keys, revocations, a bearer secret) must not be readable
//! or replaceable in transit.

/// Why a fetch URL is refused.
#[derive(Debug)]
pub(crate) enum UrlError {
    /// It does not parse.
    Invalid(String),
    /// It is neither `https` nor `http` to a loopback address.
    Insecure(String),
}

/// `url`, if it parses and is `https` or plain `http` to a loopback address.
pub(crate) fn parse_fetch_url(url: &str) -> Result<reqwest::Url, UrlError> {
    let url = reqwest::Url::parse(url).map_err(|error| UrlError::Invalid(error.to_string()))?;
    let https = url.scheme() == "https";
    let loopback_http = url.scheme() == "http" && is_loopback(&url);
    if https || loopback_http {
        Ok(url)
    } else {
        Err(UrlError::Insecure(url.to_string()))
    }
}

/// Whether `url` points at this machine (`localhost`, `127.0.0.0/8`, `::1`).
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}
