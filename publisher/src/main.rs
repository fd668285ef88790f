//! `cib-publisher` — cuts the configuration of a ticket out of the local CIB.
//!
//! The CLI is glue: the scope rules live in `cib-transforms`, running
//! `cibadmin` lives in `cib-tools`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use cib_tools::cib::Cib;
use cib_transforms::scope::scope;
use cib_transforms::xml;

/// Publish the configuration of a Pacemaker ticket to the other sites of a
/// geo cluster.
///
/// The local CIB is read with `cibadmin --query`; when the environment
/// variable CIB_file names a file, that file is read instead, exactly as every
/// Pacemaker tool does.
///
/// Exit status: 0 on success, 2 on any error.
#[derive(Debug, Parser)]
#[command(name = "cib-publisher", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
        #[arg(long, short = 't', value_name = "TICKET")]
        ticket: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cib-publisher: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Scope { ticket } => {
            let text = Cib::from_env().query().context("reading the local CIB")?;
            let cib = xml::parse(&text).context("parsing the local CIB")?;
            // Scope errors name the ticket and the element already.
            let s = scope(&cib, &ticket)?;
            for l in &s.left_out {
                eprintln!("cib-publisher: left out {l}");
            }
            let mut out = std::io::stdout().lock();
            out.write_all(s.to_document().to_xml().as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}
