//! OAuth clients: their registration and how a request proves which client sent it (RFC 6749 §2.3,
//! RFC 7523 `private_key_jwt`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use tessera_core::GrantType;
use tessera_core::jose::{Jws, JwtKey};

use crate::credentials::CredentialChecks;
use crate::error::TokenError;
use crate::events::{AuthEvent, Events};
use crate::grants::OVERLOADED_RETRY_AFTER;
use crate::params::{Params, form_decode};
use crate::password::{self, PasswordError, PasswordHashing};
use crate::store::{OnceKey, OneTimeValues};

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest a client assertion may still be valid when presented; bounds the `jti` replay cache.
const MAX_ASSERTION_LIFETIME: i64 = 600;

/// The purpose under which assertion `jti`s are recorded as one-time values in the store.
const CLIENT_ASSERTION: &str = "client_assertion";

/// The `invalid_client` description of every failed client authentication whose cause could tell an
/// unknown client from a registered one: unknown id, another method, wrong secret, foreign signature.
const AUTHENTICATION_FAILED: &str = "client authentication failed";

/// The `invalid_client` description of a bare `client_id` that names no public client.
const NOT_A_PUBLIC_CLIENT: &str = "client authentication failed: `client_id` alone identifies public clients only; confidential clients must authenticate";

/// A client the token service knows.
///
/// ```
/// use tessera_core::GrantType;
/// use tessera_issuer::ClientRegistration;
///
/// let spa = ClientRegistration::public("demo").scopes(["profile"]);
/// assert!(spa.allows(GrantType::Password) && !spa.allows(GrantType::ClientCredentials));
/// ```
#[derive(Clone)]
pub struct ClientRegistration {
    id: String,
    authentication: ClientAuthentication,
    scopes: Vec<String>,
    grant_types: Vec<GrantType>,
    dpop_required: bool,
    introspects_any: bool,
}

#[derive(Clone)]
enum ClientAuthentication {
    None,
    Secret { hash: String },
    PrivateKeyJwt { key: Arc<JwtKey> },
}

impl ClientRegistration {
    /// A public client (an SPA, a mobile or CLI app): identified by `client_id` alone, allowed the
    /// `password` and `refresh_token` grants.
    pub fn public(id: impl Into<String>) -> Self {
        ClientRegistration {
            id: id.into(),
            authentication: ClientAuthentication::None,
            scopes: Vec::new(),
            grant_types: vec![GrantType::Password, GrantType::RefreshToken],
            dpop_required: false,
            introspects_any: false,
        }
    }

    /// A confidential client authenticating with a secret (`client_secret_basic` or `client_secret_post`),
    /// allowed the `client_credentials` grant. Only an argon2id hash of the secret is kept.
    ///
    /// # Errors
    /// [`PasswordError`] if hashing fails.
    pub fn with_secret(id: impl Into<String>, secret: &str) -> Result<Self, PasswordError> {
        Self::with_secret_hash(id, PasswordHashing::default().hash(secret)?)
    }

    /// Like [`ClientRegistration::with_secret`], from an existing argon2 PHC hash of the secret.
    ///
    /// # Errors
    /// [`PasswordError::InvalidHash`] if `hash` is not a PHC string.
    pub fn with_secret_hash(
        id: impl Into<String>,
        hash: impl Into<String>,
    ) -> Result<Self, PasswordError> {
        let hash = hash.into();
        password::validate_hash(&hash)?;
        Ok(ClientRegistration {
            id: id.into(),
            authentication: ClientAuthentication::Secret { hash },
            scopes: Vec::new(),
            grant_types: vec![GrantType::ClientCredentials],
            dpop_required: false,
            introspects_any: false,
        })
    }

    /// A confidential client authenticating with JWTs signed by its private key (`private_key_jwt`,
    /// RFC 7523), verified with `key`; allowed the `client_credentials` grant.
    pub fn with_private_key_jwt(id: impl Into<String>, key: impl Into<Arc<JwtKey>>) -> Self {
        ClientRegistration {
            id: id.into(),
            authentication: ClientAuthentication::PrivateKeyJwt { key: key.into() },
            scopes: Vec::new(),
            grant_types: vec![GrantType::ClientCredentials],
            dpop_required: false,
            introspects_any: false,
        }
    }

