use super::*;
use crate::xml::parse;

fn cib(resources: &str, constraints: &str, tags: &str) -> Element {
    parse(&format!(
        r#"<cib admin_epoch="0" epoch="7" num_updates="3"><configuration><crm_config/><nodes/>
        <resources>{resources}</resources><constraints>{constraints}</constraints><tags>{tags}</tags>
        </configuration><status><tickets><ticket_state id="T" granted="true" last-granted="1700000000"/></tickets></status></cib>"#
    ))
    .unwrap()
}

fn top_ids(s: &Scope) -> Vec<String> {
    s.config
        .child("resources")
        .unwrap()
        .children
        .iter()
        .map(|c| c.id().unwrap().to_string())
        .collect()
}

fn constraint_ids(s: &Scope) -> Vec<String> {
    s.config
        .child("constraints")
        .unwrap()
        .children
        .iter()
        .map(|c| c.id().unwrap().to_string())
        .collect()
}

const D: &str = r#"class="ocf" provider="pacemaker" type="Dummy""#;

#[test]
fn rsc_form_brings_top_level_group() {
    let c = cib(
        &format!(r#"<group id="g"><primitive id="a" {D}/><primitive id="b" {D}/></group><primitive id="other" {D}/>"#),
        r#"<rsc_ticket id="t1" rsc="a" ticket="T" loss-policy="stop"/>"#,
        "",
    );
    let s = scope(&c, "T").unwrap();
    assert_eq!(top_ids(&s), ["g"]);
    assert_eq!(constraint_ids(&s), ["t1"]);
    assert_eq!(s.version.as_deref(), Some("0.7.3"));
    assert_eq!(s.term, Some(1700000000));
    assert!(s.config.child("tags").is_none());
}

#[test]
fn resource_set_form_with_clone_master_bundle() {
    let c = cib(
        &format!(
            r#"<clone id="cl"><primitive id="c1" {D}/></clone>
            <master id="ms"><primitive id="m1" {D}/></master>
            <bundle id="bu"><docker image="x"/><primitive id="b1" {D}/></bundle>
            <clone id="prom"><meta_attributes id="pm"><nvpair id="pm1" name="promotable" value="true"/></meta_attributes><primitive id="p1" {D}/></clone>
            <primitive id="z" {D}/>"#
        ),
        r#"<rsc_ticket id="t1" ticket="T"><resource_set id="s1"><resource_ref id="c1"/><resource_ref id="ms"/></resource_set>
           <resource_set id="s2"><resource_ref id="b1"/><resource_ref id="p1"/></resource_set></rsc_ticket>"#,
        "",
    );
    let s = scope(&c, "T").unwrap();
    assert_eq!(top_ids(&s), ["bu", "cl", "ms", "prom"]);
}

#[test]
fn tags_and_templates() {
    let c = cib(
        &format!(
            r#"<template id="tpl" {D}/><primitive id="a" template="tpl"/><primitive id="b" {D}/>
            <primitive id="c" {D}/><primitive id="fence" class="stonith" type="fence_xvm"/><primitive id="u" template="tpl2"/>
            <template id="tpl2" {D}/>"#
        ),
        r#"<rsc_ticket id="t1" rsc="tg" ticket="T"/>
           <rsc_order id="o1" first="tg" then="c"/>
           <rsc_colocation id="col" rsc="b" with-rsc="a" score="INFINITY"/>"#,
        r#"<tag id="tg"><obj_ref id="a"/><obj_ref id="b"/><obj_ref id="fence"/></tag><tag id="unused"><obj_ref id="c"/></tag>"#,
    );
    let s = scope(&c, "T").unwrap();
    assert_eq!(top_ids(&s), ["a", "b", "tpl"]);
    assert_eq!(constraint_ids(&s), ["col", "t1"]);
    let tags = s.config.child("tags").unwrap();
    assert_eq!(tags.children.len(), 1);
    let refs: Vec<_> = tags.children[0].children.iter().map(|r| r.id().unwrap()).collect();
    assert_eq!(refs, ["a", "b"], "fencing member removed from the tag");
    let lo: Vec<_> = s.left_out.iter().map(|l| (l.id.as_str(), l.reason.as_str())).collect();
    assert!(lo.iter().any(|(id, r)| *id == "fence" && r.contains("fencing")), "{lo:?}");
    assert!(lo.iter().any(|(id, r)| *id == "o1" && r.contains("outside")), "{lo:?}");
}

#[test]
fn template_reference_brings_all_users() {
    let c = cib(
        &format!(r#"<template id="tpl" {D}/><primitive id="a" template="tpl"/><group id="g"><primitive id="b" template="tpl"/></group>"#),
        r#"<rsc_ticket id="t1" rsc="tpl" ticket="T"/>"#,
        "",
    );
    assert_eq!(top_ids(&scope(&c, "T").unwrap()), ["a", "g", "tpl"]);
}

#[test]
fn other_constraints_inside_scope_kept_pattern_and_node_reported() {
    let c = cib(
        &format!(r#"<primitive id="a" {D}/><primitive id="b" {D}/><primitive id="x" {D}/>"#),
        r##"<rsc_ticket id="t1" ticket="T"><resource_set id="s"><resource_ref id="a"/><resource_ref id="b"/></resource_set></rsc_ticket>
           <rsc_order id="o" first="a" then="b"/>
           <rsc_ticket id="other" rsc="a" ticket="U"/>
           <rsc_location id="pat" rsc-pattern="^[ab]$" node="n1" score="10"/>
           <rsc_location id="pin" rsc="a" node="n1" score="10"/>
           <rsc_location id="rule-uname" rsc="b"><rule id="r" score="10"><expression id="e" attribute="#uname" operation="eq" value="n2"/></rule></rsc_location>
           <rsc_location id="rule-attr" rsc="b"><rule id="r2" score="10"><expression id="e2" attribute="site" operation="eq" value="x"/></rule></rsc_location>
           <rsc_colocation id="unrelated" rsc="x" with-rsc="x"/>"##,
        "",
    );
    let s = scope(&c, "T").unwrap();
    assert_eq!(constraint_ids(&s), ["o", "other", "rule-attr", "t1"]);
    let lo: Vec<_> = s.left_out.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(lo, ["pat", "pin", "rule-uname"], "{:?}", s.left_out);
}

#[test]
fn errors_without_rsc_ticket_or_with_unknown_reference() {
    let c = cib(&format!(r#"<primitive id="a" {D}/>"#), r#"<rsc_ticket id="t1" rsc="a" ticket="U"/>"#, "");
    assert_eq!(scope(&c, "T"), Err(Error::NoTicketConstraint("T".into())));
    let c = cib(&format!(r#"<primitive id="a" {D}/>"#), r#"<rsc_ticket id="t1" rsc="nope" ticket="T"/>"#, "");
    match scope(&c, "T") {
        Err(Error::UnknownRef { owner, target, .. }) => assert_eq!((owner.as_str(), target.as_str()), ("t1", "nope")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn foreign_id_ref_is_inlined_once() {
    let c = cib(
        &format!(
            r#"<primitive id="shared" {D}><operations id="ops"><op id="m" name="monitor" interval="10s"/></operations></primitive>
            <primitive id="a" {D}><operations id-ref="ops"/></primitive>
            <primitive id="b" {D}><operations id-ref="ops"/></primitive>"#
        ),
        r#"<rsc_ticket id="t1" ticket="T"><resource_set id="s"><resource_ref id="a"/><resource_ref id="b"/></resource_set></rsc_ticket>"#,
        "",
    );
    let s = scope(&c, "T").unwrap();
    let xml = s.config.to_xml();
    assert_eq!(xml.matches(r#"<operations id="ops">"#).count(), 1, "{xml}");
    assert_eq!(xml.matches(r#"id-ref="ops""#).count(), 1, "{xml}");
    assert!(xml.contains(r#"<op id="m""#));
}

#[test]
fn digest_ignores_unrelated_order_and_changes_with_meaning() {
    let r1 = format!(r#"<primitive id="a" {D}/><primitive id="b" {D}/><primitive id="x" {D}/>"#);
    let r2 = format!(r#"<primitive id="x" {D}/><primitive id="b" {D}/><primitive {D} id="a"/>"#);
    let cons1 = r#"<rsc_ticket id="t1" rsc="a" ticket="T"/><rsc_ticket id="t2" rsc="b" ticket="T"/>"#;
    let cons2 = r#"<rsc_ticket id="t2" rsc="b" ticket="T"/><rsc_order id="o" first="x" then="x"/><rsc_ticket id="t1" ticket="T" rsc="a"/>"#;
    let a = scope(&cib(&r1, cons1, ""), "T").unwrap();
    let b = scope(&cib(&r2, cons2, ""), "T").unwrap();
    assert_eq!(a.digest, b.digest);
    let r3 = format!(r#"<primitive id="a" {D}/><primitive id="b" class="ocf" provider="heartbeat" type="Dummy"/>"#);
    let c = scope(&cib(&r3, cons1, ""), "T").unwrap();
    assert_ne!(a.digest, c.digest);
}

#[test]
fn document_round_trip_verifies_digest() {
    let c = cib(
        &format!(r#"<primitive id="a" {D}/><primitive id="f" class="stonith" type="fence_xvm"/>"#),
        r#"<rsc_ticket id="t1" ticket="T"><resource_set id="s"><resource_ref id="a"/><resource_ref id="f"/></resource_set></rsc_ticket>"#,
        "",
    );
    let s = scope(&c, "T").unwrap();
    let text = s.to_document().to_xml();
    let back = Scope::from_document(parse(&text).unwrap(), Some("T")).unwrap();
    assert_eq!(back, s);
    assert!(matches!(
        Scope::from_document(parse(&text).unwrap(), Some("U")),
        Err(Error::WrongTicket { .. })
    ));
    let tampered = text.replace(r#"type="Dummy""#, r#"type="Stateful""#);
    assert!(matches!(
        Scope::from_document(parse(&tampered).unwrap(), None),
        Err(Error::DigestMismatch { .. })
    ));
}

#[test]
fn undefined_template_is_not_a_panic() {
    let c = cib(
        r#"<primitive id="a" template="missing"/>"#,
        r#"<rsc_ticket id="t1" rsc="a" ticket="T"/>"#,
        "",
    );
    let s = scope(&c, "T").unwrap();
    assert_eq!(top_ids(&s), ["a"]);
}
