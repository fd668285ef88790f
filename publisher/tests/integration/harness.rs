//! One publishing site under test, and clients for it.
//!
//! [`Site::start`] copies `examples/offline/site-a.xml` into a temporary
//! directory, grants ticket `geo` with `crm_ticket` (`CIB_file` on the child),
//! generates a CA with certificates for `site-a.example` (the server) and
//! `site-b.example` (an allowed client), and starts the server the way
//! `cib-publisher serve` does: channels, watcher on the CIB file, router,
//! accept loop. Dropping the site cancels the server and removes the
//! directory.
//!
//! The site records what the server logs ([`Logs`]): tests run on tokio's
//! current-thread runtime, so every task of the server runs on the test's
//! thread, where the site installs a recording `tracing` subscriber for its
//! lifetime. [`Site::start_manual`] starts a site without the CIB watcher;
//! the test publishes by hand ([`Site::publish`]).
//!
//! Each site also serves the fleet view (`/status.json`, `/status`) and
//! `/metrics` over plain HTTP on a loopback port of its own
//! ([`Site::status_url`]), as `metrics_listen` does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cib_net::sse;
use cib_net::test_pki::Pki;
use cib_net::tls::{client_config, server_config, TlsPaths};
use cib_publisher::metrics::Metrics;
use cib_publisher::publication::{Channels, Published, TicketView};
use cib_publisher::config::Limits;
use cib_publisher::fleet::FleetReport;
use cib_publisher::server::{app, run_with_limits, status_router, AppState, TicketAccess};
use cib_publisher::watch::{Source, Watcher};

/// The ticket of the offline example.
pub const TICKET: &str = "geo";
/// Name of the publishing site's certificate.
pub const SERVER_NAME: &str = "site-a.example";
/// A subscriber allowed to read [`TICKET`].
pub const ALLOWED: &str = "site-b.example";
/// Another subscriber allowed to read [`TICKET`].
pub const ALLOWED_TOO: &str = "site-e.example";

/// A publisher serving a CIB file.
pub struct Site {
    pub dir: TempDir,
    pub pki: Pki,
    pub cib: PathBuf,
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub channels: Arc<Channels>,
    /// The server's state (the fleet view).
    pub state: AppState,
    /// The plain-HTTP listener of `/metrics`, `/status.json` and `/status`.
    pub status_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<()>>,
    /// What the server logged while the site lived.
    pub logs: Logs,
    _log_guard: tracing::subscriber::DefaultGuard,
}

impl Site {
    /// Starts a site holding `geo` granted.
    pub async fn start() -> Site {
        Site::start_with(true).await
    }

    /// Starts a site; `granted` says whether `geo` is granted first.
    pub async fn start_with(granted: bool) -> Site {
        Site::build(granted, true, Limits::default()).await
    }

    /// Starts a site holding `geo` granted, serving with `limits`.
    pub async fn start_limited(limits: Limits) -> Site {
        Site::build(true, true, limits).await
    }

    /// Starts a site holding `geo` granted but without the CIB watcher:
    /// nothing is served until the test publishes ([`Site::publish`]).
    pub async fn start_manual() -> Site {
        Site::build(true, false, Limits::default()).await
    }

