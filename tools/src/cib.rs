//! Pacemaker operations: read, query, verify, diff, patch, simulate.
//!
//! Findings on pacemaker 2.1.5 (Debian 12) that the code relies on:
//!
//! - `cibadmin --empty` prints an empty CIB on stdout (it does not create
//!   `CIB_file`). With `CIB_file` naming a missing file, other `cibadmin`
//!   commands fail with exit code 105 ("Could not connect to the CIB").
//!   Without a cluster and without `CIB_file`, `cibadmin --query` exits 102.
//! - `crm_verify --xml-pipe` exits 0 when valid, 78 (`CRM_EX_CONFIG`) for
//!   schema or configuration errors and for input that does not parse
//!   (`--xml-file F` exits 1 for a file that does not). It prints only
//!   "config not valid / -V may provide more details" unless `-V` is
//!   given; with `-V` it prints the actual errors (schema validity
//!   errors such as `IDREF attribute rsc references an unknown ID "x"`, or
//!   the STONITH complaint when no fencing device exists and
//!   `stonith-enabled` is not `false`) — so [`verify`] passes `-V`.
//! - `crm_diff --original A --new B` exits 0 with no output when the two
//!   are identical, 1 with a versioned `<diff format="2">` patch on stdout
//!   when they differ, 65 when an input cannot be parsed.
//! - `cibadmin --patch` exit codes: see [`Cib::patch`].
//!
//! What is written and verified goes to `cibadmin` and `crm_verify` on
//! their standard input (`--xml-pipe`), not through a temporary file: a
//! process killed in the middle (a daemon stopped with SIGKILL) would leave
//! the file behind, as large as the CIB for a verification.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::process::{self, bounded_text, STDERR_LIMIT};

/// Default timeout for one Pacemaker tool invocation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest CIB file [`Cib::read`] reads (bytes); larger files are refused
/// without reading them into memory. The parser's own bound is lower.
pub const MAX_CIB_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// How long [`Cib::read`] waits for a CIB file that another process is
/// rewriting in place to be complete again.
pub const INCOMPLETE_WAIT: Duration = Duration::from_secs(2);

/// `cibadmin` exit code `CRM_EX_OLD` ("Update was older than existing
/// configuration").
pub const CRM_EX_OLD: i32 = 103;

/// `cibadmin` exit code `CRM_EX_NOSUCH`: no element matched the query.
pub const CRM_EX_NOSUCH: i32 = 105;

/// Which CIB the `cibadmin` commands of a [`Cib`] talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Whatever the inherited environment says (`CIB_shadow`, `CIB_file`,
    /// or the live cluster).
    Inherit,
    /// The live cluster, whatever the environment says.
    Live,
    /// This file, whatever the environment says.
    File(PathBuf),
}

/// A handle on a CIB: the live cluster's or a file's.
///
/// Only the `cibadmin` commands issued through it ([`Cib::query`],
/// [`Cib::patch`]) are affected; the environment of the calling process is
/// never modified (no `std::env::set_var`, which would race with other
/// threads and parallel tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cib {
    target: Target,
    timeout: Duration,
}

