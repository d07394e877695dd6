//! Every way a request can fail authentication, and the one place that classifies each into its RFC 6750
//! answer.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use tessera_core::challenge::Challenge;
use tessera_core::header::{TOKEN_EXPIRED, TOKEN_EXPIRED_VALUE};
use tessera_core::jose::ProofError;
use tessera_core::{BEARER, DPOP, ErrorCode, ErrorResponse};

use super::challenge::{Challenges, DPOP_NONCE, Scheme};
use super::{JsonErrorBody, RejectionBody, RenderedBody};

/// Why [`JwtAuth`](crate::JwtAuth) or a [`Claims`](crate::Claims) extractor refused a request.
///
/// Each variant renders itself into the response of the wire contract (see [`AuthRejection::render`]): the
/// status, the `WWW-Authenticate` challenge, `Token-Expired: true` for [`AuthRejection::Expired`] only, and
/// a JSON [`ErrorResponse`] body (replaceable through [`RejectionBody`]). The `Display` text is the
/// `error_description`; it never contains the token.
///
/// A [`JwtAuth`](crate::JwtAuth) answers with its layer's realm and body renderer, and so do the
/// extractors behind it (their [`ClaimsRejection`](crate::ClaimsRejection) carries the layer's renderer);
/// the `IntoResponse` impl of a bare `AuthRejection` uses the defaults ([`AuthRejection::render_default`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No bearer token in any configured place: 401 with a bare challenge and no error code (RFC 6750 §3.1),
    /// one per scheme the layer accepts.
    #[error("The request carries no bearer token")]
    MissingCredentials,
    /// The `Authorization` header is not `Bearer <token>` with an RFC 6750 token or not visible ASCII, or the
    /// token cookie or `access_token` parameter does not hold a bare JWT.
    #[error("The bearer credentials are malformed: {0}")]
    MalformedAuthorization(&'static str),
    /// More than one `Authorization` header, or a token in two places (header, cookie, query).
    #[error("The request carries more than one access token")]
    MultipleTokens,
    /// The token is longer than the configured maximum; it was not decoded.
    #[error("The access token is longer than {limit} bytes")]
    TokenTooLong {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// The token is not a compact JWS with a JSON header and claims.
    #[error("The access token is not a well-formed JWT: {0}")]
    MalformedToken(&'static str),
    /// The token's `alg` is not the algorithm its key is bound to (this covers `none` and algorithm confusion).
    #[error("The access token is signed with an algorithm its key does not accept")]
    AlgorithmMismatch,
    /// No live key has the token's `kid`, even after refreshing a remote key set.
    #[error("The access token is signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("The access token signature is invalid")]
    InvalidSignature,
    /// Strict RFC 9068 mode: the `typ` header is not `at+jwt`.
    #[error("The access token is not an RFC 9068 access token (typ must be at+jwt)")]
    WrongTokenType,
    /// A required claim is absent.
    #[error("The access token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `iss` is not a trusted issuer.
    #[error("The access token was issued by an untrusted issuer")]
    InvalidIssuer,
    /// `aud` does not name this resource server.
    #[error("The access token is not meant for this audience")]
    InvalidAudience,
    /// `nbf` is still in the future, beyond the leeway.
    #[error("The access token is not valid yet")]
    NotYetValid,
    /// `exp` has passed, beyond the leeway. Reported only for a token that passed every other check, so a
    /// client may refresh on it.
    #[error("The access token expired")]
    Expired,
    /// The revocation check reports the token revoked.
    #[error("The access token has been revoked")]
    Revoked,
    /// The token lacks a scope the route requires.
    #[error("The access token lacks a required scope")]
    InsufficientScope {
        /// Every scope the route requires, space-separated: the `scope` of the challenge.
        scope: Arc<str>,
    },
    /// The token's subject lacks a role the route requires.
    #[error("The access token lacks the required role {role}")]
    MissingRole {
        /// The role that is missing.
        role: Arc<str>,
    },
    /// The claims verified but do not deserialize into the type a handler asked for.
    #[error("The access token's claims do not have the shape this API expects")]
    UnexpectedClaims,
    /// A remote key set has never been fetched successfully, so no token can be checked yet.
    #[error("No verification key is available yet; the issuer's key set could not be fetched")]
    KeysUnavailable,
    /// The revocation check failed, so the token's status is unknown.
    #[error("The token's revocation status could not be checked")]
    RevocationUnavailable,
    /// The token came from the token cookie, the method is unsafe (`POST`, `PUT`, `PATCH`, `DELETE`, ...),
    /// and the request did not show it comes from the API's own origin or a trusted one: 403
    /// `invalid_request`, without a challenge (the credentials are not at fault). See
    /// [`JwtAuthBuilder::token_cookie`](crate::JwtAuthBuilder::token_cookie).
    #[error(
        "The request is not same-origin, and a token cookie authorizes only same-origin requests with \
         unsafe methods"
    )]
    CrossOriginRequest,
    /// The DPoP proof is missing, repeated, malformed or does not match the request, the access token or
    /// the token's key (RFC 9449 §4.3): 401 `invalid_dpop_proof` with a `DPoP` challenge.
    #[error("{0}")]
    InvalidDpopProof(ProofError),
    /// The layer hands out DPoP nonces and the proof carries none, or a stale one: 401 `use_dpop_nonce`
    /// with a `DPoP` challenge and the nonce to use in `DPoP-Nonce` (RFC 9449 §9).
    #[error("The resource server requires a current nonce in the DPoP proof")]
    UseDpopNonce {
        /// The nonce to put in the next proof, sent as `DPoP-Nonce` (visible ASCII, as nonces are).
        nonce: Arc<str>,
    },
    /// A token bound to a DPoP key (`cnf.jkt`) came as a bearer token: whoever sends it has to prove
    /// possession of the key. 401 `invalid_token` with a `DPoP` challenge.
    #[error(
        "The access token is bound to a DPoP key and must be sent with the DPoP scheme and a proof"
    )]
    BoundTokenAsBearer,
    /// The layer accepts DPoP-bound tokens only, and the token came as a bearer token. 401
    /// `invalid_token` with a `DPoP` challenge.
    #[error("This resource accepts only DPoP-bound access tokens sent with a DPoP proof")]
    DpopRequired,
    /// A token without `cnf.jkt` came with the DPoP scheme: it is bound to no key a proof could show.
    #[error("The access token is not bound to a DPoP key")]
    UnboundToken,
    /// A [`Claims`](crate::Claims) extractor ran on a route that no `JwtAuthLayer` protects.
    #[error("No JwtAuthLayer protects this route")]
    LayerMissing,
}

