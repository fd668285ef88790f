//! The two-site flow of the offline example: site A holds ticket `geo`,
//! site B gets a stopped, adapted copy of its configuration.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use crate::support::{scope_primitives, site_b_rules, two_sites, Site, TICKET};

/// Site B's own elements, which replication must never touch, by id (and
/// whole sections): `(label, xml)` pairs to compare before and after.
fn local_elements(b: &Site) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = [
        "site-b-monitoring",
        "monitoring-on-b1",
        "cib-bootstrap-options",
    ]
    .iter()
    .map(|id| ((*id).to_owned(), b.element(id)))
    .collect();
    out.push(("<nodes>".to_owned(), Some(b.section("nodes"))));
    for (label, xml) in &out {
        assert!(xml.is_some(), "site B's fixture lacks {label}");
    }
    out
}

/// [`replicate_args`] with B's state directory (made here), where the
/// document applied is kept for drift reports.
fn replicate_kept(b: &Site, scope: &Path, rules: &Path) -> Vec<OsString> {
    let dir = b.path("state");
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = replicate_args(scope, rules);
    args.extend(["--state-dir".into(), dir.into()]);
    args
}

/// `status --ticket geo --state-dir B's`.
fn status_kept(b: &Site) -> Vec<OsString> {
    vec!["status".into(), "--ticket".into(), TICKET.into(), "--state-dir".into(), b.path("state").into()]
}

fn replicate_args(scope: &Path, rules: &Path) -> Vec<OsString> {
    vec![
        "replicate-now".into(),
        "--ticket".into(),
        TICKET.into(),
        "--from".into(),
        scope.into(),
        "--rules".into(),
        rules.into(),
    ]
}

fn diff_args(scope: &Path, rules: &Path) -> Vec<OsString> {
    let mut args = replicate_args(scope, rules);
    args[0] = "diff".into();
    args.extend(["--color".into(), "never".into()]);
    args
}

#[test]
fn replicate_now_adapts_the_copy_keeps_local_elements_and_is_idempotent() {
    let (a, scope, b) = two_sites();
    let rules = site_b_rules();
    let local_before = local_elements(&b);

    let r = b.subscriber(replicate_args(&scope, &rules));
    r.expect_ok().expect_stdout(&["applied scope", "added: 5"]);
    b.expect_verify_clean();

    // B's own elements are exactly as they were.
    assert_eq!(
        local_elements(&b),
        local_before,
        "replication changed site B's local elements"
    );

    // The replicated elements are there, with B's values.
    let expect = [
        ("web-ip-ip", "10.2.1.10"),
        ("web-ip-cidr", "24"),
        ("web-fs-dir", "/srv/site-b/web"),
        ("web-fs-device", "/dev/vg-site-b/web"),
        ("web-app-state", "/srv/site-b/web/app.state"),
    ];
    for (id, value) in expect {
        assert_eq!(
            b.nvpair_value(id).as_deref(),
            Some(value),
            "nvpair {id} at B"
        );
    }
    for id in [
        "web",
        "backup",
        "web-needs-geo",
        "backup-needs-geo",
        "web-before-backup",
    ] {
        assert!(
            b.element(id).is_some(),
            "replicated element {id} missing at B"
        );
    }
    // What the publisher left out stays out.
    for id in [
        "fence-a",
        "site-a-monitoring",
        "web-prefers-a1",
        "monitoring-with-web",
    ] {
        assert!(b.element(id).is_none(), "{id} must not be replicated");
    }
    let text = String::from_utf8(b.bytes()).unwrap();
    assert!(
        !text.contains("192.168.1."),
        "an address of site A reached B:\n{text}"
    );
    assert!(
        !text.contains("/srv/site-a"),
        "a path of site A reached B:\n{text}"
    );

    // Applying again changes nothing, and the dry run agrees.
    let after_first = b.bytes();
    b.subscriber(replicate_args(&scope, &rules))
        .expect_ok()
        .expect_stdout(&["up to date"]);
    assert!(
        b.bytes() == after_first,
        "a second replicate-now changed the CIB file"
    );
    b.subscriber(diff_args(&scope, &rules)).expect_ok();
    assert!(b.bytes() == after_first, "diff changed the CIB file");

    // Status: every owned element is ok.
    let st = b.subscriber(["status", "--ticket", TICKET]);
    st.expect_ok()
        .expect_stdout(&["not granted here", "owned elements:  5"]);
    assert!(
        !st.stdout.contains("drift") && !st.stdout.contains("missing"),
        "{st}"
    );

    // Without the ticket, B starts none of the replicated resources; with
    // it, B starts exactly what A starts.
    let replicated = scope_primitives(&scope);
    assert_eq!(
        replicated,
        ["backup", "web-app", "web-fs", "web-ip"]
            .map(String::from)
            .into(),
        "the scope's primitives"
    );
    let only_replicated = |s: BTreeSet<String>| -> BTreeSet<String> {
        s.intersection(&replicated).cloned().collect()
    };
    let at_b_without = b.simulate_starts(&[]);
    assert!(
        at_b_without.contains("site-b-monitoring"),
        "crm_simulate at B should start B's own resource: {at_b_without:?}"
    );
    assert_eq!(
        only_replicated(at_b_without),
        BTreeSet::new(),
        "B starts replicated resources without the ticket"
    );
    let at_a = only_replicated(a.simulate_starts(&[]));
    assert_eq!(
        at_a, replicated,
        "A (ticket granted) should start every replicated resource"
    );
    let at_b_with = only_replicated(b.simulate_starts(&["--ticket-grant", TICKET]));
    assert_eq!(
        at_b_with, at_a,
        "B with the ticket starts other resources than A"
    );
}