    /// The scopes the client may ask for (none by default). A request without `scope` gets all of them.
    #[must_use]
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the grant types the client may use.
    #[must_use]
    pub fn grant_types(mut self, grant_types: impl IntoIterator<Item = GrantType>) -> Self {
        self.grant_types = grant_types.into_iter().collect();
        self
    }

    /// Requires a DPoP proof (RFC 9449) with every token request of this client, so every token it gets is
    /// bound to its key; without this a proof is optional (Bearer tokens without, DPoP tokens with).
    ///
    /// ```
    /// use tessera_issuer::ClientRegistration;
    ///
    /// let spa = ClientRegistration::public("spa").require_dpop();
    /// assert!(spa.requires_dpop());
    /// ```
    #[must_use]
    pub fn require_dpop(mut self) -> Self {
        self.dpop_required = true;
        self
    }

    /// Whether the client must send a DPoP proof with every token request.
    pub fn requires_dpop(&self) -> bool {
        self.dpop_required
    }

    /// Lets this client introspect any access token of this service (RFC 7662), as an API that is not
    /// written in Rust needs to; without this a client learns only about tokens issued to itself. Only a
    /// confidential client can introspect at all: the endpoint needs client authentication.
    ///
    /// ```
    /// use tessera_issuer::ClientRegistration;
    ///
    /// let api = ClientRegistration::with_secret_hash(
    ///     "orders-api",
    ///     "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$5mYuzdZLcUSMTFNgSW9QXA",
    /// )?
    /// .grant_types([])
    /// .allow_introspection();
    /// assert!(api.may_introspect());
    /// # Ok::<(), tessera_issuer::PasswordError>(())
    /// ```
    #[must_use]
    pub fn allow_introspection(mut self) -> Self {
        self.introspects_any = true;
        self
    }

    /// Whether the client may introspect tokens issued to other clients.
    pub fn may_introspect(&self) -> bool {
        self.introspects_any
    }

    /// The client authentication methods this registration stands for, as RFC 8414 names them.
    pub(crate) fn authentication_methods(&self) -> &'static [&'static str] {
        match self.authentication {
            ClientAuthentication::None => &["none"],
            ClientAuthentication::Secret { .. } => &["client_secret_basic", "client_secret_post"],
            ClientAuthentication::PrivateKeyJwt { .. } => &["private_key_jwt"],
        }
    }

    /// The algorithms the client's assertions may use, for a `private_key_jwt` client (its key's family).
    pub(crate) fn assertion_algorithms(&self) -> Vec<tessera_core::jose::Algorithm> {
        match &self.authentication {
            ClientAuthentication::PrivateKeyJwt { key } => key.algorithms().collect(),
            _ => Vec::new(),
        }
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the client may use `grant_type`.
    pub fn allows(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }

    /// Whether the client must authenticate (it has a secret or a key).
    pub fn is_confidential(&self) -> bool {
        !matches!(self.authentication, ClientAuthentication::None)
    }

    /// The scopes the client may ask for.
    pub fn allowed_scopes(&self) -> &[String] {
        &self.scopes
    }
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = match &self.authentication {
            ClientAuthentication::None => "none",
            ClientAuthentication::Secret { .. } => "client_secret",
            ClientAuthentication::PrivateKeyJwt { .. } => "private_key_jwt",
        };
        f.debug_struct("ClientRegistration")
            .field("id", &self.id)
            .field("authentication", &method)
            .field("scopes", &self.scopes)
            .field("grant_types", &self.grant_types)
            .field("dpop_required", &self.dpop_required)
            .field("introspects_any", &self.introspects_any)
            .finish()
    }
}

