//! The secrets the examples read from the environment, never from a flag (`ps` shows every process's
//! flags): the key-encryption secret of the keys kept in PostgreSQL, and the bearer token of the denials
//! feed. Their `Debug` output is redacted.

use std::env::VarError;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_issuer::{KEY_ENCRYPTION_SECRET_LEN, MIN_FEED_TOKEN_LEN};

/// The environment variable holding the [`KeyEncryptionSecret`].
pub const KEY_ENCRYPTION_SECRET_ENV: &str = "TESSERA_KEY_ENCRYPTION_SECRET";

/// The environment variable holding the [`DenialsFeedToken`], on the token service and its API processes
/// alike.
pub const DENIALS_FEED_TOKEN_ENV: &str = "TESSERA_DENIALS_FEED_TOKEN";

/// How to make a fitting secret, for the error messages.
const GENERATE: &str = "`head -c32 /dev/urandom | basenc --base64url | tr -d =`";

/// Reads the secret in the environment variable `name`: `None` when it is not set.
///
/// # Errors
/// `NAME: what is wrong` when it is set but not valid UTF-8 or not a valid `T`.
pub fn from_env<T: FromStr<Err = String>>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|error| format!("{name}: {error}")),
        Err(VarError::NotPresent) => Ok(None),
        Err(VarError::NotUnicode(_)) => Err(format!("{name}: not valid UTF-8")),
    }
}

/// The secret that seals the signing keys and the refresh-token secret kept in PostgreSQL (AES-256-GCM),
/// so a copy of the database alone cannot mint tokens: 32 bytes, given base64url-encoded (43 characters).
/// Every instance needs the same one.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEncryptionSecret([u8; KEY_ENCRYPTION_SECRET_LEN]);

impl KeyEncryptionSecret {
    /// The raw bytes, for `IssuerBuilder::key_encryption_secret`.
    pub fn bytes(&self) -> [u8; KEY_ENCRYPTION_SECRET_LEN] {
        self.0
    }
}

impl FromStr for KeyEncryptionSecret {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bytes = URL_SAFE_NO_PAD
            .decode(input.trim())
            .map_err(|error| format!("not base64url without padding: {error}"))?;
        let bytes: [u8; KEY_ENCRYPTION_SECRET_LEN] =
            bytes.try_into().map_err(|bytes: Vec<u8>| {
                format!(
                    "{} bytes; the key-encryption secret is {KEY_ENCRYPTION_SECRET_LEN} (e.g. {GENERATE})",
                    bytes.len()
                )
            })?;
        Ok(KeyEncryptionSecret(bytes))
    }
}

impl fmt::Debug for KeyEncryptionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionSecret(redacted)")
    }
}

/// The bearer token of the denials feed (`GET /auth/denials`): the token service accepts it, its API
/// processes' `RemoteDenylist` sends it. At least [`MIN_FEED_TOKEN_LEN`] visible ASCII characters (it
/// travels in an `Authorization` header); the same on every instance and API process.
#[derive(Clone, PartialEq, Eq)]
pub struct DenialsFeedToken(String);

impl DenialsFeedToken {
    /// The token itself, for `IssuerBuilder::denials_feed_token` and
    /// `RemoteDenylistBuilder::bearer_token`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DenialsFeedToken {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if !input.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(
                "only visible ASCII characters (no spaces, no line breaks): it is sent in an \
                 Authorization header"
                    .into(),
            );
        }
        if input.len() < MIN_FEED_TOKEN_LEN {
            return Err(format!(
                "{} characters; the denials-feed token needs at least {MIN_FEED_TOKEN_LEN} (e.g. {GENERATE})",
                input.len()
            ));
        }
        Ok(DenialsFeedToken(input.to_owned()))
    }
}

impl fmt::Debug for DenialsFeedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DenialsFeedToken(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_encryption_secret_is_32_bytes_and_redacted() {
        let secret: KeyEncryptionSecret = URL_SAFE_NO_PAD.encode([7_u8; 32]).parse().unwrap();
        assert_eq!(secret.bytes(), [7; 32]);
        assert_eq!(format!("{secret:?}"), "KeyEncryptionSecret(redacted)");
        assert!(
            URL_SAFE_NO_PAD
                .encode([7_u8; 31])
                .parse::<KeyEncryptionSecret>()
                .is_err()
        );
        assert!("not base64!".parse::<KeyEncryptionSecret>().is_err());
    }

    #[test]
    fn the_denials_feed_token_is_long_visible_ascii_and_redacted() {
        let generated = URL_SAFE_NO_PAD.encode([7_u8; 32]);
        let token: DenialsFeedToken = generated.parse().unwrap();
        assert_eq!(token.expose(), generated);
        assert_eq!(format!("{token:?}"), "DenialsFeedToken(redacted)");

        let error = "a"
            .repeat(MIN_FEED_TOKEN_LEN - 1)
            .parse::<DenialsFeedToken>()
            .unwrap_err();
        assert!(error.starts_with("31 characters; "), "{error}");
        assert!(
            "a".repeat(MIN_FEED_TOKEN_LEN)
                .parse::<DenialsFeedToken>()
                .is_ok()
        );
        for spaced in [
            format!("{generated} "),
            format!("{generated}\n"),
            format!("ä{generated}"),
        ] {
            let error = spaced.parse::<DenialsFeedToken>().unwrap_err();
            assert!(error.contains("visible ASCII"), "{error}");
        }
        assert!("".parse::<DenialsFeedToken>().is_err());
    }
}
