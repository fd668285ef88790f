//! Reading a published scope and running a site's transforms over it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

use cib_transforms::canonical::canonicalize;
use cib_transforms::rules::RuleSet;
use cib_transforms::node::Node as _;
use cib_transforms::scope::{DocScope, Scope, ATTR_DIGEST};
use cib_transforms::Doc;
use cib_transforms::xml::{self, Element, Limits, SameAs};

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

/// Reads a file, refusing anything larger than `limit` bytes.
pub fn read_bounded(path: &Path, limit: usize) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // Sized once from the file's length (`take` hides it from
    // `read_to_string`, which would grow the buffer step by step).
    let len = file.metadata().map_or(0, |m| m.len()).min(limit as u64 + 1);
    let mut text = String::with_capacity(len as usize + 1);
    file.take(limit as u64 + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() > limit {
        bail!("{} is larger than the limit of {limit} bytes", path.display());
    }
    Ok(text)
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
    Scope::from_document(doc, ticket).with_context(|| format!("reading scope {}", path.display()))
}

/// Runs every step over the scope's configuration, in order. The result is in
/// canonical form; its digest is the one of the transformed content.
pub fn transform(scope: Scope, steps: &[Step]) -> anyhow::Result<(Scope, Vec<String>)> {
    transform_with(scope, steps, None)
}

/// [`transform`], with the output of the first step (a stylesheet) already
/// computed when `first` is given.
fn transform_with(
    mut scope: Scope,
    steps: &[Step],
    mut first: Option<cib_tools::Result<String>>,
) -> anyhow::Result<(Scope, Vec<String>)> {
    let mut log = Vec::new();
    for step in steps {
        match step {
            Step::Rules(path, rules) => {
                let changes = rules
                    .apply(&mut scope.config)
                    .with_context(|| format!("applying rules {}", path.display()))?;
                log.extend(changes);
            }
            Step::Xslt(path) => {
                let output = match first.take() {
                    Some(output) => output,
                    None => cib_tools::xslt::run_xslt(path, &scope.config.to_xml(), XSLT_TIMEOUT),
                }
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
                log.push(format!("stylesheet {} applied", path.display()));
            }
        }
        first = None;
    }
    scope.config.attrs.clear();
    canonicalize(&mut scope.config);
    Ok((scope, log))
}

/// Reads a published scope from a file, verifies it and runs the steps, as
/// [`load_scope_file`] then [`transform`] do — but when the first step is a
/// stylesheet, `xsltproc` starts at once on the content cut out of the
/// document's text, while the document is parsed and verified here. Its
/// output is used only if the document is valid and the content given to
/// it is, byte for byte, what [`transform`] would have given it (the
/// canonical serialization of the verified content); otherwise the
/// stylesheet runs again on that. Either way the result is the one of
/// [`load_scope_file`] and [`transform`].
pub fn load_and_transform_file(path: &Path, ticket: Option<&str>, steps: &[Step]) -> anyhow::Result<(Scope, Vec<String>)> {
    let text = read_bounded(path, Limits::default().max_bytes)?;
    let (Some(Step::Xslt(sheet)), Some(content)) = (steps.first(), published_content(&text)) else {
        let scope = scope_from_text(path, &text, ticket)?;
        return transform(scope, steps);
    };
    let (scope, output) = std::thread::scope(|s| {
        let job = s.spawn(|| cib_tools::xslt::run_xslt(sheet, content.as_str(), XSLT_TIMEOUT));
        let mut scope = scope_from_text(path, &text, ticket);
        let same = scope.as_ref().is_ok_and(|scope| {
            let mut same = SameAs::new(content.as_bytes());
            scope.config.write_to(&mut same, 0);
            same.finish()
        });
        if same {
            // Only the metadata is needed from now on: the stylesheet's output
            // replaces the content, and its memory is reused for it.
            if let Ok(scope) = &mut scope {
                scope.config.children = Vec::new();
            }
        }
        let output = job.join().unwrap_or_else(|_| Err(cib_tools::Error::Io {
            context: "running xsltproc".into(),
            source: std::io::Error::other("the xsltproc thread panicked"),
        }));
        (scope, same.then_some(output))
    });
    drop((text, content));
    transform_with(scope?, steps, output)
}

