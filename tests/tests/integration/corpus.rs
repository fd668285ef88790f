//! Every ticket of the Pacemaker scheduler corpus, end to end with the real
//! tools: `cib-publisher scope` at the origin, `replicate-now` into a fresh
//! site (`cibadmin --empty`, `stonith-enabled=false`), `crm_verify`, and a
//! second `replicate-now` that must change nothing.
//!
//! Where replication is refused, the refusal must be clean (exit 2, site CIB
//! unchanged) and explained by one of the known, legitimate reasons:
//!
//! - the ticket's `rsc_ticket` says `loss-policy="fence"`, which needs
//!   fencing the fresh site does not configure — checked by replicating the
//!   same scope into a site that has a fencing device, which must succeed;
//! - the origin CIB itself has `crm_verify` errors (old test
//!   content, e.g. two monitor operations with the same interval for
//!   different roles), so no faithful copy can pass it either. Warnings do
//!   not count: they come from the origin's status (nodes to be fenced
//!   because a deadman ticket was lost), which is not replicated.
//!
//! Anything else fails the test, as does a success rate under
//! [`MIN_SUCCESS`] among the cases whose origin has no `crm_verify` errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use cib_transforms::xml;

use crate::support::{corpus_or_skip, Run, Site};

/// Worker threads (the suite targets 2-core machines).
const WORKERS: usize = 2;

/// Smallest share of replicable cases (the origin has no `crm_verify`
/// errors) that must replicate cleanly.
const MIN_SUCCESS: f64 = 0.80;

/// One corpus CIB and one of its tickets.
struct Case {
    file: PathBuf,
    ticket: String,
}

impl Case {
    fn name(&self) -> String {
        format!(
            "{} ticket {}",
            self.file.file_name().unwrap().to_string_lossy(),
            self.ticket
        )
    }
}

/// What happened to one case.
enum Outcome {
    /// Replicated into the fresh site: exit 0, `crm_verify` clean, idempotent.
    Replicated,
    /// Refused by the fresh site because `loss-policy=fence` needs fencing;
    /// replicated cleanly into a site with fencing.
    ReplicatedWithFencing,
    /// Refused cleanly for a legitimate reason (the category).
    Refused(String),
    /// Anything else: a test failure.
    Problem(String),
}

/// How one `replicate-now` into a site went.
enum Attempt {
    Applied,
    /// Clean refusal; the run.
    Refused(Run),
    Problem(String),
}

#[test]
fn every_corpus_ticket_replicates_or_is_refused_cleanly() {
    let Some(dir) = corpus_or_skip("the corpus test") else {
        return;
    };
    let cases = cases(&dir);
    assert!(
        !cases.is_empty(),
        "no CIB with rsc_ticket in {}",
        dir.display()
    );

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(String, Outcome)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let outcome = check(case);
                results.lock().unwrap().push((case.name(), outcome));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));

    let total = results.len();
    let mut replicated = 0;
    let mut with_fencing = 0;
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, outcome) in results {
        match outcome {
            Outcome::Replicated => replicated += 1,
            Outcome::ReplicatedWithFencing => with_fencing += 1,
            Outcome::Refused(category) => refused.entry(category).or_default().push(name),
            Outcome::Problem(p) => problems.push(format!("{name}: {p}")),
        }
    }
    let origin_invalid: usize = refused
        .iter()
        .filter(|(c, _)| c.starts_with(ORIGIN_INVALID))
        .map(|(_, v)| v.len())
        .sum();
    println!("corpus {}: {total} (CIB, ticket) cases", dir.display());
    println!("  replicated into a fresh site:                 {replicated}");
    println!("  refused there (loss-policy=fence needs fencing), replicated into a site with fencing: {with_fencing}");
    for (category, names) in &refused {
        println!("  refused: {category}: {}", names.len());
    }
    println!("  problems: {}", problems.len());
    assert!(
        problems.is_empty(),
        "{} corpus case(s) failed:\n{}",
        problems.len(),
        problems.join("\n")
    );

    let eligible = total - origin_invalid;
    let succeeded = replicated + with_fencing;
    let rate = succeeded as f64 / eligible.max(1) as f64;
    println!(
        "  success: {succeeded}/{eligible} cases whose origin has no crm_verify errors ({:.0}%); {replicated}/{total} of all cases replicated as-is",
        rate * 100.0
    );
    assert!(
        rate >= MIN_SUCCESS,
        "only {succeeded} of {eligible} replicable corpus cases replicated ({:.0}% < {:.0}%)",
        rate * 100.0,
        MIN_SUCCESS * 100.0
    );
}

