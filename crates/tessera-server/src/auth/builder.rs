//! Assembling a [`JwtAuthLayer`], with every misconfiguration caught before the server starts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::pipeline::{KeySource, Pipeline};
use super::policy::Policy;
use tessera_core::random::RandomError;

use crate::cache::TokenCache;
use crate::cross_origin::{CrossOriginCheck, normalise_origin};
use crate::dpop::DpopCheck;
use crate::rejection::{Challenges, RendererName, Responder};
use crate::resource_metadata::{LayerFacts, PublishedMetadata};
use crate::source::{DEFAULT_MAX_TOKEN_LEN, TokenSources};
use crate::verify::{Lifetime, RoleClaims, Validator};
use crate::{
    Algorithm, Clock, Dpop, JwtAuthLayer, JwtKey, KeyError, KeyRing, KeySet, RejectionBody,
    ResourceMetadata, RevocationCheck, SystemClock,
};

/// The default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The default capacity of the verified-token cache, in tokens.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// How long, by default, the verified-token cache keeps answering `401 Token-Expired` for a token it saw
/// valid, counted from the token's `exp` plus the leeway: 10 minutes.
///
/// Long enough for the clients that matter (a fleet whose tokens expired together, a device waking up, a
/// replay of a recently expired token) to be answered from memory instead of with a signature
/// verification each; short enough that entries for tokens nobody presents any more leave soon. The cache
/// capacity bounds the memory either way. See [`JwtAuthBuilder::expired_token_retention`].
pub const DEFAULT_EXPIRED_TOKEN_RETENTION: Duration = Duration::from_secs(10 * 60);

/// Why a layer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No key, key ring or remote JWKS was configured.
    #[error("no verification key: add a key, a key ring or a remote JWKS")]
    NoKeys,
    /// More than one of static keys, a key ring and a remote JWKS was configured.
    #[error("configure exactly one key source: static keys, a key ring, or a remote JWKS")]
    ConflictingKeySources,
    /// No issuer was configured and accepting any issuer was not chosen explicitly.
    #[error(
        "no issuer configured: call issuer(...), or allow_any_issuer() if every issuer is trusted"
    )]
    IssuerRequired,
    /// No audience was configured and accepting any audience was not chosen explicitly.
    #[error(
        "no audience configured: call audience(...), or allow_any_audience() if tokens are never shared across APIs"
    )]
    AudienceRequired,
    /// A trusted origin is not `http(s)://host[:port]`.
    #[error("{0:?} is not an origin: write scheme://host[:port], without a path")]
    InvalidOrigin(String),
    /// The token cookie's name is not a valid cookie name.
    #[error("{0:?} is not a valid cookie name")]
    InvalidCookieName(String),
    /// The maximum token length, the cache capacity or a DPoP setting is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The algorithm allow-list is empty, or a configured key accepts none of its algorithms.
    #[error("{0}")]
    Algorithms(String),
    /// A role claim is not a JSON pointer (RFC 6901).
    #[error(
        "{0:?} is not a JSON pointer: write /claim or /claim/member/..., with ~0 for ~ and ~1 for /"
    )]
    InvalidRolePointer(String),
    /// The DPoP public URL is not `http(s)://host[:port][/path]` without query, fragment or user.
    #[error(
        "{0:?} is not the API's public URL: write https://host[:port] with an optional path prefix"
    )]
    InvalidDpopUrl(String),
    /// A DPoP setting cannot work.
    #[error("DPoP: {0}")]
    InvalidDpop(&'static str),
    /// The resource identifier of the protected-resource metadata is not an `http(s)` URL without query,
    /// fragment or user.
    #[error(
        "{0:?} is not a resource identifier: write https://host[/path], without query or fragment"
    )]
    InvalidResource(String),
    /// The OS random generator failed while making the DPoP nonce secret.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Configures a [`JwtAuthLayer`]; start with [`JwtAuthLayer::builder`].
