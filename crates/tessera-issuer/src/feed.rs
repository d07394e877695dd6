//! The denials feed: `GET /denials`, the access-token denials of the token service for the API processes
//! that verify its tokens (`tessera_server::RemoteDenylist` reads it).
//!
//! ```text
//! GET /auth/denials?after=<cursor>&limit=1000
//! Authorization: Bearer <a token set with IssuerBuilder::denials_feed_token>
//!
//! 200 OK
//! Cache-Control: no-store
//! {"denials":[{"jti":"…","until":1800000930},{"sid":"…","until":1800001200},
//!             {"sub":"alice","issued_before":1800000000,"until":1800001200}],
//!  "cursor":"Zk3xQ8sdf0Aa9pPq:42","more":false}
//! ```
//!
//! - `after` (optional): the `cursor` of the previous answer; without it the feed starts from the oldest
//!   denial in force. The answer holds the denials written after it, oldest write first, at most `limit`
//!   (default 1000, at most 10 000); `more: true` says the next page is waiting. A denial that a later
//!   write extends appears again with its new bounds. Denials that ended (`until` passed) are left out.
//! - The cursor is opaque: the store's identity and a sequence number. A cursor of another store (the
//!   database was replaced) starts from the oldest denial again; a malformed one is `400 invalid_request`.
//! - A missing or wrong bearer token is `401` with `WWW-Authenticate: Bearer`; without any configured
//!   token the feed does not exist (`404`).
//! - Each denial is one of `jti` (one token), `sid` (every token of a session) or `sub` with
//!   `issued_before` (every token of a subject with an `iat` before it); `until` is when it may be dropped
//!   (the tokens' `exp` plus the issuer's `max_leeway`).

use aws_lc_rs::digest::{SHA256, digest};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use subtle::ConstantTimeEq as _;
use tessera_core::{ErrorCode, ErrorResponse};
use tessera_server::DenialPage;

use crate::issuer::Issuer;
use crate::params::form_decode;
use crate::store::{RefreshStore, StoreError};

/// Where the feed is served, under the token service's routes.
pub(crate) const DENIALS_PATH: &str = "/denials";

/// The name of the store's identity among its shared values.
const LOG_ID_NAME: &str = "denial-log-id";

/// The page size without `limit`, and the largest accepted.
const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 10_000;

/// A feed position: the store's identity and the sequence number of the last write seen.
#[derive(Debug, PartialEq, Eq)]
struct Cursor<'a> {
    log: &'a str,
    seq: u64,
}