impl Cib {
    /// The CIB selected by the environment, exactly as any Pacemaker tool
    /// would choose it: children inherit `CIB_shadow` / `CIB_file` if set,
    /// otherwise they connect to the live cluster. This is what the
    /// binaries use.
    #[must_use]
    pub fn from_env() -> Cib {
        Cib {
            target: Target::Inherit,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The live cluster's CIB: `CIB_file` and `CIB_shadow` are removed from
    /// the children's environment.
    #[must_use]
    pub fn live() -> Cib {
        Cib {
            target: Target::Live,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The CIB stored in `path`: children get `CIB_file=path` (and no
    /// `CIB_shadow`, which Pacemaker would otherwise prefer). A relative
    /// path is resolved against the current directory by the child.
    #[must_use]
    pub fn file(path: impl Into<PathBuf>) -> Cib {
        Cib {
            target: Target::File(path.into()),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Returns this handle with a different per-command timeout
    /// (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Cib {
        self.timeout = timeout;
        self
    }

    /// The file this handle was explicitly given, if any (`None` for
    /// [`Cib::from_env`] even when `CIB_file` is set).
    #[must_use]
    pub fn file_path(&self) -> Option<&Path> {
        match &self.target {
            Target::File(p) => Some(p),
            _ => None,
        }
    }

    /// A `cibadmin` (or other Pacemaker tool) command aimed at this CIB.
    fn command(&self, program: &str) -> Command {
        let mut cmd = pacemaker_command(program);
        match &self.target {
            Target::Inherit => {}
            Target::Live => {
                cmd.env_remove("CIB_file").env_remove("CIB_shadow");
            }
            Target::File(path) => {
                cmd.env("CIB_file", path).env_remove("CIB_shadow");
            }
        }
        cmd
    }

    /// The CIB file this handle reads, if it is one: the explicit file, or
    /// for [`Cib::from_env`] the file named by `CIB_file` when `CIB_shadow`
    /// (which Pacemaker prefers) is unset. `None` for the live cluster.
    #[must_use]
    pub fn backing_file(&self) -> Option<PathBuf> {
        match &self.target {
            Target::File(p) => Some(p.clone()),
            Target::Live => None,
            Target::Inherit => {
                let set = |name| std::env::var_os(name).filter(|v| !v.is_empty());
                if set("CIB_shadow").is_some() {
                    None
                } else {
                    set("CIB_file").map(PathBuf::from)
                }
            }
        }
    }

    /// The whole CIB as XML, as cheaply as it can be had: in file mode the
    /// file itself, read directly (`cibadmin --query` would validate the
    /// file against the schema first, which costs far more than reading
    /// it); on the live cluster, or for a compressed
    /// (`.bz2`) file or a shadow CIB, [`Cib::query`].
    ///
    /// The text is what `cibadmin` would load, except that `cibadmin` adds
    /// an empty `<status/>` when the file has none. It is not validated:
    /// callers parse it, and whatever they derive from it and apply is
    /// validated then (`crm_verify`, and `cibadmin` itself on `--patch`).
    ///
    /// In file mode `cibadmin` rewrites the file in place (truncate, then
    /// write), so a reader can catch it half written. A text that does not
    /// end with `</cib>` (and perhaps comments) is read again every 10 ms for
    /// up to [`INCOMPLETE_WAIT`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read (missing, unreadable,
    /// larger than [`MAX_CIB_FILE_BYTES`], not UTF-8),
    /// [`Error::Incomplete`] if it stays incomplete, and the errors of
    /// [`Cib::query`].
    pub fn read(&self) -> Result<String> {
        match self.backing_file() {
            Some(path) if path.extension().is_none_or(|e| e != "bz2") => read_cib_file(&path),
            _ => self.query(),
        }
    }

    /// The whole CIB as XML, status section included (`cibadmin --query`).
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] if `cibadmin` fails (e.g. code 102: no cluster
    /// connection; 105: `CIB_file` does not exist), [`Error::NotUtf8`],
    /// and the errors of [`process::run`].
    pub fn query(&self) -> Result<String> {
        let mut cmd = self.command("cibadmin");
        cmd.arg("--query");
        let output = process::run_checked(&mut cmd, None, self.timeout)?;
        into_string(&cmd, output.stdout)
    }

    /// The `<cib>` element alone, with its attributes (the version
    /// `admin_epoch`, `epoch`, `num_updates`, and the rest) and no
    /// children: `cibadmin --query --xpath /cib --no-children`. On the live
    /// cluster the CIB manager answers with a few hundred bytes, whatever
    /// the CIB's size.
    ///
    /// # Errors
    ///
    /// As [`Cib::query`].
    pub fn query_root(&self) -> Result<String> {
        self.query_shallow("/cib")
    }

    /// The elements matching `xpath`, each without its children:
    /// `cibadmin --query --no-children --xpath XPATH`. The answer is the
    /// element when one matches, an `<xpath-query>` holding them when
    /// several do. `cib_transforms::cib::STAMPS_XPATH` asks this way for
    /// the `<cib>` element and the ticket states: one request of a few
    /// hundred bytes on a live cluster, whatever the CIB's size.
    ///
    /// # Errors
    ///
    /// As [`Cib::query`] (code 105 when nothing matches).
    pub fn query_shallow(&self, xpath: &str) -> Result<String> {
        let mut cmd = self.command("cibadmin");
        cmd.args(["--query", "--no-children", "--xpath", xpath]);
        let output = process::run_checked(&mut cmd, None, self.timeout)?;
        into_string(&cmd, output.stdout)
    }

    /// The elements matching `xpath` (`cibadmin --query --xpath`), `None`
    /// when nothing matches (exit code 105).
    ///
    /// # Errors
    ///
    /// As [`Cib::query`].
    pub fn query_xpath(&self, xpath: &str) -> Result<Option<String>> {
        let mut cmd = self.command("cibadmin");
        cmd.args(["--query", "--xpath", xpath]);
        let output = process::run(&mut cmd, None, self.timeout)?;
        match output.status.code() {
            Some(0) => into_string(&cmd, output.stdout).map(Some),
            Some(CRM_EX_NOSUCH) => Ok(None),
            _ => Err(process::failed(&cmd, &output)),
        }
    }

    /// Applies a versioned patch produced by [`diff`]
    /// (`cibadmin --patch --xml-pipe`).
    ///
    /// A format-2 patch carries `<version><source admin_epoch epoch
    /// num_updates/><target .../></version>`; Pacemaker applies it only if
    /// the source version equals the current CIB's version exactly and the
    /// target version is newer than the source. Measured on pacemaker 2.1.5
    /// (file mode via `CIB_file`; nothing is written when a patch is
    /// refused — the file stays byte-for-byte identical):
    ///
    /// | situation | exit | stderr |
    /// |---|---|---|
    /// | source == current, target newer | 0 | — |
    /// | current newer than source (`epoch` or only `num_updates` bumped since), or the same patch applied twice | 103 | `Call failed: Update was older than existing configuration` |
    /// | target not newer than source (e.g. the new CIB was diffed without bumping `epoch`) | 103 | same as above |
    /// | current older than source | 1 | `Call failed: Application of update diff failed, requesting full refresh` |
    /// | versions match but content differs (a path in the patch is missing) | 1 | `Call failed: Application of update diff failed` |
    /// | patched CIB fails schema validation | 78 | the numbered CIB, then `Call failed: Update does not conform to the configured schema` |
    /// | patch file unparsable | 78 | `Couldn't parse input from F.` |
    ///
    /// Exit code 103, and exit code 1 with "Application of update diff
    /// failed" on stderr, are reported as [`Error::Stale`]: re-read the
    /// CIB, recompute the patch and retry. Note that exit 103 cannot tell a
    /// moved-on CIB from a patch whose target version does not advance; the
    /// caller must bump `epoch` in the new CIB before diffing and bound its
    /// retries. Everything else non-zero is [`Error::Failed`].
    ///
    /// In file mode `cibadmin` increments `epoch` once more after applying
    /// (a patch from epoch 3 to 4 leaves the file at epoch 5).
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Failed`], and
    /// the errors of [`process::run`].
    pub fn patch(&self, patch_xml: &str) -> Result<()> {
        self.write("--patch", patch_xml, |code, stderr| {
            code == 1 && String::from_utf8_lossy(stderr).contains("Application of update diff failed")
        })
    }

    /// Applies a guarded modify document
    /// (`cibadmin --modify --xml-pipe`), as made by
    /// `cib_transforms::modify::guarded_modify`: a `<cib admin_epoch
    /// epoch>` root, the version the changes were planned against, holding
    /// the elements to set or create.
    ///
    /// Measured on pacemaker 2.1.5, in file mode and on a live cluster:
    ///
    /// | situation | exit | stderr |
    /// |---|---|---|
    /// | the CIB's `admin_epoch` and `epoch` are the document's | 0 | — (`epoch` raised by one, `num_updates` 0) |
    /// | the CIB's `epoch` or `admin_epoch` is higher (its configuration changed since) | 103 | `Call failed: Update was older than existing configuration` |
    /// | the result fails schema validation | 78 | `Call failed: Update does not conform to the configured schema` |
    ///
    /// A refused document writes nothing (the file stays byte-for-byte
    /// identical). Exit code 103 is reported as [`Error::Stale`]: re-read
    /// the CIB, plan again and retry; everything else non-zero is
    /// [`Error::Failed`].
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Failed`], and
    /// the errors of [`process::run`].
    pub fn modify(&self, document: &str) -> Result<()> {
        self.write("--modify", document, |_, _| false)
    }

    /// `cibadmin OPERATION --xml-pipe` with `xml` on its input: exit 0 is `Ok`,
    /// 103 and the exits `also_stale` accepts (code, stderr) are
    /// [`Error::Stale`], anything else [`Error::Failed`].
    fn write(&self, operation: &str, xml: &str, also_stale: impl Fn(i32, &[u8]) -> bool) -> Result<()> {
        let mut cmd = self.command("cibadmin");
        cmd.arg(operation).arg("--xml-pipe");
        let output = process::run(&mut cmd, Some(xml.as_bytes()), self.timeout)?;
        match output.status.code() {
            Some(0) => Ok(()),
            Some(code) if code == CRM_EX_OLD || also_stale(code, &output.stderr) => Err(Error::Stale {
                stderr: bounded_text(&output.stderr, STDERR_LIMIT),
            }),
            _ => Err(process::failed(&cmd, &output)),
        }
    }
}

/// What `crm_verify -VV` says of a CIB: its exit code and its messages,
/// one per line, without the final summary and with the temporary file's
/// name and line numbers taken out, so that the messages of two CIBs can be
/// compared ([`compare_verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `crm_verify`'s exit code (0: valid, no warning).
    pub code: i32,
    /// Its messages (warnings, errors, schema complaints), normalized.
    pub messages: Vec<String>,
}

/// Runs `crm_verify -VV --xml-pipe` on a CIB and keeps what it says
/// ([`Checked`]) whatever the exit code.
///
/// # Errors
///
/// [`Error::Failed`] if `crm_verify` was killed by a signal, and the
/// errors of [`process::run`].
pub fn check(cib_xml: &str) -> Result<Checked> {
    let mut cmd = pacemaker_command("crm_verify");
    cmd.env_remove("CIB_file").env_remove("CIB_shadow");
    cmd.arg("-VV").arg("--xml-pipe");
    let output = process::run(&mut cmd, Some(cib_xml.as_bytes()), DEFAULT_TIMEOUT)?;
    let Some(code) = output.status.code() else {
        return Err(process::failed(&cmd, &output));
    };
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    let messages = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("crm_verify: "))
        .map(normalize_message)
        .collect();
    Ok(Checked { code, messages })
}

/// A message of `crm_verify` without the `Entity: line N: ` that libxml2
/// puts in front of schema complaints about a document read from standard
/// input (the line moves with every change above it).
fn normalize_message(line: &str) -> String {
    let Some(rest) = line.strip_prefix("Entity: line ") else {
        return line.to_owned();
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest[digits..].strip_prefix(": ") {
        Some(message) if digits > 0 => message.to_owned(),
        _ => line.to_owned(),
    }
}

/// What verification of a merged CIB concludes, judged against the CIB it
/// was merged into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Nothing new: the messages the site's CIB already had, if any.
    Accepted {
        /// Messages the local CIB drew before the merge too.
        already: Vec<String>,
    },
    /// The merge brings these messages in (or turns a clean CIB invalid).
    Refused {
        /// Messages of the merged CIB that the local one did not draw.
        new: Vec<String>,
    },
}

/// Judges the merge, not the site's past: the messages of `after` that
/// `before` did not draw (counted, so that one more of a kind is new) are
/// the merge's; a site that already drew warnings or errors may still
/// receive a replica that adds none.
#[must_use]
pub fn compare_verify(before: &Checked, after: &Checked) -> Judged {
    if after.code == 0 {
        return Judged::Accepted { already: Vec::new() };
    }
    let mut left: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for m in &before.messages {
        *left.entry(m.as_str()).or_default() += 1;
    }
    let mut new = Vec::new();
    for m in &after.messages {
        match left.get_mut(m.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => new.push(m.clone()),
        }
    }
    if new.is_empty() && before.code == 0 {
        new.push(format!("crm_verify exits {} on the merged CIB and 0 on the local one", after.code));
    }
    if new.is_empty() {
        Judged::Accepted { already: after.messages.clone() }
    } else {
        Judged::Refused { new }
    }
}

/// Computes a versioned patch from `old_xml` to `new_xml` with
/// `crm_diff --original F1 --new F2`.
///
/// Returns `None` when the documents are identical (exit 0), the patch XML
/// when they differ (exit 1). The patch's source version is taken from
/// `old_xml` and its target version from `new_xml`; see [`Cib::patch`].
///
/// # Errors
///
/// [`Error::Failed`] for any other outcome (65: an input is not parsable),
/// including exit 1 without a patch on stdout; [`Error::NotUtf8`],
/// [`Error::Io`] and the errors of [`process::run`].
pub fn diff(old_xml: &str, new_xml: &str) -> Result<Option<String>> {
    let old = temp_xml("old", old_xml)?;
    let new = temp_xml("new", new_xml)?;
    let mut cmd = pacemaker_command("crm_diff");
    cmd.arg("--original")
        .arg(old.path())
        .arg("--new")
        .arg(new.path());
    let output = process::run(&mut cmd, None, DEFAULT_TIMEOUT)?;
    match output.status.code() {
        Some(0) => Ok(None),
        Some(1) if !output.stdout.iter().all(u8::is_ascii_whitespace) => {
            into_string(&cmd, output.stdout).map(Some)
        }
        _ => Err(process::failed(&cmd, &output)),
    }
}

/// Runs `crm_simulate --xml-file F --simulate --quiet EXTRA_ARGS...` on a
/// copy of `cib_xml` and returns its stdout (meant for tests; e.g. pass
/// `["--output-as=xml"]` or `["--ticket-grant", "T"]`).
///
/// `CIB_file` and `CIB_shadow` are removed from the child's environment,
/// as for [`verify`]. The input file is a private temporary copy, and
/// `CIB_shadow_dir` points at a private temporary directory: otherwise
/// `crm_simulate` writes its working copy as `shadow.PID` into
/// `/var/lib/pacemaker/cib` (as root) or `~/.cib`.
///
/// `crm_simulate` 2.1.5 exits 0 even when its input cannot be parsed
/// (printing an empty cluster); run [`verify`] first when that matters.
///
/// # Errors
///
/// [`Error::Failed`] on a non-zero exit, [`Error::NotUtf8`], [`Error::Io`]
/// and the errors of [`process::run`].
pub fn simulate<S: AsRef<OsStr>>(cib_xml: &str, extra_args: &[S]) -> Result<String> {
    let file = temp_xml("simulate", cib_xml)?;
    let shadow_dir = tempfile::Builder::new()
        .prefix("cib-tools-simulate-")
        .tempdir()
        .map_err(|source| Error::Io {
            context: "creating temporary shadow directory".to_owned(),
            source,
        })?;
    let mut cmd = pacemaker_command("crm_simulate");
    cmd.env_remove("CIB_file")
        .env_remove("CIB_shadow")
        .env("CIB_shadow_dir", shadow_dir.path());
    cmd.arg("--xml-file")
        .arg(file.path())
        .arg("--simulate")
        .arg("--quiet");
    cmd.args(extra_args);
    let output = process::run_checked(&mut cmd, None, DEFAULT_TIMEOUT)?;
    into_string(&cmd, output.stdout)
}

/// A command for a Pacemaker tool ([`crate::files::program`]).
fn pacemaker_command(name: &str) -> Command {
    Command::new(crate::files::program(name))
}

/// Reads a CIB file for [`Cib::read`], waiting for an in-place rewrite to
/// finish.
fn read_cib_file(path: &Path) -> Result<String> {
    let deadline = std::time::Instant::now() + INCOMPLETE_WAIT;
    loop {
        let text = read_bounded(path)?;
        if is_complete(&text) {
            return Ok(text);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Incomplete {
                path: path.to_owned(),
                waited: INCOMPLETE_WAIT,
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a CIB file's text is complete: it ends with `</cib>`, possibly
/// followed by comments and whitespace.
fn is_complete(text: &str) -> bool {
    let mut rest = text.trim_end();
    while let Some(before) = rest.strip_suffix("-->") {
        match before.rfind("<!--") {
            Some(start) => rest = before[..start].trim_end(),
            None => return false,
        }
    }
    rest.ends_with("</cib>")
}

fn read_bounded(path: &Path) -> Result<String> {
    crate::files::read_bounded(path, MAX_CIB_FILE_BYTES as usize)
}

/// Writes `xml` to a new temporary file (removed on drop).
fn temp_xml(what: &str, xml: &str) -> Result<NamedTempFile> {
    let io_err = |source| Error::Io {
        context: format!("writing temporary {what} XML file"),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(&format!("cib-tools-{what}-"))
        .suffix(".xml")
        .tempfile()
        .map_err(io_err)?;
    file.write_all(xml.as_bytes()).map_err(io_err)?;
    file.flush().map_err(io_err)?;
    Ok(file)
}

fn into_string(cmd: &Command, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        program: process::program_name(cmd),
    })
}

#[cfg(test)]
mod tests {
    use super::is_complete;

    #[test]
    fn a_merge_is_judged_by_what_it_brings_in() {
        let checked = |code, messages: &[&str]| super::Checked { code, messages: messages.iter().map(|m| m.to_string()).collect() };
        let dep = "(get_ordering_type) \twarning: Support for 'score' in rsc_order is deprecated";
        let clean = checked(0, &[]);
        let old = checked(78, &[dep]);
        assert_eq!(super::compare_verify(&old, &clean), super::Judged::Accepted { already: vec![] });
        assert_eq!(super::compare_verify(&old, &old), super::Judged::Accepted { already: vec![dep.to_string()] });
        let twice = checked(78, &[dep, dep]);
        assert_eq!(super::compare_verify(&old, &twice), super::Judged::Refused { new: vec![dep.to_string()] });
        assert!(matches!(super::compare_verify(&clean, &checked(78, &[])), super::Judged::Refused { .. }));
        assert_eq!(super::normalize_message("Entity: line 41: element rsc_ticket: Relax-NG"), "element rsc_ticket: Relax-NG");
        for kept in ["Entity: line : x", "(unpack_config) \twarning: Blind faith: not fencing unseen nodes"] {
            assert_eq!(super::normalize_message(kept), kept);
        }
    }

    #[test]
    fn complete_cib_texts() {
        assert!(is_complete("<cib>\n</cib>\n"));
        assert!(is_complete("<cib></cib>\n<!-- kept by an admin -->\n<!-- two -->  \n"));
        assert!(!is_complete("<cib>\n  <configuration>"));
        assert!(!is_complete("<cib></ci"));
        assert!(!is_complete("<cib></cib><!-- unterminated"));
        assert!(!is_complete("-->"));
        assert!(!is_complete(""));
    }
}