/// What a request carried to say which client it comes from.
#[derive(Default)]
struct PresentedClient<'a> {
    /// The `Authorization: Basic` header's value after the scheme, if any.
    basic: Option<&'a str>,
    client_id: Option<&'a str>,
    client_secret: Option<&'a str>,
    assertion_type: Option<&'a str>,
    assertion: Option<&'a str>,
}

impl<'a> PresentedClient<'a> {
    /// The client parameters of `params`, and the Basic credentials of the request.
    fn of(params: &'a Params, basic: Option<&'a str>) -> Result<Self, TokenError> {
        Ok(PresentedClient {
            basic,
            client_id: params.get("client_id")?,
            client_secret: params.get("client_secret")?,
            assertion_type: params.get("client_assertion_type")?,
            assertion: params.get("client_assertion")?,
        })
    }

    /// The client id the request names, whichever way, without authenticating it.
    pub(crate) fn claimed_id(&self) -> Option<String> {
        self.client_id
            .map(str::to_owned)
            .or_else(|| self.basic.and_then(decode_basic).map(|(id, _)| id))
    }
}

/// Why client identification failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClientError {
    /// `invalid_request`: the request is malformed (two methods, a bad header).
    Malformed(String),
    /// `invalid_client`: unknown client, wrong secret, bad assertion, missing authentication.
    Rejected(String),
    /// Too many credential checks are running and waiting.
    Overloaded,
    /// `server_error`: the store of used assertions failed.
    Internal(String),
}

/// The registered clients, the rules on who may act for whom, and (in the store, shared by every instance)
/// the `jti`s of the assertions already used.
pub(crate) struct ClientDirectory {
    clients: HashMap<String, Arc<ClientRegistration>>,
    /// The audiences a client assertion may name: the token endpoint URL and the issuer.
    assertion_audiences: Vec<String>,
    used_assertions: Arc<dyn OneTimeValues>,
    /// The gate client secrets are checked behind, shared with the password grant.
    checks: Arc<CredentialChecks>,
    events: Events,
}

impl fmt::Debug for ClientDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientDirectory")
            .field("clients", &self.clients.values())
            .field("assertion_audiences", &self.assertion_audiences)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<tessera_core::Audience>,
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    jti: Option<String>,
}

#[derive(Deserialize)]
struct AssertionSubject {
    sub: Option<String>,
}

impl ClientDirectory {
    pub(crate) fn new(
        clients: HashMap<String, Arc<ClientRegistration>>,
        assertion_audiences: Vec<String>,
        used_assertions: Arc<dyn OneTimeValues>,
        checks: Arc<CredentialChecks>,
        events: Events,
    ) -> Self {
        ClientDirectory {
            clients,
            assertion_audiences,
            used_assertions,
            checks,
            events,
        }
    }

    /// Identifies and authenticates the client of a token, revocation or logout request from its
    /// parameters and `Authorization: Basic` credentials: `Ok(None)` if the request names no client at
    /// all. A failed authentication is reported as [`AuthEvent::ClientAuthenticationFailed`].
    pub(crate) async fn identify(
        &self,
        params: &Params,
        basic: Option<&str>,
        grant_type: Option<GrantType>,
        now: i64,
    ) -> Result<Option<Arc<ClientRegistration>>, TokenError> {
        let presented = PresentedClient::of(params, basic)?;
        match self.authenticate(&presented, now).await {
            Ok(client) => Ok(client),
            Err(ClientError::Malformed(description)) => {
                Err(TokenError::InvalidRequest(description))
            }
            Err(ClientError::Overloaded) => Err(TokenError::Overloaded {
                retry_after: OVERLOADED_RETRY_AFTER,
            }),
            Err(ClientError::Internal(detail)) => Err(TokenError::Internal(detail)),
            Err(ClientError::Rejected(description)) => {
                self.events.emit(AuthEvent::ClientAuthenticationFailed {
                    client_id: presented.claimed_id(),
                    grant_type,
                });
                Err(TokenError::InvalidClient(description))
            }
        }
    }

