//! How one built layer answers: its realm, its body renderer and its counters, shared by the layer and by
//! every extractor behind it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::Response;

use super::{AuthRejection, RejectionBody, RendererName};
use crate::stats::Counters;

/// The answering side of one built [`JwtAuthLayer`](crate::JwtAuthLayer), shared by all its clones and
/// derived variants. Cheap to clone (one reference count).
///
/// Every token the layer verifies carries it, and so does the marker of a request an optional layer let
/// through anonymously: that is how an extractor's rejection renders with the layer's realm and body and
/// is counted with the layer's rejections, without a second request extension. It is also the layer's
/// identity: a nested clone trusts a token that carries its own responder.
#[derive(Clone)]
pub(crate) struct Responder {
    shared: Arc<Shared>,
}

struct Shared {
    realm: Box<str>,
    body: Arc<dyn RejectionBody>,
    counters: Counters,
}

impl Responder {
    pub(crate) fn new(realm: Box<str>, body: Arc<dyn RejectionBody>) -> Responder {
        Responder {
            shared: Arc::new(Shared {
                realm,
                body,
                counters: Counters::default(),
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
        rejection.render(&self.shared.realm, &*self.shared.body)
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
