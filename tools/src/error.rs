//! The crate's error enum.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout `cib-tools`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while running an external program.
///
/// Variants that wrap an [`io::Error`] expose it through
/// [`std::error::Error::source`] and do not repeat it in their `Display`
/// text; print the chain (e.g. `anyhow`'s `{:#}`) to see it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program could not be started (usually: it is not installed).
    #[error("cannot run `{program}`{}", spawn_hint(program, source))]
    Spawn {
        /// Program name as given to the command.
        program: String,
        /// Error returned by the operating system.
        #[source]
        source: io::Error,
    },

    /// The program did not finish in time; it was killed and reaped.
    #[error("`{program}` did not finish within {after:?} and was killed")]
    Timeout {
        /// Program name as given to the command.
        program: String,
        /// The timeout that expired.
        after: Duration,
    },

    /// The program ran and exited unsuccessfully.
    #[error("`{program}{}{args}` {}{}", if args.is_empty() { "" } else { " " }, exit_text(*code), stderr_text(stderr))]
    Failed {
        /// Program name as given to the command.
        program: String,
        /// The arguments, joined with spaces (arguments containing
        /// whitespace are single-quoted).
        args: String,
        /// Exit code, or `None` if the program was terminated by a signal.
        code: Option<i32>,
        /// The program's stderr, trimmed and bounded to a few KB (the head
        /// and the tail are kept; Pacemaker tools print their verdict last).
        stderr: String,
    },

    /// An I/O error outside the child process itself (temp files, pipes,
    /// reading a stylesheet).
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A program's stdout was not valid UTF-8.
    #[error("output of `{program}` is not valid UTF-8")]
    NotUtf8 {
        /// Program name as given to the command.
        program: String,
    },

    /// `cibadmin` refused a version-checked write because it does not fit
    /// the current CIB: the CIB changed since the version the write names
    /// was read, or a patch does not advance the version. Re-read the CIB,
    /// recompute the write and retry (a bounded number of times). See
    /// [`crate::cib::Cib::patch`] and [`crate::cib::Cib::modify`] for the
    /// exact exit codes.
    #[error(
        "CIB changed meanwhile or the write does not advance its version (re-read and retry): {stderr}"
    )]
    Stale {
        /// `cibadmin`'s stderr, trimmed and bounded.
        stderr: String,
    },

    /// A CIB file stayed incomplete (it does not end with `</cib>`): it is
    /// being rewritten for longer than `waited`, or it is truncated.
    #[error("the CIB file {} is incomplete (no closing </cib> after waiting {waited:?}): being written, or truncated", path.display())]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// How long the reader waited for it to be complete.
        waited: Duration,
    },

    /// An XSLT transform failed: `xsltproc` exited non-zero or printed
    /// anything on stderr (warnings and `xsl:message` included).
    #[error("XSLT transform with {} failed: {message}", stylesheet.display())]
    Xslt {
        /// The stylesheet that was run.
        stylesheet: PathBuf,
        /// `xsltproc`'s stderr (bounded) and exit code.
        message: String,
    },

    /// An XML document was refused before any program saw it (DOCTYPE or
    /// ENTITY declaration, non-UTF-8 encoding).
    #[error("refusing {what}: {reason}")]
    Refused {
        /// Which document: `stylesheet PATH` or `input document`.
        what: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Install hint for a program that could not be found.
fn spawn_hint(program: &str, source: &io::Error) -> &'static str {
    if source.kind() != io::ErrorKind::NotFound {
        return "";
    }
    let name = program.rsplit('/').next().unwrap_or(program);
    if name == "cibadmin" || name.starts_with("crm_") {
        " (not found: is pacemaker-cli-utils installed?)"
    } else if name == "xsltproc" {
        " (not found: is xsltproc installed?)"
    } else {
        " (not found)"
    }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with code {c}"),
        None => "was terminated by a signal".to_owned(),
    }
}

fn stderr_text(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}
