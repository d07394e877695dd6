//! Request parameters from a form or JSON body, with RFC 6749's rules: no repeats, empty means absent.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::{Deserializer, IntoDeserializer as _, MapAccess, Visitor};
use tessera_core::{GrantType, TokenTypeHint};

use crate::error::TokenError;

/// The parameters of one request. `Debug` lists names only: values include passwords and tokens.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Params {
    /// Parses `application/x-www-form-urlencoded`, strictly: bad percent-escapes and invalid UTF-8 are
    /// errors rather than silently replaced characters (a password must arrive exactly as typed).
    pub(crate) fn from_form(body: &[u8]) -> Result<Self, TokenError> {
        let pairs = body
            .split(|byte| *byte == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let mut parts = pair.splitn(2, |byte| *byte == b'=');
                let name = form_decode(parts.next().unwrap_or_default())?;
                let value = form_decode(parts.next().unwrap_or_default())?;
                Ok((name, value))
            })
            .collect::<Result<_, TokenError>>()?;
        Ok(Params { pairs })
    }

    /// Parses a JSON object whose values are strings (`null` counts as absent).
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, TokenError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let pairs = deserializer
            .deserialize_map(PairsVisitor)
            .and_then(|pairs| {
                deserializer.end()?;
                Ok(pairs)
            })
            // serde_json's messages quote the offending input, so only its position is passed on.
            .map_err(|error| {
                TokenError::InvalidRequest(format!(
                    "the body is not a JSON object of string parameters (line {}, column {})",
                    error.line(),
                    error.column()
                ))
            })?;
        let pairs = pairs.ok_or_else(|| {
            TokenError::InvalidRequest(
                "every parameter of a JSON body must be a string or null".into(),
            )
        })?;
        Ok(Params { pairs })
    }

    /// The value of `name`; `None` if absent or empty (RFC 6749 §3.1). Names are the service's own
    /// (`'static`), so an error naming one never echoes what the client sent.
    ///
    /// # Errors
    /// `invalid_request` if the parameter is repeated.
    pub(crate) fn get(&self, name: &'static str) -> Result<Option<&str>, TokenError> {
        let mut values = self
            .pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(TokenError::InvalidRequest(format!(
                "the parameter `{name}` is repeated"
            )));
        }
        Ok(first.filter(|value| !value.is_empty()))
    }

    /// The value of `name`, which must be present.
    ///
    /// # Errors
    /// `invalid_request` if the parameter is missing, empty or repeated.
    pub(crate) fn require(&self, name: &'static str) -> Result<&str, TokenError> {
        self.get(name)?
            .ok_or_else(|| TokenError::InvalidRequest(format!("the parameter `{name}` is missing")))
    }

    /// The `grant_type`, by its wire name in `tessera_core`.
    ///
    /// # Errors
    /// `invalid_request` if it is missing or repeated, `unsupported_grant_type` if it names another grant.
    pub(crate) fn grant_type(&self) -> Result<GrantType, TokenError> {
        let name = self.require("grant_type")?;
        wire_value(name).ok_or_else(|| {
            TokenError::UnsupportedGrantType(
                "the grant type is not supported; use password, refresh_token or client_credentials"
                    .into(),
            )
        })
    }

    /// The RFC 7009 `token_type_hint`; an unknown hint counts as none (RFC 7009 §2.1).
    ///
    /// # Errors
    /// `invalid_request` if it is repeated.
    pub(crate) fn token_type_hint(&self) -> Result<Option<TokenTypeHint>, TokenError> {
        Ok(self.get("token_type_hint")?.and_then(wire_value))
    }
}

/// `value` as one of the wire names of `T` (a unit-variant enum of `tessera_core`).
fn wire_value<'a, T: Deserialize<'a>>(value: &'a str) -> Option<T> {
    let deserializer: StrDeserializer<'a, ValueError> = value.into_deserializer();
    T::deserialize(deserializer).ok()
}

