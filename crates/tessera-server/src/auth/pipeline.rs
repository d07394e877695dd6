//! The one authentication pipeline: every request through [`JwtAuth`](crate::JwtAuth) and every
//! [`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify) call go through it.
//!
//! ```text
//! token source -> (cookie: cross-origin check) -> (DPoP: proof) -> length -> verified-token cache
//!   -> verification -----------------------------> binding -> lifetime -> (DPoP: first use) -> revocation -> policy
//!        \-- unknown kid: refetch --/
//! ```
//!
//! [`Pipeline::token`] runs everything that needs no waiting and says where the token stands
//! ([`Flow`]); [`Pipeline::resume`] finishes what has to be awaited (a remote key refetch, a revocation
//! lookup). A token that needs neither, which is every cache hit with a synchronous revocation check,
//! never leaves the synchronous part.
//!
//! The binding (a DPoP-bound token needs a proof by its key, an unbound one no proof) and the lifetime come
//! after the signature and before anything else, in that order: `Token-Expired` is only ever said of a
//! genuine token presented the way it must be.

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, HeaderValue, Method, Uri};

use super::policy::Policy;
use crate::cache::{Cached, TokenCache};
use crate::cross_origin::CrossOriginCheck;
use crate::dpop::{DpopCheck, Proof};
use crate::rejection::{Responder, Scheme};
use crate::resource_metadata::PublishedMetadata;
use crate::source::{Candidate, TokenSources};
use crate::stats::Counters;
use crate::verify::Validator;
use crate::{
    AuthRejection, Clock, KeyRing, KeySet, RevocationAnswer, RevocationCheck, RevocationError,
    RevocationFuture, TokenStatus, VerifiedToken,
};

/// What every clone and derived variant of one built layer shares.
pub(crate) struct Pipeline {
    pub(crate) sources: TokenSources,
    pub(crate) cross_origin: CrossOriginCheck,
    pub(crate) dpop: Option<DpopCheck>,
    pub(crate) metadata: Option<PublishedMetadata>,
    pub(crate) validator: Validator,
    pub(crate) keys: KeySource,
    pub(crate) cache: Option<TokenCache>,
    pub(crate) revocation: Option<Arc<dyn RevocationCheck>>,
    pub(crate) responder: Responder,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Where the live keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeySource {
    Ring(KeyRing),
    #[cfg(feature = "remote-jwks")]
    Remote(crate::RemoteJwks),
}

/// Where a request stands once everything that needs no waiting is done.
pub(crate) enum Step {
    /// An outer clone of this layer verified the request's token moments ago; this clone's policy holds
    /// too.
    AlreadyVerified,
    /// No token, and the policy lets such requests through.
    Anonymous,
    /// Verified, and let through.
    Admit(VerifiedToken),
    /// Verified with a DPoP proof that used the previous server nonce: let through, and the answer hands
    /// over the current one. (Boxed: the common steps should not make room for it.)
    AdmitWithNonce(VerifiedToken, Box<HeaderValue>),
    /// Refused; the challenge uses the scheme the token came with.
    Refuse(AuthRejection, Scheme),
    /// Something has to be awaited first.
    Wait(Pending),
}

/// Where a token stands once everything that needs no waiting is done.
pub(crate) enum Flow {
    /// Decided.
    Done(Result<VerifiedToken, AuthRejection>),
    /// Something has to be awaited first.
    Wait(Pending),
}

/// How a token came: as a bearer token (header, cookie, query, or not in a request at all), or with the
/// DPoP scheme and a proof that checked out for the request.
#[derive(Debug)]
pub(crate) enum Presentation {
    Bearer,
    /// Boxed: the bearer path moves this value around and should not pay for a proof's size.
    Dpop(Box<Proof>),
}

/// What [`Pipeline::resume`] has to wait for.
pub(crate) enum Pending {
    /// The token verified; the revocation check is looking it up.
    Lookup(Lookup),
    /// No live key has the token's `kid`: refetch the remote key set, then verify the token again.
    #[cfg(feature = "remote-jwks")]
    Refetch {
        token: Box<str>,
        presentation: Presentation,
    },
}

/// A verified token whose revocation status is being looked up.
pub(crate) struct Lookup {
    token: VerifiedToken,
    status: RevocationFuture,
}

/// A verified token after the synchronous part of the revocation check.
enum Screened {
    Done(Result<VerifiedToken, AuthRejection>),
    Lookup(Lookup),
}

impl From<Screened> for Flow {
    fn from(screened: Screened) -> Flow {
        match screened {
            Screened::Done(outcome) => Flow::Done(outcome),
            Screened::Lookup(lookup) => Flow::Wait(Pending::Lookup(lookup)),
        }
    }
}

impl Pending {
    /// The scheme the token came with, for the challenge of a rejection.
    pub(crate) fn scheme(&self) -> Scheme {
        match self {
            // Verified already: a bound token only gets this far with a proof.
            Pending::Lookup(Lookup { token, .. }) if token.is_bound() => Scheme::Dpop,
            Pending::Lookup(_) => Scheme::Bearer,
            #[cfg(feature = "remote-jwks")]
            Pending::Refetch { presentation, .. } => presentation.scheme(),
        }
    }

