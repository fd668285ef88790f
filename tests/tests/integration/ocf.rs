//! The OCF resource agents `ocf/publisher` and `ocf/subscriber` with their
//! real daemons: `ocf/test.sh` (ocf-tester, meta-data against the DTD), and
//! each action's exit code through a resource's life — probe, start, a
//! second start, monitor, a killed daemon, stop, a second stop — plus start
//! failures, validation and a stop that needs SIGKILL.
//!
//! The agents run like Pacemaker runs them: parameters in `OCF_RESKEY_*`,
//! the action as the argument. Each test's daemons are killed (by the pid in
//! their pid file) when the test ends, also when it fails.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{bin, run, Run, Site};

// Exit codes of OCF agents (resource-agents `ocf-returncodes`).
const OCF_SUCCESS: i32 = 0;
const OCF_ERR_GENERIC: i32 = 1;
const OCF_ERR_ARGS: i32 = 2;
const OCF_ERR_INSTALLED: i32 = 5;
const OCF_ERR_CONFIGURED: i32 = 6;
const OCF_NOT_RUNNING: i32 = 7;

// Where the resource-agents package installs the shell library, the DTD
// and schema of meta-data, and ocf-tester.
const OCF_ROOT: &str = "/usr/lib/ocf";
const RA_DATA: &str = "/usr/share/resource-agents";
const OCF_TESTER: &str = "/usr/sbin/ocf-tester";

/// Recurring monitors run with an interval; probes with interval 0.
const MONITOR_INTERVAL_MS: &str = "10000";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Panics, naming the Debian package, unless the OCF tools are installed.
fn require_ocf_tools() {
    for (path, package) in [
        (
            format!("{OCF_ROOT}/lib/heartbeat/ocf-shellfuncs"),
            "resource-agents",
        ),
        (OCF_TESTER.to_owned(), "resource-agents"),
        (format!("{RA_DATA}/ra-api-1.dtd"), "resource-agents"),
        ("/usr/bin/xmllint".to_owned(), "libxml2-utils"),
        ("/usr/bin/openssl".to_owned(), "openssl"),
    ] {
        assert!(
            Path::new(&path).is_file(),
            "the OCF agent tests need {path}: apt-get install {package} (or run ./scripts/setup)"
        );
    }
}

/// Whether the built `cib-subscriber` has the `run` subcommand (the daemon).
fn subscriber_has_run() -> bool {
    let mut cmd = Command::new(bin("cib-subscriber"));
    cmd.args(["run", "--help"]);
    run(cmd).code == 0
}

/// One resource of one agent: a site directory holding the CIB file,
/// certificates, the daemon's configuration, pid and log files.
struct Resource {
    site: Site,
    /// `publisher` or `subscriber`: the agent `ocf/<agent>`.
    agent: &'static str,
    /// Parameters (`OCF_RESKEY_<name>`), changed by tests at will.
    params: Vec<(&'static str, OsString)>,
}

impl Resource {
    /// A publisher resource listening on `listen` (port 0: any free port).
    fn publisher(listen: &str) -> Resource {
        let site = Site::empty();
        make_certs(&site);
        let config = site.write(
            "publisher.toml",
            format!(
                r#"site = "site-a"
listen = "{listen}"
cib_file = "cib.xml"
[tls]
cert = "certs/site-a.example.pem"
key  = "certs/site-a.example.key"
ca   = "certs/ca.pem"
[[ticket]]
name  = "geo"
allow = ["site-b.example"]
"#
            ),
        );
        Resource::new(site, "publisher", config)
    }

    /// A subscriber resource whose only peer does not answer (it keeps
    /// retrying, which its monitor must not mind).
    fn subscriber() -> Resource {
        let site = Site::empty();
        make_certs(&site);
        std::fs::create_dir(site.path("state")).expect("creating the state directory");
        let config = site.write(
            "subscriber.toml",
            r#"site = "site-b"
state_dir = "state"
cib_file = "cib.xml"
[tls]
cert = "certs/site-b.example.pem"
key  = "certs/site-b.example.key"
ca   = "certs/ca.pem"
[[ticket]]
name  = "geo"
mode  = "auto"
peers = ["https://127.0.0.1:9"]
"#,
        );
        Resource::new(site, "subscriber", config)
    }

