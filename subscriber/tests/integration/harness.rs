//! Sites under test: publishers (the real `cib_publisher` server and CIB
//! watcher, in-process, on 127.0.0.1 ephemeral ports) and a subscribing
//! site B running the real `cib_subscriber` daemon in-process, all with
//! real mutual TLS (a CA generated at test time) and real Pacemaker tools
//! on CIB files (`CIB_file` is set on child processes only: the daemon is
//! given `cib_file`, which it passes to `cibadmin` through `Cib::file`).
//!
//! Dropping a [`Publisher`] kills it (the server task is aborted, as if the
//! process died); dropping a [`Subscriber`] cancels the daemon, or kills
//! the `cib-subscriber run` process started by [`Subscriber::spawn`].
//!
//! A [`FakePublisher`] is a TLS endpoint with the test CA's certificate that
//! answers each stream request with scripted bytes ([`Reply`]): broken and
//! truncated bodies the real publisher never sends.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cib_net::test_pki::Pki;
use cib_net::reload::ReloadableServer;
use cib_net::tls::TlsPaths;
use cib_publisher::fleet::FleetReport;
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

pub use cib_testkit::{pcmk, tool};

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

/// What a publisher would publish from the CIB file `cib` (`geo` granted).
pub fn document_of(cib: &Path) -> Arc<Published> {
    let out = Command::new(tool("cibadmin")).arg("--query").env("CIB_file", cib).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let views = cib_publisher::publication::views(&text, &[TICKET.into()], &Metrics::new()).unwrap();
    match &views[0].1 {
        TicketView::Granted(p) => Arc::clone(p),
        other => panic!("{} does not publish: {other:?}", cib.display()),
    }
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
    tls: ReloadableServer,
    watch: bool,
    token: CancellationToken,
    server: Option<JoinHandle<()>>,
    state: Option<AppState>,
}

impl Publisher {
    /// Starts the publisher of `site` (certificate `<site>.example`) on
    /// `cib`: watching the file when `watch` is true, else the test
    /// publishes by hand through [`Publisher::publish`].
    pub async fn start(world: &World, site: &str, cib: PathBuf, watch: bool) -> Publisher {
        let paths = world.pki.write_site(world.dir.path(), &format!("{site}.example"));
        Publisher::start_on(site, cib, watch, &paths, "127.0.0.1:0".parse().unwrap()).await
    }

    /// As [`Publisher::start`], presenting the certificate of `tls` and
    /// verifying clients against its CA, listening on `addr`.
    pub async fn start_on(site: &str, cib: PathBuf, watch: bool, tls: &TlsPaths, addr: SocketAddr) -> Publisher {
        let mut p = Publisher {
            site: site.to_owned(),
            cib,
            addr,
            channels: Arc::new(Channels::new([TICKET])),
            metrics: Arc::new(Metrics::new()),
            tls: ReloadableServer::new(tls).unwrap(),
            watch,
            token: CancellationToken::new(),
            server: None,
            state: None,
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
        let state = AppState::new(&self.site, tickets, Arc::clone(&self.metrics), self.token.clone())
            .unwrap()
            .with_history(Arc::clone(&self.channels));
        self.state = Some(state.clone());
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tls, metrics, token) = (self.tls.config(), Arc::clone(&self.metrics), self.token.clone());
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

    /// Points the server at new certificate files (as SIGHUP does): new
    /// connections get them, open ones keep theirs.
    pub fn rotate(&self, tls: &TlsPaths) -> Result<(), cib_net::Error> {
        self.tls.reload(tls)
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
        document_of(&self.cib)
    }

    /// Publishes `p` by hand (publishers started with `watch = false`).
    pub fn publish(&self, p: Published) {
        self.channels.publish(TICKET, TicketView::Granted(Arc::new(p)), &self.metrics);
    }

    /// A counter of the publisher's metrics, e.g.
    /// `cib_publisher_errors_total{kind="forbidden"}` (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        cib_testkit::metric(&self.metrics.encode(), series)
    }

