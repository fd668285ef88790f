//! What `replicate-now` refuses: exit 2, a message naming the element or
//! reason, and site B's CIB file unchanged to the byte.

use std::ffi::OsString;
use std::path::Path;

use crate::support::{fixture, reseal, site_b_rules, two_sites, TICKET};

/// `--ticket geo --from SCOPE` followed by `extra`.
fn args(scope: &Path, extra: &[&Path]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        "--ticket".into(),
        TICKET.into(),
        "--from".into(),
        scope.into(),
    ];
    out.extend(extra.iter().map(|p| p.as_os_str().to_owned()));
    out
}

fn rules(path: &Path) -> [&Path; 2] {
    [Path::new("--rules"), path]
}

fn xslt(path: &Path) -> [&Path; 2] {
    [Path::new("--xslt"), path]
}

#[test]
fn conflict_with_an_unowned_local_element_then_adopt() {
    let (_a, scope, b) = two_sites();
    b.cibadmin([
        "--create",
        "-o",
        "resources",
        "--xml-text",
        r#"<primitive id="backup" class="ocf" provider="heartbeat" type="Dummy"/>"#,
    ]);
    let site_rules = site_b_rules();
    let r = b.expect_refusal(
        &args(&scope, &rules(&site_rules)),
        &["conflict", "resources:backup", "--adopt"],
    );
    assert!(
        !r.stderr.contains("resources:web"),
        "web does not conflict\n{r}"
    );

    // The dry run shows the conflict too.
    let d = b.subscriber({
        let mut a = vec![OsString::from("diff")];
        a.extend(args(&scope, &rules(&site_rules)));
        a
    });
    d.expect_code(1)
        .expect_stdout(&["conflicts: 1 (resources:backup)", "would refuse"]);

    // --adopt takes it over: replaced by the replicated one, owned from now on.
    let mut adopt = vec![OsString::from("replicate-now")];
    adopt.extend(args(&scope, &rules(&site_rules)));
    adopt.push("--adopt".into());
    b.subscriber(&adopt)
        .expect_ok()
        .expect_stdout(&["adopted: 1 (resources:backup)", "conflicts: 0"]);
    let backup = b.element("backup").expect("backup at B");
    assert!(
        backup.contains(r#"provider="pacemaker""#),
        "backup was not replaced: {backup}"
    );
    b.expect_verify_clean();
    let st = b.subscriber(["status", "--ticket", TICKET]);
    st.expect_ok();
    assert!(
        st.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["ok", "resources:backup"]),
        "{st}"
    );
}

#[test]
fn ticket_granted_at_this_site() {
    let (_a, scope, b) = two_sites();
    b.grant(TICKET);
    b.expect_refusal(
        &args(&scope, &[]),
        &["ticket `geo` is granted to this site"],
    );
}

#[test]
fn scope_without_its_rsc_ticket_constraints() {
    let (_a, scope, b) = two_sites();
    b.expect_refusal(
        &args(&scope, &rules(&fixture("drop-rsc-tickets.toml"))),
        &["ticket `geo` has no rsc_ticket constraint"],
    );
}

#[test]
fn malformed_xml() {
    let (_a, _scope, b) = two_sites();
    let bad = b.write(
        "malformed.xml",
        r#"<configuration replicator-ticket="geo"><resources><primitive id="x"></resources></configuration>"#,
    );
    b.expect_refusal(&args(&bad, &[]), &["malformed XML", "malformed.xml"]);
}