impl AuthRejection {
    /// How this rejection is answered, apart from its body: the only place that decides it, one arm per
    /// variant and no catch-all, so a new variant has to be classified here before anything compiles.
    fn class(&self) -> Class<'_> {
        use ChallengeKind::{Absent, Error, Realm};
        use StatusCode as S;
        let invalid_token =
            Class::new(S::UNAUTHORIZED, ErrorCode::InvalidToken, Error, Level::Info);
        match self {
            AuthRejection::MissingCredentials => Class::new(
                S::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                Realm,
                Level::Debug,
            ),
            AuthRejection::MalformedAuthorization(_) | AuthRejection::MultipleTokens => Class::new(
                S::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                Error,
                Level::Info,
            ),
            AuthRejection::TokenTooLong { .. }
            | AuthRejection::MalformedToken(_)
            | AuthRejection::AlgorithmMismatch
            | AuthRejection::UnknownKey
            | AuthRejection::InvalidSignature
            | AuthRejection::WrongTokenType
            | AuthRejection::MissingClaim(_)
            | AuthRejection::InvalidIssuer
            | AuthRejection::InvalidAudience
            | AuthRejection::NotYetValid
            | AuthRejection::Revoked
            | AuthRejection::UnexpectedClaims => invalid_token,
            // The one answer a client refreshes on: flagged, and logged quietly since it is routine.
            AuthRejection::Expired => Class {
                token_expired: true,
                level: Level::Debug,
                ..invalid_token
            },
            AuthRejection::InvalidDpopProof(_) => Class {
                dpop: true,
                ..Class::new(
                    S::UNAUTHORIZED,
                    ErrorCode::InvalidDpopProof,
                    Error,
                    Level::Info,
                )
            },
            // Routine for a layer that hands out nonces: a client gets one per rotation.
            AuthRejection::UseDpopNonce { nonce } => Class {
                dpop: true,
                nonce: Some(nonce),
                ..Class::new(
                    S::UNAUTHORIZED,
                    ErrorCode::UseDpopNonce,
                    Error,
                    Level::Debug,
                )
            },
            AuthRejection::BoundTokenAsBearer | AuthRejection::DpopRequired => Class {
                dpop: true,
                ..invalid_token
            },
            AuthRejection::UnboundToken => invalid_token,
            AuthRejection::InsufficientScope { scope } => Class {
                scope: Some(scope),
                ..Class::new(
                    S::FORBIDDEN,
                    ErrorCode::InsufficientScope,
                    Error,
                    Level::Info,
                )
            },
            AuthRejection::MissingRole { .. } => Class::new(
                S::FORBIDDEN,
                ErrorCode::InsufficientScope,
                Error,
                Level::Info,
            ),
            // Not the credentials' fault, so no challenge: the request itself may not use them.
            AuthRejection::CrossOriginRequest => {
                Class::new(S::FORBIDDEN, ErrorCode::InvalidRequest, Absent, Level::Info)
            }
            AuthRejection::KeysUnavailable | AuthRejection::RevocationUnavailable => Class::new(
                S::SERVICE_UNAVAILABLE,
                ErrorCode::TemporarilyUnavailable,
                Absent,
                Level::Warn,
            ),
            AuthRejection::LayerMissing => Class::new(
                S::INTERNAL_SERVER_ERROR,
                ErrorCode::ServerError,
                Absent,
                Level::Warn,
            ),
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.class().status
    }

