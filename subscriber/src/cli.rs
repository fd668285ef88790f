//! The command line of `cib-subscriber`, a library module so that its man
//! page and shell completion are generated from the same definitions
//! (`packaging/src/gen.rs`).
//!
//! The doc comments are the help text: `cib-subscriber --help` and
//! `cib-subscriber(8)` show them.

use std::path::{Path, PathBuf};

use clap::{ArgMatches, Args, Parser, Subcommand};

use cib_net::protocol::parse_ticket;

use cib_tools::cib::Cib;

use crate::apply::Color;
use crate::config::{read_config, DEFAULT_CONFIG, DEFAULT_STATE_DIR};
use crate::fetch::{Source, TlsArgs};
use crate::pipeline::StepArg;
use crate::status::Output;

/// Keep a stopped, site-adapted copy of a Pacemaker ticket's configuration
/// in the local CIB.
///
/// The scope published by cib-publisher at the site holding the ticket is
/// verified (digest, ticket), transformed for this site (--rules and --xslt,
/// applied in the order given) and merged into the local CIB: replicated
/// elements are owned by cib-replicator (recorded in crm_config, see
/// `status`), local elements are never changed, and the change is applied as
/// one version-checked write.
///
/// `run` is the daemon that does this for every new version published;
/// in manual mode it stages each version, and `diff` / `replicate-now`
/// without --from show and apply the staged one.
///
/// The local CIB is read and written through cibadmin; when the environment
/// variable CIB_file names a file, that file is used instead, exactly as
/// every Pacemaker tool does (or the configuration's `cib_file`, with
/// --config).
///
/// Exit status: 0 success (for `diff`: nothing would change; for `status`:
/// in step; for `run`: a clean shutdown on SIGTERM or SIGINT), 1 `diff`
/// found changes (`status`: not in step; `gate`: refused), 2 error (nothing
/// was applied).
#[derive(Debug, Parser)]
#[command(name = "cib-subscriber", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a published scope after this site's transforms.
    Transform {
        /// The scope and this site's transforms.
        #[command(flatten)]
        input: Input,
    },
    /// Dry run: show how replicate-now would change the local CIB.
    ///
    /// Prints a unified diff of the local <configuration> before and after,
    /// then a summary: added, changed, removed, conflicts, drift, left out.
    /// Without --from, shows the change the daemon staged (manual mode).
    /// Exits 0 when nothing would change (or nothing is staged), 1 when
    /// something would, 2 on error.
    Diff {
        /// Ticket the scope belongs to.
        #[arg(long, short = 't', value_name = "TICKET", value_parser = parse_ticket)]
        ticket: String,
        /// The scope and this site's transforms.
        #[command(flatten)]
        input: Input,
        /// The daemon's state and CIB.
        #[command(flatten)]
        local: Local,
        /// Take over local elements that carry the ids of replicated ones.
        #[arg(long)]
        adopt: bool,
        /// Colour the diff.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Merge the scope into the local CIB now.
    ///
    /// Without --from, applies the document the daemon staged (manual mode)
    /// in STATE_DIR/TICKET/pending.xml, already transformed, and records it
    /// in the daemon's state.
    ///
    /// Refuses (exit 2, CIB untouched) when the ticket is granted to this
    /// site, when the scope lacks its rsc_ticket constraints, when an unowned
    /// local element uses a replicated id (unless --adopt), when the scope's
    /// grant term is older than the one applied, or when the merged CIB does
    /// not pass crm_verify. Applying the same scope twice changes nothing.
    ReplicateNow {
        /// Ticket the scope belongs to.
        #[arg(long, short = 't', value_name = "TICKET", value_parser = parse_ticket)]
        ticket: String,
        /// The scope and this site's transforms.
        #[command(flatten)]
        input: Input,
        /// The daemon's state and CIB.
        #[command(flatten)]
        local: Local,
        /// Take over local elements that carry the ids of replicated ones.
        #[arg(long)]
        adopt: bool,
    },
    /// Show whether this site's copy of each ticket is in step, for people
    /// and for machines.
    ///
    /// For each ticket: whether it is granted here, what is replicated
    /// (the ownership record in the CIB: scope digest, origin version, grant
    /// term) and the state of each replicated element (ok, drift: edited
    /// locally, missing: deleted locally), then what the daemon recorded:
    /// source site, grant term, versions received, applied and pending, last
    /// result, last error, each peer's stream, with their ages.
    ///
    /// Without --ticket, reports every ticket of the configuration (--config,
    /// else /etc/cib-replicator/subscriber.toml). Without --config and
    /// --state-dir, that file is read when it exists.
    ///
    /// --output json prints one JSON object with stable fields, described
    /// in subscriber/README.md, "status --output json" (installed as
    /// /usr/share/doc/cib-replicator/README.subscriber.md).
    ///
    /// Exit status: 0 every ticket is in step (or granted here); 1 a ticket
    /// is not in step: an element drifted or is missing, a version is
    /// staged and not applied, the version last received is not the one
    /// applied, the last document was refused or not applied, or there is
    /// no copy (no rsc_ticket for the ticket here); 2 error: an
    /// unknown ticket, an unreadable configuration, state or CIB.
    Status {
        /// Ticket to report on (default: every ticket of the configuration).
        #[arg(long, short = 't', value_name = "TICKET", value_parser = parse_ticket)]
        ticket: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// The daemon's state and CIB.
        #[command(flatten)]
        local: Local,
    },
    /// Whether this site may acquire a ticket: booth's before-acquire-handler.
    ///
    /// booth runs its before-acquire-handler before it acquires or renews a
    /// ticket, and does not take (or gives up) the ticket when the handler
    /// exits non-zero. In booth.conf, under the ticket (booth allows at most
    /// 64 characters there):
    ///
    ///   before-acquire-handler = /usr/sbin/cib-subscriber gate
    ///
    /// Without --config and --state-dir, reads /etc/cib-replicator/subscriber.toml
    /// when it exists. The ticket comes from BOOTH_TICKET, set by booth.
    ///
    /// Allows (exit 0) when the ticket is granted here already (a renewal),
    /// when the daemon never received a version of the ticket (this site is
    /// its origin), or when the version last received is the one applied to
    /// the local CIB. Refuses (exit 1) when the local CIB has no rsc_ticket
    /// for the ticket, or when a version was received and not applied (a
    /// failed apply, or one staged in manual mode): failover to a stale copy
    /// would start an old configuration. Exit 2 on error (booth refuses
    /// too). Prints one line saying why.
    ///
    /// In lazy mode, when the copy kept out of the CIB (STATE_DIR/TICKET/lazy.xml)
    /// is the version last received, the gate writes it to the CIB first
    /// (as replicate-now would, also when the ticket is granted here
    /// already: the first renewal after an election) and then allows; it
    /// refuses (exit 1) when writing fails.
    Gate {
        /// Ticket to decide for (booth sets BOOTH_TICKET).
        #[arg(long, short = 't', value_name = "TICKET", env = "BOOTH_TICKET", value_parser = parse_ticket)]
        ticket: String,
        /// The daemon's state and CIB.
        #[command(flatten)]
        local: Local,
    },
    /// Follow the publishers of the configured tickets (the daemon).
    ///
    /// Reads and validates the configuration (TOML; see
    /// examples/subscriber.toml), the rule files and the TLS files before
    /// connecting. For each ticket, keeps an event stream open to every
    /// peer's publisher (reconnecting with backoff and jitter) and accepts a
    /// version only if its grant term is not older than the newest seen;
    /// verifies its digest, runs the ticket's transform steps, then applies
    /// it (mode "auto", as replicate-now), stages it (mode "manual"), or
    /// verifies it as "auto" would and keeps it out of the CIB until the
    /// ticket is acquired here (mode "lazy", written by `gate`).
    /// Does nothing while this site holds the ticket granted. State per
    /// ticket is kept in STATE_DIR/TICKET/ (see `status`).
    ///
    /// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.
    /// Stops cleanly on SIGTERM or SIGINT.
    Run {
        /// Configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Site name instead of the configured one.
        #[arg(long, value_name = "NAME")]
        site: Option<String>,
        /// State directory instead of the configured one.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Apply to this CIB file instead of the configured one (or
        /// CIB_file, or the live CIB).
        #[arg(long, value_name = "FILE")]
        cib_file: Option<PathBuf>,
        /// Check the configuration, rule and TLS files, then exit.
        #[arg(long)]
        check: bool,
        /// Logging.
        #[command(flatten)]
        log: cib_net::logging::LogArgs,
    },
}

