//! What a layer's `WWW-Authenticate` challenges carry besides the error: its realm, the schemes it accepts,
//! and where its protected-resource metadata is.

use http::HeaderName;

/// The header carrying a server nonce for the next DPoP proof (RFC 9449 §8, §9).
pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static(tessera_core::header::DPOP_NONCE);

/// How a request presented its token: a challenge about the token uses the same scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer`, the token cookie or the `access_token` parameter; also a request without
    /// any token, whose challenge lists every scheme the layer accepts.
    Bearer,
    /// `Authorization: DPoP` with a `DPoP` proof.
    Dpop,
}

/// The parameters every challenge of one layer shares.
#[derive(Debug, Clone)]
pub(crate) struct Challenges {
    /// The `realm` of the challenges sent when no token was presented.
    pub(crate) realm: Box<str>,
    /// `Some` when the layer accepts DPoP: the `algs` of its `DPoP` challenges.
    pub(crate) dpop_algs: Option<Box<str>>,
    /// Only DPoP is accepted: a request without a token gets no `Bearer` challenge.
    pub(crate) dpop_only: bool,
    /// The URL of the layer's RFC 9728 metadata, sent as `resource_metadata`.
    pub(crate) resource_metadata: Option<Box<str>>,
}

impl Challenges {
    /// A Bearer-only layer with `realm` and no metadata.
    pub(crate) fn bearer(realm: &str) -> Challenges {
        Challenges {
            realm: realm.into(),
            dpop_algs: None,
            dpop_only: false,
            resource_metadata: None,
        }
    }
}
