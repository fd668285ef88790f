//! What the subscriber enforces whatever a publisher sends, and what the
//! publisher refuses to publish: the documents of a security probe of the
//! binaries (`tests/fixtures/security/`, see its README), each through the
//! real binaries, each refusal leaving site B's CIB unchanged to the byte.

use std::path::PathBuf;

use crate::support::{fixture, reseal, Site, TICKET};

fn probe(name: &str) -> PathBuf {
    fixture(&format!("security/{name}"))
}

/// Site B of the probe, with the probe's `geo.xml` applied.
fn site_b_with_geo() -> Site {
    let b = Site::from_fixture(&probe("site-b.xml"));
    let from = probe("geo.xml");
    let rules = probe("site-b-rules.toml");
    b.subscriber(["replicate-now", "--ticket", TICKET, "--from", from.to_str().unwrap(), "--rules", rules.to_str().unwrap()])
        .expect_ok();
    b
}

fn from(path: &std::path::Path) -> [String; 4] {
    ["--ticket".into(), TICKET.into(), "--from".into(), path.display().to_string()]
}

#[test]
fn fencing_through_a_template_is_never_published_nor_applied() {
    let a = Site::from_fixture(&probe("02-cib-stonith-template.xml"));
    let r = a.publisher(["scope", "--ticket", TICKET]);
    r.expect_ok().expect_stderr(&["left out", "fencing"]);
    let doc = cib_transforms::xml::parse(&r.stdout).unwrap();
    let resources = doc.child("resources").expect("resources");
    assert!(resources.find_id("fp").is_none() && resources.find_id("ft").is_none(), "{r}");

    let b = Site::from_fixture(&probe("site-b.xml"));
    b.expect_refusal(&from(&probe("02-scope-stonith-template.xml")), &["fencing"]);
}

