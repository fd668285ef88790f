//! Reading a published scope and running a site's transforms over it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

use cib_transforms::canonical::{self, canonicalize};
use cib_transforms::rules::RuleSet;
use cib_transforms::scope::{Scope, ATTR_DIGEST, ATTR_HEADER_DIGEST};
use cib_transforms::xml::{self, Element, Limits};
use cib_tools::files::read_bounded;

use crate::fetch::{Source, TlsArgs};

/// Longest an XSLT stylesheet may run on one scope.
const XSLT_TIMEOUT: Duration = Duration::from_secs(30);

/// One transform step, in the order the admin wrote them.
#[derive(Debug)]
pub enum Step {
    /// Declarative rules from a TOML file, run natively.
    Rules(PathBuf, RuleSet),
    /// An XSLT 1.0 stylesheet, run by xsltproc.
    Xslt(PathBuf),
}

/// Loads the steps named on the command line, rules files parsed up front so
/// a bad rule fails before anything is read or applied.
pub fn load_steps(steps: Vec<(usize, StepArg)>) -> anyhow::Result<Vec<Step>> {
    let mut steps = steps;
    steps.sort_by_key(|(pos, _)| *pos);
    steps
        .into_iter()
        .map(|(_, arg)| match arg {
            StepArg::Rules(path) => {
                let text = read_bounded(&path, Limits::default().max_bytes)?;
                let rules = RuleSet::from_toml(&text, &path.display().to_string())?;
                Ok(Step::Rules(path, rules))
            }
            StepArg::Xslt(path) => {
                if !path.is_file() {
                    bail!("stylesheet {} does not exist", path.display());
                }
                Ok(Step::Xslt(path))
            }
        })
        .collect()
}

/// A step as given on the command line.
#[derive(Debug, Clone)]
pub enum StepArg {
    /// `--rules FILE`
    Rules(PathBuf),
    /// `--xslt FILE`
    Xslt(PathBuf),
}

/// Reads a published scope document from a file or a publisher (`--from`)
/// and verifies it (digest, ticket).
pub fn load_scope(from: &Source, ticket: Option<&str>, tls: &TlsArgs) -> anyhow::Result<Scope> {
    match from {
        Source::File(path) => load_scope_file(path, ticket),
        Source::Url(url) => crate::fetch::load_scope_url(url, ticket, tls),
    }
}

/// Reads a published scope document from a file and verifies it (digest,
/// ticket).
pub fn load_scope_file(path: &Path, ticket: Option<&str>) -> anyhow::Result<Scope> {
    let text = read_bounded(path, Limits::default().max_bytes)?;
    scope_from_text(path, &text, ticket)
}

/// [`load_scope_file`] of the text read from `path`.
fn scope_from_text(path: &Path, text: &str, ticket: Option<&str>) -> anyhow::Result<Scope> {
    let doc = xml::parse(text).with_context(|| format!("parsing {}", path.display()))?;
    if doc.attr(ATTR_SOURCE_DIGEST).is_some() {
        bail!(
            "{} is a document staged by the daemon (already transformed): run replicate-now or diff without --from to use it",
            path.display()
        );
    }
    Scope::from_published(doc, ticket).with_context(|| format!("reading scope {}", path.display()))
}

/// Runs every step over the scope's configuration, in order. The result is in
/// canonical form; [`Scope::digest`] stays the publisher's (the digest of
/// the transformed content is [`canonical::digest`] of `config`). The log
/// holds the change lines, then the rules that matched nothing.
pub fn transform(scope: Scope, steps: &[Step]) -> anyhow::Result<(Scope, Vec<String>)> {
    let t = transform_counted(scope, steps)?;
    let mut log: Vec<String> = t.log.into_iter().map(Line::into_text).collect();
    log.extend(t.idle);
    Ok((t.scope, log))
}

/// One line of what the transform steps did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A value a rule changed or an element it removed (`rule #N (TYPE)
    /// FILE: … OLD -> NEW`). A daemon
    /// transforms the whole scope of every version it receives, so these
    /// repeat for every version: it logs them at trace level.
    Change(String),
    /// What a step did as a whole: `rules FILE: N values changed`,
    /// `stylesheet FILE applied`.
    Step(String),
}

impl Line {
    /// The line's text.
    #[must_use]
    pub fn into_text(self) -> String {
        match self {
            Line::Change(t) | Line::Step(t) => t,
        }
    }
}

/// What [`transform_counted`] made of a scope.
#[derive(Debug)]
pub struct Transformed {
    /// The scope after every step, in canonical form.
    pub scope: Scope,
    /// What each step did, in order: the change lines of a rules file, then
    /// the line saying how many values it changed.
    pub log: Vec<Line>,
    /// One line per rule that changed nothing: `rule #N (TYPE) FILE:LINE
    /// matched nothing` ([`check_strict`] refuses them).
    pub idle: Vec<String>,
}

