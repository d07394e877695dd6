use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The claims of a Tessera access token: a JWT profiled by RFC 9068.
///
/// Claims a token carries beyond the registered ones (added through the token service's claims hook) land in
/// [`AccessTokenClaims::extra`].
///
/// ```
/// use tessera_core::AccessTokenClaims;
///
/// let claims: AccessTokenClaims = serde_json::from_str(r#"{
///     "iss": "https://auth.example", "sub": "alice", "aud": "api", "exp": 1900000000,
///     "iat": 1899999100, "jti": "j1", "client_id": "demo", "scope": "read write",
///     "roles": ["admin"], "tenant": "acme"
/// }"#)?;
/// assert!(claims.has_scope("write"));
/// assert!(claims.has_role("admin"));
/// assert!(claims.aud.contains("api"));
/// assert_eq!(claims.extra["tenant"], "acme");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer: the token service's identifier (a URL).
    pub iss: String,
    /// Subject: the user, or the client itself for client-credentials tokens.
    pub sub: String,
    /// Audience: the resource server(s) the token is meant for.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Not-before time, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token identifier, the key of the revocation denylist.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated (RFC 8693 §4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Roles of the subject (RFC 9068 §7.2.1.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Every other claim, verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl AccessTokenClaims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split_ascii_whitespace()
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|granted| granted == scope)
    }

    /// Whether the subject holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }
}

/// The `aud` claim: a single string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience, serialised as a string.
    One(String),
    /// Several audiences, serialised as an array.
    Many(Vec<String>),
}

impl Audience {
    /// Every audience value.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice = match self {
            Audience::One(one) => std::slice::from_ref(one),
            Audience::Many(many) => many.as_slice(),
        };
        slice.iter().map(String::as_str)
    }

    /// Whether `audience` is among the values.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|value| value == audience)
    }
}

impl From<&str> for Audience {
    fn from(audience: &str) -> Self {
        Audience::One(audience.to_owned())
    }
}

impl From<String> for Audience {
    fn from(audience: String) -> Self {
        Audience::One(audience)
    }
}

/// A JSON number of seconds since the Unix epoch (RFC 7519 §2: `exp`, `nbf`, `iat`), read as an integer or a
/// fraction, which is truncated toward the past. A string is not a `NumericDate`.
///
/// ```
/// use tessera_core::NumericDate;
///
/// let NumericDate(seconds) = serde_json::from_str("1700000000.9")?;
/// assert_eq!(seconds, 1_700_000_000);
/// assert!(serde_json::from_str::<NumericDate>("\"1700000000\"").is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericDate(pub i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumericDateVisitor;
        impl Visitor<'_> for NumericDateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds since the Unix epoch")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<NumericDate, E> {
                Ok(NumericDate(i64::try_from(value).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<NumericDate, E> {
                // `as` saturates; JSON cannot carry NaN or infinities.
                Ok(NumericDate(value.floor() as i64))
            }
        }
        deserializer.deserialize_any(NumericDateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://auth.example".into(),
            sub: "alice".into(),
            aud: Audience::Many(vec!["api".into(), "billing".into()]),
            exp: 2,
            iat: 1,
            nbf: None,
            jti: "j".into(),
            client_id: "demo".into(),
            scope: None,
            roles: Vec::new(),
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn empty_optional_claims_are_omitted() {
        let json = serde_json::to_value(sample()).unwrap();
        let object = json.as_object().unwrap();
        assert!(!object.contains_key("nbf"));
        assert!(!object.contains_key("scope"));
        assert!(!object.contains_key("roles"));
        assert_eq!(json["aud"], serde_json::json!(["api", "billing"]));
    }

    #[test]
    fn audience_accepts_string_and_array() {
        let one: Audience = serde_json::from_str(r#""api""#).unwrap();
        assert!(one.contains("api") && !one.contains("billing"));
        let many: Audience = serde_json::from_str(r#"["api","billing"]"#).unwrap();
        assert!(many.contains("billing"));
        assert!(serde_json::from_str::<Audience>("3").is_err());
    }

    #[test]
    fn scopes_split_on_whitespace() {
        let mut claims = sample();
        assert!(!claims.has_scope("read"));
        claims.scope = Some("read  write".into());
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["read", "write"]);
        assert!(!claims.has_scope("rea"));
    }
}
