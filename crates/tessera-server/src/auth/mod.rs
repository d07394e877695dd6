//! The tower middleware, one role per file.
//!
//! ```
//! use axum::{Router, routing::get};
//! use tessera_server::{Claims, JwtAuthLayer};
//! use tower::ServiceBuilder;
//!
//! # fn main() -> Result<(), tessera_server::BuildError> {
//! let auth = JwtAuthLayer::builder()
//!     .hmac_secret(b"an HS256 secret of at least 32 bytes!")
//!     .issuer("https://auth.example")
//!     .audience("api")
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/me", get(|Claims(claims): Claims| async move { claims.sub }))
//!     .layer(ServiceBuilder::new().layer(auth));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! - `layer`: [`JwtAuthLayer`], the configured layer (cheap to clone) and its per-route variants.
//! - `builder`: [`JwtAuthBuilder`], which catches every misconfiguration before the server starts.
//! - `service`: [`JwtAuth`], the service a layer wraps around the inner one.
//! - `future`: [`ResponseFuture`], the inner service's future when nothing had to be awaited.
//! - `pipeline`: the one authentication pipeline, shared by requests and
//!   [`JwtAuthLayer::verify`]: token source, cache, verification, key refetch, revocation, policy.
//! - `policy`: what a route requires of a verified token (scopes, roles) and whether it may come without.

mod builder;
mod future;
mod layer;
mod pipeline;
mod policy;
mod service;

pub use builder::{
    BuildError, DEFAULT_CACHE_CAPACITY, DEFAULT_EXPIRED_TOKEN_RETENTION, DEFAULT_LEEWAY,
    JwtAuthBuilder,
};
pub use future::ResponseFuture;
pub use layer::JwtAuthLayer;
pub(crate) use pipeline::scheme_of;
pub use service::JwtAuth;
