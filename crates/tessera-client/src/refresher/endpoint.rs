//! One token request: POST a form (with client authentication and, with DPoP, a proof), read the answer
//! safely, and classify it.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::Url;
use tessera_core::{BEARER, ErrorCode, ErrorResponse, TokenResponse};

use super::wire::{self, MAX_TOKEN_RESPONSE};
use super::{ClientAuth, RefreshError};
use crate::dpop::{DPOP, DPOP_SCHEME, Dpop};

/// A form-encoded token request, before client authentication.
#[derive(Debug, Clone)]
pub(crate) struct TokenRequest {
    form: Vec<(String, String)>,
}

impl TokenRequest {
    pub(crate) fn new(grant_type: &str) -> Self {
        TokenRequest {
            form: vec![("grant_type".to_owned(), grant_type.to_owned())],
        }
    }

    /// Adds a form parameter.
    pub(crate) fn push(&mut self, name: &str, value: &str) {
        self.form.push((name.to_owned(), value.to_owned()));
    }

    /// The form so far, for tests.
    #[cfg(test)]
    pub(crate) fn form(&self) -> Vec<(&str, &str)> {
        self.form
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    /// Sends the request with `http` (a plain client: the token request never goes through the
    /// middleware), authenticated with `auth` and, with `dpop`, carrying a proof. A `use_dpop_nonce` answer
    /// is retried once with the nonce it brought, with a new proof and a new client assertion.
    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        endpoint: &Url,
        auth: &ClientAuth,
        dpop: Option<&Dpop>,
        now: SystemTime,
    ) -> Result<TokenResponse, RefreshError> {
        match self.send_once(http, endpoint, auth, dpop, now).await? {
            Answer::Token(token) => Ok(token),
            Answer::UseNonce(_) => match self.send_once(http, endpoint, auth, dpop, now).await? {
                Answer::Token(token) => Ok(token),
                Answer::UseNonce(error) => Err(error),
            },
        }
    }

    async fn send_once(
        &self,
        http: &reqwest::Client,
        endpoint: &Url,
        auth: &ClientAuth,
        dpop: Option<&Dpop>,
        now: SystemTime,
    ) -> Result<Answer, RefreshError> {
        let mut form = self.form.clone();
        let mut headers = HeaderMap::new();
        auth.apply(&mut form, &mut headers, endpoint, now)?;
        if let Some(dpop) = dpop {
            headers.insert(DPOP, dpop.token_request_proof(endpoint)?);
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&form)
            .finish();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        let response = http
            .post(endpoint.clone())
            .headers(headers)
            .body(wire::unforwardable(body))
            .send()
            .await
            .map_err(RefreshError::Network)?;
        wire::refuse_redirects(&response, endpoint)?;
        let nonce_given =
            dpop.is_some_and(|dpop| dpop.remember_nonce(endpoint, response.headers()));
        let retry_after = retry_after(response.headers());
        let (status, body) = wire::read_capped(response, MAX_TOKEN_RESPONSE).await?;
        match classify(status, retry_after, &body, dpop.is_some()) {
            Err(error) if nonce_given && asks_for_nonce(&error) => Ok(Answer::UseNonce(error)),
            answer => answer.map(Answer::Token),
        }
    }
}

enum Answer {
    Token(TokenResponse),
    /// `use_dpop_nonce`, with a new nonce remembered.
    UseNonce(RefreshError),
}

fn asks_for_nonce(error: &RefreshError) -> bool {
    matches!(
        error,
        RefreshError::Unavailable { response: Some(response), .. }
            if response.error == ErrorCode::UseDpopNonce
    )
}

/// `Retry-After` in its delay-seconds form (RFC 9110 §10.2.3); with the HTTP-date form the backoff alone
/// applies.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

/// Error codes that say the request, not the grant, was the trouble: retrying (later, or with a nonce) can
/// succeed, so the session goes on.
const RETRYABLE_CODES: [ErrorCode; 5] = [
    ErrorCode::TemporarilyUnavailable,
    ErrorCode::ServerError,
    ErrorCode::SlowDown,
    ErrorCode::UseDpopNonce,
    ErrorCode::InvalidDpopProof,
];