#[test]
fn diff_shows_the_change_and_leaves_the_cib_alone() {
    let (_a, scope, b) = two_sites();
    let rules = site_b_rules();
    let before = b.bytes();

    let r = b.subscriber(diff_args(&scope, &rules));
    r.expect_code(1).expect_stdout(&[
        "--- local configuration",
        "+++ after replicate-now",
        "@@ ",
        "added: 5",
        "conflicts: 0",
    ]);
    for id in [
        "web",
        "web-ip",
        "web-fs",
        "web-app",
        "backup",
        "web-needs-geo",
        "backup-needs-geo",
    ] {
        let needle = format!("id=\"{id}\"");
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with('+') && l.contains(&needle)),
            "no `+` line for {id}\n{r}"
        );
    }
    assert!(
        r.stdout.contains("value=\"10.2.1.10\""),
        "the diff shows untransformed values\n{r}"
    );
    assert!(
        !r.stdout.contains('\u{1b}'),
        "escape codes with --color never\n{r}"
    );
    assert!(b.bytes() == before, "diff changed the CIB file");

    // The colour switch does something (so the check above can fail).
    let mut args = diff_args(&scope, &rules);
    *args.last_mut().unwrap() = "always".into();
    let coloured = b.subscriber(args);
    coloured.expect_code(1);
    assert!(
        coloured.stdout.contains("\u{1b}["),
        "no escape codes with --color always\n{coloured}"
    );
    assert!(b.bytes() == before, "diff changed the CIB file");
}

