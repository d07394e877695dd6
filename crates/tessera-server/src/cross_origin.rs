//! Cross-site request forgery protection for cookie-borne tokens.
//!
//! A browser attaches the token cookie to every request to the API, including a form another site posts
//! or a `fetch` another site's script makes. A bearer token in a header is safe from that (the other site
//! cannot read it to send it); a cookie is not. So a request whose token came from the cookie and whose
//! method can change state (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`) must show that it comes from
//! the API's own origin or a trusted one, through the headers a browser sets and a page cannot forge:
//!
//! 1. `Sec-Fetch-Site: same-origin` (or `none`: the user typed or bookmarked it) passes.
//! 2. Otherwise an `Origin` passes when it is trusted
//!    ([`JwtAuthBuilder::cookie_trusted_origin`](crate::JwtAuthBuilder::cookie_trusted_origin)) or, for
//!    browsers that send no `Sec-Fetch-Site`, when its host and port are the request's `Host`.
//! 3. Anything else is refused, including a request with neither header, `Origin: null`, and either header
//!    repeated: 403 `invalid_request`, without a challenge, since the credentials are not at fault.

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, HeaderName, Method};

use crate::AuthRejection;

const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// The check, as configured on a layer with a token cookie.
#[derive(Debug, Clone, Default)]
pub(crate) struct CrossOriginCheck {
    /// Off only when the application opted out explicitly.
    pub(crate) enabled: bool,
    /// Normalised `scheme://host[:port]`, lower case, without a default port.
    pub(crate) trusted: Box<[Box<str>]>,
}

impl CrossOriginCheck {
    /// Whether a request with `method` and `headers`, whose token came from the cookie, may go on.
    pub(crate) fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), AuthRejection> {
        if !self.enabled || is_safe(method) {
            return Ok(());
        }
        let site = single(headers, &SEC_FETCH_SITE)?;
        if site.is_some_and(|site| site == b"same-origin" || site == b"none") {
            return Ok(());
        }
        let Some(origin) = single(headers, &ORIGIN)? else {
            return Err(AuthRejection::CrossOriginRequest);
        };
        let trusted = self
            .trusted
            .iter()
            .any(|trusted| trusted.as_bytes().eq_ignore_ascii_case(origin));
        // Without `Sec-Fetch-Site` (older browsers), the `Origin` naming the host the request was sent to
        // is a same-origin request. With it, the browser already said the request is not same-origin.
        let same_host = site.is_none()
            && authority(origin).is_some_and(|authority| {
                single(headers, &HOST)
                    .ok()
                    .flatten()
                    .is_some_and(|host| host.eq_ignore_ascii_case(authority))
            });
        if trusted || same_host {
            Ok(())
        } else {
            Err(AuthRejection::CrossOriginRequest)
        }
    }
}

/// The methods that cannot change state (RFC 9110 §9.2.1), and so cannot be forged into doing harm.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The one value of `name`; a repeated header is refused, since the two values could disagree.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h [u8]>, AuthRejection> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(AuthRejection::CrossOriginRequest);
    }
    Ok(first.map(http::HeaderValue::as_bytes))
}

/// The `host[:port]` of a serialised origin (`scheme://host[:port]`); `None` for `null` and the like.
fn authority(origin: &[u8]) -> Option<&[u8]> {
    let position = origin.windows(3).position(|window| window == b"://")?;
    let authority = &origin[position + 3..];
    (!authority.is_empty() && !authority.contains(&b'/')).then_some(authority)
}

/// `origin` as browsers serialise it (RFC 6454 §6.2): lower-case `scheme://host`, the port only when it is
/// not the scheme's default; `None` when it is not an `http` or `https` origin without a path.
pub(crate) fn normalise_origin(origin: &str) -> Option<Box<str>> {
    let origin = origin.strip_suffix('/').unwrap_or(origin);
    let (scheme, authority) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let valid = !authority.is_empty()
        && authority
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-.:[]".contains(&byte));
    if !valid {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}").into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_like_browsers_send_them() {
        assert_eq!(
            normalise_origin("HTTPS://App.Example:443/").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            normalise_origin("http://localhost:8080").as_deref(),
            Some("http://localhost:8080")
        );
        for bad in [
            "app.example",
            "https://",
            "https://a/b",
            "ftp://a",
            "https://a b",
        ] {
            assert_eq!(normalise_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn authority_of_an_origin() {
        assert_eq!(
            authority(b"https://api.example:8443"),
            Some(&b"api.example:8443"[..])
        );
        assert_eq!(authority(b"null"), None);
        assert_eq!(authority(b"https://"), None);
    }
}