    /// Whether `client` (authenticated, or `None` if the request named no client) may act on a token
    /// issued to `owner`: the owner itself may; anyone holding a public client's token may too
    /// (possession is all a public client has).
    pub(crate) fn check_owner(
        &self,
        owner: &str,
        client: Option<&ClientRegistration>,
    ) -> Result<(), TokenError> {
        match client {
            Some(client) if client.id() == owner => Ok(()),
            Some(_) => Err(TokenError::InvalidClient(
                "the token was issued to another client".into(),
            )),
            None => self.public_owner(owner).map(drop),
        }
    }

    /// The registration of `owner`, for a request that named no client: it must be a registered public
    /// client (a confidential client always authenticates).
    pub(crate) fn public_owner(&self, owner: &str) -> Result<Arc<ClientRegistration>, TokenError> {
        match self.clients.get(owner) {
            Some(owner) if !owner.is_confidential() => Ok(Arc::clone(owner)),
            _ => Err(TokenError::InvalidClient(
                "the token belongs to a confidential client, which must authenticate".into(),
            )),
        }
    }

    /// Identifies and authenticates the client: `Ok(None)` if the request named no client at all.
    async fn authenticate(
        &self,
        presented: &PresentedClient<'_>,
        now: i64,
    ) -> Result<Option<Arc<ClientRegistration>>, ClientError> {
        let methods = [
            presented.basic.is_some(),
            presented.client_secret.is_some(),
            presented.assertion.is_some(),
        ];
        if methods.into_iter().filter(|used| *used).count() > 1 {
            return Err(ClientError::Malformed(
                "the request uses more than one client authentication method; use exactly one"
                    .into(),
            ));
        }
        if presented.assertion_type.is_some() != presented.assertion.is_some() {
            return Err(ClientError::Malformed(
                "`client_assertion` and `client_assertion_type` must be sent together".into(),
            ));
        }
        if let Some(basic) = presented.basic {
            let (id, secret) = decode_basic(basic).ok_or_else(|| {
                ClientError::Malformed(
                    "the Basic Authorization header is not base64(client_id:client_secret)".into(),
                )
            })?;
            if presented.client_id.is_some_and(|named| named != id) {
                return Err(ClientError::Rejected(
                    "`client_id` differs from the Basic credentials".into(),
                ));
            }
            return self.check_secret(&id, &secret).await.map(Some);
        }
        if let Some(secret) = presented.client_secret {
            let id = presented.client_id.ok_or_else(|| {
                ClientError::Malformed("`client_secret` was sent without `client_id`".into())
            })?;
            return self.check_secret(id, secret).await.map(Some);
        }
        if let (Some(kind), Some(assertion)) = (presented.assertion_type, presented.assertion) {
            if kind != JWT_BEARER_ASSERTION_TYPE {
                return Err(ClientError::Rejected(format!(
                    "unsupported client_assertion_type; use {JWT_BEARER_ASSERTION_TYPE}"
                )));
            }
            return self
                .check_assertion(presented.client_id, assertion, now)
                .await
                .map(Some);
        }
        match presented.client_id {
            None => Ok(None),
            // One answer for an unknown client and a confidential one, so it tells nobody which ids exist.
            Some(id) => match self.clients.get(id) {
                Some(client) if !client.is_confidential() => Ok(Some(Arc::clone(client))),
                _ => Err(ClientError::Rejected(NOT_A_PUBLIC_CLIENT.into())),
            },
        }
    }

    /// The registration of `id` if it authenticates with `method`; otherwise the one answer for an
    /// unknown client, another method and (later) a wrong credential, so that none tells which ids exist.
    fn lookup(
        &self,
        id: &str,
        method: fn(&ClientAuthentication) -> bool,
    ) -> Result<Arc<ClientRegistration>, ClientError> {
        self.clients
            .get(id)
            .filter(|client| method(&client.authentication))
            .cloned()
            .ok_or_else(|| ClientError::Rejected(AUTHENTICATION_FAILED.into()))
    }

