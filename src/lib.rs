//! Tessera: JWT access tokens plus rotating refresh tokens, done right on both ends of the wire.
//!
//! This crate re-exports the four parts so an application can depend on one name:
//!
//! - [`wire`] ([`tessera_core`]): wire types both ends share;
//! - [`server`] ([`tessera_server`]): `JwtAuthLayer` for API servers;
//! - [`issuer`] ([`tessera_issuer`]): the token service;
//! - [`client`] ([`tessera_client`]): the reqwest-middleware that keeps tokens fresh.
//!
//! An API that only validates tokens should depend on `tessera-server` alone: it compiles no database driver.

pub use tessera_client as client;
pub use tessera_core as wire;
pub use tessera_issuer as issuer;
pub use tessera_server as server;

/// The README's code blocks, compiled (and the runnable ones run) as doctests, so the guide cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