#[test]
fn doctype_with_an_external_entity() {
    let (_a, scope, b) = two_sites();
    let published = std::fs::read_to_string(&scope).unwrap();
    let hostile = published.replacen(
        "<configuration",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE configuration [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<configuration",
        1,
    );
    let hostile = hostile.replacen("<resources>", "<resources>&x;", 1);
    assert!(hostile.contains("&x;") && hostile.contains("<!ENTITY"));
    let path = b.write("hostile.xml", hostile);
    let r = b.expect_refusal(&args(&path, &[]), &["DOCTYPE"]);
    assert!(
        !r.stderr.contains("root:") && !r.stdout.contains("root:"),
        "file content leaked\n{r}"
    );
}

#[test]
fn document_over_the_size_bound() {
    let (_a, _scope, b) = two_sites();
    // 65 MiB: a valid start, then a comment that never ends before the bound.
    let mut doc = String::from("<configuration replicator-ticket=\"geo\"><!--");
    doc.push_str(&" ".repeat(65 * 1024 * 1024));
    doc.push_str("--></configuration>");
    let path = b.write("huge.xml", doc);
    b.expect_refusal(&args(&path, &[]), &["larger than the limit", "huge.xml"]);
}

#[test]
fn digest_mismatch() {
    let (_a, scope, b) = two_sites();
    let published = std::fs::read_to_string(&scope).unwrap();
    assert!(published.contains("value=\"192.168.1.10\""));
    let edited = published.replace("value=\"192.168.1.10\"", "value=\"192.168.1.66\"");
    let path = b.write("edited.xml", edited);
    b.expect_refusal(&args(&path, &[]), &["digest mismatch"]);
}

#[test]
fn older_grant_term_than_the_one_applied() {
    let (_a, scope, b) = two_sites();
    b.subscriber({
        let mut a = vec![OsString::from("replicate-now")];
        a.extend(args(&scope, &[]));
        a
    })
    .expect_ok();
    // An older grant replayed (the header digest recomputed, as a
    // compromised publisher could).
    let published = std::fs::read_to_string(&scope).unwrap();
    let term_attr = published
        .split_whitespace()
        .find(|w| w.starts_with("replicator-term="))
        .expect("the scope carries the grant term")
        .trim_end_matches('>')
        .to_owned();
    let older = reseal(&published, |s| s.replacen(&term_attr, "replicator-term=\"1000\"", 1));
    let path = b.write("older.xml", older);
    b.expect_refusal(&args(&path, &[]), &["grant term 1000, older than term"]);
}

#[test]
fn scope_of_another_ticket() {
    let (_a, scope, b) = two_sites();
    let a = [
        OsString::from("--ticket"),
        "other".into(),
        "--from".into(),
        scope.into(),
    ];
    b.expect_refusal(&a, &["scope is for ticket `geo`, expected `other`"]);
}

#[test]
fn unknown_reference_after_a_drop_rule() {
    let (_a, scope, b) = two_sites();
    b.expect_refusal(
        &args(&scope, &rules(&fixture("drop-backup.toml"))),
        &["unknown id `backup`"],
    );
}

#[test]
fn duplicate_ids_from_a_stylesheet() {
    let (_a, scope, b) = two_sites();
    b.expect_refusal(
        &args(&scope, &xslt(&fixture("duplicate-backup.xsl"))),
        &["duplicate id `backup`"],
    );
}

#[test]
fn stylesheet_that_only_warns() {
    let (_a, scope, b) = two_sites();
    b.expect_refusal(
        &args(&scope, &xslt(&fixture("valueof-typo.xsl"))),
        &["valueof-typo.xsl", "valueof"],
    );
}

#[test]
fn missing_stylesheet() {
    let (_a, scope, b) = two_sites();
    let missing = b.path("no-such.xsl");
    b.expect_refusal(&args(&scope, &xslt(&missing)), &["no-such.xsl"]);
}

#[test]
fn merged_cib_failing_crm_verify_schema() {
    let (_a, scope, b) = two_sites();
    b.expect_refusal(
        &args(&scope, &rules(&fixture("loss-policy-invalid.toml"))),
        &["does not validate", "loss-policy"],
    );
}

#[test]
fn merged_cib_failing_crm_verify_fencing_not_configured() {
    // loss-policy=fence is valid XML but needs fencing, which B disables.
    let (_a, scope, b) = two_sites();
    b.expect_refusal(
        &args(&scope, &rules(&fixture("loss-policy-fence.toml"))),
        &["does not validate", "fencing is not configured"],
    );
}

#[test]
fn verification_judges_the_merge_not_the_sites_past() {
    // Site B's own configuration draws messages of crm_verify: STONITH
    // enabled without devices (an error), an rsc_order with `score` (a
    // deprecation warning), a location rule for role Master. None comes
    // from the replica: it is applied, and the messages are reported.
    let (_a, scope, b) = two_sites();
    b.tool("crm_attribute", ["-t", "crm_config", "-n", "stonith-enabled", "-v", "true"]).expect_ok();
    b.cibadmin(["--create", "-o", "resources", "--xml-text", r#"<primitive id="b-local" class="ocf" provider="pacemaker" type="Dummy"/>"#]);
    b.cibadmin(["--create", "-o", "constraints", "--xml-text", r#"<rsc_order id="b-old-order" first="site-b-monitoring" then="b-local" score="INFINITY"/>"#]);
    b.cibadmin([
        "--create",
        "-o",
        "constraints",
        "--xml-text",
        r##"<rsc_location id="b-master" rsc="b-local"><rule id="b-master-r" score="10" role="Master"><expression id="b-master-e" attribute="#uname" operation="eq" value="b1"/></rule></rsc_location>"##,
    ]);
    assert_ne!(b.verify().code, 0, "the site's CIB draws messages of its own");
    let mut apply = vec![OsString::from("replicate-now")];
    apply.extend(args(&scope, &rules(&site_b_rules())));
    b.subscriber(&apply)
        .expect_ok()
        .expect_stdout(&["already drew before the merge", "STONITH", "'score' in rsc_order is deprecated"]);
    assert!(b.element("web").is_some(), "the replica is there");

    // A replica that brings an error of its own is refused all the same.
    let (_a, scope, b) = two_sites();
    b.cibadmin(["--create", "-o", "resources", "--xml-text", r#"<primitive id="b-local" class="ocf" provider="pacemaker" type="Dummy"/>"#]);
    b.cibadmin(["--create", "-o", "constraints", "--xml-text", r#"<rsc_order id="b-old-order" first="site-b-monitoring" then="b-local" score="INFINITY"/>"#]);
    let r = b.expect_refusal(&args(&scope, &rules(&fixture("loss-policy-invalid.toml"))), &["does not validate", "loss-policy"]);
    assert!(!r.stderr.contains("rsc_order is deprecated"), "the site's own warning is not the reason\n{r}");
}

#[test]
fn resource_no_rsc_ticket_binds() {
    let (_a, scope, b) = two_sites();
    b.expect_refusal(
        &args(&scope, &xslt(&fixture("add-unbound.xsl"))),
        &[
            "resource `unbound-extra`",
            "no rsc_ticket for `geo` binds it",
        ],
    );
}

#[test]
fn missing_site_cib_file() {
    let (_a, scope, b) = two_sites();
    std::fs::remove_file(b.cib_path()).unwrap();
    let mut a = vec![OsString::from("replicate-now")];
    a.extend(args(&scope, &[]));
    b.subscriber(&a)
        .expect_code(2)
        .expect_stderr(&["reading the local CIB"]);
    assert!(
        !b.cib_path().exists(),
        "replicate-now created the missing CIB file"
    );
}

#[test]
fn nested_id_conflict_is_not_adopted() {
    // A local resource uses the id of an nvpair inside replicated `web`:
    // --adopt takes over top-level elements only, so this still conflicts.
    let (_a, scope, b) = two_sites();
    b.cibadmin([
        "--create",
        "-o",
        "resources",
        "--xml-text",
        r#"<primitive id="local-x" class="ocf" provider="pacemaker" type="Dummy"><instance_attributes id="local-x-ia"><nvpair id="web-ip-ip" name="ip" value="10.2.9.9"/></instance_attributes></primitive>"#,
    ]);
    let mut extra = args(&scope, &[]);
    extra.push("--adopt".into());
    b.expect_refusal(&extra, &["conflict", "resources:web (id `web-ip-ip`)"]);
}

#[test]
fn pruning_a_resource_a_local_constraint_still_names() {
    let (a, scope, b) = two_sites();
    let mut first = vec![OsString::from("replicate-now")];
    first.extend(args(&scope, &[]));
    b.subscriber(&first).expect_ok();
    // B's admin pins the replicated `backup` locally; then A deletes it.
    b.cibadmin([
        "--create",
        "-o",
        "constraints",
        "--xml-text",
        r#"<rsc_location id="backup-on-b2" rsc="backup" node="b2" score="10"/>"#,
    ]);
    a.cibadmin([
        "--delete",
        "--xml-text",
        r#"<rsc_ticket id="backup-needs-geo"/>"#,
    ]);
    a.cibadmin([
        "--delete",
        "--xml-text",
        r#"<rsc_order id="web-before-backup"/>"#,
    ]);
    a.cibadmin(["--delete", "--xml-text", r#"<primitive id="backup"/>"#]);
    let scope2 = a.publish(TICKET, "geo-2.xml");
    // The local constraint is never touched, so the merge would dangle.
    b.expect_refusal(&args(&scope2, &[]), &["does not validate", "\"backup\""]);
    assert!(b.element("backup").is_some() && b.element("backup-on-b2").is_some());
}

#[test]
fn sections_other_than_resources_constraints_tags_are_refused() {
    let (_a, scope, b) = two_sites();
    let published = std::fs::read_to_string(&scope).unwrap();
    let forged = reseal(&published, |s| {
        s.replacen(
            "<resources>",
            r#"<crm_config><cluster_property_set id="forged-options"><nvpair id="forged-maintenance" name="maintenance-mode" value="true"/></cluster_property_set></crm_config><nodes><node id="9" uname="forged-node"/></nodes><resources>"#,
            1,
        )
    });
    let path = b.write("forged.xml", forged);
    let r = b.expect_refusal(&args(&path, &[]), &["<crm_config>", "not a section of a ticket's scope"]);
    for id in ["forged-options", "forged-maintenance", "9"] {
        assert!(
            b.element(id).is_none(),
            "a forged {id} reached site B's CIB\n{r}"
        );
    }
}

#[test]
fn scope_with_a_fencing_device_is_refused() {
    let (_a, scope, b) = two_sites();
    let published = std::fs::read_to_string(&scope).unwrap();
    let forged = reseal(&published, |s| {
        s.replacen("<resources>", r#"<resources><primitive id="forged-fence" class="stonith" type="fence_dummy"/>"#, 1)
            .replacen(
                "<constraints>",
                r#"<constraints><rsc_ticket id="forged-fence-needs-geo" rsc="forged-fence" ticket="geo" loss-policy="stop"/>"#,
                1,
            )
    });
    let path = b.write("forged.xml", forged);
    b.expect_refusal(&args(&path, &[]), &["forged-fence", "fencing"]);
}

#[test]
fn a_patch_cibadmin_refuses_without_a_concurrent_change_is_reported_at_once() {
    // Pacemaker 2.1.5 refuses, as if the CIB had moved on, the patch that
    // crm_diff writes for a CIB with comments (so the native patch is not
    // used) and an old feature set (so crm_diff writes format 1). Nothing
    // changed the CIB meanwhile: the subscriber must say so after one try
    // instead of retrying and blaming concurrent changes.
    // The replica is there; then the group's members are reordered
    // upstream: a move, which the native patch does not place next to
    // comments.
    let (_a, scope, b) = two_sites();
    b.subscriber({
        let mut a = vec![OsString::from("replicate-now")];
        a.extend(args(&scope, &rules(&site_b_rules())));
        a
    })
    .expect_ok();
    let published = std::fs::read_to_string(&scope).unwrap();
    let mut doc = cib_transforms::xml::parse(&published).unwrap();
    let group = doc.child_mut("resources").and_then(|r| r.children.iter_mut().find(|c| c.id() == Some("web"))).expect("group web");
    group.children.reverse();
    let reordered = b.write("reordered.xml", reseal(&doc.to_xml(), |s| s.to_owned()));
    let text = String::from_utf8(b.bytes()).unwrap();
    let (head, rest) = text.split_once("crm_feature_set=\"").expect("site B's fixture has a feature set");
    let (_, rest) = rest.split_once('"').unwrap();
    let old = format!("{head}crm_feature_set=\"3.0.5\"{rest}").replacen("<resources>", "<resources><!-- local -->", 1);
    b.write("cib.xml", &old);
    let r = b.expect_refusal(
        &args(&reordered, &rules(&site_b_rules())),
        &["cibadmin refused the write although the CIB is still at version", "Application of update diff failed"],
    );
    assert_eq!(r.stderr.matches("reading the CIB again").count(), 1, "{r}");
}
