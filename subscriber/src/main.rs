//! `cib-subscriber` — keeps a stopped, site-adapted copy of a ticket's
//! configuration in the local CIB.
//!
//! The CLI is glue: the daemon's parts, `diff`, `replicate-now` and
//! `status` live in this package's library (`cib_subscriber`); scope,
//! transforms and merge rules live in `cib-transforms`; Pacemaker tools and
//! xsltproc run through `cib-tools`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _};
use tokio_util::sync::CancellationToken;

use cib_subscriber::apply;
use cib_subscriber::cli::{Cli, Command, Input, Local};
use cib_subscriber::config::{read_config, Config, Overrides};
use cib_subscriber::daemon::RunOptions;
use cib_subscriber::reload::Reload;
use cib_subscriber::fetch::Source;
use cib_subscriber::pipeline::{check_strict, load_scope, load_staged, load_steps, transform_counted, transformed_document, Step};
use cib_subscriber::state::{self, Note, Timestamp, VersionSeen};
use cib_subscriber::status::{Output, Report};
use cib_transforms::merge::Options;
use cib_transforms::printable::printable;
use cib_transforms::Scope;

/// The --rules/--xslt steps of the command line, loaded.
fn command_steps(input: &Input, matches: &ArgMatches) -> anyhow::Result<Vec<Step>> {
    load_steps(input.steps(matches))
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
            eprintln!("cib-subscriber: {}", printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// A scope from --from, transformed by --rules/--xslt; the rules that
/// matched nothing are reported, and refused under --strict.
fn prepare(from: &Source, input: &Input, ticket: Option<&str>, steps: &[Step]) -> anyhow::Result<Scope> {
    let t = transform_counted(load_scope(from, ticket, &input.tls)?, steps)?;
    print_log(t.log.into_iter().map(cib_subscriber::pipeline::Line::into_text));
    for line in &t.idle {
        eprintln!("cib-subscriber: {line}");
    }
    if input.strict {
        check_strict(&t.idle)?;
    }
    Ok(t.scope)
}

/// Keeps the document just applied beside the state, for drift reports
/// (where a state directory exists); a failure is a warning, the CIB is
/// applied.
fn keep_applied(state_dir: &Path, ticket: &str, scope: &Scope, applied: &apply::Applied) {
    if applied.changed {
        if let Err(e) = state::save_applied(state_dir, ticket, scope) {
            eprintln!("cib-subscriber: warning: the document applied is not kept for drift reports: {e}");
        }
    }
}

/// The change lines of the transform steps, on stderr.
fn print_log(log: impl Iterator<Item = String>) {
    for line in log {
        eprintln!("cib-subscriber: {}", printable(&line));
    }
}

/// The staged document of `ticket` (already transformed), with its path
/// and text; `None` when nothing is staged.
fn staged(input: &Input, ticket: &str, state_dir: &Path) -> anyhow::Result<Option<(Scope, PathBuf, String)>> {
    if !input.rules.is_empty() || !input.xslt.is_empty() || input.strict {
        anyhow::bail!("--rules, --xslt and --strict need --from: the staged document is already transformed by the daemon");
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
            let kept = state::load_applied(&state_dir, &ticket);
            let changed = apply::diff(&cib, &scope, Options { adopt, ..Options::default() }, kept.as_ref(), color)?;
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
                let kept = state::load_applied(&state_dir, &ticket);
                let applied = apply::replicate_now(&cib, &scope, Options { adopt, ..Options::default() }, kept.as_ref(), &mut on_retry)?;
                keep_applied(&state_dir, &ticket, &scope, &applied);
                print!("{}", printable(&applied.describe(&scope)));
                return Ok(ExitCode::SUCCESS);
            }
            let Some((scope, path, text)) = staged(&input, &ticket, &state_dir)? else {
                anyhow::bail!(
                    "nothing staged for ticket {ticket} ({} does not exist): nothing to apply",
                    state::pending_path(&state_dir, &ticket).display()
                );
            };
            let kept = state::load_applied(&state_dir, &ticket);
            let applied = apply::replicate_now(&cib, &scope, Options { adopt, ..Options::default() }, kept.as_ref(), &mut on_retry)?;
            keep_applied(&state_dir, &ticket, &scope, &applied);
            print!("{}", printable(&applied.describe(&scope)));
            record_staged_applied(&state_dir, &ticket, &scope, &path, &text, &applied);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { ticket, output, local } => {
            let report = status(ticket, &local.or_default_config());
            match output {
                Output::Json => print!("{}", report.to_json()),
                Output::Text => {
                    print!("{}", printable(&report.to_text(Timestamp::now())));
                    if let Some(e) = &report.error {
                        eprintln!("cib-subscriber: {}", printable(e));
                    }
                }
            }
            Ok(ExitCode::from(report.code()))
        }
        Command::Gate { ticket, local } => {
            let (state_dir, cib) = local.or_default_config().resolve()?;
            let (allowed, why) = cib_subscriber::gate::acquire(&cib, &state_dir, &ticket)?;
            println!("cib-subscriber gate: ticket {ticket}: {why}");
            Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Run {
            config,
            site,
            state_dir,
            cib_file,
            check,
            log,
        } => {
            let overrides = Overrides {
                site,
                state_dir,
                cib_file,
            };
            let mut cfg = read_config(&config)?;
            cfg.apply(&overrides);
            cfg.validate()?;
            cib_net::tls::client_config(&cfg.tls)?;
            if check {
                println!("cib-subscriber: {} is valid", config.display());
                return Ok(ExitCode::SUCCESS);
            }
            let log = log.init("cib-subscriber");
            let shutdown = CancellationToken::new();
            let trigger = Arc::new(tokio::sync::Notify::new());
            let reload = Reload::new(config, overrides, Arc::clone(&trigger));
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(async {
                    tokio::spawn(cib_net::daemon::cancel_on_signal(shutdown.clone()));
                    tokio::spawn(cib_net::daemon::notify_on_hangup(trigger, log, shutdown.clone()));
                    let metrics = match cfg.metrics_addr()? {
                        Some(addr) => cib_net::metrics::bind(addr).await,
                        None => None,
                    };
                    let opts = RunOptions {
                        metrics,
                        reload: Some(reload),
                    };
                    cib_subscriber::daemon::run_with(cfg, opts, shutdown).await
                })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The `status` report of `ticket`, or of every configured ticket; what
/// cannot be read is in the report (exit 2), not an error.
fn status(ticket: Option<String>, local: &Local) -> Report {
    let config: Option<Config> = match &local.config {
        Some(path) => match read_config(path) {
            Ok(c) => Some(c),
            Err(e) => return Report::failed(format!("{e:#}")),
        },
        None => None,
    };
    let tickets = match (ticket, &config) {
        (Some(t), _) => vec![t],
        (None, Some(c)) => c.tickets.iter().map(|t| t.name.clone()).collect(),
        (None, None) => {
            return Report::failed(format!(
                "status needs --ticket, or the daemon's --config (default {}, which does not exist)",
                cib_subscriber::config::DEFAULT_CONFIG
            ))
        }
    };
    let (state_dir, cib) = match local.resolve() {
        Ok(r) => r,
        Err(e) => return Report::failed(format!("{e:#}")),
    };
    match apply::read_local(&cib) {
        Ok((_, cib_now)) => Report::build(&cib_now, &tickets, config.as_ref(), &state_dir),
        Err(e) => Report::failed(format!("{e:#}")),
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
        s.last_failure = None;
        let what = if applied.changed { "applied by replicate-now" } else { "up to date (replicate-now)" };
        s.last_result = Some(Note::now(what));
    });
    if let Err(e) = result {
        eprintln!("cib-subscriber: warning: the CIB is applied but the daemon's state was not updated: {e}");
    }
}