#[test]
fn updates_at_the_origin_reach_the_copy_and_removed_elements_are_pruned() {
    let (a, scope, b) = two_sites();
    let rules = site_b_rules();
    b.subscriber(replicate_args(&scope, &rules)).expect_ok();
    let local_before = local_elements(&b);

    // At A: a new address for the service, and `backup` is gone (constraints
    // first: the schema forbids dangling references).
    a.cibadmin([
        "--modify",
        "--xml-text",
        r#"<nvpair id="web-ip-ip" value="192.168.1.20"/>"#,
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
    assert!(a.element("backup").is_none());
    let scope2 = a.publish(TICKET, "geo-2.xml");

    let d = b.subscriber(diff_args(&scope2, &rules));
    d.expect_code(1);
    assert!(
        d.stdout
            .lines()
            .any(|l| l.starts_with('-') && l.contains("id=\"backup\"")),
        "the diff does not show backup removed\n{d}"
    );

    let r = b.subscriber(replicate_args(&scope2, &rules));
    r.expect_ok();
    let summary_line = |label: &str| -> String {
        r.stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line\n{r}"))
            .to_owned()
    };
    assert!(
        summary_line("changed:").starts_with("changed: 1 (resources:web)"),
        "{r}"
    );
    let removed = summary_line("removed:");
    assert!(removed.starts_with("removed: 3 "), "{r}");
    for key in [
        "resources:backup",
        "constraints:backup-needs-geo",
        "constraints:web-before-backup",
    ] {
        assert!(removed.contains(key), "{key} not reported removed\n{r}");
    }
    assert!(summary_line("added:").starts_with("added: 0"), "{r}");

    assert_eq!(b.nvpair_value("web-ip-ip").as_deref(), Some("10.2.1.20"));
    for id in ["backup", "backup-needs-geo", "web-before-backup"] {
        assert!(b.element(id).is_none(), "{id} was not pruned at B");
    }
    assert!(b.element("web-needs-geo").is_some());
    assert_eq!(
        local_elements(&b),
        local_before,
        "the update changed site B's local elements"
    );
    b.expect_verify_clean();
    let st = b.subscriber(["status", "--ticket", TICKET]);
    st.expect_ok().expect_stdout(&["owned elements:  2"]);
    assert!(
        !st.stdout.contains("backup"),
        "backup still recorded as owned\n{st}"
    );
}

#[test]
fn a_local_edit_of_a_replicated_element_is_drift_and_replication_wins() {
    let (_a, scope, b) = two_sites();
    let rules = site_b_rules();
    b.subscriber(replicate_kept(&b, &scope, &rules)).expect_ok();

    b.cibadmin([
        "--modify",
        "--xml-text",
        r#"<nvpair id="web-ip-ip" value="10.9.9.9"/>"#,
    ]);
    assert_eq!(b.nvpair_value("web-ip-ip").as_deref(), Some("10.9.9.9"));

    // Drift: not in step (exit 1).
    let st = b.subscriber(status_kept(&b));
    st.expect_code(1);
    let state_of = |out: &str, key: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(key))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{key} not listed by status:\n{out}"))
            .to_owned()
    };
    assert_eq!(state_of(&st.stdout, "resources:web"), "drift", "{st}");
    assert_eq!(state_of(&st.stdout, "resources:backup"), "ok", "{st}");

    let r = b.subscriber(replicate_kept(&b, &scope, &rules));
    r.expect_ok()
        .expect_stdout(&["drift: 1 (resources:web)", "changed: 1 (resources:web)"]);
    assert_eq!(
        b.nvpair_value("web-ip-ip").as_deref(),
        Some("10.2.1.10"),
        "replication did not win"
    );
    b.expect_verify_clean();

    let st = b.subscriber(status_kept(&b));
    st.expect_ok();
    assert_eq!(state_of(&st.stdout, "resources:web"), "ok", "{st}");
}

#[test]
fn a_replicated_element_deleted_locally_is_drift_and_restored() {
    let (_a, scope, b) = two_sites();
    let rules = site_b_rules();
    b.subscriber(replicate_kept(&b, &scope, &rules)).expect_ok();
    let applied = b
        .element("web-before-backup")
        .expect("web-before-backup at B");

    b.cibadmin([
        "--delete",
        "--xml-text",
        r#"<rsc_order id="web-before-backup"/>"#,
    ]);
    assert!(b.element("web-before-backup").is_none());
    // Missing: not in step (exit 1).
    let st = b.subscriber(status_kept(&b));
    st.expect_code(1);
    assert!(
        st.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["missing", "constraints:web-before-backup"]),
        "{st}"
    );

    b.subscriber(replicate_kept(&b, &scope, &rules))
        .expect_ok()
        .expect_stdout(&[
            "added: 1 (constraints:web-before-backup)",
            "drift: 1 (constraints:web-before-backup (deleted locally))",
        ]);
    assert_eq!(
        b.element("web-before-backup"),
        Some(applied),
        "not restored as applied"
    );
    b.expect_verify_clean();
}

