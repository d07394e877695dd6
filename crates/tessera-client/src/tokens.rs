//! The token pair a client holds, and how its expiry is learnt.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tessera_core::{BEARER, TokenResponse};

use crate::dpop::{DPOP_SCHEME, DpopKey, PersistedDpopKey};

/// A refresh token: an opaque credential. Its `Debug` output is redacted; read it with
/// [`RefreshToken::as_str`] only to send it to the token endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// Wraps a refresh token.
    pub fn new(token: impl Into<String>) -> Self {
        RefreshToken(token.into())
    }

    /// The token itself, for the token request.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// The tokens a client holds: an access token, usually a refresh token, when the access token expires, and
/// with DPoP the key the tokens are bound to.
///
/// Built from a login answer with [`TokenSet::from_response`], or by hand. This is what a
/// [`TokenStore`](crate::TokenStore) persists and what the `on_tokens_changed` hook receives. `Debug` never
/// prints a token.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tessera_client::TokenSet;
/// use tessera_core::TokenResponse;
///
/// let login: TokenResponse = serde_json::from_str(
///     r#"{"access_token":"a1","token_type":"Bearer","expires_in":900,"refresh_token":"r1"}"#,
/// )?;
/// let received = SystemTime::now();
/// let tokens = TokenSet::from_response(login, received);
/// assert_eq!(tokens.expires_at(), Some(received + Duration::from_secs(900)));
/// assert_eq!(tokens.refresh_token().map(|token| token.as_str()), Some("r1"));
/// assert!(!format!("{tokens:?}").contains("a1"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    access_token: String,
    /// `Bearer` or `DPoP` (RFC 9449 §5), as the token endpoint said.
    token_type: String,
    refresh_token: Option<RefreshToken>,
    expires_at: Option<SystemTime>,
    scope: Option<String>,
    dpop_key: Option<DpopKey>,
}

impl TokenSet {
    /// A `Bearer` access token with no refresh token and no known expiry.
    pub fn new(access_token: impl Into<String>) -> Self {
        TokenSet {
            access_token: access_token.into(),
            token_type: BEARER.to_owned(),
            refresh_token: None,
            expires_at: None,
            scope: None,
            dpop_key: None,
        }
    }

    /// The tokens of a token-endpoint answer received at `received_at`.
    ///
    /// The expiry is `received_at + expires_in`; when the answer has no `expires_in`, it is the `exp` claim
    /// of the access token if that is a JWT (read without verifying the signature: the client only needs a
    /// hint of when to refresh, and the resource server does the verifying). Otherwise it is unknown and
    /// the client refreshes only when a resource server says the token expired.
    pub fn from_response(response: TokenResponse, received_at: SystemTime) -> Self {
        let expires_at = match response.expires_in {
            Some(seconds) => received_at.checked_add(Duration::from_secs(seconds)),
            None => jwt_expiry(&response.access_token),
        };
        TokenSet {
            access_token: response.access_token,
            token_type: response.token_type,
            refresh_token: response.refresh_token.map(RefreshToken),
            expires_at,
            scope: response.scope,
            dpop_key: None,
        }
    }

    /// Sets the token type: `DPoP` for a DPoP-bound access token (RFC 9449 §5), `Bearer` otherwise.
    #[must_use]
    pub fn with_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = token_type.into();
        self
    }

    /// Sets the DPoP key the tokens are bound to: the key that signed the proof of the token request that
    /// obtained them.
    #[must_use]
    pub fn with_dpop_key(mut self, key: DpopKey) -> Self {
        self.dpop_key = Some(key);
        self
    }

    /// Sets the refresh token.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(RefreshToken::new(refresh_token));
        self
    }

    /// Sets when the access token expires.
    #[must_use]
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Sets the granted scope.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The access token, as sent in `Authorization: Bearer`.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token, if one was issued.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// When the access token expires, if known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The granted scope, space-separated, if the token endpoint said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The token type, `Bearer` unless the token endpoint said otherwise.
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// Whether the access token is DPoP-bound (token type `DPoP`): it is sent as `Authorization: DPoP`
    /// with a proof from [`TokenSet::dpop_key`].
    pub fn is_dpop_bound(&self) -> bool {
        self.token_type.eq_ignore_ascii_case(DPOP_SCHEME)
    }

    /// The DPoP key these tokens are bound to, if they were obtained with DPoP proofs.
    pub fn dpop_key(&self) -> Option<&DpopKey> {
        self.dpop_key.as_ref()
    }

    /// Whether `other` holds the same access and refresh token (whatever else was rounded on the way
    /// through a store).
    pub(crate) fn same_tokens(&self, other: &TokenSet) -> bool {
        self.access_token == other.access_token && self.refresh_token == other.refresh_token
    }

    /// Keeps `previous` as the refresh token when this answer carried none (RFC 6749 §6: the server may keep
    /// the old one in service).
    pub(crate) fn keep_refresh_token_from(&mut self, previous: Option<&RefreshToken>) {
        if self.refresh_token.is_none() {
            self.refresh_token = previous.cloned();
        }
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("dpop_key", &self.dpop_key)
            .finish()
    }
}

/// The persisted form: expiry as Unix seconds, because an `Instant` means nothing to another process.
/// `token_type` and `dpop_key` came later: a file without them holds `Bearer` tokens, and a `Bearer` pair
/// without a key is written as before.
#[derive(Serialize, Deserialize)]
struct PersistedTokenSet {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<RefreshToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<PersistedDpopKey>,
}

