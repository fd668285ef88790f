//! `run_xslt` through the real `xsltproc`.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cib_tools::xslt::{run_xslt, DEFAULT_TIMEOUT};
use cib_tools::Error;

const INPUT: &str = r#"<cib epoch="3" num_updates="0" admin_epoch="0">
  <configuration>
    <resources>
      <primitive id="d1" class="ocf" provider="pacemaker" type="Dummy" description="site-a"/>
    </resources>
  </configuration>
</cib>"#;

const IDENTITY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="@*|node()">
    <xsl:copy><xsl:apply-templates select="@*|node()"/></xsl:copy>
  </xsl:template>
</xsl:stylesheet>
"#;

fn stylesheet(dir: &Path, name: &str, body: &str) -> PathBuf {
    common::require("xsltproc", "xsltproc");
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write stylesheet");
    path
}

/// Identity plus overriding templates.
fn with_identity(overrides: &str) -> String {
    IDENTITY.replace(
        "</xsl:stylesheet>",
        &format!("{overrides}\n</xsl:stylesheet>"),
    )
}

fn xslt_message(err: Error) -> String {
    match err {
        Error::Xslt { message, .. } => message,
        other => panic!("expected Xslt, got {other:?}"),
    }
}

#[test]
fn identity_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(dir.path(), "id.xsl", IDENTITY);
    let out = run_xslt(&xsl, INPUT, DEFAULT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let body = out
        .strip_prefix("<?xml version=\"1.0\"?>\n")
        .unwrap_or(&out);
    assert_eq!(body.trim_end(), INPUT);
}

#[test]
fn override_changes_one_attribute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(
        dir.path(),
        "override.xsl",
        &with_identity(
            r#"<xsl:template match="primitive[@id='d1']/@description">
    <xsl:attribute name="description">site-b</xsl:attribute>
  </xsl:template>"#,
        ),
    );
    let out = run_xslt(&xsl, INPUT, DEFAULT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let body = out
        .strip_prefix("<?xml version=\"1.0\"?>\n")
        .unwrap_or(&out);
    assert_eq!(body.trim_end(), INPUT.replace("site-a", "site-b"));
}

#[test]
fn misspelled_instruction_fails_despite_exit_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(
        dir.path(),
        "typo.xsl",
        &with_identity(
            r#"<xsl:template match="@description"><xsl:attribute name="description"><xsl:valueof select="'x'"/></xsl:attribute></xsl:template>"#,
        ),
    );
    let message = xslt_message(run_xslt(&xsl, INPUT, DEFAULT_TIMEOUT).unwrap_err());
    assert!(
        message.contains("exit code 0") && message.contains("valueof"),
        "{message}"
    );
}

#[test]
fn xsl_message_fails_the_transform() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(
        dir.path(),
        "msg.xsl",
        &with_identity(
            r#"<xsl:template match="/"><xsl:message>no ticket here</xsl:message><xsl:apply-templates/></xsl:template>"#,
        ),
    );
    let message = xslt_message(run_xslt(&xsl, INPUT, DEFAULT_TIMEOUT).unwrap_err());
    assert!(message.contains("no ticket here"), "{message}");
}

