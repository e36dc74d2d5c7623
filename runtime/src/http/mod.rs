//! The live export (feature `http`): an HTTP server that shows a running
//! runtime's observation to Prometheus, to scripts and to load balancers.
//! See [`Runtime::serve_http`](crate::Runtime::serve_http) for the
//! endpoints.
//!
//! - `config.rs`: [`HttpConfig`], where it listens.
//! - `server.rs`: [`HttpServer`], its thread, accept loop and stop, and
//!   `Runtime::serve_http`.
//! - `routes.rs`: what each request gets (pure: no socket).
//! - `query.rs`: the query strings the endpoints take.
//! - `error.rs`: [`ServeError`].
//!
//! This module reads observation (snapshots, the journal) and the
//! runtime's state (shutting down, escalations to the root); nothing else
//! in the crate names it, and the runtime knows it only as a shutdown hook.
//!
//! # Exposure
//!
//! Cell paths and types, failure texts, journal entries: the endpoints show
//! the application's internals. The server listens on the loopback
//! interface unless told otherwise ([`HttpConfig::bind`]); it has no
//! authentication of its own. `docs/observation.md` in the repository says
//! how to put it behind a reverse proxy that authenticates, or to reach it
//! over an SSH tunnel.
//!
//! # Shutdown
//!
//! The server stops with the runtime, once its cells are drained: until
//! then `/readyz` answers 503, so a load balancer stops sending traffic
//! while the cells finish theirs. Stopping closes the listener at once;
//! connections still open get a second to finish.

mod config;
mod error;
mod query;
mod routes;
mod server;

pub use self::config::HttpConfig;
pub use self::error::ServeError;
pub use self::server::HttpServer;
