//! `cib-publisher` — cuts the configuration of a ticket out of the local CIB
//! and serves it to the other sites.
//!
//! The CLI is glue: the scope rules live in `cib-transforms`, running
//! `cibadmin` lives in `cib-tools`, the daemon's parts live in this
//! package's library (`cib_publisher::{cli, config, watch, server}`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use tokio_util::sync::CancellationToken;

use cib_net::logging::LogLevel;
use cib_net::metrics::CertificateExpiry;
use cib_net::reload::ReloadableServer;
use cib_publisher::cli::{Cli, Command, Output};
use cib_publisher::fleet::{self, FleetReport};
use cib_publisher::config::{read_config, Config, Limits, Overrides};
use cib_publisher::metrics::Metrics;
use cib_publisher::publication::{grant_term, Channels};
use cib_publisher::server::{self, AppState, TicketAccess};
use cib_publisher::watch::{Source, Watcher};
use cib_tools::cib::Cib;
use cib_transforms::{scope, xml};

/// Longest `status` waits for the daemon's answer.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Largest /status.json `status` reads.
const MAX_STATUS_BYTES: usize = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cib-publisher: {}", cib_transforms::printable::printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// `cib-publisher status`: asks the daemon for /status.json on its
/// metrics listener and prints it; returns whether every site is in step.
fn status(output: Output, config: &std::path::Path) -> anyhow::Result<bool> {
    let cfg = read_config(config)?;
    let Some(addr) = cfg.metrics_addr()? else {
        anyhow::bail!("metrics_listen is off in {}: the daemon serves its status only there", config.display());
    };
    let url = format!("http://{addr}{}", cib_net::protocol::STATUS_JSON_PATH);
    let body = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(get_bounded(&url))
        .with_context(|| format!("asking the daemon at {url} (is cib-publisher serve running with this configuration?)"))?;
    let report: FleetReport = serde_json::from_slice(&body).with_context(|| format!("reading the answer of {url}"))?;
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => out.write_all(&body)?,
        Output::Text => out.write_all(fleet::render_text(&report).as_bytes())?,
    }
    out.flush()?;
    Ok(report.in_step)
}