#[test]
fn stylesheet_with_doctype_is_refused_before_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = IDENTITY.replace(
        "<xsl:stylesheet",
        "<!DOCTYPE xsl:stylesheet [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<xsl:stylesheet",
    );
    let xsl = stylesheet(dir.path(), "evil.xsl", &body);
    match run_xslt(&xsl, INPUT, DEFAULT_TIMEOUT).unwrap_err() {
        Error::Refused { what, reason } => {
            assert!(what.contains("evil.xsl"), "{what}");
            assert!(reason.contains("DOCTYPE"), "{reason}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn input_with_doctype_or_entity_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(dir.path(), "id.xsl", IDENTITY);
    let evil = "<?xml version=\"1.0\"?>\n<!doctype r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<r>&x;</r>";
    match run_xslt(&xsl, evil, DEFAULT_TIMEOUT).unwrap_err() {
        Error::Refused { what, .. } => assert_eq!(what, "input document"),
        other => panic!("expected Refused, got {other:?}"),
    }
    let err = run_xslt(&xsl, "<r><!ENTITY x 'y'></r>", DEFAULT_TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
}

#[test]
fn input_in_utf7_is_refused() {
    // The UTF-7 spelling of <!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]>,
    // which libxml2 would decode and obey.
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(dir.path(), "id.xsl", IDENTITY);
    let evil = "<?xml version=\"1.0\" encoding=\"UTF-7\"?>\n+ADw-+ACE-DOCTYPE r +AFs-+ADw-+ACE-ENTITY x SYSTEM +ACI-file:///etc/hostname+ACI-+AD4-+AF0-+AD4-\n<r>&x;</r>";
    match run_xslt(&xsl, evil, DEFAULT_TIMEOUT).unwrap_err() {
        Error::Refused { reason, .. } => assert!(reason.contains("UTF-7"), "{reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[test]
fn infinite_recursion_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(
        dir.path(),
        "rec.xsl",
        r#"<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><xsl:call-template name="r"/></xsl:template>
  <xsl:template name="r"><x/><xsl:call-template name="r"/></xsl:template>
</xsl:stylesheet>"#,
    );
    let start = Instant::now();
    let message = xslt_message(run_xslt(&xsl, INPUT, Duration::from_secs(20)).unwrap_err());
    assert!(message.contains("recursion"), "{message}");
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn runaway_iteration_times_out() {
    // No recursion, so xsltproc's depth limit does not apply: ~10^14 iterations.
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(
        dir.path(),
        "loop.xsl",
        r#"<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/">
    <xsl:for-each select="//node()|//@*"><xsl:for-each select="//node()|//@*"><xsl:for-each select="//node()|//@*">
    <xsl:for-each select="//node()|//@*"><xsl:for-each select="//node()|//@*"><xsl:for-each select="//node()|//@*">
    <xsl:for-each select="//node()|//@*"><xsl:for-each select="//node()|//@*"><xsl:for-each select="//node()|//@*">
      <xsl:if test="false()"><x/></xsl:if>
    </xsl:for-each></xsl:for-each></xsl:for-each>
    </xsl:for-each></xsl:for-each></xsl:for-each>
    </xsl:for-each></xsl:for-each></xsl:for-each>
  </xsl:template>
</xsl:stylesheet>"#,
    );
    let start = Instant::now();
    let err = run_xslt(&xsl, INPUT, Duration::from_millis(500)).unwrap_err();
    assert!(
        matches!(err, Error::Timeout { ref program, .. } if program == "xsltproc"),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn unparsable_input_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(dir.path(), "id.xsl", IDENTITY);
    let message = xslt_message(run_xslt(&xsl, "<r", DEFAULT_TIMEOUT).unwrap_err());
    assert!(message.contains("exit code 6"), "{message}");
}

#[test]
fn missing_stylesheet_is_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = run_xslt(&dir.path().join("nope.xsl"), INPUT, DEFAULT_TIMEOUT).unwrap_err();
    assert!(
        matches!(err, Error::Io { ref context, .. } if context.contains("nope.xsl")),
        "{err:?}"
    );
}

#[test]
fn network_document_is_blocked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xsl = stylesheet(
        dir.path(),
        "net.xsl",
        r#"<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><out><xsl:copy-of select="document('http://192.0.2.1/x.xml')"/></out></xsl:template>
</xsl:stylesheet>"#,
    );
    let start = Instant::now();
    let message = xslt_message(run_xslt(&xsl, INPUT, DEFAULT_TIMEOUT).unwrap_err());
    assert!(message.contains("network"), "{message}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn writing_files_is_blocked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("written.xml");
    let xsl = stylesheet(
        dir.path(),
        "write.xsl",
        &format!(
            r#"<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:exsl="http://exslt.org/common" extension-element-prefixes="exsl">
  <xsl:template match="/"><exsl:document href="{}"><x/></exsl:document><out/></xsl:template>
</xsl:stylesheet>"#,
            target.display()
        ),
    );
    let err = run_xslt(&xsl, INPUT, DEFAULT_TIMEOUT).unwrap_err();
    assert!(matches!(err, Error::Xslt { .. }), "{err:?}");
    assert!(!target.exists());
}
