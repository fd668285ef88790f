//! Sites under test: publishers (the real `cib_publisher` server and CIB
//! watcher, in-process, on 127.0.0.1 ephemeral ports) and a subscribing
//! site B running the real `cib_subscriber` daemon in-process, all with
//! real mutual TLS (a CA generated at test time) and real Pacemaker tools
//! on CIB files (`CIB_file` is set on child processes only: the daemon is
//! given `cib_file`, which it passes to `cibadmin` through `Cib::file`).
//!
//! Dropping a [`Publisher`] kills it (the server task is aborted, as if the
//! process died); dropping a [`Subscriber`] cancels the daemon.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cib_net::test_pki::Pki;
use cib_net::tls::{server_config, TlsPaths};
use cib_publisher::metrics::Metrics;
use cib_publisher::publication::{Channels, Published, TicketView};
use cib_publisher::server::{app, run, AppState, TicketAccess};
use cib_publisher::watch::{Source, Watcher};
use cib_subscriber::state::{self, TicketStatus};

/// The ticket of the offline example.
pub const TICKET: &str = "geo";
/// Certificate name of the subscribing site.
pub const SITE_B: &str = "site-b.example";

/// A file of `examples/offline/`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/offline").join(name)
}

/// Path of a Pacemaker tool (in /usr/sbin, often not on an ordinary PATH).
pub fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install pacemaker-cli-utils (./scripts/setup)"))
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

/// Grants `geo` the way booth does: `crm_ticket -g --force -S term -v N`.
pub fn grant(cib: &Path, term: u64) {
    pcmk(cib, "crm_ticket", &["-t", TICKET, "-g", "--force", "-S", "term", "-v", &term.to_string()]);
}

/// Revokes `geo`.
pub fn revoke(cib: &Path) {
    pcmk(cib, "crm_ticket", &["-t", TICKET, "-r", "--force"]);
}