    /// The fleet view of this publisher now (what `/status.json` serves).
    pub fn fleet(&self) -> FleetReport {
        self.state.as_ref().expect("started").fleet_report()
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
    process: Option<Daemon>,
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
        let urls: Vec<String> = peers.iter().map(|p| p.url()).collect();
        Subscriber::configure_full(world, cib, mode, &urls, &world.client)
    }

    /// B's configuration with peers given by URL and B presenting the
    /// certificate of `tls` (and trusting its CA).
    pub fn configure_full(world: &World, cib: PathBuf, mode: &str, urls: &[String], tls: &TlsPaths) -> Subscriber {
        let state_dir = world.dir.path().join("state-b");
        let peers: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
        let text = format!(
            r#"site = "site-b"
state_dir = "state-b"
cib_file = "{cib}"
reconnect_max_seconds = 1
shutdown_grace_seconds = 5
metrics_listen = "off"

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
            cert = tls.cert.display(),
            key = tls.key.display(),
            ca = tls.ca.display(),
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
            process: None,
        }
    }

    /// Starts the daemon as a process, `cib-subscriber run --config …`,
    /// logging at debug level into [`Subscriber::log`]; killed on drop.
    pub fn spawn(mut self) -> Subscriber {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cib-subscriber"))
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .env_remove("CIB_file")
            .env_remove("CIB_shadow")
            .env("RUST_LOG", "info,cib_subscriber=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let reader = tokio::spawn({
            let log = Arc::clone(&log);
            async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        self.process = Some(Daemon { child, log, reader });
        self
    }

    /// What the daemon process wrote to stderr so far.
    pub fn log(&self) -> String {
        self.process.as_ref().map(|d| d.log.lock().unwrap().clone()).unwrap_or_default()
    }

    /// The lines of the daemon process's log holding every one of `parts`.
    pub fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        self.log().lines().filter(|l| parts.iter().all(|p| l.contains(p))).map(str::to_owned).collect()
    }

    /// Waits (up to `limit`) for a log line holding every one of `parts`.
    pub async fn wait_for_log(&self, parts: &[&str], limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log_lines(parts).into_iter().next() {
                return line;
            }
            assert!(start.elapsed() < limit, "no log line with {parts:?} after {limit:?}; the log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
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

    /// As [`Subscriber::start`], with `opts` (metrics listener, reload).
    pub fn start_with(mut self, opts: cib_subscriber::daemon::RunOptions) -> Subscriber {
        let cfg = cib_subscriber::config::read_config(&self.config).unwrap();
        cfg.validate().unwrap();
        self.task = Some(tokio::spawn(cib_subscriber::daemon::run_with(cfg, opts, self.token.clone())));
        self
    }

    /// The daemon process's id ([`Subscriber::spawn`]).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|d| d.child.id())
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
        if let Some(mut d) = self.process.take() {
            let _ = d.child.start_kill();
            d.reader.abort();
        }
    }
}

/// A `cib-subscriber run` process and its captured stderr.
struct Daemon {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

/// What a [`FakePublisher`] does with one stream request, after reading
/// its head: wait for a gate (if any), write the bytes (response head
/// included), then drop the connection without a TLS close — a publisher
/// killed at that point — or keep it open until the fake is dropped.
#[derive(Debug, Clone)]
pub struct Reply {
    gate: Option<Gate>,
    bytes: Vec<u8>,
    hold: bool,
}

impl Reply {
    /// Writes `bytes`, then drops the connection.
    pub fn killed_after(bytes: Vec<u8>) -> Reply {
        Reply { gate: None, bytes, hold: false }
    }

    /// Writes `bytes`, then keeps the connection open.
    pub fn held_after(bytes: Vec<u8>) -> Reply {
        Reply { gate: None, bytes, hold: true }
    }

