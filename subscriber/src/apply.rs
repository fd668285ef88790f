//! The dry run (`diff`) and `replicate-now` against the local CIB.
//!
//! Every function takes the [`Cib`] to work on: the CLI passes
//! `Cib::from_env()` (or the configured `cib_file`), the daemon the one of
//! its configuration. [`replicate_now`] returns what it did instead of
//! printing it, so the daemon logs it and the CLI prints
//! [`Applied::describe`].

use std::io::IsTerminal as _;
use std::time::Instant;

use anyhow::{bail, Context as _};

use cib_tools::cib::{Cib, Judged};
use cib_transforms::cib;
use cib_transforms::diff::configuration_diff;
use cib_transforms::merge::{self, Options, Plan, Report};
use cib_transforms::patch::{self, Patch};
use cib_transforms::scope::Scope;
use cib_transforms::xml::{self, Element};

/// How often a patch is retried when the CIB changed between read and write.
const ATTEMPTS: usize = 5;

/// When to colour the diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// When stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// Reads and parses the local CIB.
pub fn read_local(cib: &Cib) -> anyhow::Result<(String, Element)> {
    let text = cib.read().context("reading the local CIB")?;
    let parsed = xml::parse(&text).context("parsing the local CIB")?;
    Ok((text, parsed))
}

/// Plans merging the scope into the local CIB as it is now, changing
/// nothing; returns the local CIB and the plan.
/// `applied` is the document applied last, when kept (for drift).
pub fn plan_local(cib: &Cib, scope: &Scope, opts: Options, applied: Option<&Element>) -> anyhow::Result<(Element, Plan)> {
    let (_, local) = read_local(cib)?;
    // Every merge error names the ticket or element already: no context added.
    let p = merge::plan_with(&local, scope, opts, applied)?;
    Ok((local, p))
}

/// Prints what `replicate-now` would change; returns whether anything would.
pub fn diff(cib: &Cib, scope: &Scope, opts: Options, applied: Option<&Element>, color: Color) -> anyhow::Result<bool> {
    let (local, p) = plan_local(cib, scope, opts, applied)?;
    let before = cib::configuration(&local)?;
    let after = cib::configuration(&p.cib)?;
    print!(
        "{}",
        configuration_diff(before, after, "local configuration", "after replicate-now", color.enabled())
    );
    println!("ticket {} (scope {}):", scope.ticket, scope.digest);
    print!("{}", cib_transforms::printable::printable(&p.report.summary()));
    if !p.report.conflicts.is_empty() {
        println!("replicate-now would refuse: resolve the conflicts or pass --adopt");
    }
    Ok(p.changed)
}

/// What [`replicate_now`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether the CIB was patched (`false`: it was up to date).
    pub changed: bool,
    /// What changed, element by element.
    pub report: Report,
    /// Messages `crm_verify` gave on the local CIB before the merge as well
    /// (deprecated constructs of the site's own, say): reported, not held
    /// against the replica.
    pub already: Vec<String>,
}

impl Applied {
    /// The lines `replicate-now` prints: `ticket T: up to date (scope D)`,
    /// or `ticket T: applied scope D` followed by the summary.
    #[must_use]
    pub fn describe(&self, scope: &Scope) -> String {
        if self.changed {
            let mut out = format!("ticket {}: applied scope {}\n{}", scope.ticket, scope.digest, self.report.summary());
            if !self.already.is_empty() {
                out += &format!("crm_verify messages the site's CIB already drew before the merge ({}):\n", self.already.len());
                for m in &self.already {
                    out += &format!("  {m}\n");
                }
            }
            out
        } else {
            format!("ticket {}: up to date (scope {})\n", scope.ticket, scope.digest)
        }
    }
}

/// Merges the scope into the local CIB as one version-checked patch,
/// retrying when the CIB changed meanwhile (`on_retry` is told each time).
/// `applied` is the document applied last, when kept (for drift). On any
/// error nothing was applied.
pub fn replicate_now(cib: &Cib, scope: &Scope, opts: Options, applied: Option<&Element>, on_retry: &mut dyn FnMut(&str)) -> anyhow::Result<Applied> {
    let first = read_local(cib)?;
    replicate_now_from(cib, first, scope, opts, applied, on_retry)
}