/// RFC 6749 §5: 2xx carries a token response (`Bearer`, or `DPoP` when a proof was sent); an error says
/// whether the grant is over ([`RefreshError::Rejected`]) or retrying may help.
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    proof_sent: bool,
) -> Result<TokenResponse, RefreshError> {
    if status.is_success() {
        let invalid = |reason: String| RefreshError::InvalidResponse { reason };
        let token: TokenResponse = serde_json::from_slice(body)
            .map_err(|error| invalid(format!("the body is not a token response ({error})")))?;
        let usable_type = token.token_type.eq_ignore_ascii_case(BEARER)
            || (proof_sent && token.token_type.eq_ignore_ascii_case(DPOP_SCHEME));
        if !usable_type {
            return Err(invalid(format!(
                "token_type is {:?}, not {}",
                token.token_type,
                if proof_sent { "Bearer or DPoP" } else { BEARER }
            )));
        }
        if token.access_token.is_empty() {
            return Err(invalid("access_token is empty".to_owned()));
        }
        return Ok(token);
    }
    let response: Option<ErrorResponse> = serde_json::from_slice(body).ok();
    if ends_the_grant(status, response.as_ref()) {
        return Err(RefreshError::Rejected {
            status,
            response: response.unwrap_or_else(|| {
                ErrorResponse::new(
                    ErrorCode::InvalidRequest,
                    "the token endpoint's error body is not an RFC 6749 error",
                )
            }),
        });
    }
    Err(RefreshError::Unavailable {
        status,
        response,
        retry_after,
    })
}

/// Whether an error answer means signing in again is the only way on: a 400 or 401 (RFC 6749 §5.2) unless
/// its code is one retrying can fix, and any 4xx whose code says the grant or the client is not accepted
/// (some providers answer `invalid_grant` with 403). Anything else is the server's trouble, not the grant's.
pub(crate) fn ends_the_grant(status: StatusCode, response: Option<&ErrorResponse>) -> bool {
    let code = response.map(|response| &response.error);
    if code.is_some_and(|code| RETRYABLE_CODES.contains(code)) {
        return false;
    }
    let grant_refused = matches!(
        code,
        Some(ErrorCode::InvalidGrant | ErrorCode::InvalidClient | ErrorCode::UnauthorizedClient)
    );
    (grant_refused && status.is_client_error())
        || status == StatusCode::BAD_REQUEST
        || status == StatusCode::UNAUTHORIZED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_must_be_a_usable_token_response() {
        let ok = classify(
            StatusCode::OK,
            None,
            br#"{"access_token":"a","token_type":"bearer","expires_in":5}"#,
            false,
        )
        .unwrap();
        assert_eq!(ok.expires_in, Some(5));
        let dpop = br#"{"access_token":"a","token_type":"DPoP"}"#;
        assert!(classify(StatusCode::OK, None, dpop, true).is_ok());
        assert!(
            classify(StatusCode::OK, None, dpop, false).is_err(),
            "a DPoP token is of no use without the proof key"
        );
        for body in [
            &br#"{"access_token":"a","token_type":"mac"}"#[..],
            b"<html>",
            br#"{"access_token":"","token_type":"Bearer"}"#,
        ] {
            let error = classify(StatusCode::OK, None, body, true).unwrap_err();
            assert!(
                matches!(error, RefreshError::InvalidResponse { .. }) && !error.is_terminal(),
                "{error}"
            );
        }
    }

    #[test]
    fn a_refused_grant_is_terminal_whatever_the_4xx() {
        for (status, body) in [
            (StatusCode::BAD_REQUEST, &br#"{"error":"invalid_grant"}"#[..]),
            (
                StatusCode::BAD_REQUEST,
                br#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
            ),
            (StatusCode::UNAUTHORIZED, br#"{"error":"invalid_client"}"#),
            (
                StatusCode::FORBIDDEN,
                br#"{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}"#,
            ),
            (StatusCode::BAD_REQUEST, br#"{"error":"unauthorized_client"}"#),
            (StatusCode::BAD_REQUEST, br#"{"error":"invalid_scope"}"#),
            (StatusCode::UNAUTHORIZED, b"nope"),
        ] {
            let error = classify(status, None, body, false).unwrap_err();
            assert!(error.is_terminal(), "{status} {error}");
        }
        let error = classify(
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error":"invalid_grant"}"#,
            false,
        )
        .unwrap_err();
        assert!(
            matches!(&error, RefreshError::Rejected { response, .. } if response.error == ErrorCode::InvalidGrant)
        );
    }

    #[test]
    fn errors_retrying_can_fix_are_transient() {
        for (status, body) in [
            (
                StatusCode::SERVICE_UNAVAILABLE,
                &br#"{"error":"temporarily_unavailable"}"#[..],
            ),
            (StatusCode::TOO_MANY_REQUESTS, br#"{"error":"slow_down"}"#),
            (StatusCode::NOT_FOUND, b"not here"),
            (StatusCode::FORBIDDEN, b"<html>WAF</html>"),
            (StatusCode::BAD_REQUEST, br#"{"error":"use_dpop_nonce"}"#),
            (
                StatusCode::BAD_REQUEST,
                br#"{"error":"invalid_dpop_proof"}"#,
            ),
            (
                StatusCode::BAD_REQUEST,
                br#"{"error":"temporarily_unavailable"}"#,
            ),
        ] {
            let error = classify(status, Some(Duration::from_secs(7)), body, false).unwrap_err();
            assert!(
                matches!(error, RefreshError::Unavailable { .. }) && !error.is_terminal(),
                "{status} {error}"
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