#[test]
fn what_a_publisher_never_publishes_is_refused() {
    let b = Site::from_fixture(&probe("site-b.xml"));
    let r = b.expect_refusal(&from(&probe("03-scope-rsc-pattern.xml")), &["rsc-pattern", "ban-all"]);
    assert!(r.stderr.contains("refused"), "{r}");

    // A location naming a node, a section of its own, a constraint naming
    // a resource outside: each resealed (valid digest), each refused.
    let geo = std::fs::read_to_string(probe("geo.xml")).unwrap();
    for (what, edit, needle) in [
        ("node location", r#"<rsc_location id="pin" rsc="web" node="b1" score="100"/>"#, "node"),
        ("outside reference", r#"<rsc_order id="o-out" first="web" then="site-b-monitoring"/>"#, "o-out"),
    ] {
        let doc = reseal(&geo, |t| t.replacen("<constraints>", &format!("<constraints>{edit}"), 1));
        let path = b.write("forged.xml", doc);
        let r = b.expect_refusal(&from(&path), &[needle]);
        assert!(r.stderr.contains("refused"), "{what}: {r}");
    }
    let doc = reseal(&geo, |t| t.replacen("<resources>", "<crm_config><cluster_property_set id=\"x\"/></crm_config><resources>", 1));
    let path = b.write("forged.xml", doc);
    b.expect_refusal(&from(&path), &["crm_config"]);
}

#[test]
fn older_documents_never_roll_a_site_back() {
    let b = site_b_with_geo();
    let rules = probe("site-b-rules.toml");
    let with_rules = |name: &str| {
        let mut args = from(&probe(name)).to_vec();
        args.extend(["--rules".into(), rules.display().to_string()]);
        args
    };
    b.expect_refusal(&with_rules("04-scope-no-term-old-content.xml"), &["no grant term"]);
    b.expect_refusal(&with_rules("04-scope-same-term-old-version.xml"), &["older than version 0.12.1"]);

    // The header digest covers the term: a term changed alone is refused.
    let geo = std::fs::read_to_string(probe("geo.xml")).unwrap();
    let resealed = reseal(&geo, |t| t.to_owned());
    let term = resealed.split("replicator-term=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_owned();
    let newer = term.parse::<u64>().unwrap() + 1;
    let path = b.write("term-changed.xml", resealed.replacen(&format!("replicator-term=\"{term}\""), &format!("replicator-term=\"{newer}\""), 1));
    b.expect_refusal(&from(&path), &["replicator-header-digest"]);
    // Terms are canonical numbers.
    let plus = b.write("plus.xml", geo.replacen(&format!("replicator-term=\"{term}\""), &format!("replicator-term=\"+{term}\""), 1));
    b.expect_refusal(&from(&plus), &["not a grant term"]);
}

#[test]
fn a_damaged_ownership_record_is_an_error_not_a_disabled_check() {
    let b = site_b_with_geo();
    let cib = std::fs::read_to_string(b.cib_path()).unwrap();
    let term_nv = cib.lines().find(|l| l.contains(r#"name="applied-term""#)).expect("an applied term").to_owned();
    let damaged = term_nv.replacen("value=\"", "value=\"x", 1);
    std::fs::write(b.cib_path(), cib.replacen(&term_nv, &damaged, 1)).unwrap();
    b.expect_refusal(&from(&probe("geo.xml")), &["damaged", "applied-term"]);
}

#[test]
fn control_characters_never_reach_the_terminal() {
    let b = Site::from_fixture(&probe("site-b.xml"));
    for name in ["05-scope-ansi.xml", "05-scope-ansi-id.xml"] {
        let mut args = vec!["diff".to_owned()];
        args.extend(from(&probe(name)));
        let r = b.subscriber(&args);
        r.expect_code(2);
        assert!(!r.stderr.contains('\u{1b}') && !r.stdout.contains('\u{1b}'), "{name}: {r}");
    }
    // C1 controls are XML characters: accepted, and printed escaped.
    let geo = std::fs::read_to_string(probe("geo.xml")).unwrap();
    let doc = reseal(&geo, |t| t.replacen("value=\"/srv/site-a/web/app.state\"", "value=\"&#x9b;31mred\"", 1));
    let path = b.write("c1.xml", doc);
    let mut args = vec!["diff".to_owned()];
    args.extend(from(&path));
    let r = b.subscriber(&args);
    r.expect_code(1);
    assert!(!r.stdout.contains('\u{9b}') && r.stdout.contains("\\u{9b}31mred"), "{r}");
}

#[test]
fn text_inside_elements_gets_one_answer_a_refusal() {
    let b = Site::from_fixture(&probe("site-b.xml"));
    let rules = probe("site-b-rules.toml");
    let mut answers = Vec::new();
    for name in ["06-scope-text-in-element.xml", "10-scope-root-text.xml"] {
        for with_rules in [false, true] {
            let mut args = vec!["transform".to_owned(), "--from".to_owned(), probe(name).display().to_string()];
            if with_rules {
                args.extend(["--rules".to_owned(), rules.display().to_string()]);
            }
            let r = b.subscriber(&args);
            r.expect_code(2).expect_stderr(&["holds text"]);
            answers.push((name, r.stderr.lines().last().unwrap_or("").to_owned()));
        }
    }
    assert_eq!(answers[0].1, answers[1].1, "with and without rules");
    assert_eq!(answers[2].1, answers[3].1, "with and without rules");
}

#[test]
fn id_ref_chains_end_in_a_clear_error() {
    for name in ["07-cib-idref-chain100.xml", "07-cib-idref-chain1000.xml"] {
        let a = Site::from_fixture(&probe(name));
        a.publisher(["scope", "--ticket", TICKET]).expect_code(2).expect_stderr(&["deeper than 64 levels", "id-ref"]);
    }
}

#[test]
fn a_local_epoch_at_its_largest_is_an_error() {
    let b = Site::from_fixture(&probe("08-local-epoch-u64max.xml"));
    b.expect_refusal(&from(&probe("geo.xml")), &["epoch", "largest value"]);
}

#[test]
fn a_local_cib_with_a_processing_instruction_is_refused_clearly() {
    // Pacemaker's own tools crash on any write to such a CIB file
    // (cibadmin --modify, --create and --patch alike, Pacemaker 2.1): a
    // clear refusal, the file untouched, instead of a tool killed midway.
    let b = Site::from_fixture(&probe("09-local-with-pi.xml"));
    b.expect_refusal(&from(&probe("geo.xml")), &["processing instruction", "remove it"]);
    // Without it, the same CIB is replicated into.
    let text = std::fs::read_to_string(b.cib_path()).unwrap();
    std::fs::write(b.cib_path(), text.replace("<?foo bar?>", "")).unwrap();
    b.subscriber(["replicate-now", "--ticket", TICKET, "--from", probe("geo.xml").to_str().unwrap()]).expect_ok();
    assert!(b.element("web").is_some(), "web replicated");
    b.expect_verify_clean();
}
