//! The token endpoint's grants: `password`, `refresh_token`, `client_credentials` (RFC 6749 §4.3, §4.4, §6).

use std::sync::Arc;

use tessera_core::jose::VerifiedProof;
use tessera_core::{BEARER, Clock, DPOP, GrantType, TokenResponse};

use crate::clients::{ClientDirectory, ClientRegistration};
use crate::credentials::{CredentialChecks, CredentialVerifier};
use crate::dpop::ProofChecker;
use crate::error::TokenError;
use crate::events::{AuthEvent, Events, LoginFailure};
use crate::minting::{MintedToken, Minter, TokenContext, client_subject, is_client_subject};
use crate::params::Params;
use crate::refresh::{Login, RefreshToken, RefreshTokens, Requester, UNKNOWN_REFRESH};
use crate::store::RefreshStore;
use crate::throttle::LoginThrottle;

const BAD_CREDENTIALS: &str = "The username or password is incorrect";

/// The longest username the password grant accepts, in bytes. Longer ones are refused before any
/// credential check or throttle entry, so a flood of distinct huge usernames costs neither hashing nor
/// memory.
pub const MAX_USERNAME_LEN: usize = 256;

/// How long a client shed by a full credential-check queue is asked to wait, seconds.
pub(crate) const OVERLOADED_RETRY_AFTER: u64 = 1;

/// The token endpoint: authenticates the client, checks the grant, its scope and its DPoP proof, and
/// answers with tokens.
pub(crate) struct Grants<S> {
    clients: Arc<ClientDirectory>,
    logins: Logins<S>,
    refresh: Arc<RefreshTokens<S>>,
    minter: Arc<Minter>,
    dpop: ProofChecker,
    events: Events,
    clock: Arc<dyn Clock>,
}

/// What the password grant checks logins with: the credential backend, the gate in front of it and the
/// throttle.
pub(crate) struct Logins<S> {
    pub(crate) verifier: Arc<dyn CredentialVerifier>,
    pub(crate) checks: Arc<CredentialChecks>,
    pub(crate) throttle: LoginThrottle<S>,
}

/// One token request, as the endpoint read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRequest<'a> {
    pub(crate) params: &'a Params,
    /// The `Authorization: Basic` credentials, still encoded.
    pub(crate) basic: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
    /// The `DPoP` header: the proof, if the request carried one.
    pub(crate) dpop: Option<&'a str>,
}

/// What [`Grants`] answers a token request with, before it is a [`TokenResponse`].
struct Issued {
    access: MintedToken,
    refresh_token: Option<RefreshToken>,
    scope: Option<String>,
    /// Whether the access token is bound to a DPoP key.
    dpop_bound: bool,
}

impl From<Issued> for TokenResponse {
    fn from(issued: Issued) -> TokenResponse {
        TokenResponse {
            access_token: issued.access.token,
            token_type: if issued.dpop_bound { DPOP } else { BEARER }.to_owned(),
            expires_in: Some(issued.access.expires_in),
            refresh_token: issued.refresh_token.map(|token| token.encode()),
            scope: issued.scope,
        }
    }
}

impl<S: RefreshStore> Grants<S> {
    pub(crate) fn new(
        clients: Arc<ClientDirectory>,
        logins: Logins<S>,
        refresh: Arc<RefreshTokens<S>>,
        minter: Arc<Minter>,
        dpop: ProofChecker,
        events: Events,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Grants {
            clients,
            logins,
            refresh,
            minter,
            dpop,
            events,
            clock,
        }
    }

    /// The DPoP nonce to hand out now, if nonces are on.
    pub(crate) fn dpop_nonce(&self) -> Option<String> {
        self.dpop.current_nonce(self.clock.unix_seconds())
    }

    /// Serves one token-endpoint request.
    pub(crate) async fn token(
        &self,
        request: TokenRequest<'_>,
    ) -> Result<TokenResponse, TokenError> {
        let TokenRequest {
            params,
            basic,
            user_agent,
            dpop,
        } = request;
        let grant_type = params.grant_type()?;
        if grant_type == GrantType::Password {
            // Malformed logins are refused before anything costly: client secrets, throttle entries.
            Credentials::of(params)?;
        }
        let now = self.clock.unix_seconds();
        // The proof is checked before the client: it costs one signature, a client secret far more.
        let proof = dpop.map(|proof| self.dpop.verify(proof, now)).transpose()?;
        let client = self
            .clients
            .identify(params, basic, Some(grant_type), now)
            .await?;
        if let Some(client) = &client
            && !client.allows(grant_type)
        {
            return Err(TokenError::UnauthorizedClient(format!(
                "this client may not use the {} grant",
                grant_type.as_str()
            )));
        }
        let issued = match grant_type {
            GrantType::Password => {
                let client = client.ok_or_else(|| {
                    TokenError::InvalidClient(
                        "identify the client with `client_id` or client authentication".into(),
                    )
                })?;
                let proof = self.spend(&client, proof, now).await?;
                self.password(&client, params, user_agent, proof, now)
                    .await?
            }
            GrantType::RefreshToken => self.refresh(client.as_ref(), request, proof, now).await?,
            GrantType::ClientCredentials => {
                let client = client.ok_or_else(|| {
                    TokenError::InvalidClient(
                        "the client_credentials grant requires client authentication".into(),
                    )
                })?;
                let proof = self.spend(&client, proof, now).await?;
                self.client_credentials(&client, params, proof, now)?
            }
        };
        Ok(issued.into())
    }