    /// The same, once `gate` is open.
    pub fn when(self, gate: &Gate) -> Reply {
        Reply {
            gate: Some(gate.clone()),
            ..self
        }
    }
}

/// A gate a [`FakePublisher`] connection waits at.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    /// Waits until the gate is open (true) or `stop` is set (false).
    fn wait(&self, stop: &AtomicBool) -> bool {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            open = self.0 .1.wait_timeout(open, Duration::from_millis(20)).unwrap().0;
        }
        true
    }
}

/// A TLS endpoint with the test CA's `site-a.example` certificate (client
/// certificates required, HTTP/1.1 only) that answers the n-th request
/// with the n-th [`Reply`] of its script, and `503` once the script is
/// used up. Records the request heads it read. Acknowledgements (`POST`)
/// are answered `404`, as a publisher older than them does, and recorded
/// apart ([`FakePublisher::acks`]) without using up the script. Runs on its own threads
/// with blocking I/O (rustls' `StreamOwned`), all of which stop when it is
/// dropped.
pub struct FakePublisher {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    acks: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakePublisher {
    pub fn start(world: &World, script: Vec<Reply>) -> FakePublisher {
        let paths = world.pki.write_site(world.dir.path(), "site-a.example");
        let mut config = (*cib_net::tls::server_config(&paths).unwrap()).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::new(Mutex::new(script.into()));
        std::thread::spawn({
            let (requests, acks, stop) = (Arc::clone(&requests), Arc::clone(&acks), Arc::clone(&stop));
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((tcp, _)) => {
                            let (config, script, requests, acks, stop) =
                                (Arc::clone(&config), Arc::clone(&script), Arc::clone(&requests), Arc::clone(&acks), Arc::clone(&stop));
                            std::thread::spawn(move || fake_connection(tcp, config, &script, (&requests, &acks), &stop));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
                        Err(e) => panic!("accepting: {e}"),
                    }
                }
            }
        });
        FakePublisher { addr, requests, acks, stop }
    }

    /// The acknowledgements received so far (head and body of each `POST`).
    pub fn acks(&self) -> Vec<String> {
        self.acks.lock().unwrap().clone()
    }

    /// The base URL subscribers are configured with.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The request heads read so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (up to 15 s) until `n` requests were read.
    pub async fn wait_for_requests(&self, n: usize) {
        let start = Instant::now();
        while self.requests().len() < n {
            assert!(start.elapsed() < Duration::from_secs(15), "{} requests, expected {n}", self.requests().len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakePublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection of a [`FakePublisher`]: handshake, request head, reply
/// (the next of `script`; `404` to an acknowledgement).
fn fake_connection(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    script: &Mutex<VecDeque<Reply>>,
    (requests, acks): (&Mutex<Vec<String>>, &Mutex<Vec<String>>),
    stop: &AtomicBool,
) {
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return, // a refused handshake, or the client left
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("POST ") {
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
            .unwrap_or(0);
        let mut body = vec![0u8; length.min(64 * 1024)];
        if tls.read_exact(&mut body).is_err() {
            return;
        }
        acks.lock().unwrap().push(format!("{head}{}", String::from_utf8_lossy(&body)));
        let _ = tls.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        tls.conn.send_close_notify();
        let _ = tls.flush();
        return;
    }
    requests.lock().unwrap().push(head);
    let reply = script.lock().unwrap().pop_front();
    match reply {
        Some(reply) => {
            if reply.gate.is_some_and(|g| !g.wait(stop)) {
                return;
            }
            let _ = tls.write_all(&reply.bytes).and_then(|()| tls.flush());
            while reply.hold && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Dropped here: no close_notify, as when the process dies.
        }
        None => {
            let _ = tls.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    }
}

/// The head of a `200` event-stream response, announcing `X-Site: site-a`,
/// with `framing` (`transfer-encoding: chunked`, `content-length: N`, or
/// nothing: the body ends with the connection).
pub fn stream_head(framing: &str) -> Vec<u8> {
    let framing = if framing.is_empty() { String::new() } else { format!("{framing}\r\n") };
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-site: site-a\r\n{framing}\r\n").into_bytes()
}

/// `bytes` as one chunk of a chunked body.
pub fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}