/// [`load_and_transform_file`], [`cib_transforms::merge::check_scope`] and
/// [`transformed_document`] — what `cib-subscriber transform` does with a
/// file — on the compact tree ([`Doc`], [`DocScope`]): the same document,
/// change lines and checks, without an owned copy of the scope. As there,
/// a first stylesheet starts at once on the content cut out of the text,
/// and its output is used only if that content is the verified one.
///
/// `Ok(None)` when a step needs the owned tree (a `set` or `drop` rule, a
/// rule restricted to one resource): use the owned functions.
pub fn transform_file_to_document(path: &Path, steps: &[Step]) -> anyhow::Result<Option<(String, Vec<String>)>> {
    let compact = steps.iter().all(|s| match s {
        Step::Rules(_, rules) => rules.runs_on_doc(),
        Step::Xslt(_) => true,
    });
    if !compact {
        return Ok(None);
    }
    let text = read_bounded(path, Limits::default().max_bytes)?;
    let (Some((Step::Xslt(sheet), rest)), Some(content)) = (steps.split_first(), published_content(&text)) else {
        let (mut doc, scope) = read_document(path, &text)?;
        let mut log = Vec::new();
        let document = run_steps(&mut doc, scope, steps, &mut log)?;
        return Ok(Some((document, log)));
    };
    // The first step is a stylesheet: it starts at once on the content as
    // the publisher laid it out (shared with the thread feeding xsltproc,
    // not copied), while the document is verified here. The verified scope
    // goes to the stylesheet's thread, which needs it once the output is
    // there — if xsltproc got exactly the verified content.
    let content = std::sync::Arc::new(content);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<DocScope>>(1);
    let (verified, output) = std::thread::scope(|s| {
        let job = s.spawn({
            let content = content.clone();
            move || {
                let mut verified: Option<Option<DocScope>> = None;
                cib_tools::xslt::run_xslt_then(sheet, content, XSLT_TIMEOUT, ends_configuration, |output| {
                    let scope = verified.get_or_insert_with(|| rx.recv().ok().flatten()).as_ref()?;
                    let mut log = Vec::new();
                    Some(after_stylesheet(sheet, output, scope, rest, &mut log).map(|document| (document, log)))
                })
            }
        });
        // The content is serialized once, to compare it with what xsltproc
        // was given; when they are equal, the digest is verified over that.
        // The parsed document is not needed afterwards: its memory is free
        // for the stylesheet's output before that arrives.
        let verified = parse_document(path, &text).and_then(|doc| {
            DocScope::from_document_guessed(&doc, None, content.as_bytes())
                .with_context(|| format!("reading scope {}", path.display()))
        });
        let _ = tx.send(verified.as_ref().ok().and_then(|(scope, same)| same.then(|| scope.clone())));
        let output = job.join().unwrap_or_else(|_| {
            Err(cib_tools::Error::Io {
                context: "running xsltproc".into(),
                source: std::io::Error::other("the xsltproc thread panicked"),
            })
        });
        (verified, output)
    });
    let (scope, same) = verified?;
    let mut log = Vec::new();
    if same {
        let output = output.with_context(|| format!("running stylesheet {}", sheet.display()))?;
        if let Some(done) = output {
            let (document, rest_log) = done?;
            log.push(format!("stylesheet {} applied", sheet.display()));
            log.extend(rest_log);
            return Ok(Some((document, log)));
        }
    }
    // Not laid out as the publisher writes it: the stylesheet runs again on
    // the canonical content, after verification, as for any later step.
    // (The same text parses to the same tree: the verified scope holds.)
    let mut doc = parse_document(path, &text)?;
    let document = run_steps(&mut doc, scope, steps, &mut log)?;
    Ok(Some((document, log)))
}

