//! In-process timing of each step of the pipeline, to show where the time
//! goes. Each step runs on the output of the previous one; copies made only
//! to repeat a step are not timed. Medians over the iterations.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use cib_transforms::canonical::{canonicalize, digest};
use cib_transforms::merge::{self, Options};
use cib_transforms::rules::RuleSet;
use cib_transforms::scope::DocScope;
use cib_transforms::{diff, scope, xml, Doc, Element, Scope};

/// Times `f`, storing the duration under `name`.
fn timed<T>(
    samples: &mut Vec<(&'static str, Vec<Duration>)>,
    name: &'static str,
    f: impl FnOnce() -> T,
) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    match samples.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => v.push(took),
        None => samples.push((name, vec![took])),
    }
    out
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Runs the pipeline `iterations` times and returns the table.
pub fn run(
    file: &Path,
    rules: &RuleSet,
    ticket: &str,
    against: Option<&Path>,
    iterations: usize,
) -> anyhow::Result<String> {
    let empty = xml::parse(crate::sites::SITE_B_CIB).context("parsing the empty site CIB")?;
    let mut samples = Vec::new();
    let mut diff_samples = Vec::new();
    let mut compact_samples = Vec::new();
    let mut facts = String::new();
    for i in 0..iterations {
        let text = timed(&mut samples, "read file", || std::fs::read_to_string(file))
            .with_context(|| format!("reading {}", file.display()))?;
        let cib = timed(&mut samples, "parse (xml::parse)", || xml::parse(&text))
            .with_context(|| format!("parsing {}", file.display()))?;
        let owned = cib.clone();
        let published: Scope = timed(
            &mut samples,
            "scope::cut (incl. its canonicalize+digest)",
            || scope::cut(owned, ticket),
        )?;
        let document = timed(&mut samples, "publish: to_document_xml()", || {
            published.to_document_xml()
        });
        let mut transformed = published.clone();
        let changes = timed(&mut samples, "rules (ip + path)", || {
            rules.apply(&mut transformed.config)
        })?;
        let transformed_digest = timed(&mut samples, "canonicalize + digest", || {
            canonicalize(&mut transformed.config);
            digest(&transformed.config)
        });
        transformed.digest = transformed_digest;
        let plan = timed(&mut samples, "merge::plan into an empty site CIB", || {
            merge::plan(&empty, &transformed, Options::default())
        })?;
        if i == 0 {
            let _ = writeln!(
                facts,
                "{}: {} bytes; published scope {} bytes; {} rule changes; plan adds {} elements",
                file.display(),
                text.len(),
                document.len(),
                changes.len(),
                plan.report.added.len()
            );
        }
        compact_phase(&mut compact_samples, &text, rules, ticket)?;
        if let Some(new) = against {
            diff_phase(&mut diff_samples, &cib, new, i == 0, &mut facts)?;
        }
    }
    let mut out = format!("{facts}median of {iterations} runs\n\n");
    table(&mut out, "pipeline step", &samples);
    out.push('\n');
    table(&mut out, "compact tree step (scope-rules-digest, publisher)", &compact_samples);
    if !diff_samples.is_empty() {
        out.push('\n');
        table(&mut out, "diff step", &diff_samples);
    }
    Ok(out)
}

/// Times the steps of `cib-bench scope-rules-digest` (the compact tree),
/// plus the publisher's document of the same scope.
fn compact_phase(samples: &mut Vec<(&'static str, Vec<Duration>)>, text: &str, rules: &RuleSet, ticket: &str) -> anyhow::Result<()> {
    let mut doc = timed(samples, "parse (Doc::parse)", || Doc::parse(text))?;
    let scope = timed(samples, "DocScope::select", || DocScope::select(&mut doc, ticket))?;
    let published = doc.clone();
    timed(samples, "publish: document_and_digest()", || scope.document_and_digest(&published));
    let roots: Vec<u32> = scope.elements(&doc).iter().map(|n| n.index()).collect();
    timed(samples, "rules (ip + path, one walk)", || rules.apply_doc(&mut doc, &roots))
        .context("these rules run on the compact tree")??;
    timed(samples, "digest of the rewritten content", || scope.content_digest(&doc));
    Ok(())
}

/// Times the steps of `cib-bench diff` against `new`.
fn diff_phase(
    samples: &mut Vec<(&'static str, Vec<Duration>)>,
    old: &Element,
    new: &Path,
    first: bool,
    facts: &mut String,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(new).with_context(|| format!("reading {}", new.display()))?;
    let new_cib = timed(samples, "parse NEW (xml::parse)", || xml::parse(&text))
        .with_context(|| format!("parsing {}", new.display()))?;
    let a = cib_transforms::cib::configuration(old)?;
    let b = cib_transforms::cib::configuration(&new_cib)?;
    let (sa, sb) = timed(samples, "to_xml of both configurations", || {
        (a.to_xml(), b.to_xml())
    });
    let d = timed(samples, "unified line diff (similar)", || {
        diff::unified(&sa, &sb, "old", "new", false)
    });
    if first {
        let _ = writeln!(
            facts,
            "diff against {}: {} + {} lines serialized, {} diff lines",
            new.display(),
            sa.lines().count(),
            sb.lines().count(),
            d.lines().count()
        );
    }
    Ok(())
}

fn table(out: &mut String, title: &str, samples: &[(&'static str, Vec<Duration>)]) {
    let total: Duration = samples.iter().map(|(_, v)| median(v)).sum();
    let _ = writeln!(out, "| {title} | median ms | share |");
    out.push_str("|---|---:|---:|\n");
    for (name, v) in samples {
        let m = median(v);
        let _ = writeln!(
            out,
            "| {name} | {:.1} | {:.0}% |",
            m.as_secs_f64() * 1e3,
            100.0 * m.as_secs_f64() / total.as_secs_f64().max(1e-9)
        );
    }
    let _ = writeln!(out, "| **sum** | **{:.1}** | |", total.as_secs_f64() * 1e3);
}
