//! What a rejection's body says: JSON by default, anything through [`RejectionBody`].

use std::fmt;

use bytes::Bytes;
use http::HeaderValue;

use super::AuthRejection;

/// A rendered rejection body and its media type.
#[derive(Debug, Clone)]
pub struct RenderedBody {
    /// The `Content-Type` of `body`.
    pub content_type: HeaderValue,
    /// The body bytes.
    pub body: Bytes,
}

/// Renders the body of a rejection; status and headers stay those of the wire contract.
///
/// Implemented by [`JsonErrorBody`] (the default) and by any `Fn(&AuthRejection) -> RenderedBody`, e.g. to
/// answer `application/problem+json` (RFC 9457):
///
/// ```
/// use http::HeaderValue;
/// use tessera_server::{AuthRejection, RenderedBody};
///
/// let problem = |rejection: &AuthRejection| RenderedBody {
///     content_type: HeaderValue::from_static("application/problem+json"),
///     body: serde_json::json!({
///         "type": "about:blank",
///         "status": rejection.status().as_u16(),
///         "title": rejection.error_code().as_str(),
///         "detail": rejection.to_string(),
///     })
///     .to_string()
///     .into(),
/// };
/// let response = AuthRejection::Expired.render::<Vec<u8>>("api", &problem);
/// assert_eq!(response.headers()["token-expired"], "true");
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// assert!(String::from_utf8_lossy(response.body()).contains("\"status\":401"));
/// ```
pub trait RejectionBody: Send + Sync + 'static {
    /// The body for `rejection`.
    fn render(&self, rejection: &AuthRejection) -> RenderedBody;
}

impl<F> RejectionBody for F
where
    F: Fn(&AuthRejection) -> RenderedBody + Send + Sync + 'static,
{
    fn render(&self, rejection: &AuthRejection) -> RenderedBody {
        self(rejection)
    }
}

/// The default body: [`ErrorResponse`](tessera_core::ErrorResponse) as `application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonErrorBody;

impl RejectionBody for JsonErrorBody {
    fn render(&self, rejection: &AuthRejection) -> RenderedBody {
        let body = serde_json::to_vec(&rejection.error_response()).unwrap_or_default();
        RenderedBody {
            content_type: HeaderValue::from_static("application/json"),
            body: body.into(),
        }
    }
}

/// A `Debug` stand-in for a boxed [`RejectionBody`].
pub(crate) struct RendererName;

impl fmt::Debug for RendererName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn RejectionBody")
    }
}
