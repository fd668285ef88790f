//! Hostile documents through the real binaries: each is refused with exit 2
//! and a one-line reason, in bounded CPU time and memory (measured by GNU
//! `time`), and site B's CIB file is left unchanged to the byte.
//!
//! The shapes are those that broke or slowed earlier parsers: text and
//! children in turn (quadratic text copies), deep nesting, many attributes,
//! a huge value, entity expansion and external entities, bytes XML forbids,
//! other encodings, truncation, mismatched tags, and many duplicate ids.

use std::path::{Path, PathBuf};

use crate::support::{bin, reseal, run, two_sites, Site, TICKET};

/// Most CPU time (user + system) one refusal may take.
const MAX_CPU_SECONDS: f64 = 2.0;
/// Most memory one refusal may take (peak resident set, KiB).
const MAX_RSS_KIB: u64 = 200 * 1024;

/// One hostile document: a name for messages and its bytes.
struct Shape {
    name: &'static str,
    bytes: Vec<u8>,
}

/// The published document of the two-site example with `inner` inserted at
/// the start of its `<resources>`, resealed (a valid digest), so that the
/// refusal comes from what is inside and not from the digest.
fn with_resources(published: &str, inner: &str) -> Vec<u8> {
    reseal(published, |text| text.replacen("<resources>", &format!("<resources>{inner}"), 1)).into_bytes()
}

/// The published document with `inner` inserted unsealed (its digest then
/// no longer matches: what matters is that parsing refuses it first).
fn raw_resources(published: &str, inner: &str) -> Vec<u8> {
    published.replacen("<resources>", &format!("<resources>{inner}"), 1).into_bytes()
}

