use super::*;
use crate::scope::scope;
use crate::xml::parse;

const D: &str = r#"class="ocf" provider="pacemaker" type="Dummy""#;

/// Site A's CIB with ticket T bound to `vip` and `db` (a group).
fn origin(extra_resources: &str) -> Element {
    parse(&format!(
        r#"<cib admin_epoch="0" epoch="10" num_updates="2"><configuration><crm_config/><nodes/>
        <resources><primitive id="vip" {D}><instance_attributes id="vip-ia"><nvpair id="vip-ip" name="ip" value="192.168.1.10"/></instance_attributes></primitive>
        <group id="db"><primitive id="db-fs" {D}/><primitive id="db-srv" {D}/></group>{extra_resources}</resources>
        <constraints><rsc_ticket id="vip-T" rsc="vip" ticket="T" loss-policy="stop"/><rsc_ticket id="db-T" rsc="db" ticket="T" loss-policy="stop"/>
        <rsc_order id="vip-then-db" first="vip" then="db"/></constraints>
        </configuration><status><tickets><ticket_state id="T" granted="true" last-granted="100"/></tickets></status></cib>"#
    ))
    .unwrap()
}

/// Site B's CIB: a local resource and constraint of its own.
fn site_b() -> Element {
    parse(&format!(
        r#"<cib admin_epoch="0" epoch="3" num_updates="5"><configuration><crm_config><cluster_property_set id="opts"><nvpair id="opts-se" name="stonith-enabled" value="false"/></cluster_property_set></crm_config><nodes/>
        <resources><primitive id="local" {D}/></resources>
        <constraints><rsc_location id="local-pref" rsc="local" node="b1" score="10"/></constraints>
        </configuration><status/></cib>"#
    ))
    .unwrap()
}

fn scope_of(cib: &Element) -> Scope {
    scope(cib, "T").unwrap()
}

fn ids(cib: &Element, section: &str) -> Vec<String> {
    cib.child("configuration").unwrap().child(section).map_or(vec![], |s| {
        s.children.iter().map(|c| c.id().unwrap().to_string()).collect()
    })
}

#[test]
fn first_apply_adds_everything_and_records_ownership() {
    let b = site_b();
    let p = plan(&b, &scope_of(&origin("")), Options::default()).unwrap();
    assert!(p.changed);
    assert_eq!(p.report.added, ["resources:db", "resources:vip", "constraints:db-T", "constraints:vip-T", "constraints:vip-then-db"]);
    assert!(p.report.conflicts.is_empty() && p.report.drift.is_empty());
    assert_eq!(ids(&p.cib, "resources"), ["local", "db", "vip"]);
    assert_eq!(ids(&p.cib, "constraints"), ["local-pref", "db-T", "vip-T", "vip-then-db"]);
    assert_eq!(p.cib.attr("epoch"), Some("4"), "epoch bumped so the patch is newer");
    let own = Ownership::read(&p.cib, "T").unwrap();
    assert_eq!(own.owned.len(), 5);
    assert_eq!(own.applied_term, Some(100));
    assert_eq!(own.applied_version.as_deref(), Some("0.10.2"));
    // Local elements untouched.
    let local = p.cib.find_id("local").unwrap();
    assert_eq!(local, b.find_id("local").unwrap());
}

#[test]
fn second_apply_is_a_no_op() {
    let s = scope_of(&origin(""));
    let once = plan(&site_b(), &s, Options::default()).unwrap().cib;
    let twice = plan(&once, &s, Options::default()).unwrap();
    assert!(!twice.changed);
    assert_eq!(twice.cib, once);
    assert!(!twice.report.changes_content());
    // A newer origin version with the same content changes nothing either.
    let mut newer = s.clone();
    newer.version = Some("0.11.0".into());
    assert!(!plan(&once, &newer, Options::default()).unwrap().changed);
}

