//! [`Issuer`]: the token service, cheap to clone, shared by its HTTP handlers and your code.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::jose::JwkSet;

use crate::clients::ClientDirectory;
use crate::config::IssuerBuilder;
use crate::credentials::CredentialVerifier;
use crate::denylist::AccessTokenDenylist;
use crate::events::{self, AuthEvent, AuthEventHook};
use crate::keys::SigningKeys;
use crate::minting::Minter;
use crate::refresh::RefreshSecret;
use crate::store::{PurgeReport, RefreshStore, RevokeReason, StoreError, UserDenial};
use crate::throttle::LoginThrottle;
use tessera_core::Clock;

/// The token service: grants, rotation, revocation, on a [`RefreshStore`].
///
/// Build it with [`Issuer::builder`]; mount [`Issuer::router`] under `/auth` and [`Issuer::jwks_router`] at
/// the root. Clones share everything.
pub struct Issuer<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S> Clone for Issuer<S> {
    fn clone(&self) -> Self {
        Issuer {
            inner: self.inner.clone(),
        }
    }
}

impl<S> fmt::Debug for Issuer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.inner.minter.issuer)
            .field("audience", &self.inner.minter.audience)
            .field("signing_kid", &self.inner.minter.keys.signer().kid())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<S> {
    pub(crate) store: S,
    pub(crate) minter: Minter,
    pub(crate) secret: RefreshSecret,
    pub(crate) clients: ClientDirectory,
    pub(crate) verifier: Arc<dyn CredentialVerifier>,
    pub(crate) throttle: LoginThrottle,
    pub(crate) denylist: AccessTokenDenylist,
    pub(crate) events: Option<Arc<dyn AuthEventHook>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
}

/// Validated settings, durations in whole seconds.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) access_ttl: i64,
    pub(crate) absolute_ttl: i64,
    pub(crate) idle_ttl: i64,
    pub(crate) grace: i64,
    pub(crate) family_cap: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) purge_interval: Duration,
    pub(crate) purge_batch: usize,
}

impl Issuer<()> {
    /// Starts configuring a token service.
    pub fn builder() -> IssuerBuilder {
        IssuerBuilder::default()
    }
}

impl<S> Issuer<S> {
    pub(crate) fn from_inner(inner: Inner<S>) -> Self {
        Issuer {
            inner: Arc::new(inner),
        }
    }

    /// The signing and verifying keys.
    pub fn keys(&self) -> &SigningKeys {
        &self.inner.minter.keys
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> &JwkSet {
        self.inner.minter.keys.jwks()
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.inner.minter.issuer
    }

    /// The `aud` values of the tokens.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.inner.minter.audience.iter()
    }

    /// The revoked access tokens; `JwtAuthLayer` consults it (see [`Issuer::auth_layer`]).
    pub fn denylist(&self) -> &AccessTokenDenylist {
        &self.inner.denylist
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.unix_seconds()
    }

    pub(crate) fn emit(&self, event: AuthEvent) {
        events::trace(&event);
        if let Some(hook) = &self.inner.events {
            hook.on_event(&event);
        }
    }
}

impl<S: RefreshStore> Issuer<S> {
    /// Ends every session of a user (for a password change or an administrator): revokes all their
    /// refresh-token families and denies their access tokens issued so far. Returns how many sessions
    /// were ended.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails.
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.revoke_user_for(user_id, RevokeReason::UserRevoked)
            .await
    }

    pub(crate) async fn revoke_user_for(
        &self,
        user_id: &str,
        reason: RevokeReason,
    ) -> Result<usize, StoreError> {
        let now = self.now();
        let denial = UserDenial {
            user_id: user_id.to_owned(),
            issued_before: now,
            until: now.saturating_add(self.inner.settings.access_ttl),
        };
        self.inner.denylist.insert_user(&denial);
        self.inner.store.deny_user_tokens(denial).await?;
        let revoked = self
            .inner
            .store
            .revoke_user(user_id, reason, self.now())
            .await?;
        for family in &revoked {
            self.emit(AuthEvent::Revoked {
                user_id: family.user_id.clone(),
                client_id: family.client_id.clone(),
                family_id: family.id.clone(),
                reason,
            });
        }
        Ok(revoked.len())
    }

    /// Denies one access token until its `exp`, in memory and in the store.
    pub(crate) async fn deny_access_token(
        &self,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.inner.denylist.insert_jti(jti, expires_at);
        self.inner.store.deny_access_token(jti, expires_at).await
    }

    /// Loads the access-token revocations the store holds (made before a restart, or by another instance
    /// on the same database) into the in-memory denylist; returns how many are in force.
    /// [`Issuer::spawn_purge_task`] calls it at start and on every tick; call it yourself before serving
    /// if you do not run that task.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails.
    pub async fn load_denylist(&self) -> Result<usize, StoreError> {
        let denials = self.inner.store.access_denials(self.now()).await?;
        Ok(self.inner.denylist.merge(&denials))
    }

    /// Deletes everything that expired, batch by batch, and sweeps the access-token denylist.
    ///
    /// Each batch is one short store operation and the loop yields between batches, so requests
    /// interleave with a long purge instead of waiting for it.
    ///
    /// # Errors
    /// [`StoreError`] if the store fails; what was purged before stays purged.
    pub async fn purge_expired(&self) -> Result<PurgeReport, StoreError> {
        self.inner.denylist.sweep();
        let mut total = PurgeReport::default();
        loop {
            let report = self
                .inner
                .store
                .purge_expired(self.now(), self.inner.settings.purge_batch)
                .await?;
            if report.is_empty() {
                return Ok(total);
            }
            total.tokens += report.tokens;
            total.families += report.families;
            total.denials += report.denials;
            tokio::task::yield_now().await;
        }
    }

    /// Spawns the background maintenance: at start and then at the configured interval,
    /// [`Issuer::load_denylist`] and [`Issuer::purge_expired`]. Abort the handle to stop it. Needs a tokio
    /// runtime with the time driver.
    pub fn spawn_purge_task(&self) -> tokio::task::JoinHandle<()> {
        let issuer = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(issuer.inner.settings.purge_interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = issuer.load_denylist().await {
                    tracing::error!(%error, "loading revoked access tokens failed; will retry");
                }
                match issuer.purge_expired().await {
                    Ok(report) if !report.is_empty() => {
                        tracing::info!(
                            tokens = report.tokens,
                            families = report.families,
                            "purged expired sessions"
                        );
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(%error, "purging expired sessions failed; will retry")
                    }
                }
            }
        })
    }
}
