//! How one built layer answers: its realm, its body renderer and its counters, shared by the layer and by
//! every extractor behind it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response};

use super::{
    AuthRejection, Challenges, JsonErrorBody, RejectionBody, RenderedBody, RendererName, Scheme,
};
use crate::stats::Counters;

/// The answering side of one built [`JwtAuthLayer`](crate::JwtAuthLayer), shared by all its clones and
/// derived variants. Cheap to clone (one reference count).
///
/// Every token the layer verifies carries it, and so does the marker of a request an optional layer let
/// through anonymously: that is how an extractor's rejection renders with the layer's realm and body and
/// is counted with the layer's rejections, without a second request extension. It is also the layer's
/// identity: a nested clone trusts a token that carries its own responder.
///
/// The routine answers ([`AuthRejection::ROUTINE`]: no token, expired, bad signature, unknown key, revoked)
/// are prepared when the layer is built: their challenge, and their body too when it is the default JSON
/// one. Answering one then copies reference-counted bytes instead of formatting a challenge and serializing
/// a body, which is most of what a 401 costs once the token itself was answered from the cache.
#[derive(Clone)]
pub(crate) struct Responder {
    shared: Arc<Shared>,
}

struct Shared {
    challenges: Challenges,
    /// The body renderer; `None` for the default [`JsonErrorBody`].
    body: Option<Arc<dyn RejectionBody>>,
    counters: Counters,
    /// For each scheme the layer accepts, its routine answers.
    prepared: Box<[Prepared]>,
}

/// A routine answer, rendered once.
struct Prepared {
    rejection: AuthRejection,
    scheme: Scheme,
    challenge: Option<HeaderValue>,
    /// `None` when a custom renderer renders every body afresh.
    body: Option<RenderedBody>,
}

impl Responder {
    /// Answers with `challenges` and `body` (`None`: the default [`JsonErrorBody`]).
    pub(crate) fn new(challenges: Challenges, body: Option<Arc<dyn RejectionBody>>) -> Responder {
        let schemes = [Scheme::Bearer]
            .into_iter()
            .chain(challenges.dpop_algs.is_some().then_some(Scheme::Dpop));
        let prepared = schemes
            .flat_map(|scheme| {
                AuthRejection::ROUTINE.map(|rejection| Prepared {
                    scheme,
                    challenge: rejection.challenge(scheme, &challenges),
                    body: body.is_none().then(|| JsonErrorBody.render(&rejection)),
                    rejection,
                })
            })
            .collect();
        Responder {
            shared: Arc::new(Shared {
                challenges,
                body,
                counters: Counters::default(),
                prepared,
            }),
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Whether `other` is this very responder: the same built layer.
    pub(crate) fn is(&self, other: &Responder) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Counts and traces a rejection.
    pub(crate) fn refuse(&self, rejection: &AuthRejection) {
        Counters::bump(&self.shared.counters.rejected);
        rejection.trace();
    }

    /// Counts, traces and renders a rejection of a request that presented its token with `scheme`.
    pub(crate) fn reject<B: From<Bytes>>(
        &self,
        rejection: &AuthRejection,
        scheme: Scheme,
    ) -> Response<B> {
        self.refuse(rejection);
        self.render(rejection, scheme)
    }

    /// The answer to `rejection`, with this layer's challenges and body.
    fn render<B: From<Bytes>>(&self, rejection: &AuthRejection, scheme: Scheme) -> Response<B> {
        let shared = &*self.shared;
        let renderer = shared
            .body
            .as_deref()
            .unwrap_or(&JsonErrorBody as &dyn RejectionBody);
        match shared
            .prepared
            .iter()
            .find(|prepared| prepared.scheme == scheme && prepared.rejection == *rejection)
        {
            Some(prepared) => rejection.respond(
                prepared.challenge.clone(),
                prepared
                    .body
                    .clone()
                    .unwrap_or_else(|| renderer.render(rejection)),
            ),
            None => rejection.respond(
                rejection.challenge(scheme, &shared.challenges),
                renderer.render(rejection),
            ),
        }
    }

    /// Counts a request let through with a verified token.
    pub(crate) fn admitted(&self) {
        Counters::bump(&self.shared.counters.authenticated);
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("challenges", &self.shared.challenges)
            .field("body", &RendererName)
            .field("counters", &self.shared.counters)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn same(prepared: &Response<Vec<u8>>, rendered: &Response<Vec<u8>>) -> bool {
        prepared.status() == rendered.status()
            && prepared.headers() == rendered.headers()
            && prepared.body() == rendered.body()
    }

    #[test]
    fn prepared_answers_are_the_rendered_ones() {
        let problem = |rejection: &AuthRejection| RenderedBody {
            content_type: HeaderValue::from_static("application/problem+json"),
            body: rejection.to_string().into(),
        };
        let custom: Arc<dyn RejectionBody> = Arc::new(problem);
        let dpop = Challenges {
            realm: "tessera".into(),
            dpop_algs: Some("ES256 EdDSA".into()),
            dpop_only: false,
            resource_metadata: Some(
                "https://api.example/.well-known/oauth-protected-resource".into(),
            ),
        };
        for challenges in [Challenges::bearer("tessera"), dpop] {
            for body in [None, Some(Arc::clone(&custom))] {
                let responder = Responder::new(challenges.clone(), body.clone());
                let renderer = body.as_deref().unwrap_or(&JsonErrorBody);
                let scope = AuthRejection::InsufficientScope {
                    scope: "a b".into(),
                };
                for scheme in [Scheme::Bearer, Scheme::Dpop] {
                    for rejection in AuthRejection::ROUTINE.into_iter().chain([scope.clone()]) {
                        let rendered = rejection.respond::<Vec<u8>>(
                            rejection.challenge(scheme, &challenges),
                            renderer.render(&rejection),
                        );
                        assert!(
                            same(&responder.render(&rejection, scheme), &rendered),
                            "{rejection:?} {scheme:?}"
                        );
                    }
                }
            }
        }
        // Without DPoP and metadata, the layer answers as the public rendering does.
        let responder = Responder::new(Challenges::bearer("tessera"), None);
        for rejection in AuthRejection::ROUTINE {
            let rendered = rejection.render("tessera", &JsonErrorBody);
            assert!(same(
                &responder.render(&rejection, Scheme::Bearer),
                &rendered
            ));
        }
    }
}
