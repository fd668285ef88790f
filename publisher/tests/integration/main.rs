//! Integration tests of the publisher daemon: the real server (`server::run`
//! with `server::app`) started in-process on `127.0.0.1:0`, real rustls with
//! certificates generated at test time (`cib_net::test_pki`), a real CIB
//! file changed with the real `crm_ticket` and `cibadmin` (`CIB_file` set on
//! each child), and a real HTTPS client (reqwest over `cib_net::tls`).
//!
//! - [`flood`]: connection caps, handshake and idle timeouts, and the
//!   stream cap per client, with flooders on other loopback addresses.
//! - [`cli`]: the `serve` binary — configuration checked before binding,
//!   `examples/make-certs.sh` certificates, SIGTERM.
//! - [`fleet`]: acknowledgements over mutual TLS (allow-list, bounded JSON)
//!   and the fleet view: `/status.json`, the `/status` page (escaped;
//!   rendered by headless Chromium), per-site metrics, `cib-publisher
//!   status` and its exit codes.
//! - [`harness`]: one publisher site (temporary directory, certificates, CIB
//!   file, server) and clients.
//! - [`tls`]: handshakes refused (no certificate, another CA, expired) and
//!   the per-ticket allow-list (403), each counted and logged.
//! - [`recheck`]: the CIB watcher's periodic re-check, which reads the CIB
//!   whole only when its version or ticket states changed.
//! - [`http`]: the scope document, its headers, 304, 404, 503, health and
//!   metrics.
//! - [`stream`]: server-sent events following CIB changes, resuming, ending
//!   on revoke and on shutdown; clients that stop reading.

mod cli;
mod fleet;
mod flood;
mod harness;
mod http;
mod recheck;
mod stream;
mod tls;
