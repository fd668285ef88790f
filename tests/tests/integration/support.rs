//! The one harness of the integration tests.
//!
//! - [`bin`]: the built `cib-publisher` / `cib-subscriber` next to this test
//!   binary (`target/debug/deps/integration-…` → `target/debug/`).
//! - [`tool`], [`xsltproc`]: the real Pacemaker tools and xsltproc; a missing
//!   one is a panic naming the Debian package, never a silent skip.
//! - [`Site`]: one cluster site = a temporary directory holding a CIB file,
//!   used through `CIB_file` set on each child process (never with
//!   `std::env::set_var`: tests run in parallel threads). Removed on drop,
//!   also when a test panics.
//! - [`two_sites`]: the offline example of `examples/offline/` — site A
//!   holding ticket `geo` and its published scope, site B.
//! - Fixtures: [`offline`] (the example's files, by path) and [`fixture`]
//!   (`tests/fixtures/`), [`corpus_dir`] (the Pacemaker scheduler corpus).

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

use cib_transforms::canonical::{canonicalize, digest};
use cib_transforms::scope::header_digest;
use cib_transforms::xml::{self, Element};

/// The ticket of the offline example.
pub const TICKET: &str = "geo";

/// Pacemaker command-line tools the tests run, all from one Debian package.
const PACEMAKER_TOOLS: &[&str] = &[
    "cibadmin",
    "crm_attribute",
    "crm_diff",
    "crm_simulate",
    "crm_ticket",
    "crm_verify",
];

/// Debian package holding [`PACEMAKER_TOOLS`].
const PACEMAKER_PACKAGE: &str = "pacemaker-cli-utils";

// ---------------------------------------------------------------------------
// Programs

/// Path of a workspace binary (`cib-publisher`, `cib-subscriber`), built by
/// `cargo build --workspace --bins` into the same target directory as this
/// test binary.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("path of the running test binary");
        // target/<profile>/deps/integration-<hash> → target/<profile>/
        let deps = exe.parent().expect("test binary has a parent directory");
        let dir = if deps.file_name() == Some(OsStr::new("deps")) {
            deps.parent().expect("deps/ has a parent directory")
        } else {
            deps
        };
        dir.to_path_buf()
    });
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} does not exist: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Path of a Pacemaker tool: on `PATH`, else in `/usr/sbin` or `/sbin`
/// (where Debian installs them, off an ordinary user's `PATH`).
pub fn tool(name: &str) -> PathBuf {
    check_programs();
    cib_testkit::tool(name)
}

/// Path of `xsltproc`.
pub fn xsltproc() -> PathBuf {
    check_programs();
    find_program("xsltproc", &["/usr/bin"]).expect("checked by check_programs")
}

/// A program on `PATH`, else in one of `extra_dirs`.
pub fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Panics, naming the package to install, when a required program is missing.
fn check_programs() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let mut missing = Vec::new();
        for name in PACEMAKER_TOOLS {
            if find_program(name, &["/usr/sbin", "/sbin"]).is_none() {
                missing.push(format!("`{name}` (Debian package {PACEMAKER_PACKAGE})"));
            }
        }
        if find_program("xsltproc", &["/usr/bin"]).is_none() {
            missing.push("`xsltproc` (Debian package xsltproc)".to_owned());
        }
        assert!(
            missing.is_empty(),
            "the integration tests need the real Pacemaker tools and xsltproc; missing: {}. \
             Install them: apt-get install {PACEMAKER_PACKAGE} xsltproc (or run ./scripts/setup)",
            missing.join(", ")
        );
    });
}

/// What a finished child process did.
#[derive(Debug)]
pub struct Run {
    /// What ran, for messages.
    pub what: String,
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Run {
    /// Panics (showing both streams) unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code of {}\n{self}",
            self.what
        );
        self
    }

    /// Panics unless the exit code is 0.
    #[track_caller]
    pub fn expect_ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Panics unless stderr contains every one of `needles`.
    #[track_caller]
    pub fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr of {} lacks {n:?}\n{self}",
                self.what
            );
        }
        self
    }

    /// Panics unless stdout contains every one of `needles`.
    #[track_caller]
    pub fn expect_stdout(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stdout.contains(n),
                "stdout of {} lacks {n:?}\n{self}",
                self.what
            );
        }
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\n-- exit {}\n-- stdout:\n{}\n-- stderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion with no stdin, capturing its output.
pub fn run(mut cmd: Command) -> Run {
    let what = describe(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Run {
        what,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn describe(cmd: &Command) -> String {
    let env: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let mut parts = env;
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

// ---------------------------------------------------------------------------
// Fixtures

/// A file of the offline two-site example (`examples/offline/NAME`).
pub fn offline(name: &str) -> PathBuf {
    existing(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/offline")
            .join(name),
    )
}

/// A fixture of this crate (`tests/fixtures/NAME`).
pub fn fixture(name: &str) -> PathBuf {
    existing(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(path.is_file(), "fixture {} is missing", path.display());
    path
}

/// The Pacemaker scheduler corpus: `$CIB_CORPUS`, else
/// `../../shared/corpus/pacemaker-scheduler` relative to this crate. `None`
/// when the directory does not exist.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("CIB_CORPUS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pacemaker-scheduler"),
    };
    dir.is_dir().then_some(dir)
}

/// [`corpus_dir`] for a test that sweeps the corpus: fails in CI (`CI`
/// set) when the corpus is missing, otherwise says that `test` is skipped
/// and returns `None`.
pub fn corpus_or_skip(test: &str) -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the corpus is missing (set CIB_CORPUS, or check out ../shared/corpus/pacemaker-scheduler)"
        );
        eprintln!("corpus not found (CIB_CORPUS or ../../shared/corpus/pacemaker-scheduler): skipping {test}");
    }
    dir
}

