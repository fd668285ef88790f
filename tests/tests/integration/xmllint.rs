//! Our XML parser against libxml2 (`xmllint`, Debian's libxml2-utils) on
//! mutated documents: byte flips, cuts, duplicated and swapped spans of
//! corpus CIBs and of a published scope.
//!
//! The promise checked: every document libxml2 refuses as not well formed
//! is refused by us, and every document both accept gives the same tree
//! (ours of the mutant equals ours of `xmllint --c14n`'s output, attributes
//! in one order). We may refuse more than libxml2 (namespaces, a DOCTYPE,
//! our bounds): those are counted and shown, not failures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cib_transforms::xml::{self, Element};

use crate::support::{corpus_or_skip, find_program, two_sites};

/// Mutants checked in one run.
const MUTANTS: usize = 20_000;
/// Corpus CIBs used as seeds (the smallest, so xmllint runs are short).
const CORPUS_SEEDS: usize = 60;

/// Bytes a flip writes: XML's own punctuation, whitespace, controls,
/// letters, and bytes of multi-byte UTF-8 (some of them invalid alone).
const FLIP_BYTES: &[u8] = b"<>&;#\"'=/!?-[] \t\n\r\0\x01\x1bxa:_.1\xc3\xa9\xef\xbf\xbe\x80\xff";

/// One mutation of `doc`, chosen by `rng`.
fn mutate(doc: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = doc.to_vec();
    for _ in 0..rng.usize(1..=3) {
        if out.len() < 4 {
            break;
        }
        let len = out.len();
        let at = rng.usize(..len);
        let span = rng.usize(1..=len.min(40));
        let end = (at + span).min(len);
        match rng.u8(..6) {
            // A byte flipped.
            0 | 1 => out[at] = FLIP_BYTES[rng.usize(..FLIP_BYTES.len())],
            // The document cut short.
            2 => out.truncate(at),
            // A span removed.
            3 => {
                out.drain(at..end);
            }
            // A span duplicated elsewhere.
            4 => {
                let copy = out[at..end].to_vec();
                let to = rng.usize(..=out.len());
                out.splice(to..to, copy);
            }
            // Two spans swapped.
            _ => {
                let other = rng.usize(..len);
                let other_end = (other + span).min(len);
                if end <= other || other_end <= at {
                    let (a, b) = if at < other { ((at, end), (other, other_end)) } else { ((other, other_end), (at, end)) };
                    let mut swapped = out[..a.0].to_vec();
                    swapped.extend_from_slice(&out[b.0..b.1]);
                    swapped.extend_from_slice(&out[a.1..b.0]);
                    swapped.extend_from_slice(&out[a.0..a.1]);
                    swapped.extend_from_slice(&out[b.1..]);
                    out = swapped;
                }
            }
        }
    }
    out
}

/// Our reading of a mutant, as the subscriber reads a file: UTF-8 (a BOM
/// removed), then the parser.
fn ours(bytes: &[u8]) -> Result<Element, String> {
    let text = xml::decode(bytes).map_err(|e| e.to_string())?;
    xml::parse(text).map_err(|e| e.to_string())
}