fn shapes(published: &str) -> Vec<Shape> {
    let text_and_children = |n: usize| {
        let mut s = String::from(r#"<primitive id="q" class="ocf" provider="pacemaker" type="Dummy">"#);
        for _ in 0..n {
            s.push_str("y<b>t</b>");
        }
        s.push_str("</primitive>");
        s
    };
    let deep = "<group>".repeat(200_000) + &"</group>".repeat(200_000);
    let attrs: String = (0..500_000).map(|i| format!(" a{i}=\"1\"")).collect();
    let long_value = format!(r#"<primitive id="v" class="ocf" provider="pacemaker" type="Dummy" description="{}"/>"#, "x".repeat(40 << 20));
    let laughs = {
        let mut s = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            let prev = if i == 1 { "lol".to_string() } else { format!("lol{}", i - 1) };
            s.push_str(&format!("<!ENTITY lol{i} \"{}\">\n", format!("&{prev};").repeat(10)));
        }
        s.push_str("]>\n<configuration replicator-ticket=\"geo\">&lol9;</configuration>\n");
        s
    };
    let external = "<?xml version=\"1.0\"?>\n<!DOCTYPE c [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n<configuration replicator-ticket=\"geo\"><resources>&x;</resources></configuration>\n";
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(published.encode_utf16().flat_map(u16::to_le_bytes));
    let mut invalid_utf8 = published.as_bytes().to_vec();
    let at = published.find("Dummy").unwrap_or(10);
    invalid_utf8[at] = 0xC3;
    invalid_utf8[at + 1] = 0x28;
    let duplicates: String = (0..100_000).map(|_| r#"<primitive id="dup" class="ocf" provider="pacemaker" type="Dummy"/>"#).collect();
    vec![
        Shape { name: "text and children in turn, 0.6 MB", bytes: with_resources(published, &text_and_children(65_000)) },
        Shape { name: "text and children in turn, 1.8 MB", bytes: with_resources(published, &text_and_children(195_000)) },
        Shape { name: "200,000 nested elements", bytes: raw_resources(published, &deep) },
        Shape { name: "500,000 attributes on one element", bytes: raw_resources(published, &format!("<primitive id=\"w\"{attrs}/>")) },
        Shape { name: "a 40 MB attribute value", bytes: raw_resources(published, &long_value) },
        Shape { name: "billion laughs", bytes: laughs.into_bytes() },
        Shape { name: "an external entity", bytes: external.as_bytes().to_vec() },
        Shape { name: "invalid UTF-8", bytes: invalid_utf8 },
        Shape { name: "a NUL byte", bytes: raw_resources(published, "\0") },
        Shape { name: "&#0;", bytes: raw_resources(published, r#"<primitive id="z" description="&#0;"/>"#) },
        Shape { name: "a UTF-16 document", bytes: utf16 },
        Shape { name: "a truncated document", bytes: published.as_bytes()[..published.len() / 2].to_vec() },
        Shape { name: "a mismatched end tag", bytes: published.replacen("</resources>", "</resource>", 1).into_bytes() },
        Shape { name: "100,000 duplicate ids", bytes: with_resources(published, &duplicates) },
    ]
}

/// What one command did with a hostile document: the run, and its CPU
/// seconds and peak resident memory (KiB) as GNU `time` measured them.
fn measured(site: &Site, args: &[&std::ffi::OsStr], program: &Path) -> (crate::support::Run, f64, u64) {
    let report = site.path("time.txt");
    let mut cmd = site.command("/usr/bin/time");
    cmd.arg("-f").arg("%U %S %M").arg("-o").arg(&report).arg(program).args(args);
    let r = run(cmd);
    let times = std::fs::read_to_string(&report).unwrap_or_else(|e| panic!("GNU time wrote no report ({e}); install the Debian package `time`"));
    let fields: Vec<&str> = times.split_whitespace().rev().take(3).collect();
    let [rss, sys, user] = fields[..] else { panic!("unexpected GNU time output {times:?}") };
    (r, user.parse::<f64>().unwrap() + sys.parse::<f64>().unwrap(), rss.parse().unwrap())
}

#[test]
fn hostile_documents_are_refused_quickly_in_little_memory_and_change_nothing() {
    let (_a, scope, b) = two_sites();
    let published = std::fs::read_to_string(&scope).unwrap();
    let before = b.bytes();
    let subscriber = bin("cib-subscriber");
    let publisher = bin("cib-publisher");
    for shape in shapes(&published) {
        let file: PathBuf = b.write("hostile.xml", &shape.bytes);
        let f = file.as_os_str();
        let commands: [(&str, &Path, Vec<&std::ffi::OsStr>); 3] = [
            ("transform", &subscriber, vec!["transform".as_ref(), "--from".as_ref(), f]),
            ("diff", &subscriber, vec!["diff".as_ref(), "--ticket".as_ref(), TICKET.as_ref(), "--from".as_ref(), f]),
            ("replicate-now", &subscriber, vec!["replicate-now".as_ref(), "--ticket".as_ref(), TICKET.as_ref(), "--from".as_ref(), f]),
        ];
        for (what, program, args) in commands {
            let (r, cpu, rss) = measured(&b, &args, program);
            let context = format!("{what} on {} ({} bytes)", shape.name, shape.bytes.len());
            assert_eq!(r.code, 2, "{context}: exit code\n{r}");
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{context}: a one-line reason expected\n{r}");
            assert!(lines[0].starts_with("cib-subscriber: ") && lines[0].len() < 600, "{context}: {}", lines[0]);
            assert!(cpu < MAX_CPU_SECONDS, "{context}: {cpu:.2} s of CPU\n{r}");
            assert!(rss < MAX_RSS_KIB, "{context}: peak RSS {rss} KiB\n{r}");
            assert!(b.bytes() == before, "{context}: the CIB file changed");
        }
        // The same bytes as a site's own CIB: the publisher refuses them too.
        let site = Site::with_cib("<cib/>");
        std::fs::write(site.cib_path(), &shape.bytes).unwrap();
        let scope_args = ["scope".as_ref(), "--ticket".as_ref(), TICKET.as_ref()];
        let (r, cpu, rss) = measured(&site, &scope_args, &publisher);
        let context = format!("cib-publisher scope on {}", shape.name);
        assert_eq!(r.code, 2, "{context}\n{r}");
        assert_eq!(r.stderr.lines().count(), 1, "{context}: a one-line reason expected\n{r}");
        assert!(cpu < MAX_CPU_SECONDS && rss < MAX_RSS_KIB, "{context}: {cpu:.2} s, {rss} KiB");
    }
}