// ---------------------------------------------------------------------------
// Sites

/// One cluster site: a temporary directory with the site's CIB file
/// (`cib.xml`) and any scratch files of the test. Removed on drop.
pub struct Site {
    dir: TempDir,
    cib: PathBuf,
}

impl Site {
    /// A site whose CIB is a copy of `path`.
    pub fn from_fixture(path: &Path) -> Site {
        let site = Site::new();
        std::fs::copy(path, &site.cib)
            .unwrap_or_else(|e| panic!("copying {}: {e}", path.display()));
        site
    }

    /// A site whose CIB is `text` (a new, writable file).
    pub fn with_cib(text: &str) -> Site {
        let site = Site::new();
        site.write("cib.xml", text);
        site
    }

    /// A site with an empty CIB (`cibadmin --empty`) and `stonith-enabled`
    /// false, as a fresh test cluster without fencing devices.
    pub fn empty() -> Site {
        let site = Site::new();
        let empty = run({
            let mut c = Command::new(tool("cibadmin"));
            c.arg("--empty")
                .env_remove("CIB_file")
                .env_remove("CIB_shadow");
            c
        });
        empty.expect_ok();
        site.write("cib.xml", &empty.stdout);
        site.tool(
            "crm_attribute",
            ["-t", "crm_config", "-n", "stonith-enabled", "-v", "false"],
        )
        .expect_ok();
        site
    }

    /// A site with an empty CIB, `stonith-enabled` true and one fencing
    /// device, so that fencing is configured (e.g. for `loss-policy=fence`).
    pub fn empty_with_fencing() -> Site {
        let site = Site::empty();
        site.cibadmin([
            "--create",
            "-o",
            "resources",
            "--xml-text",
            r#"<primitive id="site-fencing" class="stonith" type="fence_dummy"/>"#,
        ]);
        site.tool(
            "crm_attribute",
            ["-t", "crm_config", "-n", "stonith-enabled", "-v", "true"],
        )
        .expect_ok();
        site
    }

    fn new() -> Site {
        check_programs();
        let dir = tempfile::Builder::new()
            .prefix("cib-replicator-it-")
            .tempdir()
            .expect("creating a temporary site directory");
        std::fs::create_dir(dir.path().join("shadow")).expect("creating the shadow directory");
        let cib = dir.path().join("cib.xml");
        Site { dir, cib }
    }

    /// The CIB file.
    pub fn cib_path(&self) -> &Path {
        &self.cib
    }

