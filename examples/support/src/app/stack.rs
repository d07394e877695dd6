//! The HTTP stack around every route of the example server and the API process: what a production deployment puts in front
//! of `JwtAuthLayer` and the token service, all from tower-http.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tessera_core::header::{TOKEN_EXPIRED, WWW_AUTHENTICATE};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

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
///    one `INFO` line per answer with status and latency, `ERROR` for 5xx;
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
        .make_span_with(
            DefaultMakeSpan::new()
                .level(Level::INFO)
                .include_headers(true),
        )
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(tower_http::LatencyUnit::Micros),
        );
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
