//! The compact tree ([`Doc`]) and the scope over it ([`DocScope`]) give
//! exactly what the owned tree gives: same tree, same published document
//! (byte for byte), same digest, same left-out list, same errors, same
//! rule results and change lines — over the 854 CIBs of Pacemaker's
//! scheduler regression suite and over rewritten variants of them.
//!
//! The corpus lives outside the repository (`../shared/corpus/pacemaker-scheduler`
//! next to the checkout, or `$CIB_CORPUS`). In CI (`CI` set) a missing corpus
//! fails the test; elsewhere it is skipped with a message.

use std::collections::BTreeSet;

use cib_transforms::canonical::{canonicalize, digest};
use cib_transforms::doc::Doc;
use cib_transforms::node::Node;
use cib_transforms::rules::RuleSet;
use cib_transforms::scope::{cut, DocScope, Scope};
use cib_transforms::xml::parse;

mod common;
use common::corpus;

/// Every ticket named by an `rsc_ticket`, plus one that none names.
fn tickets_of(doc: &Doc<'_>) -> BTreeSet<String> {
    let mut out = BTreeSet::from(["no-such-ticket".to_string()]);
    doc.root().walk(&mut |el| {
        if el.name() == "rsc_ticket" {
            if let Some(t) = el.attr("ticket") {
                out.insert(t.to_string());
            }
        }
    });
    out
}

/// Rules touching what the corpus holds: addresses, paths, and a regex on
/// nvpair values (all value rewrites, so both trees run them).
const RULES: &str = r#"
[[rule]]
type = "ip"
from = "192.168.0.0/16"
to = "10.9.0.0/16"

[[rule]]
type = "path"
from = "/var/lib"
to = "/srv/lib"

[[rule]]
type = "regex"
pattern = "^([0-9]+)$"
replace = "${1}s"
attributes = ["value", "interval", "timeout"]
"#;

#[test]
fn compact_tree_and_scope_equal_the_owned_ones_on_the_corpus() {
    let Some(files) = corpus() else { return };
    let rules = RuleSet::from_toml(RULES, "corpus-rules.toml").unwrap();
    let (mut scopes, mut changed) = (0, 0);
    for (name, text) in &files {
        let owned = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut doc = Doc::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.root().to_element(), owned, "{name}: same tree");
        for ticket in tickets_of(&doc) {
            let expected = cut(owned.clone(), &ticket);
            let got = DocScope::cut(&mut doc, &ticket);
            let (expected, got) = match (expected, got) {
                (Err(a), Err(b)) => {
                    assert_eq!(a.to_string(), b.to_string(), "{name} {ticket}: same error");
                    continue;
                }
                (Ok(a), Ok(b)) => (a, b),
                (a, b) => panic!("{name} {ticket}: {a:?} vs {b:?}"),
            };
            scopes += 1;
            assert_eq!(got.digest.as_deref(), Some(expected.digest.as_str()), "{name} {ticket}: digest");
            assert_eq!(got.left_out, expected.left_out, "{name} {ticket}: left out");
            assert_eq!((&got.version, got.term), (&expected.version, expected.term), "{name} {ticket}");
            let (document, published) = got.document_and_digest(&doc);
            assert_eq!(published, expected.digest, "{name} {ticket}: digest written");
            assert_eq!(document, expected.to_document_xml(), "{name} {ticket}: published document");
            assert_eq!(got.to_scope(&doc), expected, "{name} {ticket}: owned copy");

            // The subscriber's side: read the document back, rewrite, digest.
            let mut expected = Scope::from_document(parse(&document).unwrap(), Some(&ticket)).unwrap();
            let mut back = Doc::parse(&document).unwrap();
            let read = DocScope::from_document(&back, Some(&ticket)).unwrap();
            assert_eq!(read.digest.as_deref(), Some(expected.digest.as_str()), "{name} {ticket}: digest read back");
            // Verified over a guess of the content: the right guess and a
            // wrong one give the same scope.
            let mut content = String::new();
            read.write_content(&back, &mut content);
            let guessed = DocScope::from_document_guessed(&back, Some(&ticket), content.as_bytes()).unwrap();
            assert_eq!(guessed, (read.clone(), true), "{name} {ticket}: guessed content");
            content.push('\n');
            let guessed = DocScope::from_document_guessed(&back, Some(&ticket), content.as_bytes()).unwrap();
            assert_eq!(guessed, (read.clone(), false), "{name} {ticket}: wrong guess");
            let want = rules.apply(&mut expected.config).unwrap();
            let roots: Vec<u32> = read.elements(&back).iter().map(|n| n.index()).collect();
            let lines = rules.apply_doc(&mut back, &roots).expect("value rules run on a Doc").unwrap();
            assert_eq!(lines, want, "{name} {ticket}: change lines");
            canonicalize(&mut expected.config);
            assert_eq!(read.content_digest(&back), digest(&expected.config), "{name} {ticket}: digest after rules");
            changed += usize::from(!lines.is_empty());
        }
    }
    assert!(scopes >= 100, "only {scopes} scopes compared");
    assert!(changed >= 10, "the rules changed only {changed} scopes: they test nothing");
}

