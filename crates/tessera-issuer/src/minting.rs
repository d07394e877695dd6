//! Access tokens: minting RFC 9068 JWTs with this service's keys, and recognising them again.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use tessera_core::jose::{Jws, JwsHeader, SignError};
use tessera_core::random::{self, RandomError};
use tessera_core::{ACCESS_TOKEN_JWT_TYPE, AccessTokenClaims, Audience, GrantType};

use crate::keys::LiveKeys;

/// Claims the token service always sets itself; a [`ClaimsHook`] cannot override them.
const REGISTERED: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "roles",
    "sid",
    "cnf",
];

/// The `sub` of a client-credentials token is this prefix followed by the client id, so it can never be
/// a user's `sub` (RFC 9068 §5): the password grant refuses users whose subject starts with it. An API
/// tells a token that acts for a user from one that acts for a client by this prefix.
///
/// ```
/// use tessera_issuer::CLIENT_SUBJECT_PREFIX;
///
/// let sub = "client:reporting";
/// assert_eq!(sub.strip_prefix(CLIENT_SUBJECT_PREFIX), Some("reporting"));
/// ```
pub const CLIENT_SUBJECT_PREFIX: &str = "client:";

/// The `sub` of the client-credentials tokens of `client_id`.
pub(crate) fn client_subject(client_id: &str) -> String {
    format!("{CLIENT_SUBJECT_PREFIX}{client_id}")
}

/// Whether `subject` is a client's (see [`CLIENT_SUBJECT_PREFIX`]).
pub(crate) fn is_client_subject(subject: &str) -> bool {
    subject.starts_with(CLIENT_SUBJECT_PREFIX)
}

/// What an access token is being minted for, handed to a [`ClaimsHook`].
#[derive(Debug, Clone, Copy)]
pub struct TokenContext<'a> {
    /// The token's `sub`: the user, or for client credentials the client id behind
    /// [`CLIENT_SUBJECT_PREFIX`].
    pub subject: &'a str,
    /// The client the token is issued to.
    pub client_id: &'a str,
    /// The granted scope.
    pub scope: Option<&'a str>,
    /// The subject's roles.
    pub roles: &'a [String],
    /// The grant that led here.
    pub grant_type: GrantType,
}

/// Adds claims to every access token (tenant ids, feature flags, ...).
///
/// Registered claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id`, `scope`, `roles`,
/// `sid`, `cnf`) are the service's own: hook values under those names are dropped with a warning. Any
/// `Fn(&TokenContext) -> Map<String, Value> + Send + Sync` closure is a hook.
///
/// ```
/// use serde_json::{Map, Value, json};
/// use tessera_issuer::{ClaimsHook, TokenContext};
///
/// let hook = |context: &TokenContext<'_>| {
///     let mut extra = Map::new();
///     extra.insert("tenant".into(), json!(if context.subject == "alice" { "acme" } else { "other" }));
///     extra
/// };
/// # fn takes(_: impl ClaimsHook) {}
/// # takes(hook);
/// ```
pub trait ClaimsHook: Send + Sync + 'static {
    /// Extra claims for the token described by `context`.
    fn extra_claims(&self, context: &TokenContext<'_>) -> Map<String, Value>;
}

