//! The `WWW-Authenticate` grammar (RFC 9110 §11.6.1): written by the resource server, read by the client.
//!
//! ```text
//! WWW-Authenticate = #challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! ```
//! use tessera_core::challenge::Challenge;
//!
//! let written = Challenge::new("Bearer")
//!     .param("error", "invalid_token")
//!     .param("error_description", "The access token expired")
//!     .to_string();
//! assert_eq!(written, r#"Bearer error="invalid_token", error_description="The access token expired""#);
//!
//! let read = Challenge::parse_list(r#"Basic realm="x", Bearer error="invalid_token", scope="a b""#);
//! assert_eq!(read.len(), 2);
//! assert!(read[1].is_scheme("bearer"));
//! assert_eq!(read[1].get("error"), Some("invalid_token"));
//! assert_eq!(read[1].get("SCOPE"), Some("a b"));
//! ```

use std::fmt;

/// One challenge: an authentication scheme and its parameters (or a token68).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
    token68: Option<String>,
}

impl Challenge {
    /// A challenge of `scheme` with no parameters yet.
    pub fn new(scheme: impl Into<String>) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: Vec::new(),
            token68: None,
        }
    }

    /// Adds the parameter `name="value"`. When written, `value` is a quoted-string: `"` and `\` are
    /// escaped, and characters a header cannot carry (controls, non-ASCII) are dropped.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Challenge {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The scheme, as written.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Whether the scheme is `scheme` (schemes are case-insensitive).
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of the parameter `name` (names are case-insensitive), unquoted; the first one if repeated.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The parameters in order, unquoted.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The token68 form's credentials (`Negotiate abc==`), when the challenge has no parameters.
    pub fn token68(&self) -> Option<&str> {
        self.token68.as_deref()
    }

    /// Parses one `WWW-Authenticate` field value into its challenges.
    ///
    /// Lenient where senders are sloppy (extra commas, spaces around `=`, unterminated quoted strings) and
    /// never fails: what cannot be read ends the list.
    pub fn parse_list(value: &str) -> Vec<Challenge> {
        Parser { rest: value }.challenges()
    }

    /// Parses every field value in `values` (a response may carry the header several times).
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
        values.into_iter().flat_map(Challenge::parse_list).collect()
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.scheme)?;
        if let Some(token68) = &self.token68 {
            return write!(f, " {token68}");
        }
        for (index, (name, value)) in self.params.iter().enumerate() {
            f.write_str(if index == 0 { " " } else { ", " })?;
            write_quoted_param(f, name, value)?;
        }
        Ok(())
    }
}

/// Writes `name="value"` as an RFC 9110 quoted-string, escaping `"` and `\` and dropping what a header
/// cannot carry.
pub fn write_quoted_param(out: &mut impl fmt::Write, name: &str, value: &str) -> fmt::Result {
    out.write_str(name)?;
    out.write_str("=\"")?;
    for character in value.chars() {
        match character {
            '"' | '\\' => {
                out.write_char('\\')?;
                out.write_char(character)?;
            }
            ' '..='~' | '\t' => out.write_char(character)?,
            _ => {}
        }
    }
    out.write_char('"')
}

/// RFC 9110 `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// RFC 9110 `token68` characters, before the trailing `=` padding.
fn is_token68_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte)
}

struct Parser<'a> {
    rest: &'a str,
}

impl<'a> Parser<'a> {
    fn challenges(mut self) -> Vec<Challenge> {
        let mut out: Vec<Challenge> = Vec::new();
        loop {
            self.skip_separators();
            if self.rest.is_empty() {
                return out;
            }
            let Some(word) = self.take_while(is_tchar) else {
                return out;
            };
            let before_spaces = self.rest;
            self.skip_spaces();
            match (self.rest.as_bytes().first(), out.last_mut()) {
                // `name = value`: a parameter of the challenge being read.
                (Some(b'='), Some(current)) if current.token68.is_none() => {
                    self.rest = &self.rest[1..];
                    self.skip_spaces();
                    let value = self.value();
                    current.params.push((word.to_owned(), value));
                }
                (Some(b'='), _) => {
                    // A parameter with no scheme before it, or after a token68: skip it.
                    self.rest = &self.rest[1..];
                    self.skip_spaces();
                    self.value();
                }
                _ => {
                    // A new scheme; `before_spaces` keeps what follows it.
                    self.rest = before_spaces;
                    let mut challenge = Challenge::new(word);
                    self.skip_spaces();
                    challenge.token68 = self.token68();
                    out.push(challenge);
                }
            }
        }
    }

