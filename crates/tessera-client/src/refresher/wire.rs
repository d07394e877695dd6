//! What every request to the authorization server shares, whatever `reqwest::Client` the application
//! passed in: a body the HTTP client cannot send twice (so it never follows a redirect with it), no answer
//! taken from anywhere but the URL asked, and answers read with a size cap.

use bytes::Bytes;
use http::StatusCode;
use http::header::LOCATION;
use http_body_util::Full;
use reqwest::Url;

use super::RefreshError;

/// The largest token response read: a token response is a few KiB, even with a long JWT and an ID token.
pub(crate) const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A request body reqwest cannot clone.
///
/// reqwest (through tower-http) follows a 307 or 308 only when it can send the body again, and turns a
/// POST into a bodiless GET on 301, 302 and 303: with this body no redirect, whatever the client's policy,
/// can carry the refresh token or a client secret to another origin. The length is exact, so the request
/// still carries `Content-Length` (no chunked encoding).
pub(crate) fn unforwardable(body: String) -> reqwest::Body {
    reqwest::Body::wrap(Full::new(Bytes::from(body)))
}

/// Refuses an answer that is a redirect, or that came from another URL than `asked` (the client followed
/// a redirect): nothing from there is read.
pub(crate) fn refuse_redirects(
    response: &reqwest::Response,
    asked: &Url,
) -> Result<(), RefreshError> {
    let status = response.status();
    if status.is_redirection() {
        return Err(RefreshError::Redirected {
            status,
            location: response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        });
    }
    if response.url() != asked {
        return Err(RefreshError::Redirected {
            status,
            location: Some(response.url().as_str().to_owned()),
        });
    }
    Ok(())
}

/// The body of `response`, at most `limit` bytes: refused unread when its declared length is larger, and
/// cut off as soon as more arrives, so an endless answer costs `limit` bytes and no more.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(StatusCode, Bytes), RefreshError> {
    let status = response.status();
    let too_large = RefreshError::ResponseTooLarge { limit };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(RefreshError::Network)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, Bytes::from(body)))
}
