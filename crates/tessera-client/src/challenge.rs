//! Reading a protected resource's answer: is this 401 about an expired (or otherwise invalid) access token?

use http::{HeaderMap, StatusCode};
use tessera_core::BEARER;
use tessera_core::challenge::Challenge;
use tessera_core::header::{TOKEN_EXPIRED, TOKEN_EXPIRED_VALUE, WWW_AUTHENTICATE};

/// Whether a response says the access token it was sent with is no longer accepted, so that a refresh can
/// help: a 401 carrying `Token-Expired: true`, or a Bearer challenge with `error="invalid_token"`.
///
/// A 401 without an error code (no credentials), `insufficient_scope` and 403 are not: a new token would not
/// change the answer.
pub(crate) fn asks_for_new_token(status: StatusCode, headers: &HeaderMap) -> bool {
    if status != StatusCode::UNAUTHORIZED {
        return false;
    }
    let expired_header = headers.get_all(TOKEN_EXPIRED).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|value| value.trim().eq_ignore_ascii_case(TOKEN_EXPIRED_VALUE))
    });
    expired_header
        || headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(bearer_error_is_invalid_token)
}

/// Whether a `WWW-Authenticate` value holds a `Bearer` challenge whose `error` is `invalid_token`.
/// Parameters belong to their own scheme, so `Basic error="invalid_token"` does not count.
fn bearer_error_is_invalid_token(value: &str) -> bool {
    Challenge::parse_list(value).iter().any(|challenge| {
        challenge.is_scheme(BEARER) && challenge.get("error") == Some("invalid_token")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn token_expired_header_triggers_a_refresh() {
        let map = headers(&[("token-expired", "true")]);
        assert!(asks_for_new_token(StatusCode::UNAUTHORIZED, &map));
        assert!(asks_for_new_token(
            StatusCode::UNAUTHORIZED,
            &headers(&[("token-expired", " TRUE ")])
        ));
        assert!(!asks_for_new_token(
            StatusCode::UNAUTHORIZED,
            &headers(&[("token-expired", "false")])
        ));
        assert!(
            !asks_for_new_token(StatusCode::FORBIDDEN, &map),
            "only a 401 is about the token"
        );
    }

    #[test]
    fn bearer_invalid_token_triggers_a_refresh() {
        for value in [
            r#"Bearer error="invalid_token", error_description="The access token expired""#,
            r#"Bearer realm="api",error=invalid_token"#,
            r#"Basic realm="x", Bearer error="invalid_token""#,
            r#"bearer ERROR = "invalid_token""#,
        ] {
            let map = headers(&[("www-authenticate", value)]);
            assert!(
                asks_for_new_token(StatusCode::UNAUTHORIZED, &map),
                "{value}"
            );
        }
    }

    #[test]
    fn other_challenges_pass_through() {
        for value in [
            r#"Bearer realm="api""#,
            r#"Bearer error="insufficient_scope", scope="write""#,
            r#"Bearer error="invalid_request""#,
            r#"Basic error="invalid_token""#,
            r#"Bearer realm="error=\"invalid_token\"""#,
            r#"Bearer error_description="invalid_token""#,
        ] {
            let map = headers(&[("www-authenticate", value)]);
            assert!(
                !asks_for_new_token(StatusCode::UNAUTHORIZED, &map),
                "{value}"
            );
        }
        assert!(!asks_for_new_token(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new()
        ));
    }
}
