//! Two sites on loopback for the end-to-end benchmarks (`latency`,
//! `fanout`): a generated CIB for site A, an empty one for site B, a CA and
//! one certificate per site, the daemons' configuration files, and the
//! release daemons themselves, started and stopped by PID.
//!
//! Everything lives in one temporary directory (removed on drop unless
//! kept). A [`Daemon`] is stopped when dropped — SIGTERM, then SIGKILL if it
//! has not exited within [`STOP_GRACE`] — so an error or an interruption
//! (SIGINT/SIGTERM, see [`watch_signals`]) never leaves one running.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context as _};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::generate::{self, Variant, RULES_TOML, TICKET};

/// Site A's certificate name (the publisher's).
pub const SITE_A: &str = "site-a.example";
/// Site B's certificate name (the subscriber's; on the publisher's allow-list).
pub const SITE_B: &str = "site-b.example";
/// How long a daemon gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The attribute the benchmarks change at site A: the `directory` of the
/// Filesystem primitive `fs-1` (bound to the ticket; rewritten at site B by
/// the `path` rule).
pub const NVPAIR_ID: &str = "fs-1-instance_attributes-directory";
/// Name of that nvpair.
pub const NVPAIR_NAME: &str = "directory";

/// Site B before anything is replicated: an empty two-node cluster.
pub(crate) const SITE_B_CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0" have-quorum="1" dc-uuid="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
        <nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="site-b"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node-b1"/>
      <node id="2" uname="node-b2"/>
    </nodes>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"#;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Turns SIGINT and SIGTERM into a flag ([`check_interrupted`]) instead of
/// killing the benchmark, so the daemons are stopped on the way out. Call
/// from within a tokio runtime.
pub fn watch_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        match signal(kind) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    if s.recv().await.is_some() {
                        INTERRUPTED.store(true, Ordering::SeqCst);
                    }
                });
            }
            Err(e) => eprintln!("cib-bench: cannot handle signal {kind:?}: {e}"),
        }
    }
}

/// Fails once SIGINT or SIGTERM was received.
pub fn check_interrupted() -> anyhow::Result<()> {
    ensure!(
        !INTERRUPTED.load(Ordering::SeqCst),
        "interrupted; stopping the daemons"
    );
    Ok(())
}

/// Where the release binaries are: `dir` if given, else the directory of
/// this executable (`target/release` when run from `bench/run.sh`).
pub fn bin_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_exe()
            .context("locating cib-bench")?
            .parent()
            .context("cib-bench has no directory")?
            .to_path_buf(),
    };
    for b in ["cib-publisher", "cib-subscriber"] {
        ensure!(
            dir.join(b).is_file(),
            "{} not found in {} (build with `cargo build --release -p cib-publisher -p cib-subscriber`, or pass --bin-dir)",
            b,
            dir.display()
        );
    }
    Ok(dir)
}

/// The files of the two sites.
#[derive(Debug)]
pub struct Sites {
    /// The temporary directory holding everything.
    pub dir: tempfile::TempDir,
    /// Site A's CIB file (the publisher's `cib_file`).
    pub cib_a: PathBuf,
    /// Site B's CIB file (the subscriber's `cib_file`).
    pub cib_b: PathBuf,
    /// The publisher's configuration.
    pub publisher_toml: PathBuf,
    /// The subscriber's configuration.
    pub subscriber_toml: PathBuf,
    /// Site B's TLS files (as a client of the publisher).
    pub tls_b: cib_net::tls::TlsPaths,
    /// The publisher's port on 127.0.0.1.
    pub port: u16,
    /// Size of site A's CIB, bytes.
    pub cib_a_bytes: usize,
    /// Top-level resources bound to the ticket at site A.
    pub bound: usize,
}