/// Decodes one form-urlencoded name or value: `+` is a space, `%XX` a byte; the result must be UTF-8.
pub(crate) fn form_decode(encoded: &[u8]) -> Result<String, TokenError> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest.get(..2).and_then(|hex| std::str::from_utf8(hex).ok());
                let decoded = hex
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        TokenError::InvalidRequest(
                            "the form body has a malformed percent-escape".into(),
                        )
                    })?;
                bytes.push(decoded);
                rest = &rest[2..];
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| {
        TokenError::InvalidRequest("the form body is not UTF-8 after percent-decoding".into())
    })
}

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    /// `None` if a value is neither a string nor `null`.
    type Value = Option<Vec<(String, String)>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Some(Vec::new());
        while let Some(name) = map.next_key::<String>()? {
            match map.next_value::<serde_json::Value>()? {
                serde_json::Value::String(value) => {
                    if let Some(pairs) = &mut pairs {
                        pairs.push((name, value));
                    }
                }
                serde_json::Value::Null => {}
                _ => pairs = None,
            }
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description(result: Result<Params, TokenError>) -> String {
        match result {
            Err(TokenError::InvalidRequest(description)) => description,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn form_bodies_decode_and_empty_values_are_absent() {
        let params = Params::from_form(b"grant_type=password&username=al%20ice&scope=").unwrap();
        assert_eq!(params.get("username").unwrap(), Some("al ice"));
        assert_eq!(params.get("scope").unwrap(), None);
        assert_eq!(params.get("missing").unwrap(), None);
        assert!(params.require("scope").is_err());
        assert!(description(Params::from_form(b"a=%FF")).contains("UTF-8"));
        assert!(description(Params::from_form(b"a=%4")).contains("percent-escape"));
        assert!(description(Params::from_form(b"a=%zz")).contains("percent-escape"));
        let params = Params::from_form(b"p=a%2Bb+c%26%3D&flag&&x=%C3%A9").unwrap();
        assert_eq!(params.get("p").unwrap(), Some("a+b c&="));
        assert_eq!(params.get("flag").unwrap(), None);
        assert_eq!(params.get("x").unwrap(), Some("\u{e9}"));
    }

    #[test]
    fn repeated_parameters_are_rejected() {
        let params = Params::from_form(b"grant_type=password&grant_type=refresh_token").unwrap();
        assert_eq!(
            params.get("grant_type").unwrap_err(),
            TokenError::InvalidRequest("the parameter `grant_type` is repeated".into())
        );
        let params = Params::from_json(br#"{"scope":"a","scope":"b"}"#).unwrap();
        assert!(params.get("scope").is_err());
    }

    #[test]
    fn grant_types_and_hints_are_read_by_their_wire_names() {
        let form = |body: &str| Params::from_form(body.as_bytes()).unwrap();
        assert_eq!(
            form("grant_type=refresh_token").grant_type(),
            Ok(GrantType::RefreshToken)
        );
        assert!(matches!(
            form("grant_type=authorization_code").grant_type(),
            Err(TokenError::UnsupportedGrantType(description)) if !description.contains("authorization_code")
        ));
        assert!(matches!(
            form("grant_type=").grant_type(),
            Err(TokenError::InvalidRequest(_))
        ));
        assert_eq!(
            form("token_type_hint=access_token").token_type_hint(),
            Ok(Some(TokenTypeHint::AccessToken))
        );
        assert_eq!(form("token_type_hint=id_token").token_type_hint(), Ok(None));
    }

    #[test]
    fn json_bodies_take_string_values_only() {
        let params = Params::from_json(br#"{"grant_type":"password","scope":null}"#).unwrap();
        assert_eq!(params.get("grant_type").unwrap(), Some("password"));
        assert_eq!(params.get("scope").unwrap(), None);
        assert_eq!(
            description(Params::from_json(br#"{"expi\"res":3}"#)),
            "every parameter of a JSON body must be a string or null",
            "the position, never the name the client chose"
        );
        assert!(description(Params::from_json(b"[1]")).contains("JSON object"));
        assert!(description(Params::from_json(b"{\"a\":")).contains("JSON object"));
        assert!(description(Params::from_json(b"{} x")).contains("JSON object"));
    }
}
