//! Sweeps the 854 real CIBs of Pacemaker's scheduler regression suite.
//!
//! The corpus lives outside the repository (`../shared/corpus/pacemaker-scheduler`
//! next to the checkout, or `$CIB_CORPUS`). In CI (`CI` set) a missing corpus
//! fails the test; elsewhere it is skipped with a message.

use std::collections::BTreeSet;

use cib_transforms::cib::{self, constraint_refs, Index};
use cib_transforms::scope::{cut, scope, Scope};
use cib_transforms::validate::check_fragment;
use cib_transforms::xml::{parse, Element};

mod common;

/// `<file> <ticket> <digest>` of every scope of the corpus, as published
/// before: an upgrade must not change a digest (sites running the earlier
/// version would see a change that is none).
const KNOWN_DIGESTS: &str = include_str!("data/corpus-digests.txt");
use common::corpus;

fn tickets(cib: &Element) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    cib.walk(&mut |el| {
        if el.name == "rsc_ticket" {
            if let Some(t) = el.attr("ticket") {
                out.insert(t.to_string());
            }
        }
    });
    out
}

/// The same CIB with the children of resources/constraints/tags reversed.
fn reordered(cib: &Element) -> Element {
    let mut c = cib.clone();
    let config = cib::configuration_mut(&mut c).unwrap();
    for section in ["resources", "constraints", "tags"] {
        if let Some(s) = config.child_mut(section) {
            s.children.reverse();
        }
    }
    config.children.reverse();
    c
}

#[test]
fn every_corpus_cib_parses_and_every_ticket_scopes_correctly() {
    let Some(files) = corpus() else { return };
    assert_eq!(files.len(), 854, "expected the full corpus");
    let mut ticket_cibs = 0;
    let mut scopes = 0;
    let mut known_checked = 0;
    for (name, text) in &files {
        let cib = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let config = cib::configuration(&cib).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ts = tickets(&cib);
        if ts.is_empty() {
            continue;
        }
        ticket_cibs += 1;
        let ix = Index::new(config);
        for t in &ts {
            let s = scope(&cib, t).unwrap_or_else(|e| panic!("{name} ticket {t}: {e}"));
            scopes += 1;
            // Moving the elements out gives the same scope as copying them.
            assert_eq!(cut(cib.clone(), t).as_ref(), Ok(&s), "{name} {t}: cut");
            let resources = s.config.child("resources").unwrap();
            let tops: BTreeSet<&str> = resources.children.iter().filter_map(|r| r.id()).collect();
            let cons: BTreeSet<&str> = s.config.child("constraints").unwrap().children.iter().filter_map(|c| c.id()).collect();
            // Every rsc_ticket of the ticket, and every resource it names, at top level.
            config.child("constraints").unwrap().walk(&mut |c| {
                if c.name == "rsc_ticket" && c.attr("ticket") == Some(t.as_str()) {
                    let id = c.id().unwrap();
                    assert!(cons.contains(id), "{name} {t}: rsc_ticket {id} missing");
                    for (_, r) in constraint_refs(c) {
                        for top in ix.resolve(r).unwrap().tops {
                            if !ix.fencing.contains(top) {
                                assert!(tops.contains(top), "{name} {t}: {r} -> {top} missing");
                            }
                        }
                    }
                }
            });
            // No fencing device anywhere.
            s.config.walk(&mut |el| {
                assert!(!cib::is_stonith(el), "{name} {t}: fencing device {:?} in scope", el.id());
            });
            // Only resources, constraints, tags.
            for c in &s.config.children {
                assert!(["resources", "constraints", "tags"].contains(&c.name.as_str()), "{name}: {}", c.name);
            }
            // No dangling reference, no duplicate id.
            check_fragment(&s.config).unwrap_or_else(|e| panic!("{name} {t}: {e}"));
            // Digest stable: through the published document, and under reordering.
            let doc = s.to_document().to_xml();
            assert_eq!(s.to_document_xml(), doc, "{name} {t}: document without copy");
            // The digest every earlier version published for this scope.
            let known = KNOWN_DIGESTS
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| match l.split(' ').collect::<Vec<_>>()[..] {
                    [file, ticket, digest] if file == name.as_str() && ticket == t.as_str() => Some(digest),
                    _ => None,
                });
            assert_eq!(known, Some(s.digest.as_str()), "{name} {t}: the published digest changed");
            known_checked += 1;
            // What a subscriber accepts: the scope rules hold on the scope itself.
            let back = Scope::from_published(parse(&doc).unwrap(), Some(t)).unwrap_or_else(|e| panic!("{name} {t}: {e}"));
            assert_eq!(back.digest, s.digest, "{name} {t}");
            let again = scope(&reordered(&cib), t).unwrap();
            assert_eq!(again.digest, s.digest, "{name} {t}: digest depends on order");
            assert_eq!(again.config, s.config, "{name} {t}");
        }
    }
    // 115 corpus files carry rsc_ticket constraints (a few only in non-ticket tests).
    assert!(ticket_cibs >= 112, "only {ticket_cibs} CIBs with tickets");
    assert_eq!(known_checked, KNOWN_DIGESTS.lines().filter(|l| !l.starts_with('#')).count(), "every known digest checked");
    eprintln!("{ticket_cibs} CIBs with tickets, {scopes} scopes checked");
}
