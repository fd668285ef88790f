//! One publishing site under test, and clients for it.
//!
//! [`Site::start`] copies `examples/offline/site-a.xml` into a temporary
//! directory, grants ticket `geo` with `crm_ticket` (`CIB_file` on the child),
//! generates a CA with certificates for `site-a.example` (the server) and
//! `site-b.example` (an allowed client), and starts the server the way
//! `cib-publisher serve` does: channels, watcher on the CIB file, router,
//! accept loop. Dropping the site cancels the server and removes the
//! directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cib_net::sse;
use cib_net::test_pki::Pki;
use cib_net::tls::{client_config, server_config, TlsPaths};
use cib_publisher::metrics::Metrics;
use cib_publisher::publication::Channels;
use cib_publisher::server::{app, run, AppState, TicketAccess};
use cib_publisher::watch::{Source, Watcher};

/// The ticket of the offline example.
pub const TICKET: &str = "geo";
/// Name of the publishing site's certificate.
pub const SERVER_NAME: &str = "site-a.example";
/// A subscriber allowed to read [`TICKET`].
pub const ALLOWED: &str = "site-b.example";

/// A publisher serving a CIB file.
pub struct Site {
    pub dir: TempDir,
    pub pki: Pki,
    pub cib: PathBuf,
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<()>>,
}

impl Site {
    /// Starts a site holding `geo` granted.
    pub async fn start() -> Site {
        Site::start_with(true).await
    }

    /// Starts a site; `granted` says whether `geo` is granted first.
    pub async fn start_with(granted: bool) -> Site {
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
        let watcher = Watcher::new(Source::new(Some(&cib)), Arc::clone(&channels), Arc::clone(&metrics), Duration::from_secs(30));
        let _watch_task = watcher.start(shutdown.clone()).await;
        let mut tickets = BTreeMap::new();
        tickets.insert(
            TICKET.to_owned(),
            TicketAccess {
                allow: vec![ALLOWED.to_owned()],
                views: channels.subscribe(TICKET).unwrap(),
            },
        );
        let state = AppState::new("site-a", tickets, Arc::clone(&metrics), shutdown.clone())
            .unwrap()
            .with_keep_alive(Duration::from_millis(200));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn({
            let (metrics, shutdown) = (Arc::clone(&metrics), shutdown.clone());
            async move {
                run(listener, tls, app(state), metrics, shutdown, Duration::from_secs(2)).await.unwrap();
            }
        });
        Site {
            dir,
            pki,
            cib,
            addr,
            metrics,
            shutdown,
            server: Some(server),
        }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
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
        self.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
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

/// Path of a Pacemaker tool (in /usr/sbin, often not on an ordinary PATH).
fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} not found: install the Debian package pacemaker-cli-utils (./scripts/setup)");
}

/// Runs `tool args...` with `CIB_file=cib` on the child; panics on failure.
pub fn pcmk(cib: &Path, name: &str, args: &[&str]) {
    let out = Command::new(tool(name))
        .args(args)
        .env("CIB_file", cib)
        .env_remove("CIB_shadow")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

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
