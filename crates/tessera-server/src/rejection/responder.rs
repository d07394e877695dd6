//! How one built layer answers: its realm, its body renderer and its counters, shared by the layer and by
//! every extractor behind it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response};

use super::{AuthRejection, JsonErrorBody, RejectionBody, RenderedBody, RendererName};
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
    realm: Box<str>,
    /// The body renderer; `None` for the default [`JsonErrorBody`].
    body: Option<Arc<dyn RejectionBody>>,
    counters: Counters,
    prepared: [Prepared; AuthRejection::ROUTINE.len()],
}

/// A routine answer, rendered once.
struct Prepared {
    rejection: AuthRejection,
    challenge: Option<HeaderValue>,
    /// `None` when a custom renderer renders every body afresh.
    body: Option<RenderedBody>,
}

impl Responder {
    /// Answers with `realm` and `body` (`None`: the default [`JsonErrorBody`]).
    pub(crate) fn new(realm: Box<str>, body: Option<Arc<dyn RejectionBody>>) -> Responder {
        let prepared = AuthRejection::ROUTINE.map(|rejection| Prepared {
            challenge: rejection.www_authenticate(&realm),
            body: body.is_none().then(|| JsonErrorBody.render(&rejection)),
            rejection,
        });
        Responder {
            shared: Arc::new(Shared {
                realm,
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

    /// Counts, traces and renders a rejection.
    pub(crate) fn reject<B: From<Bytes>>(&self, rejection: &AuthRejection) -> Response<B> {
        self.refuse(rejection);
        self.render(rejection)
    }

    /// The answer to `rejection`, with this layer's realm and body.
    fn render<B: From<Bytes>>(&self, rejection: &AuthRejection) -> Response<B> {
        let shared = &*self.shared;
        let renderer = shared
            .body
            .as_deref()
            .unwrap_or(&JsonErrorBody as &dyn RejectionBody);
        match shared
            .prepared
            .iter()
            .find(|prepared| prepared.rejection == *rejection)
        {
            Some(prepared) => rejection.respond(
                prepared.challenge.clone(),
                prepared
                    .body
                    .clone()
                    .unwrap_or_else(|| renderer.render(rejection)),
            ),
            None => rejection.render(&shared.realm, renderer),
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
            .field("realm", &self.shared.realm)
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
        for body in [None, Some(custom)] {
            let responder = Responder::new("tessera".into(), body.clone());
            let renderer = body.as_deref().unwrap_or(&JsonErrorBody);
            let scope = AuthRejection::InsufficientScope {
                scope: "a b".into(),
            };
            for rejection in AuthRejection::ROUTINE.into_iter().chain([scope]) {
                let rendered = rejection.render("tessera", renderer);
                assert!(
                    same(&responder.render(&rejection), &rendered),
                    "{rejection:?}"
                );
            }
        }
    }
}
