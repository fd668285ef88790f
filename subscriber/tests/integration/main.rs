//! Integration tests of `cib-subscriber`: one binary, topic modules, one
//! harness (`harness.rs`).
//!
//! - `fetch`: `replicate-now --from https://…` against an in-process
//!   publisher.
//! - `follow`: the daemon following real publishers — auto, manual,
//!   revoke, two publishers and grant terms, the local site holding the
//!   ticket.
//! - `fleet`: acknowledgements, and the publisher's view of this site.
//! - `faults`: a publisher killed mid-stream, truncated and altered
//!   documents, signals.
//! - `ops`: metrics over plain HTTP, reloads of rules and certificates,
//!   SIGHUP to the daemon process.
//! - `tls`: the daemon process with certificates the other end refuses, or
//!   against a publisher it must not trust.
//!
//! They need the Pacemaker command-line tools (`cibadmin`, `crm_ticket`,
//! `crm_verify`, `crm_diff`; `./scripts/setup` installs them).

mod faults;
mod fetch;
mod fleet;
mod follow;
mod harness;
mod ops;
mod tls;
