//! The client's DPoP key and the proofs it signs (RFC 9449 §4).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tessera_core::jose::{Algorithm, Jwk, JwsHeader, SigningKey};

use super::DpopError;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub(crate) const PROOF_TYPE: &str = "dpop+jwt";

/// The key pair a client proves possession of (RFC 9449): tokens obtained with its proofs are bound to its
/// public key's thumbprint, so they are worth nothing to whoever copies them without the private key.
///
/// EdDSA (Ed25519) or ES256. Generate one per client installation, or load it with
/// [`DpopKey::from_signing_key`]. A [`TokenStore`](crate::TokenStore) keeps it with the tokens it bound,
/// so a restart keeps the binding. `Debug` shows the algorithm and thumbprint, never the private key.
///
/// ```
/// use tessera_client::DpopKey;
/// use tessera_core::jose::Algorithm;
///
/// let key = DpopKey::generate(Algorithm::EdDsa)?;
/// assert_eq!(key.algorithm(), Algorithm::EdDsa);
/// assert_eq!(key.thumbprint().len(), 43); // base64url of a SHA-256 digest: the token's `cnf.jkt`
/// # Ok::<(), tessera_client::DpopError>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    signing: SigningKey,
    /// The public key's required members only: what every proof embeds.
    jwk: Arc<Jwk>,
    thumbprint: Arc<str>,
}

impl DpopKey {
    /// A fresh key from the OS CSPRNG: [`Algorithm::EdDsa`] (smallest and fastest) or [`Algorithm::Es256`]
    /// (the one every DPoP server supports).
    ///
    /// # Errors
    /// [`DpopError::UnsupportedAlgorithm`] for any other algorithm, [`DpopError::Key`] if no key could be made.
    pub fn generate(algorithm: Algorithm) -> Result<DpopKey, DpopError> {
        supported(algorithm)?;
        DpopKey::from_signing_key(SigningKey::generate(algorithm)?)
    }

    /// A key loaded elsewhere, e.g. with [`SigningKey::from_pem`] or [`SigningKey::from_jwk_json`].
    ///
    /// # Errors
    /// [`DpopError::UnsupportedAlgorithm`] unless the key signs EdDSA or ES256.
    pub fn from_signing_key(signing: SigningKey) -> Result<DpopKey, DpopError> {
        supported(signing.algorithm())?;
        let jwk = signing
            .public_jwk()
            .ok_or(DpopError::UnsupportedAlgorithm(signing.algorithm()))?
            .thumbprint_members();
        let thumbprint = jwk.thumbprint()?.into();
        Ok(DpopKey {
            signing,
            jwk: Arc::new(jwk),
            thumbprint,
        })
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.signing.algorithm()
    }

    /// The RFC 7638 thumbprint of the public key: what a bound token carries as `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The public key, as every proof embeds it.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A proof for one request (RFC 9449 §4.2): `typ` `dpop+jwt`, the public key in `jwk`, and the claims
    /// `jti` (128 random bits), `htm` = `method`, `htu` = `url` without query and fragment, `iat` = `now`,
    /// `ath` = the hash of `access_token` when one is presented, and `nonce` when the server handed one out.
    ///
    /// [`AuthMiddleware`](crate::AuthMiddleware) and the built-in grants call this for you; a custom
    /// refresher gets a [`Dpop`](crate::Dpop) that also remembers nonces.
    ///
    /// # Errors
    /// [`DpopError::Sign`] if signing fails, [`DpopError::Random`] if the OS generator fails.
    pub fn proof(
        &self,
        method: &Method,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<String, DpopError> {
        let ath = access_token.map(access_token_hash);
        self.sign_proof(method, url, ath.as_deref(), nonce, now)
    }

    /// [`DpopKey::proof`] with the access token's hash `ath` computed beforehand (once per token, not per
    /// request).
    pub(crate) fn sign_proof(
        &self,
        method: &Method,
        url: &Url,
        ath: Option<&str>,
        nonce: Option<&str>,
        now: SystemTime,
    ) -> Result<String, DpopError> {
        #[derive(Serialize)]
        struct Claims<'a> {
            jti: String,
            htm: &'a str,
            htu: &'a str,
            iat: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            ath: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            nonce: Option<&'a str>,
        }
        let htu = target_uri(url);
        let claims = Claims {
            jti: tessera_core::random::id::<16>()?,
            htm: method.as_str(),
            htu: &htu,
            iat: tessera_core::unix_seconds(now),
            ath,
            nonce,
        };
        let header = JwsHeader {
            typ: Some(PROOF_TYPE),
            embed_jwk: true,
        };
        Ok(self.signing.sign_jwt(header, &claims)?)
    }

