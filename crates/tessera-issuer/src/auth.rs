//! Wiring the issuer into `tessera_server::JwtAuthLayer`: its keys (following rotations), issuer, audience,
//! RFC 9068's strict checks, and the access-token denylist as the layer's revocation check.

use std::sync::Arc;

use tessera_server::{BuildError, JwtAuthBuilder, JwtAuthLayer, RevocationCheck};

use crate::issuer::Issuer;

impl<S> Issuer<S> {
    /// A `JwtAuthLayer` builder that trusts exactly this issuer: its verifying keys (each bound to its
    /// `kid` and algorithm, replaced when keys rotate), its `iss`, its audiences, its clock, RFC 9068's
    /// strict checks (`typ` `at+jwt` and the required claims: this issuer mints nothing else), and its
    /// denylist as the revocation check. Add requirements (scopes, leeway) and `build()` it; use it for
    /// `/api` routes and for [`Issuer::router`].
    ///
    /// Until the denylist is loaded ([`IssuerBuilder::start`](crate::IssuerBuilder::start) does it, or
    /// [`Issuer::load_denylist`]), the layer answers every token with 503: a process that just started never
    /// accepts a token revoked before it started.
    ///
    /// # Errors
    /// None today; the signature leaves room for key sources that can fail.
    pub fn auth_layer_builder(&self) -> Result<JwtAuthBuilder, BuildError> {
        let mut builder = JwtAuthLayer::builder()
            .issuer(self.issuer())
            .clock(Arc::clone(&self.inner.clock))
            .strict_rfc9068(true)
            .revocation(Arc::new(self.denylist().clone()) as Arc<dyn RevocationCheck>);
        for audience in self.audiences() {
            builder = builder.audience(audience);
        }
        Ok(builder.key_ring(self.live_keys().ring().clone()))
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
    use tessera_core::jose::{JwsHeader, SigningKey};
    use tessera_core::{ACCESS_TOKEN_JWT_TYPE, ManualClock};
    use tessera_server::{AuthRejection, RevocationAnswer, TokenStatus};

    use super::*;
    use crate::{MemoryStore, SigningKeys};

    const SECRET: [u8; 32] = [7; 32];
    const NOW: i64 = 1_767_225_600;

    fn token(jti: &str, typ: &str) -> String {
        let claims = serde_json::json!({
            "iss": "https://auth.example", "aud": "api", "sub": "alice", "client_id": "demo",
            "jti": jti, "iat": NOW - 10, "exp": NOW + 300,
        });
        let key = SigningKey::from_hmac_secret("k", &SECRET).unwrap();
        key.sign_jwt(JwsHeader::typed(typ), &claims).unwrap()
    }

    fn issuer() -> Issuer<MemoryStore> {
        Issuer::builder()
            .issuer("https://auth.example")
            .audience("api")
            .keys(SigningKeys::new(SigningKey::from_hmac_secret("k", &SECRET).unwrap()).unwrap())
            .public_client("demo")
            .clock(ManualClock::at_unix(NOW))
            .build(MemoryStore::new())
            .unwrap()
    }

    #[tokio::test]
    async fn the_denylist_answers_the_auth_layer_at_once() {
        let issuer = issuer();
        issuer.load_denylist().await.unwrap();
        let auth = issuer.auth_layer().unwrap();
        let verified = auth
            .verify(&token("t1", ACCESS_TOKEN_JWT_TYPE))
            .await
            .unwrap();
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
            auth.verify(&token("t2", ACCESS_TOKEN_JWT_TYPE))
                .await
                .unwrap_err(),
            AuthRejection::Revoked
        );
    }

    /// Issue 12 #14: until the denylist is loaded, nothing is accepted (a restart must not bring revoked
    /// tokens back for a moment).
    #[tokio::test]
    async fn before_the_denylist_is_loaded_every_token_is_refused_with_503() {
        let issuer = issuer();
        let auth = issuer.auth_layer().unwrap();
        assert_eq!(
            auth.verify(&token("t1", ACCESS_TOKEN_JWT_TYPE))
                .await
                .unwrap_err(),
            AuthRejection::RevocationUnavailable
        );
    }

    /// Issue 12 #13: the issuer mints RFC 9068 access tokens only, so its own layer checks `typ` strictly: a
    /// JWT signed with its key for another purpose is not an access token.
    #[tokio::test]
    async fn the_issuers_own_layer_refuses_jwts_that_are_not_access_tokens() {
        let issuer = issuer();
        issuer.load_denylist().await.unwrap();
        let auth = issuer.auth_layer().unwrap();
        assert_eq!(
            auth.verify(&token("t1", "JWT")).await.unwrap_err(),
            AuthRejection::WrongTokenType
        );
    }
}
