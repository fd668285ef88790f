//! `cib-subscriber` — keeps a stopped, site-adapted copy of a ticket's
//! configuration in the local CIB, by hand (`replicate-now`, `diff`) or as
//! a daemon that follows the publishers of the other sites (`run`).
//!
//! The binary (`main.rs`) is glue: it parses the command line and calls
//! the parts below. The scope, transform and merge rules live in
//! `cib-transforms`, running Pacemaker tools and xsltproc lives in
//! `cib-tools`, and what both ends of the wire share lives in `cib-net`.
//! The protocol is described in `docs/protocol.md`.
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap), shared with the man page and the
//!   shell completion.
//! - [`config`]: the daemon's TOML configuration, validated before any
//!   connection is made.
//! - [`daemon`]: one coordinator per ticket — verify, grant-term check,
//!   transform, then apply (`auto`) or stage (`manual`).
//! - [`follow`]: one follower per peer — the event stream, reconnects with
//!   backoff and jitter.
//! - [`state`]: per-ticket state files (`state.toml`, `pending.xml`),
//!   written atomically.
//! - [`ack`]: acknowledgements to the publisher after each apply or
//!   refusal.
//! - [`fetch`]: HTTPS clients with mutual TLS; one-shot `--from https://…`.
//! - [`pipeline`]: reading and verifying documents, running the site's
//!   transform steps, staged documents.
//! - [`apply`]: `diff` and `replicate-now` against a CIB.
//! - [`kept`]: the local CIB as last read whole, used while its
//!   configuration is still the CIB's.
//! - [`metrics`]: Prometheus metrics, served on `metrics_listen`.
//! - [`reload`]: reading the configuration again on SIGHUP.
//! - [`status`]: whether each ticket's copy is in step, as text or JSON,
//!   with the exit code.
//! - [`gate`]: whether this site may acquire a ticket (booth's
//!   `before-acquire-handler`).
//! - [`lazy`]: lazy mode — the verified copy kept out of the CIB until the
//!   ticket is acquired here.
//! - [`booth`]: the replica state as a booth site attribute (booth's
//!   `attr-prereq`).
//! - [`error`]: the error enum of configuration, state and start-up.

#![deny(missing_docs)]

pub mod ack;
pub mod apply;
pub mod booth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod fetch;
pub mod follow;
pub mod gate;
pub mod kept;
pub mod lazy;
pub mod metrics;
pub mod pipeline;
pub mod reload;
pub mod state;
pub mod status;

pub use error::Error;
