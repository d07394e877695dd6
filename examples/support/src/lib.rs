//! What Tessera's examples share, and what the end-to-end tests run: the examples are thin `main`s over
//! this crate, so the tests exercise exactly the code a user copies.
//!
//! - [`app`]: the demo API server (`examples/server.rs`, `examples/demo.rs`): the token service under
//!   `/auth`, its JWKS, `/api/me` and `/api/admin` behind `JwtAuthLayer`, wrapped in the production HTTP
//!   stack of tower-http ([`app::http_stack`]).
//! - [`api`]: the API process of `examples/api.rs`, which is not the token service: keys discovered from
//!   the service, revocations polled from its denials feed.
//! - [`bff`]: the backend-for-frontend of `examples/spa_proxy.rs`, which keeps every token out of the
//!   browser.
//! - [`login`]: the client side: a password login and a reqwest client carrying `tessera-client`.
//! - [`users`]: `--user NAME:PASSWORD[:role,...]`; [`args`]: the other flag values the binaries share.
//! - [`secrets`]: the secrets read from the environment (key-encryption secret, denials-feed token).
//! - [`serving`]: a router served until stopped, then drained; [`shutdown`]: Ctrl-C and `SIGTERM`.
//! - [`progress`]: the progress bar the narrating examples draw while they wait.

pub mod api;
pub mod app;
pub mod args;
pub mod bff;
pub mod login;
pub mod progress;
pub mod secrets;
pub mod serving;
pub mod shutdown;
pub mod users;
