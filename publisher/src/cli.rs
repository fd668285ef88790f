//! The command line of `cib-publisher`, a library module so that its man
//! page and shell completion are generated from the same definitions
//! (`packaging/src/gen.rs`).
//!
//! The doc comments are the help text: `cib-publisher --help` and
//! `cib-publisher(8)` show them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use cib_net::protocol::parse_ticket;

/// Publish the configuration of a Pacemaker ticket to the other sites of a
/// geo cluster.
///
/// The local CIB is read with `cibadmin --query`; when the environment
/// variable CIB_file names a file, that file is read instead, exactly as every
/// Pacemaker tool does.
///
/// Exit status: 0 on success (for `serve`: a clean shutdown on SIGTERM or
/// SIGINT; for `status`: every site in step), 1 (`status` only) a site is
/// not in step, 2 on any error.
#[derive(Debug, Parser)]
#[command(name = "cib-publisher", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Default configuration file of `status`.
pub const DEFAULT_CONFIG: &str = "/etc/cib-replicator/publisher.toml";

/// How `status` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// The daemon's /status.json as it is (fields in publisher/README.md).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the canonical scope of a ticket as a <configuration> document.
    ///
    /// The scope is every rsc_ticket of the ticket, the top-level resources
    /// they name (directly, through tags or templates), the templates and tags
    /// those use, and every other constraint wholly inside it. Fencing
    /// devices, constraints that mix replicated and local-only resources,
    /// rsc-pattern locations and locations naming a node of this site are
    /// left out and listed on stderr with the reason. The document carries the
    /// ticket, the CIB version, the grant term and a SHA-256 digest of the
    /// canonical content; cib-subscriber verifies it.
    Scope {
        /// Ticket whose configuration to print.
        #[arg(long, short = 't', value_name = "TICKET", value_parser = parse_ticket)]
        ticket: String,
    },
    /// Show every allowed site's state for each ticket, as the running
    /// daemon knows it from the sites' acknowledgements and streams.
    ///
    /// Asks the daemon at its metrics_listen address (plain HTTP, loopback
    /// by default) for /status.json; the same view is the HTML page /status
    /// there. For each ticket: the version and digest published here, then
    /// each site on its allow-list (and any other that acknowledged): its
    /// state (in-step, behind, drift, error, not-seen; idle when the ticket
    /// is not published here), the version it applied, how many versions
    /// and seconds it is behind, drift, a staged version, its last error,
    /// when it was last seen.
    ///
    /// --output json prints the daemon's JSON with stable fields, described
    /// in publisher/README.md, "status --output json".
    ///
    /// Exit status: 0 every allowed site of every ticket published here is
    /// in step; 1 one is not; 2 error: the configuration cannot be read,
    /// metrics_listen is off, or the daemon does not answer.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// The daemon's configuration file (for its metrics_listen address).
        #[arg(long, short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Serve the configured tickets over HTTPS with mutual TLS (the daemon).
    ///
    /// Reads and validates the configuration (TOML; see
    /// examples/publisher.toml) and the TLS files before binding the port.
    /// Serves GET /v1/tickets/TICKET/scope (conditional with ETag),
    /// /v1/tickets/TICKET/stream (server-sent events, one event per new
    /// version), POST /v1/tickets/TICKET/ack (a subscriber's
    /// acknowledgement), /healthz and /metrics, to clients whose certificate is
    /// issued by the configured CA; a ticket only to the certificate names
    /// in its `allow` list, and only while this site holds it granted (not
    /// standby). The CIB is re-read when its file changes (CIB_file, else
    /// /var/lib/pacemaker/cib/cib.xml) and every `recheck_seconds`.
    ///
    /// On metrics_listen (plain HTTP, loopback by default) it serves
    /// /metrics and the fleet view: /status.json and the page /status.
    ///
    /// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.
    /// Stops cleanly on SIGTERM or SIGINT.
    Serve {
        /// Configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Listen on this address instead of the configured one.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Site name to announce instead of the configured one.
        #[arg(long, value_name = "NAME")]
        site: Option<String>,
        /// Serve from this CIB file instead of the configured one (or
        /// CIB_file, or the live CIB).
        #[arg(long, value_name = "FILE")]
        cib_file: Option<PathBuf>,
        /// Periodic re-check interval in seconds instead of the configured one.
        #[arg(long, value_name = "SECONDS")]
        recheck_seconds: Option<u64>,
        /// Check the configuration and TLS files, then exit without serving.
        #[arg(long)]
        check: bool,
        /// Logging.
        #[command(flatten)]
        log: cib_net::logging::LogArgs,
    },
}
