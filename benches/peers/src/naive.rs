//! The naive limit: the middleware an application author writes by hand in a few lines with
//! `axum::middleware::from_fn_with_state` and `jsonwebtoken::decode`.

use std::sync::Arc;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::AUTHORIZATION;
use jsonwebtoken::{DecodingKey, Validation};

use crate::claims::{AUDIENCE, BenchClaims, ISSUER, LEEWAY_SECS};
use crate::keys::{Alg, VerifyKey};

/// Key and validation rules, shared by every request.
#[derive(Clone)]
pub struct NaiveAuth {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl std::fmt::Debug for NaiveAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NaiveAuth").finish_non_exhaustive()
    }
}

impl NaiveAuth {
    /// Verification of `alg` tokens with `key`, requiring the benchmark issuer and audience.
    pub fn new(alg: Alg, key: &VerifyKey) -> Result<NaiveAuth> {
        Ok(NaiveAuth {
            key: Arc::new(key.decoding_key(alg)?),
            validation: Arc::new(validation(alg)),
        })
    }

    /// Decodes and validates `token`: what the middleware does per request.
    pub fn decode(&self, token: &str) -> jsonwebtoken::errors::Result<BenchClaims> {
        jsonwebtoken::decode::<BenchClaims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
    }
}

/// The jsonwebtoken 11 validation every jsonwebtoken-based variant uses: `exp`, `nbf`, `iss`, `aud`.
pub fn validation(alg: Alg) -> Validation {
    let mut validation = Validation::new(alg.jsonwebtoken());
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    validation
}

/// The middleware: bearer token in, claims into the request extensions, 401 on anything wrong.
pub async fn naive_auth(
    State(auth): State<NaiveAuth>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match auth.decode(token) {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(_) => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::errors::ErrorKind;

    use super::*;
    use crate::keys::KeyMaterial;

    #[test]
    fn every_algorithm_round_trips_and_expired_tokens_are_refused() {
        for alg in Alg::ALL {
            let material = KeyMaterial::generate(alg).unwrap();
            let auth = NaiveAuth::new(alg, material.verify_key()).unwrap();
            let claims = auth.decode(&material.valid_token().unwrap()).unwrap();
            assert_eq!(
                (claims.iss.as_str(), claims.aud.as_str()),
                (ISSUER, AUDIENCE)
            );
            let expired = auth.decode(&material.expired_token().unwrap()).unwrap_err();
            assert_eq!(expired.kind(), &ErrorKind::ExpiredSignature, "{alg}");
            let stranger = KeyMaterial::generate(alg).unwrap().valid_token().unwrap();
            assert_eq!(
                auth.decode(&stranger).unwrap_err().kind(),
                &ErrorKind::InvalidSignature,
                "{alg}"
            );
        }
    }

    #[test]
    fn verification_material_survives_the_key_directory() {
        let dir = std::env::temp_dir().join(format!("peers-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for alg in Alg::ALL {
            let material = KeyMaterial::generate(alg).unwrap();
            material.write(&dir).unwrap();
            let loaded = VerifyKey::load(&dir, alg).unwrap();
            assert_eq!(loaded.as_str(), material.verify_key().as_str());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