/// Whether a stylesheet's output read so far ends with `</configuration>`
/// (and white space): a complete result, unless more follows.
fn ends_configuration(output: &[u8]) -> bool {
    output.trim_ascii_end().ends_with(b"</configuration>")
}

/// Parses and verifies a published document (as [`scope_from_text`] does).
fn read_document<'t>(path: &Path, text: &'t str) -> anyhow::Result<(Doc<'t>, DocScope)> {
    let doc = parse_document(path, text)?;
    let scope = DocScope::from_document(&doc, None).with_context(|| format!("reading scope {}", path.display()))?;
    Ok((doc, scope))
}

/// Parses a published document, refusing one staged by the daemon.
fn parse_document<'t>(path: &Path, text: &'t str) -> anyhow::Result<Doc<'t>> {
    let doc = Doc::parse(text).with_context(|| format!("parsing {}", path.display()))?;
    if doc.root().attr(ATTR_SOURCE_DIGEST).is_some() {
        bail!(
            "{} is a document staged by the daemon (already transformed): run replicate-now or diff without --from to use it",
            path.display()
        );
    }
    Ok(doc)
}

/// Runs `steps` over the content of `scope` in `doc` (a stylesheet's
/// output becomes a new `Doc`, see [`after_stylesheet`]), then checks the
/// result and writes it as a [`transformed_document`], both at once.
fn run_steps(doc: &mut Doc<'_>, scope: DocScope, steps: &[Step], log: &mut Vec<String>) -> anyhow::Result<String> {
    let Some((step, rest)) = steps.split_first() else {
        let doc = &*doc;
        let (checked, document) = std::thread::scope(|s| {
            let document = s.spawn(|| {
                let attrs = transformed_attrs(scope.document_attrs());
                scope.document_xml_with_digest(doc, &attrs, ATTR_TRANSFORMED_DIGEST).0
            });
            (scope.check(doc), document.join())
        });
        checked?;
        return document.map_err(|_| anyhow::anyhow!("serializing the transformed scope failed"));
    };
    match step {
        Step::Rules(path, rules) => {
            let roots: Vec<u32> = scope.elements(doc).iter().map(|n| n.index()).collect();
            let changes = rules
                .apply_doc(doc, &roots)
                .context("these rules need the owned tree")?
                .with_context(|| format!("applying rules {}", path.display()))?;
            log.extend(changes);
            run_steps(doc, scope, rest, log)
        }
        Step::Xslt(path) => {
            let mut content = String::new();
            scope.write_content(doc, &mut content);
            let mut rest_log = Vec::new();
            let document = cib_tools::xslt::run_xslt_then(path, std::sync::Arc::new(content), XSLT_TIMEOUT, ends_configuration, |output| {
                rest_log.clear();
                after_stylesheet(path, output, &scope, rest, &mut rest_log)
            })
            .with_context(|| format!("running stylesheet {}", path.display()))??;
            log.push(format!("stylesheet {} applied", path.display()));
            log.extend(rest_log);
            Ok(document)
        }
    }
}

/// The steps after a stylesheet: its `output` becomes the content of a
/// scope like `scope`, the `rest` of the steps run over it, and the result
/// is checked and written ([`run_steps`]).
fn after_stylesheet(path: &Path, output: &str, scope: &DocScope, rest: &[Step], log: &mut Vec<String>) -> anyhow::Result<String> {
    let mut out = Doc::parse(output).with_context(|| format!("output of stylesheet {}", path.display()))?;
    if out.root().name() != "configuration" {
        bail!(
            "stylesheet {} produced <{}>, expected a <configuration> element",
            path.display(),
            out.root().name()
        );
    }
    out.clear_attrs(out.root().index());
    let next = DocScope::with_content_of(&out, scope);
    run_steps(&mut out, next, rest, log)
}