#[test]
fn an_unrelated_change_at_the_origin_changes_nothing_at_the_copy() {
    let (a, scope, b) = two_sites();
    let rules = site_b_rules();
    b.subscriber(replicate_args(&scope, &rules)).expect_ok();
    let applied = b.bytes();

    // A changes a resource outside the scope: new CIB version, same scope.
    a.cibadmin([
        "--modify",
        "--xml-text",
        r#"<primitive id="site-a-monitoring" description="edited at A"/>"#,
    ]);
    let scope2 = a.publish(TICKET, "geo-2.xml");
    let (v1, v2) = (
        std::fs::read_to_string(&scope).unwrap(),
        std::fs::read_to_string(&scope2).unwrap(),
    );
    let version = |s: &str| {
        s.split_whitespace()
            .find(|w| w.starts_with("replicator-version="))
            .map(str::to_owned)
    };
    assert_ne!(
        version(&v1),
        version(&v2),
        "A's CIB version should have moved"
    );

    b.subscriber(diff_args(&scope2, &rules)).expect_ok();
    b.subscriber(replicate_args(&scope2, &rules))
        .expect_ok()
        .expect_stdout(&["up to date"]);
    assert!(
        b.bytes() == applied,
        "an unrelated change at A rewrote B's CIB"
    );
}

#[test]
fn a_site_cib_with_comments_gets_the_copy_too() {
    // Pacemaker counts comments in a patch's positions and the parser drops
    // them: creating elements in such a CIB goes through crm_diff instead
    // of the native patch. The result must be the same copy.
    let (_a, scope, b) = two_sites();
    let text = String::from_utf8(b.bytes()).unwrap();
    let commented = text.replacen("<resources>", "<resources><!-- site B's own resources first -->", 1);
    assert_ne!(commented, text, "site B's fixture has no <resources>");
    b.write("cib.xml", &commented);
    let local_before = local_elements(&b);

    b.subscriber(replicate_args(&scope, &site_b_rules()))
        .expect_ok()
        .expect_stdout(&["applied scope", "added: 5"]);
    b.expect_verify_clean();
    assert_eq!(local_elements(&b), local_before);
    assert_eq!(b.nvpair_value("web-ip-ip").as_deref(), Some("10.2.1.10"));
    for id in ["web", "backup", "web-needs-geo", "backup-needs-geo"] {
        assert!(b.element(id).is_some(), "replicated element {id} missing at B");
    }
    // A second run changes nothing.
    let before = b.bytes();
    b.subscriber(replicate_args(&scope, &site_b_rules()))
        .expect_ok()
        .expect_stdout(&["up to date"]);
    assert_eq!(b.bytes(), before);
}

#[test]
fn a_cib_changed_between_read_and_patch_is_read_again_and_the_change_kept() {
    use cib_subscriber::apply::{read_local, replicate_now_from};
    use cib_subscriber::pipeline::{load_scope_file, load_steps, transform, StepArg};

    let (_a, scope_path, b) = two_sites();
    let steps = load_steps(vec![(0, StepArg::Rules(site_b_rules()))]).unwrap();
    let (scope, _) = transform(load_scope_file(&scope_path, Some(TICKET)).unwrap(), &steps).unwrap();
    let cib = cib_tools::cib::Cib::file(b.cib_path());
    // Read, then a local edit moves the CIB on before the patch is applied.
    let first = read_local(&cib).unwrap();
    b.cibadmin([
        "--create",
        "-o",
        "resources",
        "--xml-text",
        r#"<primitive id="local-late" class="ocf" provider="heartbeat" type="Dummy"/>"#,
    ]);
    let mut retries = Vec::new();
    let applied = replicate_now_from(&cib, first, &scope, Default::default(), None, &mut |m| retries.push(m.to_owned())).unwrap();
    assert!(applied.changed);
    assert_eq!(retries.len(), 1, "{retries:?}");
    // Both the local edit and the copy are there.
    assert!(b.element("local-late").is_some(), "the concurrent local edit was overwritten");
    assert!(b.element("web").is_some());
    b.expect_verify_clean();
}