    /// The nonce to hand over when the request is let through.
    pub(crate) fn fresh_nonce(&self) -> Option<HeaderValue> {
        match self {
            Pending::Lookup(_) => None,
            #[cfg(feature = "remote-jwks")]
            Pending::Refetch { presentation, .. } => presentation.fresh_nonce(),
        }
    }
}

/// What a request waiting on a key refetch keeps of how its token came.
#[cfg(feature = "remote-jwks")]
impl Presentation {
    fn scheme(&self) -> Scheme {
        match self {
            Presentation::Bearer => Scheme::Bearer,
            Presentation::Dpop(_) => Scheme::Dpop,
        }
    }

    fn fresh_nonce(&self) -> Option<HeaderValue> {
        match self {
            Presentation::Bearer => None,
            Presentation::Dpop(proof) => proof.fresh_nonce.clone(),
        }
    }
}

impl Pipeline {
    /// The synchronous part for a request: its token (or the lack of one), under `policy`.
    pub(crate) fn request(
        &self,
        policy: &Policy,
        method: &Method,
        headers: &HeaderMap,
        uri: &Uri,
        extensions: &Extensions,
    ) -> Step {
        // `.layer(auth)` on a router plus `.route_layer(auth.require_scope(..))` on a route: the token was
        // verified (and revocation-checked) by the outer clone moments ago; only the policy is new.
        if let Some(verified) = extensions.get::<VerifiedToken>()
            && verified.verified_by(&self.responder)
        {
            return match policy.authorize(verified) {
                Ok(()) => Step::AlreadyVerified,
                Err(rejection) => Step::Refuse(rejection, scheme_of(verified)),
            };
        }
        let token = match self.sources.extract(headers, uri) {
            Ok(Some(token)) => token,
            Ok(None) if policy.anonymous => return Step::Anonymous,
            Ok(None) => return Step::Refuse(AuthRejection::MissingCredentials, Scheme::Bearer),
            Err(rejection) => return Step::Refuse(rejection, Scheme::Bearer),
        };
        let scheme = token.scheme();
        if token.is_ambient()
            && let Err(rejection) = self.cross_origin.check(method, headers)
        {
            return Step::Refuse(rejection, scheme);
        }
        let (presentation, fresh_nonce) = match &self.dpop {
            // Without DPoP the sources never find a DPoP token: this is a bearer token.
            None => (Presentation::Bearer, None),
            Some(dpop) => match scheme {
                Scheme::Dpop => {
                    let proven = token.checked().and_then(|text| {
                        let now = self.clock.unix_seconds();
                        dpop.proof(method, headers, uri, extensions, text, now)
                    });
                    match proven {
                        Ok(proof) => {
                            let nonce = proof.fresh_nonce.clone().map(Box::new);
                            (Presentation::Dpop(Box::new(proof)), nonce)
                        }
                        Err(rejection) => return Step::Refuse(rejection, scheme),
                    }
                }
                Scheme::Bearer if dpop.required => {
                    return Step::Refuse(AuthRejection::DpopRequired, scheme);
                }
                Scheme::Bearer => (Presentation::Bearer, None),
            },
        };
        match self.token(policy, token, presentation) {
            Flow::Done(Ok(token)) => match fresh_nonce {
                None => Step::Admit(token),
                Some(nonce) => Step::AdmitWithNonce(token, nonce),
            },
            Flow::Done(Err(rejection)) => Step::Refuse(rejection, scheme),
            Flow::Wait(pending) => Step::Wait(pending),
        }
    }