    /// The OAuth `error` code of the body (and of the challenge, where there is one).
    pub fn error_code(&self) -> ErrorCode {
        self.class().code
    }

    /// Whether the only fault is expiry: the answer carries `Token-Expired: true`.
    pub fn is_expired(&self) -> bool {
        self.class().token_expired
    }

    /// The JSON body of the default rendering.
    pub fn error_response(&self) -> ErrorResponse {
        let class = self.class();
        ErrorResponse {
            error: class.code,
            error_description: Some(self.to_string()),
            scope: class.scope.map(str::to_owned),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3) of a Bearer-only layer with `realm`, or `None` for
    /// answers that are not about the credentials (403 cross-origin, 503, 500). The DPoP rejections answer
    /// with a `DPoP` challenge (RFC 9449 §7.1). A layer with DPoP on adds the challenges of both schemes and
    /// `algs`; one with protected-resource metadata adds `resource_metadata` (RFC 9728 §5.1).
    pub fn www_authenticate(&self, realm: &str) -> Option<HeaderValue> {
        self.challenge(Scheme::Bearer, &Challenges::bearer(realm))
    }

    /// The challenge for a request that presented its token with `scheme`, from a layer set up as
    /// `settings` says: the scheme it used (`DPoP` for the DPoP rejections whatever it used), or every
    /// scheme the layer accepts when it presented none.
    pub(crate) fn challenge(&self, scheme: Scheme, settings: &Challenges) -> Option<HeaderValue> {
        let class = self.class();
        let with_metadata = |challenge: Challenge| match &settings.resource_metadata {
            Some(url) => challenge.param("resource_metadata", &**url),
            None => challenge,
        };
        let written = match class.challenge {
            ChallengeKind::Absent => return None,
            ChallengeKind::Realm => {
                let bearer = (!settings.dpop_only).then(|| {
                    with_metadata(Challenge::new(BEARER).param("realm", &*settings.realm))
                });
                let dpop = settings.dpop_algs.as_deref().map(|algs| {
                    with_metadata(
                        Challenge::new(DPOP)
                            .param("realm", &*settings.realm)
                            .param("algs", algs),
                    )
                });
                match (bearer, dpop) {
                    (Some(bearer), Some(dpop)) => format!("{bearer}, {dpop}"),
                    (Some(one), None) | (None, Some(one)) => one.to_string(),
                    (None, None) => return None,
                }
            }
            ChallengeKind::Error => {
                let dpop = class.dpop || scheme == Scheme::Dpop;
                let challenge = Challenge::new(if dpop { DPOP } else { BEARER })
                    .param("error", class.code.as_str())
                    .param("error_description", self.to_string());
                let challenge = match class.scope {
                    Some(scope) => challenge.param("scope", scope),
                    None => challenge,
                };
                let challenge = match settings.dpop_algs.as_deref() {
                    Some(algs) if dpop => challenge.param("algs", algs),
                    _ => challenge,
                };
                with_metadata(challenge).to_string()
            }
        };
        HeaderValue::try_from(written).ok()
    }

    /// The full answer with the default JSON body and realm `api`, as a route without a layer answers.
    /// [`JwtAuth`](crate::JwtAuth) and the extractors behind it use their layer's realm and
    /// [`RejectionBody`] instead.
    pub fn render_default<B: From<Bytes>>(&self) -> Response<B> {
        self.render("api", &JsonErrorBody)
    }

    /// The full answer: status and headers fixed by the wire contract, body from `body`.
    pub fn render<B: From<Bytes>>(&self, realm: &str, body: &dyn RejectionBody) -> Response<B> {
        self.respond(self.www_authenticate(realm), body.render(self))
    }

    /// The answers a server gives routinely, and whose headers never change: a layer prepares them once
    /// (see `Responder`).
    pub(crate) const ROUTINE: [AuthRejection; 5] = [
        AuthRejection::MissingCredentials,
        AuthRejection::Expired,
        AuthRejection::InvalidSignature,
        AuthRejection::UnknownKey,
        AuthRejection::Revoked,
    ];

    /// The answer with `challenge` (this rejection's [`www_authenticate`](Self::www_authenticate)) and
    /// `body`: the status and the other headers follow from the classification.
    pub(crate) fn respond<B: From<Bytes>>(
        &self,
        challenge: Option<HeaderValue>,
        body: RenderedBody,
    ) -> Response<B> {
        let class = self.class();
        let mut response = Response::new(B::from(body.body));
        *response.status_mut() = class.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, body.content_type);
        if let Some(challenge) = challenge {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if class.token_expired {
            headers.insert(
                HeaderName::from_static(TOKEN_EXPIRED),
                HeaderValue::from_static(TOKEN_EXPIRED_VALUE),
            );
        }
        if let Some(nonce) = class
            .nonce
            .and_then(|nonce| HeaderValue::from_str(nonce).ok())
        {
            headers.insert(DPOP_NONCE, nonce);
        }
        response
    }

    /// Emits the `tracing` event for this rejection: the reason and status, never the token.
    pub(crate) fn trace(&self) {
        let class = self.class();
        let status = class.status.as_u16();
        match class.level {
            Level::Debug => {
                tracing::debug!(status, reason = %self, "bearer authentication rejected");
            }
            Level::Info => tracing::info!(status, reason = %self, "bearer authentication rejected"),
            Level::Warn => {
                tracing::warn!(status, reason = %self, "bearer authentication could not complete");
            }
        }
    }
}

/// Everything about an answer but its body, as [`AuthRejection::class`] decides it.
struct Class<'a> {
    status: StatusCode,
    code: ErrorCode,
    challenge: ChallengeKind,
    /// The `scope` of an `insufficient_scope` challenge and body.
    scope: Option<&'a str>,
    /// Whether the answer carries `Token-Expired: true`.
    token_expired: bool,
    /// Whether the challenge is `DPoP` whatever scheme the request used: the answer is about DPoP itself.
    dpop: bool,
    /// The `DPoP-Nonce` of a `use_dpop_nonce` answer.
    nonce: Option<&'a str>,
    level: Level,
}

