//! Targets that arrive as HTTP requests: the bearer token sources and the token service's bodies.

use axum::body::Body;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::{Layer as _, ServiceExt as _};

use crate::{block_on, fixtures};

/// `selector ‖ authorization ‖ 0xFF ‖ cookie ‖ 0xFF ‖ query`: the selector's bits say which of the three
/// the request carries (and bit 3 doubles the `Authorization` header).
pub fn bearer(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.split(|&byte| byte == 0xFF);
    let (authorization, cookie, query) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut uri = String::from("/me");
    if selector & 4 != 0 {
        uri.push('?');
        uri.push_str(&String::from_utf8_lossy(query));
    }
    let Ok(mut request) = Request::get(uri).body(Body::empty()) else {
        return;
    };
    let headers = request.headers_mut();
    if selector & 1 != 0 {
        let Ok(value) = HeaderValue::from_bytes(authorization) else {
            return;
        };
        if selector & 8 != 0 {
            headers.append(AUTHORIZATION, value.clone());
        }
        headers.append(AUTHORIZATION, value);
    }
    if selector & 2 != 0 {
        let Ok(value) = HeaderValue::from_bytes(cookie) else {
            return;
        };
        headers.append(COOKIE, value);
    }

    let service = fixtures::layer().layer(tower::service_fn(|_request: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
    }));
    let response = match block_on(service.oneshot(request)) {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let genuine = fixtures::genuine();
    let carries = |tokens: &[String]| {
        tokens
            .iter()
            .any(|token| memchr_contains(rest, token.as_bytes()))
    };
    let status = response.status();
    match status {
        StatusCode::OK => assert!(carries(&genuine.valid), "a forged token was accepted"),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => assert!(
            response.headers().contains_key(WWW_AUTHENTICATE),
            "a {status} without a challenge"
        ),
        other => panic!("unexpected status {other}"),
    }
    if response.headers().contains_key("token-expired") {
        assert!(
            carries(&genuine.expired),
            "Token-Expired for a token that was never genuine"
        );
    }
}

/// `selector ‖ body`: the selector picks the path (bits 0–1), the content type (bits 2–4) and whether a
/// Basic header is sent (bit 5, with the first line of the body as its credentials).
pub fn token_endpoint(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let path =
        ["/auth/token", "/auth/revoke", "/auth/logout", "/auth/token"][usize::from(selector & 3)];
    let content_type = [
        Some("application/x-www-form-urlencoded"),
        Some("application/json"),
        None,
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        Some("application/jwt+json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("APPLICATION/JSON"),
    ][usize::from((selector >> 2) & 7)];
    let mut builder = Request::post(path);
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    let mut body = body.to_vec();
    if selector & 32 != 0 {
        let line_end = body
            .iter()
            .position(|&byte| byte == b'\n')
            .unwrap_or(body.len());
        let Ok(value) = HeaderValue::from_bytes(&[b"Basic ", &body[..line_end]].concat()) else {
            return;
        };
        builder = builder.header(AUTHORIZATION, value);
        body.drain(..line_end);
    }
    let Ok(request) = builder.body(Body::from(body)) else {
        return;
    };
    let router = fixtures::token_service().clone();
    let (status, bytes) = block_on(async move {
        let response = match router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "the token service answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() {
        let error: serde_json::Value =
            serde_json::from_slice(&bytes).expect("every error answer is JSON");
        assert!(
            error["error"].is_string(),
            "an error answer without an error code: {error}"
        );
    }
}

fn memchr_contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
