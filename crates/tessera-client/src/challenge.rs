//! Reading a protected resource's answer: does this 401 say the access token was refused, and why, or
//! does it ask for a DPoP proof with the server's nonce?

use http::{HeaderMap, StatusCode};
use tessera_core::ErrorCode;
use tessera_core::challenge::Challenge;
use tessera_core::header::{TOKEN_EXPIRED, TOKEN_EXPIRED_VALUE, WWW_AUTHENTICATE};

use crate::dpop::DPOP_SCHEME;
use crate::session::Rejection;

/// What an answer says about the token the request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing a new token or proof would change: the answer is handed back.
    Pass,
    /// The token was refused: a refresh can help.
    Refused(Rejection),
    /// The request needs a DPoP proof carrying the nonce the server just handed out (RFC 9449 §9).
    UseDpopNonce,
}

/// The verdict on a response to a request that presented its token with `scheme` (`Bearer` or `DPoP`):
/// only a 401 can refuse a token. `Token-Expired: true` is the expiry signal; an `error="invalid_token"`
/// challenge of the request's scheme, without it, is a refusal without explanation. A 401 without an error
/// code (no credentials), `insufficient_scope`, `invalid_dpop_proof` and 403 pass: a new token would not
/// change the answer. Parameters belong to their own scheme, so `Basic error="invalid_token"` does not
/// count for a Bearer request.
pub(crate) fn verdict(status: StatusCode, headers: &HeaderMap, scheme: &str) -> Verdict {
    if status != StatusCode::UNAUTHORIZED {
        return Verdict::Pass;
    }
    let challenges = Challenge::parse_all(
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok()),
    );
    let error_is = |code: &str| {
        challenges
            .iter()
            .any(|challenge| challenge.is_scheme(scheme) && challenge.get("error") == Some(code))
    };
    if scheme.eq_ignore_ascii_case(DPOP_SCHEME) && error_is(ErrorCode::UseDpopNonce.as_str()) {
        return Verdict::UseDpopNonce;
    }
    let expired = headers.get_all(TOKEN_EXPIRED).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|value| value.trim().eq_ignore_ascii_case(TOKEN_EXPIRED_VALUE))
    });
    if expired {
        Verdict::Refused(Rejection::Expired)
    } else if error_is(ErrorCode::InvalidToken.as_str()) {
        Verdict::Refused(Rejection::Unexplained)
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const BEARER: &str = "Bearer";
    const DPOP: &str = "DPoP";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn unauthorized(pairs: &[(&'static str, &'static str)], scheme: &str) -> Verdict {
        verdict(StatusCode::UNAUTHORIZED, &headers(pairs), scheme)
    }

    #[test]
    fn token_expired_is_the_expiry_signal() {
        let expired = Verdict::Refused(Rejection::Expired);
        assert_eq!(unauthorized(&[("token-expired", "true")], BEARER), expired);
        assert_eq!(
            unauthorized(&[("token-expired", " TRUE ")], BEARER),
            expired
        );
        assert_eq!(
            unauthorized(
                &[
                    ("www-authenticate", r#"Bearer error="invalid_token""#),
                    ("token-expired", "true")
                ],
                BEARER
            ),
            expired
        );
        assert_eq!(
            unauthorized(&[("token-expired", "false")], BEARER),
            Verdict::Pass
        );
        assert_eq!(
            verdict(
                StatusCode::FORBIDDEN,
                &headers(&[("token-expired", "true")]),
                BEARER
            ),
            Verdict::Pass,
            "only a 401 is about the token"
        );
    }

    #[test]
    fn invalid_token_without_the_signal_is_an_unexplained_refusal() {
        for value in [
            r#"Bearer error="invalid_token", error_description="The access token expired""#,
            r#"Bearer realm="api",error=invalid_token"#,
            r#"Basic realm="x", Bearer error="invalid_token""#,
            r#"bearer ERROR = "invalid_token""#,
            r#"Negotiate, DPoP algs="ES256", Bearer error="invalid_token", realm="api""#,
        ] {
            assert_eq!(
                unauthorized(&[("www-authenticate", value)], BEARER),
                Verdict::Refused(Rejection::Unexplained),
                "{value}"
            );
        }
        // The challenges may also come as several header lines.
        assert_eq!(
            unauthorized(
                &[
                    ("www-authenticate", r#"Basic realm="x""#),
                    ("www-authenticate", r#"Bearer error="invalid_token""#)
                ],
                BEARER
            ),
            Verdict::Refused(Rejection::Unexplained)
        );
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
            r#"DPoP error="invalid_token""#,
        ] {
            assert_eq!(
                unauthorized(&[("www-authenticate", value)], BEARER),
                Verdict::Pass,
                "{value}"
            );
        }
        assert_eq!(unauthorized(&[], BEARER), Verdict::Pass);
    }

    #[test]
    fn dpop_requests_read_dpop_challenges() {
        assert_eq!(
            unauthorized(
                &[(
                    "www-authenticate",
                    r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
                )],
                DPOP
            ),
            Verdict::UseDpopNonce
        );
        assert_eq!(
            unauthorized(
                &[(
                    "www-authenticate",
                    r#"DPoP error="invalid_token", algs="ES256 EdDSA""#
                )],
                DPOP
            ),
            Verdict::Refused(Rejection::Unexplained)
        );
        assert_eq!(
            unauthorized(
                &[("www-authenticate", r#"DPoP error="invalid_dpop_proof""#)],
                DPOP
            ),
            Verdict::Pass,
            "a bad proof is not cured by a new token"
        );
        assert_eq!(
            unauthorized(
                &[("www-authenticate", r#"Bearer error="use_dpop_nonce""#)],
                BEARER
            ),
            Verdict::Pass
        );
    }
}