impl Class<'_> {
    fn new(status: StatusCode, code: ErrorCode, challenge: ChallengeKind, level: Level) -> Self {
        Class {
            status,
            code,
            challenge,
            scope: None,
            token_expired: false,
            dpop: false,
            nonce: None,
            level,
        }
    }
}

/// Which `WWW-Authenticate` challenge an answer carries.
#[derive(Clone, Copy)]
enum ChallengeKind {
    /// No challenge: the answer is not about the credentials (503, 500).
    Absent,
    /// `realm` only (and `algs` for DPoP): no credentials were presented (RFC 6750 §3.1), one challenge per
    /// accepted scheme.
    Realm,
    /// `error` and `error_description` (and `scope`, where the class has one), in the request's scheme.
    Error,
}

/// The level of a rejection's `tracing` event.
#[derive(Clone, Copy)]
enum Level {
    /// Routine: no credentials, or an expired token a client will refresh.
    Debug,
    /// A client error worth seeing: a bad token, a missing scope.
    Info,
    /// The server could not decide (keys or revocation list unavailable, no layer).
    Warn,
}

impl axum::response::IntoResponse for AuthRejection {
    fn into_response(self) -> axum::response::Response {
        self.render_default()
    }
}

#[cfg(test)]
mod tests {
    use tessera_core::header::EXPIRED_DESCRIPTION;

