//! The HTTP stack around every route of the example server and the API process: what a production
//! deployment puts in front of `JwtAuthLayer` and the token service, all from tower-http.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use tessera_core::header::{TOKEN_EXPIRED, WWW_AUTHENTICATE};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, MakeSpan, OnResponse, TraceLayer};
use tracing::{Level, Span};

use super::DENIALS_PATH;

/// A request that takes longer is answered `503 Service Unavailable`, which clients treat as "retry
/// later" (a token client keeps its tokens and backs off).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request body any route reads; larger ones get `413` before a handler runs. (The token
/// service refuses bodies over its own, smaller limit with an OAuth error body.)
pub const BODY_LIMIT: usize = 64 * 1024;

/// Wraps `router` in the production stack, outermost first:
///
/// 1. `SetSensitiveRequestHeadersLayer`: `Authorization`, `Proxy-Authorization` and `Cookie` are marked
///    sensitive before anything can log them, so they print as `Sensitive`;
/// 2. `TraceLayer`: one span per request with its method, URI and headers (credentials as `Sensitive`),
///    one `INFO` line per answer with status and latency, `ERROR` for 5xx; the denials feed's polls (one
///    a second from every API process) at `DEBUG` only, and their failures at `ERROR`;
/// 3. `CorsLayer`: only `cors_origins` may call cross-origin, and their scripts may read
///    `Token-Expired` and `WWW-Authenticate`, the signals a browser client refreshes on;
/// 4. `TimeoutLayer`: [`REQUEST_TIMEOUT`];
/// 5. `RequestBodyLimitLayer`: [`BODY_LIMIT`];
/// 6. `CatchPanicLayer`: a panicking handler costs its request a `500`, not the connection.
pub fn http_stack(router: Router, cors_origins: &[HeaderValue]) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(cors_origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            HeaderName::from_static(TOKEN_EXPIRED),
            HeaderName::from_static(WWW_AUTHENTICATE),
        ])
        .max_age(Duration::from_secs(600));
    let trace = TraceLayer::new_for_http()
        .make_span_with(RequestSpan::new())
        .on_response(TracedResponse(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(tower_http::LatencyUnit::Micros),
        ));
    router.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::PROXY_AUTHORIZATION,
                header::COOKIE,
            ]))
            .layer(trace)
            .layer(cors)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                REQUEST_TIMEOUT,
            ))
            .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
            .layer(CatchPanicLayer::new()),
    )
}

/// The span of a request: `loud` for most, `quiet` for the denials feed's polls.
#[derive(Debug, Clone)]
struct RequestSpan {
    loud: DefaultMakeSpan,
    quiet: DefaultMakeSpan,
}

impl RequestSpan {
    fn new() -> Self {
        let span = DefaultMakeSpan::new().include_headers(true);
        RequestSpan {
            loud: span.clone().level(Level::INFO),
            quiet: span.level(Level::DEBUG),
        }
    }
}

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        if request.uri().path() == DENIALS_PATH {
            self.quiet.make_span(request)
        } else {
            self.loud.make_span(request)
        }
    }
}

/// The answer's line, written only inside a span the log filter lets through: a request traced quietly
/// stays quiet unless the filter asks for it (`RUST_LOG=tower_http=debug`).
#[derive(Debug, Clone)]
struct TracedResponse(DefaultOnResponse);

impl<B> OnResponse<B> for TracedResponse {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        if !span.is_disabled() {
            self.0.on_response(response, latency, span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_denials_feed_polls_are_traced_at_debug_and_everything_else_at_info() {
        let info = tracing_subscriber::fmt()
            .with_max_level(Level::INFO)
            .finish();
        tracing::subscriber::with_default(info, || {
            let mut spans = RequestSpan::new();
            let mut span_of = |path: &str| spans.make_span(&Request::get(path).body(()).unwrap());
            assert!(span_of(DENIALS_PATH).is_disabled());
            assert!(!span_of("/api/me").is_disabled());
            assert!(!span_of("/auth/token").is_disabled());
        });
    }
}
