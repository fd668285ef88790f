//! Helpers shared by the test suites of the workspace (dev-dependency
//! only): finding and running Pacemaker's tools on CIB files, reading one
//! series of a Prometheus exposition, rendering a page in headless
//! Chromium. One place each, so that the suites cannot drift apart.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a Pacemaker tool (or `xsltproc`) is, as the code under test finds
/// it ([`cib_tools::files::program`]); panics with the Debian package to
/// install when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = cib_tools::files::program(name);
    let found = path.is_file() || (path.is_relative() && which(&path).is_some());
    assert!(found, "{name} not found: install the Debian package {} (./scripts/setup)", package_of(name));
    which(&path).unwrap_or(path)
}

/// The absolute path of a bare program name found on `PATH`.
fn which(path: &Path) -> Option<PathBuf> {
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs).map(|d| d.join(path)).find(|p| p.is_file())
}

/// The Debian package that installs `name`.
fn package_of(name: &str) -> &'static str {
    match name {
        "xsltproc" => "xsltproc",
        "xmllint" => "libxml2-utils",
        "ocf-tester" => "resource-agents",
        _ => "pacemaker-cli-utils",
    }
}

/// Runs `name args...` with `CIB_file=cib` on the child only (and no
/// `CIB_shadow`); panics with its stderr unless it succeeds.
pub fn pcmk(cib: &Path, name: &str, args: &[&str]) {
    let out = Command::new(tool(name))
        .args(args)
        .env("CIB_file", cib)
        .env_remove("CIB_shadow")
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of one series of a Prometheus text exposition, e.g.
/// `cib_publisher_errors_total{kind="forbidden"}`; 0 when absent.
pub fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Longest a headless Chromium run may take.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Headless Chromium (Debian's `chromium`), for tests of web pages. When it
/// is not installed: `None`, after saying on stderr that the test is
/// skipped — unless `CI` is set, where a missing browser fails the test.
pub fn chromium() -> Option<PathBuf> {
    if let Some(b) = ["chromium", "chromium-browser"].iter().find_map(|b| which(Path::new(b))) {
        return Some(b);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "chromium not found (CI is set, so this fails): install the Debian package chromium (./scripts/setup)"
    );
    eprintln!("skipped: chromium not found; install the Debian package chromium (./scripts/setup) to run this test");
    None
}

/// The DOM of `url` as `browser` ([`chromium`]) serializes it after the
/// page's scripts ran for 3 s of virtual time (`--dump-dom`).
pub fn dump_dom(browser: &Path, url: &str) -> String {
    run_chromium(browser, &["--dump-dom", url])
}

/// Writes a PNG of `url` to `file`, as `browser` ([`chromium`]) renders it
/// in a 1280×800 window after 3 s of virtual time (what
/// `scripts/status-screenshot` does from the shell).
pub fn screenshot(browser: &Path, url: &str, file: &Path) {
    let arg = format!("--screenshot={}", file.display());
    run_chromium(browser, &["--window-size=1280,800", "--hide-scrollbars", &arg, url]);
    assert!(file.metadata().is_ok_and(|m| m.len() > 0), "chromium wrote no screenshot to {}", file.display());
}

/// Runs headless `browser` with `args` and a profile of its own; returns
/// its stdout. Panics when it fails or takes over [`CHROMIUM_TIMEOUT`].
fn run_chromium(browser: &Path, args: &[&str]) -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!("cib-testkit-chromium-{}-{run}", std::process::id()));
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=3000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", browser.display()));
    let reader = {
        let mut out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        })
    };
    let errors = {
        let mut err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        })
    };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&profile);
            panic!("chromium took over {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&profile);
    let out = reader.join().unwrap_or_default();
    let err = errors.join().unwrap_or_default();
    assert!(status.success(), "chromium {args:?} failed: {status}\n{err}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_series() {
        let text = "# HELP x\nx_total{kind=\"a\"} 3\nx_total{kind=\"b\"} 4.5\n";
        assert_eq!(metric(text, r#"x_total{kind="b"}"#), 4.5);
        assert_eq!(metric(text, r#"x_total{kind="c"}"#), 0.0);
    }
}
