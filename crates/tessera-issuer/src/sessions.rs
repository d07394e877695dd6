//! Ending sessions and tokens: RFC 7009 revocation, logout, the signed-in user's session list, and
//! revoking every session of a user.

use std::sync::Arc;

use serde::Serialize;
use tessera_core::{AccessTokenClaims, Clock, TokenTypeHint};

use tessera_server::Denial;

use crate::clients::{ClientDirectory, ClientRegistration};
use crate::error::TokenError;
use crate::events::{AuthEvent, Events};
use crate::minting::Minter;
use crate::params::Params;
use crate::refresh::{RefreshToken, RefreshTokens};
use crate::store::{Family, FamilyId, RefreshStore, Revoke, RevokeReason, StoreError};

/// One session of the signed-in user, as `GET /sessions` lists it.
#[derive(Debug, Serialize)]
pub(crate) struct Session {
    /// The session (family) id, for `DELETE /sessions/{id}`.
    id: FamilyId,
    /// The client the session belongs to.
    client_id: String,
    /// Login time, seconds since the Unix epoch.
    created_at: i64,
    /// Last refresh (or login) time.
    last_used_at: i64,
    /// When the session ends unless refreshed (never after the absolute end).
    expires_at: i64,
    /// The `User-Agent` at login.
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    /// Whether the access token of this request belongs to this session.
    current: bool,
}

/// How long denials last, in seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenialPolicy {
    /// How long a revoked family's access tokens stay denied: the access-token lifetime plus `leeway`.
    pub(crate) deny_access_for: i64,
    /// The largest clock leeway of the verifiers: a denial outlives the `exp` of what it denies by this.
    pub(crate) leeway: i64,
}

/// Revocation and sessions: writes every revocation to the store (a family's revocation and the denial of
/// its access tokens in one step; the store the parts see mirrors it on the in-memory denylist), and
/// reports it as an event.
pub(crate) struct Sessions<S> {
    store: Arc<S>,
    refresh: Arc<RefreshTokens<S>>,
    minter: Arc<Minter>,
    clients: Arc<ClientDirectory>,
    policy: DenialPolicy,
    events: Events,
    clock: Arc<dyn Clock>,
}

impl<S: RefreshStore> Sessions<S> {
    pub(crate) fn new(
        store: Arc<S>,
        refresh: Arc<RefreshTokens<S>>,
        minter: Arc<Minter>,
        clients: Arc<ClientDirectory>,
        policy: DenialPolicy,
        events: Events,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Sessions {
            store,
            refresh,
            minter,
            clients,
            policy,
            events,
            clock,
        }
    }

    /// RFC 7009: revokes a refresh token's family or denies an access token; unknown tokens are fine.
    pub(crate) async fn revoke(
        &self,
        params: &Params,
        basic: Option<&str>,
    ) -> Result<(), TokenError> {
        let token = params.require("token")?;
        // RFC 7009 §2.1: the hint only orders the lookups.
        let access_first = params.token_type_hint()? == Some(TokenTypeHint::AccessToken);
        let client = self
            .clients
            .identify(params, basic, None, self.now())
            .await?;
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
        let client = self
            .clients
            .identify(params, basic, None, self.now())
            .await?;
        self.revoke_refresh_token(token, client.as_deref(), RevokeReason::Logout)
            .await?;
        Ok(())
    }

    /// `POST /logout-all`: ends every session of the signed-in user and denies their access tokens.
    pub(crate) async fn logout_all(&self, claims: &AccessTokenClaims) -> Result<usize, TokenError> {
        self.deny_access_token(&claims.jti, claims.exp).await?;
        Ok(self
            .revoke_user(&claims.sub, RevokeReason::UserRevoked)
            .await?)
    }

    /// `GET /sessions`: the signed-in user's live sessions, oldest first.
    pub(crate) async fn list(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<Vec<Session>, TokenError> {
        let current = claims.extra.get("sid").and_then(serde_json::Value::as_str);
        let families = self.store.live_families(&claims.sub, self.now()).await?;
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
    pub(crate) async fn end(
        &self,
        claims: &AccessTokenClaims,
        id: String,
    ) -> Result<(), TokenError> {
        let id = FamilyId::from(id);
        let family = self.store.find_family(&id).await?;
        let Some(family) =
            family.filter(|family| family.user_id == claims.sub && family.is_live(self.now()))
        else {
            return Err(TokenError::SessionNotFound);
        };
        Ok(self
            .revoke_family(&family.id, RevokeReason::SessionEnded)
            .await?)
    }

    /// Ends every session of a user and denies their access tokens: those of each session ended, by `sid`,
    /// whenever they were minted (a refresh racing this revocation mints a token of a session it ends), and
    /// every one issued before now. Returns how many sessions were ended.
    pub(crate) async fn revoke_user(
        &self,
        user_id: &str,
        reason: RevokeReason,
    ) -> Result<usize, StoreError> {
        let revoked = self
            .store
            .revoke_user(user_id, self.revocation(reason))
            .await?;
        let ended = revoked.len();
        self.report(revoked, reason);
        Ok(ended)
    }

    /// Ends one session and denies its access tokens.
    async fn revoke_family(&self, id: &FamilyId, reason: RevokeReason) -> Result<(), StoreError> {
        let revoked = self
            .store
            .revoke_family(id, self.revocation(reason))
            .await?;
        self.report(revoked, reason);
        Ok(())
    }

    /// A revocation for `reason`, now.
    fn revocation(&self, reason: RevokeReason) -> Revoke {
        Revoke {
            reason,
            now: self.now(),
            deny_access_for: self.policy.deny_access_for,
        }
    }

    /// One [`AuthEvent::Revoked`] per family this revocation ended.
    fn report(&self, revoked: impl IntoIterator<Item = Family>, reason: RevokeReason) {
        for family in revoked {
            self.events.emit(AuthEvent::Revoked {
                user_id: family.user_id,
                client_id: family.client_id,
                family_id: family.id,
                reason,
            });
        }
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
        let Some(family) = self.refresh.family_of(&token).await? else {
            return Ok(false);
        };
        self.clients.check_owner(&family.client_id, client)?;
        self.revoke_family(&family.id, reason).await?;
        Ok(true)
    }

    /// Denies `token` if it is a valid access token of ours; `Ok(false)` if it is not one.
    async fn revoke_access_token(
        &self,
        token: &str,
        client: Option<&ClientRegistration>,
    ) -> Result<bool, TokenError> {
        let Some(claims) = self.minter.recognise(token) else {
            return Ok(false);
        };
        self.clients.check_owner(&claims.client_id, client)?;
        // Verifiers accept it until `exp` plus their leeway: deny it until then.
        if claims.exp.saturating_add(self.policy.leeway) > self.now() {
            self.deny_access_token(&claims.jti, claims.exp).await?;
            self.events.emit(AuthEvent::AccessTokenRevoked {
                subject: claims.sub,
                jti: claims.jti,
            });
        }
        Ok(true)
    }

    /// Denies one access token until its `exp` plus the verifiers' leeway, in memory and in the store.
    async fn deny_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let denial = Denial::token(jti, expires_at.saturating_add(self.policy.leeway));
        self.store.deny(denial).await
    }

    fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }
}
