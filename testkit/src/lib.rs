//! Helpers shared by the test suites of the workspace (dev-dependency
//! only): finding and running Pacemaker's tools on CIB files, reading one
//! series of a Prometheus exposition. One place each, so that the suites
//! cannot drift apart.

use std::path::{Path, PathBuf};
use std::process::Command;

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
