//! Ending sessions and tokens: RFC 7009 revocation, logout, and the signed-in user's session list.

use serde::Serialize;
use tessera_core::AccessTokenClaims;
use tessera_core::jose::Jws;

use crate::clients::ClientRegistration;
use crate::error::TokenError;
use crate::events::AuthEvent;
use crate::issuer::Issuer;
use crate::params::Params;
use crate::refresh::RefreshToken;
use crate::store::{FamilyId, RefreshStore, RevokeReason};

/// One session of the signed-in user, as `GET /sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The session (family) id, for `DELETE /sessions/{id}`.
    pub id: FamilyId,
    /// The client the session belongs to.
    pub client_id: String,
    /// Login time, seconds since the Unix epoch.
    pub created_at: i64,
    /// Last refresh (or login) time.
    pub last_used_at: i64,
    /// When the session ends unless refreshed (never after the absolute end).
    pub expires_at: i64,
    /// The `User-Agent` at login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Whether the access token of this request belongs to this session.
    pub current: bool,
}

impl<S: RefreshStore> Issuer<S> {
    /// RFC 7009: revokes a refresh token's family or denies an access token; unknown tokens are fine.
    pub(crate) async fn revoke(
        &self,
        params: &Params,
        basic: Option<&str>,
    ) -> Result<(), TokenError> {
        let token = params.require("token")?;
        // RFC 7009 §2.1: the hint only orders the lookups; an unknown hint is ignored.
        let access_first = params.get("token_type_hint")? == Some("access_token");
        let client = self.authenticate_client(params, basic, None).await?;
        let client = client.as_deref();
        if access_first {
            if !self.revoke_access_token(token, client).await? {
                self.revoke_refresh_token(token, client, RevokeReason::TokenRevoked)
                    .await?;
            }
        } else if !self
            .revoke_refresh_token(token, client, RevokeReason::TokenRevoked)
            .await?
        {
            self.revoke_access_token(token, client).await?;
        }
        Ok(())
    }

    /// `POST /logout`: ends the session of the presented refresh token.
    pub(crate) async fn logout(
        &self,
        params: &Params,
        basic: Option<&str>,
    ) -> Result<(), TokenError> {
        let token = params.require("refresh_token")?;
        let client = self.authenticate_client(params, basic, None).await?;
        self.revoke_refresh_token(token, client.as_deref(), RevokeReason::Logout)
            .await?;
        Ok(())
    }

    /// `POST /logout-all`: ends every session of the signed-in user and denies their access tokens.
    pub(crate) async fn logout_all(&self, claims: &AccessTokenClaims) -> Result<usize, TokenError> {
        self.deny_access_token(&claims.jti, claims.exp)
            .await
            .map_err(TokenError::internal)?;
        self.revoke_user_for(&claims.sub, RevokeReason::UserRevoked)
            .await
            .map_err(TokenError::internal)
    }

    /// `GET /sessions`: the signed-in user's live sessions, oldest first.
    pub(crate) async fn sessions(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<Vec<Session>, TokenError> {
        let current = claims.extra.get("sid").and_then(serde_json::Value::as_str);
        let families = self
            .inner
            .store
            .live_families(&claims.sub, self.now())
            .await
            .map_err(TokenError::internal)?;
        Ok(families
            .into_iter()
            .map(|family| Session {
                current: current == Some(family.id.as_str()),
                expires_at: family.expires_at(),
                id: family.id,
                client_id: family.client_id,
                created_at: family.created_at,
                last_used_at: family.last_used_at,
                user_agent: family.user_agent,
            })
            .collect())
    }

    /// `DELETE /sessions/{id}`: ends one session of the signed-in user.
    pub(crate) async fn end_session(
        &self,
        claims: &AccessTokenClaims,
        id: &str,
    ) -> Result<(), TokenError> {
        let id = FamilyId::from(id.to_owned());
        let family = self
            .inner
            .store
            .find_family(&id)
            .await
            .map_err(TokenError::internal)?;
        let Some(family) =
            family.filter(|family| family.user_id == claims.sub && family.is_live(self.now()))
        else {
            return Err(TokenError::SessionNotFound);
        };
        self.revoke_family(&family.id, RevokeReason::SessionEnded)
            .await
    }

    async fn revoke_family(&self, id: &FamilyId, reason: RevokeReason) -> Result<(), TokenError> {
        let revoked = self
            .inner
            .store
            .revoke_family(id, reason, self.now())
            .await
            .map_err(TokenError::internal)?;
        if let Some(family) = revoked {
            self.emit(AuthEvent::Revoked {
                user_id: family.user_id,
                client_id: family.client_id,
                family_id: family.id,
                reason,
            });
        }
        Ok(())
    }

    /// Revokes the family of `token` if it is one of ours; `Ok(false)` if it is not a known refresh token.
    async fn revoke_refresh_token(
        &self,
        token: &str,
        client: Option<&ClientRegistration>,
        reason: RevokeReason,
    ) -> Result<bool, TokenError> {
        let Some(token) = RefreshToken::parse(token) else {
            return Ok(false);
        };
        let hash = self.inner.secret.hash(&token);
        let Some(family) = self
            .inner
            .store
            .find_by_token(hash)
            .await
            .map_err(TokenError::internal)?
        else {
            return Ok(false);
        };
        self.check_owner(&family.client_id, client)?;
        self.revoke_family(&family.id, reason).await?;
        Ok(true)
    }

    /// Denies `token` if it is a valid access token of ours; `Ok(false)` if it is not one.
    async fn revoke_access_token(
        &self,
        token: &str,
        client: Option<&ClientRegistration>,
    ) -> Result<bool, TokenError> {
        let Some(claims) = self.verify_access_token(token) else {
            return Ok(false);
        };
        self.check_owner(&claims.client_id, client)?;
        if claims.exp > self.now() {
            self.deny_access_token(&claims.jti, claims.exp)
                .await
                .map_err(TokenError::internal)?;
            self.emit(AuthEvent::AccessTokenRevoked {
                subject: claims.sub,
                jti: claims.jti,
            });
        }
        Ok(true)
    }

    /// The claims of an access token this service signed (expired or not).
    fn verify_access_token(&self, token: &str) -> Option<AccessTokenClaims> {
        let claims: AccessTokenClaims = Jws::parse(token)
            .ok()?
            .verify_in(self.keys().verifying())
            .ok()?
            .claims()
            .ok()?;
        let ours = claims.iss == self.issuer()
            && self
                .audiences()
                .any(|audience| claims.aud.contains(audience));
        ours.then_some(claims)
    }

    /// A token may be revoked by the client it was issued to; a public client's token also by anyone
    /// holding it (possession is all a public client has).
    fn check_owner(
        &self,
        owner: &str,
        client: Option<&ClientRegistration>,
    ) -> Result<(), TokenError> {
        match client {
            Some(client) if client.id() == owner => Ok(()),
            Some(_) => Err(TokenError::InvalidClient(
                "the token was issued to another client".into(),
            )),
            None => match self.inner.clients.get(owner) {
                Some(owner) if !owner.is_confidential() => Ok(()),
                _ => Err(TokenError::InvalidClient(
                    "the token belongs to a confidential client, which must authenticate".into(),
                )),
            },
        }
    }
}
