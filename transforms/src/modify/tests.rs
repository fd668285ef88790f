use super::*;
use crate::testgen::{at, paths, random_edit, random_element};
use crate::xml::parse;

// ---------------------------------------------------------------------
// A model of how Pacemaker 2.1.5 applies `cibadmin --modify` of a
// document rooted at <cib> (cib_process_modify → update_xml_child →
// pcmk__xml_update, then cib_perform_op's version checks and counters).

/// Applies `doc` to `cib` as Pacemaker would, or says why it refuses.
fn pacemaker_modify(cib: &Element, doc: &Element) -> Result<Element, String> {
    assert_eq!(doc.name, "cib");
    let mut out = cib.clone();
    merge(&mut out, doc);
    let v = |e: &Element, f: &str| e.attr(f).map_or(0, |v| v.parse::<i64>().unwrap());
    let (old, new) = (
        (v(cib, "admin_epoch"), v(cib, "epoch")),
        (v(&out, "admin_epoch"), v(&out, "epoch")),
    );
    if old.0 > new.0 || (old.0 == new.0 && old.1 > new.1) {
        return Err("Update was older than existing configuration".into());
    }
    if out.child("configuration") != cib.child("configuration") {
        out.set_attr("epoch", (new.1 + 1).to_string());
        out.set_attr("num_updates", "0");
    } else {
        out.set_attr("num_updates", (v(cib, "num_updates") + 1).to_string());
    }
    Ok(out)
}

/// pcmk__xml_update(NULL, target, update, false): attributes set in place
/// (new ones appended), each child looked up (first match) or appended.
fn merge(target: &mut Element, update: &Element) {
    for (k, v) in &update.attrs {
        target.set_attr(k, v.clone());
    }
    for c in &update.children {
        let l = lookup(c);
        let i = match target
            .children
            .iter()
            .position(|t| found_by(t).any(|f| f == l))
        {
            Some(i) => i,
            None => {
                target.children.push(Element::new(c.name.clone()));
                target.children.len() - 1
            }
        };
        merge(&mut target.children[i], c);
    }
}

/// The document for `old` → `new`, or the test fails.
fn doc(old: &Element, new: &Element) -> Element {
    match guarded_modify(old, new) {
        Modify::Xml(xml) => parse(&xml).expect("the document parses"),
        other => panic!(
            "expected a document, got {other:?}\nold:\n{}\nnew:\n{}",
            old.to_xml(),
            new.to_xml()
        ),
    }
}

/// Whether `got` is `want` but for the counters Pacemaker sets.
fn same_but_counters(got: &Element, want: &Element) -> bool {
    let strip = |e: &Element| {
        let mut e = e.clone();
        e.remove_attr("epoch");
        e.remove_attr("num_updates");
        e
    };
    strip(got) == strip(want)
}

fn old() -> Element {
    parse(
        r#"<cib admin_epoch="0" epoch="7" num_updates="3" validate-with="pacemaker-3.9">
  <configuration>
    <crm_config/>
    <resources>
      <primitive id="a" class="ocf" provider="heartbeat" type="Dummy">
        <instance_attributes id="a-ia">
          <nvpair id="a-ia-x" name="x" value="1"/>
        </instance_attributes>
        <operations>
          <op id="a-mon" name="monitor" interval="10s"/>
        </operations>
      </primitive>
      <group id="g">
        <primitive id="g1" class="ocf" provider="heartbeat" type="Dummy"/>
      </group>
    </resources>
    <constraints>
      <rsc_ticket id="a-t" rsc="a" ticket="t"/>
    </constraints>
  </configuration>
  <status/>
</cib>"#,
    )
    .unwrap()
}

fn edited(edit: impl FnOnce(&mut Element)) -> Element {
    let mut new = old();
    new.set_attr("epoch", "8");
    edit(&mut new);
    new
}

fn resources(cib: &mut Element) -> &mut Element {
    cib.child_mut("configuration")
        .unwrap()
        .child_mut("resources")
        .unwrap()
}