impl<F> ClaimsHook for F
where
    F: Fn(&TokenContext<'_>) -> Map<String, Value> + Send + Sync + 'static,
{
    fn extra_claims(&self, context: &TokenContext<'_>) -> Map<String, Value> {
        self(context)
    }
}

/// Signing an access token failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MintError {
    /// The OS random generator failed (no `jti`).
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The claims could not be serialised (a claims hook produced something JSON cannot hold), or the
    /// signature could not be made.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// A signed access token with what the response needs to say about it.
pub(crate) struct MintedToken {
    pub(crate) token: String,
    pub(crate) expires_in: u64,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Signs access tokens for this service: its keys, `iss`, `aud` and token lifetime, and the claims hook.
pub(crate) struct Minter {
    keys: LiveKeys,
    issuer: String,
    audience: Audience,
    ttl: i64,
    hook: Option<Arc<dyn ClaimsHook>>,
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("signing_kid", &self.keys.current().signer().kid())
            .field("ttl", &self.ttl)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Minter {
    pub(crate) fn new(
        keys: impl Into<LiveKeys>,
        issuer: String,
        audience: Audience,
        ttl: i64,
        hook: Option<Arc<dyn ClaimsHook>>,
    ) -> Self {
        Minter {
            keys: keys.into(),
            issuer,
            audience,
            ttl,
            hook,
        }
    }

    pub(crate) fn keys(&self) -> &LiveKeys {
        &self.keys
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn audience(&self) -> &Audience {
        &self.audience
    }

    /// The claims of an access token this service signed, expired or not; `None` for anything else.
    pub(crate) fn recognise(&self, token: &str) -> Option<AccessTokenClaims> {
        let claims: AccessTokenClaims = Jws::parse(token)
            .ok()?
            .verify_in(self.keys.current().verifying())
            .ok()?
            .claims()
            .ok()?;
        let ours = claims.iss == self.issuer
            && self
                .audience
                .iter()
                .any(|audience| claims.aud.contains(audience));
        ours.then_some(claims)
    }

    /// Signs an access token for `context`, valid from `now` for the configured lifetime. `session` is the
    /// refresh-token family (`sid`), if the token belongs to one; `dpop_jkt` the thumbprint of the DPoP key
    /// the token is bound to (`cnf.jkt`, RFC 9449 §6.1), if any.
    pub(crate) fn mint(
        &self,
        context: &TokenContext<'_>,
        session: Option<&str>,
        dpop_jkt: Option<&str>,
        now: i64,
    ) -> Result<MintedToken, MintError> {
        let mut extra = match &self.hook {
            Some(hook) => hook.extra_claims(context),
            None => Map::new(),
        };
        extra.retain(|name, _| {
            let registered = REGISTERED.contains(&name.as_str());
            if registered {
                tracing::warn!(
                    claim = name,
                    "the claims hook tried to set a registered claim; ignored"
                );
            }
            !registered
        });
        if let Some(session) = session {
            extra.insert("sid".into(), Value::String(session.to_owned()));
        }
        if let Some(jkt) = dpop_jkt {
            extra.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
        }
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: context.subject.to_owned(),
            aud: self.audience.clone(),
            exp: now + self.ttl,
            iat: now,
            nbf: Some(now),
            jti: random::id::<16>()?,
            client_id: context.client_id.to_owned(),
            scope: context.scope.map(str::to_owned),
            roles: context.roles.to_vec(),
            extra,
        };
        let token = self
            .keys
            .current()
            .signer()
            .sign_jwt(JwsHeader::typed(ACCESS_TOKEN_JWT_TYPE), &claims)?;
        Ok(MintedToken {
            token,
            expires_in: u64::try_from(self.ttl).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKeys;
    use tessera_core::jose::{Algorithm, Jws};

    #[test]
    fn tokens_of_every_algorithm_verify_with_the_published_key() {
        for algorithm in [
            Algorithm::EdDsa,
            Algorithm::Es256,
            Algorithm::Es384,
            Algorithm::Rs256,
            Algorithm::Ps256,
            Algorithm::Hs256,
        ] {
            let hook = |context: &TokenContext<'_>| {
                let mut extra = Map::new();
                extra.insert(
                    "tenant".into(),
                    Value::from(format!("t-{}", context.subject)),
                );
                extra.insert("sub".into(), Value::from("forged"));
                extra.insert("cnf".into(), Value::from("forged"));
                extra
            };
            let minter = Minter::new(
                SigningKeys::generate(algorithm).unwrap(),
                "https://auth.test".into(),
                Audience::from("api"),
                900,
                Some(Arc::new(hook)),
            );
            let context = TokenContext {
                subject: "alice",
                client_id: "demo",
                scope: Some("read"),
                roles: &["admin".to_owned()],
                grant_type: GrantType::Password,
            };
            let minted = minter
                .mint(&context, Some("family-1"), Some("thumbprint"), 1_000)
                .unwrap();
            let keys = minter.keys.current();
            let signer = keys.signer();
            let jws = Jws::parse(&minted.token).unwrap();
            assert_eq!(jws.typ(), Some("at+jwt"));
            assert_eq!(jws.kid(), Some(signer.kid()));
            let claims: AccessTokenClaims = jws
                .verify_in(minter.keys.current().verifying())
                .unwrap_or_else(|error| panic!("{algorithm}: {error}"))
                .claims()
                .unwrap();
            assert_eq!(
                claims.sub, "alice",
                "{algorithm}: a hook cannot override registered claims"
            );
            assert_eq!(claims.extra["tenant"], "t-alice");
            assert_eq!(claims.extra["sid"], "family-1");
            assert_eq!(
                claims.extra["cnf"],
                serde_json::json!({"jkt": "thumbprint"})
            );
            assert_eq!(
                (claims.iat, claims.exp, claims.nbf),
                (1_000, 1_900, Some(1_000))
            );
            assert_eq!(minter.recognise(&minted.token), Some(claims));
        }
    }

    #[test]
    fn only_tokens_of_this_issuer_and_audience_are_recognised() {
        let keys = SigningKeys::generate(Algorithm::EdDsa).unwrap();
        let minter = |issuer: &str, audience: &str| {
            Minter::new(
                keys.clone(),
                issuer.into(),
                Audience::from(audience),
                900,
                None,
            )
        };
        let context = TokenContext {
            subject: "alice",
            client_id: "demo",
            scope: None,
            roles: &[],
            grant_type: GrantType::Password,
        };
        let ours = minter("https://auth.test", "api");
        for (other, why) in [
            (minter("https://elsewhere", "api"), "another issuer"),
            (minter("https://auth.test", "billing"), "another audience"),
        ] {
            let token = other.mint(&context, None, None, 1_000).unwrap().token;
            assert_eq!(ours.recognise(&token), None, "{why}");
        }
        let stranger = Minter::new(
            SigningKeys::generate(Algorithm::EdDsa).unwrap(),
            "https://auth.test".into(),
            Audience::from("api"),
            900,
            None,
        );
        let forged = stranger.mint(&context, None, None, 1_000).unwrap().token;
        assert_eq!(ours.recognise(&forged), None, "another key");
        assert_eq!(ours.recognise("not a jwt"), None);
    }
}
