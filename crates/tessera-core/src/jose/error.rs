use std::path::PathBuf;

use super::Algorithm;
use crate::random::RandomError;

/// Why a key could not be loaded, generated or stored. Each message names the key and says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The HMAC secret is shorter than [`MIN_HMAC_SECRET_LEN`](super::MIN_HMAC_SECRET_LEN) bytes.
    #[error("the HMAC secret is {len} bytes; HS256 needs at least 32 random bytes")]
    HmacSecretTooShort {
        /// The length of the secret that was given.
        len: usize,
    },
    /// The PEM text is not a key of the family the algorithm needs.
    #[error("{} is not a valid {algorithm} key in PEM: {reason}", kid_or_key(kid.as_deref()))]
    InvalidPem {
        /// The key id, when known.
        kid: Option<String>,
        /// The algorithm the key was loaded for.
        algorithm: Algorithm,
        /// What the PEM parser reported.
        reason: String,
    },
    /// The key bytes were rejected by the crypto backend (wrong curve, bad encoding).
    #[error("the {algorithm} key material was rejected: {reason}")]
    Rejected {
        /// The algorithm the key was loaded for.
        algorithm: Algorithm,
        /// What the crypto backend reported.
        reason: String,
    },
    /// An RSA key is too small to be safe.
    #[error("the RSA key has {bits} bits; use at least 2048")]
    WeakRsaKey {
        /// The modulus size found.
        bits: usize,
    },
    /// An algorithm was asked of key material of another kind (HS256 from a PEM, say).
    #[error("{algorithm} cannot be loaded from {source_kind}")]
    WrongKeyKind {
        /// The algorithm the key was loaded for.
        algorithm: Algorithm,
        /// What was given instead.
        source_kind: &'static str,
    },
    /// A JWK could not be used.
    #[error("unusable JWK{}: {reason}", kid.as_deref().map(|kid| format!(" (kid {kid:?})")).unwrap_or_default())]
    InvalidJwk {
        /// The JWK's `kid`, when it has one.
        kid: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// A JWKS document is not a JSON object with a `keys` array.
    #[error("the JWKS document is not valid: {0}")]
    InvalidJwks(String),
    /// Two keys of one set share a `kid`, so a token's `kid` could not select one of them.
    #[error("two keys share the kid {0:?}; every kid in a key set must be unique")]
    DuplicateKid(String),
    /// A key set holds no usable key.
    #[error("the key set holds no usable verification key")]
    Empty,
    /// The crypto library could not generate a key.
    #[error("could not generate a {algorithm} key")]
    Generate {
        /// The algorithm asked for.
        algorithm: Algorithm,
    },
    /// The OS random generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Reading or writing a key file failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file has unusable content.
    #[error("key file {}: {detail}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

fn kid_or_key(kid: Option<&str>) -> String {
    kid.map_or_else(|| "the key".to_owned(), |kid| format!("key `{kid}`"))
}

/// The crypto library refused to sign (an RSA or ECDSA failure; never expected with a valid key), or the
/// claims could not be serialised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The crypto library failed to produce a signature.
    #[error("the crypto library failed to produce a signature")]
    Crypto,
    /// The header or claims could not be serialised as JSON.
    #[error("the JWS header or claims could not be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
}