///
/// Required: one key source (keys, a [`KeyRing`] or a remote JWKS), an issuer and an audience (or the
/// explicit `allow_any_*` opt-outs). Defaults: leeway 30 s, tokens from `Authorization: Bearer` only, at
/// most 8 KiB, verified-token cache of 10 000 entries answering expired tokens for 10 minutes, no
/// revocation check, JSON error bodies, realm `api`.
#[must_use]
pub struct JwtAuthBuilder {
    keys: Vec<Arc<JwtKey>>,
    ring: Option<KeyRing>,
    #[cfg(feature = "remote-jwks")]
    remote: Option<crate::RemoteJwks>,
    key_error: Option<KeyError>,
    issuers: Vec<Box<str>>,
    any_issuer: bool,
    audiences: Vec<Box<str>>,
    any_audience: bool,
    leeway: Duration,
    strict_rfc9068: bool,
    algorithms: Option<Vec<Algorithm>>,
    role_pointers: Option<Vec<String>>,
    dpop: Option<Dpop>,
    resource_metadata: Option<ResourceMetadata>,
    cookie: Option<String>,
    cross_origin_check: bool,
    trusted_origins: Vec<String>,
    query: bool,
    max_token_len: usize,
    cache_capacity: Option<usize>,
    expired_retention: Duration,
    revocation: Option<Arc<dyn RevocationCheck>>,
    /// `None`: the default [`JsonErrorBody`](crate::JsonErrorBody).
    body: Option<Arc<dyn RejectionBody>>,
    realm: String,
    clock: Arc<dyn Clock>,
}

