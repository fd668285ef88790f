//! Pacemaker operations against CIB files (never the live cluster, and
//! never through `std::env::set_var`: every child gets `CIB_file` itself).

mod common;

use cib_tools::cib::{self, Cib, CRM_EX_OLD};
use cib_tools::Error;
use common::{make_cib, modified_copy, read};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn query_reads_the_given_file() {
    let dir = tmp();
    let path = make_cib(dir.path(), "cib.xml");
    let xml = Cib::file(&path).query().unwrap_or_else(|e| panic!("{e}"));
    assert!(xml.contains("<cib "), "{xml}");
    assert!(xml.contains(r#"<primitive id="d1""#), "{xml}");
    assert!(xml.contains("<status"), "status section missing: {xml}");
    assert!(xml.contains(r#"name="stonith-enabled" value="false""#));
}

#[test]
fn query_root_is_the_cib_element_without_children() {
    let dir = tmp();
    let path = make_cib(dir.path(), "cib.xml");
    let xml = Cib::file(&path).query_root().unwrap_or_else(|e| panic!("{e}"));
    assert!(xml.trim_start().starts_with("<cib ") && xml.contains("epoch=") && xml.contains("num_updates="), "{xml}");
    assert!(!xml.contains("<configuration") && !xml.contains("<primitive"), "children: {xml}");
}

#[test]
fn query_shallow_answers_the_cib_element_and_each_ticket_state_alone() {
    let dir = tmp();
    let path = make_cib(dir.path(), "cib.xml");
    let xpath = "/cib|/cib/status/tickets/ticket_state";
    let cib = Cib::file(&path);
    let alone = cib.query_shallow(xpath).unwrap_or_else(|e| panic!("{e}"));
    assert!(alone.trim_start().starts_with("<cib ") && !alone.contains("<configuration"), "{alone}");
    let granted = std::process::Command::new("crm_ticket")
        .args(["--ticket", "geo", "--grant", "--force"])
        .env("CIB_file", &path)
        .status()
        .expect("crm_ticket");
    assert!(granted.success());
    let both = cib.query_shallow(xpath).unwrap_or_else(|e| panic!("{e}"));
    assert!(both.trim_start().starts_with("<xpath-query"), "{both}");
    assert!(both.contains("<cib ") && both.contains(r#"<ticket_state id="geo" granted="true""#), "{both}");
    assert!(!both.contains("<configuration") && !both.contains("<primitive"), "children: {both}");
}

#[test]
fn query_of_missing_file_fails_with_stderr() {
    let dir = tmp();
    let err = Cib::file(dir.path().join("missing.xml"))
        .query()
        .unwrap_err();
    match err {
        Error::Failed {
            program,
            code,
            stderr,
            ..
        } => {
            assert!(program.ends_with("cibadmin"));
            assert_eq!(code, Some(105));
            assert!(stderr.contains("Could not connect to the CIB"), "{stderr}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn read_is_the_file_itself_and_matches_query() {
    let dir = tmp();
    let path = make_cib(dir.path(), "cib.xml");
    let cib = Cib::file(&path);
    let text = cib.read().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text, read(&path), "read() must return the file's bytes");
    // Same document as cibadmin loads (cibadmin reformats it, so compare
    // without whitespace between tags).
    let queried = cib.query().unwrap_or_else(|e| panic!("{e}"));
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(squash(&text), squash(&queried));
    assert_eq!(cib.backing_file().as_deref(), Some(path.as_path()));
    assert_eq!(Cib::live().backing_file(), None);
}

#[test]
fn read_of_missing_file_names_it() {
    let dir = tmp();
    let missing = dir.path().join("missing.xml");
    let err = Cib::file(&missing).read().unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
}

#[test]
fn read_waits_for_a_file_being_rewritten() {
    let dir = tmp();
    let path = make_cib(dir.path(), "cib.xml");
    let full = read(&path);
    // Half written, as cibadmin leaves it between truncating and closing.
    std::fs::write(&path, &full[..full.len() / 2]).expect("truncate");
    let writer = {
        let (path, full) = (path.clone(), full.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(150));
            std::fs::write(&path, full).expect("complete");
        })
    };
    let text = Cib::file(&path).read().unwrap_or_else(|e| panic!("{e}"));
    writer.join().expect("writer");
    assert_eq!(text, full);
}

#[test]
fn read_of_a_truncated_file_fails_after_waiting() {
    let dir = tmp();
    let path = make_cib(dir.path(), "cib.xml");
    let full = read(&path);
    std::fs::write(&path, &full[..full.len() - 10]).expect("truncate");
    let started = std::time::Instant::now();
    let err = Cib::file(&path).read().unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err:?}");
    assert!(started.elapsed() >= cib::INCOMPLETE_WAIT);
    assert!(err.to_string().contains("incomplete"), "{err}");
}

#[test]
fn file_path_accessor() {
    assert_eq!(
        Cib::file("/x.xml").file_path(),
        Some(std::path::Path::new("/x.xml"))
    );
    assert_eq!(Cib::from_env().file_path(), None);
    assert_eq!(Cib::live().file_path(), None);
}

#[test]
fn check_accepts_valid_cib() {
    let dir = tmp();
    let xml = read(&make_cib(dir.path(), "cib.xml"));
    let c = cib::check(&xml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.code, 0, "{:?}", c.messages);
}

#[test]
fn check_reports_dangling_reference() {
    let dir = tmp();
    let xml = read(&make_cib(dir.path(), "cib.xml")).replace(
        "<constraints/>",
        r#"<constraints><rsc_location id="loc1" rsc="nosuch" node="n1" score="100"/></constraints>"#,
    );
    assert!(xml.contains("nosuch"));
    let c = cib::check(&xml).unwrap();
    assert_ne!(c.code, 0);
    assert!(c.messages.iter().any(|m| m.contains("\"nosuch\"")), "{:?}", c.messages);
}

#[test]
fn check_reports_stonith_complaint() {
    let dir = tmp();
    let xml = read(&make_cib(dir.path(), "cib.xml")).replace(r#"value="false""#, r#"value="true""#);
    let c = cib::check(&xml).unwrap();
    assert_ne!(c.code, 0);
    assert!(c.messages.iter().any(|m| m.contains("STONITH")), "{:?}", c.messages);
}

#[test]
fn check_reports_unparsable_xml() {
    let c = cib::check("<cib").unwrap();
    assert_ne!(c.code, 0);
    assert!(!c.messages.is_empty());
}

#[test]
fn diff_identical_is_none() {
    let dir = tmp();
    let xml = read(&make_cib(dir.path(), "cib.xml"));
    assert_eq!(
        cib::diff(&xml, &xml).unwrap_or_else(|e| panic!("{e}")),
        None
    );
}

#[test]
fn diff_different_is_a_versioned_patch() {
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let b = modified_copy(
        &a,
        &dir.path().join("b.xml"),
        r#"<primitive id="d1" description="changed"/>"#,
    );
    let patch = patch_between(&read(&a), &read(&b));
    assert!(patch.contains(r#"<diff format="2""#), "{patch}");
    assert!(patch.contains("<source "), "{patch}");
    assert!(patch.contains(r#"value="changed""#), "{patch}");
}

#[test]
fn diff_of_garbage_fails() {
    let err = cib::diff("<cib/>", "not xml").unwrap_err();
    assert!(
        matches!(err, Error::Failed { code: Some(65), .. }),
        "{err:?}"
    );
}

#[test]
fn patch_applies_to_the_file() {
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let b = modified_copy(
        &a,
        &dir.path().join("b.xml"),
        r#"<primitive id="d1" description="changed"/>"#,
    );
    let patch = patch_between(&read(&a), &read(&b));

    let target = dir.path().join("target.xml");
    std::fs::copy(&a, &target).expect("copy");
    Cib::file(&target)
        .patch(&patch)
        .unwrap_or_else(|e| panic!("{e}"));
    let after = read(&target);
    assert!(after.contains(r#"description="changed""#), "{after}");
    let queried = Cib::file(&target).query().unwrap_or_else(|e| panic!("{e}"));
    assert!(queried.contains(r#"description="changed""#));
}

/// The `crm_diff` patch from `old` to `new` (which must differ).
fn patch_between(old: &str, new: &str) -> String {
    cib::diff(old, new)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("a patch")
}

fn assert_stale_and_untouched(target: &std::path::Path, patch: &str) -> String {
    let before = std::fs::read(target).expect("read");
    let err = Cib::file(target).patch(patch).unwrap_err();
    assert_eq!(
        std::fs::read(target).expect("read"),
        before,
        "refused patch changed the file"
    );
    match err {
        Error::Stale { stderr } => stderr,
        other => panic!("expected Stale, got {other:?}"),
    }
}

#[test]
fn stale_patch_when_cib_changed_meanwhile() {
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let b = modified_copy(
        &a,
        &dir.path().join("b.xml"),
        r#"<primitive id="d1" description="changed"/>"#,
    );
    let patch = patch_between(&read(&a), &read(&b));
    // Someone else changed the CIB after we read `a`: epoch bumped.
    let moved = modified_copy(
        &a,
        &dir.path().join("moved.xml"),
        r#"<primitive id="d1" description="other"/>"#,
    );
    let stderr = assert_stale_and_untouched(&moved, &patch);
    assert!(
        stderr.contains("Update was older than existing configuration"),
        "{stderr}"
    );
}

#[test]
fn stale_patch_when_only_num_updates_changed() {
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let b = modified_copy(
        &a,
        &dir.path().join("b.xml"),
        r#"<primitive id="d1" description="changed"/>"#,
    );
    let patch = patch_between(&read(&a), &read(&b));
    let moved = dir.path().join("moved.xml");
    std::fs::copy(&a, &moved).expect("copy");
    let mut c = common::pcmk("cibadmin");
    c.args([
        "--create",
        "-o",
        "status",
        "--xml-text",
        r#"<node_state id="1" uname="n1"/>"#,
    ]);
    common::run_on(&moved, c);
    assert!(read(&moved).contains(r#"num_updates="1""#));
    assert_stale_and_untouched(&moved, &patch);
}

#[test]
fn reapplying_a_patch_is_stale() {
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let b = modified_copy(
        &a,
        &dir.path().join("b.xml"),
        r#"<primitive id="d1" description="changed"/>"#,
    );
    let patch = patch_between(&read(&a), &read(&b));
    let target = dir.path().join("target.xml");
    std::fs::copy(&a, &target).expect("copy");
    Cib::file(&target)
        .patch(&patch)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_stale_and_untouched(&target, &patch);
}

#[test]
fn patch_not_advancing_the_version_is_refused_as_stale() {
    // The "new" CIB was edited without bumping epoch: target == source.
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let a_xml = read(&a);
    let new_xml = a_xml.replace(
        r#"type="Dummy"/>"#,
        r#"type="Dummy" description="same-version"/>"#,
    );
    assert_ne!(a_xml, new_xml);
    let patch = patch_between(&a_xml, &new_xml);
    let target = dir.path().join("target.xml");
    std::fs::copy(&a, &target).expect("copy");
    let stderr = assert_stale_and_untouched(&target, &patch);
    assert!(stderr.contains("older"), "{stderr}");
}

#[test]
fn patch_whose_source_is_newer_than_the_cib_is_stale() {
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let b = modified_copy(
        &a,
        &dir.path().join("b.xml"),
        r#"<primitive id="d1" description="one"/>"#,
    );
    let c = modified_copy(
        &b,
        &dir.path().join("c.xml"),
        r#"<primitive id="d1" description="two"/>"#,
    );
    let patch = patch_between(&read(&b), &read(&c));
    let target = dir.path().join("target.xml");
    std::fs::copy(&a, &target).expect("copy");
    let stderr = assert_stale_and_untouched(&target, &patch);
    assert!(
        stderr.contains("Application of update diff failed"),
        "{stderr}"
    );
}

#[test]
fn patch_with_same_version_but_other_content_is_stale() {
    let dir = tmp();
    let a = make_cib(dir.path(), "a.xml");
    let b = modified_copy(
        &a,
        &dir.path().join("b.xml"),
        r#"<primitive id="d1" description="changed"/>"#,
    );
    let patch = patch_between(&read(&a), &read(&b));
    // Same version as `a`, but the primitive was renamed behind our back.
    let target = dir.path().join("target.xml");
    std::fs::write(&target, read(&a).replace(r#"id="d1""#, r#"id="d9""#)).expect("write");
    assert_stale_and_untouched(&target, &patch);
}

#[test]
fn garbage_patch_is_failed_not_stale() {
    let dir = tmp();
    let target = make_cib(dir.path(), "a.xml");
    let before = read(&target);
    let err = Cib::file(&target).patch("not a patch").unwrap_err();
    assert!(
        matches!(err, Error::Failed { code: Some(78), .. }),
        "{err:?}"
    );
    assert_eq!(read(&target), before);
}

#[test]
fn stale_code_constant() {
    assert_eq!(CRM_EX_OLD, 103);
}

#[test]
fn simulate_runs_on_a_copy() {
    let dir = tmp();
    let path = make_cib(dir.path(), "cib.xml");
    let xml = read(&path);
    let out = cib::simulate(&xml, &["--output-as=xml"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("<pacemaker-result"), "{out}");
    assert!(out.contains(r#"id="d1""#), "{out}");
    assert_eq!(read(&path), xml);
    let granted = cib::simulate(&xml, &["--ticket-grant", "tk"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(granted.trim().is_empty(), "--quiet text output: {granted}");
    let err = cib::simulate(&xml, &["--no-such-option"]).unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
}
