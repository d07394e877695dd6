//! Reading a request: its parameters (form or JSON body, within the size limit), its Basic client
//! credentials and its `User-Agent`.

use axum::body::Body;
use axum::extract::Request;
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};

use crate::error::TokenError;
use crate::params::Params;

/// The longest `User-Agent` kept for the session list.
const MAX_USER_AGENT: usize = 256;

/// What the handlers need from a request.
pub(crate) struct ParsedRequest {
    pub(crate) params: Params,
    pub(crate) basic: Option<String>,
    pub(crate) user_agent: Option<String>,
}

pub(crate) async fn parse(request: Request, limit: usize) -> Result<ParsedRequest, TokenError> {
    let (parts, body) = request.into_parts();
    let basic = basic_credentials(&parts.headers);
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| agent.chars().take(MAX_USER_AGENT).collect());
    let bytes = read_body(body, limit).await?;
    let params = match media_type(&parts.headers)? {
        MediaType::Form => Params::from_form(&bytes)?,
        MediaType::Json => Params::from_json(&bytes)?,
        MediaType::None if bytes.is_empty() => Params::from_form(&bytes)?,
        MediaType::None => {
            return Err(TokenError::InvalidRequest(
                "the body has no Content-Type; send application/x-www-form-urlencoded or application/json".into(),
            ));
        }
    };
    Ok(ParsedRequest {
        params,
        basic,
        user_agent,
    })
}

async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, TokenError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            TokenError::PayloadTooLarge { limit }
        } else {
            TokenError::InvalidRequest("the request body could not be read".into())
        }
    })
}

enum MediaType {
    Form,
    Json,
    None,
}

fn media_type(headers: &HeaderMap) -> Result<MediaType, TokenError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(MediaType::None);
    };
    let unsupported = || {
        TokenError::InvalidRequest(
            "unsupported Content-Type; send application/x-www-form-urlencoded or application/json"
                .into(),
        )
    };
    let value = value.to_str().map_err(|_| unsupported())?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(MediaType::Form),
        "application/json" => Ok(MediaType::Json),
        other if other.starts_with("application/") && other.ends_with("+json") => {
            Ok(MediaType::Json)
        }
        _ => Err(unsupported()),
    }
}

/// The credentials of an `Authorization: Basic` header. Other schemes are not client authentication and
/// are ignored: a client library that attaches its bearer token to every request must not break logout.
fn basic_credentials(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("basic")
        .then(|| credentials.trim().to_owned())
}