/// libxml2's reading: `Ok(c14n output)` or `Err(stderr)` when it is not
/// well formed.
fn libxml2(xmllint: &Path, file: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(xmllint)
        .args(["--nonet", "--c14n"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("running xmllint");
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `el` with every element's attributes sorted by name (c14n sorts them).
fn sorted_attrs(mut el: Element) -> Element {
    el.walk_mut(&mut |e| e.attrs.sort());
    el
}

/// The first element where `a` and `b` differ, shown without its children.
fn first_difference(a: &Element, b: &Element) -> String {
    let shallow = |e: &Element| format!("<{} {:?}> text {:?}, {} children", e.name, e.attrs, e.text, e.children.len());
    if a.name != b.name || a.attrs != b.attrs || a.text != b.text || a.children.len() != b.children.len() {
        return format!("{} vs {}", shallow(a), shallow(b));
    }
    a.children.iter().zip(&b.children).find(|(x, y)| x != y).map_or_else(String::new, |(x, y)| first_difference(x, y))
}

/// Why we refused what libxml2 accepted, as a short category.
fn category(message: &str) -> &'static str {
    for (needle, what) in [
        ("namespace", "namespaces"),
        ("DOCTYPE", "DOCTYPE"),
        ("XML declaration", "XML declaration"),
        ("more than", "bounds"),
        ("deeper than", "bounds"),
        ("longer than", "bounds"),
        ("not a UTF-8", "encoding"),
    ] {
        if message.contains(needle) {
            return what;
        }
    }
    "other"
}

/// What one worker saw: refused by both, accepted by both alike, refused
/// by us only (by reason), disagreements.
type Tally = (usize, usize, BTreeMap<&'static str, usize>, Vec<String>);

#[test]
fn the_parser_refuses_what_libxml2_refuses_and_agrees_on_the_rest() {
    let Some(corpus) = corpus_or_skip("the xmllint differential test") else { return };
    let xmllint: PathBuf = find_program("xmllint", &["/usr/bin"]).expect("xmllint (Debian package libxml2-utils)");
    let (_a, scope, b) = two_sites();
    let mut seeds: Vec<Vec<u8>> = vec![std::fs::read(&scope).unwrap()];
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    files.sort();
    seeds.extend(files.iter().take(CORPUS_SEEDS).map(|(_, p)| std::fs::read(p).unwrap()));
    let seed = std::env::var("XMLLINT_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_206);
    eprintln!("xmllint differential test: seed {seed} (set XMLLINT_DIFF_SEED to replay another)");

    // Two workers, each with its own generator and scratch file.
    let dir = b.path("mutants");
    std::fs::create_dir_all(&dir).unwrap();
    let results: Vec<Tally> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                let (seeds, xmllint, dir) = (&seeds, &xmllint, &dir);
                s.spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(seed + w);
                    let file = dir.join(format!("mutant-{w}.xml"));
                    let (mut both_refused, mut agreed) = (0, 0);
                    let mut stricter: BTreeMap<&'static str, usize> = BTreeMap::new();
                    let mut failures = Vec::new();
                    for i in 0..MUTANTS / 2 {
                        let bytes = mutate(&seeds[rng.usize(..seeds.len())], &mut rng);
                        std::fs::write(&file, &bytes).unwrap();
                        // Kept where the test's temporary directory is not.
                        let keep = |why: &str| {
                            let failures = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xmllint-failures");
                            std::fs::create_dir_all(&failures).unwrap();
                            let kept = failures.join(format!("{seed}-{w}-{i}.xml"));
                            std::fs::write(&kept, &bytes).unwrap();
                            format!("{}: {why}", kept.display())
                        };
                        match (libxml2(xmllint, &file), ours(&bytes)) {
                            (Err(_), Err(_)) => both_refused += 1,
                            (Err(theirs), Ok(_)) => failures.push(keep(&format!("libxml2 refuses, we accept: {}", theirs.lines().next().unwrap_or("")))),
                            (Ok(_), Err(e)) => *stricter.entry(category(&e)).or_default() += 1,
                            (Ok(c14n), Ok(tree)) => match ours(&c14n) {
                                Ok(theirs) if sorted_attrs(theirs.clone()) == sorted_attrs(tree.clone()) => agreed += 1,
                                Ok(theirs) => failures.push(keep(&format!("both accept, the trees differ: {}", first_difference(&sorted_attrs(tree), &sorted_attrs(theirs))))),
                                Err(e) => failures.push(keep(&format!("we refuse libxml2's c14n output: {e}"))),
                            },
                        }
                    }
                    (both_refused, agreed, stricter, failures)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut stricter: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut both_refused, mut agreed, mut failures) = (0, 0, Vec::new());
    for (r, a, s, f) in results {
        both_refused += r;
        agreed += a;
        failures.extend(f);
        for (k, v) in s {
            *stricter.entry(k).or_default() += v;
        }
    }
    eprintln!("{MUTANTS} mutants: {both_refused} refused by both, {agreed} accepted by both with the same tree, refused by us only: {stricter:?}");
    assert!(failures.is_empty(), "{} disagreements with libxml2:\n{}", failures.len(), failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
    assert!(agreed > MUTANTS / 20 && both_refused > MUTANTS / 20, "the mutants exercise both sides");
    assert!(stricter.get("other").copied().unwrap_or(0) < MUTANTS / 100, "refusals without a known reason: {stricter:?}");
}
