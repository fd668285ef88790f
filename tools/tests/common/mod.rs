//! Helpers shared by the integration tests. They run the real tools; a
//! missing tool fails the test with the Debian package that installs it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cib_tools::process;

/// Panics with an install hint unless `program` can be found.
pub fn require(program: &str, _package: &str) -> PathBuf {
    cib_testkit::tool(program)
}

/// A Pacemaker CLI command (absolute path, so `/usr/sbin` need not be on PATH).
pub fn pcmk(program: &str) -> Command {
    Command::new(require(program, "pacemaker-cli-utils"))
}

/// Runs `cmd` with `CIB_file=cib_file` set on the child only; panics on failure.
pub fn run_on(cib_file: &Path, mut cmd: Command) -> String {
    cmd.env("CIB_file", cib_file).env_remove("CIB_shadow");
    let out = process::run_checked(&mut cmd, None, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates `dir/name` holding an empty CIB with `stonith-enabled=false` and
/// one `ocf:pacemaker:Dummy` primitive `d1`.
pub fn make_cib(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut empty = pcmk("cibadmin");
    empty.arg("--empty");
    let out = process::run_checked(&mut empty, None, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, &out.stdout).expect("write CIB file");

    let mut c = pcmk("crm_attribute");
    c.args(["-t", "crm_config", "-n", "stonith-enabled", "-v", "false"]);
    run_on(&path, c);
    let mut c = pcmk("cibadmin");
    c.args([
        "--create",
        "-o",
        "resources",
        "--xml-text",
        r#"<primitive id="d1" class="ocf" provider="pacemaker" type="Dummy"/>"#,
    ]);
    run_on(&path, c);
    path
}

/// Copies a CIB file and applies `cibadmin --modify --xml-text XML` to the
/// copy (which bumps its epoch); returns the copy's path.
pub fn modified_copy(src: &Path, dst: &Path, xml: &str) -> PathBuf {
    std::fs::copy(src, dst).expect("copy CIB file");
    let mut c = pcmk("cibadmin");
    c.args(["--modify", "--xml-text", xml]);
    run_on(dst, c);
    dst.to_path_buf()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read file")
}