/// The content of a published document as the publisher writes it — the
/// text with the root's attributes and the `replicator-left-out` block cut
/// out — or `None` when the text does not have that layout. A guess, to be
/// checked against the verified content.
fn published_content(text: &str) -> Option<String> {
    const ROOT: &str = "<configuration";
    const LEFT_OUT: &str = "\n  <replicator-left-out>\n";
    const LEFT_OUT_END: &str = "\n  </replicator-left-out>\n";
    let rest = text.strip_prefix(ROOT)?;
    let gt = rest.find('>')?;
    if rest[..gt].ends_with('/') {
        return None;
    }
    let body = &rest[gt + 1..];
    let mut out = String::with_capacity(text.len());
    out.push_str(ROOT);
    out.push('>');
    match memchr::memmem::find(body.as_bytes(), LEFT_OUT.as_bytes()) {
        None => out.push_str(body),
        Some(start) => {
            let end = start + memchr::memmem::find(&body.as_bytes()[start..], LEFT_OUT_END.as_bytes())?;
            out.push_str(&body[..start + 1]);
            out.push_str(&body[end + LEFT_OUT_END.len()..]);
        }
    }
    Some(out)
}

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
    scope.document_xml_with_digest(&transformed_attrs(scope.document_attrs()), ATTR_TRANSFORMED_DIGEST)
}

/// The root attributes of a [`transformed_document`]: the published ones,
/// [`ATTR_DIGEST`] replaced by [`ATTR_TRANSFORMED_DIGEST`] (last), whose
/// value is filled in when the content is written.
fn transformed_attrs(mut attrs: Vec<(String, String)>) -> Vec<(String, String)> {
    attrs.retain(|(k, _)| k != ATTR_DIGEST);
    attrs.push((ATTR_TRANSFORMED_DIGEST.to_string(), String::new()));
    attrs
}

/// The transformed scope as the daemon stages it in manual mode
/// (`pending.xml`): the [`transformed_document`] plus the publisher's
/// digest as [`ATTR_SOURCE_DIGEST`]. [`load_staged`] reads it back.
pub fn staged_document(scope: &Scope) -> String {
    let mut attrs = transformed_attrs(scope.document_attrs());
    attrs.push((ATTR_SOURCE_DIGEST.to_string(), scope.digest.clone()));
    scope.document_xml_with_digest(&attrs, ATTR_TRANSFORMED_DIGEST)
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

#[cfg(test)]
mod tests {
    use super::*;

    const CIB: &str = r#"<cib epoch="3" num_updates="1" admin_epoch="0"><configuration><resources>
        <primitive id="b" class="ocf" provider="pacemaker" type="Dummy"><instance_attributes id="b-ia"><nvpair id="b-ip" name="ip" value="1 &lt; 2"/></instance_attributes></primitive>
        <primitive id="a" class="ocf" provider="pacemaker" type="Dummy"/>
        <primitive id="f" class="stonith" type="fence_xvm"/></resources>
        <constraints><rsc_ticket id="t" ticket="T"><resource_set id="s"><resource_ref id="a"/><resource_ref id="b"/><resource_ref id="f"/></resource_set></rsc_ticket></constraints>
        </configuration><status/></cib>"#;

    #[test]
    fn published_content_is_the_canonical_content() {
        let cib = xml::parse(CIB).unwrap();
        let mut scope = cib_transforms::scope::scope(&cib, "T").unwrap();
        assert!(!scope.left_out.is_empty());
        let content = scope.config.to_xml();
        assert_eq!(published_content(&scope.to_document_xml()), Some(content.clone()));
        scope.left_out.clear();
        assert_eq!(published_content(&scope.to_document_xml()), Some(content));
        assert_eq!(published_content("<?xml version=\"1.0\"?><configuration/>"), None);
        assert_eq!(published_content("<configuration a=\"1\"/>\n"), None);
    }
}