/// Every (CIB, ticket) pair of the corpus, tickets from `rsc_ticket`.
fn cases(dir: &Path) -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        if !text.contains("rsc_ticket") {
            continue;
        }
        let doc = xml::parse(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", file.display()));
        let mut tickets = BTreeSet::new();
        doc.walk(&mut |e| {
            if e.name == "rsc_ticket" {
                if let Some(t) = e.attr("ticket") {
                    tickets.insert(t.to_owned());
                }
            }
        });
        out.extend(tickets.into_iter().map(|ticket| Case {
            file: file.clone(),
            ticket,
        }));
    }
    out
}

/// Category prefix of refusals explained by an origin CIB that has
/// `crm_verify` errors.
const ORIGIN_INVALID: &str = "the origin CIB itself has crm_verify errors";

fn check(case: &Case) -> Outcome {
    // A private copy: the corpus is never written, even by accident.
    let origin = Site::from_fixture(&case.file);
    let published = origin.publisher(["scope", "--ticket", &case.ticket]);
    if published.code != 0 {
        return Outcome::Problem(format!("cib-publisher failed\n{published}"));
    }
    let scope = origin.write("scope.xml", &published.stdout);

    let site = Site::empty();
    match replicate_into(&site, &scope, &case.ticket) {
        Attempt::Applied => Outcome::Replicated,
        Attempt::Problem(p) => Outcome::Problem(p),
        Attempt::Refused(r) if r.stderr.contains("does not validate") => {
            let v = origin.verify();
            if v.code != 0 && verify_errors(&v).next().is_some() {
                return Outcome::Refused(format!("{ORIGIN_INVALID} ({})", verify_category(&v)));
            }
            if !r.stderr.contains("fencing is not configured") {
                return Outcome::Problem(format!(
                    "refused, but the origin has no crm_verify errors\n{r}"
                ));
            }
            let fenced = Site::empty_with_fencing();
            let v = fenced.verify();
            if v.code != 0 {
                return Outcome::Problem(format!("the site with fencing does not verify\n{v}"));
            }
            match replicate_into(&fenced, &scope, &case.ticket) {
                Attempt::Applied => Outcome::ReplicatedWithFencing,
                Attempt::Refused(r) => {
                    Outcome::Problem(format!("refused even with fencing configured\n{r}"))
                }
                Attempt::Problem(p) => Outcome::Problem(format!("with fencing configured: {p}")),
            }
        }
        Attempt::Refused(r) => Outcome::Problem(format!("refused for an unexpected reason\n{r}")),
    }
}

/// `replicate-now` into `site`: applied (then `crm_verify` clean and a
/// second run a byte-for-byte no-op), or cleanly refused (exit 2, CIB
/// unchanged).
fn replicate_into(site: &Site, scope: &Path, ticket: &str) -> Attempt {
    let args = || {
        [
            "replicate-now".as_ref(),
            "--ticket".as_ref(),
            ticket.as_ref(),
            "--from".as_ref(),
            scope.as_os_str(),
        ]
    };
    let before = site.bytes();
    let r = site.subscriber(args());
    match r.code {
        0 => {
            let v = site.verify();
            if v.code != 0 {
                return Attempt::Problem(format!(
                    "replicated, but crm_verify rejects the result\n{v}"
                ));
            }
            let applied = site.bytes();
            let again = site.subscriber(args());
            if again.code != 0 {
                return Attempt::Problem(format!("second replicate-now failed\n{again}"));
            }
            if site.bytes() != applied {
                return Attempt::Problem(format!("second replicate-now changed the CIB\n{again}"));
            }
            Attempt::Applied
        }
        2 if site.bytes() == before && !r.stderr.trim().is_empty() => Attempt::Refused(r),
        2 => Attempt::Problem(format!("refusal changed the site CIB or said nothing\n{r}")),
        _ => Attempt::Problem(format!("unexpected exit code\n{r}")),
    }
}

/// The `error:` lines of a `crm_verify -V` run (warnings left out).
fn verify_errors(v: &Run) -> impl Iterator<Item = &str> {
    v.stderr
        .lines()
        .chain(v.stdout.lines())
        .filter(|l| l.contains("error:"))
}

/// A short, id-free description of why `crm_verify` rejects a CIB.
fn verify_category(v: &Run) -> String {
    if verify_errors(v).any(|l| l.contains("is duplicate of")) {
        return "duplicate operation: same name and interval".to_owned();
    }
    if verify_errors(v).any(|l| l.contains("Relax-NG validity error")) {
        return "schema validation".to_owned();
    }
    verify_errors(v)
        .next()
        .map(|l| {
            l.split("error:")
                .nth(1)
                .unwrap_or(l)
                .trim()
                .chars()
                .take(80)
                .collect()
        })
        .unwrap_or_else(|| format!("exit {}", v.code))
}
