//! `cib-publisher` — cuts the configuration of a ticket out of the local CIB
//! and serves it to the other sites.
//!
//! The CLI is glue: the scope rules live in `cib-transforms`, running
//! `cibadmin` lives in `cib-tools`, the daemon's parts live in this
//! package's library (`cib_publisher::{cli, config, watch, server}`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use tokio_util::sync::CancellationToken;

use cib_publisher::cli::{Cli, Command};
use cib_publisher::config::{read_config, Config, Overrides};
use cib_publisher::metrics::Metrics;
use cib_publisher::publication::Channels;
use cib_publisher::server::{self, AppState, TicketAccess};
use cib_publisher::watch::{Source, Watcher};
use cib_tools::cib::Cib;
use cib_transforms::scope::DocScope;
use cib_transforms::Doc;

/// mimalloc: a 10 MB CIB becomes ~10^6 small allocations; mimalloc serves
/// them from huge pages, with a fraction of the page faults of the system
/// allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Serve {
            config,
            listen,
            site,
            cib_file,
            recheck_seconds,
            check,
        } => {
            let mut cfg = read_config(&config)?;
            cfg.apply(&Overrides {
                listen,
                site,
                cib_file,
                recheck_seconds,
            });
            cfg.validate()?;
            let tls = cib_net::tls::server_config(&cfg.tls)?;
            if check {
                println!("cib-publisher: {} is valid", config.display());
                return Ok(());
            }
            cib_net::daemon::init_logging();
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(serve(cfg, tls))
        }
        Command::Scope { ticket } => {
            let text = Cib::from_env().read().context("reading the local CIB")?;
            let mut cib = Doc::parse(&text).context("parsing the local CIB")?;
            // Scope errors name the ticket and the element already.
            let s = DocScope::select(&mut cib, &ticket)?;
            for l in &s.left_out {
                eprintln!("cib-publisher: left out {l}");
            }
            let mut out = std::io::stdout().lock();
            out.write_all(s.to_document_xml(&cib).as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

/// The daemon: bind, read the CIB once, watch it, serve until a signal.
async fn serve(cfg: Config, tls: Arc<rustls::ServerConfig>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let channels = Arc::new(Channels::new(cfg.ticket_names()));
    let source = Source::new(cfg.cib_file.as_deref());
    let watcher = Watcher::new(source, Arc::clone(&channels), Arc::clone(&metrics), cfg.recheck())
        .start(shutdown.clone())
        .await;
    let mut tickets = BTreeMap::new();
    for t in &cfg.tickets {
        let views = channels.subscribe(&t.name).context("a configured ticket has a channel")?;
        tickets.insert(t.name.clone(), TicketAccess { allow: t.allow.clone(), views });
    }
    let state = AppState::new(&cfg.site, tickets, Arc::clone(&metrics), shutdown.clone())?;
    tokio::spawn(cib_net::daemon::cancel_on_signal(shutdown.clone()));
    tracing::info!(listen = %listener.local_addr().unwrap_or(cfg.listen), site = %cfg.site, tickets = ?cfg.ticket_names(), "serving");
    server::run(listener, tls, server::app(state), metrics, shutdown.clone(), cfg.shutdown_grace()).await?;
    shutdown.cancel();
    let _ = watcher.await;
    tracing::info!("stopped");
    Ok(())
}
