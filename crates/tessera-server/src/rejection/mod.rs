//! Refusals: every cause ([`AuthRejection`]), classified once into its status, OAuth error code, challenge
//! and log level, and rendered the same way whichever part refused (the layer, an extractor behind it, or
//! [`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify)'s caller).
//!
//! - `reason`: [`AuthRejection`] and its one classification.
//! - `body`: [`RejectionBody`], the replaceable body, and its default [`JsonErrorBody`].
//! - `challenge`: the parameters a layer's challenges share (realm, schemes, `algs`, metadata URL).
//! - `responder`: a built layer's realm, body renderer and counters, shared with the extractors.

mod body;
mod challenge;
mod reason;
mod responder;

pub(crate) use body::RendererName;
pub use body::{JsonErrorBody, RejectionBody, RenderedBody};
pub(crate) use challenge::{Challenges, DPOP_NONCE, Scheme};
pub use reason::AuthRejection;
pub(crate) use responder::Responder;