impl Default for JwtAuthBuilder {
    fn default() -> Self {
        JwtAuthBuilder {
            keys: Vec::new(),
            ring: None,
            #[cfg(feature = "remote-jwks")]
            remote: None,
            key_error: None,
            issuers: Vec::new(),
            any_issuer: false,
            audiences: Vec::new(),
            any_audience: false,
            leeway: DEFAULT_LEEWAY,
            strict_rfc9068: false,
            algorithms: None,
            role_pointers: None,
            dpop: None,
            resource_metadata: None,
            cookie: None,
            cross_origin_check: true,
            trusted_origins: Vec::new(),
            query: false,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            cache_capacity: Some(DEFAULT_CACHE_CAPACITY),
            expired_retention: DEFAULT_EXPIRED_TOKEN_RETENTION,
            revocation: None,
            body: None,
            realm: "api".to_owned(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl JwtAuthBuilder {
    /// Adds a verification key.
    pub fn key(mut self, key: JwtKey) -> Self {
        self.keys.push(Arc::new(key));
        self
    }

    /// Adds verification keys.
    pub fn keys(mut self, keys: impl IntoIterator<Item = JwtKey>) -> Self {
        self.keys.extend(keys.into_iter().map(Arc::new));
        self
    }

    /// Adds an HS256 key from a shared secret; a secret under 32 bytes makes [`build`](Self::build) fail.
    pub fn hmac_secret(self, secret: impl AsRef<[u8]>) -> Self {
        self.key_result(JwtKey::hmac(secret))
    }

    /// Adds a public key from PEM for `algorithm`; a bad PEM makes [`build`](Self::build) fail.
    pub fn public_key_pem(self, algorithm: Algorithm, pem: impl AsRef<[u8]>) -> Self {
        self.key_result(JwtKey::from_pem(algorithm, pem))
    }

    /// Adds every signature key of a JWKS document; an unusable document makes [`build`](Self::build) fail.
    pub fn jwks_json(self, json: &str) -> Self {
        match KeySet::from_jwks_json(json) {
            Ok(set) => self.key_set(set),
            Err(error) => self.key_result(Err(error)),
        }
    }

    /// Adds every key of `keys`.
    pub fn key_set(mut self, keys: KeySet) -> Self {
        self.keys.extend(keys.shared().cloned());
        self
    }

    /// Reads keys from a [`KeyRing`] instead, so they can be replaced while the server runs.
    pub fn key_ring(mut self, ring: KeyRing) -> Self {
        self.ring = Some(ring);
        self
    }

    /// Reads keys from the issuer's published JWKS.
    #[cfg(feature = "remote-jwks")]
    pub fn remote_jwks(mut self, jwks: crate::RemoteJwks) -> Self {
        self.remote = Some(jwks);
        self
    }

    /// Accepts tokens whose `iss` is `issuer`; call again to trust several issuers.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into().into_boxed_str());
        self
    }

    /// Skips the `iss` check. Only for deployments where every key belongs to one trusted issuer.
    pub fn allow_any_issuer(mut self) -> Self {
        self.any_issuer = true;
        self
    }

    /// Accepts tokens whose `aud` contains `audience`; call again to accept several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into().into_boxed_str());
        self
    }

    /// Skips the `aud` check. A token minted for another API is then accepted here too.
    pub fn allow_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Clock-skew allowance for `exp` and `nbf`. Default 30 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Strict RFC 9068: `typ` must be `at+jwt`, and `iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti` are
    /// required. Default off.
    pub fn strict_rfc9068(mut self, strict: bool) -> Self {
        self.strict_rfc9068 = strict;
        self
    }

    /// Accepts tokens signed with these algorithms only (whatever the keys would verify). Default: every
    /// algorithm a key accepts. A key loaded for one algorithm accepts that one; a JWK without `alg` its
    /// key type's family (RS256 and PS256 for RSA, EdDSA and Ed25519 for Ed25519), so this is how to keep
    /// PS256 out, say. An empty list, or a configured key accepting none of them, makes
    /// [`build`](Self::build) fail.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Reads the subject's roles (for [`JwtAuthLayer::require_role`] and [`VerifiedToken::roles`]) from
    /// these JSON pointers (RFC 6901) into the claims instead of the top-level `roles` claim: each names an
    /// array of strings or one string, and the roles are all of them. For Keycloak,
    /// `["/realm_access/roles", "/resource_access/my-api/roles"]`; Entra ID and RFC 9068 use `roles`, the
    /// default (`["/roles"]`), read without a second pass over the claims.
    ///
    /// [`VerifiedToken::roles`]: crate::VerifiedToken::roles
    pub fn role_claims(mut self, pointers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.role_pointers = Some(pointers.into_iter().map(Into::into).collect());
        self
    }

    /// Accepts DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>` with a `DPoP` proof, checked as
    /// [`Dpop`] describes. Tokens bound to a key (`cnf.jkt`) are refused as bearer tokens with or without
    /// this; [`Dpop::required`] refuses bearer tokens altogether.
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Publishes RFC 9728 protected-resource metadata: every challenge then carries
    /// `resource_metadata="<its URL>"`, and [`JwtAuthLayer::resource_metadata_router`] serves the document.
    pub fn resource_metadata(mut self, metadata: ResourceMetadata) -> Self {
        self.resource_metadata = Some(metadata);
        self
    }

    /// Also reads the token from the cookie `name` (for browser apps behind a backend-for-frontend). A token
    /// in both the header and the cookie is refused.
    ///
    /// A browser attaches the cookie to requests other sites make too, so a request with an unsafe method
    /// (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`) authenticated by the cookie must come from the
    /// API's own origin (`Sec-Fetch-Site: same-origin`, or an `Origin` naming the `Host`) or from an origin
    /// added with [`cookie_trusted_origin`](Self::cookie_trusted_origin); otherwise it is answered 403
    /// `invalid_request` ([`AuthRejection::CrossOriginRequest`](crate::AuthRejection::CrossOriginRequest)),
    /// including when it carries neither header. Tokens in the `Authorization` header are not affected.
    pub fn token_cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Lets requests from `origin` (`https://app.example`, as browsers send it in `Origin`) use the token
    /// cookie with unsafe methods: a front end served from another origin than the API. Call again for
    /// several. A bad origin makes [`build`](Self::build) fail.
    pub fn cookie_trusted_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted_origins.push(origin.into());
        self
    }

    /// Turns the cross-origin check of cookie-borne tokens (see [`token_cookie`](Self::token_cookie)) off.
    /// Only for applications that defend against request forgery themselves (a CSRF token on every form);
    /// `SameSite` cookies alone do not, since sibling subdomains are the same site. Default on.
    pub fn cookie_cross_origin_check(mut self, enabled: bool) -> Self {
        self.cross_origin_check = enabled;
        self
    }

    /// Also reads the token from the `access_token` query parameter (RFC 6750 §2.3). Off by default: URLs
    /// end up in logs and browser history.
    pub fn query_parameter(mut self, enabled: bool) -> Self {
        self.query = enabled;
        self
    }

    /// The longest token accepted, in bytes; longer ones are refused before decoding. Default 8 KiB.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// The capacity of the verified-token cache. Default 10 000.
    pub fn cache_capacity(mut self, tokens: usize) -> Self {
        self.cache_capacity = Some(tokens);
        self
    }

    /// Turns the verified-token cache off: every request verifies its token in full.
    pub fn without_cache(mut self) -> Self {
        self.cache_capacity = None;
        self
    }

    /// How long after its `exp` (plus the leeway) the cache keeps answering `401 Token-Expired` for a token
    /// it saw valid, without verifying its signature again; past it, such a token is verified in full.
    /// Default [`DEFAULT_EXPIRED_TOKEN_RETENTION`] (10 minutes); zero drops a token from the cache as soon
    /// as it expires. Whole seconds.
    pub fn expired_token_retention(mut self, retention: Duration) -> Self {
        self.expired_retention = retention;
        self
    }

    /// Consults `check` for every verified token (see [`RevocationCheck`]). A check that answers at once
    /// ([`RevocationAnswer::Ready`](crate::RevocationAnswer::Ready)) keeps requests on the synchronous path.
    pub fn revocation(mut self, check: Arc<dyn RevocationCheck>) -> Self {
        self.revocation = Some(check);
        self
    }

    /// Renders rejection bodies with `body` instead of the JSON [`ErrorResponse`](tessera_core::ErrorResponse).
    pub fn rejection_body(mut self, body: impl RejectionBody) -> Self {
        self.body = Some(Arc::new(body));
        self
    }

    /// The `realm` of the challenge sent when no token was presented. Default `api`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// The clock for `exp`/`nbf` and cache expiry. Default the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The layer.
    ///
    /// # Errors
    /// See [`BuildError`]: a bad key, no or several key sources, no issuer or audience without the explicit
    /// opt-out, a bad cookie name, a zero limit.
    pub fn build(self) -> Result<JwtAuthLayer, BuildError> {
        if let Some(error) = self.key_error {
            return Err(error.into());
        }
        #[cfg(feature = "remote-jwks")]
        let keys = key_source(self.keys, self.ring, self.remote)?;
        #[cfg(not(feature = "remote-jwks"))]
        let keys = key_source(self.keys, self.ring)?;
        if self.issuers.is_empty() && !self.any_issuer {
            return Err(BuildError::IssuerRequired);
        }
        if self.audiences.is_empty() && !self.any_audience {
            return Err(BuildError::AudienceRequired);
        }
        if let Some(name) = &self.cookie
            && (name.is_empty()
                || !name
                    .bytes()
                    .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte)))
        {
            return Err(BuildError::InvalidCookieName(name.clone()));
        }
        let trusted_origins = self
            .trusted_origins
            .iter()
            .map(|origin| {
                normalise_origin(origin).ok_or_else(|| BuildError::InvalidOrigin(origin.clone()))
            })
            .collect::<Result<_, _>>()?;
        if self.max_token_len == 0 {
            return Err(BuildError::Zero("the maximum token length"));
        }
        if self.cache_capacity == Some(0) {
            return Err(BuildError::Zero("the cache capacity"));
        }
        let algorithms = match self.algorithms {
            Some(algorithms) => Some(allow_list(algorithms, &keys)?),
            None => None,
        };
        let roles = match self.role_pointers {
            None => RoleClaims::Roles,
            Some(pointers) => RoleClaims::Pointers(
                pointers
                    .into_iter()
                    .map(|pointer| {
                        if is_json_pointer(&pointer) {
                            Ok(pointer.into_boxed_str())
                        } else {
                            Err(BuildError::InvalidRolePointer(pointer))
                        }
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let dpop = self.dpop.map(DpopCheck::new).transpose()?;
        let issuers: Box<[Box<str>]> = if self.any_issuer {
            Box::default()
        } else {
            self.issuers.into()
        };
        let metadata = match self.resource_metadata {
            None => None,
            Some(metadata) => Some(PublishedMetadata::new(
                metadata,
                &LayerFacts {
                    issuers: &issuers,
                    query_tokens: self.query,
                    dpop_algorithms: dpop.as_ref().map(|dpop| &*dpop.algs),
                    dpop_required: dpop.as_ref().is_some_and(|dpop| dpop.required),
                },
            )?),
        };
        let challenges = Challenges {
            realm: self.realm.into_boxed_str(),
            dpop_algs: dpop.as_ref().map(|dpop| dpop.algs.clone()),
            dpop_only: dpop.as_ref().is_some_and(|dpop| dpop.required),
            resource_metadata: metadata.as_ref().map(|metadata| metadata.url.clone()),
        };
        let seconds = |duration: Duration| i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        let pipeline = Pipeline {
            cross_origin: CrossOriginCheck {
                enabled: self.cookie.is_some() && self.cross_origin_check,
                trusted: trusted_origins,
            },
            sources: TokenSources {
                cookie: self.cookie.map(String::into_boxed_str),
                query: self.query,
                dpop: dpop.is_some(),
                max_len: self.max_token_len,
            },
            dpop,
            metadata,
            validator: Validator {
                issuers,
                audiences: if self.any_audience {
                    Box::default()
                } else {
                    self.audiences.into()
                },
                lifetime: Lifetime {
                    leeway: seconds(self.leeway),
                },
                strict_rfc9068: self.strict_rfc9068,
                algorithms,
                roles,
            },
            keys,
            cache: self
                .cache_capacity
                .map(|capacity| TokenCache::new(capacity, seconds(self.expired_retention))),
            revocation: self.revocation,
            responder: Responder::new(challenges, self.body),
            clock: self.clock,
        };
        Ok(JwtAuthLayer {
            pipeline: Arc::new(pipeline),
            policy: Arc::new(Policy::default()),
        })
    }

    fn key_result(mut self, key: Result<JwtKey, KeyError>) -> Self {
        match key {
            Ok(key) => self.keys.push(Arc::new(key)),
            Err(error) => {
                self.key_error.get_or_insert(error);
            }
        }
        self
    }
}

/// The allow-list, checked against the static keys: each must accept one of its algorithms (a remote key
/// set is checked per token, as its keys change).
fn allow_list(
    algorithms: Vec<Algorithm>,
    keys: &KeySource,
) -> Result<Box<[Algorithm]>, BuildError> {
    if algorithms.is_empty() {
        return Err(BuildError::Algorithms(
            "the algorithm allow-list is empty: no token could verify".to_owned(),
        ));
    }
    if let KeySource::Ring(ring) = keys
        && let Some(key) = ring.current().iter().find(|key| {
            !key.algorithms()
                .any(|accepted| algorithms.contains(&accepted))
        })
    {
        return Err(BuildError::Algorithms(format!(
            "the key {} accepts {:?}, none of the allowed {algorithms:?}",
            key.kid().unwrap_or("without kid"),
            key.algorithms().collect::<Vec<_>>(),
        )));
    }
    Ok(algorithms.into_boxed_slice())
}

/// RFC 6901: empty (the whole document) or `/`-separated tokens where `~` only starts `~0` or `~1`.
fn is_json_pointer(pointer: &str) -> bool {
    let mut rest = pointer;
    if !rest.starts_with('/') {
        return false;
    }
    while let Some(at) = rest.find('~') {
        if !matches!(rest.as_bytes().get(at + 1), Some(b'0' | b'1')) {
            return false;
        }
        rest = &rest[at + 2..];
    }
    true
}

fn key_source(
    keys: Vec<Arc<JwtKey>>,
    ring: Option<KeyRing>,
    #[cfg(feature = "remote-jwks")] remote: Option<crate::RemoteJwks>,
) -> Result<KeySource, BuildError> {
    #[cfg(not(feature = "remote-jwks"))]
    let remote: Option<std::convert::Infallible> = None;
    let sources =
        usize::from(!keys.is_empty()) + usize::from(ring.is_some()) + usize::from(remote.is_some());
    if sources > 1 {
        return Err(BuildError::ConflictingKeySources);
    }
    if let Some(ring) = ring {
        return Ok(KeySource::Ring(ring));
    }
    #[cfg(feature = "remote-jwks")]
    if let Some(remote) = remote {
        return Ok(KeySource::Remote(remote));
    }
    if keys.is_empty() {
        return Err(BuildError::NoKeys);
    }
    Ok(KeySource::Ring(KeyRing::new(KeySet::from_shared(keys)?)))
}

impl fmt::Debug for JwtAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthBuilder")
            .field("keys", &self.keys)
            .field("ring", &self.ring)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("strict_rfc9068", &self.strict_rfc9068)
            .field("algorithms", &self.algorithms)
            .field("role_pointers", &self.role_pointers)
            .field("dpop", &self.dpop)
            .field("resource_metadata", &self.resource_metadata)
            .field("cookie", &self.cookie)
            .field("cross_origin_check", &self.cross_origin_check)
            .field("trusted_origins", &self.trusted_origins)
            .field("query", &self.query)
            .field("max_token_len", &self.max_token_len)
            .field("cache_capacity", &self.cache_capacity)
            .field("expired_retention", &self.expired_retention)
            .field("body", &RendererName)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}
