//! Request parameters from a form or JSON body, with RFC 6749's rules: no repeats, empty means absent.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

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
            });
        pairs.map(|pairs| Params { pairs }).map_err(|error| {
            let detail = error.to_string();
            TokenError::InvalidRequest(if error.is_data() {
                detail
            } else {
                format!("the body is not a JSON object of string parameters: {detail}")
            })
        })
    }

    /// The value of `name`; `None` if absent or empty (RFC 6749 §3.1).
    ///
    /// # Errors
    /// `invalid_request` if the parameter is repeated.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&str>, TokenError> {
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
    pub(crate) fn require(&self, name: &str) -> Result<&str, TokenError> {
        self.get(name)?
            .ok_or_else(|| TokenError::InvalidRequest(format!("the parameter `{name}` is missing")))
    }
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
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            match map.next_value::<serde_json::Value>()? {
                serde_json::Value::String(value) => pairs.push((name, value)),
                serde_json::Value::Null => {}
                _ => {
                    return Err(de::Error::custom(format!(
                        "the parameter `{name}` must be a string"
                    )));
                }
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
    fn json_bodies_take_string_values_only() {
        let params = Params::from_json(br#"{"grant_type":"password","scope":null}"#).unwrap();
        assert_eq!(params.get("grant_type").unwrap(), Some("password"));
        assert_eq!(params.get("scope").unwrap(), None);
        assert!(
            description(Params::from_json(br#"{"expires":3}"#))
                .starts_with("the parameter `expires` must be a string")
        );
        assert!(description(Params::from_json(b"[1]")).contains("JSON object"));
        assert!(description(Params::from_json(b"{\"a\":")).contains("JSON object"));
        assert!(description(Params::from_json(b"{} x")).contains("JSON object"));
    }
}
