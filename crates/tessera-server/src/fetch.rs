//! GETting the small documents an issuer publishes (its JWKS, its metadata, its denials feed): over https,
//! or plain http to a loopback address only; never following a redirect; reading the body chunk by chunk up
//! to a limit, so that an endless body costs no more than the limit.

use std::time::Duration;

use http::StatusCode;
use http::header::LOCATION;

/// Why a GET failed.
#[derive(Debug)]
pub(crate) enum GetError {
    /// The request failed or timed out.
    Request(reqwest::Error),
    /// A non-success status.
    Status(StatusCode),
    /// A redirect, not followed.
    Redirect {
        status: StatusCode,
        /// The `Location` as sent (lossily decoded), or `(none)`.
        location: String,
    },
    /// The body exceeds the limit.
    TooLarge { limit: usize },
}

/// A URL a document may be fetched from: `https`, or `http` to a loopback address (tests, sidecars),
/// since keys fetched over an open network without TLS could be replaced in transit. `None` otherwise.
pub(crate) fn trusted_url(url: &reqwest::Url) -> Option<bool> {
    let https = url.scheme() == "https";
    (https || (url.scheme() == "http" && is_loopback(url))).then_some(https)
}

/// The client for one issuer: `https_only` when the URL was https, no redirects, `timeout` for the whole
/// exchange (connection, headers and body).
pub(crate) fn client(https_only: bool, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .https_only(https_only)
        // A 3xx is a failed fetch, never a hop to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("tessera-server/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The body of a successful GET of `url` of at most `limit` bytes, and the answer's headers.
#[cfg(feature = "remote-jwks")]
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &reqwest::Url,
    accept: &'static str,
    limit: usize,
) -> Result<(Vec<u8>, http::HeaderMap), GetError> {
    send(
        client.get(url.clone()).header(http::header::ACCEPT, accept),
        limit,
    )
    .await
}

/// The body of a successful answer to `request` of at most `limit` bytes, and the answer's headers.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<(Vec<u8>, http::HeaderMap), GetError> {
    let mut response = request.send().await.map_err(GetError::Request)?;
    let status = response.status();
    if status.is_redirection() {
        let location = response.headers().get(LOCATION).map_or_else(
            || "(none)".to_owned(),
            |value| String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
        return Err(GetError::Redirect { status, location });
    }
    if !status.is_success() {
        return Err(GetError::Status(status));
    }
    let headers = std::mem::take(response.headers_mut());
    let mut document = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(GetError::Request)? {
        if document.len() + chunk.len() > limit {
            return Err(GetError::TooLarge { limit });
        }
        document.extend_from_slice(&chunk);
    }
    Ok((document, headers))
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
