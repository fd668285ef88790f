//! `cib-publisher scope` on the offline example's site A.

use cib_transforms::xml;

use crate::support::{offline, Site, TICKET};

#[test]
fn scope_leaves_out_fencing_local_resources_and_node_locations() {
    let a = Site::from_fixture(&offline("site-a.xml"));
    a.grant(TICKET);
    let before = a.bytes();
    let r = a.publisher(["scope", "--ticket", TICKET]);
    r.expect_ok();
    assert!(a.bytes() == before, "the publisher changed the CIB file");

    let doc = xml::parse(&r.stdout).unwrap_or_else(|e| panic!("stdout is not XML: {e}\n{r}"));
    assert_eq!(doc.name, "configuration");
    assert_eq!(doc.attr("replicator-ticket"), Some(TICKET));
    assert!(
        doc.attr("replicator-digest")
            .is_some_and(|d| d.starts_with("sha256:")),
        "{r}"
    );
    assert!(
        doc.attr("replicator-term").is_some(),
        "the grant term is missing\n{r}"
    );

    // The configuration proper (everything but the left-out report) names
    // neither the fencing device nor A's local-only resource.
    let content: String = doc
        .children
        .iter()
        .filter(|c| c.name != "replicator-left-out")
        .map(xml::Element::to_xml)
        .collect();
    for absent in [
        "fence-a",
        "site-a-monitoring",
        "web-prefers-a1",
        "monitoring-with-web",
        "node=\"a1\"",
    ] {
        assert!(
            !content.contains(absent),
            "{absent} is in the published configuration\n{content}"
        );
    }
    for present in [
        "web",
        "web-ip",
        "backup",
        "web-needs-geo",
        "backup-needs-geo",
        "web-before-backup",
    ] {
        assert!(
            doc.find_id(present).is_some(),
            "{present} missing from the scope\n{r}"
        );
    }
    assert!(
        doc.child("crm_config").is_none() && doc.child("nodes").is_none(),
        "{r}"
    );

    // What was left out is reported on stderr with the reason.
    r.expect_stderr(&[
        "left out rsc_colocation `monitoring-with-web`: names resources inside the scope (web) and outside it (site-a-monitoring)",
        "left out rsc_location `web-prefers-a1`: names node `a1`",
    ]);
}

#[test]
fn scope_is_stable_across_runs() {
    let a = Site::from_fixture(&offline("site-a.xml"));
    a.grant(TICKET);
    let first = a.publisher(["scope", "--ticket", TICKET]);
    first.expect_ok();
    let second = a.publisher(["scope", "--ticket", TICKET]);
    second.expect_ok();
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn unknown_ticket_is_an_error_naming_it() {
    let a = Site::from_fixture(&offline("site-a.xml"));
    let r = a.publisher(["scope", "--ticket", "no-such-ticket"]);
    r.expect_code(2)
        .expect_stderr(&["no-such-ticket", "no rsc_ticket"]);
    assert!(r.stdout.is_empty(), "{r}");
}

#[test]
fn missing_cib_file_is_an_error() {
    let a = Site::from_fixture(&offline("site-a.xml"));
    std::fs::remove_file(a.cib_path()).unwrap();
    let r = a.publisher(["scope", "--ticket", TICKET]);
    r.expect_code(2).expect_stderr(&["reading the local CIB"]);
    assert!(r.stdout.is_empty(), "{r}");
}