#[test]
fn rules_the_doc_cannot_run_are_declined() {
    let doc_text = r#"<configuration replicator-ticket="t" replicator-digest="x"><resources/></configuration>"#;
    let mut doc = Doc::parse(doc_text).unwrap();
    for src in [
        "[[rule]]\ntype = \"drop\"\nid = \"x\"\n",
        "[[rule]]\ntype = \"set\"\nresource = \"r\"\nname = \"n\"\nvalue = \"v\"\n",
        "[[rule]]\ntype = \"ip\"\nfrom = \"10.0.0.0/8\"\nto = \"11.0.0.0/8\"\nresource = \"r\"\n",
    ] {
        let rules = RuleSet::from_toml(src, "r.toml").unwrap();
        assert!(rules.apply_doc(&mut doc, &[0]).is_none(), "{src}");
    }
}

#[test]
fn a_tampered_document_is_refused_by_both() {
    let cib = r#"<cib admin_epoch="0" epoch="1" num_updates="0"><configuration><resources>
      <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
        <instance_attributes id="vip-ia"><nvpair id="vip-ip" name="ip" value="192.168.1.10"/></instance_attributes>
      </primitive></resources>
      <constraints><rsc_ticket id="t1" rsc="vip" ticket="geo"/></constraints></configuration><status/></cib>"#;
    let mut doc = Doc::parse(cib).unwrap();
    let scope = DocScope::cut(&mut doc, "geo").unwrap();
    let document = scope.to_document_xml(&doc);
    let tampered = document.replace("192.168.1.10", "192.168.1.11");
    let owned = Scope::from_document(parse(&tampered).unwrap(), None).unwrap_err();
    let compact = DocScope::from_document(&Doc::parse(&tampered).unwrap(), None).unwrap_err();
    assert_eq!(owned.to_string(), compact.to_string());
    assert!(compact.to_string().contains("digest"), "{compact}");
    // Verified over its content given as a guess: refused all the same.
    let back = Doc::parse(&tampered).unwrap();
    let unverified = DocScope::with_content_of(&back, &scope);
    let mut content = String::new();
    unverified.write_content(&back, &mut content);
    assert!(content.contains("192.168.1.11"));
    let guessed = DocScope::from_document_guessed(&back, None, content.as_bytes()).unwrap_err();
    assert_eq!(guessed.to_string(), compact.to_string());
    let wrong = DocScope::from_document(&Doc::parse(&document).unwrap(), Some("other")).unwrap_err();
    assert!(wrong.to_string().contains("other"), "{wrong}");
}

#[test]
fn large_documents_of_corpus_cibs_parse_as_the_owned_tree() {
    // Documents of 1 MiB and more are parsed in two halves at once: the
    // corpus CIBs, put end to end under one root in documents of ~1.5 MB
    // (twice, the second time shifted, so the splits fall in other CIBs),
    // give the owned parser's tree.
    let Some(files) = corpus() else { return };
    let mut compared = 0;
    for shift in [0, 7] {
        let mut doc = String::from("<corpus>\n");
        for (name, text) in files.iter().cycle().skip(shift).take(files.len()) {
            let body = text.trim_start().strip_prefix("<?xml").map_or(text.as_str(), |rest| rest.split_once("?>").map_or("", |(_, b)| b));
            doc.push_str(&format!("<!-- {name} -->\n{body}\n"));
            if doc.len() > 1_500_000 {
                doc.push_str("</corpus>\n");
                let compact = Doc::parse(&doc).unwrap_or_else(|e| panic!("up to {name}: {e}"));
                assert_eq!(compact.root().to_element(), parse(&doc).unwrap(), "up to {name}");
                compared += 1;
                doc = String::from("<corpus>\n");
            }
        }
    }
    assert!(compared >= 10, "only {compared} large documents");
}