    async fn build(granted: bool, watch: bool, limits: Limits) -> Site {
        let (logs, log_guard) = Logs::capture();
        let dir = tempfile::tempdir().unwrap();
        let cib = dir.path().join("cib.xml");
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/offline/site-a.xml");
        std::fs::copy(&example, &cib).unwrap();
        if granted {
            pcmk(&cib, "crm_ticket", &["--ticket", TICKET, "--grant", "--force"]);
        }
        let pki = Pki::new();
        let server_paths = pki.write_site(dir.path(), SERVER_NAME);
        let tls = server_config(&server_paths).unwrap();

        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let channels = Arc::new(Channels::new([TICKET]));
        if watch {
            let watcher = Watcher::new(Source::new(Some(&cib)), Arc::clone(&channels), Arc::clone(&metrics), Duration::from_secs(30));
            let _watch_task = watcher.start(shutdown.clone()).await;
        }
        let mut tickets = BTreeMap::new();
        tickets.insert(
            TICKET.to_owned(),
            TicketAccess {
                allow: vec![ALLOWED.to_owned(), ALLOWED_TOO.to_owned()],
                views: channels.subscribe(TICKET).unwrap(),
            },
        );
        let state = AppState::new("site-a", tickets, Arc::clone(&metrics), shutdown.clone())
            .unwrap()
            .with_keep_alive(Duration::from_millis(200))
            .with_max_streams_per_client(limits.max_streams_per_client)
            .with_history(Arc::clone(&channels));
        let status_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let status_addr = status_listener.local_addr().unwrap();
        let encode = {
            let s = state.clone();
            Arc::new(move || s.encode_metrics())
        };
        tokio::spawn(cib_net::metrics::serve_with(status_listener, encode, status_router(state.clone()), shutdown.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn({
            let (metrics, shutdown, state) = (Arc::clone(&metrics), shutdown.clone(), state.clone());
            async move {
                run_with_limits(listener, tls, app(state), metrics, limits, shutdown, Duration::from_secs(2)).await.unwrap();
            }
        });
        Site {
            dir,
            pki,
            cib,
            addr,
            metrics,
            channels,
            state,
            status_addr,
            shutdown,
            server: Some(server),
            logs,
            _log_guard: log_guard,
        }
    }

    /// Publishes `p` as the current version of `geo` (sites started with
    /// [`Site::start_manual`]).
    pub fn publish(&self, p: Published) {
        self.channels.publish(TICKET, TicketView::Granted(Arc::new(p)), &self.metrics);
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}` on the plain-HTTP status listener.
    pub fn status_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.status_addr)
    }

    /// The fleet view as `/status.json` serves it.
    pub async fn status(&self) -> FleetReport {
        let r = reqwest::get(self.status_url("/status.json")).await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK);
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
    }

    /// Posts `body` as an acknowledgement of `ticket` with the certificate
    /// named `name`; returns the status.
    pub async fn ack(&self, name: &str, ticket: &str, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::StatusCode {
        self.client(name)
            .post(self.url(&cib_net::protocol::ack_path(ticket)))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// TLS files of a client certificate named `name` from this site's CA.
    pub fn client_paths(&self, name: &str) -> TlsPaths {
        self.pki.write_site(self.dir.path(), name)
    }

    /// A client presenting a certificate named `name` from this site's CA.
    pub fn client(&self, name: &str) -> reqwest::Client {
        client_with(client_config(&self.client_paths(name)).unwrap())
    }

    /// Runs a Pacemaker tool on this site's CIB file.
    pub fn pcmk(&self, tool: &str, args: &[&str]) {
        pcmk(&self.cib, tool, args);
    }

    /// A counter or gauge line of the metrics, e.g.
    /// `cib_publisher_errors_total{kind="forbidden"}` → its value (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        cib_testkit::metric(&self.metrics.encode(), series)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// A reqwest client on a prepared rustls configuration.
pub fn client_with(config: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub use cib_testkit::pcmk;

/// Reads SSE events from a streaming response.
pub struct EventReader {
    response: reqwest::Response,
    parser: sse::Parser,
    pending: std::collections::VecDeque<sse::Event>,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> EventReader {
        EventReader {
            response,
            parser: sse::Parser::new(cib_net::protocol::MAX_DOCUMENT_BYTES),
            pending: Default::default(),
        }
    }

    /// The response, to read on without parsing.
    pub fn into_response(self) -> reqwest::Response {
        self.response
    }

    /// The next event; `None` when the stream ended. Panics after `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<sse::Event> {
        tokio::time::timeout(limit, async {
            loop {
                if let Some(e) = self.pending.pop_front() {
                    return Some(e);
                }
                match self.response.chunk().await.expect("reading the stream") {
                    Some(bytes) => self.pending.extend(self.parser.push(&bytes).unwrap()),
                    None => return None,
                }
            }
        })
        .await
        .expect("no event and no end of stream in time")
    }
}

/// Log lines recorded by a [`tracing`] subscriber: `LEVEL target: message
/// field=value ...`, one string per event.
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    /// Records every event at INFO and above (and DEBUG of this project's
    /// crates) emitted on the current thread until the guard is dropped.
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let recorder = Recorder {
            logs: logs.clone(),
            next_span: AtomicU64::new(1),
        };
        let guard = tracing::subscriber::set_default(recorder);
        (logs, guard)
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) for a line containing every one of `parts`;
    /// returns it. Panics with the whole log otherwise.
    pub async fn wait_for(&self, parts: &[&str]) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no log line with {parts:?}; the log:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The subscriber behind [`Logs::capture`].
struct Recorder {
    logs: Logs,
    next_span: AtomicU64,
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::INFO || (meta.target().starts_with("cib_") && *meta.level() <= tracing::Level::DEBUG)
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let mut line = LineWriter(format!("{} {}:", meta.level(), meta.target()));
        event.record(&mut line);
        self.logs.0.lock().unwrap().push(line.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Formats the fields of one event.
struct LineWriter(String);

impl tracing::field::Visit for LineWriter {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
