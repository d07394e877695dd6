use serde::{Deserialize, Deserializer, Serialize};

/// A successful token endpoint answer (RFC 6749 §5.1).
///
/// `refresh_token` is absent when the grant issues none (client credentials) or the server keeps the old
/// one; a client must then keep the refresh token it has.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token, a JWT when issued by Tessera.
    pub access_token: String,
    /// Always `Bearer` from Tessera; compared case-insensitively by clients (RFC 6749 §7.1).
    pub token_type: String,
    /// Lifetime of the access token in seconds from the moment the response was produced. Read from a JSON
    /// number or, as some providers send it, a string of digits; always written as a number.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "seconds"
    )]
    pub expires_in: Option<u64>,
    /// The refresh token, when one was issued or rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope, space-separated, when it differs from what was asked or always, at the server's
    /// choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A number of seconds as a JSON number or a string of ASCII digits; `null` is none.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    match Option::<Seconds>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Seconds::Number(seconds)) => Ok(Some(seconds)),
        Some(Seconds::Text(text))
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            text.parse().map(Some).map_err(serde::de::Error::custom)
        }
        Some(Seconds::Text(_)) => Err(serde::de::Error::custom(
            "expires_in must be a number of seconds",
        )),
    }
}

impl std::fmt::Debug for TokenResponse {
    // Tokens are credentials: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

/// The `grant_type` values Tessera's token endpoint understands (RFC 6749 §4.3, §4.4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Resource owner password credentials (RFC 6749 §4.3).
    Password,
    /// Refreshing an access token (RFC 6749 §6).
    RefreshToken,
    /// Client credentials (RFC 6749 §4.4).
    ClientCredentials,
}

impl GrantType {
    /// The wire name, e.g. `refresh_token`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// The optional `token_type_hint` of an RFC 7009 revocation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenTypeHint {
    /// The token is probably an access token.
    AccessToken,
    /// The token is probably a refresh token.
    RefreshToken,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_omitted_and_tokens_redacted() {
        let response = TokenResponse {
            access_token: "secret-access".into(),
            token_type: "Bearer".into(),
            expires_in: Some(900),
            refresh_token: Some("secret-refresh".into()),
            scope: None,
        };
        let json = serde_json::to_string(&response).unwrap();
        assert_eq!(
            json,
            r#"{"access_token":"secret-access","token_type":"Bearer","expires_in":900,"refresh_token":"secret-refresh"}"#
        );
        let debug = format!("{response:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn expires_in_may_come_as_a_numeric_string() {
        for body in [
            r#"{"access_token":"a","token_type":"Bearer","expires_in":"3600"}"#,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":3600}"#,
        ] {
            let response: TokenResponse = serde_json::from_str(body).unwrap();
            assert_eq!(response.expires_in, Some(3600), "{body}");
        }
        let none: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","token_type":"Bearer","expires_in":null}"#)
                .unwrap();
        assert_eq!(none.expires_in, None);
        for bad in ["\"soon\"", "\"-5\"", "-5", "1.5", "\"\"", "\" 5\""] {
            let body =
                format!(r#"{{"access_token":"a","token_type":"Bearer","expires_in":{bad}}}"#);
            assert!(
                serde_json::from_str::<TokenResponse>(&body).is_err(),
                "{bad}"
            );
        }
        let written = serde_json::to_string(
            &serde_json::from_str::<TokenResponse>(
                r#"{"access_token":"a","token_type":"Bearer","expires_in":"60"}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert!(
            written.contains(r#""expires_in":60"#),
            "written as a number: {written}"
        );
    }

    #[test]
    fn grant_type_round_trips() {
        for grant in [
            GrantType::Password,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ] {
            let json = serde_json::to_string(&grant).unwrap();
            assert_eq!(json, format!("\"{}\"", grant.as_str()));
            assert_eq!(serde_json::from_str::<GrantType>(&json).unwrap(), grant);
        }
    }
}
