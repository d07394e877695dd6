//! End to end across the crates, through the examples' own code (`tessera-examples`): the demo server
//! (token service + `JwtAuthLayer` API) on 127.0.0.1:0 with a file-backed SQLite store, called through
//! `tessera-client`'s middleware, the SPA proxy in front of it, and a real browser.
//!
//! One test binary, so the harness in `support` is written once and compiled once.
//!
//! | module | what |
//! |---|---|
//! | `dpop` | DPoP-bound sessions: an expiry wave, stolen tokens, nonces at both ends, a client restart |
//! | `lifecycle` | login, expiry and one refresh, roles, logout, reuse, revocation |
//! | `restart` | a restart keeps sessions, and never lets a revoked access token through |
//! | `operator` | `/healthz`, `/readyz`, the opt-in `/metrics`, the server on PostgreSQL |
//! | `several_instances` | two servers on one PostgreSQL database and the API process (`examples/api.rs`): shared sessions, keys, revocations |
//! | `http_stack` | the example server's tower-http stack: CORS, body limit (log redaction: `tests/trace_redaction.rs`) |
//! | `spa_proxy` | the backend-for-frontend over plain HTTP: cookies, CSRF, sessions, hostile upstreams |
//! | `spa_browser` | the backend-for-frontend in headless Chromium |

mod dpop;
mod http_stack;
mod lifecycle;
mod operator;
mod restart;
mod several_instances;
mod spa_browser;
mod spa_proxy;
mod support;
