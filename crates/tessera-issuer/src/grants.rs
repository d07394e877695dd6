//! The token endpoint's grants: `password`, `refresh_token`, `client_credentials` (RFC 6749 §4.3, §4.4, §6).

use std::sync::Arc;

use tessera_core::{BEARER, GrantType, TokenResponse};

use crate::clients::{ClientError, ClientRegistration, PresentedClient};
use crate::error::TokenError;
use crate::events::{AuthEvent, LoginFailure};
use crate::issuer::Issuer;
use crate::minting::TokenContext;
use crate::params::Params;
use crate::refresh::{RefreshToken, RotationSalt, TokenHash};
use crate::store::{Family, FamilyId, NewFamily, RefreshStore, Rotation, RotationOutcome};

const BAD_CREDENTIALS: &str = "The username or password is incorrect";
const UNKNOWN_REFRESH: &str = "The refresh token is invalid";
const EXPIRED_REFRESH: &str = "The refresh token expired; log in again";
const REVOKED_REFRESH: &str = "The refresh token was revoked; log in again";
const REUSED_REFRESH: &str =
    "The refresh token was already used; the session was ended for safety, log in again";
const FOREIGN_REFRESH: &str = "The refresh token was issued to another client";

impl<S: RefreshStore> Issuer<S> {
    /// Serves one token-endpoint request.
    pub(crate) async fn token(
        &self,
        params: &Params,
        basic: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let grant_type = match params.require("grant_type")? {
            "password" => GrantType::Password,
            "refresh_token" => GrantType::RefreshToken,
            "client_credentials" => GrantType::ClientCredentials,
            other => {
                return Err(TokenError::UnsupportedGrantType(format!(
                    "the grant type `{other}` is not supported; use password, refresh_token or client_credentials"
                )));
            }
        };
        let client = self
            .authenticate_client(params, basic, Some(grant_type))
            .await?;
        if let Some(client) = &client
            && !client.allows(grant_type)
        {
            return Err(TokenError::UnauthorizedClient(format!(
                "the client `{}` may not use the {} grant",
                client.id(),
                grant_type.as_str()
            )));
        }
        match grant_type {
            GrantType::Password => {
                let client = client.ok_or_else(|| {
                    TokenError::InvalidClient(
                        "identify the client with `client_id` or client authentication".into(),
                    )
                })?;
                self.password_grant(&client, params, user_agent).await
            }
            GrantType::RefreshToken => self.refresh_grant(client.as_deref(), params).await,
            GrantType::ClientCredentials => {
                let client = client.ok_or_else(|| {
                    TokenError::InvalidClient(
                        "the client_credentials grant requires client authentication".into(),
                    )
                })?;
                self.client_credentials_grant(&client, params)
            }
        }
    }

    /// Identifies the client of a token or revocation request; `None` if the request names none.
    pub(crate) async fn authenticate_client(
        &self,
        params: &Params,
        basic: Option<&str>,
        grant_type: Option<GrantType>,
    ) -> Result<Option<Arc<ClientRegistration>>, TokenError> {
        let presented = PresentedClient {
            basic,
            client_id: params.get("client_id")?,
            client_secret: params.get("client_secret")?,
            assertion_type: params.get("client_assertion_type")?,
            assertion: params.get("client_assertion")?,
        };
        match self
            .inner
            .clients
            .authenticate(&presented, self.now())
            .await
        {
            Ok(client) => Ok(client),
            Err(ClientError::Malformed(description)) => {
                Err(TokenError::InvalidRequest(description))
            }
            Err(ClientError::Rejected(description)) => {
                self.emit(AuthEvent::ClientAuthenticationFailed {
                    client_id: presented.claimed_id(),
                    grant_type,
                });
                Err(TokenError::InvalidClient(description))
            }
        }
    }

