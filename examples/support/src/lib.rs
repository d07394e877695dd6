//! What Tessera's examples share, and what the end-to-end tests run: the examples are thin `main`s over
//! this crate, so the tests exercise exactly the code a user copies.
//!
//! - [`app`]: the demo API server (`examples/server.rs`, `examples/demo.rs`): the token service under
//!   `/auth`, its JWKS, `/api/me` and `/api/admin` behind `JwtAuthLayer`, wrapped in the production HTTP
//!   stack of tower-http ([`app::http_stack`]).
//! - [`bff`]: the backend-for-frontend of `examples/spa_proxy.rs`, which keeps every token out of the
//!   browser.
//! - [`login`]: the client side: a password login and a reqwest client carrying `tessera-client`.
//! - [`users`]: `--user NAME:PASSWORD[:role,...]`.
//! - [`shutdown`]: Ctrl-C and `SIGTERM`, for graceful shutdown.
//! - [`progress`]: the progress bar the narrating examples draw while they wait.

pub mod app;
pub mod bff;
pub mod login;
pub mod progress;
pub mod shutdown;
pub mod users;
