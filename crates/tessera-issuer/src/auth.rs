//! Wiring the issuer into `tessera_server::JwtAuthLayer`: its keys, issuer, audience, and the access-token
//! denylist as the layer's revocation check.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera_server::{
    BuildError, JwtAuthBuilder, JwtAuthLayer, JwtKey, KeyError, RevocationCheck, RevocationFuture,
    TokenStatus, VerifiedToken,
};

use crate::clock::Clock;
use crate::denylist::AccessTokenDenylist;
use crate::issuer::Issuer;
use crate::keys::{SigningAlgorithm, VerifyingKey};

impl RevocationCheck for AccessTokenDenylist {
    fn status<'a>(&'a self, token: &'a VerifiedToken) -> RevocationFuture<'a> {
        let revoked = self.is_revoked(token.jti(), token.subject(), token.issued_at());
        Box::pin(async move {
            Ok(if revoked {
                TokenStatus::Revoked
            } else {
                TokenStatus::Active
            })
        })
    }
}

impl<S> Issuer<S> {
    /// A `JwtAuthLayer` builder that trusts exactly this issuer: its verifying keys (each bound to its
    /// `kid` and algorithm), its `iss`, its audiences, its clock, and its denylist as the revocation check.
    /// Add requirements (scopes, leeway) and `build()` it; use it for `/api` routes and for
    /// [`Issuer::router`].
    ///
    /// # Errors
    /// [`tessera_server::KeyError`] (through [`BuildError`]) if a key cannot be converted.
    pub fn auth_layer_builder(&self) -> Result<JwtAuthBuilder, BuildError> {
        let mut builder = JwtAuthLayer::builder()
            .issuer(self.issuer())
            .clock(ServerClock(self.inner.clock.clone()))
            .revocation(Arc::new(self.denylist().clone()) as Arc<dyn RevocationCheck>);
        for audience in self.audiences() {
            builder = builder.audience(audience);
        }
        for key in self.keys().verifying_keys() {
            builder = builder.key(jwt_key(key)?);
        }
        Ok(builder)
    }

    /// [`Issuer::auth_layer_builder`], built with tessera-server's defaults.
    ///
    /// # Errors
    /// See [`Issuer::auth_layer_builder`].
    pub fn auth_layer(&self) -> Result<JwtAuthLayer, BuildError> {
        self.auth_layer_builder()?.build()
    }
}

/// The issuer's clock, as tessera-server reads time.
#[derive(Debug)]
struct ServerClock(Arc<dyn Clock>);

impl tessera_server::Clock for ServerClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(self.0.now()).unwrap_or(0))
    }
}

fn jwt_key(key: &VerifyingKey) -> Result<JwtKey, BuildError> {
    let converted = match (key.algorithm(), key.jwk()) {
        (_, Some(jwk)) => {
            let json = serde_json::to_string(jwk).map_err(|error| KeyError::InvalidJwk {
                kid: Some(key.kid().to_owned()),
                reason: error.to_string(),
            })?;
            JwtKey::from_jwk_json(&json)
        }
        (SigningAlgorithm::Hs256, None) => match key.decoding_key().try_get_as_bytes() {
            Ok(secret) => JwtKey::hmac(secret),
            Err(error) => Err(KeyError::InvalidJwk {
                kid: Some(key.kid().to_owned()),
                reason: error.to_string(),
            }),
        },
        (algorithm, None) => Err(KeyError::InvalidJwk {
            kid: Some(key.kid().to_owned()),
            reason: format!("the {algorithm} key has no public JWK"),
        }),
    };
    Ok(converted?.with_kid(key.kid()))
}
