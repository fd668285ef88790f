//! `cib-subscriber` — keeps a stopped, site-adapted copy of a ticket's
//! configuration in the local CIB.
//!
//! The CLI is glue: the daemon's parts, `diff`, `replicate-now` and
//! `status` live in this package's library (`cib_subscriber`); scope,
//! transforms and merge rules live in `cib-transforms`; Pacemaker tools and
//! xsltproc run through `cib-tools`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use cib_net::protocol::parse_ticket;
use cib_subscriber::apply::{self, Color};
use cib_subscriber::config::{read_config, Overrides, DEFAULT_CONFIG, DEFAULT_STATE_DIR};
use cib_subscriber::fetch::{Source, TlsArgs};
use cib_subscriber::pipeline::{load_scope, load_staged, load_steps, transform, transformed_document, Step, StepArg};
use cib_subscriber::state::{self, Note, Timestamp, VersionSeen};
use cib_tools::cib::Cib;
use cib_transforms::merge::Options;
use cib_transforms::Scope;

/// The --rules/--xslt steps of the command line, loaded.
fn command_steps(input: &Input, matches: &ArgMatches) -> anyhow::Result<Vec<Step>> {
    load_steps(input.steps(matches))
}

/// Keep a stopped, site-adapted copy of a Pacemaker ticket's configuration
/// in the local CIB.
///
/// The scope published by cib-publisher at the site holding the ticket is
/// verified (digest, ticket), transformed for this site (--rules and --xslt,
/// applied in the order given) and merged into the local CIB: replicated
/// elements are owned by cib-replicator (recorded in crm_config, see
/// `status`), local elements are never changed, and the change is applied as
/// one version-checked patch.
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
/// Exit status: 0 success (for `diff`: nothing would change; for `run`: a
/// clean shutdown on SIGTERM or SIGINT), 1 `diff` found changes, 2 error
/// (nothing was applied).
#[derive(Debug, Parser)]
#[command(name = "cib-subscriber", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a published scope after this site's transforms.
    Transform {
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
        #[command(flatten)]
        input: Input,
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
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        local: Local,
        /// Take over local elements that carry the ids of replicated ones.
        #[arg(long)]
        adopt: bool,
    },
    /// Show what is replicated here for a ticket, whether it drifted, and
    /// what the daemon recorded: source site, grant term, version applied,
    /// pending, last result, last error, with their ages.
    Status {
        /// Ticket to report on.
        #[arg(long, short = 't', value_name = "TICKET", value_parser = parse_ticket)]
        ticket: String,
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
    Gate {
        /// Ticket to decide for (booth sets BOOTH_TICKET).
        #[arg(long, short = 't', value_name = "TICKET", env = "BOOTH_TICKET", value_parser = parse_ticket)]
        ticket: String,
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
    /// it (mode "auto", as replicate-now) or stages it (mode "manual").
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
    },
}

/// Where the scope comes from and how this site transforms it.
#[derive(Debug, Args)]
struct Input {
    /// File holding a scope published by `cib-publisher scope`, or a
    /// publisher's URL: https://HOST:PORT (the scope of --ticket is fetched)
    /// or the full https://HOST:PORT/v1/tickets/TICKET/scope. A URL is
    /// fetched with mutual TLS (--cert, --key, --ca); responses over 64 MiB,
    /// plaintext http:// and redirects are refused. Without --from, `diff`
    /// and `replicate-now` use the document staged by the daemon.
    #[arg(long, value_name = "FILE|URL")]
    from: Option<Source>,
    #[command(flatten)]
    tls: TlsArgs,
    /// TOML file of declarative transform rules (repeatable, ordered).
    #[arg(long, value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// XSLT 1.0 stylesheet run by xsltproc (repeatable, ordered with --rules).
    #[arg(long, value_name = "FILE")]
    xslt: Vec<PathBuf>,
}

