//! Where a request may carry its bearer token, and the checks made before anything is decoded.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, Uri};

use crate::AuthRejection;
use crate::rejection::Scheme;

/// The default maximum token length: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The places a token is looked for, and its maximum length.
#[derive(Debug, Clone)]
pub(crate) struct TokenSources {
    pub(crate) cookie: Option<Box<str>>,
    pub(crate) query: bool,
    /// `Authorization: DPoP` carries a token too (otherwise it is a scheme this layer ignores).
    pub(crate) dpop: bool,
    pub(crate) max_len: usize,
}

/// A token as found in a request, before its characters are checked: the verified-token cache is consulted
/// first, and a hit needs no check (it is byte for byte a token that passed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate<'r> {
    bytes: &'r [u8],
    place: Place,
}

/// Where a [`Candidate`] came from: it picks the message of a failed charset check, and a cookie needs the
/// cross-origin check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Header,
    /// `Authorization: DPoP`: comes with a proof.
    DpopHeader,
    Cookie,
    Query,
    /// Handed to [`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify) as text: no transport charset applies.
    Direct,
}

impl<'r> Candidate<'r> {
    /// A token that did not come from a request.
    pub(crate) fn direct(token: &'r str) -> Candidate<'r> {
        Candidate {
            bytes: token.as_bytes(),
            place: Place::Direct,
        }
    }

    pub(crate) fn bytes(&self) -> &'r [u8] {
        self.bytes
    }

    /// Whether the browser attached it on its own: the token cookie.
    pub(crate) fn is_ambient(&self) -> bool {
        self.place == Place::Cookie
    }

    /// How it was presented.
    pub(crate) fn scheme(&self) -> Scheme {
        if self.place == Place::DpopHeader {
            Scheme::Dpop
        } else {
            Scheme::Bearer
        }
    }

    /// The token as text, once it passed the RFC 6750 charset check of where it came from.
    pub(crate) fn checked(&self) -> Result<&'r str, AuthRejection> {
        let allowed = self.place == Place::Direct || is_b64token(self.bytes);
        // Checked bytes are ASCII, and `Direct` ones came from a `&str`: `from_utf8` cannot fail, but the
        // bytes are not trusted to say so.
        let text = if allowed {
            std::str::from_utf8(self.bytes).ok()
        } else {
            None
        };
        text.ok_or_else(|| AuthRejection::MalformedAuthorization(self.problem()))
    }

    fn problem(&self) -> &'static str {
        match self.place {
            Place::Header | Place::DpopHeader
                if !self.bytes.iter().all(|&byte| is_visible(byte)) =>
            {
                "the header value is not visible ASCII"
            }
            Place::Header | Place::DpopHeader => "the token has characters RFC 6750 does not allow",
            Place::Cookie => "the token cookie has characters a JWT cannot contain",
            Place::Query => "the access_token parameter is not a bare JWT",
            Place::Direct => "the token is not UTF-8",
        }
    }
}

/// Whether the `Authorization` value `raw` is of `scheme` (lower case): the name in any case, then a space
/// or the end.
fn has_scheme(raw: &[u8], scheme: &[u8]) -> bool {
    raw.get(..scheme.len())
        .is_some_and(|name| name.eq_ignore_ascii_case(scheme))
        && raw.get(scheme.len()).is_none_or(|&byte| byte == b' ')
}

/// What `HeaderValue::to_str` accepts: tab and visible ASCII.
fn is_visible(byte: u8) -> bool {
    byte == b'\t' || (b' '..=b'~').contains(&byte)
}

