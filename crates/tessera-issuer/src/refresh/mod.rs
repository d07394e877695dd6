//! Refresh tokens: their cryptography ([`token`]), and [`RefreshTokens`], which starts families at login,
//! rotates them at each refresh and finds the family of a presented token.

mod token;

use std::sync::Arc;

pub(crate) use self::token::{RefreshSecret, RefreshToken, Requester, TOKEN_LEN};
pub use self::token::{RequestFingerprint, RotationSalt, TokenHash};
use crate::error::TokenError;
use crate::events::{AuthEvent, Events};
use crate::store::{
    Family, FamilyId, NewFamily, RefreshStore, Rotation, RotationOutcome, StoreError,
};

/// The `invalid_grant` description of a refresh token nobody issued (or that was purged).
pub(crate) const UNKNOWN_REFRESH: &str = "The refresh token is invalid";
const EXPIRED_REFRESH: &str = "The refresh token expired; log in again";
const REVOKED_REFRESH: &str = "The refresh token was revoked; log in again";
const REUSED_REFRESH: &str =
    "The refresh token was already used; the session was ended for safety, log in again";
const FOREIGN_REFRESH: &str = "The refresh token was issued to another client";
const UNPROVEN_KEY: &str =
    "The refresh token is bound to a DPoP key; present a DPoP proof signed with that key";

/// How long families live and how many a user may have, validated by the builder; seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FamilyPolicy {
    /// The absolute lifetime, fixed at login.
    pub(crate) absolute_ttl: i64,
    /// The idle lifetime, slid by each rotation.
    pub(crate) idle_ttl: i64,
    /// How long after a rotation the previous token is an idempotent retry.
    pub(crate) grace: i64,
    /// How many retries of one generation are served.
    pub(crate) max_retries: u32,
    /// Live families per user and client before the oldest is evicted.
    pub(crate) cap: usize,
    /// How long a revoked family's access tokens stay denied (access-token lifetime plus leeway).
    pub(crate) deny_access_for: i64,
}

/// What a login starts a family for.
#[derive(Debug)]
pub(crate) struct Login<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) scope: Option<&'a str>,
    pub(crate) roles: &'a [String],
    pub(crate) user_agent: Option<&'a str>,
    /// The DPoP key thumbprint to bind the family's refresh tokens to.
    pub(crate) dpop_jkt: Option<&'a str>,
}

/// Refresh-token families in the store: the only part that turns tokens into hashes and back.
#[derive(Debug)]
pub(crate) struct RefreshTokens<S> {
    store: Arc<S>,
    secret: RefreshSecret,
    policy: FamilyPolicy,
    events: Events,
}

impl<S: RefreshStore> RefreshTokens<S> {
    pub(crate) fn new(
        store: Arc<S>,
        secret: RefreshSecret,
        policy: FamilyPolicy,
        events: Events,
    ) -> Self {
        RefreshTokens {
            store,
            secret,
            policy,
            events,
        }
    }

    /// Starts a family at `now`, evicting the user's oldest beyond the cap; returns its id and first token.
    pub(crate) async fn start(
        &self,
        login: Login<'_>,
        now: i64,
    ) -> Result<(FamilyId, RefreshToken), TokenError> {
        let token = RefreshToken::generate()?;
        let id = FamilyId::generate()?;
        let new = NewFamily {
            id: id.clone(),
            user_id: login.user_id.to_owned(),
            client_id: login.client_id.to_owned(),
            scope: login.scope.map(str::to_owned),
            roles: login.roles.to_vec(),
            user_agent: login.user_agent.map(str::to_owned),
            dpop_jkt: login.dpop_jkt.map(str::to_owned),
            token: self.secret.hash(&token),
            created_at: now,
            absolute_expires_at: now.saturating_add(self.policy.absolute_ttl),
            idle_expires_at: now.saturating_add(self.policy.idle_ttl),
        };
        for family in self.store.create_family(new, self.policy.cap).await? {
            self.events.emit(AuthEvent::EvictedByCap {
                user_id: family.user_id,
                client_id: family.client_id,
                family_id: family.id,
            });
        }
        Ok((id, token))
    }

    /// The family `token` belongs to, whichever its generation; `None` if no family knows it.
    pub(crate) async fn family_of(
        &self,
        token: &RefreshToken,
    ) -> Result<Option<Family>, StoreError> {
        self.store.find_by_token(self.secret.hash(token)).await
    }

    /// Rotates `presented` for `requester` at `now`: the family and the refresh token to answer with (the
    /// successor, or on a retry within grace by the same requester the same successor as before).
    pub(crate) async fn rotate(
        &self,
        presented: &RefreshToken,
        requester: Requester<'_>,
        now: i64,
    ) -> Result<(Family, RefreshToken), TokenError> {
        let salt = RotationSalt::generate()?;
        let successor = self.secret.successor(presented, &salt);
        let rotation = Rotation {
            presented: self.secret.hash(presented),
            client_id: requester.client_id.to_owned(),
            successor: self.secret.hash(&successor),
            salt,
            now,
            idle_ttl: self.policy.idle_ttl,
            grace: self.policy.grace,
            fingerprint: self.secret.fingerprint(&requester),
            max_retries: self.policy.max_retries,
            dpop_jkt: requester.dpop_jkt.map(str::to_owned),
            deny_access_for: self.policy.deny_access_for,
        };
        let outcome = self.store.rotate(rotation).await?;
        self.settle(outcome, presented, successor)
    }

    /// Turns the store's verdict into the family and the refresh token to answer with, emitting events.
    fn settle(
        &self,
        outcome: RotationOutcome,
        presented: &RefreshToken,
        successor: RefreshToken,
    ) -> Result<(Family, RefreshToken), TokenError> {
        match outcome {
            RotationOutcome::Rotated(family) => {
                self.events.emit(AuthEvent::Refreshed {
                    user_id: family.user_id.clone(),
                    client_id: family.client_id.clone(),
                    family_id: family.id.clone(),
                    generation: family.generation,
                });
                Ok((family, successor))
            }
            RotationOutcome::Retry {
                family,
                salt,
                successor: current,
            } => {
                let successor = self.secret.successor(presented, &salt);
                if !self.secret.hash(&successor).ct_eq(&current) {
                    // Only possible if the refresh secret changed since the rotation.
                    return Err(TokenError::Internal(format!(
                        "family {}: the re-derived successor does not match the stored one",
                        family.id
                    )));
                }
                self.events.emit(AuthEvent::RetryServed {
                    user_id: family.user_id.clone(),
                    client_id: family.client_id.clone(),
                    family_id: family.id.clone(),
                    generation: family.generation,
                });
                Ok((family, successor))
            }
            RotationOutcome::Replay {
                family,
                presented_generation,
            } => {
                self.events.emit(AuthEvent::ReuseDetected {
                    user_id: family.user_id,
                    client_id: family.client_id,
                    family_id: family.id,
                    presented_generation,
                    current_generation: family.generation,
                });
                Err(TokenError::InvalidGrant(REUSED_REFRESH))
            }
            RotationOutcome::WrongClient(_) => Err(TokenError::InvalidGrant(FOREIGN_REFRESH)),
            RotationOutcome::KeyMismatch(_) => Err(TokenError::InvalidGrant(UNPROVEN_KEY)),
            RotationOutcome::Revoked(_) => Err(TokenError::InvalidGrant(REVOKED_REFRESH)),
            RotationOutcome::Expired(_) => Err(TokenError::InvalidGrant(EXPIRED_REFRESH)),
            RotationOutcome::Unknown => Err(TokenError::InvalidGrant(UNKNOWN_REFRESH)),
        }
    }
}
