//! Fresh key material and tokens for every algorithm, generated at the start of a run and handed to the
//! server processes through a directory (verification material only: servers never see a private key).

use std::fmt;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{EncodingKey, Header};

use crate::claims::{AUDIENCE, BenchClaims, ISSUER, LEEWAY_SECS};

/// The signature algorithms compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Alg {
    /// HMAC-SHA-256 with a 48-byte secret.
    Hs256,
    /// ECDSA P-256.
    Es256,
    /// Ed25519.
    Eddsa,
    /// RSA PKCS#1 v1.5, 2048-bit key.
    Rs256,
}

impl Alg {
    /// Every algorithm, in table order.
    pub const ALL: [Alg; 4] = [Alg::Hs256, Alg::Es256, Alg::Eddsa, Alg::Rs256];

    /// The JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Es256 => "ES256",
            Alg::Eddsa => "EdDSA",
            Alg::Rs256 => "RS256",
        }
    }

    /// The command-line and file-name spelling.
    pub fn slug(self) -> &'static str {
        match self {
            Alg::Hs256 => "hs256",
            Alg::Es256 => "es256",
            Alg::Eddsa => "eddsa",
            Alg::Rs256 => "rs256",
        }
    }

    /// The jsonwebtoken 11 algorithm.
    pub fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Alg::Hs256 => jsonwebtoken::Algorithm::HS256,
            Alg::Es256 => jsonwebtoken::Algorithm::ES256,
            Alg::Eddsa => jsonwebtoken::Algorithm::EdDSA,
            Alg::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }

    /// The Tessera algorithm.
    pub fn tessera(self) -> tessera_server::Algorithm {
        match self {
            Alg::Hs256 => tessera_server::Algorithm::Hs256,
            Alg::Es256 => tessera_server::Algorithm::Es256,
            Alg::Eddsa => tessera_server::Algorithm::EdDsa,
            Alg::Rs256 => tessera_server::Algorithm::Rs256,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a server needs to verify tokens of one algorithm.
#[derive(Clone)]
pub enum VerifyKey {
    /// The HMAC secret: ASCII, because jwt-authorizer takes secrets as `&str`.
    Secret(String),
    /// A SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    PublicPem(String),
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyKey::Secret(_) => f.write_str("VerifyKey::Secret(<redacted>)"),
            VerifyKey::PublicPem(pem) => f.debug_tuple("VerifyKey::PublicPem").field(pem).finish(),
        }
    }
}

impl VerifyKey {
    /// The secret or PEM as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            VerifyKey::Secret(secret) => secret.as_bytes(),
            VerifyKey::PublicPem(pem) => pem.as_bytes(),
        }
    }

    /// The secret or PEM as text.
    pub fn as_str(&self) -> &str {
        match self {
            VerifyKey::Secret(secret) => secret,
            VerifyKey::PublicPem(pem) => pem,
        }
    }

    /// Reads the material `KeyMaterial::write` stored for `alg`.
    pub fn load(dir: &Path, alg: Alg) -> Result<VerifyKey> {
        let path = dir.join(verify_file(alg));
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(match alg {
            Alg::Hs256 => VerifyKey::Secret(text),
            Alg::Es256 | Alg::Eddsa | Alg::Rs256 => VerifyKey::PublicPem(text),
        })
    }

    /// The jsonwebtoken 11 decoding key.
    pub fn decoding_key(&self, alg: Alg) -> Result<jsonwebtoken::DecodingKey> {
        let bytes = self.as_bytes();
        Ok(match alg {
            Alg::Hs256 => jsonwebtoken::DecodingKey::from_secret(bytes),
            Alg::Es256 => jsonwebtoken::DecodingKey::from_ec_pem(bytes)?,
            Alg::Eddsa => jsonwebtoken::DecodingKey::from_ed_pem(bytes)?,
            Alg::Rs256 => jsonwebtoken::DecodingKey::from_rsa_pem(bytes)?,
        })
    }
}

fn verify_file(alg: Alg) -> String {
    match alg {
        Alg::Hs256 => "hs256.secret".to_owned(),
        other => format!("{}.pem", other.slug()),
    }
}