fn unsupported(new: &Element) -> String {
    match guarded_modify(&old(), new) {
        Modify::Unsupported(why) => why,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

// ---------------------------------------------------------------------
// Examples

#[test]
fn a_value_change_is_one_path_of_lookups_under_the_guard() {
    let new = edited(|c| resources(c).children[0].children[0].children[0].set_attr("value", "2"));
    let d = doc(&old(), &new);
    assert_eq!(
        d.attrs,
        vec![
            ("admin_epoch".into(), "0".into()),
            ("epoch".into(), "7".into())
        ]
    );
    assert_eq!(
        d.to_xml(),
        r#"<cib admin_epoch="0" epoch="7">
  <configuration>
    <resources>
      <primitive id="a">
        <instance_attributes id="a-ia">
          <nvpair id="a-ia-x" name="x" value="2"/>
        </instance_attributes>
      </primitive>
    </resources>
  </configuration>
</cib>
"#
    );
    let applied = pacemaker_modify(&old(), &d).unwrap();
    assert!(same_but_counters(&applied, &new));
    assert_eq!(
        (applied.attr("epoch"), applied.attr("num_updates")),
        (Some("8"), Some("0"))
    );
}

#[test]
fn a_moved_on_configuration_refuses_the_document() {
    let new = edited(|c| resources(c).children[0].set_attr("description", "d"));
    let d = doc(&old(), &new);
    let mut moved_on = old();
    moved_on.set_attr("epoch", "8");
    assert!(pacemaker_modify(&moved_on, &d).is_err());
    let mut admin = old();
    admin.set_attr("admin_epoch", "1");
    admin.set_attr("epoch", "0");
    assert!(pacemaker_modify(&admin, &d).is_err());
    // The status alone moved on: still applies.
    let mut status = old();
    status.set_attr("num_updates", "9");
    assert!(pacemaker_modify(&status, &d).is_ok());
}

#[test]
fn appended_children_and_attributes_are_expressed() {
    let new = edited(|c| {
        let r = resources(c);
        r.children[0].set_attr("description", "appended attribute");
        r.children[1].children.push(
            Element::new("primitive")
                .with_attr("id", "g2")
                .with_attr("class", "ocf"),
        );
        r.children
            .push(Element::new("primitive").with_attr("id", "b").with_child(
                Element::new("operations").with_child(Element::new("op").with_attr("id", "b-mon")),
            ));
    });
    let d = doc(&old(), &new);
    assert!(same_but_counters(
        &pacemaker_modify(&old(), &d).unwrap(),
        &new
    ));
}

#[test]
fn nothing_changed_is_unchanged_whatever_the_epoch() {
    assert_eq!(guarded_modify(&old(), &old()), Modify::Unchanged);
    let mut bumped = old();
    bumped.set_attr("epoch", "8");
    assert_eq!(guarded_modify(&old(), &bumped), Modify::Unchanged);
}

#[test]
fn what_a_modify_cannot_do_is_unsupported() {
    let cases: Vec<(&str, Element)> = vec![
        (
            "deleted",
            edited(|c| {
                resources(c).children.remove(1);
            }),
        ),
        ("reordered", edited(|c| resources(c).children.reverse())),
        (
            "new children come before",
            edited(|c| {
                resources(c)
                    .children
                    .insert(0, Element::new("primitive").with_attr("id", "z"))
            }),
        ),
        (
            "removed or reordered",
            edited(|c| {
                resources(c).children[0].remove_attr("type");
            }),
        ),
        (
            "removed or reordered",
            edited(|c| resources(c).children[0].attrs.reverse()),
        ),
        (
            "increment",
            edited(|c| {
                resources(c).children[0].children[0].children[0].set_attr("value", "value++")
            }),
        ),
        (
            "would update an earlier sibling",
            edited(|c| {
                resources(c).children.push(
                    Element::new("primitive")
                        .with_attr("id", "n")
                        .with_child(Element::new("operations"))
                        .with_child(Element::new("operations")),
                )
            }),
        ),
        (
            "would update the",
            edited(|c| {
                let r = resources(c);
                r.children.push(Element::new("template"));
                r.children
                    .push(Element::new("template").with_attr("class", "ocf"));
            }),
        ),
        (
            "text",
            edited(|c| resources(c).children[0].text = "t".into()),
        ),
        (
            "<cib> element's attributes",
            edited(|c| c.set_attr("validate-with", "pacemaker-3.10")),
        ),
    ];
    for (want, new) in cases {
        let why = unsupported(&new);
        assert!(why.contains(want), "expected {want:?} in {why:?}");
    }
}

#[test]
fn a_first_replication_is_left_to_the_patch() {
    let new = edited(|c| {
        let r = resources(c);
        for i in 0..=MAX_CREATES_IN_PLACE {
            r.children
                .push(Element::new("primitive").with_attr("id", format!("many-{i}")));
        }
    });
    assert!(unsupported(&new).contains("new children"));
    let few = edited(|c| {
        let r = resources(c);
        for i in 0..MAX_CREATES_IN_PLACE {
            r.children
                .push(Element::new("primitive").with_attr("id", format!("many-{i}")));
        }
    });
    assert!(matches!(guarded_modify(&old(), &few), Modify::Xml(_)));
}

#[test]
fn an_element_found_by_tag_must_be_the_only_one() {
    // Two <operations> in the old list: the lookup by tag finds the first,
    // so a change meant for the second cannot be expressed.
    let mut old = old();
    resources(&mut old).children[0]
        .children
        .push(Element::new("operations"));
    let mut new = old.clone();
    resources(&mut new).children[0].children[2]
        .children
        .push(Element::new("op").with_attr("id", "x"));
    assert!(matches!(guarded_modify(&old, &new), Modify::Unsupported(_)));
}

// ---------------------------------------------------------------------
// Random trees

fn random_old(rng: &mut fastrand::Rng, unique: bool, fresh: &mut usize) -> Element {
    let mut config = random_element(rng, 3, unique, fresh);
    config.name = "configuration".into();
    config.attrs.clear();
    Element::new("cib")
        .with_attr("admin_epoch", "0")
        .with_attr("epoch", "1")
        .with_attr("num_updates", "0")
        .with_child(config)
}

/// Any random edits: whenever a document comes out, Pacemaker's merge of
/// it gives exactly the new CIB, and it is refused once the epoch moved.
#[test]
fn random_edits_apply_exactly_or_are_left_to_the_patch() {
    let mut expressed = 0;
    let cases = 3000;
    for seed in 0..cases {
        let unique = seed % 2 == 0;
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut fresh = 0;
        let old = random_old(&mut rng, unique, &mut fresh);
        let mut new = old.clone();
        new.set_attr("epoch", "2");
        for _ in 0..1 + rng.usize(..3) {
            random_edit(&mut rng, &mut new.children[0], unique, &mut fresh);
        }
        match guarded_modify(&old, &new) {
            Modify::Unchanged => assert!(
                old.children == new.children,
                "seed {seed}: Unchanged for a change"
            ),
            Modify::Unsupported(_) => {}
            Modify::Xml(xml) => {
                expressed += 1;
                let d = parse(&xml).unwrap();
                let applied =
                    pacemaker_modify(&old, &d).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                assert!(
                    same_but_counters(&applied, &new),
                    "seed {seed}: wrong result\nold:\n{}\nnew:\n{}\ndoc:\n{xml}\napplied:\n{}",
                    old.to_xml(),
                    new.to_xml(),
                    applied.to_xml()
                );
                assert_eq!(applied.attr("epoch"), Some("2"));
                let mut moved_on = old.clone();
                moved_on.set_attr("epoch", "2");
                assert!(
                    pacemaker_modify(&moved_on, &d).is_err(),
                    "seed {seed}: not refused"
                );
            }
        }
    }
    // About a third of random edits only set attributes or add children.
    assert!(
        expressed * 5 > cases,
        "only {expressed} of {cases} expressed"
    );
}

/// Edits a modify can express (attribute values set, attributes and
/// children appended) on trees with unique sibling keys always give a
/// document.
#[test]
fn settings_and_additions_are_always_expressed() {
    for seed in 0..2000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut fresh = 0;
        let old = random_old(&mut rng, true, &mut fresh);
        let mut new = old.clone();
        new.set_attr("epoch", "2");
        for _ in 0..1 + rng.usize(..4) {
            let mut all = vec![Vec::new()];
            paths(&new.children[0], &mut Vec::new(), &mut all);
            let el = at(&mut new.children[0], &all[rng.usize(..all.len())]);
            if rng.bool() {
                el.set_attr(
                    &format!("k{}", rng.usize(..6)),
                    format!("w{}", rng.usize(..3)),
                );
            } else {
                fresh += 1;
                el.children
                    .push(Element::new("a").with_attr("id", format!("n{fresh}")));
            }
        }
        match guarded_modify(&old, &new) {
            Modify::Xml(xml) => {
                let applied = pacemaker_modify(&old, &parse(&xml).unwrap()).unwrap();
                assert!(
                    same_but_counters(&applied, &new),
                    "seed {seed}: wrong result"
                );
            }
            Modify::Unchanged => assert!(old.children == new.children),
            Modify::Unsupported(why) => panic!(
                "seed {seed}: {why}\nold:\n{}\nnew:\n{}",
                old.to_xml(),
                new.to_xml()
            ),
        }
    }
}