    async fn password_grant(
        &self,
        client: &ClientRegistration,
        params: &Params,
        user_agent: Option<&str>,
    ) -> Result<TokenResponse, TokenError> {
        let username = params.require("username")?;
        let password = params.require("password")?;
        let scope = grant_scope(client, params.get("scope")?)?;
        let now = self.now();
        let failed = |reason| AuthEvent::LoginFailed {
            username: username.to_owned(),
            client_id: client.id().to_owned(),
            reason,
        };
        if let Err(retry_after) = self.inner.throttle.check(username, now) {
            self.emit(failed(LoginFailure::Throttled));
            return Err(TokenError::Throttled { retry_after });
        }
        let Some(user) = self
            .inner
            .verifier
            .verify(username, password)
            .await
            .map_err(TokenError::internal)?
        else {
            self.inner.throttle.record_failure(username, now);
            self.emit(failed(LoginFailure::BadCredentials));
            return Err(TokenError::InvalidGrant(BAD_CREDENTIALS));
        };
        self.inner.throttle.record_success(username);

        let token = RefreshToken::generate().map_err(TokenError::internal)?;
        let family_id = FamilyId::generate().map_err(TokenError::internal)?;
        let settings = &self.inner.settings;
        let new = NewFamily {
            id: family_id.clone(),
            user_id: user.subject.clone(),
            client_id: client.id().to_owned(),
            scope: scope.clone(),
            roles: user.roles.clone(),
            user_agent: user_agent.map(str::to_owned),
            token: self.inner.secret.hash(&token),
            created_at: now,
            absolute_expires_at: now.saturating_add(settings.absolute_ttl),
            idle_expires_at: now.saturating_add(settings.idle_ttl),
        };
        let evicted = self
            .inner
            .store
            .create_family(new, settings.family_cap)
            .await
            .map_err(TokenError::internal)?;
        for family in evicted {
            self.emit(AuthEvent::EvictedByCap {
                user_id: family.user_id,
                client_id: family.client_id,
                family_id: family.id,
            });
        }
        let context = TokenContext {
            subject: &user.subject,
            client_id: client.id(),
            scope: scope.as_deref(),
            roles: &user.roles,
            grant_type: GrantType::Password,
        };
        let access = self
            .inner
            .minter
            .mint(&context, Some(family_id.as_str()), now)
            .map_err(TokenError::internal)?;
        self.emit(AuthEvent::LoginSucceeded {
            user_id: user.subject.clone(),
            client_id: client.id().to_owned(),
            family_id,
        });
        Ok(TokenResponse {
            access_token: access.token,
            token_type: BEARER.to_owned(),
            expires_in: Some(access.expires_in),
            refresh_token: Some(token.encode()),
            scope,
        })
    }