/// A signing key and its verification material.
pub struct KeyMaterial {
    alg: Alg,
    signing: EncodingKey,
    verify: VerifyKey,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A new random key for `alg` (RSA: 2048 bits).
    pub fn generate(alg: Alg) -> Result<KeyMaterial> {
        let unspecified = |what: &str| anyhow!("aws-lc-rs could not {what} for {alg}");
        let (signing, verify) = match alg {
            Alg::Hs256 => {
                let mut raw = [0u8; 36];
                aws_lc_rs::rand::fill(&mut raw).map_err(|_| unspecified("draw random bytes"))?;
                let secret = URL_SAFE_NO_PAD.encode(raw);
                (
                    EncodingKey::from_secret(secret.as_bytes()),
                    VerifyKey::Secret(secret),
                )
            }
            Alg::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| unspecified("generate a P-256 key"))?;
                let private = pair
                    .to_pkcs8v1()
                    .map_err(|_| unspecified("encode the key"))?;
                let public: PublicKeyX509Der<'static> = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| unspecified("encode the public key"))?;
                let signing =
                    EncodingKey::from_ec_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())?;
                (
                    signing,
                    VerifyKey::PublicPem(pem("PUBLIC KEY", public.as_ref())),
                )
            }
            Alg::Eddsa => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| unspecified("generate an Ed25519 key"))?;
                let private = pair.to_pkcs8().map_err(|_| unspecified("encode the key"))?;
                let public: PublicKeyX509Der<'static> = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| unspecified("encode the public key"))?;
                let signing =
                    EncodingKey::from_ed_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())?;
                (
                    signing,
                    VerifyKey::PublicPem(pem("PUBLIC KEY", public.as_ref())),
                )
            }
            Alg::Rs256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| unspecified("generate an RSA key"))?;
                let private: Pkcs8V1Der<'static> =
                    pair.as_der().map_err(|_| unspecified("encode the key"))?;
                let public: PublicKeyX509Der<'static> = pair
                    .public_key()
                    .as_der()
                    .map_err(|_| unspecified("encode the public key"))?;
                let signing =
                    EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())?;
                (
                    signing,
                    VerifyKey::PublicPem(pem("PUBLIC KEY", public.as_ref())),
                )
            }
        };
        Ok(KeyMaterial {
            alg,
            signing,
            verify,
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The verification material.
    pub fn verify_key(&self) -> &VerifyKey {
        &self.verify
    }

    /// Stores the verification material in `dir` for `VerifyKey::load`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(verify_file(self.alg));
        fs::write(&path, self.verify.as_str())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// A signed access token valid from `now + from` to `now + until` (seconds; negative is the past).
    pub fn token(&self, from: i64, until: i64) -> Result<String> {
        self.token_at(unix_now()?, from, until)
    }

    /// A token the servers accept for `seconds` more, `exp` plus their leeway, and the Unix time from which
    /// they answer it as expired: for measuring the 401 of a token a server saw valid.
    pub fn expiring_token(&self, seconds: i64) -> Result<(String, i64)> {
        let now = unix_now()?;
        let leeway = i64::try_from(LEEWAY_SECS)?;
        Ok((self.token_at(now, -60, seconds - leeway)?, now + seconds))
    }

    fn token_at(&self, now: i64, from: i64, until: i64) -> Result<String> {
        let claims = BenchClaims {
            iss: ISSUER.to_owned(),
            sub: "user-42".to_owned(),
            aud: AUDIENCE.to_owned(),
            exp: now + until,
            iat: now + from,
            nbf: now + from,
            jti: random_id()?,
            client_id: "bench-client".to_owned(),
            scope: "read write".to_owned(),
        };
        let mut header = Header::new(self.alg.jsonwebtoken());
        header.typ = Some("at+jwt".to_owned());
        Ok(jsonwebtoken::encode(&header, &claims, &self.signing)?)
    }

    /// A token valid for the next four hours (issued a minute ago).
    pub fn valid_token(&self) -> Result<String> {
        self.token(-60, 4 * 3600)
    }

    /// A genuine token that expired an hour ago, far beyond every variant's leeway.
    pub fn expired_token(&self) -> Result<String> {
        self.token(-2 * 3600, -3600)
    }
}

fn unix_now() -> Result<i64> {
    Ok(i64::try_from(jsonwebtoken::get_current_timestamp())?)
}

/// How long until the wall clock reads `time` (Unix seconds), plus a second so that no rounding of the
/// clock leaves a token that expires at `time` valid.
pub fn time_until(time: i64) -> std::time::Duration {
    let now = unix_now().unwrap_or(i64::MAX);
    std::time::Duration::from_secs(u64::try_from(time.saturating_sub(now)).unwrap_or(0) + 1)
}

/// 128 random bits, base64url.
pub fn random_id() -> Result<String> {
    let mut raw = [0u8; 16];
    aws_lc_rs::rand::fill(&mut raw)
        .map_err(|_| anyhow!("aws-lc-rs could not draw random bytes"))?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
