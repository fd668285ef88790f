//! `cib-publisher` — the daemon that serves the configuration of a ticket to
//! the other sites of a geo cluster, while this site holds the ticket.
//!
//! The binary (`main.rs`) is glue: it parses the command line, reads the
//! configuration, and wires the parts below. The scope rules live in
//! `cib-transforms`, running `cibadmin` lives in `cib-tools`, and what both
//! ends of the wire share (paths, headers, TLS, client identities) lives in
//! `cib-net`. The protocol is described in `docs/protocol.md`.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), shared with the man page and the
//!   shell completion.
//! - [`config`]: the TOML configuration, parsed into typed structs and
//!   validated before any port is bound.
//! - [`publication`]: what is published per ticket ([`publication::TicketView`]),
//!   computed from the CIB text, and the `tokio::sync::watch` channels that
//!   carry it to the server ([`publication::Channels`]).
//! - [`watch`]: change detection — `notify` on the CIB file (debounced) plus a
//!   periodic re-check; queries the CIB off the async threads and publishes.
//! - [`server`]: the axum router ([`server::app`]) and the mutual-TLS accept
//!   loop with graceful shutdown ([`server::run`]).
//! - [`slots`]: counted slots per key and in total — the connection caps
//!   and the stream cap of the server.
//! - [`fleet`]: the fleet view — every allowed site's state per ticket,
//!   from the sites' requests and acknowledgements.
//! - [`status_page`]: the fleet view as an HTML page (embedded files).
//! - [`metrics`]: Prometheus metrics.
//! - [`error`]: the crate's one error enum, [`Error`].

#![deny(missing_docs)]

pub mod cli;
pub mod config;
pub mod error;
pub mod fleet;
pub mod metrics;
pub mod publication;
pub mod server;
pub mod slots;
pub mod status_page;
pub mod watch;

pub use error::Error;