    /// The synchronous part for one token: the length limit, the cache or a verification against the live
    /// keys, then the binding to `presentation`, the lifetime, and the revocation check and `policy` when
    /// they can be decided at once.
    pub(crate) fn token(
        &self,
        policy: &Policy,
        token: Candidate<'_>,
        presentation: Presentation,
    ) -> Flow {
        if token.bytes().len() > self.sources.max_len {
            return Flow::Done(Err(AuthRejection::TokenTooLong {
                limit: self.sources.max_len,
            }));
        }
        let now = self.clock.unix_seconds();
        let keys = self.load_keys();
        let lifetime = self.validator.lifetime;
        let counters = self.responder.counters();
        // The cache is consulted before the charset check: a hit is byte for byte a token that passed it.
        let cached = self
            .cache
            .as_ref()
            .map(|cache| (cache, cache.key(token.bytes())));
        if let Some((cache, key)) = &cached {
            let found = key
                .as_ref()
                .map_or(Cached::Miss, |key| cache.get(key, &keys, lifetime, now));
            match found {
                Cached::Hit(verified) => {
                    Counters::bump(&counters.cache_hits);
                    return self.admit(policy, verified, &presentation, now).into();
                }
                Cached::Miss => Counters::bump(&counters.cache_misses),
            }
        }
        let token = match token.checked() {
            Ok(token) => token,
            Err(rejection) => return Flow::Done(Err(rejection)),
        };
        match self.validator.verify(token, &keys, &self.responder) {
            Ok(verified) => {
                if let Some((cache, Some(key))) = &cached
                    && self.within_lifetime(&verified, now).is_ok()
                {
                    cache.insert(key, verified.clone(), lifetime, now);
                }
                self.admit(policy, verified, &presentation, now).into()
            }
            Err(AuthRejection::UnknownKey) => self.unknown_key(token, presentation),
            Err(rejection) => Flow::Done(Err(rejection)),
        }
    }

    /// The part that waits: a remote key refetch and the verification after it, and a revocation lookup,
    /// each followed by the rest of the pipeline.
    pub(crate) async fn resume(
        &self,
        policy: &Policy,
        pending: Pending,
    ) -> Result<VerifiedToken, AuthRejection> {
        let screened = match pending {
            Pending::Lookup(lookup) => Screened::Lookup(lookup),
            #[cfg(feature = "remote-jwks")]
            Pending::Refetch {
                token,
                presentation,
            } => {
                let verified = self.verify_after_refetch(&token).await?;
                self.admit(policy, verified, &presentation, self.clock.unix_seconds())
            }
        };
        match screened {
            Screened::Done(outcome) => outcome,
            Screened::Lookup(Lookup { token, status }) => authorize(policy, token, status.await),
        }
    }

    /// Counts (and traces) how a token that did not come in a request fared.
    pub(crate) fn record(&self, outcome: &Result<VerifiedToken, AuthRejection>) {
        match outcome {
            Ok(_) => self.responder.admitted(),
            Err(rejection) => self.responder.refuse(rejection),
        }
    }

    /// A token whose signature and claims verified (now or earlier, from the cache): its binding to how it
    /// came, its lifetime, a proof's first use, then the revocation check and `policy` as far as they go
    /// without waiting.
    fn admit(
        &self,
        policy: &Policy,
        token: VerifiedToken,
        presentation: &Presentation,
        now: i64,
    ) -> Screened {
        let checked = match presentation {
            Presentation::Bearer if token.is_bound() => Err(AuthRejection::BoundTokenAsBearer),
            Presentation::Bearer => self.within_lifetime(&token, now),
            Presentation::Dpop(proof) => DpopCheck::bound(proof, &token)
                .and_then(|()| self.within_lifetime(&token, now))
                .and_then(|()| match &self.dpop {
                    Some(dpop) => dpop.first_use(proof, now),
                    None => Ok(()),
                }),
        };
        match checked {
            Ok(()) => self.screen(policy, token),
            Err(rejection) => Screened::Done(Err(rejection)),
        }
    }