    /// Applies `client`'s DPoP policy to the request's checked proof, and records the proof's `jti` as
    /// used: from here on, the proof is spent whether or not the grant succeeds.
    async fn spend(
        &self,
        client: &ClientRegistration,
        proof: Option<VerifiedProof>,
        now: i64,
    ) -> Result<Option<VerifiedProof>, TokenError> {
        match proof {
            Some(proof) => {
                self.dpop.record(&proof, now).await?;
                Ok(Some(proof))
            }
            None if client.requires_dpop() => Err(TokenError::DpopRequired),
            None => Ok(None),
        }
    }

    async fn password(
        &self,
        client: &ClientRegistration,
        params: &Params,
        user_agent: Option<&str>,
        proof: Option<VerifiedProof>,
        now: i64,
    ) -> Result<Issued, TokenError> {
        let Credentials { username, password } = Credentials::of(params)?;
        let scope = grant_scope(client, params.get("scope")?)?;
        let failed = |reason| AuthEvent::LoginFailed {
            username: username.to_owned(),
            client_id: client.id().to_owned(),
            reason,
        };
        let Logins {
            verifier,
            checks,
            throttle,
        } = &self.logins;
        let overloaded = |_| TokenError::Overloaded {
            retry_after: OVERLOADED_RETRY_AFTER,
        };
        // A place in line first: a request shed for overload never reaches the throttle, so a flood cannot
        // spend a user's attempts with logins that were never checked.
        let place = checks.enter().map_err(overloaded)?;
        // Reserved before the password is checked, so concurrent guesses cannot all be checked.
        if let Err(retry_after) = throttle.reserve(username, now).await? {
            self.events.emit(failed(LoginFailure::Throttled));
            return Err(TokenError::Throttled { retry_after });
        }
        let verified = {
            let _turn = place.turn().await.map_err(overloaded)?;
            verifier.verify(username, password).await?
        };
        let user = match verified {
            Some(user) if is_client_subject(&user.subject) => {
                tracing::error!(
                    "the credential verifier answered a subject in the client namespace (`client:`), \
                     which the password grant refuses; rename the user"
                );
                None
            }
            other => other,
        };
        let Some(user) = user else {
            self.events.emit(failed(LoginFailure::BadCredentials));
            return Err(TokenError::InvalidGrant(BAD_CREDENTIALS));
        };
        throttle.record_success(username).await?;

        let jkt = proof.as_ref().map(VerifiedProof::thumbprint);
        // A session (and its refresh token) only for a client that may refresh it. A public client's is
        // bound to the DPoP key of the login (RFC 9449 §5); a confidential client's is bound to the client
        // already, by its authentication.
        let session = if client.allows(GrantType::RefreshToken) {
            let login = Login {
                user_id: &user.subject,
                client_id: client.id(),
                scope: scope.as_deref(),
                roles: &user.roles,
                user_agent,
                dpop_jkt: jkt.filter(|_| !client.is_confidential()),
            };
            Some(self.refresh.start(login, now).await?)
        } else {
            None
        };
        let context = TokenContext {
            subject: &user.subject,
            client_id: client.id(),
            scope: scope.as_deref(),
            roles: &user.roles,
            grant_type: GrantType::Password,
        };
        let family_id = session.as_ref().map(|(id, _)| id.as_str());
        let access = self.minter.mint(&context, family_id, jkt, now)?;
        let (family_id, refresh_token) = session.unzip();
        self.events.emit(AuthEvent::LoginSucceeded {
            user_id: user.subject.clone(),
            client_id: client.id().to_owned(),
            family_id,
        });
        Ok(Issued {
            access,
            refresh_token,
            scope,
            dpop_bound: jkt.is_some(),
        })
    }