    async fn refresh_grant(
        &self,
        client: Option<&ClientRegistration>,
        params: &Params,
    ) -> Result<TokenResponse, TokenError> {
        let presented_text = params.require("refresh_token")?;
        let requested_scope = params.get("scope")?;
        if let Some(requested) = requested_scope {
            validate_scope_syntax(requested)?;
        }
        let presented =
            RefreshToken::parse(presented_text).ok_or(TokenError::InvalidGrant(UNKNOWN_REFRESH))?;
        let secret = &self.inner.secret;
        let presented_hash = secret.hash(&presented);
        let client_id = self
            .refresh_client(client, presented_hash, requested_scope)
            .await?;
        let salt = RotationSalt::generate().map_err(TokenError::internal)?;
        let successor = secret.successor(&presented, &salt);
        let now = self.now();
        let settings = &self.inner.settings;
        let rotation = Rotation {
            presented: presented_hash,
            client_id,
            successor: secret.hash(&successor),
            salt,
            now,
            idle_ttl: settings.idle_ttl,
            grace: settings.grace,
        };
        let outcome = self
            .inner
            .store
            .rotate(rotation)
            .await
            .map_err(TokenError::internal)?;
        let (family, successor) = self.settle(outcome, &presented, successor)?;
        let scope = narrow_scope(family.scope.as_deref(), requested_scope)?;
        let context = TokenContext {
            subject: &family.user_id,
            client_id: &family.client_id,
            scope: scope.as_deref(),
            roles: &family.roles,
            grant_type: GrantType::RefreshToken,
        };
        let access = self
            .inner
            .minter
            .mint(&context, Some(family.id.as_str()), now)
            .map_err(TokenError::internal)?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: BEARER.to_owned(),
            expires_in: Some(access.expires_in),
            refresh_token: Some(successor.encode()),
            scope,
        })
    }

    /// The client a refresh is for, checked before anything is consumed.
    ///
    /// A pre-read of the family is needed only when the request leaves something to check against it:
    /// which client it belongs to (no client named), or whether a requested scope really narrows. Both
    /// never change, so checking before the atomic rotation is race-free, and a refused request consumes
    /// nothing.
    async fn refresh_client(
        &self,
        client: Option<&ClientRegistration>,
        presented: TokenHash,
        requested_scope: Option<&str>,
    ) -> Result<String, TokenError> {
        if let (Some(client), None) = (client, requested_scope) {
            return Ok(client.id().to_owned());
        }
        let family = self
            .inner
            .store
            .find_by_token(presented)
            .await
            .map_err(TokenError::internal)?;
        let family = family.ok_or(TokenError::InvalidGrant(UNKNOWN_REFRESH))?;
        narrow_scope(family.scope.as_deref(), requested_scope)?;
        if let Some(client) = client {
            return Ok(client.id().to_owned());
        }
        // No client named: the family says which client it belongs to, and that client must be a public
        // one (a confidential client always authenticates).
        match self.inner.clients.get(&family.client_id) {
            Some(owner) if !owner.is_confidential() => Ok(family.client_id),
            _ => Err(TokenError::InvalidClient(
                "this refresh token belongs to a confidential client, which must authenticate"
                    .into(),
            )),
        }
    }

    /// Turns the store's verdict into the family and the refresh token to answer with, emitting events.
    fn settle(
        &self,
        outcome: RotationOutcome,
        presented: &RefreshToken,
        successor: RefreshToken,
    ) -> Result<(Family, RefreshToken), TokenError> {
        let secret = &self.inner.secret;
        match outcome {
            RotationOutcome::Rotated(family) => {
                self.emit(AuthEvent::Refreshed {
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
                let successor = secret.successor(presented, &salt);
                if !secret.hash(&successor).ct_eq(&current) {
                    // Only possible if the refresh secret changed since the rotation.
                    return Err(TokenError::Internal(format!(
                        "family {}: the re-derived successor does not match the stored one",
                        family.id
                    )));
                }
                self.emit(AuthEvent::RetryServed {
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
                self.emit(AuthEvent::ReuseDetected {
                    user_id: family.user_id,
                    client_id: family.client_id,
                    family_id: family.id,
                    presented_generation,
                    current_generation: family.generation,
                });
                Err(TokenError::InvalidGrant(REUSED_REFRESH))
            }
            RotationOutcome::WrongClient(_) => Err(TokenError::InvalidGrant(FOREIGN_REFRESH)),
            RotationOutcome::Revoked(_) => Err(TokenError::InvalidGrant(REVOKED_REFRESH)),
            RotationOutcome::Expired(_) => Err(TokenError::InvalidGrant(EXPIRED_REFRESH)),
            RotationOutcome::Unknown => Err(TokenError::InvalidGrant(UNKNOWN_REFRESH)),
        }
    }

    fn client_credentials_grant(
        &self,
        client: &ClientRegistration,
        params: &Params,
    ) -> Result<TokenResponse, TokenError> {
        if !client.is_confidential() {
            return Err(TokenError::UnauthorizedClient(
                "public clients cannot use the client_credentials grant".into(),
            ));
        }
        let scope = grant_scope(client, params.get("scope")?)?;
        let context = TokenContext {
            subject: client.id(),
            client_id: client.id(),
            scope: scope.as_deref(),
            roles: &[],
            grant_type: GrantType::ClientCredentials,
        };
        let access = self
            .inner
            .minter
            .mint(&context, None, self.now())
            .map_err(TokenError::internal)?;
        self.emit(AuthEvent::ClientTokenIssued {
            client_id: client.id().to_owned(),
        });
        Ok(TokenResponse {
            access_token: access.token,
            token_type: BEARER.to_owned(),
            expires_in: Some(access.expires_in),
            refresh_token: None,
            scope,
        })
    }
}

/// The scope to grant a client: what it asked for, which must be among its allowed scopes, or all of
/// them if it asked for nothing.
fn grant_scope(
    client: &ClientRegistration,
    requested: Option<&str>,
) -> Result<Option<String>, TokenError> {
    let Some(requested) = requested else {
        let all = client.allowed_scopes().join(" ");
        return Ok((!all.is_empty()).then_some(all));
    };
    validate_scope_syntax(requested)?;
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ').filter(|scope| !scope.is_empty()) {
        if !client
            .allowed_scopes()
            .iter()
            .any(|allowed| allowed == scope)
        {
            return Err(TokenError::InvalidScope(format!(
                "the scope `{scope}` is not allowed for the client `{}`",
                client.id()
            )));
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(Some(granted.join(" ")))
}

/// The scope of a refreshed access token: the family's, or a subset of it (RFC 6749 §6).
fn narrow_scope(
    original: Option<&str>,
    requested: Option<&str>,
) -> Result<Option<String>, TokenError> {
    let Some(requested) = requested else {
        return Ok(original.map(str::to_owned));
    };
    let original: Vec<&str> = original.unwrap_or_default().split(' ').collect();
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ').filter(|scope| !scope.is_empty()) {
        if !original.contains(&scope) {
            return Err(TokenError::InvalidScope(format!(
                "the scope `{scope}` was not granted at login; a refresh can only narrow the scope"
            )));
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(Some(granted.join(" ")))
}

/// `scope = scope-token *( SP scope-token )`, `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn validate_scope_syntax(scope: &str) -> Result<(), TokenError> {
    let valid_char =
        |c: char| c == '\x21' || ('\x23'..='\x5b').contains(&c) || ('\x5d'..='\x7e').contains(&c);
    let tokens_valid = scope
        .split(' ')
        .all(|token| !token.is_empty() && token.chars().all(valid_char));
    if tokens_valid {
        Ok(())
    } else {
        Err(TokenError::InvalidScope(
            "the scope must be space-separated tokens of printable ASCII without quotes or backslashes".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_granted_within_the_client_allowance() {
        let client = ClientRegistration::public("web").scopes(["read", "write"]);
        assert_eq!(
            grant_scope(&client, None).unwrap().as_deref(),
            Some("read write")
        );
        assert_eq!(
            grant_scope(&client, Some("write read write"))
                .unwrap()
                .as_deref(),
            Some("write read")
        );
        assert!(matches!(
            grant_scope(&client, Some("admin")),
            Err(TokenError::InvalidScope(_))
        ));
        assert!(matches!(
            grant_scope(&client, Some("read  write")),
            Err(TokenError::InvalidScope(_))
        ));
        assert_eq!(
            grant_scope(&ClientRegistration::public("bare"), None).unwrap(),
            None
        );
    }

    #[test]
    fn refresh_can_only_narrow() {
        assert_eq!(
            narrow_scope(Some("read write"), None).unwrap().as_deref(),
            Some("read write")
        );
        assert_eq!(
            narrow_scope(Some("read write"), Some("read"))
                .unwrap()
                .as_deref(),
            Some("read")
        );
        assert!(matches!(
            narrow_scope(Some("read"), Some("read write")),
            Err(TokenError::InvalidScope(_))
        ));
        assert!(matches!(
            narrow_scope(None, Some("read")),
            Err(TokenError::InvalidScope(_))
        ));
    }

    #[test]
    fn scope_syntax_follows_rfc_6749() {
        assert!(validate_scope_syntax("read:all write").is_ok());
        for bad in ["", " read", "read ", "a\"b", "a\\b", "caf\u{e9}"] {
            assert!(validate_scope_syntax(bad).is_err(), "{bad:?}");
        }
    }
}
