//! `cib-subscriber transform`: XSLT output equals `xsltproc`'s on the same
//! configuration (canonical XML), and `--rules`/`--xslt` steps run in
//! command-line order.

use std::path::Path;
use std::process::Command;

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

#[test]
fn a_stylesheet_gets_the_verified_content_whatever_the_layout() {
    let (_a, scope, b) = two_sites();
    let xsl = fixture("override-ip.xsl");
    let transform = |from: &Path| {
        let mut cmd = b.command(bin("cib-subscriber"));
        cmd.arg("transform").arg("--from").arg(from).arg("--xslt").arg(&xsl);
        run(cmd)
    };
    let expected = transform(&scope).expect_ok().stdout.clone();
    let text = std::fs::read_to_string(&scope).unwrap();

    // The same content laid out otherwise (blank lines between elements).
    let relaid = b.write("relaid.xml", text.replace('\n', "\n\n"));
    assert_eq!(transform(&relaid).expect_ok().stdout, expected);

    // Content changed under the same digest: refused before the stylesheet.
    assert!(text.contains("192.168.1.10"));
    let forged = b.write("forged.xml", text.replacen("192.168.1.10", "192.168.1.99", 1));
    transform(&forged).expect_code(2).expect_stderr(&["scope digest mismatch"]);
}

#[test]
fn a_rule_that_matches_nothing_is_reported_and_refused_under_strict() {
    let (_a, scope, b) = two_sites();
    // Rule #2 names a network no address of the scope is in; its table
    // starts on line 8.
    let rules = b.write(
        "rules.toml",
        "# site B\n[[rule]]\ntype = \"set\"\nresource = \"web-ip\"\nname = \"ip\"\nvalue = \"10.0.0.1\"\n\n[[rule]]\ntype = \"ip\"\nfrom = \"172.31.0.0/16\"\nto = \"10.31.0.0/16\"\n",
    );
    let idle = format!("rule #2 (ip) {}:8 matched nothing", rules.display());
    let transform = |strict: bool| {
        let mut cmd = b.command(bin("cib-subscriber"));
        cmd.arg("transform").arg("--from").arg(&scope).arg("--rules").arg(&rules);
        if strict {
            cmd.arg("--strict");
        }
        run(cmd)
    };
    let r = transform(false);
    r.expect_ok().expect_stderr(&[&idle, "1 value changed"]);
    assert_eq!(r.stderr.matches("matched nothing").count(), 1, "{r}");
    assert!(r.stdout.contains("10.0.0.1"), "{r}");
    let r = transform(true);
    r.expect_code(2).expect_stderr(&[&idle, "strict rules"]);
    assert!(r.stdout.is_empty(), "nothing is printed under --strict:\n{r}");

    // replicate-now --strict applies nothing.
    let before = b.bytes();
    let mut cmd = b.command(bin("cib-subscriber"));
    cmd.args(["replicate-now", "--ticket", crate::support::TICKET, "--strict", "--from"])
        .arg(&scope)
        .arg("--rules")
        .arg(&rules);
    run(cmd).expect_code(2).expect_stderr(&[&idle, "nothing was applied"]);
    assert!(b.bytes() == before, "replicate-now --strict changed the CIB");
}

#[test]
fn a_toml_error_names_the_line_that_is_wrong() {
    let (_a, scope, b) = two_sites();
    let rules = b.write("bad.toml", "[[rule]]\ntype = \"ip\"\nfrom = \"192.168.1.0/24\"\ntoo = \"10.0.0.0/24\"\n");
    let mut cmd = b.command(bin("cib-subscriber"));
    cmd.arg("transform").arg("--from").arg(&scope).arg("--rules").arg(&rules);
    run(cmd).expect_code(2).expect_stderr(&["line 4", "too = \"10.0.0.0/24\"", "unknown field `too`"]);
}
