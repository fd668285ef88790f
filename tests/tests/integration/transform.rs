//! `cib-subscriber transform`: XSLT output equals `xsltproc`'s on the same
//! configuration (canonical XML), and `--rules`/`--xslt` steps run in
//! command-line order.

use std::path::Path;
use std::process::Command;

use cib_subscriber::pipeline::{
    load_and_transform_file, load_steps, transform_file_to_document, transformed_document, Step, StepArg,
};
use cib_transforms::merge::check_scope;
use cib_transforms::xml;

use crate::support::{bin, canonical_config, fixture, run, two_sites, xsltproc, Site};

/// `cib-subscriber transform --from SCOPE STEPS...`, stdout.
fn transform(site: &Site, scope: &Path, steps: &[(&str, &Path)]) -> String {
    let mut args = vec!["transform".as_ref(), "--from".as_ref(), scope.as_os_str()];
    for (flag, path) in steps {
        args.push(flag.as_ref());
        args.push(path.as_os_str());
    }
    let r = site.subscriber(args);
    r.expect_ok();
    r.stdout
}

/// The scope's `<configuration>` as a plain document, without the
/// publication metadata: what a stylesheet is given.
fn plain_config(site: &Site, scope: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(scope).unwrap();
    let mut doc = xml::parse(&text).unwrap();
    doc.attrs.retain(|(k, _)| !k.starts_with("replicator-"));
    doc.children.retain(|c| c.name != "replicator-left-out");
    site.write("config.xml", doc.to_xml())
}

fn assert_same_as_xsltproc(stylesheet: &Path, must_contain: &str) {
    let (_a, scope, b) = two_sites();
    let ours = transform(&b, &scope, &[("--xslt", stylesheet)]);
    let config = plain_config(&b, &scope);
    let reference = run({
        let mut c = Command::new(xsltproc());
        c.arg(stylesheet).arg(&config);
        c
    });
    reference.expect_ok();
    assert!(reference.stderr.is_empty(), "xsltproc warned\n{reference}");

    let ours_c = canonical_config(&ours);
    let theirs_c = canonical_config(&reference.stdout);
    assert_eq!(
        ours_c,
        theirs_c,
        "cib-subscriber transform differs from xsltproc for {}",
        stylesheet.display()
    );
    // The stylesheet did something, so the comparison means something.
    assert!(
        ours_c.contains(must_contain),
        "{must_contain:?} not in the output:\n{ours_c}"
    );
    assert_ne!(
        ours_c,
        canonical_config(&std::fs::read_to_string(&scope).unwrap())
    );
    // And the output names the transformed digest, not the publisher's.
    let doc = xml::parse(&ours).unwrap();
    assert!(
        doc.attr("replicator-transformed-digest").is_some()
            && doc.attr("replicator-digest").is_none()
    );
}

