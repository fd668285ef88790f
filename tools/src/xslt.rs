//! XSLT 1.0 through `xsltproc` as a child process.
//!
//! # Trust model
//!
//! - **Stylesheets are trusted** site-local admin configuration. They can
//!   read any local file the process can read, via `document()`,
//!   `xsl:include` and `xsl:import` (`--nonet` only blocks the network;
//!   `--nowrite`/`--nomkdir` block `exsl:document` writes). A stylesheet
//!   must therefore never pass strings taken from the input document to
//!   `document()`.
//! - **Input documents are untrusted** (they come from another site). A
//!   DOCTYPE with an external entity makes libxml2 read local files even
//!   with `--nonet` (verified: `<!ENTITY x SYSTEM "file:///...">` expands
//!   to the file's content), so documents containing `<!DOCTYPE` or
//!   `<!ENTITY` are refused before `xsltproc` runs, and so are documents
//!   declaring an encoding other than UTF-8/US-ASCII (an
//!   `encoding="UTF-7"` document spells `<!DOCTYPE` as `+ADw-+ACE-DOCTYPE`,
//!   which libxml2 decodes and obeys — also verified). The same check is
//!   applied to the stylesheet file itself (not to files it includes).
//!
//! # Failure
//!
//! `xsltproc` reports some stylesheet mistakes only as warnings with exit
//! code 0 — e.g. a misspelled `xsl:valueof` yields
//! `xsltStylePreCompute: unknown xsl:valueof` on stderr and silently empty
//! values. Therefore **any output on stderr fails the transform**, as does
//! a non-zero exit. This includes `xsl:message` (always written to stderr):
//! a stylesheet that emits `xsl:message` fails, on purpose — use it
//! (with or without `terminate="yes"`) to abort a transform.
//!
//! Runaway recursion is stopped by `xsltproc` itself (depth 3000, exit 10);
//! runaway iteration (nested `xsl:for-each`) by the timeout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::process::{self, bounded_text, STDERR_LIMIT};

/// Default timeout of one transform.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the XSLT 1.0 `stylesheet_path` on `input_xml` and returns the
/// result document (as written by `xsltproc`, normally starting with an
/// `<?xml version="1.0"?>` declaration).
///
/// Runs `xsltproc --nonet --novalid --nowrite --nomkdir --nodtdattr
/// STYLESHEET -` with the input on stdin. The stylesheet file is checked
/// with [`check_untrusted_xml`] first, then read again by `xsltproc`
/// (relative `xsl:include`/`document()` paths keep working).
///
/// # Errors
///
/// - [`Error::Io`] if the stylesheet cannot be read;
/// - [`Error::Refused`] if the stylesheet or the input contains a DOCTYPE
///   or ENTITY declaration, or a non-UTF-8 encoding;
/// - [`Error::Xslt`] if `xsltproc` exits non-zero, prints anything on
///   stderr, or produces non-UTF-8 output;
/// - [`Error::Timeout`], [`Error::Spawn`] and the other errors of
///   [`process::run`].
pub fn run_xslt(stylesheet_path: &Path, input_xml: &str, timeout: Duration) -> Result<String> {
    run_xslt_shared(stylesheet_path, Arc::new(input_xml.to_owned()), timeout)
}

