//! `cib-subscriber` — keeps a stopped, site-adapted copy of a ticket's
//! configuration in the local CIB.
//!
//! The CLI is glue: scope, transforms and merge rules live in
//! `cib-transforms`; Pacemaker tools and xsltproc run through `cib-tools`.

mod apply;
mod fetch;
mod pipeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use apply::Color;
use cib_transforms::merge::Options;
use fetch::{Source, TlsArgs};
use pipeline::{load_scope, load_steps, transform, transformed_document, StepArg};

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
/// The local CIB is read and written through cibadmin; when the environment
/// variable CIB_file names a file, that file is used instead, exactly as
/// every Pacemaker tool does.
///
/// Exit status: 0 success (for `diff`: nothing would change), 1 `diff` found
/// changes, 2 error (nothing was applied).
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
    /// Exits 0 when nothing would change, 1 when something would, 2 on error.
    Diff {
        /// Ticket the scope belongs to.
        #[arg(long, short = 't', value_name = "TICKET")]
        ticket: String,
        #[command(flatten)]
        input: Input,
        /// Take over local elements that carry the ids of replicated ones.
        #[arg(long)]
        adopt: bool,
        /// Colour the diff.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Merge the scope into the local CIB now.
    ///
    /// Refuses (exit 2, CIB untouched) when the ticket is granted to this
    /// site, when the scope lacks its rsc_ticket constraints, when an unowned
    /// local element uses a replicated id (unless --adopt), when the scope's
    /// grant term is older than the one applied, or when the merged CIB does
    /// not pass crm_verify. Applying the same scope twice changes nothing.
    ReplicateNow {
        /// Ticket the scope belongs to.
        #[arg(long, short = 't', value_name = "TICKET")]
        ticket: String,
        #[command(flatten)]
        input: Input,
        /// Take over local elements that carry the ids of replicated ones.
        #[arg(long)]
        adopt: bool,
    },
    /// Show what is replicated here for a ticket, and whether it drifted.
    Status {
        /// Ticket to report on.
        #[arg(long, short = 't', value_name = "TICKET")]
        ticket: String,
    },
}

/// Where the scope comes from and how this site transforms it.
#[derive(Debug, Args)]
struct Input {
    /// File holding a scope published by `cib-publisher scope`, or a
    /// publisher's URL: https://HOST:PORT (the scope of --ticket is fetched)
    /// or the full https://HOST:PORT/v1/tickets/TICKET/scope. A URL is
    /// fetched with mutual TLS (--cert, --key, --ca); responses over 64 MiB,
    /// plaintext http:// and redirects are refused.
    #[arg(long, value_name = "FILE|URL")]
    from: Source,
    #[command(flatten)]
    tls: TlsArgs,
    /// TOML file of declarative transform rules (repeatable, ordered).
    #[arg(long, value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// XSLT 1.0 stylesheet run by xsltproc (repeatable, ordered with --rules).
    #[arg(long, value_name = "FILE")]
    xslt: Vec<PathBuf>,
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

fn prepare(input: &Input, ticket: Option<&str>, matches: &ArgMatches) -> anyhow::Result<cib_transforms::Scope> {
    let steps = load_steps(input.steps(matches))?;
    let scope = load_scope(&input.from, ticket, &input.tls)?;
    let (scope, log) = transform(scope, &steps)?;
    for line in log {
        eprintln!("cib-subscriber: {line}");
    }
    Ok(scope)
}

fn run(cli: Cli, matches: &ArgMatches) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Transform { input } => {
            let scope = prepare(&input, None, matches)?;
            cib_transforms::merge::check_scope(&scope)?;
            print!("{}", transformed_document(&scope));
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { ticket, input, adopt, color } => {
            let scope = prepare(&input, Some(&ticket), matches)?;
            let changed = apply::diff(&scope, Options { adopt }, color)?;
            Ok(if changed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::ReplicateNow { ticket, input, adopt } => {
            let scope = prepare(&input, Some(&ticket), matches)?;
            apply::replicate_now(&scope, Options { adopt })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { ticket } => {
            apply::status(&ticket)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