/// [`transform`], keeping apart the rules that matched nothing.
pub fn transform_counted(mut scope: Scope, steps: &[Step]) -> anyhow::Result<Transformed> {
    let mut log = Vec::new();
    let mut idle = Vec::new();
    for step in steps {
        match step {
            Step::Rules(path, rules) => {
                let applied = rules
                    .apply_counted(&mut scope.config)
                    .with_context(|| format!("applying rules {}", path.display()))?;
                let changed = applied.changed();
                log.extend(applied.changes.into_iter().map(Line::Change));
                log.push(Line::Step(format!(
                    "rules {}: {changed} value{} changed",
                    path.display(),
                    if changed == 1 { "" } else { "s" }
                )));
                idle.extend(applied.counts.iter().filter(|c| c.changed == 0).map(ToString::to_string));
            }
            Step::Xslt(path) => {
                let output = cib_tools::xslt::run_xslt(path, &scope.config.to_xml(), XSLT_TIMEOUT)
                    .with_context(|| format!("running stylesheet {}", path.display()))?;
                // The old content goes first: its memory is reused for the new one.
                scope.config = Element::default();
                let config = xml::parse(&output)
                    .with_context(|| format!("output of stylesheet {}", path.display()))?;
                drop(output);
                if config.name != "configuration" {
                    bail!(
                        "stylesheet {} produced <{}>, expected a <configuration> element",
                        path.display(),
                        config.name
                    );
                }
                scope.config = config;
                log.push(Line::Step(format!("stylesheet {} applied", path.display())));
            }
        }
    }
    scope.config.attrs.clear();
    canonicalize(&mut scope.config);
    Ok(Transformed { scope, log, idle })
}

/// Under `--strict` / `strict_rules`: an error when a rule matched nothing.
///
/// # Errors
///
/// [`IdleRules`], naming every such rule.
pub fn check_strict(idle: &[String]) -> Result<(), IdleRules> {
    if idle.is_empty() {
        return Ok(());
    }
    Err(IdleRules(idle.to_vec()))
}

/// Rules that matched nothing, refused under `--strict` / `strict_rules`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("strict rules: {}; nothing was applied", .0.join(", "))]
pub struct IdleRules(pub Vec<String>);

/// Root attribute of a transformed document: the digest of its (transformed)
/// content.
pub const ATTR_TRANSFORMED_DIGEST: &str = "replicator-transformed-digest";
/// Root attribute of a staged document: the publisher's digest of the scope
/// it was transformed from (what the ownership record and `status` show).
pub const ATTR_SOURCE_DIGEST: &str = "replicator-source-digest";

/// The transformed scope as a document: like the published one, without the
/// publisher's digest (the content no longer hashes to it) and with the
/// digest of the transformed content under another name.
pub fn transformed_document(scope: &Scope) -> String {
    scope.document_xml_with(transformed_attrs(scope))
}

/// The root attributes of a [`transformed_document`]: the published ones,
/// [`ATTR_DIGEST`] and [`ATTR_HEADER_DIGEST`] replaced by
/// [`ATTR_TRANSFORMED_DIGEST`] (last).
fn transformed_attrs(scope: &Scope) -> Vec<(String, String)> {
    let mut attrs = scope.document_attrs();
    // Both digests were the publisher's: the content has changed.
    attrs.retain(|(k, _)| k != ATTR_DIGEST && k != ATTR_HEADER_DIGEST);
    attrs.push((ATTR_TRANSFORMED_DIGEST.to_string(), canonical::digest(&scope.config)));
    attrs
}

/// The transformed scope as the daemon stages it in manual mode
/// (`pending.xml`): the [`transformed_document`] plus the publisher's
/// digest as [`ATTR_SOURCE_DIGEST`]. [`load_staged`] reads it back.
pub fn staged_document(scope: &Scope) -> String {
    let mut attrs = transformed_attrs(scope);
    attrs.push((ATTR_SOURCE_DIGEST.to_string(), scope.digest.clone()));
    scope.document_xml_with(attrs)
}

/// Reads a document written by [`staged_document`]: already transformed for
/// this site (no steps are run again). Its content is verified against
/// [`ATTR_TRANSFORMED_DIGEST`] (a staged file edited or damaged since is
/// refused); the returned scope carries the publisher's digest, as a scope
/// fresh from [`transform`] does. Also returns the text read, so a caller
/// can tell later whether the file was replaced meanwhile.
pub fn load_staged(path: &Path, ticket: &str) -> anyhow::Result<(Scope, String)> {
    let text = read_bounded(path, Limits::default().max_bytes)?;
    let mut doc = xml::parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    let (Some(transformed), Some(source)) = (doc.remove_attr(ATTR_TRANSFORMED_DIGEST), doc.remove_attr(ATTR_SOURCE_DIGEST))
    else {
        bail!("{} is not a document staged by cib-subscriber (no {ATTR_SOURCE_DIGEST})", path.display());
    };
    doc.set_attr(ATTR_DIGEST, transformed);
    let mut scope = Scope::from_document(doc, Some(ticket))
        .with_context(|| format!("reading staged document {} (changed since it was staged?)", path.display()))?;
    scope.digest = source;
    Ok((scope, text))
}