    async fn refresh(
        &self,
        client: Option<&Arc<ClientRegistration>>,
        request: TokenRequest<'_>,
        proof: Option<VerifiedProof>,
        now: i64,
    ) -> Result<Issued, TokenError> {
        let params = request.params;
        let presented = params.require("refresh_token")?;
        let requested_scope = params.get("scope")?;
        if let Some(requested) = requested_scope {
            validate_scope_syntax(requested)?;
        }
        let presented =
            RefreshToken::parse(presented).ok_or(TokenError::InvalidGrant(UNKNOWN_REFRESH))?;
        let client = self
            .refresh_client(client, &presented, requested_scope)
            .await?;
        let proof = self.spend(&client, proof, now).await?;
        let jkt = proof.as_ref().map(VerifiedProof::thumbprint);
        // A family bound to a DPoP key is rotated only with a proof of that key: the store decides, before
        // the grace window or reuse detection have a say.
        let requester = Requester {
            client_id: client.id(),
            user_agent: request.user_agent,
            dpop_jkt: jkt,
        };
        let (family, refresh_token) = self.refresh.rotate(&presented, requester, now).await?;
        let scope = narrow_scope(family.scope.as_deref(), requested_scope)?;
        let context = TokenContext {
            subject: &family.user_id,
            client_id: &family.client_id,
            scope: scope.as_deref(),
            roles: &family.roles,
            grant_type: GrantType::RefreshToken,
        };
        let access = self
            .minter
            .mint(&context, Some(family.id.as_str()), jkt, now)?;
        Ok(Issued {
            access,
            refresh_token: Some(refresh_token),
            scope,
            dpop_bound: jkt.is_some(),
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
        client: Option<&Arc<ClientRegistration>>,
        presented: &RefreshToken,
        requested_scope: Option<&str>,
    ) -> Result<Arc<ClientRegistration>, TokenError> {
        if let (Some(client), None) = (client, requested_scope) {
            return Ok(Arc::clone(client));
        }
        let family = self
            .refresh
            .family_of(presented)
            .await?
            .ok_or(TokenError::InvalidGrant(UNKNOWN_REFRESH))?;
        narrow_scope(family.scope.as_deref(), requested_scope)?;
        match client {
            Some(client) => Ok(Arc::clone(client)),
            // No client named: the family says which client it belongs to, and that client must be a
            // public one (a confidential client always authenticates) still allowed to refresh.
            None => {
                let owner = self.clients.public_owner(&family.client_id)?;
                if !owner.allows(GrantType::RefreshToken) {
                    return Err(TokenError::UnauthorizedClient(
                        "this client may not use the refresh_token grant".into(),
                    ));
                }
                Ok(owner)
            }
        }
    }

    fn client_credentials(
        &self,
        client: &ClientRegistration,
        params: &Params,
        proof: Option<VerifiedProof>,
        now: i64,
    ) -> Result<Issued, TokenError> {
        if !client.is_confidential() {
            return Err(TokenError::UnauthorizedClient(
                "public clients cannot use the client_credentials grant".into(),
            ));
        }
        let scope = grant_scope(client, params.get("scope")?)?;
        let subject = client_subject(client.id());
        let context = TokenContext {
            subject: &subject,
            client_id: client.id(),
            scope: scope.as_deref(),
            roles: &[],
            grant_type: GrantType::ClientCredentials,
        };
        let jkt = proof.as_ref().map(VerifiedProof::thumbprint);
        let access = self.minter.mint(&context, None, jkt, now)?;
        self.events.emit(AuthEvent::ClientTokenIssued {
            client_id: client.id().to_owned(),
        });
        Ok(Issued {
            access,
            refresh_token: None,
            scope,
            dpop_bound: jkt.is_some(),
        })
    }
}

/// The username and password of a password grant.
struct Credentials<'a> {
    username: &'a str,
    password: &'a str,
}

impl<'a> Credentials<'a> {
    /// Both parameters, the username at most [`MAX_USERNAME_LEN`] bytes.
    fn of(params: &'a Params) -> Result<Self, TokenError> {
        let username = params.require("username")?;
        let password = params.require("password")?;
        if username.len() > MAX_USERNAME_LEN {
            return Err(TokenError::InvalidRequest(format!(
                "the username is longer than {MAX_USERNAME_LEN} bytes"
            )));
        }
        Ok(Credentials { username, password })
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
            return Err(TokenError::InvalidScope(
                "the requested scope includes a scope this client may not ask for".into(),
            ));
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
            return Err(TokenError::InvalidScope(
                "the requested scope includes a scope not granted at login; a refresh can only narrow the scope"
                    .into(),
            ));
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