/// Where the scope comes from and how this site transforms it.
#[derive(Debug, Args)]
pub struct Input {
    /// File holding a scope published by `cib-publisher scope`, or a
    /// publisher's URL: https://HOST:PORT (the scope of --ticket is fetched)
    /// or the full https://HOST:PORT/v1/tickets/TICKET/scope. A URL is
    /// fetched with mutual TLS (--cert, --key, --ca); responses over 64 MiB,
    /// plaintext http:// and redirects are refused. Without --from, `diff`
    /// and `replicate-now` use the document staged by the daemon.
    #[arg(long, value_name = "FILE|URL")]
    pub from: Option<Source>,
    /// Client certificate, key and CA for a --from URL.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// TOML file of declarative transform rules (repeatable, ordered).
    #[arg(long, value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// XSLT 1.0 stylesheet run by xsltproc (repeatable, ordered with --rules).
    #[arg(long, value_name = "FILE")]
    pub xslt: Vec<PathBuf>,
    /// A rule that matches nothing is an error (exit 2, nothing applied)
    /// instead of a warning.
    #[arg(long)]
    pub strict: bool,
}

/// The daemon's state and CIB, for `diff`, `replicate-now` and `status`.
#[derive(Debug, Args)]
pub struct Local {
    /// The daemon's configuration file: its `state_dir` (and `cib_file`,
    /// if set) are used.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The daemon's state directory (default: the configuration's, else
    /// /var/lib/cib-replicator).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl Local {
    /// `--config /etc/cib-replicator/subscriber.toml` when neither --config
    /// nor --state-dir is given and that file exists.
    #[must_use]
    pub fn or_default_config(mut self) -> Local {
        if self.config.is_none() && self.state_dir.is_none() && Path::new(DEFAULT_CONFIG).is_file() {
            self.config = Some(PathBuf::from(DEFAULT_CONFIG));
        }
        self
    }

    /// The state directory and the CIB to work on.
    pub fn resolve(&self) -> anyhow::Result<(PathBuf, Cib)> {
        let (dir, cib) = match &self.config {
            Some(path) => {
                let cfg = read_config(path)?;
                let cib = cfg.cib();
                (cfg.state_dir, cib)
            }
            None => (PathBuf::from(DEFAULT_STATE_DIR), Cib::from_env()),
        };
        Ok((self.state_dir.clone().unwrap_or(dir), cib))
    }
}

impl Input {
    /// The --rules and --xslt steps in the order they were written.
    pub fn steps(&self, matches: &ArgMatches) -> Vec<(usize, StepArg)> {
        let indexed = |id: &str| -> Vec<usize> {
            matches.indices_of(id).map(|i| i.collect()).unwrap_or_default()
        };
        let mut out: Vec<(usize, StepArg)> = Vec::new();
        out.extend(indexed("rules").into_iter().zip(&self.rules).map(|(i, p)| (i, StepArg::Rules(p.clone()))));
        out.extend(indexed("xslt").into_iter().zip(&self.xslt).map(|(i, p)| (i, StepArg::Xslt(p.clone()))));
        out
    }
}