/// A site's status section changes on its own (booth renewing tickets,
/// resource operations): it does not refuse a guarded modify, and a patch
/// refused only for that is re-based on the new version and applied at
/// once; neither is planned and verified again, and the status change
/// made meanwhile is kept.
#[test]
fn a_status_change_between_read_and_write_is_rebased_not_planned_again() {
    use cib_subscriber::apply::{read_local, replicate_now_from};
    use cib_subscriber::pipeline::{load_scope_file, load_steps, transform, StepArg};

    let (_a, scope_path, b) = two_sites();
    let steps = load_steps(vec![(0, StepArg::Rules(site_b_rules()))]).unwrap();
    let (scope, _) = transform(load_scope_file(&scope_path, Some(TICKET)).unwrap(), &steps).unwrap();
    let cib = cib_tools::cib::Cib::file(b.cib_path());
    let first = read_local(&cib).unwrap();
    // Only the status moves on: a ticket's state, as booth writes it.
    b.tool("crm_ticket", ["--ticket", "other", "--standby", "--force"]).expect_ok();
    let moved = read_local(&cib).unwrap().1;
    assert_eq!(moved.attr("epoch"), first.1.attr("epoch"), "the status change raised epoch");
    assert_ne!(moved.attr("num_updates"), first.1.attr("num_updates"), "the status did not move on");

    let mut retries = Vec::new();
    let applied = replicate_now_from(&cib, first, &scope, Default::default(), None, &mut |m| retries.push(m.to_owned())).unwrap();
    assert!(applied.changed);
    assert!(retries.is_empty(), "planned again: {retries:?}");
    assert!(b.element("web").is_some());
    let text = std::fs::read_to_string(b.cib_path()).unwrap();
    assert!(text.contains(r#"<ticket_state id="other""#) && text.contains(r#"standby="true""#), "the status change was lost");
    b.expect_verify_clean();

    // The group's members reordered upstream: a move, which only a patch
    // writes; the status moves on again after the read.
    let mut reordered = scope.clone();
    let group = reordered
        .config
        .child_mut("resources")
        .and_then(|r| r.children.iter_mut().find(|c| c.id() == Some("web")))
        .expect("group web");
    group.children.reverse();
    let order: Vec<String> = group.children.iter().filter_map(|c| c.id().map(str::to_owned)).collect();
    let first = read_local(&cib).unwrap();
    b.tool("crm_ticket", ["--ticket", "other", "--activate", "--force"]).expect_ok();
    let applied = replicate_now_from(&cib, first, &reordered, Default::default(), None, &mut |m| retries.push(m.to_owned())).unwrap();
    assert!(applied.changed);
    assert!(retries.is_empty(), "planned again instead of re-based: {retries:?}");
    let cib = b.cib();
    let web = cib.find_id("web").expect("group web at B");
    let got: Vec<String> = web.children.iter().filter_map(|c| c.id().map(str::to_owned)).collect();
    assert_eq!(got, order, "the group's members are not in the new order");
    let text = std::fs::read_to_string(b.cib_path()).unwrap();
    assert!(text.contains(r#"<ticket_state id="other""#) && !text.contains(r#"standby="true""#), "the status change was lost");
    b.expect_verify_clean();
}

#[test]
fn a_patch_cibadmin_reports_applied_but_the_cib_lacks_is_not_taken_as_applied() {
    // A CIB manager just restarted (found by tests/geo/faults.sh, kill-based)
    // answers `cibadmin --patch` with success although it did not apply
    // the patch. Here a cibadmin first on PATH does that for every
    // --patch; everything else goes to the real one. The copy is there
    // first (a guarded modify, which Pacemaker cannot answer that way);
    // then the group's members are reordered upstream, a move, which only
    // a patch writes.
    let (_a, scope, b) = two_sites();
    b.subscriber(replicate_kept(&b, &scope, &site_b_rules())).expect_ok();
    let published = std::fs::read_to_string(&scope).unwrap();
    let mut doc = cib_transforms::xml::parse(&published).unwrap();
    let group = doc.child_mut("resources").and_then(|r| r.children.iter_mut().find(|c| c.id() == Some("web"))).expect("group web");
    group.children.reverse();
    let order: Vec<String> = group.children.iter().filter_map(|c| c.id().map(str::to_owned)).collect();
    let reordered = b.write("reordered.xml", crate::support::reseal(&doc.to_xml(), |s| s.to_owned()));

    let path = crate::support::shim_path(&b.path("shim"), "cibadmin", r#"for a in "$@"; do [ "$a" = --patch ] && exit 0; done"#);
    let before = b.bytes();
    let mut cmd = b.command(crate::support::bin("cib-subscriber"));
    cmd.env("PATH", &path).args(replicate_kept(&b, &reordered, &site_b_rules()));
    let r = crate::support::run(cmd);
    r.expect_code(2).expect_stderr(&["cibadmin reported the patch applied, but the CIB does not hold it"]);
    assert!(b.bytes() == before, "the CIB changed");
    let members = |b: &Site| -> Vec<String> {
        let cib = b.cib();
        cib.find_id("web").expect("group web at B").children.iter().filter_map(|c| c.id().map(str::to_owned)).collect()
    };
    assert_ne!(members(&b), order);
    // With the real cibadmin, the new order is applied.
    b.subscriber(replicate_kept(&b, &reordered, &site_b_rules())).expect_ok();
    assert_eq!(members(&b), order);
    b.subscriber(status_kept(&b)).expect_ok();
}

#[test]
fn a_grant_made_while_the_merge_is_verified_refuses_the_write() {
    // The ticket is granted at B while `crm_verify` runs, after the CIB
    // was read and planned on: the write is refused, nothing but the
    // grant is in B's CIB, and the ticket is not granted at B.
    let (_a, scope, b) = two_sites();
    let path = crate::support::shim_path(
        &b.path("shim"),
        "crm_verify",
        // crm_verify runs on a file of its own, without CIB_file.
        &format!(
            "CIB_file='{}' '{}' -t {TICKET} --grant --force >/dev/null",
            b.cib_path().display(),
            crate::support::tool("crm_ticket").display()
        ),
    );
    let before = b.cib();
    let mut cmd = b.command(crate::support::bin("cib-subscriber"));
    cmd.env("PATH", &path).args(replicate_kept(&b, &scope, &site_b_rules()));
    crate::support::run(cmd)
        .expect_code(2)
        .expect_stderr(&["the ticket was granted here while the merge was verified; nothing was applied"]);
    let after = b.cib();
    assert_eq!(cib_transforms::cib::configuration(&after).unwrap(), cib_transforms::cib::configuration(&before).unwrap(), "the configuration changed");
    assert!(cib_transforms::cib::ticket_state(&after, TICKET).unwrap().granted, "the shim did not grant");
    // Without the grant, the same run applies.
    b.tool("crm_ticket", ["-t", TICKET, "--revoke", "--force"]).expect_ok();
    b.subscriber(replicate_kept(&b, &scope, &site_b_rules())).expect_ok();
}

#[test]
fn a_run_killed_while_pacemaker_tools_work_leaves_no_file_behind() {
    // `replicate-now` killed (SIGKILL: nothing of it runs after) while
    // `crm_verify` checks the merged CIB, then while `cibadmin` writes:
    // what they are given reaches them on their standard input, so no
    // temporary file is left in TMPDIR, and B's CIB is as it was.
    let (_a, scope, b) = two_sites();
    let before = b.bytes();
    let kill = "kill -9 $PPID; sleep 1; exit 1";
    for (tool, script) in [("crm_verify", kill.to_owned()), ("cibadmin", format!(r#"case " $* " in *" --modify "*|*" --patch "*) {kill};; esac"#))] {
        let tmp = b.path(&format!("tmp-{tool}"));
        std::fs::create_dir_all(&tmp).unwrap();
        let path = crate::support::shim_path(&b.path(&format!("shim-{tool}")), tool, &script);
        let mut cmd = b.command(crate::support::bin("cib-subscriber"));
        cmd.env("PATH", &path).env("TMPDIR", &tmp).args(replicate_kept(&b, &scope, &site_b_rules()));
        let r = crate::support::run(cmd);
        assert_eq!(r.code, -1, "{tool}: not killed\n{r}");
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{tool}: left in TMPDIR: {left:?}");
        assert_eq!(b.bytes(), before, "{tool}: B's CIB changed");
    }
    b.subscriber(replicate_kept(&b, &scope, &site_b_rules())).expect_ok();
}

#[test]
fn a_replicated_resource_keeps_every_ticket_that_binds_it() {
    // At A, `web` also depends on ticket `t2` through a set that names a
    // local resource too. The scope of `geo` carries that rsc_ticket
    // trimmed to `web`: at B, with `geo` granted and `t2` granted nowhere,
    // `web` stays stopped, as it does at A.
    let a = Site::from_fixture(&crate::support::offline("site-a.xml"));
    a.cibadmin([
        "--create",
        "-o",
        "constraints",
        "--xml-text",
        r#"<rsc_ticket id="web-and-monitoring-need-t2" ticket="t2" loss-policy="stop"><resource_set id="t2-set"><resource_ref id="web"/><resource_ref id="site-a-monitoring"/></resource_set></rsc_ticket>"#,
    ]);
    a.grant(TICKET);
    let r = a.publisher(["scope", "--ticket", TICKET]);
    r.expect_ok().expect_stderr(&["web-and-monitoring-need-t2", "published trimmed"]);
    let doc = cib_transforms::xml::parse(&r.stdout).unwrap();
    let trimmed = doc.child("constraints").and_then(|c| c.find_id("web-and-monitoring-need-t2")).expect("the rsc_ticket of t2 is published");
    assert_eq!(trimmed.attr("ticket"), Some("t2"));
    assert_eq!(trimmed.attr("loss-policy"), Some("stop"));
    assert!(trimmed.find_id("web").is_some() && trimmed.find_id("site-a-monitoring").is_none(), "{}", trimmed.to_xml());
    let scope = a.write("geo.xml", &r.stdout);

    let at_a = a.simulate_starts(&[]);
    assert!(!at_a.iter().any(|s| s.starts_with("web")), "at A, web waits for t2: {at_a:?}");

    let b = Site::from_fixture(&crate::support::offline("site-b.xml"));
    b.subscriber(replicate_args(&scope, &site_b_rules())).expect_ok();
    let at_b = b.simulate_starts(&["--ticket-grant", TICKET]);
    assert!(!at_b.iter().any(|s| s.starts_with("web")), "at B, web waits for t2 too: {at_b:?}");
    let with_t2 = b.simulate_starts(&["--ticket-grant", TICKET, "--ticket-grant", "t2"]);
    assert!(with_t2.iter().any(|s| s.starts_with("web")), "with both tickets web starts at B: {with_t2:?}");
}

#[test]
fn ownership_takes_constant_room_in_crm_config_and_survives_an_empty_state_directory() {
    let (_a, scope, b) = two_sites();
    let rules = site_b_rules();
    b.subscriber(replicate_kept(&b, &scope, &rules)).expect_ok();
    let cib = b.cib();
    let config = cib.child("configuration").unwrap();
    let record = config.child("crm_config").unwrap().find_id("cib-replicator-geo").expect("the record").to_xml();
    assert!(record.len() < 2048 && !record.contains("resources:"), "constant size: {record}");
    let tag = config.child("tags").and_then(|t| t.find_id("cib-replicator-geo-owned")).expect("the owned tag");
    assert!(tag.find_id("web").is_some() && tag.find_id("web-needs-geo").is_some(), "{}", tag.to_xml());
    b.expect_verify_clean();

    // Another node of the site: an empty state directory. Nothing edited:
    // every owned element is known and ok.
    let empty = b.path("empty-state");
    std::fs::create_dir_all(&empty).unwrap();
    let status = |dir: &Path| b.subscriber(["status".as_ref(), "--ticket".as_ref(), TICKET.as_ref(), "--state-dir".as_ref(), dir.as_os_str()]);
    let st = status(&empty);
    st.expect_ok();
    assert!(st.stdout.contains("resources:web") && !st.stdout.contains("unknown"), "{st}");
    // An owned element edited: not in step, which one cannot be told
    // without the document applied last...
    b.cibadmin(["--modify", "--xml-text", r#"<nvpair id="web-ip-ip" value="10.9.9.9"/>"#]);
    status(&empty).expect_code(1).expect_stdout(&["unknown"]);
    // ...but the same document, arriving again, tells: drift on `web`, and
    // replication wins.
    let mut again = replicate_args(&scope, &rules);
    again.extend(["--state-dir".into(), empty.clone().into()]);
    b.subscriber(&again).expect_ok().expect_stdout(&["drift: 1 (resources:web)"]);
    status(&empty).expect_ok();
}

#[test]
fn a_record_of_the_earlier_format_is_migrated_on_the_next_apply() {
    let (_a, scope, b) = two_sites();
    let rules = site_b_rules();
    b.subscriber(replicate_kept(&b, &scope, &rules)).expect_ok();
    // Rewrite the record as the earlier version wrote it: one nvpair per
    // owned element, no tag.
    let mut cib = b.cib();
    let owned = cib_transforms::merge::Ownership::read(&cib, TICKET).unwrap();
    let config = cib.child_mut("configuration").unwrap();
    config.children.retain(|c| c.name != "tags");
    let set = config.child_mut("crm_config").unwrap().children.iter_mut().find(|s| s.id() == Some("cib-replicator-geo")).unwrap();
    set.children.retain(|nv| !matches!(nv.attr("name"), Some("owned-digest" | "owned-count")));
    for (key, digest) in &owned.owned {
        set.children.push(
            cib_transforms::Element::new("nvpair")
                .with_attr("id", format!("cib-replicator-geo-own-{}", key.replace(':', "-")))
                .with_attr("name", key.as_str())
                .with_attr("value", digest.as_str()),
        );
    }
    std::fs::write(b.cib_path(), cib.to_xml()).unwrap();
    let read = cib_transforms::merge::Ownership::read(&b.cib(), TICKET).unwrap();
    assert!(read.earlier_format && read.owned == owned.owned, "the earlier record is read as it is");

    b.subscriber(replicate_kept(&b, &scope, &rules)).expect_ok();
    let cib = b.cib();
    let migrated = cib_transforms::merge::Ownership::read(&cib, TICKET).unwrap();
    assert!(!migrated.earlier_format && migrated.owned == owned.owned, "{migrated:?}");
    let record = cib.child("configuration").unwrap().child("crm_config").unwrap().find_id("cib-replicator-geo").unwrap().to_xml();
    assert!(!record.contains("resources:"), "{record}");
    b.expect_verify_clean();
}

#[test]
fn a_site_of_2500_owned_elements_keeps_crm_config_small() {
    // Site A with 1,250 resources, each bound to `geo` by its own
    // rsc_ticket: 2,500 owned elements at B.
    let mut resources = String::from("<resources>");
    let mut constraints = String::from("<constraints>");
    for i in 0..1250 {
        resources.push_str(&format!(r#"<primitive id="r{i}" class="ocf" provider="pacemaker" type="Dummy"/>"#));
        constraints.push_str(&format!(r#"<rsc_ticket id="r{i}-needs-geo" rsc="r{i}" ticket="geo" loss-policy="stop"/>"#));
    }
    resources.push_str("</resources>");
    constraints.push_str("</constraints>");
    let a = Site::empty();
    for (section, xml) in [("resources", &resources), ("constraints", &constraints)] {
        let file = a.write(&format!("{section}.xml"), xml);
        a.cibadmin(["--replace".as_ref(), "-o".as_ref(), section.as_ref(), "--xml-file".as_ref(), file.as_os_str()]);
    }
    a.grant(TICKET);
    let scope = a.publish(TICKET, "geo.xml");

    let b = Site::empty();
    let crm_config = |b: &Site| b.cib().child("configuration").and_then(|c| c.child("crm_config")).map(|c| c.to_xml().len()).unwrap_or(0);
    let before = crm_config(&b);
    b.subscriber(["replicate-now", "--ticket", TICKET, "--from", scope.to_str().unwrap()]).expect_ok();
    let owned = cib_transforms::merge::Ownership::read(&b.cib(), TICKET).unwrap();
    assert_eq!(owned.owned.len(), 2500);
    let grown = crm_config(&b) - before;
    assert!(grown <= 2048, "crm_config grew by {grown} bytes for 2,500 owned elements");
    b.expect_verify_clean();
}
