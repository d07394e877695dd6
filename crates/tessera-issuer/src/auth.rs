//! Wiring the issuer into `tessera_server::JwtAuthLayer`: its keys, issuer, audience, and the access-token
//! denylist as the layer's revocation check.

use std::sync::Arc;

use tessera_server::{
    BuildError, JwtAuthBuilder, JwtAuthLayer, RevocationAnswer, RevocationCheck, TokenStatus,
    VerifiedToken,
};

use crate::denylist::AccessTokenDenylist;
use crate::issuer::Issuer;

/// Answers at once from the in-memory snapshot, so the layer stays on its synchronous path: a cached
/// token costs the same with the denylist as without it.
impl RevocationCheck for AccessTokenDenylist {
    fn status(&self, token: &VerifiedToken) -> RevocationAnswer {
        let revoked = self.is_revoked(token.jti(), token.subject(), token.issued_at());
        TokenStatus::revoked_if(revoked).into()
    }
}

impl<S> Issuer<S> {
    /// A `JwtAuthLayer` builder that trusts exactly this issuer: its verifying keys (each bound to its
    /// `kid` and algorithm), its `iss`, its audiences, its clock, and its denylist as the revocation check.
    /// Add requirements (scopes, leeway) and `build()` it; use it for `/api` routes and for
    /// [`Issuer::router`].
    ///
    /// # Errors
    /// None today; the signature leaves room for key sources that can fail.
    pub fn auth_layer_builder(&self) -> Result<JwtAuthBuilder, BuildError> {
        let mut builder = JwtAuthLayer::builder()
            .issuer(self.issuer())
            .clock(Arc::clone(&self.inner.clock))
            .revocation(Arc::new(self.denylist().clone()) as Arc<dyn RevocationCheck>);
        for audience in self.audiences() {
            builder = builder.audience(audience);
        }
        Ok(builder.key_set(self.keys().verifying().clone()))
    }

    /// [`Issuer::auth_layer_builder`], built with tessera-server's defaults.
    ///
    /// # Errors
    /// See [`Issuer::auth_layer_builder`].
    pub fn auth_layer(&self) -> Result<JwtAuthLayer, BuildError> {
        self.auth_layer_builder()?.build()
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use tessera_core::ManualClock;
    use tessera_core::jose::SigningKey;

    use super::*;
    use crate::{MemoryStore, SigningKeys};

    const SECRET: [u8; 32] = [7; 32];
    const NOW: i64 = 1_767_225_600;

    fn token(jti: &str) -> String {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("k".into());
        let claims = serde_json::json!({
            "iss": "https://auth.example", "aud": "api", "sub": "alice", "client_id": "demo",
            "jti": jti, "iat": NOW - 10, "exp": NOW + 300,
        });
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&SECRET)).unwrap()
    }

    #[tokio::test]
    async fn the_denylist_answers_the_auth_layer_at_once() {
        let issuer = Issuer::builder()
            .issuer("https://auth.example")
            .audience("api")
            .keys(SigningKeys::new(SigningKey::from_hmac_secret("k", &SECRET).unwrap()).unwrap())
            .public_client("demo")
            .clock(ManualClock::at_unix(NOW))
            .build(MemoryStore::new())
            .unwrap();
        let auth = issuer.auth_layer().unwrap();
        let verified = auth.verify(&token("t1")).await.unwrap();
        assert!(matches!(
            issuer.denylist().status(&verified),
            RevocationAnswer::Ready(Ok(TokenStatus::Active))
        ));

        issuer.revoke_user("alice").await.unwrap();
        assert!(matches!(
            issuer.denylist().status(&verified),
            RevocationAnswer::Ready(Ok(TokenStatus::Revoked))
        ));
        assert_eq!(
            auth.verify(&token("t2")).await.unwrap_err(),
            tessera_server::AuthRejection::Revoked
        );
    }
}