    /// A path in the site's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file in the site's directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// A command for `program` aimed at this site's CIB: `CIB_file` is set on
    /// the child only; `CIB_shadow` is removed and `CIB_shadow_dir` points
    /// into the site's directory, so nothing is written elsewhere.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("CIB_file", &self.cib)
            .env_remove("CIB_shadow")
            .env("CIB_shadow_dir", self.path("shadow"));
        cmd
    }

    /// Runs a Pacemaker tool against this site's CIB.
    pub fn tool<I, S>(&self, name: &str, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(tool(name));
        cmd.args(args);
        run(cmd)
    }

    /// Runs `cibadmin ARGS` against this site's CIB; panics unless it succeeds.
    pub fn cibadmin<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let r = self.tool("cibadmin", args);
        r.expect_ok();
        r
    }

    /// Runs `cib-publisher ARGS` with this site's CIB.
    pub fn publisher<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(bin("cib-publisher"));
        cmd.args(args);
        run(cmd)
    }

    /// Runs `cib-subscriber ARGS` with this site's CIB.
    pub fn subscriber<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(bin("cib-subscriber"));
        cmd.args(args);
        run(cmd)
    }

    /// Publishes `ticket` (`cib-publisher scope`) into `NAME` in the site's
    /// directory; panics unless the publisher succeeds.
    pub fn publish(&self, ticket: &str, name: &str) -> PathBuf {
        let r = self.publisher(["scope", "--ticket", ticket]);
        r.expect_ok();
        self.write(name, &r.stdout)
    }

    /// Runs `cib-subscriber replicate-now`, expects exit 2 with `needles` on
    /// stderr, and checks that the CIB file did not change by one byte.
    #[track_caller]
    pub fn expect_refusal<S: AsRef<OsStr>>(&self, args: &[S], needles: &[&str]) -> Run {
        let before = self.bytes();
        let mut full: Vec<&OsStr> = vec![OsStr::new("replicate-now")];
        full.extend(args.iter().map(AsRef::as_ref));
        let r = self.subscriber(full);
        r.expect_code(2).expect_stderr(needles);
        assert!(
            self.bytes() == before,
            "a refused replicate-now changed the CIB file\n{r}"
        );
        r
    }

    /// The CIB file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.cib).unwrap_or_else(|e| panic!("reading {}: {e}", self.cib.display()))
    }

    /// The CIB, parsed.
    pub fn cib(&self) -> Element {
        let text = String::from_utf8(self.bytes()).expect("the CIB file is UTF-8");
        xml::parse(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", self.cib.display()))
    }

    /// The XML of the element of `<configuration>` with this id, or `None`.
    pub fn element(&self, id: &str) -> Option<String> {
        let cib = self.cib();
        let config = cib
            .child("configuration")
            .expect("the CIB has a <configuration>");
        // `obj_ref` and `resource_ref` carry the id they point at.
        let mut found = None;
        config.walk(&mut |e| {
            if found.is_none() && e.id() == Some(id) && e.name != "obj_ref" && e.name != "resource_ref" {
                found = Some(e.to_xml());
            }
        });
        found
    }

    /// The XML of a whole section of `<configuration>` (e.g. `nodes`).
    pub fn section(&self, name: &str) -> String {
        let cib = self.cib();
        cib.child("configuration")
            .and_then(|c| c.child(name))
            .unwrap_or_else(|| panic!("the CIB has no <{name}> section"))
            .to_xml()
    }

    /// The `value` of the nvpair with this id.
    pub fn nvpair_value(&self, id: &str) -> Option<String> {
        let cib = self.cib();
        let config = cib
            .child("configuration")
            .expect("the CIB has a <configuration>");
        config
            .find_id(id)
            .and_then(|e| e.attr("value"))
            .map(str::to_owned)
    }

    /// Grants `ticket` to this site (`crm_ticket --grant --force`).
    pub fn grant(&self, ticket: &str) {
        self.tool("crm_ticket", ["-t", ticket, "--grant", "--force"])
            .expect_ok();
    }

    /// `crm_verify -V --xml-file CIB` (exit code and messages).
    pub fn verify(&self) -> Run {
        self.verify_file(&self.cib)
    }

    /// `crm_verify -V --xml-file FILE`, with this site's environment.
    pub fn verify_file(&self, file: &Path) -> Run {
        let mut cmd = self.command(tool("crm_verify"));
        cmd.env_remove("CIB_file")
            .arg("-V")
            .arg("--xml-file")
            .arg(file);
        run(cmd)
    }

    /// Panics unless `crm_verify` accepts the CIB without a message.
    #[track_caller]
    pub fn expect_verify_clean(&self) {
        let r = self.verify();
        r.expect_ok();
        assert!(
            r.stdout.trim().is_empty() && r.stderr.trim().is_empty(),
            "crm_verify accepted the CIB but complained\n{r}"
        );
    }

    /// Resources `crm_simulate --simulate` would start, with every node of
    /// the site brought up, on a copy of the CIB; `extra` adds arguments
    /// (e.g. `--ticket-grant geo`).
    pub fn simulate_starts(&self, extra: &[&str]) -> BTreeSet<String> {
        let copy = self.path("simulate-input.xml");
        std::fs::copy(&self.cib, &copy).expect("copying the CIB for crm_simulate");
        let mut cmd = self.command(tool("crm_simulate"));
        cmd.env_remove("CIB_file")
            .arg("--xml-file")
            .arg(&copy)
            .arg("--simulate");
        for node in self.node_names() {
            cmd.arg("--node-up").arg(node);
        }
        cmd.args(extra);
        let r = run(cmd);
        r.expect_ok();
        transition_starts(&r.stdout)
            .unwrap_or_else(|| panic!("no Transition Summary in crm_simulate's output\n{r}"))
    }

    /// Names (`uname`) of the site's nodes.
    pub fn node_names(&self) -> Vec<String> {
        let cib = self.cib();
        cib.child("configuration")
            .and_then(|c| c.child("nodes"))
            .map(|n| {
                n.children
                    .iter()
                    .filter_map(|n| n.attr("uname").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The resources of `* Start <rsc> (...)` lines in the "Transition Summary"
/// of `crm_simulate` output; `None` when there is no summary.
pub fn transition_starts(output: &str) -> Option<BTreeSet<String>> {
    let mut lines = output
        .lines()
        .skip_while(|l| l.trim() != "Transition Summary:");
    lines.next()?;
    let starts = lines
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("*") && words.next() == Some("Start")).then(|| words.next())?
        })
        .map(str::to_owned)
        .collect();
    Some(starts)
}

/// Site A of the offline example with ticket `geo` granted, its published
/// scope (a file in A's directory), and site B.
pub fn two_sites() -> (Site, PathBuf, Site) {
    let a = Site::from_fixture(&offline("site-a.xml"));
    a.grant(TICKET);
    let scope = a.publish(TICKET, "geo.xml");
    let b = Site::from_fixture(&offline("site-b.xml"));
    (a, scope, b)
}

/// Site B holding an applied copy of `geo`, its state directory (holding
/// the document applied) and the applied digest; site A is returned to
/// keep it alive.
pub fn replicated() -> (Site, Site, PathBuf, String) {
    let (a, scope, b) = two_sites();
    let dir = b.path("state");
    std::fs::create_dir_all(&dir).unwrap();
    b.subscriber([
        "replicate-now".as_ref(),
        "--ticket".as_ref(),
        TICKET.as_ref(),
        "--from".as_ref(),
        scope.as_os_str(),
        "--rules".as_ref(),
        site_b_rules().as_os_str(),
        "--state-dir".as_ref(),
        dir.as_os_str(),
    ])
    .expect_ok();
    let applied = cib_transforms::merge::Ownership::read(&b.cib(), TICKET).unwrap().applied_digest.expect("an applied digest");
    (a, b, dir, applied)
}

/// Site B's rules of the offline example.
pub fn site_b_rules() -> PathBuf {
    offline("site-b-rules.toml")
}

/// A `PATH` with `dir` first, where `dir/<tool>` is a shell script that
/// runs `script` (`sh`, with the tool's arguments as `"$@"`) and then the
/// real `tool` with the same arguments: a Pacemaker tool that does
/// something more, or fails, at a chosen moment of a run.
pub fn shim_path(dir: &Path, tool_name: &str, script: &str) -> OsString {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).unwrap();
    let fake = dir.join(tool_name);
    std::fs::write(&fake, format!("#!/bin/sh\n{script}\nexec '{}' \"$@\"\n", tool(tool_name).display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::env::join_paths(std::iter::once(dir.to_owned()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()))).unwrap()
}

/// The ids of the primitives in a published scope file.
pub fn scope_primitives(scope: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(scope).expect("reading the scope");
    let doc = xml::parse(&text).expect("parsing the scope");
    let mut out = BTreeSet::new();
    if let Some(resources) = doc.child("resources") {
        resources.walk(&mut |e| {
            if e.name == "primitive" {
                out.insert(e.id().expect("primitives have ids").to_owned());
            }
        });
    }
    out
}

/// A published or transformed `<configuration>` document reduced to its
/// configuration content: the `replicator-*` attributes of the root and the
/// `replicator-left-out` report removed, then canonicalized and serialized.
pub fn canonical_config(text: &str) -> String {
    let mut doc = xml::parse(text).unwrap_or_else(|e| panic!("parsing {text:?}: {e}"));
    doc.attrs.retain(|(k, _)| !k.starts_with("replicator-"));
    doc.children.retain(|c| c.name != "replicator-left-out");
    canonicalize(&mut doc);
    doc.to_xml()
}

/// A published scope document edited by hand (`edit` gets its text), with
/// `replicator-digest` and `replicator-header-digest` recomputed over the
/// edited document exactly as a publisher would: what a compromised or
/// buggy publisher could send.
pub fn reseal(published: &str, edit: impl FnOnce(&str) -> String) -> String {
    let edited = edit(published);
    let mut doc =
        xml::parse(&edited).unwrap_or_else(|e| panic!("parsing the edited scope: {e}\n{edited}"));
    let mut content = doc.clone();
    content.attrs.clear();
    content.children.retain(|c| c.name != "replicator-left-out");
    let digest = digest(&content);
    let header = header_digest(
        doc.attr("replicator-ticket").unwrap_or(""),
        doc.attr("replicator-version"),
        doc.attr("replicator-term").and_then(|t| t.parse().ok()),
        &digest,
    );
    doc.set_attr("replicator-digest", digest);
    doc.set_attr("replicator-header-digest", header);
    doc.to_xml()
}
