//! Wiring the issuer into `tessera_server::JwtAuthLayer`: its keys, issuer, audience, and the access-token
//! denylist as the layer's revocation check.

use std::sync::Arc;

use tessera_server::{
    BuildError, JwtAuthBuilder, JwtAuthLayer, RevocationCheck, RevocationFuture, TokenStatus,
    VerifiedToken,
};

use crate::denylist::AccessTokenDenylist;
use crate::issuer::Issuer;

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