/// [`replicate_now`], with the first attempt planned against `first` (the
/// text and tree of the CIB as [`read_local`] returned it, read earlier by
/// the caller) instead of reading the CIB again; later attempts re-read it.
/// As safe as a fresh read: the patch carries the version `first` had, and
/// a CIB changed since is refused and re-read.
pub fn replicate_now_from(
    cib: &Cib,
    first: (String, Element),
    scope: &Scope,
    opts: Options,
    applied: Option<&Element>,
    on_retry: &mut dyn FnMut(&str),
) -> anyhow::Result<Applied> {
    let mut first = Some(first);
    // The version the last refused patch was computed from, and why it was
    // refused.
    let mut refused: Option<(String, cib_tools::Error)> = None;
    // Whether the last patch was reported applied but is not in the CIB.
    let mut not_held = false;
    for attempt in 1..=ATTEMPTS {
        let (text, local) = match first.take() {
            Some(read) => read,
            None => read_local(cib)?,
        };
        if let Some((version, error)) = refused.take() {
            if cib::version(&local) == version {
                // Not a concurrent change: cibadmin refuses this patch for
                // another reason (e.g. a crm_diff format-1 patch of a CIB
                // with an old feature set); trying again would not help.
                return Err(error).context(format!(
                    "cibadmin refused the patch although the CIB is still at version {version}; nothing was applied"
                ));
            }
        }
        let p = merge::plan_with(&local, scope, opts, applied)?;
        p.refuse_conflicts()?;
        if !p.changed {
            return Ok(Applied {
                changed: false,
                report: p.report,
                already: Vec::new(),
            });
        }
        if patch::has_processing_instruction(&text) {
            // cibadmin 2.1 crashes (SIGSEGV) on any write to such a CIB.
            bail!(
                "the local CIB holds a processing instruction (<?…?>), which Pacemaker's tools cannot write to (cibadmin crashes on it): \
                 remove it from the CIB and run again; nothing was applied"
            );
        }
        let merged = p.cib.to_xml();
        let started = Instant::now();
        let already = verify_merge(&text, &merged, scope)?;
        let verified = Instant::now();
        let patch = versioned_patch(&text, &local, &p.cib, &merged)?;
        let patched = Instant::now();
        match cib.patch(&patch) {
            Ok(()) => {
                // `cibadmin --patch` can exit 0 although the patch was not
                // applied: a CIB manager just restarted (Pacemaker 2.1.5)
                // finds the patch's source version newer than its own,
                // logs "Application of update diff failed, requesting full
                // refresh" and answers OK. Applied means the CIB holds it:
                // read it again; when merging would still change it, the
                // patch did not take and is computed again.
                let again = read_local(cib)?;
                if merge::plan_with(&again.1, scope, opts, applied)?.changed {
                    not_held = true;
                    if attempt < ATTEMPTS {
                        on_retry(&format!(
                            "cibadmin reported the patch applied, but the CIB does not hold it (attempt {attempt}/{ATTEMPTS}); reading the CIB again"
                        ));
                        first = Some(again);
                        continue;
                    }
                    break;
                }
                tracing::debug!(
                    verify_ms = ms(verified - started),
                    patch_ms = ms(patched - verified),
                    cibadmin_ms = ms(patched.elapsed()),
                    "merged CIB verified and applied"
                );
                return Ok(Applied {
                    changed: true,
                    report: p.report,
                    already,
                })
            }
            Err(e @ cib_tools::Error::Stale { .. }) if attempt < ATTEMPTS => {
                on_retry(&format!("cibadmin refused the patch as stale (attempt {attempt}/{ATTEMPTS}); reading the CIB again"));
                refused = Some((cib::version(&local), e));
                not_held = false;
            }
            Err(e) => return Err(e).context("applying the patch"),
        }
    }
    if not_held {
        bail!(
            "cibadmin reported the patch applied, but the CIB does not hold it, {ATTEMPTS} times \
             (the CIB manager restarting?); the copy was not applied"
        );
    }
    bail!("the CIB kept changing during {ATTEMPTS} attempts; nothing was applied")
}

/// Verifies the merged CIB and judges it against the local one
/// ([`cib_tools::cib::compare_verify`]): refused when the merge brings in
/// an error or warning, naming the replicated elements the messages
/// mention; the messages the site already had are returned. The local CIB
/// is verified only when the merged one draws any message.
fn verify_merge(local_xml: &str, merged_xml: &str, scope: &Scope) -> anyhow::Result<Vec<String>> {
    let after = cib_tools::cib::check(merged_xml).context("verifying the merged CIB")?;
    if after.code == 0 {
        return Ok(Vec::new());
    }
    let before = cib_tools::cib::check(local_xml).context("verifying the local CIB")?;
    match cib_tools::cib::compare_verify(&before, &after) {
        Judged::Accepted { already } => Ok(already),
        Judged::Refused { new } => {
            let mut ids: Vec<&str> = Vec::new();
            scope.config.walk(&mut |el| {
                if let Some(id) = el.id() {
                    if new.iter().any(|m| m.contains(&format!("'{id}'")) || m.contains(&format!("\"{id}\"")) || m.contains(&format!(" {id} "))) && !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            });
            let concerning = if ids.is_empty() { String::new() } else { format!(" (replicated elements concerned: {})", ids.join(", ")) };
            bail!("the merged CIB does not validate; nothing was applied{concerning}: {}", new.join("; "))
        }
    }
}

/// The versioned patch from the local CIB (`text`, parsed as `local`) to
/// the merged one (`merged`, serialized as `merged_xml`): computed here
/// ([`patch::versioned_patch`]), or by `crm_diff` for the few differences
/// the native patch cannot address (e.g. creating an element in a CIB with
/// comments, which Pacemaker counts in a patch's positions).
fn versioned_patch(text: &str, local: &Element, merged: &Element, merged_xml: &str) -> anyhow::Result<String> {
    match patch::versioned_patch(text, local, merged) {
        Patch::Xml(xml) => return Ok(xml),
        Patch::Unchanged => bail!("internal error: the merge changed nothing a patch can express"),
        Patch::Unsupported(reason) => {
            tracing::debug!(%reason, "computing the patch with crm_diff");
        }
    }
    match cib_tools::cib::diff(text, merged_xml).context("computing the patch")? {
        Some(patch) => Ok(patch),
        None => bail!("internal error: the merge changed nothing crm_diff can see"),
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