/// [`run_xslt`] on input shared with the thread that writes it to
/// `xsltproc` (no copy of it is made).
pub fn run_xslt_shared(stylesheet_path: &Path, input_xml: Arc<String>, timeout: Duration) -> Result<String> {
    let what = format!("stylesheet {}", stylesheet_path.display());
    let bytes = std::fs::read(stylesheet_path).map_err(|source| Error::Io {
        context: format!("cannot read {what}"),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Refused {
        what: what.clone(),
        reason: "it is not UTF-8 text".to_owned(),
    })?;
    check_untrusted_xml(&what, &text)?;
    check_untrusted_xml("input document", &input_xml)?;

    // A relative path starting with '-' would be taken for an option.
    let stylesheet_arg: PathBuf =
        if stylesheet_path.is_relative() && stylesheet_path.to_string_lossy().starts_with('-') {
            Path::new(".").join(stylesheet_path)
        } else {
            stylesheet_path.to_path_buf()
        };
    let mut cmd = Command::new("xsltproc");
    cmd.args([
        "--nonet",
        "--novalid",
        "--nowrite",
        "--nomkdir",
        "--nodtdattr",
    ])
    .arg(&stylesheet_arg)
    .arg("-");
    let output = process::run_shared(&mut cmd, Some(input_xml), timeout)?;

    let xslt_error = |message: String| Error::Xslt {
        stylesheet: stylesheet_path.to_path_buf(),
        message,
    };
    if !output.status.success() || !output.stderr.is_empty() {
        let status = match output.status.code() {
            Some(0) => "exit code 0 but output on stderr".to_owned(),
            Some(code) => format!("exit code {code}"),
            None => "terminated by a signal".to_owned(),
        };
        let stderr = bounded_text(&output.stderr, STDERR_LIMIT);
        return Err(xslt_error(if stderr.is_empty() {
            status
        } else {
            format!("{status}: {stderr}")
        }));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| xslt_error("the result is not UTF-8 (check xsl:output encoding)".to_owned()))
}

/// Refuses XML text that libxml2 could turn into a local file read:
/// a `<!DOCTYPE` or `<!ENTITY` (ASCII case-insensitive, anywhere — also in
/// comments and CDATA, to stay simple and safe), or an XML declaration
/// whose `encoding` is not UTF-8 or US-ASCII. `what` names the document in
/// the error.
///
/// # Errors
///
/// [`Error::Refused`] naming `what` and the reason.
pub fn check_untrusted_xml(what: &str, xml: &str) -> Result<()> {
    let refuse = |reason: String| {
        Err(Error::Refused {
            what: what.to_owned(),
            reason,
        })
    };
    if contains_ignore_ascii_case(xml, b"<!DOCTYPE") {
        return refuse("it contains a DOCTYPE declaration".to_owned());
    }
    if contains_ignore_ascii_case(xml, b"<!ENTITY") {
        return refuse("it contains an ENTITY declaration".to_owned());
    }
    match declared_encoding(xml) {
        Ok(None) => Ok(()),
        Ok(Some(enc))
            if ["utf-8", "utf8", "us-ascii", "ascii"]
                .iter()
                .any(|ok| enc.eq_ignore_ascii_case(ok)) =>
        {
            Ok(())
        }
        Ok(Some(enc)) => refuse(format!(
            "it declares encoding {enc:?}; only UTF-8 is accepted"
        )),
        Err(reason) => refuse(reason.to_owned()),
    }
}

/// Whether `needle` (which starts with `<!`) occurs in `haystack`, ASCII
/// case-insensitively. Only the `<!` positions are compared.
fn contains_ignore_ascii_case(haystack: &str, needle: &[u8]) -> bool {
    haystack.match_indices("<!").any(|(i, _)| {
        haystack.as_bytes()
            .get(i..i + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// The `encoding` pseudo-attribute of a leading XML declaration.
fn declared_encoding(xml: &str) -> Result<Option<&str>, &'static str> {
    let t = xml.trim_start_matches('\u{feff}').trim_start();
    let is_decl = t.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("<?xml"))
        && t[5..].starts_with(|c: char| c.is_ascii_whitespace() || c == '?');
    if !is_decl {
        return Ok(None);
    }
    let Some(end) = t.find("?>") else {
        return Err("its XML declaration is not terminated");
    };
    let decl = &t[5..end];
    let lower = decl.to_ascii_lowercase();
    let Some(pos) = lower.find("encoding") else {
        return Ok(None);
    };
    let rest = decl[pos + "encoding".len()..].trim_start();
    let Some(rest) = rest.strip_prefix('=') else {
        return Err("its XML declaration has a malformed encoding");
    };
    let rest = rest.trim_start();
    let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Err("its XML declaration has a malformed encoding");
    };
    let value = &rest[1..];
    match value.find(quote) {
        Some(close) => Ok(Some(&value[..close])),
        None => Err("its XML declaration has a malformed encoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_doctype_and_entity_any_case() {
        assert!(check_untrusted_xml("x", "<!doctype r><r/>").is_err());
        assert!(check_untrusted_xml("x", "<r><!-- <!Entity --></r>").is_err());
        assert!(check_untrusted_xml("x", "<r a='&lt;!DOCTYPE'/>").is_ok());
    }

    #[test]
    fn encodings() {
        assert!(check_untrusted_xml("x", r#"<?xml version="1.0" encoding="UTF-8"?><r/>"#).is_ok());
        assert!(check_untrusted_xml("x", "<?xml version='1.0' encoding='us-ascii'?><r/>").is_ok());
        assert!(check_untrusted_xml("x", "<?xml version=\"1.0\"?>\n<r/>").is_ok());
        assert!(check_untrusted_xml("x", "<?xml-stylesheet href='a'?><r/>").is_ok());
        let err = check_untrusted_xml("x", "<?xml version=\"1.0\" encoding=\"UTF-7\"?><r/>");
        assert!(matches!(err, Err(Error::Refused { reason, .. }) if reason.contains("UTF-7")));
        assert!(
            check_untrusted_xml("x", "\u{feff}<?xml version=\"1.0\" encoding=\"ebcdic\"?>")
                .is_err()
        );
        assert!(check_untrusted_xml("x", "<?xml version=\"1.0\" encoding=UTF-7?>").is_err());
        assert!(check_untrusted_xml("x", "<?xml version=\"1.0\" encoding=\"UTF-7").is_err());
    }
}