    fn within_lifetime(&self, token: &VerifiedToken, now: i64) -> Result<(), AuthRejection> {
        self.validator
            .lifetime
            .check(token.not_before(), token.expires_at(), now)
    }

    /// The revocation check and `policy` for a verified token, as far as they can go without waiting.
    fn screen(&self, policy: &Policy, token: VerifiedToken) -> Screened {
        let Some(check) = &self.revocation else {
            return Screened::Done(policy.authorize(&token).map(|()| token));
        };
        match check.status(&token) {
            RevocationAnswer::Ready(status) => Screened::Done(authorize(policy, token, status)),
            RevocationAnswer::Pending(status) => Screened::Lookup(Lookup { token, status }),
        }
    }

    /// No live key has the token's `kid`: a remote key set may be refetched for it, if its cooldown allows.
    #[cfg_attr(
        not(feature = "remote-jwks"),
        expect(
            unused_variables,
            reason = "only a remote key set is refetched for a token"
        )
    )]
    fn unknown_key(&self, token: &str, presentation: Presentation) -> Flow {
        match &self.keys {
            KeySource::Ring(_) => Flow::Done(Err(AuthRejection::UnknownKey)),
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => {
                if remote.may_refetch() {
                    Flow::Wait(Pending::Refetch {
                        token: token.into(),
                        presentation,
                    })
                } else if remote.never_loaded() {
                    Flow::Done(Err(AuthRejection::KeysUnavailable))
                } else {
                    Flow::Done(Err(AuthRejection::UnknownKey))
                }
            }
        }
    }

    /// After a refetch for an unknown `kid`: verify once more against whatever is live now.
    #[cfg(feature = "remote-jwks")]
    async fn verify_after_refetch(&self, token: &str) -> Result<VerifiedToken, AuthRejection> {
        let KeySource::Remote(remote) = &self.keys else {
            return Err(AuthRejection::UnknownKey);
        };
        remote.refetch_for_unknown_kid().await;
        let keys = remote.current();
        match self.validator.verify(token, &keys, &self.responder) {
            Err(AuthRejection::UnknownKey) if remote.never_loaded() => {
                Err(AuthRejection::KeysUnavailable)
            }
            Ok(verified) => {
                let now = self.clock.unix_seconds();
                if let Some(cache) = &self.cache
                    && let Some(key) = cache.key(token.as_bytes())
                    && self.within_lifetime(&verified, now).is_ok()
                {
                    cache.insert(&key, verified.clone(), self.validator.lifetime, now);
                }
                Ok(verified)
            }
            other => other,
        }
    }

    /// The live keys for one request.
    fn load_keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        match &self.keys {
            KeySource::Ring(ring) => ring.load(),
            #[cfg(feature = "remote-jwks")]
            KeySource::Remote(remote) => remote.load(),
        }
    }
}

/// The scheme a verified token came with: a bound token is only ever accepted with a proof.
pub(crate) fn scheme_of(token: &VerifiedToken) -> Scheme {
    if token.is_bound() {
        Scheme::Dpop
    } else {
        Scheme::Bearer
    }
}

/// The revocation verdict, then `policy`: a verified token either passes both or is refused.
fn authorize(
    policy: &Policy,
    token: VerifiedToken,
    status: Result<TokenStatus, RevocationError>,
) -> Result<VerifiedToken, AuthRejection> {
    match status {
        Ok(TokenStatus::Active) => {}
        Ok(TokenStatus::Revoked) => return Err(AuthRejection::Revoked),
        Err(error) => {
            tracing::warn!(%error, "revocation check failed; refusing the request");
            return Err(AuthRejection::RevocationUnavailable);
        }
    }
    policy.authorize(&token).map(|()| token)
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("sources", &self.sources)
            .field("cross_origin", &self.cross_origin)
            .field("dpop", &self.dpop)
            .field("metadata", &self.metadata)
            .field("validator", &self.validator)
            .field("keys", &self.keys)
            .field("cache", &self.cache)
            .field(
                "revocation",
                &self.revocation.as_ref().map(|_| "dyn RevocationCheck"),
            )
            .field("responder", &self.responder)
            .field("clock", &self.clock)
            .finish()
    }
}