    async fn check_secret(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<Arc<ClientRegistration>, ClientError> {
        let client = self.lookup(id, |method| {
            matches!(method, ClientAuthentication::Secret { .. })
        })?;
        let ClientAuthentication::Secret { hash } = &client.authentication else {
            return Err(ClientError::Rejected(AUTHENTICATION_FAILED.into()));
        };
        let (hash, secret) = (hash.clone(), secret.to_owned());
        let _turn = self
            .checks
            .admit()
            .await
            .map_err(|_| ClientError::Overloaded)?;
        let matches = password::verify_blocking(secret, hash)
            .await
            .map_err(|_| ClientError::Rejected(AUTHENTICATION_FAILED.into()))?;
        if matches {
            Ok(client)
        } else {
            Err(ClientError::Rejected(AUTHENTICATION_FAILED.into()))
        }
    }

    async fn check_assertion(
        &self,
        named: Option<&str>,
        assertion: &str,
        now: i64,
    ) -> Result<Arc<ClientRegistration>, ClientError> {
        let rejected =
            |why: &str| ClientError::Rejected(format!("invalid client assertion: {why}"));
        let jws = Jws::parse(assertion).map_err(|error| rejected(&error.to_string()))?;
        let id = match named {
            Some(id) => id.to_owned(),
            // Only to find the key: nothing unverified is trusted beyond picking the client.
            None => jws
                .unverified_claims::<AssertionSubject>()
                .ok()
                .and_then(|claims| claims.sub)
                .ok_or_else(|| rejected("it is not a JWT with a `sub` claim"))?,
        };
        let client = self.lookup(&id, |method| {
            matches!(method, ClientAuthentication::PrivateKeyJwt { .. })
        })?;
        let ClientAuthentication::PrivateKeyJwt { key } = &client.authentication else {
            return Err(ClientError::Rejected(AUTHENTICATION_FAILED.into()));
        };
        // Until the signature holds, the answer is the one for an unknown client: only the key's holder
        // learns what else is wrong with an assertion.
        let claims: AssertionClaims = jws
            .verify_with(key)
            .and_then(|verified| verified.claims())
            .map_err(|_| ClientError::Rejected(AUTHENTICATION_FAILED.into()))?;
        // RFC 7523 §3: `iss` and `sub` are the client, `aud` names this service, `exp` is required.
        if claims.iss.as_deref() != Some(id.as_str()) {
            return Err(rejected("its `iss` is not the client id"));
        }
        if claims.sub.as_deref() != Some(id.as_str()) {
            return Err(rejected("its `sub` is not the client id"));
        }
        let audience = claims.aud.ok_or_else(|| rejected("it has no `aud`"))?;
        if !self
            .assertion_audiences
            .iter()
            .any(|ours| audience.contains(ours))
        {
            return Err(rejected("its `aud` does not name this token service"));
        }
        let exp = claims.exp.ok_or_else(|| rejected("it has no `exp`"))?;
        if exp <= now {
            return Err(rejected("it expired"));
        }
        if exp > now + MAX_ASSERTION_LIFETIME {
            return Err(rejected(
                "it expires more than 600 s from now; use short-lived assertions",
            ));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(rejected("it is not valid yet (`nbf`)"));
        }
        let jti = claims.jti.ok_or_else(|| rejected("it has no `jti`"))?;
        // Recorded in the store, so a replay to another instance is refused too.
        let key = OnceKey::new(CLIENT_ASSERTION, &[&id, &jti]);
        match self.used_assertions.first_use(key, exp, now).await {
            Ok(true) => Ok(client),
            Ok(false) => Err(rejected("its `jti` was already used")),
            Err(error) => Err(ClientError::Internal(error.to_string())),
        }
    }
}

/// `base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((
        form_decode(id.as_bytes()).ok()?,
        form_decode(secret.as_bytes()).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = STANDARD.encode("my%20app:s%3Acret+x");
        assert_eq!(
            decode_basic(&header),
            Some(("my app".into(), "s:cret x".into()))
        );
        assert_eq!(decode_basic("not base64!"), None);
        assert_eq!(decode_basic(&STANDARD.encode("no-colon")), None);
    }
}