    fn new(site: Site, agent: &'static str, config: PathBuf) -> Resource {
        require_ocf_tools();
        let params = vec![
            ("config", config.into_os_string()),
            ("binary", bin(&format!("cib-{agent}")).into_os_string()),
            ("pidfile", site.path("daemon.pid").into_os_string()),
            ("logfile", site.path("log/daemon.log").into_os_string()),
        ];
        Resource {
            site,
            agent,
            params,
        }
    }

    /// Sets (or, with `None`, removes) a parameter.
    fn set(&mut self, name: &'static str, value: Option<&Path>) {
        self.params.retain(|(n, _)| *n != name);
        if let Some(v) = value {
            self.params.push((name, v.as_os_str().to_owned()));
        }
    }

    fn param(&self, name: &str) -> Option<&OsString> {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Runs `ocf/<agent> ACTION` with the parameters, the action timeout
    /// and the monitor interval (milliseconds; interval 0 makes a monitor
    /// a probe), as Pacemaker runs it.
    fn run_action(&self, action: &str, interval_ms: &str, timeout_ms: &str) -> Run {
        let mut cmd = self.site.command(repo_root().join("ocf").join(self.agent));
        cmd.arg(action)
            .env("OCF_ROOT", OCF_ROOT)
            .env("OCF_RESOURCE_INSTANCE", format!("{}-it", self.agent))
            .env("OCF_RESKEY_CRM_meta_timeout", timeout_ms)
            .env("OCF_RESKEY_CRM_meta_interval", interval_ms);
        for (name, value) in &self.params {
            cmd.env(format!("OCF_RESKEY_{name}"), value);
        }
        run(cmd)
    }

    /// Runs an action with a 20 s timeout; `monitor` as a recurring
    /// monitor, not a probe.
    fn action(&self, action: &str) -> Run {
        let interval = if action == "monitor" {
            MONITOR_INTERVAL_MS
        } else {
            "0"
        };
        self.run_action(action, interval, "20000")
    }

    /// Runs a probe (a monitor with interval 0).
    fn probe(&self) -> Run {
        self.run_action("monitor", "0", "20000")
    }

    /// The pid in the pid file.
    fn pid(&self) -> u32 {
        let path = self.param("pidfile").expect("a pidfile parameter");
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading the pid file {}: {e}", Path::new(path).display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("pid file holds {text:?}: {e}"))
    }

    /// The daemon's log file, for messages.
    fn log(&self) -> String {
        self.param("logfile")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

impl Drop for Resource {
    /// Kills the daemon of the pid file, if it still runs our binary.
    fn drop(&mut self) {
        let (Some(pidfile), Some(binary)) = (self.param("pidfile"), self.param("binary")) else {
            return;
        };
        let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            return;
        };
        if runs_binary(pid, Path::new(binary)) {
            kill(pid, "KILL");
        }
    }
}

/// A CA and the certificates of site-a.example (also for 127.0.0.1) and
/// site-b.example in the site's `certs/`, by `examples/make-certs.sh`.
fn make_certs(site: &Site) {
    let mut cmd = Command::new(repo_root().join("examples/make-certs.sh"));
    cmd.arg("-d")
        .arg(site.path("certs"))
        .args(["site-a.example,IP:127.0.0.1", "site-b.example"]);
    run(cmd).expect_ok();
}

/// Whether process `pid` runs `binary`.
fn runs_binary(pid: u32, binary: &Path) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    let want = binary.canonicalize();
    matches!((exe, want), (Ok(e), Ok(w)) if e == w)
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

/// Sends SIGNAL to process `pid` with kill(1).
fn kill(pid: u32, signal: &str) {
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{signal}")).arg(pid.to_string());
    run(cmd);
}

/// Waits up to 5 s for process `pid` to be gone.
#[track_caller]
fn wait_gone(pid: u32) {
    for _ in 0..50 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("process {pid} still runs");
}

/// The life of a resource, as Pacemaker drives it.
fn life_cycle(res: &Resource) {
    res.probe().expect_code(OCF_NOT_RUNNING);
    res.action("monitor").expect_code(OCF_NOT_RUNNING);
    res.action("start").expect_code(OCF_SUCCESS);
    let pid = res.pid();
    let binary = bin(&format!("cib-{}", res.agent));
    assert!(
        runs_binary(pid, &binary),
        "pid {pid} of the pid file does not run {}",
        binary.display()
    );
    res.action("monitor").expect_code(OCF_SUCCESS);
    res.probe().expect_code(OCF_SUCCESS);
    res.action("start").expect_code(OCF_SUCCESS);
    assert_eq!(res.pid(), pid, "a second start started another daemon");

    // The daemon dies: failed (not "stopped"), until stop cleans up.
    kill(pid, "KILL");
    wait_gone(pid);
    res.action("monitor")
        .expect_code(OCF_ERR_GENERIC)
        .expect_stderr(&["ocf-exit-reason:", "is not running any more"]);
    // A probe (after a crash of the node or of Pacemaker) finds the pid
    // file left behind: not running, not a failure of this cluster start.
    res.probe().expect_code(OCF_NOT_RUNNING);
    res.action("monitor").expect_code(OCF_ERR_GENERIC);
    res.action("stop").expect_code(OCF_SUCCESS);
    res.action("stop").expect_code(OCF_SUCCESS);
    res.action("monitor").expect_code(OCF_NOT_RUNNING);

    // Started again, then stopped by SIGTERM.
    res.action("start").expect_code(OCF_SUCCESS);
    let pid = res.pid();
    res.action("stop").expect_code(OCF_SUCCESS);
    assert!(!alive(pid), "the daemon survived stop");
    res.action("monitor").expect_code(OCF_NOT_RUNNING);
    let log = res.log();
    assert!(
        log.contains("starting"),
        "the log file lacks the agent's start line:\n{log}"
    );
}

#[test]
fn reload_agent_sends_sighup_and_log_level_reaches_the_daemon() {
    if !subscriber_has_run() {
        eprintln!("SKIPPED: cib-subscriber has no `run` subcommand yet");
        return;
    }
    for mut res in [Resource::publisher("127.0.0.1:0"), Resource::subscriber()] {
        res.action("reload-agent").expect_code(OCF_SUCCESS);
        res.set("log_level", Some(Path::new("debug")));
        res.action("start").expect_code(OCF_SUCCESS);
        res.action("reload-agent").expect_code(OCF_SUCCESS);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !res.log().contains("reloaded") {
            assert!(std::time::Instant::now() < deadline, "no reload in the log:\n{}", res.log());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let log = res.log();
        assert!(log.contains("SIGHUP received"), "{log}");
        let environ = std::fs::read(format!("/proc/{}/environ", res.pid())).expect("reading the daemon's environment");
        assert!(
            environ.split(|&b| b == 0).any(|v| v == b"RUST_LOG=debug"),
            "log_level=debug did not reach the daemon as RUST_LOG"
        );
        res.action("stop").expect_code(OCF_SUCCESS);
    }
}

/// log_level is reloadable: reload-agent with a new level changes the
/// running daemon's filter (same process), a level that does not parse
/// keeps the old one, and stop removes the level file.
#[test]
fn a_new_log_level_takes_effect_without_a_restart() {
    if !subscriber_has_run() {
        eprintln!("SKIPPED: cib-subscriber has no `run` subcommand yet");
        return;
    }
    for mut res in [Resource::publisher("127.0.0.1:0"), Resource::subscriber()] {
        res.action("start").expect_code(OCF_SUCCESS);
        let pid = res.pid();
        let pidfile = PathBuf::from(res.param("pidfile").expect("pidfile set"));
        let level_file = pidfile.with_extension("log-level");
        assert_eq!(std::fs::read_to_string(&level_file).unwrap(), "info\n");
        fn wait_for(res: &Resource, needle: &str) {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !res.log().contains(needle) {
                assert!(std::time::Instant::now() < deadline, "`{needle}` not in the log:\n{}", res.log());
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        assert!(!res.log().contains("DEBUG"), "debug lines at level info:\n{}", res.log());

        res.set("log_level", Some(Path::new("debug")));
        res.action("reload-agent").expect_code(OCF_SUCCESS);
        wait_for(&res, "debug logging is on");
        assert_eq!(res.pid(), pid, "the daemon was restarted");
        assert!(res.log().contains("log filter set"), "{}", res.log());

        // A filter that does not parse: logged, the old one kept.
        res.set("log_level", Some(Path::new("cib=loud")));
        res.action("reload-agent").expect_code(OCF_SUCCESS);
        wait_for(&res, "log filter not changed");
        assert_eq!(res.pid(), pid);

        res.action("stop").expect_code(OCF_SUCCESS);
        assert!(!level_file.exists(), "stop left {}", level_file.display());
    }
}

#[test]
fn without_a_logfile_the_daemon_logs_to_the_journal() {
    let mut res = Resource::publisher("127.0.0.1:0");
    res.set("logfile", None);
    res.action("start").expect_code(OCF_SUCCESS);
    let pidfile = PathBuf::from(res.param("pidfile").expect("pidfile"));
    let out = pidfile.with_extension("out");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    res.action("stop").expect_code(OCF_SUCCESS);
    if Path::new("/run/systemd/journal/socket").exists() {
        assert!(!text.contains("INFO"), "logged to {} despite the journal:\n{text}", out.display());
    } else {
        // No journal here: the daemon says so and logs to the .out file.
        assert!(text.contains("no systemd journal"), "{}:\n{text}", out.display());
        assert!(text.contains("serving"), "{}:\n{text}", out.display());
    }
}

#[test]
fn publisher_actions_follow_the_resource_states() {
    life_cycle(&Resource::publisher("127.0.0.1:0"));
}

#[test]
fn subscriber_actions_follow_the_resource_states() {
    if !subscriber_has_run() {
        eprintln!("SKIPPED: cib-subscriber has no `run` subcommand yet");
        return;
    }
    life_cycle(&Resource::subscriber());
}

#[test]
fn ocf_tester_passes() {
    require_ocf_tools();
    let mut id = Command::new("id");
    id.arg("-u");
    let root = run(id).stdout.trim() == "0";
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the tests as root: ocf-tester checks the agents' permissions only as root"
        );
        eprintln!("not root: ocf-tester skips its check of the agents' permissions");
    }
    let bin_dir = bin("cib-publisher")
        .parent()
        .expect("binaries are in a directory")
        .to_owned();
    let mut cmd = Command::new(repo_root().join("ocf/test.sh"));
    cmd.env("CIB_REPLICATOR_BIN", bin_dir);
    let r = run(cmd);
    r.expect_ok()
        .expect_stdout(&["publisher passed all tests", "all OCF agent tests passed"]);
    if subscriber_has_run() {
        r.expect_stdout(&["subscriber passed all tests"]);
    }
}

#[test]
fn meta_data_is_valid_and_documents_every_parameter() {
    for res in [Resource::publisher("127.0.0.1:0"), Resource::subscriber()] {
        let r = res.action("meta-data");
        r.expect_ok();
        let file = res.site.write("meta-data.xml", &r.stdout);
        // resource-agents' ra-api-1.dtd (4.12) predates OCF 1.1's
        // reload-agent action and reloadable attribute: a copy that adds
        // them (as ocf/test.sh does).
        let dtd = std::fs::read_to_string(Path::new(RA_DATA).join("ra-api-1.dtd")).expect("reading ra-api-1.dtd");
        let dtd = dtd
            .replace("|validate-all)", "|validate-all|reload-agent)")
            .replace(r#"unique  (1|0)   "0">"#, r#"unique (1|0) "0" reloadable (1|0) "0">"#);
        assert!(dtd.contains("reload-agent") && dtd.contains("reloadable"), "ra-api-1.dtd changed: cannot add reload-agent");
        std::fs::create_dir_all(res.site.path("ra")).expect("creating the DTD directory");
        res.site.write("ra/ra-api-1.dtd", dtd);
        let mut lint = Command::new("xmllint");
        lint.args(["--noout", "--valid", "--path"])
            .arg(res.site.path("ra"))
            .arg(&file);
        run(lint).expect_ok();
        let mut lint = Command::new("xmllint");
        // metadata.rng (4.12) lacks the reloadable attribute too.
        let rng = std::fs::read_to_string(Path::new(RA_DATA).join("metadata.rng")).expect("reading metadata.rng");
        let required = r#"<attribute name="required"> <ref name="boolean-values" /> </attribute>"#;
        assert!(rng.contains(required), "metadata.rng changed: cannot add reloadable");
        let rng = rng.replace(
            required,
            &format!(r#"{required}</optional><optional><attribute name="reloadable"> <ref name="boolean-values" /> </attribute>"#),
        );
        res.site.write("ra/metadata.rng", rng);
        lint.args(["--noout", "--relaxng"])
            .arg(res.site.path("ra/metadata.rng"))
            .arg(&file);
        run(lint).expect_ok();
        for needle in [
            "<version>1.1</version>",
            r#"<parameter name="config" unique="1" required="1">"#,
            r#"<parameter name="binary""#,
            r#"<parameter name="pidfile""#,
            r#"<parameter name="logfile""#,
            r#"<action name="start""#,
            r#"<action name="stop""#,
            r#"<action name="monitor""#,
            r#"<action name="validate-all""#,
            r#"<action name="reload-agent""#,
            r#"<parameter name="log_level""#,
        ] {
            r.expect_stdout(&[needle]);
        }
    }
}

#[test]
fn start_fails_with_the_daemons_reason_when_it_dies() {
    // serve --check passes (it binds nothing), the daemon cannot bind.
    let busy = TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let addr = busy.local_addr().expect("the bound address");
    let res = Resource::publisher(&addr.to_string());
    res.action("validate-all").expect_code(OCF_SUCCESS);
    res.action("start")
        .expect_code(OCF_ERR_GENERIC)
        .expect_stderr(&[
            "ocf-exit-reason:cib-publisher exited during start",
            "listening on",
        ]);
    assert!(
        !Path::new(res.param("pidfile").expect("pidfile")).exists(),
        "a failed start left its pid file"
    );
    res.action("monitor").expect_code(OCF_NOT_RUNNING);
    res.action("stop").expect_code(OCF_SUCCESS);
}

#[test]
fn validate_all_tells_configuration_from_installation_errors() {
    let mut res = Resource::publisher("127.0.0.1:0");
    res.action("validate-all").expect_code(OCF_SUCCESS);
    let config = PathBuf::from(res.param("config").expect("config"));
    let binary = PathBuf::from(res.param("binary").expect("binary"));

    // Parameters: fatal everywhere.
    res.set("config", None);
    res.action("validate-all")
        .expect_code(OCF_ERR_CONFIGURED)
        .expect_stderr(&["config", "is required"]);
    res.set("config", Some(Path::new("publisher.toml")));
    res.action("validate-all")
        .expect_code(OCF_ERR_CONFIGURED)
        .expect_stderr(&["absolute path"]);

    // This node: no configuration file, no binary, a file the daemon rejects.
    res.set("config", Some(&res.site.path("absent.toml")));
    res.action("validate-all")
        .expect_code(OCF_ERR_INSTALLED)
        .expect_stderr(&["absent.toml"]);
    res.action("start").expect_code(OCF_ERR_INSTALLED);
    res.set("config", Some(&config));
    res.set("binary", Some(&res.site.path("no-such-binary")));
    res.action("validate-all")
        .expect_code(OCF_ERR_INSTALLED)
        .expect_stderr(&["no-such-binary"]);
    res.set("binary", Some(&binary));
    let text = std::fs::read_to_string(&config).expect("reading the configuration");
    let rejected = res
        .site
        .write("rejected.toml", format!("recheck_secs = 5\n{text}"));
    res.set("config", Some(&rejected));
    res.action("validate-all")
        .expect_code(OCF_ERR_ARGS)
        .expect_stderr(&["cib-publisher rejects", "recheck_secs"]);

    // Probes and stops need neither: a node without them answers "stopped".
    res.set("config", Some(&res.site.path("absent.toml")));
    res.set("binary", Some(&res.site.path("no-such-binary")));
    res.probe().expect_code(OCF_NOT_RUNNING);
    res.action("stop").expect_code(OCF_SUCCESS);
}

#[test]
fn stop_kills_a_daemon_that_ignores_sigterm() {
    let res = Resource::publisher("127.0.0.1:0");
    res.action("start").expect_code(OCF_SUCCESS);
    let pid = res.pid();
    // A stopped process does not act on SIGTERM; SIGKILL ends it.
    kill(pid, "STOP");
    let started = std::time::Instant::now();
    let r = res.run_action("stop", "0", "7000");
    r.expect_ok().expect_stderr(&["SIGKILL"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "stop took {:?}, beyond its timeout",
        started.elapsed()
    );
    wait_gone(pid);
    res.action("monitor").expect_code(OCF_NOT_RUNNING);
}

/// The `timeout` of `action` in an agent's meta-data (`30s`).
fn meta_data_timeout(meta_data: &str, action: &str) -> String {
    let tag = format!(r#"<action name="{action}""#);
    let line = meta_data
        .lines()
        .find(|l| l.trim_start().starts_with(&tag))
        .unwrap_or_else(|| panic!("no {action} action in the meta-data\n{meta_data}"));
    let value = line
        .split("timeout=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("no timeout in {line}"));
    value.to_owned()
}

/// pcs copies the agents' start and stop timeouts from the meta-data into
/// a new resource; crm does not, so the READMEs' crm commands give them.
#[test]
fn the_crm_examples_carry_the_meta_data_timeouts() {
    require_ocf_tools();
    for agent in ["publisher", "subscriber"] {
        let mut cmd = Command::new(repo_root().join("ocf").join(agent));
        cmd.arg("meta-data").env("OCF_ROOT", OCF_ROOT);
        let r = run(cmd);
        r.expect_ok();
        let ops = format!(
            "op start timeout={} op stop timeout={}",
            meta_data_timeout(&r.stdout, "start"),
            meta_data_timeout(&r.stdout, "stop")
        );
        for readme in ["ocf/README.md", "examples/geo/README.md"] {
            let text = std::fs::read_to_string(repo_root().join(readme)).expect("reading the README");
            let command = text
                .split(&format!("crm configure primitive {agent} "))
                .nth(1)
                .unwrap_or_else(|| panic!("{readme} has no crm command for the {agent}"));
            // The command's lines, up to the first one not continued (the
            // geo README gives them as comments).
            let mut words = Vec::new();
            for line in command.lines() {
                let line = line.trim_start_matches(['#', ' ']);
                words.extend(line.split_whitespace().filter(|w| *w != "\\"));
                if !line.trim_end().ends_with('\\') {
                    break;
                }
            }
            let command = words.join(" ");
            assert!(command.contains(&ops), "{readme}: the crm command of the {agent} lacks `{ops}`: {command}");
        }
    }
}
