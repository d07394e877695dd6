//! What keeps another site from acting through the user's session: the session cookie (`SameSite=Strict`,
//! `HttpOnly`, `Secure` + `__Host-` over HTTPS), an `Origin` check, and a per-session CSRF token that only
//! this page's scripts can have read.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use subtle::ConstantTimeEq as _;

use super::ProxyError;

/// The header the page sends the session's CSRF token in.
pub(super) const CSRF_HEADER: &str = "x-csrf-token";

/// How the proxy names and flags its session cookie.
#[derive(Debug, Clone)]
pub(super) struct CookiePolicy {
    name: &'static str,
    secure: bool,
}

impl CookiePolicy {
    /// Over HTTPS the cookie is `Secure` with the `__Host-` prefix (bound to this exact host, path `/`, no
    /// `Domain`); on plain `http://127.0.0.1` browsers refuse both, so the cookie keeps a plain name.
    pub(super) fn for_origin(public_origin: &str) -> Self {
        if public_origin.starts_with("https://") {
            CookiePolicy {
                name: "__Host-tessera_session",
                secure: true,
            }
        } else {
            CookiePolicy {
                name: "tessera_session",
                secure: false,
            }
        }
    }

    /// The session id the request's cookies carry, if any.
    pub(super) fn session_id<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|cookies| cookies.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value)
    }

    /// `Set-Cookie` for a new session.
    pub(super) fn set(&self, session_id: &str) -> HeaderValue {
        self.header(&format!("{}={session_id}", self.name), "")
    }

    /// `Set-Cookie` that makes the browser drop the session cookie.
    pub(super) fn clear(&self) -> HeaderValue {
        self.header(&format!("{}=", self.name), "; Max-Age=0")
    }

    fn header(&self, pair: &str, extra: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!("{pair}; Path=/; HttpOnly; SameSite=Strict{secure}{extra}");
        // Built only from the fixed name and a base64url id: always a valid header value.
        HeaderValue::from_str(&cookie)
            .unwrap_or_else(|_| HeaderValue::from_static("tessera_session=; Max-Age=0"))
    }
}

/// Whether `method` changes state, so needs the origin check and the CSRF token.
pub(super) fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A state-changing request must come from the proxy's own origin. Browsers send `Origin` on every
/// non-`GET` fetch; when it is absent, `Sec-Fetch-Site: same-origin` is accepted instead, anything else
/// is refused.
pub(super) fn check_origin(headers: &HeaderMap, public_origin: &str) -> Result<(), ProxyError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return if origin.as_bytes() == public_origin.as_bytes() {
            Ok(())
        } else {
            Err(ProxyError::ForeignOrigin)
        };
    }
    match headers.get("sec-fetch-site") {
        Some(site) if site.as_bytes() == b"same-origin" => Ok(()),
        _ => Err(ProxyError::ForeignOrigin),
    }
}

/// The request carries the session's CSRF token (compared in constant time).
pub(super) fn check_csrf(headers: &HeaderMap, expected: &str) -> Result<(), ProxyError> {
    let presented = headers
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if bool::from(presented.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ProxyError::CsrfMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.parse().unwrap(), HeaderValue::from_static(value)))
            .collect()
    }

    #[test]
    fn cookie_is_host_prefixed_and_secure_only_over_https() {
        let https = CookiePolicy::for_origin("https://app.example");
        assert_eq!(
            https.set("abc"),
            "__Host-tessera_session=abc; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let http = CookiePolicy::for_origin("http://127.0.0.1:8081");
        assert_eq!(
            http.set("abc"),
            "tessera_session=abc; Path=/; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            http.clear(),
            "tessera_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn session_id_is_found_among_other_cookies() {
        let policy = CookiePolicy::for_origin("http://127.0.0.1:8081");
        let request = headers(&[("cookie", "theme=dark; tessera_session=s1; x=y")]);
        assert_eq!(policy.session_id(&request), Some("s1"));
        assert_eq!(
            policy.session_id(&headers(&[("cookie", "xtessera_session=s1")])),
            None
        );
    }

    #[test]
    fn origin_must_match_exactly() {
        let origin = "http://127.0.0.1:8081";
        assert!(check_origin(&headers(&[("origin", "http://127.0.0.1:8081")]), origin).is_ok());
        assert!(check_origin(&headers(&[("origin", "http://127.0.0.1:9999")]), origin).is_err());
        assert!(check_origin(&headers(&[("origin", "null")]), origin).is_err());
        assert!(check_origin(&headers(&[("sec-fetch-site", "same-origin")]), origin).is_ok());
        assert!(check_origin(&headers(&[("sec-fetch-site", "cross-site")]), origin).is_err());
        assert!(check_origin(&HeaderMap::new(), origin).is_err());
    }

    #[test]
    fn csrf_token_must_match() {
        assert!(check_csrf(&headers(&[("x-csrf-token", "t0k")]), "t0k").is_ok());
        assert!(check_csrf(&headers(&[("x-csrf-token", "t0")]), "t0k").is_err());
        assert!(check_csrf(&HeaderMap::new(), "t0k").is_err());
    }
}
