//! Property tests over generated configurations: scope closure, digest
//! stability, merge idempotence and ownership.

use proptest::prelude::*;

use cib_transforms::canonical::digest;
use cib_transforms::merge::{plan, Options, Ownership};
use cib_transforms::scope::scope;
use cib_transforms::validate::check_fragment;
use cib_transforms::xml::{parse, Element};

/// A generated CIB: `n` primitives, some in groups, one fencing device,
/// rsc_tickets for tickets T/U, and random order/colocation constraints.
#[derive(Debug, Clone)]
struct Gen {
    n: usize,
    groups: Vec<(usize, usize)>,
    tickets: Vec<(usize, bool)>,
    pairs: Vec<(usize, usize, bool)>,
    values: Vec<u8>,
}

fn gen() -> impl Strategy<Value = Gen> {
    (3usize..14).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::vec((0..n, 1usize..3), 0..3),
            proptest::collection::vec((0..n, any::<bool>()), 1..5),
            proptest::collection::vec((0..n, 0..n, any::<bool>()), 0..8),
            proptest::collection::vec(any::<u8>(), n),
        )
            .prop_map(|(n, groups, tickets, pairs, values)| Gen { n, groups, tickets, pairs, values })
    })
}

impl Gen {
    /// Index of the group holding primitive `i`, if any (groups may not overlap).
    fn layout(&self) -> Vec<Option<usize>> {
        let mut owner = vec![None; self.n];
        for (g, (start, len)) in self.groups.iter().enumerate() {
            let range = *start..(*start + len).min(self.n);
            if range.clone().all(|i| owner[i].is_none()) {
                for i in range {
                    owner[i] = Some(g);
                }
            }
        }
        owner
    }

    fn cib(&self) -> Element {
        let owner = self.layout();
        let prim = |i: usize| {
            format!(
                r#"<primitive id="p{i}" class="ocf" provider="pacemaker" type="Dummy"><instance_attributes id="p{i}-ia"><nvpair id="p{i}-v" name="v" value="{}"/></instance_attributes></primitive>"#,
                self.values[i]
            )
        };
        let mut resources = String::from(r#"<primitive id="fence" class="stonith" type="fence_xvm"/>"#);
        let mut done = vec![false; self.n];
        for i in 0..self.n {
            if done[i] {
                continue;
            }
            match owner[i] {
                None => {
                    resources += &prim(i);
                    done[i] = true;
                }
                Some(g) => {
                    resources += &format!(r#"<group id="g{g}">"#);
                    for (j, o) in owner.iter().enumerate() {
                        if *o == Some(g) {
                            resources += &prim(j);
                            done[j] = true;
                        }
                    }
                    resources += "</group>";
                }
            }
        }
        let mut constraints = String::new();
        for (k, (i, t)) in self.tickets.iter().enumerate() {
            let ticket = if *t { "T" } else { "U" };
            constraints += &format!(r#"<rsc_ticket id="tk{k}" rsc="p{i}" ticket="{ticket}"/>"#);
        }
        // Always one T ticket, naming the fencing device too.
        constraints += r#"<rsc_ticket id="tkT" ticket="T"><resource_set id="tkT-s"><resource_ref id="p0"/><resource_ref id="fence"/></resource_set></rsc_ticket>"#;
        for (k, (a, b, order)) in self.pairs.iter().enumerate() {
            constraints += &if *order {
                format!(r#"<rsc_order id="c{k}" first="p{a}" then="p{b}"/>"#)
            } else {
                format!(r#"<rsc_colocation id="c{k}" rsc="p{a}" with-rsc="p{b}" score="INFINITY"/>"#)
            };
        }
        parse(&format!(
            r#"<cib epoch="1" num_updates="0" admin_epoch="0"><configuration><crm_config/><nodes/><resources>{resources}</resources><constraints>{constraints}</constraints></configuration><status/></cib>"#
        ))
        .expect("generated CIB parses")
    }
}

fn shuffled(el: &Element, seed: u64) -> Element {
    let mut e = el.clone();
    let mut s = seed;
    e.walk_mut(&mut |x| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let n = x.attrs.len().max(1);
        x.attrs.rotate_left((s >> 33) as usize % n);
        if x.name == "resources" || x.name == "constraints" {
            let len = x.children.len().max(1);
            x.children.rotate_left((s >> 40) as usize % len);
            x.children.reverse();
        }
    });
    e
}

fn site_b() -> Element {
    parse(r#"<cib epoch="3" num_updates="0" admin_epoch="0"><configuration><crm_config/><nodes/><resources><primitive id="local" class="ocf" provider="pacemaker" type="Dummy"/></resources><constraints/></configuration><status/></cib>"#).unwrap()
}

proptest! {
    #[test]
    fn scope_is_closed_and_complete(g in gen()) {
        let cib = g.cib();
        let s = scope(&cib, "T").unwrap();
        check_fragment(&s.config).unwrap();
        let xml = s.config.to_xml();
        prop_assert!(!xml.contains("stonith"));
        for (k, (i, t)) in g.tickets.iter().enumerate() {
            if *t {
                let (tk, p) = (format!("tk{k}"), format!("p{i}"));
                prop_assert!(s.config.find_id(&tk).is_some(), "{} missing", tk);
                prop_assert!(s.config.find_id(&p).is_some(), "{} missing", p);
            }
        }
        // Scoping the scope again changes nothing.
        let again_cib = Element::new("cib").with_child(s.config.clone());
        let again = scope(&again_cib, "T").unwrap();
        prop_assert_eq!(again.config, s.config);
    }

    #[test]
    fn digest_is_stable_under_reordering(g in gen(), seed in any::<u64>()) {
        let cib = g.cib();
        let a = scope(&cib, "T").unwrap();
        let b = scope(&shuffled(&cib, seed), "T").unwrap();
        prop_assert_eq!(&a.digest, &b.digest);
        prop_assert_eq!(digest(&a.config), a.digest.clone());
    }

    #[test]
    fn digest_changes_with_a_replicated_value(g in gen()) {
        let cib = g.cib();
        let a = scope(&cib, "T").unwrap();
        let mut changed = g.clone();
        changed.values[0] = changed.values[0].wrapping_add(1);
        let b = scope(&changed.cib(), "T").unwrap();
        prop_assert_ne!(a.digest, b.digest);
    }

    #[test]
    fn merge_is_idempotent_and_keeps_local(g in gen()) {
        let s = scope(&g.cib(), "T").unwrap();
        let b = site_b();
        let once = plan(&b, &s, Options::default()).unwrap();
        prop_assert!(once.changed);
        prop_assert_eq!(once.cib.find_id("local"), b.find_id("local"));
        let owned = Ownership::read(&once.cib, "T").unwrap().owned.len();
        let incoming: usize = ["resources", "constraints", "tags"].iter()
            .map(|sec| s.config.child(sec).map_or(0, |x| x.children.len())).sum();
        prop_assert_eq!(owned, incoming);
        let twice = plan(&once.cib, &s, Options::default()).unwrap();
        prop_assert!(!twice.changed);
        prop_assert_eq!(twice.cib, once.cib);
    }
}
