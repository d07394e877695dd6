use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037, RFC 9864).
///
/// Every verification key is bound to its algorithms when it is loaded: the one it was loaded for, or the
/// family of its key type when a JWK names none (see [`JwtKey`](super::JwtKey)). The `alg` header of a
/// token only has to be one of them and never chooses how a signature is checked. That rules out
/// `alg: none` and algorithm confusion (an HMAC "signature" made with an RSA or EC public key) by
/// construction.
///
/// [`Algorithm::from_name`] reads a JOSE header exactly; [`FromStr`] is case-insensitive, for configuration.
///
/// ```
/// use tessera_core::jose::Algorithm;
///
/// assert_eq!(Algorithm::from_name("EdDSA"), Some(Algorithm::EdDsa));
/// assert_eq!(Algorithm::from_name("Ed25519"), Some(Algorithm::Ed25519));
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
    /// Ed25519 under RFC 8037's polymorphic name `EdDSA`.
    EdDsa,
    /// Ed25519 under its fully specified name (RFC 9864 §2.2): the same signatures as [`Algorithm::EdDsa`],
    /// named without ambiguity. (`Ed448` is not supported: the crypto backend has no Ed448.)
    Ed25519,
}

/// Every algorithm, in a stable order.
pub(crate) const ALL: [Algorithm; 7] = [
    Algorithm::Hs256,
    Algorithm::Rs256,
    Algorithm::Ps256,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
    Algorithm::Ed25519,
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
            Algorithm::Ed25519 => "Ed25519",
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

    /// This algorithm's place in an [`AlgorithmSet`].
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name Tessera does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown signing algorithm `{0}`; use one of EdDSA, Ed25519, ES256, ES384, RS256, PS256, HS256"
)]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ALL.into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownAlgorithm(name.to_owned()))
    }
}

/// The algorithms one key accepts: one, or its key type's family. Never empty, never across families.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AlgorithmSet(u8);

impl AlgorithmSet {
    /// Just `algorithm`.
    pub(crate) const fn one(algorithm: Algorithm) -> AlgorithmSet {
        AlgorithmSet(algorithm.bit())
    }

    /// This set and `algorithm`, another name of the same key type (RS256 and PS256 for RSA, EdDSA and
    /// Ed25519).
    pub(crate) const fn with(self, algorithm: Algorithm) -> AlgorithmSet {
        AlgorithmSet(self.0 | algorithm.bit())
    }

    pub(crate) const fn contains(self, algorithm: Algorithm) -> bool {
        self.0 & algorithm.bit() != 0
    }

    /// The members, in [`ALL`]'s order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        ALL.into_iter()
            .filter(move |algorithm| self.contains(*algorithm))
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
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
        assert_eq!(Algorithm::from_name("Ed25519"), Some(Algorithm::Ed25519));
        assert_eq!(Algorithm::from_name("Ed448"), None);
        assert!(
            "none"
                .parse::<Algorithm>()
                .unwrap_err()
                .to_string()
                .contains("EdDSA")
        );
    }
}
