use std::fmt;
use std::str::FromStr;

use jsonwebtoken::Algorithm;

/// The JWS algorithms the token service signs access tokens with.
///
/// Parses case-insensitively from its JOSE name (`"EdDSA"`, `"es256"`, ...), so it can come straight from a
/// command-line flag.
///
/// ```
/// use tessera_issuer::SigningAlgorithm;
///
/// let alg: SigningAlgorithm = "es256".parse()?;
/// assert_eq!(alg, SigningAlgorithm::Es256);
/// assert_eq!(SigningAlgorithm::default().as_str(), "EdDSA");
/// # Ok::<(), tessera_issuer::UnknownAlgorithm>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlgorithm {
    /// Ed25519 signatures (RFC 8037): small, fast, deterministic. The default.
    #[default]
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 on a 2048-bit (or larger) key.
    Rs256,
    /// HMAC with SHA-256 on a shared secret of at least 32 bytes; verifiers need the same secret, so this
    /// key is never published in the JWKS.
    Hs256,
}

impl SigningAlgorithm {
    /// The JOSE name, e.g. `ES256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::EdDSA => "EdDSA",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Hs256 => "HS256",
        }
    }

    /// The matching `jsonwebtoken` algorithm.
    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            SigningAlgorithm::Hs256 => Algorithm::HS256,
        }
    }

    /// The algorithm for a `jsonwebtoken` algorithm, if Tessera supports it.
    pub fn from_jwt_algorithm(algorithm: Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::EdDSA => Some(SigningAlgorithm::EdDSA),
            Algorithm::ES256 => Some(SigningAlgorithm::Es256),
            Algorithm::RS256 => Some(SigningAlgorithm::Rs256),
            Algorithm::HS256 => Some(SigningAlgorithm::Hs256),
            _ => None,
        }
    }

    /// Whether verifying needs the signing secret itself (HMAC).
    pub fn is_symmetric(self) -> bool {
        self == SigningAlgorithm::Hs256
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signing algorithm name Tessera does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signing algorithm `{0}`; use one of EdDSA, ES256, RS256, HS256")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for SigningAlgorithm {
    type Err = UnknownAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
            SigningAlgorithm::Hs256,
        ]
        .into_iter()
        .find(|alg| alg.as_str().eq_ignore_ascii_case(name))
        .ok_or_else(|| UnknownAlgorithm(name.to_owned()))
    }
}