#[test]
fn change_and_prune_touch_only_owned_elements() {
    let once = plan(&site_b(), &scope_of(&origin("")), Options::default()).unwrap().cib;
    // Upstream: db leaves the scope, vip changes.
    let mut a = origin("");
    let cons = a.child_mut("configuration").unwrap().child_mut("constraints").unwrap();
    cons.children.retain(|c| c.id() != Some("db-T") && c.id() != Some("vip-then-db"));
    let vip_ip = a.child_mut("configuration").unwrap();
    vip_ip.walk_mut(&mut |e| {
        if e.id() == Some("vip-ip") {
            e.set_attr("value", "192.168.1.11");
        }
    });
    let p = plan(&once, &scope_of(&a), Options::default()).unwrap();
    assert_eq!(p.report.changed, ["resources:vip"]);
    assert_eq!(p.report.removed, ["resources:db", "constraints:db-T", "constraints:vip-then-db"]);
    assert_eq!(ids(&p.cib, "resources"), ["local", "vip"]);
    assert_eq!(ids(&p.cib, "constraints"), ["local-pref", "vip-T"]);
    assert_eq!(Ownership::read(&p.cib, "T").unwrap().owned.len(), 2);
}

#[test]
fn unowned_local_id_is_a_conflict_unless_adopted() {
    let mut b = site_b();
    let res = b.child_mut("configuration").unwrap().child_mut("resources").unwrap();
    res.children.push(parse(&format!(r#"<primitive id="vip" {D}/>"#)).unwrap());
    // A nested id clash too: a local primitive named like a group member.
    res.children.push(parse(&format!(r#"<primitive id="db-fs" {D}/>"#)).unwrap());
    let s = scope_of(&origin(""));
    let p = plan(&b, &s, Options::default()).unwrap();
    assert_eq!(p.report.conflicts, ["resources:db (id `db-fs`)", "resources:vip"]);
    assert!(matches!(p.refuse_conflicts(), Err(Error::Conflict { ids }) if ids.len() == 2));
    // Adopt takes over same-id top-level elements, nested clashes remain.
    let p = plan(&b, &s, Options { adopt: true, ..Options::default() }).unwrap();
    assert_eq!(p.report.adopted, ["resources:vip"]);
    assert_eq!(p.report.conflicts, ["resources:db (id `db-fs`)"]);
}

#[test]
fn the_former_holder_takes_the_ticket_configuration_back_without_conflicts() {
    // Site A held T and published its own (unowned) elements; the ticket has
    // moved to B, whose copy (vip with B's address) now comes back to A.
    let mut a = origin("");
    a.walk_mut(&mut |e| {
        if e.name == "ticket_state" {
            e.set_attr("granted", "false");
        }
    });
    let mut at_b = scope_of(&origin(""));
    at_b.config.walk_mut(&mut |e| {
        if e.id() == Some("vip-ip") {
            e.set_attr("value", "10.2.1.10");
        }
    });
    let p = plan(&a, &at_b, Options::default()).unwrap();
    assert!(p.report.conflicts.is_empty(), "{:?}", p.report.conflicts);
    assert_eq!(p.report.adopted, ["resources:db", "resources:vip", "constraints:db-T", "constraints:vip-T", "constraints:vip-then-db"]);
    assert_eq!(p.report.changed, ["resources:vip"]);
    assert_eq!(p.cib.find_id("vip-ip").unwrap().attr("value"), Some("10.2.1.10"));
    assert_eq!(Ownership::read(&p.cib, "T").unwrap().owned.len(), 5);
    // From now on they are owned: the next version is an ordinary change.
    let again = plan(&p.cib, &at_b, Options::default()).unwrap();
    assert!(!again.changed);

    // An unowned element outside the local scope of T still conflicts: `db`
    // here is bound to another ticket only (which also leaves the order
    // between vip and db out of the local scope of T).
    let mut other = origin("");
    other.walk_mut(&mut |e| {
        if e.name == "ticket_state" {
            e.set_attr("granted", "false");
        }
        if e.id() == Some("db-T") {
            e.set_attr("ticket", "U");
        }
    });
    let p = plan(&other, &at_b, Options::default()).unwrap();
    assert_eq!(p.report.conflicts, ["resources:db", "constraints:db-T", "constraints:vip-then-db"]);
}

#[test]
fn local_edit_of_owned_element_is_drift_and_replication_wins() {
    let s = scope_of(&origin(""));
    let mut once = plan(&site_b(), &s, Options::default()).unwrap().cib;
    once.walk_mut(&mut |e| {
        if e.id() == Some("vip-ip") {
            e.set_attr("value", "10.9.9.9");
        }
    });
    let p = plan(&once, &s, Options::default()).unwrap();
    assert_eq!(p.report.drift, ["resources:vip"]);
    assert_eq!(p.report.changed, ["resources:vip"]);
    assert_eq!(p.cib.find_id("vip-ip").unwrap().attr("value"), Some("192.168.1.10"));
}

#[test]
fn refusals() {
    let s = scope_of(&origin(""));
    // Ticket granted here.
    let mut b = site_b();
    b.child_mut("status").unwrap().children.push(parse(r#"<tickets><ticket_state id="T" granted="true"/></tickets>"#).unwrap());
    assert_eq!(plan(&b, &s, Options::default()), Err(Error::TicketGrantedLocally("T".into())));
    // ... unless a lazy copy is written as the site takes the ticket.
    let materialized = plan(&b, &s, Options { materialize: true, ..Options::default() }).unwrap();
    assert!(materialized.changed && materialized.report.added.contains(&"resources:vip".to_string()), "{materialized:?}");
    // Scope without its rsc_ticket constraints.
    let mut no_tickets = s.clone();
    no_tickets.config.child_mut("constraints").unwrap().children.retain(|c| c.name != "rsc_ticket");
    no_tickets.config.child_mut("constraints").unwrap().children.clear();
    assert_eq!(plan(&site_b(), &no_tickets, Options::default()), Err(Error::NoTicketConstraint("T".into())));
    // A resource no rsc_ticket binds.
    let mut unbound = s.clone();
    unbound.config.child_mut("constraints").unwrap().children.retain(|c| c.id() == Some("vip-T"));
    assert!(matches!(plan(&site_b(), &unbound, Options::default()), Err(Error::Unbound { resource, .. }) if resource == "db"));
    // Older grant term than already applied.
    let once = plan(&site_b(), &s, Options::default()).unwrap().cib;
    let mut old = s.clone();
    old.term = Some(99);
    assert!(matches!(plan(&once, &old, Options::default()), Err(Error::StaleTerm { offered: 99, applied: 100, .. })));
    // A fencing device, however it got there.
    let mut fenced = s.clone();
    fenced.config.child_mut("resources").unwrap().children[0]
        .children.push(parse(r#"<primitive id="f" class="stonith" type="fence_xvm"/>"#).unwrap());
    assert_eq!(plan(&site_b(), &fenced, Options::default()), Err(Error::Fencing("f".into())));
    // Sections other than resources, constraints and tags.
    let mut nodes = s.clone();
    nodes.config.children.push(Element::new("nodes"));
    assert_eq!(plan(&site_b(), &nodes, Options::default()), Err(Error::ForeignSection("nodes".into())));
    // Dangling reference after a transform.
    let mut dangling = s.clone();
    dangling.config.child_mut("resources").unwrap().children.retain(|c| c.id() != Some("vip"));
    assert!(matches!(plan(&site_b(), &dangling, Options::default()), Err(Error::UnknownRef { .. })));
}

/// Site A's CIB with `n` primitives bound to T (one rsc_ticket each).
fn origin_with(n: usize) -> Element {
    let mut resources = String::new();
    let mut constraints = String::new();
    for i in 0..n {
        resources += &format!(r#"<primitive id="p{i}" {D}/>"#);
        constraints += &format!(r#"<rsc_ticket id="p{i}-T" rsc="p{i}" ticket="T" loss-policy="stop"/>"#);
    }
    parse(&format!(
        r#"<cib admin_epoch="0" epoch="10" num_updates="2"><configuration><crm_config/><nodes/>
        <resources>{resources}</resources><constraints>{constraints}</constraints>
        </configuration><status><tickets><ticket_state id="T" granted="true" last-granted="100"/></tickets></status></cib>"#
    ))
    .unwrap()
}

fn owned_tags(cib: &Element) -> Vec<(String, usize)> {
    cib.child("configuration")
        .and_then(|c| c.child("tags"))
        .map_or(vec![], |t| t.children.iter().map(|t| (t.id().unwrap().to_string(), t.children.len())).collect())
}

#[test]
fn the_owned_elements_are_listed_in_tags_of_at_most_a_thousand() {
    // 1,200 primitives and their rsc_tickets: 2,400 owned elements, 2,400
    // distinct ids.
    let p = plan(&site_b(), &scope_of(&origin_with(1200)), Options::default()).unwrap();
    assert_eq!(
        owned_tags(&p.cib),
        [("cib-replicator-T-owned".to_string(), 1000), ("cib-replicator-T-owned-2".to_string(), 1000), ("cib-replicator-T-owned-3".to_string(), 400)]
    );
    let own = Ownership::read(&p.cib, "T").unwrap();
    assert_eq!(own.owned.len(), 2400);
    assert!(!own.owned.values().any(|d| d == UNKNOWN_DIGEST), "the manifest did not match the tags' elements");

    // Fewer elements: the tags left over go.
    let p2 = plan(&p.cib, &scope_of(&origin_with(300)), Options::default()).unwrap();
    assert_eq!(owned_tags(&p2.cib), [("cib-replicator-T-owned".to_string(), 600)]);
    assert_eq!(Ownership::read(&p2.cib, "T").unwrap().owned.len(), 600);
    assert_eq!(ids(&p2.cib, "resources").len(), 301, "the 900 primitives no longer replicated were not removed");

    // Another ticket's tags, and a tag of the site's own with a lookalike
    // id, are not the record's.
    assert!(is_owned_tag("cib-replicator-T-owned-12", "T"));
    assert!(!is_owned_tag("cib-replicator-T-owned-x", "T"));
    assert!(!is_owned_tag("cib-replicator-T-owned-", "T"));
    assert!(!is_owned_tag("cib-replicator-T2-owned", "T"));
    assert!(!is_owned_tag("cib-replicator-T-owned-2-owned", "T"));
}

#[test]
fn a_record_in_one_big_tag_is_read_and_rewritten_in_tags_of_a_thousand() {
    // The record as the previous version wrote it: every owned id in one tag.
    let p = plan(&site_b(), &scope_of(&origin_with(1200)), Options::default()).unwrap();
    let mut earlier = p.cib.clone();
    let tags = earlier.child_mut("configuration").unwrap().child_mut("tags").unwrap();
    let all: Vec<Element> = tags.children.drain(..).flat_map(|t| t.children).collect();
    let mut one = Element::new("tag").with_attr("id", "cib-replicator-T-owned");
    one.children = all;
    tags.children.push(one);
    assert_eq!(owned_tags(&earlier), [("cib-replicator-T-owned".to_string(), 2400)]);
    let own = Ownership::read(&earlier, "T").unwrap();
    assert_eq!(own.owned.len(), 2400);
    assert!(!own.owned.values().any(|d| d == UNKNOWN_DIGEST));

    // The next apply writes it in the new shape.
    let mut origin = origin_with(1200);
    let resources = origin.child_mut("configuration").unwrap().child_mut("resources").unwrap();
    resources.children[7].set_attr("description", "changed");
    let next = plan(&earlier, &scope_of(&origin), Options::default()).unwrap();
    assert!(next.changed && next.report.drift.is_empty(), "{:?}", next.report);
    assert_eq!(owned_tags(&next.cib).iter().map(|t| t.1).collect::<Vec<_>>(), [1000, 1000, 400]);
}

/// The manifest's value in the record of `cib` for ticket T.
fn recorded_manifest(cib: &Element) -> String {
    let set = cib.find_id(&record_id("T")).unwrap();
    let nv = set.children.iter().find(|n| n.attr("name") == Some("owned-digest")).unwrap();
    nv.attr("value").unwrap().to_string()
}

#[test]
fn applied_digests_hash_to_the_recorded_manifest_and_read_back() {
    let scope = scope_of(&origin(""));
    let p = plan(&site_b(), &scope, Options::default()).unwrap();
    let digests = AppliedDigests::of(&scope.config);
    assert_eq!(digests.len(), 5);
    assert_eq!(digests.manifest(), recorded_manifest(&p.cib));
    // The text is what the manifest hashes: a kept file checks itself.
    assert_eq!(crate::canonical::digest_str(&digests.to_text()), recorded_manifest(&p.cib));
    assert_eq!(AppliedDigests::from_text(&digests.to_text()), Some(digests.clone()));
    assert_eq!(AppliedDigests::from_text(""), Some(AppliedDigests::default()));
    // Damaged: no digest, a digest with a space, keys out of order or repeated.
    let text = digests.to_text();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(AppliedDigests::from_text(&format!("{text}resources:x\n")), None);
    assert_eq!(AppliedDigests::from_text(&format!("{text}resources:zz a b\n")), None);
    lines.swap(0, 1);
    assert_eq!(AppliedDigests::from_text(&lines.join("\n")), None);
    assert_eq!(AppliedDigests::from_text(&format!("{}\n{}\n", lines[0], lines[0])), None);
}

#[test]
fn kept_digests_tell_which_owned_element_drifted() {
    let scope = scope_of(&origin(""));
    let kept = AppliedDigests::of(&scope.config);
    let mut b = plan(&site_b(), &scope, Options::default()).unwrap().cib;
    // An admin at B edits the replicated `vip`.
    b.walk_mut(&mut |e| {
        if e.id() == Some("vip-ip") {
            e.set_attr("value", "10.9.9.9");
        }
    });
    let edited = element_digest(b.find_id("vip").unwrap());
    // Without the digests applied, which element changed is unknown.
    let own = Ownership::read_with(&b, "T", None, None).unwrap();
    assert!(own.owned.values().all(|d| d == UNKNOWN_DIGEST), "{own:?}");
    // With them, each element's digest as applied: `vip` differs from it.
    let own = Ownership::read_with(&b, "T", Some(&kept), None).unwrap();
    assert_eq!(own.owned.len(), 5);
    assert_ne!(own.owned["resources:vip"], edited);
    assert_eq!(own.owned["resources:db"], element_digest(b.find_id("db").unwrap()));
    // Digests of another version are not taken for the ones applied.
    let mut next = scope.clone();
    next.config.walk_mut(&mut |e| {
        if e.id() == Some("vip-then-db") {
            e.set_attr("kind", "Optional");
        }
    });
    let other = AppliedDigests::of(&next.config);
    let own = Ownership::read_with(&b, "T", Some(&other), None).unwrap();
    assert!(own.owned.values().all(|d| d == UNKNOWN_DIGEST), "{own:?}");
    // The document arriving, when it is the one applied, serves as well.
    let own = Ownership::read_with(&b, "T", None, Some(&scope.config)).unwrap();
    assert_eq!(own.owned, Ownership::read_with(&b, "T", Some(&kept), None).unwrap().owned);
    // The next version changes the order upstream: with the digests
    // kept, only `vip` is drift; without them, the order is taken for one.
    let p = plan_with(&b, &next, Options::default(), Some(&kept)).unwrap();
    assert_eq!(p.report.drift, ["resources:vip"]);
    assert_eq!(p.report.changed, ["resources:vip", "constraints:vip-then-db"]);
    let p = plan_with(&b, &next, Options::default(), None).unwrap();
    let unsure = "(edited here or changed upstream: the document applied last is not at hand)";
    assert_eq!(p.report.drift, [format!("resources:vip {unsure}"), format!("constraints:vip-then-db {unsure}")]);
}