/// GETs `url` over plain HTTP (the loopback metrics listener), at most
/// [`MAX_STATUS_BYTES`] within [`STATUS_TIMEOUT`].
async fn get_bounded(url: &str) -> anyhow::Result<Vec<u8>> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(STATUS_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    let mut response = client.get(url).send().await?;
    if !response.status().is_success() {
        anyhow::bail!("answered {}", response.status());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_STATUS_BYTES {
            anyhow::bail!("the answer is larger than {MAX_STATUS_BYTES} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Runs the command; returns the exit code (1: `status` found a site not
/// in step).
fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Status { output, config } => Ok(if status(output, &config)? { 0 } else { 1 }),
        Command::Serve {
            config,
            listen,
            site,
            cib_file,
            recheck_seconds,
            check,
            log,
        } => {
            let overrides = Overrides {
                listen,
                site,
                cib_file,
                recheck_seconds,
            };
            let mut cfg = read_config(&config)?;
            cfg.apply(&overrides);
            cfg.validate()?;
            let tls = ReloadableServer::new(&cfg.tls)?;
            if check {
                println!("cib-publisher: {} is valid", config.display());
                return Ok(0);
            }
            let log = log.init("cib-publisher");
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(serve(cfg, tls, (config, overrides), log))?;
            Ok(0)
        }
        Command::Scope { ticket } => {
            let text = Cib::from_env().read().context("reading the local CIB")?;
            let cib = xml::parse(&text).context("parsing the local CIB")?;
            // A term that is not a number is refused, not printed as none.
            grant_term(&cib, &ticket)?;
            // Scope errors name the ticket and the element already.
            let s = scope::cut(cib, &ticket)?;
            for l in &s.left_out {
                eprintln!("cib-publisher: left out {}", cib_transforms::printable::printable(&l.to_string()));
            }
            let mut out = std::io::stdout().lock();
            out.write_all(s.to_document_xml().as_bytes())?;
            out.flush()?;
            Ok(0)
        }
    }
}

/// The daemon: bind, read the CIB once, watch it, serve until a signal;
/// SIGHUP reloads the certificates and allow-lists (`config_source`: the
/// configuration file and the command line's overrides).
async fn serve(cfg: Config, tls: ReloadableServer, config_source: (PathBuf, Overrides), log: LogLevel) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let shutdown = CancellationToken::new();
    let mut metrics = Metrics::new();
    let expiry = metrics.watch_certificates(cfg.tls.clone());
    let metrics = Arc::new(metrics);
    let metrics_listener = match cfg.metrics_addr()? {
        Some(addr) => cib_net::metrics::bind(addr).await,
        None => None,
    };
    let trigger = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(cib_net::daemon::notify_on_hangup(Arc::clone(&trigger), log, shutdown.clone()));
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
    let state = AppState::new(&cfg.site, tickets, Arc::clone(&metrics), shutdown.clone())?
        .with_max_streams_per_client(cfg.limits.max_streams_per_client)
        .with_history(Arc::clone(&channels));
    if let Some(l) = metrics_listener {
        let s = state.clone();
        let encode = Arc::new(move || s.encode_metrics());
        tokio::spawn(cib_net::metrics::serve_with(l, encode, server::status_router(state.clone()), shutdown.clone()));
    }
    let reloadable = Reloadable { tls: tls.clone(), expiry, state: state.clone() };
    tokio::spawn(reload_on(trigger, cfg.clone(), config_source, reloadable, shutdown.clone()));
    tokio::spawn(cib_net::daemon::cancel_on_signal(shutdown.clone()));
    warn_if_open_files_are_short(&cfg.limits);
    tracing::info!(listen = %listener.local_addr().unwrap_or(cfg.listen), site = %cfg.site, tickets = ?cfg.ticket_names(), "serving");
    server::run_with_limits(listener, tls.config(), server::app(state), metrics, cfg.limits, shutdown.clone(), cfg.shutdown_grace()).await?;
    shutdown.cancel();
    let _ = watcher.await;
    tracing::info!("stopped");
    Ok(())
}

/// What a reload changes in the running daemon.
struct Reloadable {
    tls: ReloadableServer,
    expiry: Arc<CertificateExpiry>,
    state: AppState,
}

/// At each `trigger` (SIGHUP): reads the configuration again and, when it
/// is valid, the certificate, key and CA it names (new connections use
/// them, open ones — streams — keep theirs) and the tickets' allow-lists
/// (for the next requests). Anything wrong keeps what is in use, logged.
/// The other keys take effect at the next start (logged when they
/// changed).
async fn reload_on(
    trigger: Arc<tokio::sync::Notify>,
    mut running: Config,
    (path, overrides): (PathBuf, Overrides),
    live: Reloadable,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = trigger.notified() => {}
        }
        tracing::info!(config = %path.display(), "reloading the configuration and certificates");
        let read = read_config(&path).map(|mut c| {
            c.apply(&overrides);
            c
        });
        let cfg = match read.and_then(|c| c.validate().map(|()| c)) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reload refused: going on with the certificates in use");
                continue;
            }
        };
        if let Err(e) = live.tls.reload(&cfg.tls) {
            tracing::error!(error = %e, "reload refused: going on with the certificates in use");
            continue;
        }
        live.expiry.set_paths(cfg.tls.clone());
        let mut unapplied = cfg.clone();
        unapplied.tls = running.tls.clone();
        for t in &cfg.tickets {
            if live.state.set_allow(&t.name, t.allow.clone()) {
                if let Some(old) = unapplied.tickets.iter_mut().find(|o| o.name == t.name) {
                    old.allow = running.tickets.iter().find(|r| r.name == t.name).map_or_else(Vec::new, |r| r.allow.clone());
                }
            }
        }
        if unapplied != running {
            tracing::warn!("reload: certificates and allow-lists reloaded; other changes to the configuration take effect at the next start");
        } else {
            tracing::info!("reloaded: certificates and allow-lists read now");
        }
        running.tls = cfg.tls.clone();
        for t in &mut running.tickets {
            if let Some(new) = cfg.tickets.iter().find(|n| n.name == t.name) {
                t.allow.clone_from(&new.allow);
            }
        }
    }
}

/// Files the publisher keeps open besides its connections: the listener,
/// the CIB watch, `cibadmin`'s pipes, standard streams, the runtime's own.
const FILES_BESIDES_CONNECTIONS: usize = 64;

/// Warns when `ulimit -n` is too low for `max_connections`: accepting would
/// then fail (EMFILE, retried every 100 ms) before the cap refuses anyone,
/// and the subscribers would wait behind the flood instead.
fn warn_if_open_files_are_short(limits: &Limits) {
    let Some(soft) = open_files_limit() else { return };
    let needed = limits.max_connections + FILES_BESIDES_CONNECTIONS;
    if soft < needed {
        tracing::warn!(
            open_files = soft,
            needed,
            max_connections = limits.max_connections,
            "the open-files limit (ulimit -n) is below what limits.max_connections needs: raise it or lower max_connections"
        );
    }
}

/// The soft limit on open files of this process, from /proc/self/limits;
/// `None` when unlimited or unknown.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
