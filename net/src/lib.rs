//! `cib-net` — what `cib-publisher` and `cib-subscriber` share on the wire.
//!
//! The publisher serves a ticket's scope over HTTPS with mutual TLS; the
//! subscriber fetches or follows it. Both sides build their TLS
//! configuration, name the resources and read the headers through this
//! crate, so the two cannot drift apart. The protocol itself is described in
//! `docs/protocol.md`.
//!
//! Every TLS configuration built here uses the aws-lc-rs crypto provider
//! explicitly (never the process-wide default), TLS 1.2 and 1.3, and only the
//! CA file the admin named as trust anchors — never the system's roots.
//!
//! # Layout
//!
//! - [`ack`]: [`ack::Ack`], the bounded JSON body a subscriber posts
//!   after each apply or refusal.
//! - [`protocol`]: paths, header names, event names, entity tags, size bounds,
//!   ticket-name check.
//! - [`sse`]: server-sent events — framing once per version on the
//!   publisher, an incremental bounded parser for the subscriber.
//! - [`tls`]: [`tls::server_config`] (client certificates required, verified
//!   by rustls' `WebPkiClientVerifier`) and [`tls::client_config`] (identity +
//!   CA) from PEM files named by [`tls::TlsPaths`]; [`tls::TlsFailure`], why a
//!   handshake failed, for both daemons' logs.
//! - [`identity`]: [`identity::ClientIdentity`], the names a verified peer
//!   certificate asserts (SAN DNS names, else the subject CN), matched
//!   against per-ticket allow-lists.
//! - [`config`]: reading a daemon's TOML configuration file.
//! - [`daemon`]: SIGTERM/SIGINT and SIGHUP handling shared by both daemons.
//! - [`logging`]: where both daemons log (journal, syslog, stderr) and the
//!   reloadable log level.
//! - [`reload`]: [`reload::ReloadableServer`], a server TLS configuration
//!   whose certificate, key and CA are read again on SIGHUP.
//! - [`metrics`]: the plain-HTTP `/metrics` listener of both daemons and
//!   the certificates' expiry gauge.
//! - [`error`]: the crate's one error enum, [`Error`].
//! - `test_pki` (feature `test-pki`, for tests only): a CA and site
//!   certificates generated at run time with rcgen.

#![deny(missing_docs)]

pub mod ack;
pub mod config;
pub mod daemon;
pub mod error;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod reload;
pub mod sse;
#[cfg(any(test, feature = "test-pki"))]
pub mod test_pki;
pub mod tls;

pub use error::{Error, Result};
pub use identity::ClientIdentity;