#[test]
fn identity_with_an_overridden_nvpair_equals_xsltproc() {
    assert_same_as_xsltproc(&fixture("override-ip.xsl"), r#"value="10.0.0.7""#);
}

#[test]
fn meta_attributes_added_to_every_primitive_equals_xsltproc() {
    let stylesheet = fixture("add-meta.xsl");
    assert_same_as_xsltproc(&stylesheet, r#"id="web-ip-site-meta-replicated-from""#);
    assert_same_as_xsltproc(&stylesheet, r#"id="backup-site-meta""#);
}

#[test]
fn rules_and_stylesheets_run_in_command_line_order() {
    let (_a, scope, b) = two_sites();
    // set-ip: web-ip's ip := 10.0.0.1; override-ip.xsl: every ip := 10.0.0.7;
    // remap: 10.0.0.0/24 -> 10.5.5.0/24, host part kept.
    let set = fixture("set-ip.toml");
    let xsl = fixture("override-ip.xsl");
    let remap = fixture("remap-10-0-0.toml");
    let ip_after = |steps: &[(&str, &Path)]| -> String {
        let out = transform(&b, &scope, steps);
        let doc = xml::parse(&out).unwrap();
        doc.find_id("web-ip-ip")
            .and_then(|e| e.attr("value"))
            .unwrap_or_else(|| panic!("no web-ip-ip in\n{out}"))
            .to_owned()
    };
    let cases: [(&[(&str, &Path)], &str); 4] = [
        (
            &[("--rules", &set), ("--xslt", &xsl), ("--rules", &remap)],
            "10.5.5.7",
        ),
        (
            &[("--rules", &remap), ("--xslt", &xsl), ("--rules", &set)],
            "10.0.0.1",
        ),
        (
            &[("--xslt", &xsl), ("--rules", &set), ("--rules", &remap)],
            "10.5.5.1",
        ),
        (
            &[("--rules", &set), ("--rules", &remap), ("--xslt", &xsl)],
            "10.0.0.7",
        ),
    ];
    for (steps, expected) in cases {
        let order: Vec<String> = steps
            .iter()
            .map(|(f, p)| format!("{f} {}", p.file_name().unwrap().to_string_lossy()))
            .collect();
        assert_eq!(ip_after(steps), expected, "steps {order:?}");
    }
}

#[test]
fn replicate_now_with_a_stylesheet_verifies_and_is_idempotent() {
    let (_a, scope, b) = two_sites();
    let stylesheet = fixture("add-meta.xsl");
    let args = [
        "replicate-now".as_ref(),
        "--ticket".as_ref(),
        crate::support::TICKET.as_ref(),
        "--from".as_ref(),
        scope.as_os_str(),
        "--xslt".as_ref(),
        stylesheet.as_os_str(),
    ];
    b.subscriber(args).expect_ok().expect_stdout(&["added: 5"]);
    assert!(
        b.element("web-fs-site-meta-replicated-from").is_some(),
        "the stylesheet's nvpair is missing at B"
    );
    b.expect_verify_clean();
    let applied = b.bytes();
    b.subscriber(args)
        .expect_ok()
        .expect_stdout(&["up to date"]);
    assert!(
        b.bytes() == applied,
        "a second replicate-now with the same stylesheet changed the CIB"
    );
}

/// What `transform` did before the compact tree: the owned scope, checked,
/// written as the transformed document; or the error, with its causes.
fn owned_transform(scope: &Path, steps: &[Step]) -> Result<(String, Vec<String>), String> {
    let (s, log) = load_and_transform_file(scope, None, steps).map_err(|e| format!("{e:#}"))?;
    check_scope(&s).map_err(|e| format!("{e:#}"))?;
    Ok((transformed_document(&s), log))
}

#[test]
fn the_compact_transform_equals_the_owned_one() {
    let (_a, scope, b) = two_sites();
    let xsl = fixture("override-ip.xsl");
    let meta = fixture("add-meta.xsl");
    let remap = fixture("remap-10-0-0.toml");
    // Site B's address and path rules (its `set` rule needs the owned tree),
    // and a regex over values.
    let rules = b.write(
        "values.toml",
        "[[rule]]\ntype = \"ip\"\nfrom = \"192.168.1.0/24\"\nto = \"10.2.1.0/24\"\n\n\
         [[rule]]\ntype = \"path\"\nfrom = \"/srv/site-a\"\nto = \"/srv/site-b\"\n\n\
         [[rule]]\ntype = \"regex\"\npattern = \"^([0-9]+)s$\"\nreplace = \"${1}000ms\"\n",
    );
    let cases: Vec<Vec<StepArg>> = vec![
        vec![],
        vec![StepArg::Xslt(xsl.clone())],
        vec![StepArg::Rules(rules.clone())],
        vec![StepArg::Rules(rules.clone()), StepArg::Xslt(meta.clone()), StepArg::Rules(remap.clone())],
        vec![StepArg::Xslt(xsl.clone()), StepArg::Rules(remap.clone()), StepArg::Xslt(meta.clone())],
        // Each refused after the stylesheet ran: an unbound resource, a
        // duplicate id, a misspelled instruction (a libxslt warning).
        vec![StepArg::Xslt(fixture("add-unbound.xsl"))],
        vec![StepArg::Rules(remap.clone()), StepArg::Xslt(fixture("duplicate-backup.xsl"))],
        vec![StepArg::Xslt(fixture("valueof-typo.xsl"))],
    ];
    let mut compared_ok = 0;
    for case in cases {
        let names: Vec<String> = case
            .iter()
            .map(|s| match s {
                StepArg::Rules(p) | StepArg::Xslt(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
            })
            .collect();
        let steps = load_steps(case.into_iter().enumerate().collect()).unwrap();
        let compact = transform_file_to_document(&scope, &steps)
            .map(|r| r.expect("these steps run on the compact tree"))
            .map_err(|e| format!("{e:#}"));
        assert_eq!(compact, owned_transform(&scope, &steps), "steps {names:?}");
        compared_ok += usize::from(compact.is_ok());
    }
    assert_eq!(compared_ok, 5, "the successful cases did succeed");

    // Rules that need the owned tree are left to it.
    let set = load_steps(vec![(0, StepArg::Rules(fixture("set-ip.toml")))]).unwrap();
    assert!(transform_file_to_document(&scope, &set).unwrap().is_none());
}

#[test]
fn a_first_stylesheet_gets_the_verified_content_whatever_the_layout() {
    let (_a, scope, b) = two_sites();
    let steps = load_steps(vec![(0, StepArg::Xslt(fixture("override-ip.xsl")))]).unwrap();
    let expected = transform_file_to_document(&scope, &steps).unwrap().expect("compact");
    let text = std::fs::read_to_string(&scope).unwrap();

    // The same content laid out otherwise (blank lines between elements):
    // what xsltproc was started on is not the canonical content, so the
    // stylesheet runs again on that — same result as from the publisher's
    // layout, and as the owned path.
    let relaid = b.write("relaid.xml", text.replace('\n', "\n\n"));
    let got = transform_file_to_document(&relaid, &steps).unwrap().expect("compact");
    assert_eq!(got, expected);
    assert_eq!(owned_transform(&relaid, &steps), Ok(got));

    // Content changed under the same digest: refused, whatever the
    // stylesheet made of it meanwhile.
    assert!(text.contains("192.168.1.10"));
    let forged = b.write("forged.xml", text.replacen("192.168.1.10", "192.168.1.99", 1));
    let err = format!("{:#}", transform_file_to_document(&forged, &steps).unwrap_err());
    assert!(err.contains("scope digest mismatch"), "{err}");
}

#[test]
fn with_a_stylesheet_the_subscriber_takes_small_pages() {
    let thp = |status: &str| status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(|v| v.trim().to_owned());
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    if thp(&own).as_deref() != Some("1") {
        eprintln!("skipped: this kernel has no transparent huge pages to turn off");
        return;
    }
    // xsltproc inherits the process's huge-page setting: a stand-in first
    // on PATH records it, then runs the real one.
    let (_a, scope, b) = two_sites();
    let dir = b.path("wrapped");
    std::fs::create_dir_all(&dir).unwrap();
    let record = b.path("thp.txt");
    let wrapper = dir.join("xsltproc");
    let script = format!(
        "#!/bin/sh\ngrep THP_enabled /proc/$$/status > '{}'\nexec '{}' \"$@\"\n",
        record.display(),
        xsltproc().display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path))).unwrap();
    let mut cmd = b.command(bin("cib-subscriber"));
    cmd.env("PATH", &path).arg("transform").arg("--from").arg(&scope).arg("--xslt").arg(fixture("override-ip.xsl"));
    run(cmd).expect_ok();
    let seen = std::fs::read_to_string(&record).expect("the stand-in ran");
    assert_eq!(thp(&seen).as_deref(), Some("0"), "{seen}");
}