    use super::*;

    #[test]
    fn expired_description_is_the_contract_one() {
        assert_eq!(AuthRejection::Expired.to_string(), EXPIRED_DESCRIPTION);
    }

    #[test]
    fn every_variant_is_answered_as_the_contract_says() {
        let scope = AuthRejection::InsufficientScope {
            scope: "read admin".into(),
        };
        let role = AuthRejection::MissingRole {
            role: "owner".into(),
        };
        let cases = [
            (
                AuthRejection::MissingCredentials,
                401,
                "unauthorized",
                Some("Bearer realm=\"r\""),
            ),
            (
                AuthRejection::MalformedAuthorization("x"),
                400,
                "invalid_request",
                Some("Bearer error=\"invalid_request\""),
            ),
            (
                AuthRejection::MultipleTokens,
                400,
                "invalid_request",
                Some("Bearer error=\"invalid_request\""),
            ),
            (
                AuthRejection::TokenTooLong { limit: 8 },
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::MalformedToken("x"),
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::AlgorithmMismatch,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::UnknownKey,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::InvalidSignature,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::WrongTokenType,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::MissingClaim("exp"),
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::InvalidIssuer,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::InvalidAudience,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::NotYetValid,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::Expired,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::Revoked,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                scope,
                403,
                "insufficient_scope",
                Some("Bearer error=\"insufficient_scope\""),
            ),
            (
                role,
                403,
                "insufficient_scope",
                Some("Bearer error=\"insufficient_scope\""),
            ),
            (
                AuthRejection::UnexpectedClaims,
                401,
                "invalid_token",
                Some("Bearer error=\"invalid_token\""),
            ),
            (
                AuthRejection::CrossOriginRequest,
                403,
                "invalid_request",
                None,
            ),
            (
                AuthRejection::KeysUnavailable,
                503,
                "temporarily_unavailable",
                None,
            ),
            (
                AuthRejection::RevocationUnavailable,
                503,
                "temporarily_unavailable",
                None,
            ),
            (AuthRejection::LayerMissing, 500, "server_error", None),
        ];
        for (rejection, status, code, challenge) in cases {
            let response = rejection.render::<Vec<u8>>("r", &JsonErrorBody);
            assert_eq!(response.status(), status, "{rejection:?}");
            assert_eq!(rejection.error_code().as_str(), code, "{rejection:?}");
            let written = response.headers().get(WWW_AUTHENTICATE);
            match challenge {
                Some(prefix) => {
                    let written = written.unwrap().to_str().unwrap();
                    assert!(written.starts_with(prefix), "{rejection:?}: {written}");
                    let scoped = matches!(rejection, AuthRejection::InsufficientScope { .. });
                    assert_eq!(
                        written.ends_with(r#", scope="read admin""#),
                        scoped,
                        "{rejection:?}: {written}"
                    );
                }
                None => assert!(written.is_none(), "{rejection:?}"),
            }
            let expired = matches!(rejection, AuthRejection::Expired);
            assert_eq!(
                response.headers().contains_key(TOKEN_EXPIRED),
                expired,
                "{rejection:?}"
            );
            assert_eq!(rejection.is_expired(), expired);
        }
    }

    #[test]
    fn missing_credentials_challenge_has_no_error() {
        let challenge = AuthRejection::MissingCredentials
            .www_authenticate("api")
            .unwrap();
        assert_eq!(challenge, r#"Bearer realm="api""#);
    }
}