/// The daemon's state and CIB, for `diff`, `replicate-now` and `status`.
#[derive(Debug, Args)]
struct Local {
    /// The daemon's configuration file: its `state_dir` (and `cib_file`,
    /// if set) are used.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The daemon's state directory (default: the configuration's, else
    /// /var/lib/cib-replicator).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl Local {
    /// The state directory and the CIB to work on.
    fn resolve(&self) -> anyhow::Result<(PathBuf, Cib)> {
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
    fn steps(&self, matches: &ArgMatches) -> Vec<(usize, StepArg)> {
        let indexed = |id: &str| -> Vec<usize> {
            matches.indices_of(id).map(|i| i.collect()).unwrap_or_default()
        };
        let mut out: Vec<(usize, StepArg)> = Vec::new();
        out.extend(indexed("rules").into_iter().zip(&self.rules).map(|(i, p)| (i, StepArg::Rules(p.clone()))));
        out.extend(indexed("xslt").into_iter().zip(&self.xslt).map(|(i, p)| (i, StepArg::Xslt(p.clone()))));
        out
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let sub = matches.subcommand().map(|(_, m)| m.clone()).unwrap_or_default();
    match run(cli, &sub) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cib-subscriber: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A scope from --from, transformed by --rules/--xslt.
fn prepare(from: &Source, input: &Input, ticket: Option<&str>, steps: &[Step]) -> anyhow::Result<Scope> {
    let (scope, log) = transform(load_scope(from, ticket, &input.tls)?, steps)?;
    print_log(log);
    Ok(scope)
}

/// The change lines of the transform steps, on stderr.
fn print_log(log: Vec<String>) {
    for line in log {
        eprintln!("cib-subscriber: {line}");
    }
}

/// The staged document of `ticket` (already transformed), with its path
/// and text; `None` when nothing is staged.
fn staged(input: &Input, ticket: &str, state_dir: &Path) -> anyhow::Result<Option<(Scope, PathBuf, String)>> {
    if !input.rules.is_empty() || !input.xslt.is_empty() {
        anyhow::bail!("--rules and --xslt need --from: the staged document is already transformed by the daemon");
    }
    let dir = state::ticket_dir(state_dir, ticket);
    if !dir.is_dir() {
        anyhow::bail!(
            "no daemon state for ticket {ticket} in {} (give --from FILE|URL, or the daemon's --config / --state-dir)",
            state_dir.display()
        );
    }
    let path = state::pending_path(state_dir, ticket);
    if !path.is_file() {
        return Ok(None);
    }
    let (scope, text) = load_staged(&path, ticket)?;
    eprintln!("cib-subscriber: using the document staged in {}", path.display());
    Ok(Some((scope, path, text)))
}

fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Transform { input } => {
            let Some(from) = &input.from else {
                anyhow::bail!("transform needs --from FILE|URL");
            };
            let steps = command_steps(&input, matches)?;
            let scope = prepare(from, &input, None, &steps)?;
            cib_transforms::merge::check_scope(&scope)?;
            let document = transformed_document(&scope);
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, document.as_bytes())?;
            std::io::Write::flush(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            ticket,
            input,
            local,
            adopt,
            color,
        } => {
            let (state_dir, cib) = local.resolve()?;
            let scope = match &input.from {
                Some(from) => prepare(from, &input, Some(&ticket), &command_steps(&input, matches)?)?,
                None => match staged(&input, &ticket, &state_dir)? {
                    Some((scope, _, _)) => scope,
                    None => {
                        println!("ticket {ticket}: nothing staged");
                        return Ok(ExitCode::SUCCESS);
                    }
                },
            };
            let changed = apply::diff(&cib, &scope, Options { adopt }, color)?;
            Ok(if changed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::ReplicateNow {
            ticket,
            input,
            local,
            adopt,
        } => {
            let (state_dir, cib) = local.resolve()?;
            let mut on_retry = |m: &str| eprintln!("cib-subscriber: {m}");
            if let Some(from) = &input.from {
                let scope = prepare(from, &input, Some(&ticket), &command_steps(&input, matches)?)?;
                let applied = apply::replicate_now(&cib, &scope, Options { adopt }, &mut on_retry)?;
                print!("{}", applied.describe(&scope));
                return Ok(ExitCode::SUCCESS);
            }
            let Some((scope, path, text)) = staged(&input, &ticket, &state_dir)? else {
                anyhow::bail!(
                    "nothing staged for ticket {ticket} ({} does not exist): nothing to apply",
                    state::pending_path(&state_dir, &ticket).display()
                );
            };
            let applied = apply::replicate_now(&cib, &scope, Options { adopt }, &mut on_retry)?;
            print!("{}", applied.describe(&scope));
            record_staged_applied(&state_dir, &ticket, &scope, &path, &text, &applied);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { ticket, local } => {
            let (state_dir, cib) = local.resolve()?;
            apply::status(&cib, &ticket, &state_dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Gate { ticket, mut local } => {
            if local.config.is_none() && local.state_dir.is_none() && Path::new(DEFAULT_CONFIG).is_file() {
                local.config = Some(PathBuf::from(DEFAULT_CONFIG));
            }
            let (state_dir, cib) = local.resolve()?;
            let (_, cib_now) = apply::read_local(&cib)?;
            let status = state::load(&state_dir, &ticket)?;
            let verdict = cib_subscriber::gate::decide(&cib_now, &ticket, &status);
            println!("cib-subscriber gate: ticket {ticket}: {verdict}");
            Ok(if verdict.allows() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Run {
            config,
            site,
            state_dir,
            cib_file,
            check,
        } => {
            let mut cfg = read_config(&config)?;
            cfg.apply(&Overrides {
                site,
                state_dir,
                cib_file,
            });
            cfg.validate()?;
            cib_net::tls::client_config(&cfg.tls)?;
            if check {
                println!("cib-subscriber: {} is valid", config.display());
                return Ok(ExitCode::SUCCESS);
            }
            cib_net::daemon::init_logging();
            let shutdown = CancellationToken::new();
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(async {
                    tokio::spawn(cib_net::daemon::cancel_on_signal(shutdown.clone()));
                    cib_subscriber::daemon::run(cfg, shutdown).await
                })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// After `replicate-now` applied the staged document: removes it (unless
/// the daemon staged a newer one meanwhile) and records the result in the
/// daemon's state. Failures are reported, not fatal: the CIB is applied.
fn record_staged_applied(state_dir: &Path, ticket: &str, scope: &Scope, path: &Path, text: &str, applied: &apply::Applied) {
    let unchanged = std::fs::read_to_string(path).is_ok_and(|now| now == text);
    if unchanged {
        if let Err(e) = state::remove_pending(state_dir, ticket) {
            eprintln!("cib-subscriber: warning: {e}");
        }
    }
    let result = state::update(state_dir, ticket, |s| {
        s.applied = Some(VersionSeen {
            digest: scope.digest.clone(),
            version: scope.version.clone(),
            term: scope.term,
            at: Timestamp::now(),
        });
        if unchanged {
            s.pending = None;
        }
        s.last_success = Some(Timestamp::now());
        let what = if applied.changed { "applied by replicate-now" } else { "up to date (replicate-now)" };
        s.last_result = Some(Note::now(what));
    });
    if let Err(e) = result {
        eprintln!("cib-subscriber: warning: the CIB is applied but the daemon's state was not updated: {e}");
    }
}
