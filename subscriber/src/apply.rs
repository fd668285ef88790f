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
use cib_transforms::cib::{self, Stamps, STAMPS_XPATH};
use cib_transforms::diff::configuration_diff;
use cib_transforms::merge::{self, AppliedDigests, Options, Plan, Report};
use cib_transforms::modify::{self, Modify};
use cib_transforms::patch::{self, Patch};
use cib_transforms::scope::Scope;
use cib_transforms::xml::{self, Element};

/// How often a patch is retried when the CIB changed between read and write.
const ATTEMPTS: usize = 5;

/// How often, within one attempt, a patch refused only because the status
/// section moved on is re-based on the CIB's new version ([`rebase`])
/// before the merge is planned again.
const REBASES: usize = 20;

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
/// `applied` holds the digests of the document applied last, when kept (for drift).
pub fn plan_local(cib: &Cib, scope: &Scope, opts: Options, applied: Option<&AppliedDigests>) -> anyhow::Result<(Element, Plan)> {
    let (_, local) = read_local(cib)?;
    // Every merge error names the ticket or element already: no context added.
    let p = merge::plan_with(&local, scope, opts, applied)?;
    Ok((local, p))
}

/// Prints what `replicate-now` would change; returns whether anything would.
pub fn diff(cib: &Cib, scope: &Scope, opts: Options, applied: Option<&AppliedDigests>, color: Color) -> anyhow::Result<bool> {
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

/// Merges the scope into the local CIB as one version-checked write,
/// retrying when the CIB changed meanwhile (`on_retry` is told each time).
/// `applied` holds the digests of the document applied last, when kept (for drift). On any
/// error nothing was applied.
pub fn replicate_now(cib: &Cib, scope: &Scope, opts: Options, applied: Option<&AppliedDigests>, on_retry: &mut dyn FnMut(&str)) -> anyhow::Result<Applied> {
    let first = read_local(cib)?;
    replicate_now_from(cib, first, scope, opts, applied, on_retry)
}

/// [`replicate_now`], with the first attempt planned against `first` (the
/// text and tree of the CIB as [`read_local`] returned it, read earlier by
/// the caller) instead of reading the CIB again; later attempts re-read it.
/// As safe as a fresh read: the write carries the version `first` had, and
/// a CIB changed since is refused and re-read.
pub fn replicate_now_from(
    cib: &Cib,
    first: (String, Element),
    scope: &Scope,
    opts: Options,
    applied: Option<&AppliedDigests>,
    on_retry: &mut dyn FnMut(&str),
) -> anyhow::Result<Applied> {
    let mut first = Some(first);
    // The version the last refused write was computed from, and why it was
    // refused.
    let mut refused: Option<(String, cib_tools::Error)> = None;
    // Whether the last write was reported applied but is not in the CIB.
    let mut not_held = false;
    for attempt in 1..=ATTEMPTS {
        let (text, mut local) = match first.take() {
            Some(read) => read,
            None => read_local(cib)?,
        };
        if let Some((version, error)) = refused.take() {
            if cib::version(&local) == version {
                // Not a concurrent change: cibadmin refuses this write for
                // another reason (e.g. a crm_diff format-1 patch of a CIB
                // with an old feature set); trying again would not help.
                return Err(error).context(format!(
                    "cibadmin refused the write although the CIB is still at version {version}; nothing was applied"
                ));
            }
        }
        let mut p = match plan(&local, scope, opts, applied)? {
            Ok(p) => p,
            Err(unchanged) => return Ok(unchanged),
        };
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
        // The CIB's version and ticket states as they are now, after
        // crm_verify: a grant made meanwhile refuses the write (the gate
        // writes on acquiring the ticket, and does not ask).
        let mut now = if opts.materialize { None } else { Some(not_granted_now(cib, &scope.ticket)?) };
        let write = write_for(&text, &local, &p.cib, &merged)?;
        let planned = Instant::now();
        let mut outcome = match &write {
            // The guard is the configuration's version: a status that moved
            // on meanwhile does not refuse it, a configuration that did
            // does (exit 103, nothing written).
            Write::Modify(document) => cib.modify(document),
            Write::Patch(patch) => {
                let mut rebased = None;
                if cib.file_path().is_none() {
                    // On a live site the status moves on while crm_verify
                    // runs (booth writing this site's ticket state,
                    // operations recorded): the patch names the version
                    // the CIB has now, rather than being refused by a CIB
                    // manager that takes seconds to say so on a big CIB.
                    let root = match now.take() {
                        Some(stamps) => stamps.root,
                        None => query_version(cib)?,
                    };
                    if !cib::same_configuration(&local, &root) {
                        on_retry(&format!(
                            "the CIB's configuration changed while the merge was verified (attempt {attempt}/{ATTEMPTS}); reading the CIB again"
                        ));
                        continue;
                    }
                    if root.attrs != local.attrs {
                        rebased = rebase_on(&root, &text, &mut local, &mut p.cib);
                    }
                }
                cib.patch(rebased.as_deref().unwrap_or(patch))
            }
        };
        // A site's status section changes on its own (booth renewing a
        // ticket, resource operations): a patch refused for that alone is
        // re-based on the new version rather than planned and verified
        // again, which on a big CIB takes longer than the status stays put.
        let mut rebases = 0;
        while matches!(write, Write::Patch(_)) && matches!(outcome, Err(cib_tools::Error::Stale { .. })) && rebases < REBASES {
            match rebase(cib, &text, &mut local, &mut p.cib)? {
                Some(rebased) => {
                    rebases += 1;
                    outcome = cib.patch(&rebased);
                }
                None => break,
            }
        }
        if rebases > 0 {
            tracing::debug!(rebases, applied = outcome.is_ok(), "patch re-based on the status section's new versions");
        }
        match outcome {
            Ok(()) => {
                // `cibadmin --patch` can exit 0 although the patch was not
                // applied: a CIB manager just restarted (Pacemaker 2.1.5)
                // finds the patch's source version newer than its own,
                // logs "Application of update diff failed, requesting full
                // refresh" and answers OK. Applied means the CIB holds it:
                // the ownership record the same patch wrote says so; when
                // it does not, the patch did not take and is computed
                // again. Only a diff is answered that way
                // (`cib_server_process_diff` turns its failure into a
                // resync, which the client library reports as OK), so a
                // modify is not checked.
                if matches!(write, Write::Patch(_)) && !holds_record(cib, &p.cib, &scope.ticket)? {
                    not_held = true;
                    if attempt < ATTEMPTS {
                        on_retry(&format!(
                            "cibadmin reported the patch applied, but the CIB does not hold it (attempt {attempt}/{ATTEMPTS}); reading the CIB again"
                        ));
                        continue;
                    }
                    break;
                }
                tracing::debug!(
                    verify_ms = ms(verified - started),
                    write_ms = ms(planned - verified),
                    cibadmin_ms = ms(planned.elapsed()),
                    with = write.name(),
                    "merged CIB verified and applied"
                );
                return Ok(Applied {
                    changed: true,
                    report: p.report,
                    already,
                })
            }
            Err(e @ cib_tools::Error::Stale { .. }) if attempt < ATTEMPTS => {
                on_retry(&format!(
                    "cibadmin refused the {} as stale (attempt {attempt}/{ATTEMPTS}); reading the CIB again",
                    write.name()
                ));
                refused = Some((cib::version(&local), e));
                not_held = false;
            }
            Err(e) => return Err(e).context(format!("applying the {}", write.name())),
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

/// Every check [`replicate_now_from`] makes before it patches — the merge
/// plan, conflicts, `crm_verify` of the merged CIB — against the CIB read
/// as `local` (its text and tree), without writing anything: what lazy mode
/// keeps out of the CIB must be as good as what auto mode applies.
/// `changed` says whether applying would change the CIB.
pub fn check_apply(local: &(String, Element), scope: &Scope, opts: Options, applied: Option<&AppliedDigests>) -> anyhow::Result<Applied> {
    let (text, local) = local;
    let p = match plan(local, scope, opts, applied)? {
        Ok(p) => p,
        Err(unchanged) => return Ok(unchanged),
    };
    let already = verify_merge(text, &p.cib.to_xml(), scope)?;
    Ok(Applied {
        changed: true,
        report: p.report,
        already,
    })
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

/// How the merged CIB is written.
enum Write {
    /// A guarded `cibadmin --modify` document
    /// ([`modify::guarded_modify`]): the cheaper write, where a modify can
    /// express the change.
    Modify(String),
    /// A versioned format-2 patch (`cibadmin --patch`).
    Patch(String),
}

impl Write {
    /// `modify` or `patch`, for logs and messages.
    fn name(&self) -> &'static str {
        match self {
            Write::Modify(_) => "modify",
            Write::Patch(_) => "patch",
        }
    }
}

/// The write from the local CIB (`text`, parsed as `local`) to the merged
/// one (`merged`, serialized as `merged_xml`). Both are atomic and refused
/// when the configuration changed since `local` was read. A guarded modify
/// where it can express the change: Pacemaker 2.1.5 applies it in place,
/// where a patch makes it compare the whole CIB before and after, in time
/// growing with the square of the number of top-level resources
/// (docs/ownership.md). Otherwise the versioned patch (deletions, moves, a
/// first replication): computed here ([`patch::versioned_patch`]), or by
/// `crm_diff` for the few differences the native patch cannot address
/// (e.g. creating an element in a CIB with comments, which Pacemaker
/// counts in a patch's positions).
fn write_for(text: &str, local: &Element, merged: &Element, merged_xml: &str) -> anyhow::Result<Write> {
    match modify::guarded_modify(local, merged) {
        Modify::Xml(document) => return Ok(Write::Modify(document)),
        Modify::Unchanged => bail!("internal error: the merge changed nothing a modify can see"),
        Modify::Unsupported(reason) => {
            tracing::debug!(%reason, "writing with a patch");
        }
    }
    match patch::versioned_patch(text, local, merged) {
        Patch::Xml(xml) => return Ok(Write::Patch(xml)),
        Patch::Unchanged => bail!("internal error: the merge changed nothing a patch can express"),
        Patch::Unsupported(reason) => {
            tracing::debug!(%reason, "computing the patch with crm_diff");
        }
    }
    match cib_tools::cib::diff(text, merged_xml).context("computing the patch")? {
        Some(patch) => Ok(Write::Patch(patch)),
        None => bail!("internal error: the merge changed nothing crm_diff can see"),
    }
}

/// The CIB's stamps (its `<cib>` element and ticket states) just before
/// the write, refused when `ticket` is granted at this site now: the CIB
/// was read before the merge was verified, and a grant made meanwhile
/// changes only the status, which the version guarding a modify leaves
/// out. One small query on a live site; a CIB file is read again.
fn not_granted_now(cib: &Cib, ticket: &str) -> anyhow::Result<Stamps> {
    let stamps = match cib.backing_file() {
        Some(_) => Stamps::of_cib(&read_local(cib)?.1),
        None => query_stamps(cib).context("before the write")?,
    };
    if stamps.ticket_state(ticket)?.granted {
        return Err(cib_transforms::Error::TicketGrantedLocally(ticket.into())).context("the ticket was granted here while the merge was verified; nothing was applied");
    }
    Ok(stamps)
}

/// The merge of `scope` into `local`, its conflicts refused; or, when it
/// would change nothing, the outcome that says so.
fn plan(local: &Element, scope: &Scope, opts: Options, applied: Option<&AppliedDigests>) -> anyhow::Result<Result<Plan, Applied>> {
    let p = merge::plan_with(local, scope, opts, applied)?;
    p.refuse_conflicts()?;
    if p.changed {
        Ok(Ok(p))
    } else {
        Ok(Err(Applied {
            changed: false,
            report: p.report,
            already: Vec::new(),
        }))
    }
}

/// Whether the CIB holds the ownership record of `ticket` as `merged` has
/// it: the write that applies a copy makes the record too (the digest
/// of what it applied among its values), so one small query tells whether
/// the write took, whatever the CIB's size.
fn holds_record(cib: &Cib, merged: &Element, ticket: &str) -> anyhow::Result<bool> {
    let id = merge::record_id(ticket);
    let Some(want) = merged.find_id(&id) else {
        // Nothing owned any more: no record to look for.
        return Ok(true);
    };
    // An absolute path: the CIB manager walks crm_config only, not the
    // whole CIB as `//` would.
    let xpath = format!("/cib/configuration/crm_config/cluster_property_set[@id='{id}']");
    let Some(text) = cib.query_xpath(&xpath).context("reading the ownership record")? else {
        return Ok(false);
    };
    let got = xml::parse(&text).context("parsing the ownership record")?;
    let values = |e: &Element| -> Vec<(String, String)> {
        let mut v: Vec<_> = e
            .children
            .iter()
            .filter(|c| c.name == "nvpair")
            .map(|c| (c.attr("name").unwrap_or_default().to_owned(), c.attr("value").unwrap_or_default().to_owned()))
            .collect();
        v.sort();
        v
    };
    Ok(values(&got) == values(want))
}

/// The patch from `local` to `merged` for the CIB as it is now, when only
/// its status section moved on since `local` was read: the same
/// `admin_epoch`, `epoch` and stamps mean the same configuration
/// ([`cib::same_configuration`]: Pacemaker raises `epoch` with every
/// change of the configuration, only `num_updates` with a change of the
/// status), so the merge planned and verified against
/// `local` still holds; only the version the patch names, and the `<cib>`
/// attributes it sets, must be the current ones. Sets those on `local` and
/// `merged` (keeping `merged`'s raised `epoch`). `None` when the
/// configuration moved on too, or the patch cannot be computed natively:
/// plan again.
fn rebase(cib: &Cib, text: &str, local: &mut Element, merged: &mut Element) -> anyhow::Result<Option<String>> {
    Ok(rebase_on(&query_version(cib)?, text, local, merged))
}

/// The `<cib>` element alone, as the CIB has it now ([`Cib::query_root`]).
fn query_version(cib: &Cib) -> anyhow::Result<Element> {
    xml::parse(&cib.query_root().context("reading the CIB's version")?).context("parsing the CIB's version")
}

/// The CIB's [`Stamps`] as it has them now: one small query
/// ([`STAMPS_XPATH`]) whatever the CIB's size.
pub fn query_stamps(cib: &Cib) -> anyhow::Result<Stamps> {
    let answer = cib.query_shallow(STAMPS_XPATH).context("reading the CIB's version and ticket states")?;
    Ok(Stamps::from_answer(xml::parse(&answer).context("parsing the CIB's version and ticket states")?)?)
}

/// [`rebase`] on the CIB whose `<cib>` element is `root`.
fn rebase_on(root: &Element, text: &str, local: &mut Element, merged: &mut Element) -> Option<String> {
    if !cib::same_configuration(local, root) {
        return None;
    }
    let epoch = merged.attr("epoch").map(str::to_owned)?;
    local.attrs.clone_from(&root.attrs);
    merged.attrs.clone_from(&root.attrs);
    merged.set_attr("epoch", epoch);
    match patch::versioned_patch(text, local, merged) {
        Patch::Xml(xml) => Some(xml),
        Patch::Unchanged | Patch::Unsupported(_) => None,
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