impl TokenSources {
    /// The token of the request, borrowed from its headers or URI: `Ok(None)` when there is none.
    ///
    /// At most one token may be present across all places (RFC 6750 §2: "MUST NOT use more than one
    /// method"), and at most one `Authorization` header. The length is checked here; the characters by
    /// [`Candidate::checked`].
    pub(crate) fn extract<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<Candidate<'r>>, AuthRejection> {
        let mut found = self.in_header(headers)?;
        if let Some(name) = self.cookie.as_deref() {
            found = one_of(found, self.in_cookie(headers, name)?)?;
        }
        if self.query {
            found = one_of(found, self.in_query(uri)?)?;
        }
        Ok(found)
    }

    fn in_header<'r>(
        &self,
        headers: &'r HeaderMap,
    ) -> Result<Option<Candidate<'r>>, AuthRejection> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthRejection::MultipleTokens);
        }
        // The scheme is read from the raw bytes: another scheme (Basic, or DPoP when this layer does not take
        // it) carries no token for us, and RFC 6750 §3 answers as if there were none.
        let raw = value.as_bytes();
        let (scheme, place) = if has_scheme(raw, b"bearer") {
            ("Bearer", Place::Header)
        } else if self.dpop && has_scheme(raw, b"dpop") {
            ("DPoP", Place::DpopHeader)
        } else {
            return Ok(None);
        };
        // The length is checked before anything else looks at the token.
        if raw.len() > self.max_len + scheme.len() + 1 {
            return Err(AuthRejection::TokenTooLong {
                limit: self.max_len,
            });
        }
        let rest = &raw[scheme.len()..];
        let token = &rest[rest.iter().take_while(|&&byte| byte == b' ').count()..];
        if token.is_empty() {
            return Err(AuthRejection::MalformedAuthorization(
                if place == Place::Header {
                    "the Bearer scheme has no token"
                } else {
                    "the DPoP scheme has no token"
                },
            ));
        }
        self.bounded(token, place).map(Some)
    }

    fn in_cookie<'r>(
        &self,
        headers: &'r HeaderMap,
        name: &str,
    ) -> Result<Option<Candidate<'r>>, AuthRejection> {
        let mut found = None;
        for header in headers.get_all(COOKIE) {
            // Cookie headers that are not ASCII cannot hold our cookie; other cookies are not our business.
            let Ok(header) = header.to_str() else {
                continue;
            };
            for pair in header.split(';') {
                let Some((key, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if key != name {
                    continue;
                }
                let value = value
                    .strip_prefix('"')
                    .and_then(|value| value.strip_suffix('"'))
                    .unwrap_or(value);
                if value.is_empty() {
                    continue;
                }
                if found.is_some() {
                    return Err(AuthRejection::MultipleTokens);
                }
                found = Some(value);
            }
        }
        let Some(token) = found else { return Ok(None) };
        self.bounded(token.as_bytes(), Place::Cookie).map(Some)
    }

    fn in_query<'r>(&self, uri: &'r Uri) -> Result<Option<Candidate<'r>>, AuthRejection> {
        let Some(query) = uri.query() else {
            return Ok(None);
        };
        let mut found = None;
        for pair in query.split('&') {
            let Some(value) = pair.strip_prefix("access_token=") else {
                continue;
            };
            if found.is_some() {
                return Err(AuthRejection::MultipleTokens);
            }
            found = Some(value);
        }
        // A JWT needs no percent-encoding; anything encoded fails the charset check as not one of ours.
        let Some(token) = found else { return Ok(None) };
        self.bounded(token.as_bytes(), Place::Query).map(Some)
    }

    fn bounded<'r>(&self, token: &'r [u8], place: Place) -> Result<Candidate<'r>, AuthRejection> {
        if token.len() > self.max_len {
            return Err(AuthRejection::TokenTooLong {
                limit: self.max_len,
            });
        }
        Ok(Candidate {
            bytes: token,
            place,
        })
    }
}

fn one_of<'r>(
    first: Option<Candidate<'r>>,
    second: Option<Candidate<'r>>,
) -> Result<Option<Candidate<'r>>, AuthRejection> {
    match (first, second) {
        (Some(_), Some(_)) => Err(AuthRejection::MultipleTokens),
        (first, second) => Ok(first.or(second)),
    }
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&byte| byte == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty() && body.iter().all(|&byte| B64TOKEN_BYTE[usize::from(byte)])
}

/// The bytes a b64token allows before its `=` padding, as a table: every request checks every byte of its
/// token, and one load per byte is cheaper than the chain of range and character comparisons.
const B64TOKEN_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte: u8 = 0;
    loop {
        table[byte as usize] = is_b64token_byte(byte);
        if byte == u8::MAX {
            break table;
        }
        byte += 1;
    }
};