impl Sites {
    /// Generates site A's CIB (`primitives` primitives, every top-level
    /// resource but the fencing device bound to the ticket), site B's empty
    /// CIB, the certificates and both configuration files.
    pub fn create(primitives: usize) -> anyhow::Result<Sites> {
        let dir = tempfile::Builder::new()
            .prefix("cib-bench-sites.")
            .tempdir()
            .context("creating a temporary directory")?;
        let root = dir.path();
        for sub in ["site-a", "site-b", "certs", "state"] {
            std::fs::create_dir(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        let model = generate::model(primitives, true);
        let cib_text = generate::render(&model, Variant::A);
        let cib_a = root.join("site-a/cib.xml");
        let cib_b = root.join("site-b/cib.xml");
        write(&cib_a, &cib_text)?;
        write(&cib_b, SITE_B_CIB)?;
        let rules = root.join("site-b/rules.toml");
        write(&rules, RULES_TOML)?;

        let certs = root.join("certs");
        let (tls_a, tls_b) = write_certs(&certs)?;
        let port = free_port()?;
        let publisher_toml = root.join("site-a/publisher.toml");
        write(
            &publisher_toml,
            &format!(
                r#"site = "site-a"
listen = "127.0.0.1:{port}"
cib_file = {cib}
[tls]
cert = {cert}
key = {key}
ca = {ca}
[[ticket]]
name = "{TICKET}"
allow = ["{SITE_B}"]
"#,
                cib = toml_path(&cib_a),
                cert = toml_path(&tls_a.cert),
                key = toml_path(&tls_a.key),
                ca = toml_path(&tls_a.ca),
            ),
        )?;
        let subscriber_toml = root.join("site-b/subscriber.toml");
        write(
            &subscriber_toml,
            &format!(
                r#"site = "site-b"
state_dir = {state}
cib_file = {cib}
[tls]
cert = {cert}
key = {key}
ca = {ca}
[[ticket]]
name = "{TICKET}"
mode = "auto"
peers = ["https://127.0.0.1:{port}"]
rules = [{rules}]
"#,
                state = toml_path(&root.join("state")),
                cib = toml_path(&cib_b),
                cert = toml_path(&tls_b.cert),
                key = toml_path(&tls_b.key),
                ca = toml_path(&tls_b.ca),
                rules = toml_path(&rules),
            ),
        )?;
        Ok(Sites {
            cib_a_bytes: cib_text.len(),
            bound: model.bound,
            dir,
            cib_a,
            cib_b,
            publisher_toml,
            subscriber_toml,
            tls_b,
            port,
        })
    }

    /// Passes `result` through; on an error other than an interruption,
    /// keeps the temporary directory (the daemons' logs) and says where.
    pub fn keep_on_error<T>(&mut self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        result.map_err(|e| {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return e;
            }
            self.dir.disable_cleanup(true);
            e.context(format!(
                "files and daemon logs kept in {}",
                self.dir.path().display()
            ))
        })
    }

    /// Starts the publisher (release binary in `bins`) and waits until it
    /// serves.
    pub fn start_publisher(&self, bins: &Path, log_filter: &str) -> anyhow::Result<Daemon> {
        let mut d = Daemon::start(
            "cib-publisher",
            Command::new(bins.join("cib-publisher"))
                .arg("serve")
                .arg("--config")
                .arg(&self.publisher_toml),
            &self.dir.path().join("publisher.log"),
            log_filter,
        )?;
        // Logged once the port is bound and the CIB was read once.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            check_interrupted()?;
            d.check_running()?;
            if std::fs::read_to_string(d.log()).is_ok_and(|t| t.contains("serving listen=")) {
                return Ok(d);
            }
            if Instant::now() > deadline {
                bail!(
                    "the publisher does not listen on 127.0.0.1:{} after 30 s; its log:\n{}",
                    self.port,
                    d.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the subscriber (release binary in `bins`).
    pub fn start_subscriber(&self, bins: &Path, log_filter: &str) -> anyhow::Result<Daemon> {
        Daemon::start(
            "cib-subscriber",
            Command::new(bins.join("cib-subscriber"))
                .arg("run")
                .arg("--config")
                .arg(&self.subscriber_toml),
            &self.dir.path().join("subscriber.log"),
            log_filter,
        )
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A path as a TOML basic string.
fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A port on 127.0.0.1 free at the time of the call.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Writes a CA (`ca.pem`) and the certificates of both sites into `dir`, as
/// `examples/make-certs.sh` makes them: EC P-256, subjectAltName the site
/// name, `localhost` and 127.0.0.1, subject CN the site name, extended key
/// usages serverAuth and clientAuth.
fn write_certs(dir: &Path) -> anyhow::Result<(cib_net::tls::TlsPaths, cib_net::tls::TlsPaths)> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "cib-bench CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
    let ca_path = dir.join("ca.pem");
    write(&ca_path, &ca.pem())?;
    let mut out = Vec::new();
    for name in [SITE_A, SITE_B] {
        let mut params = CertificateParams::new(vec![
            name.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        let paths = cib_net::tls::TlsPaths {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
            ca: ca_path.clone(),
        };
        write(&paths.cert, &cert.pem())?;
        write(&paths.key, &key.serialize_pem())?;
        out.push(paths);
    }
    let b = out.pop().context("two sites")?;
    let a = out.pop().context("two sites")?;
    Ok((a, b))
}

/// A daemon started by the benchmark; stopped by PID when dropped.
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(
        name: &'static str,
        cmd: &mut Command,
        log: &Path,
        log_filter: &str,
    ) -> anyhow::Result<Daemon> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .env("RUST_LOG", log_filter)
            .env_remove("CIB_file")
            .env_remove("CIB_shadow")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Daemon {
            name,
            child,
            log: log.to_path_buf(),
        })
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its stdout and stderr go.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Fails, with the end of its log, if the daemon has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} (pid {}) exited with {status}; its log:\n{}",
                self.name,
                self.child.id(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Resident set size now and its peak so far (`VmRSS`, `VmHWM` of
    /// `/proc/PID/status`), in KiB.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = text
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("no {name} in {path}"))?;
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .with_context(|| format!("{path}: {line}"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; waits for the exit.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "cib-bench: {} (pid {}) did not stop within {} s; killing it",
            self.name,
            self.child.id(),
            STOP_GRACE.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Changes the benchmark's nvpair in `cib_file` to `value` with `cibadmin
/// --modify`; returns how long the call took.
pub fn cibadmin_modify(cib_file: &Path, value: &str) -> anyhow::Result<Duration> {
    let xml = format!(r#"<nvpair id="{NVPAIR_ID}" name="{NVPAIR_NAME}" value="{value}"/>"#);
    let mut cmd = Command::new("cibadmin");
    cmd.env("CIB_file", cib_file)
        .env_remove("CIB_shadow")
        .args(["--modify", "--scope", "resources", "--xml-text", &xml])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output().context("running cibadmin --modify")?;
    let took = start.elapsed();
    ensure!(
        out.status.success(),
        "cibadmin --modify failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(took)
}

/// Watches a file for a string: cheap `stat` calls, a read only when the
/// file's size, modification or change time changed (and at least every
/// 50 ms, in case a rewrite kept all three).
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    last: Option<(u64, SystemTime, i64, i64)>,
    last_read: Instant,
}

impl FileWatch {
    /// Watches `path`.
    pub fn new(path: &Path) -> FileWatch {
        FileWatch {
            path: path.to_path_buf(),
            last: None,
            last_read: Instant::now(),
        }
    }

    /// Whether the file contains `needle` now (reads it only if it may have
    /// changed since the last read).
    pub fn contains(&mut self, needle: &str) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return false;
        };
        let key = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        if self.last == Some(key) && self.last_read.elapsed() < Duration::from_millis(50) {
            return false;
        }
        self.last = Some(key);
        self.last_read = Instant::now();
        std::fs::read_to_string(&self.path).is_ok_and(|t| t.contains(needle))
    }

    /// Polls every `every` until the file contains `needle`; returns when it
    /// was seen. Fails after `timeout`, or when interrupted, or when
    /// `alive` fails (a daemon died).
    pub fn wait_for(
        &mut self,
        needle: &str,
        every: Duration,
        timeout: Duration,
        alive: &mut dyn FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + timeout;
        let mut n = 0u32;
        loop {
            if self.contains(needle) {
                return Ok(Instant::now());
            }
            n = n.wrapping_add(1);
            if n % 64 == 0 {
                check_interrupted()?;
                alive()?;
            }
            if Instant::now() > deadline {
                bail!(
                    "`{needle}` did not appear in {} within {} s",
                    self.path.display(),
                    timeout.as_secs()
                );
            }
            std::thread::sleep(every);
        }
    }
}

/// Sorted milliseconds and their summary.
#[derive(Debug, Clone)]
pub struct Summary {
    sorted: Vec<f64>,
}

impl Summary {
    /// From samples in milliseconds (in any order).
    pub fn new(mut ms: Vec<f64>) -> Summary {
        ms.sort_by(f64::total_cmp);
        Summary { sorted: ms }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Percentile `p` (0–100) by the nearest-rank method: the smallest
    /// sample with at least `p` % of the samples at or below it.
    pub fn pct(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let n = self.sorted.len();
        // Rank in 1..=n: the float is small and non-negative.
        let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
        self.sorted[rank.min(n) - 1]
    }

    /// Smallest sample.
    pub fn min(&self) -> f64 {
        self.sorted.first().copied().unwrap_or(f64::NAN)
    }

    /// Largest sample.
    pub fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(f64::NAN)
    }

    /// Arithmetic mean.
    pub fn mean(&self) -> f64 {
        let n = self.sorted.len() as f64;
        self.sorted.iter().sum::<f64>() / n
    }
}

/// Milliseconds of a duration, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The load average (1, 5, 15 minutes) as `/proc/loadavg` gives it.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
