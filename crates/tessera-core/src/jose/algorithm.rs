use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037).
///
/// Every verification key is bound to one algorithm when it is loaded; the `alg` header of a token only has
/// to match it and never chooses how a signature is checked. That rules out `alg: none` and algorithm
/// confusion (an HMAC "signature" made with an RSA or EC public key) by construction.
///
/// [`Algorithm::from_name`] reads a JOSE header exactly; [`FromStr`] is case-insensitive, for configuration.
///
/// ```
/// use tessera_core::jose::Algorithm;
///
/// assert_eq!(Algorithm::from_name("EdDSA"), Some(Algorithm::EdDsa));
/// assert_eq!(Algorithm::from_name("eddsa"), None);
/// assert_eq!("es256".parse::<Algorithm>()?, Algorithm::Es256);
/// assert_eq!(Algorithm::from_name("none"), None);
/// # Ok::<(), tessera_core::jose::UnknownAlgorithm>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256, a shared secret of at least 32 bytes.
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of 2048 to 8192 bits.
    Rs256,
    /// RSASSA-PSS with SHA-256, RSA keys of 2048 to 8192 bits.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519 (RFC 8037's `EdDSA`).
    EdDsa,
}

/// Every algorithm, in a stable order.
pub(crate) const ALL: [Algorithm; 6] = [
    Algorithm::Hs256,
    Algorithm::Rs256,
    Algorithm::Ps256,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
];

impl Algorithm {
    /// The JWS `alg` name, e.g. `ES256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses a JWS `alg` header value exactly; `None` for algorithms Tessera does not support (including
    /// `none`).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        ALL.into_iter().find(|algorithm| algorithm.as_str() == name)
    }

    /// Whether verifying needs the signing secret itself (HMAC): such keys are never published.
    pub fn is_symmetric(self) -> bool {
        self == Algorithm::Hs256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name Tessera does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signing algorithm `{0}`; use one of EdDSA, ES256, ES384, RS256, PS256, HS256")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ALL.into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownAlgorithm(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_unknown() {
        for algorithm in ALL {
            assert_eq!(Algorithm::from_name(algorithm.as_str()), Some(algorithm));
            assert_eq!(algorithm.as_str().to_lowercase().parse(), Ok(algorithm));
        }
        assert_eq!(Algorithm::from_name("none"), None);
        assert_eq!(Algorithm::from_name("hs256"), None);
        assert!(
            "none"
                .parse::<Algorithm>()
                .unwrap_err()
                .to_string()
                .contains("EdDSA")
        );
    }
}