const fn is_b64token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn b64token_table_matches_rfc_6750() {
        for byte in 0..=u8::MAX {
            let allowed = byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte);
            assert_eq!(
                B64TOKEN_BYTE[usize::from(byte)],
                allowed,
                "byte {byte:#04x}"
            );
        }
        assert!(is_b64token(b"abc.DEF-_~+/09=="));
        assert!(
            !is_b64token(b"==")
                && !is_b64token(b"")
                && !is_b64token(b"a=b")
                && !is_b64token(b"a b")
        );
    }

    fn sources() -> TokenSources {
        TokenSources {
            cookie: Some("at".into()),
            query: true,
            dpop: true,
            max_len: 64,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn b64token_charset() {
        assert!(is_b64token(b"a.b-c_d~e+f/g=="));
        assert!(!is_b64token(b"=="));
        assert!(!is_b64token(b"a b"));
        assert!(!is_b64token(b"a=b"));
        assert!(!is_b64token(b"a%2Eb"));
    }

    #[test]
    fn scheme_is_case_insensitive_and_other_schemes_are_ignored() {
        let uri = Uri::from_static("/");
        let map = headers(&[("authorization", "bEaReR  abc.def")]);
        let found = sources().extract(&map, &uri).unwrap();
        assert_eq!(found.map(|token| token.bytes()), Some(&b"abc.def"[..]));
        let map = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        let found = sources().extract(&map, &uri).unwrap();
        assert_eq!(found, None);
        let map = headers(&[("authorization", "dpop abc.def")]);
        let found = sources().extract(&map, &uri).unwrap().unwrap();
        assert_eq!(
            (found.bytes(), found.scheme()),
            (&b"abc.def"[..], Scheme::Dpop)
        );
        let bearer_only = TokenSources {
            dpop: false,
            ..sources()
        };
        assert_eq!(bearer_only.extract(&map, &uri).unwrap(), None);
        let map = headers(&[("authorization", &format!("Basic {}", "a".repeat(200)))]);
        assert_eq!(
            sources().extract(&map, &uri).unwrap(),
            None,
            "a long Basic header is not a long token"
        );
        let map = headers(&[("authorization", "Bearerabc")]);
        assert_eq!(sources().extract(&map, &uri).unwrap(), None);
        let error = sources()
            .extract(&headers(&[("authorization", "Bearer")]), &uri)
            .unwrap_err();
        assert!(matches!(error, AuthRejection::MalformedAuthorization(_)));
    }

    #[test]
    fn one_token_per_request() {
        let uri = Uri::from_static("/?access_token=abc");
        let error = sources()
            .extract(&headers(&[("authorization", "Bearer abc")]), &uri)
            .unwrap_err();
        assert_eq!(error, AuthRejection::MultipleTokens);
        let plain = Uri::from_static("/");
        let error = sources()
            .extract(
                &headers(&[("cookie", "x=1; at=abc"), ("cookie", "at=def")]),
                &plain,
            )
            .unwrap_err();
        assert_eq!(error, AuthRejection::MultipleTokens);
        let map = headers(&[("cookie", "x=1; at=abc")]);
        let found = sources().extract(&map, &plain).unwrap();
        assert_eq!(found.map(|token| token.bytes()), Some(&b"abc"[..]));
    }

    #[test]
    fn length_is_checked_first() {
        let long = format!("Bearer {}", "a".repeat(65));
        let error = sources()
            .extract(
                &headers(&[("authorization", &long)]),
                &Uri::from_static("/"),
            )
            .unwrap_err();
        assert_eq!(error, AuthRejection::TokenTooLong { limit: 64 });
    }

    fn checked(pairs: &[(&'static str, &str)], uri: &'static str) -> Result<String, AuthRejection> {
        let map = headers(pairs);
        let uri = Uri::from_static(uri);
        let found = sources().extract(&map, &uri)?.expect("a token");
        found.checked().map(str::to_owned)
    }

    #[test]
    fn the_charset_is_checked_with_a_message_naming_the_source() {
        assert_eq!(
            checked(&[("authorization", "Bearer a.b=")], "/").unwrap(),
            "a.b="
        );
        let problem = |pairs: &[(&'static str, &str)], uri| match checked(pairs, uri) {
            Err(AuthRejection::MalformedAuthorization(problem)) => problem,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            problem(&[("authorization", "Bearer a=b")], "/"),
            "the token has characters RFC 6750 does not allow"
        );
        let mut map = HeaderMap::new();
        map.insert(
            "authorization",
            HeaderValue::from_bytes(b"Bearer a\xffb").unwrap(),
        );
        let root = Uri::from_static("/");
        let found = sources().extract(&map, &root).unwrap().unwrap();
        assert_eq!(
            found.checked(),
            Err(AuthRejection::MalformedAuthorization(
                "the header value is not visible ASCII"
            ))
        );
        assert_eq!(
            problem(&[("cookie", "at=a,b")], "/"),
            "the token cookie has characters a JWT cannot contain"
        );
        assert_eq!(
            problem(&[], "/?access_token=a%2Eb"),
            "the access_token parameter is not a bare JWT"
        );
        assert_eq!(Candidate::direct("a b").checked().unwrap(), "a b");
    }
}