    /// A token68 right after a scheme: characters then `=` padding, then the end or a comma.
    fn token68(&mut self) -> Option<String> {
        let bytes = self.rest.as_bytes();
        let body = bytes
            .iter()
            .take_while(|&&byte| is_token68_char(byte))
            .count();
        if body == 0 {
            return None;
        }
        let padding = bytes[body..]
            .iter()
            .take_while(|&&byte| byte == b'=')
            .count();
        let end = body + padding;
        let after = self.rest[end..].trim_start_matches([' ', '\t']);
        // `name=value` is a parameter, not a token68: after its `=` comes a value, not a separator.
        if !(after.is_empty() || after.starts_with(',')) {
            return None;
        }
        let token = self.rest[..end].to_owned();
        self.rest = &self.rest[end..];
        Some(token)
    }

    fn value(&mut self) -> String {
        if let Some(quoted) = self.rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            while let Some((index, character)) = chars.next() {
                match character {
                    '"' => {
                        self.rest = &quoted[index + 1..];
                        return value;
                    }
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    other => value.push(other),
                }
            }
            self.rest = "";
            value
        } else {
            self.take_while(is_tchar).unwrap_or_default().to_owned()
        }
    }

    fn take_while(&mut self, accept: fn(u8) -> bool) -> Option<&'a str> {
        let len = self.rest.bytes().take_while(|&byte| accept(byte)).count();
        if len == 0 {
            return None;
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(taken)
    }

    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn skip_separators(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', ',']);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_values_are_escaped_and_cleaned() {
        let written = Challenge::new("Bearer")
            .param("scope", "a\"b\\c\nd")
            .to_string();
        assert_eq!(written, r#"Bearer scope="a\"b\\cd""#);
        assert_eq!(Challenge::new("Bearer").to_string(), "Bearer");
    }

    #[test]
    fn what_is_written_reads_back() {
        let challenge = Challenge::new("DPoP")
            .param("error", "invalid_dpop_proof")
            .param("error_description", "a \"quoted\" \\ value")
            .param("algs", "ES256 EdDSA");
        let read = Challenge::parse_list(&challenge.to_string());
        assert_eq!(read, [challenge]);
    }

    #[test]
    fn several_schemes_keep_their_own_parameters() {
        let read = Challenge::parse_list(
            r#"Basic realm="x", error="invalid_token", Bearer realm="api",error=invalid_token , DPoP algs="ES256""#,
        );
        let schemes: Vec<_> = read.iter().map(Challenge::scheme).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "DPoP"]);
        assert_eq!(read[0].get("error"), Some("invalid_token"));
        assert_eq!(read[1].get("error"), Some("invalid_token"));
        assert_eq!(read[1].get("realm"), Some("api"));
        assert_eq!(read[2].get("algs"), Some("ES256"));
    }

    #[test]
    fn token68_and_bare_schemes() {
        let read = Challenge::parse_list("Negotiate abc+/==, Bearer, NTLM");
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].token68(), Some("abc+/=="));
        assert!(read[1].is_scheme("BEARER") && read[1].params().next().is_none());
        assert_eq!(read[2].token68(), None);
    }

    #[test]
    fn sloppy_input_never_panics() {
        for input in [
            "",
            ",,,",
            "=",
            "Bearer error=\"unterminated",
            "Bearer error=",
            "Bearer =x",
            "\"quoted\" Bearer",
            "Bearer error = \"spaced\"",
            "Bearer\terror=\"tab\"",
            "Bearer a=b c=d",
            "Bearér error=x",
        ] {
            let _ = Challenge::parse_list(input);
        }
        let spaced = Challenge::parse_list("Bearer error = \"spaced\"");
        assert_eq!(spaced[0].get("error"), Some("spaced"));
    }
}