    pub(crate) fn to_persisted(&self) -> Result<PersistedDpopKey, DpopError> {
        let pkcs8 = self
            .signing
            .to_pkcs8_pem()?
            .ok_or(DpopError::UnsupportedAlgorithm(self.algorithm()))?;
        Ok(PersistedDpopKey {
            alg: self.algorithm().as_str().to_owned(),
            pkcs8,
        })
    }

    pub(crate) fn from_persisted(persisted: &PersistedDpopKey) -> Result<DpopKey, DpopError> {
        let algorithm = Algorithm::from_name(&persisted.alg)
            .ok_or_else(|| DpopError::UnknownAlgorithm(persisted.alg.clone()))?;
        supported(algorithm)?;
        let signing = SigningKey::from_pem("dpop", algorithm, &persisted.pkcs8)?;
        DpopKey::from_signing_key(signing)
    }
}

impl PartialEq for DpopKey {
    fn eq(&self, other: &Self) -> bool {
        self.thumbprint == other.thumbprint
    }
}

impl Eq for DpopKey {}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.algorithm())
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// How a DPoP key is written into a token file: its algorithm and its private key as PKCS#8 PEM. The file is
/// as secret as the refresh token next to it.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct PersistedDpopKey {
    alg: String,
    pkcs8: String,
}

fn supported(algorithm: Algorithm) -> Result<(), DpopError> {
    match algorithm {
        Algorithm::EdDsa | Algorithm::Es256 => Ok(()),
        other => Err(DpopError::UnsupportedAlgorithm(other)),
    }
}

/// `htu`: the request URI without query and fragment (RFC 9449 §4.2).
pub(crate) fn target_uri(url: &Url) -> String {
    let mut target = url.clone();
    target.set_query(None);
    target.set_fragment(None);
    target.into()
}

/// `ath`: base64url(SHA-256(access token)) (RFC 9449 §4.2).
pub(crate) fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, access_token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use tessera_core::jose::Jws;

    use super::*;

    #[test]
    fn a_proof_carries_what_rfc_9449_asks_for() {
        for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
            let key = DpopKey::generate(algorithm).unwrap();
            let url = Url::parse("https://api.example/v1/items?page=2#top").unwrap();
            let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
            let proof = key
                .proof(&Method::GET, &url, Some("the-token"), Some("n-1"), now)
                .unwrap();
            let jws = Jws::parse(&proof).unwrap();
            assert_eq!(jws.typ(), Some("dpop+jwt"));
            assert_eq!(jws.kid(), None, "the key is embedded, not named");
            let jwk: Jwk = serde_json::from_value(jws.header()["jwk"].clone()).unwrap();
            assert!(
                jwk.kid.is_none() && jwk.alg.is_none(),
                "public members only"
            );
            assert_eq!(jwk.thumbprint().unwrap(), key.thumbprint());
            let verifying = jwk.to_key().unwrap();
            let claims: serde_json::Value = jws.verify_with(&verifying).unwrap().claims().unwrap();
            assert_eq!(claims["htm"], "GET");
            assert_eq!(claims["htu"], "https://api.example/v1/items");
            assert_eq!(claims["iat"], 1_700_000_000);
            assert_eq!(claims["nonce"], "n-1");
            assert_eq!(claims["ath"], access_token_hash("the-token"));
            assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
            let again = key.proof(&Method::GET, &url, None, None, now).unwrap();
            let again: serde_json::Value = Jws::parse(&again).unwrap().unverified_claims().unwrap();
            assert_ne!(again["jti"], claims["jti"], "a fresh jti per proof");
            assert!(again.get("ath").is_none() && again.get("nonce").is_none());
        }
    }

    #[test]
    fn ath_is_the_rfc_9449_example_hash() {
        // RFC 9449 §7.1's example access token and its `ath`.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn only_eddsa_and_es256_keys_sign_proofs() {
        for algorithm in [Algorithm::Hs256, Algorithm::Rs256, Algorithm::Es384] {
            assert!(matches!(
                DpopKey::generate(algorithm),
                Err(DpopError::UnsupportedAlgorithm(_))
            ));
        }
    }

    #[test]
    fn a_key_survives_its_persisted_form() {
        for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
            let key = DpopKey::generate(algorithm).unwrap();
            let persisted = key.to_persisted().unwrap();
            let json = serde_json::to_string(&persisted).unwrap();
            let back: PersistedDpopKey = serde_json::from_str(&json).unwrap();
            assert_eq!(DpopKey::from_persisted(&back).unwrap(), key);
        }
        let tampered = PersistedDpopKey {
            alg: "HS256".into(),
            pkcs8: String::new(),
        };
        assert!(DpopKey::from_persisted(&tampered).is_err());
        assert!(!format!("{:?}", DpopKey::generate(Algorithm::Es256).unwrap()).contains("PRIVATE"));
    }
}