impl Serialize for TokenSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let dpop_key = self
            .dpop_key
            .as_ref()
            .map(DpopKey::to_persisted)
            .transpose()
            .map_err(serde::ser::Error::custom)?;
        PersistedTokenSet {
            access_token: self.access_token.clone(),
            token_type: (self.token_type != BEARER).then(|| self.token_type.clone()),
            refresh_token: self.refresh_token.clone(),
            expires_at: self.expires_at.map(|at| {
                at.duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_secs())
            }),
            scope: self.scope.clone(),
            dpop_key,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TokenSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let persisted = PersistedTokenSet::deserialize(deserializer)?;
        let dpop_key = persisted
            .dpop_key
            .as_ref()
            .map(DpopKey::from_persisted)
            .transpose()
            .map_err(serde::de::Error::custom)?;
        Ok(TokenSet {
            access_token: persisted.access_token,
            token_type: persisted.token_type.unwrap_or_else(|| BEARER.to_owned()),
            refresh_token: persisted.refresh_token,
            expires_at: persisted
                .expires_at
                .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs))),
            scope: persisted.scope,
            dpop_key,
        })
    }
}

/// The `exp` claim of a JWT, read without verification; `None` for anything that is not a JWT with a
/// numeric `exp`.
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Expiry {
        exp: u64,
    }
    let claims: Expiry = tessera_core::jose::Jws::parse(token)
        .ok()?
        .unverified_claims()
        .ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(claims.exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn response(access_token: &str, expires_in: Option<u64>) -> TokenResponse {
        TokenResponse {
            access_token: access_token.into(),
            token_type: "Bearer".into(),
            expires_in,
            refresh_token: None,
            scope: None,
        }
    }

    fn unsigned_jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn expires_in_wins_over_the_jwt_exp() {
        let received = UNIX_EPOCH + Duration::from_secs(1_000);
        let tokens = TokenSet::from_response(
            response(&unsigned_jwt(r#"{"exp":5000}"#), Some(60)),
            received,
        );
        assert_eq!(
            tokens.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(1_060))
        );
    }

    #[test]
    fn jwt_exp_is_the_fallback() {
        let received = UNIX_EPOCH;
        let tokens = TokenSet::from_response(
            response(&unsigned_jwt(r#"{"exp":5000,"sub":"a"}"#), None),
            received,
        );
        assert_eq!(
            tokens.expires_at(),
            Some(UNIX_EPOCH + Duration::from_secs(5_000))
        );
        for opaque in ["opaque", "a.b.c", &unsigned_jwt(r#"{"exp":"soon"}"#)] {
            assert_eq!(
                TokenSet::from_response(response(opaque, None), received).expires_at(),
                None,
                "{opaque}"
            );
        }
    }

    #[test]
    fn a_missing_refresh_token_keeps_the_old_one() {
        let mut tokens = TokenSet::from_response(response("a2", Some(60)), UNIX_EPOCH);
        tokens.keep_refresh_token_from(Some(&RefreshToken::new("r1")));
        assert_eq!(tokens.refresh_token().map(RefreshToken::as_str), Some("r1"));
        let mut rotated = TokenSet::new("a3").with_refresh_token("r2");
        rotated.keep_refresh_token_from(Some(&RefreshToken::new("r1")));
        assert_eq!(
            rotated.refresh_token().map(RefreshToken::as_str),
            Some("r2")
        );
    }

    #[test]
    fn persisted_form_round_trips_and_debug_redacts() {
        let tokens = TokenSet::new("secret-access")
            .with_refresh_token("secret-refresh")
            .with_expires_at(UNIX_EPOCH + Duration::from_secs(42))
            .with_scope("read");
        let json = serde_json::to_string(&tokens).unwrap();
        assert_eq!(
            json,
            r#"{"access_token":"secret-access","refresh_token":"secret-refresh","expires_at":42,"scope":"read"}"#
        );
        assert_eq!(serde_json::from_str::<TokenSet>(&json).unwrap(), tokens);
        let debug = format!("{tokens:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn a_dpop_bound_pair_keeps_its_key_through_the_store() {
        let key = DpopKey::generate(tessera_core::jose::Algorithm::EdDsa).unwrap();
        let tokens = TokenSet::new("a1")
            .with_token_type("DPoP")
            .with_refresh_token("r1")
            .with_dpop_key(key.clone());
        assert!(tokens.is_dpop_bound());
        let json = serde_json::to_string(&tokens).unwrap();
        assert!(json.contains(r#""token_type":"DPoP""#), "{json}");
        let back: TokenSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, tokens);
        assert_eq!(back.dpop_key().unwrap().thumbprint(), key.thumbprint());
        assert!(!format!("{tokens:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_token_file_written_before_dpop_still_loads() {
        let old = r#"{"access_token":"a","refresh_token":"r","expires_at":42}"#;
        let tokens: TokenSet = serde_json::from_str(old).unwrap();
        assert_eq!(tokens.token_type(), "Bearer");
        assert!(!tokens.is_dpop_bound() && tokens.dpop_key().is_none());
        assert_eq!(tokens.refresh_token().map(RefreshToken::as_str), Some("r"));
    }
}
