//! One token request: POST a form, classify the answer.

use std::time::Duration;

use http::StatusCode;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::Url;
use tessera_core::{BEARER, ErrorCode, ErrorResponse, TokenResponse};

use super::RefreshError;

/// A form-encoded token request, ready to send.
pub(crate) struct TokenRequest {
    form: Vec<(&'static str, String)>,
    pub(crate) authorization: Option<HeaderValue>,
}

impl TokenRequest {
    pub(crate) fn new(grant_type: &str) -> Self {
        TokenRequest {
            form: vec![("grant_type", grant_type.to_owned())],
            authorization: None,
        }
    }

    /// Adds a form parameter.
    pub(crate) fn push(&mut self, name: &'static str, value: &str) {
        self.form.push((name, value.to_owned()));
    }

    /// The form body, `application/x-www-form-urlencoded`.
    pub(crate) fn body(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.form)
            .finish()
    }

    /// Sends the request with `http` (a plain client: the token request never goes through the middleware).
    pub(crate) async fn send(
        self,
        http: &reqwest::Client,
        endpoint: &Url,
    ) -> Result<TokenResponse, RefreshError> {
        let mut request = http
            .post(endpoint.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(self.body());
        if let Some(authorization) = self.authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let response = request.send().await.map_err(RefreshError::Network)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(RefreshError::Network)?;
        classify(status, retry_after, &body)
    }
}

/// `Retry-After` in its delay-seconds form (RFC 9110 §10.2.3); with the HTTP-date form the backoff alone
/// applies.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

/// RFC 6749 §5: 2xx carries a token response; 400 and 401 are the server's final word on this grant;
/// anything else is the server's trouble, not the grant's.
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<TokenResponse, RefreshError> {
    if status.is_success() {
        let invalid = |reason: String| RefreshError::InvalidResponse { reason };
        let token: TokenResponse = serde_json::from_slice(body)
            .map_err(|error| invalid(format!("the body is not a token response ({error})")))?;
        if !token.token_type.eq_ignore_ascii_case(BEARER) {
            return Err(invalid(format!(
                "token_type is {:?}, not Bearer",
                token.token_type
            )));
        }
        if token.access_token.is_empty() {
            return Err(invalid("access_token is empty".to_owned()));
        }
        Ok(token)
    } else if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
        let response = serde_json::from_slice(body).unwrap_or_else(|_| {
            ErrorResponse::new(
                ErrorCode::InvalidRequest,
                "the token endpoint's error body is not an RFC 6749 error",
            )
        });
        Err(RefreshError::Rejected { status, response })
    } else {
        Err(RefreshError::Unavailable {
            status,
            response: serde_json::from_slice(body).ok(),
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_must_be_a_bearer_token_response() {
        let ok = classify(
            StatusCode::OK,
            None,
            br#"{"access_token":"a","token_type":"bearer","expires_in":5}"#,
        )
        .unwrap();
        assert_eq!(ok.expires_in, Some(5));
        for body in [
            &br#"{"access_token":"a","token_type":"DPoP"}"#[..],
            b"<html>",
            br#"{"access_token":"","token_type":"Bearer"}"#,
        ] {
            let error = classify(StatusCode::OK, None, body).unwrap_err();
            assert!(
                matches!(error, RefreshError::InvalidResponse { .. }) && !error.is_terminal(),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_request_and_unauthorized_are_terminal() {
        let error = classify(
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error":"invalid_grant"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&error, RefreshError::Rejected { response, .. } if response.error == ErrorCode::InvalidGrant)
        );
        assert!(error.is_terminal());
        let error = classify(StatusCode::UNAUTHORIZED, None, b"nope").unwrap_err();
        assert!(error.is_terminal(), "{error}");
    }

    #[test]
    fn other_statuses_are_transient() {
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::NOT_FOUND,
        ] {
            let error = classify(
                status,
                Some(Duration::from_secs(7)),
                br#"{"error":"temporarily_unavailable"}"#,
            )
            .unwrap_err();
            assert!(
                matches!(error, RefreshError::Unavailable { .. }) && !error.is_terminal(),
                "{error}"
            );
            assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        }
    }

    #[test]
    fn retry_after_reads_delay_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 30 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