impl<'a> Cursor<'a> {
    fn parse(text: &'a str) -> Option<Cursor<'a>> {
        let (log, seq) = text.rsplit_once(':')?;
        Some(Cursor {
            log,
            seq: seq.parse().ok()?,
        })
    }
}

/// `GET /denials`.
pub(crate) async fn denials<S: RefreshStore>(
    State(issuer): State<Issuer<S>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match page(&issuer, &headers, query.as_deref()).await {
        Ok(page) => (
            [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(page),
        )
            .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Why the feed did not answer with a page.
enum Refusal {
    NotEnabled,
    Unauthorized { presented: bool },
    BadRequest(&'static str),
    Store(StoreError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, description) = match self {
            Refusal::NotEnabled => (
                StatusCode::NOT_FOUND,
                ErrorCode::InvalidRequest,
                "the denials feed is not enabled on this token service (IssuerBuilder::denials_feed_token)",
            ),
            Refusal::Unauthorized { presented } => {
                let challenge = if presented {
                    "Bearer realm=\"tessera-denials\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"tessera-denials\""
                };
                let body = ErrorResponse::new(
                    ErrorCode::InvalidToken,
                    "the denials feed needs its bearer token".to_owned(),
                );
                return (
                    StatusCode::UNAUTHORIZED,
                    [(WWW_AUTHENTICATE, HeaderValue::from_static(challenge))],
                    Json(body),
                )
                    .into_response();
            }
            Refusal::BadRequest(description) => (
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                description,
            ),
            Refusal::Store(error) => {
                tracing::error!(%error, "the denials feed could not read the store");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::TemporarilyUnavailable,
                    "the token service cannot read its denials right now; retry",
                )
            }
        };
        (
            status,
            Json(ErrorResponse::new(code, description.to_owned())),
        )
            .into_response()
    }
}

async fn page<S: RefreshStore>(
    issuer: &Issuer<S>,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<DenialPage, Refusal> {
    authorize(&issuer.inner.feed_tokens, headers)?;
    let mut after = None;
    let mut limit = DEFAULT_LIMIT;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = form_decode(value.as_bytes())
            .map_err(|_| Refusal::BadRequest("the query is not form-encoded"))?;
        match name {
            "after" => after = Some(value),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                    .ok_or(Refusal::BadRequest(
                        "`limit` must be a number from 1 to 10000",
                    ))?;
            }
            _ => {}
        }
    }
    let log = issuer
        .inner
        .denial_log
        .get_or_try_init(|| log_id(issuer.observed_store()))
        .await
        .map_err(Refusal::Store)?;
    let seq = match after.as_deref() {
        None => 0,
        Some(text) => {
            let cursor = Cursor::parse(text).ok_or(Refusal::BadRequest(
                "`after` is not a cursor of this feed; pass back the `cursor` of an answer",
            ))?;
            if cursor.log == log { cursor.seq } else { 0 }
        }
    };
    let now = issuer.inner.clock.unix_seconds();
    let batch = issuer
        .observed_store()
        .denials_after(seq, now, limit)
        .await
        .map_err(Refusal::Store)?;
    Ok(DenialPage {
        denials: batch.denials,
        cursor: format!("{log}:{}", batch.last),
        more: batch.more,
    })
}

/// Checks the bearer token against the configured ones, in constant time.
fn authorize(tokens: &[String], headers: &HeaderMap) -> Result<(), Refusal> {
    if tokens.is_empty() {
        return Err(Refusal::NotEnabled);
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(presented) = presented else {
        return Err(Refusal::Unauthorized { presented: false });
    };
    // Digests first, so the comparison takes the same time whatever the lengths.
    let presented = digest(&SHA256, presented.as_bytes());
    let matches = tokens.iter().fold(false, |matched, token| {
        let expected = digest(&SHA256, token.as_bytes());
        matched | bool::from(expected.as_ref().ct_eq(presented.as_ref()))
    });
    if matches {
        Ok(())
    } else {
        Err(Refusal::Unauthorized { presented: true })
    }
}

/// The store's identity: a random value the first instance stores and every one reads.
async fn log_id<S: RefreshStore>(store: &S) -> Result<String, StoreError> {
    let candidate = tessera_core::random::bytes::<12>()
        .map_err(|error| StoreError::Backend(Box::new(error)))?;
    let stored = store
        .shared_secret(LOG_ID_NAME, URL_SAFE_NO_PAD.encode(candidate).as_bytes())
        .await?;
    String::from_utf8(stored)
        .map_err(|_| StoreError::Corrupt(format!("the shared value `{LOG_ID_NAME}` is not text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_and_only_configured_tokens_pass() {
        assert_eq!(
            Cursor::parse("abc:42"),
            Some(Cursor {
                log: "abc",
                seq: 42
            })
        );
        assert_eq!(Cursor::parse("abc"), None);
        assert_eq!(Cursor::parse("abc:-1"), None);

        let tokens = vec!["a".repeat(32), "b".repeat(32)];
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            authorize(&tokens, &headers)
        };
        assert!(with(&format!("Bearer {}", "b".repeat(32))).is_ok());
        assert!(with(&format!("bearer {}", "a".repeat(32))).is_ok());
        assert!(matches!(
            with("Bearer nope"),
            Err(Refusal::Unauthorized { presented: true })
        ));
        assert!(matches!(
            authorize(&tokens, &HeaderMap::new()),
            Err(Refusal::Unauthorized { presented: false })
        ));
        assert!(matches!(
            authorize(&[], &HeaderMap::new()),
            Err(Refusal::NotEnabled)
        ));
    }
}