/// Sets the address of `web-ip` (inside the scope) with `cibadmin --modify`.
pub fn set_web_ip(cib: &Path, ip: &str) {
    pcmk(
        cib,
        "cibadmin",
        &["--modify", "--xml-text", &format!(r#"<nvpair id="web-ip-ip" value="{ip}"/>"#)],
    );
}

/// One test's world: a directory, a CA, and site B's client certificate.
pub struct World {
    pub dir: TempDir,
    pub pki: Pki,
    pub client: TlsPaths,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        let client = pki.write_site(dir.path(), SITE_B);
        World { dir, pki, client }
    }

    /// A copy of `examples/offline/<example>` named `<name>.xml`.
    pub fn cib(&self, name: &str, example_file: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.xml"));
        std::fs::copy(example(example_file), &path).unwrap();
        path
    }
}

/// A publishing site.
pub struct Publisher {
    pub site: String,
    pub cib: PathBuf,
    pub addr: SocketAddr,
    pub channels: Arc<Channels>,
    pub metrics: Arc<Metrics>,
    tls: Arc<rustls::ServerConfig>,
    watch: bool,
    token: CancellationToken,
    server: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Starts the publisher of `site` (certificate `<site>.example`) on
    /// `cib`: watching the file when `watch` is true, else the test
    /// publishes by hand through [`Publisher::publish`].
    pub async fn start(world: &World, site: &str, cib: PathBuf, watch: bool) -> Publisher {
        let paths = world.pki.write_site(world.dir.path(), &format!("{site}.example"));
        let mut p = Publisher {
            site: site.to_owned(),
            cib,
            addr: "127.0.0.1:0".parse().unwrap(),
            channels: Arc::new(Channels::new([TICKET])),
            metrics: Arc::new(Metrics::new()),
            tls: server_config(&paths).unwrap(),
            watch,
            token: CancellationToken::new(),
            server: None,
        };
        p.serve().await;
        p
    }

    async fn serve(&mut self) {
        self.token = CancellationToken::new();
        if self.watch {
            let w = Watcher::new(Source::new(Some(&self.cib)), Arc::clone(&self.channels), Arc::clone(&self.metrics), Duration::from_secs(30));
            let _task = w.start(self.token.clone()).await;
        }
        let mut tickets = BTreeMap::new();
        tickets.insert(
            TICKET.to_owned(),
            TicketAccess {
                allow: vec![SITE_B.to_owned()],
                views: self.channels.subscribe(TICKET).unwrap(),
            },
        );
        let state = AppState::new(&self.site, tickets, Arc::clone(&self.metrics), self.token.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tls, metrics, token) = (Arc::clone(&self.tls), Arc::clone(&self.metrics), self.token.clone());
        self.server = Some(tokio::spawn(async move {
            run(listener, tls, app(state), metrics, token, Duration::from_secs(1)).await.unwrap();
        }));
    }

    /// Kills the server as a crash would: the accept loop and every open
    /// connection are dropped without a graceful end; the watcher stops.
    pub async fn kill(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
        self.token.cancel();
    }

    /// Starts the server again on the same address.
    pub async fn restart(&mut self) {
        self.serve().await;
    }

    /// The base URL subscribers are configured with.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// What this publisher would publish from its CIB file now.
    pub fn document(&self) -> Arc<Published> {
        let out = Command::new(tool("cibadmin")).arg("--query").env("CIB_file", &self.cib).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let views = cib_publisher::publication::views(&text, &[TICKET.into()], &self.metrics).unwrap();
        match &views[0].1 {
            TicketView::Granted(p) => Arc::clone(p),
            other => panic!("{} does not publish: {other:?}", self.site),
        }
    }

    /// Publishes `p` by hand (publishers started with `watch = false`).
    pub fn publish(&self, p: Published) {
        self.channels.publish(TICKET, TicketView::Granted(Arc::new(p)), &self.metrics);
    }

    /// The digest currently served (watching publishers).
    pub fn served_digest(&self) -> Option<String> {
        match &*self.channels.subscribe(TICKET).unwrap().borrow() {
            TicketView::Granted(p) => Some(p.digest.clone()),
            _ => None,
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.token.cancel();
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

/// Site B: its CIB file, its configuration, and the daemon.
pub struct Subscriber {
    pub cib: PathBuf,
    pub state_dir: PathBuf,
    pub config: PathBuf,
    token: CancellationToken,
    task: Option<JoinHandle<Result<(), cib_subscriber::Error>>>,
}

impl Subscriber {
    /// Writes B's configuration (ticket `geo` in `mode`, following `peers`,
    /// the offline example's rules; reconnect pauses of at most 1 s) next
    /// to its CIB file, a copy of `examples/offline/site-b.xml`.
    pub fn configure(world: &World, mode: &str, peers: &[&Publisher]) -> Subscriber {
        let cib = world.cib("site-b", "site-b.xml");
        Subscriber::configure_with(world, cib, mode, peers)
    }

    /// As [`Subscriber::configure`], with an existing CIB file.
    pub fn configure_with(world: &World, cib: PathBuf, mode: &str, peers: &[&Publisher]) -> Subscriber {
        let state_dir = world.dir.path().join("state-b");
        let peers: Vec<String> = peers.iter().map(|p| format!("\"{}\"", p.url())).collect();
        let text = format!(
            r#"site = "site-b"
state_dir = "state-b"
cib_file = "{cib}"
reconnect_max_seconds = 1
shutdown_grace_seconds = 5

[tls]
cert = "{cert}"
key = "{key}"
ca = "{ca}"

[[ticket]]
name = "{TICKET}"
mode = "{mode}"
peers = [{peers}]
rules = ["{rules}"]
"#,
            cib = cib.display(),
            cert = world.client.cert.display(),
            key = world.client.key.display(),
            ca = world.client.ca.display(),
            peers = peers.join(", "),
            rules = example("site-b-rules.toml").display(),
        );
        let config = world.dir.path().join("subscriber.toml");
        std::fs::write(&config, text).unwrap();
        Subscriber {
            cib,
            state_dir,
            config,
            token: CancellationToken::new(),
            task: None,
        }
    }

    /// Reads and validates the configuration, then runs the daemon
    /// in-process.
    pub fn start(mut self) -> Subscriber {
        let cfg = cib_subscriber::config::read_config(&self.config).unwrap();
        cfg.validate().unwrap();
        self.task = Some(tokio::spawn(cib_subscriber::daemon::run(cfg, self.token.clone())));
        self
    }

    /// Stops the daemon; it must end cleanly.
    pub async fn stop(&mut self) {
        self.token.cancel();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t).await.unwrap().unwrap().unwrap();
        }
    }

    /// The daemon's state file of `geo`.
    pub fn state(&self) -> TicketStatus {
        state::load(&self.state_dir, TICKET).unwrap()
    }

    /// The staged document's path.
    pub fn pending(&self) -> PathBuf {
        state::pending_path(&self.state_dir, TICKET)
    }

    /// B's CIB file.
    pub fn cib_text(&self) -> String {
        std::fs::read_to_string(&self.cib).unwrap()
    }

    /// Waits until `cond(state, cib text)` holds; returns how long it took.
    /// Panics with the state after `limit`.
    pub async fn wait_for(&self, what: &str, limit: Duration, cond: impl Fn(&TicketStatus, &str) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let s = self.state();
            if cond(&s, &self.cib_text()) {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting for: {what}\nstate:\n{}",
                    toml::to_string(&s).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs `cib-subscriber ARGS --config <this config>`; returns (exit
    /// code, stdout, stderr). The CLI finds B's CIB through the
    /// configuration's `cib_file`.
    pub async fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cib-subscriber"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("CIB_file")
            .env_remove("CIB_shadow")
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
