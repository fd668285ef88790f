//! Lazy copies: a ticket's replica verified and kept out of the CIB until
//! the ticket is acquired here (`mode = "lazy"`).
//!
//! In auto mode a standby site holds a stopped copy of every ticket it may
//! take in its CIB. In lazy mode the daemon does everything auto mode does
//! *before* the patch — transform, merge plan, conflicts, `crm_verify` of
//! the merged CIB ([`crate::apply::check_apply`]) — and then keeps the
//! transformed document in `<state_dir>/<ticket>/lazy.xml` ([`keep`])
//! instead of patching the CIB. The state records it as `lazy`.
//!
//! The copy enters the CIB when the ticket comes here: booth runs
//! `cib-subscriber gate` (its `before-acquire-handler`) before a grant and
//! before every renewal, and the gate writes a lazy copy that is waiting
//! ([`waiting`]: recorded, the version last received, not yet what the
//! CIB's ownership record holds) with one version-checked write
//! ([`materialize`]) before it allows. A grant by hand thus finds the
//! resources in the CIB before Pacemaker learns of the grant; after an
//! automatic failover (booth 1.0 runs no handler before the election) the
//! copy is written at the first renewal, `renewal-freq` seconds later at
//! most.
//!
//! For the failover gate, `status` and the booth attribute a waiting lazy
//! copy counts as current ([`crate::gate::Verdict::Lazy`]). A lazy copy
//! older than the version last received — the newer one failed to verify,
//! say — is stale: the gate refuses, and nothing is written.
//!
//! The gate runs as booth's user (hacluster), which may write the CIB. The
//! lazy copy is readable by the state directory's group
//! ([`crate::state::write_group_readable`]), and the ticket's directory is
//! writable by it ([`crate::state::share_ticket_dir`]), so the gate records
//! what it wrote and removes the file; where that fails (a state directory
//! of another group) it says so and goes on: the gate and `status` read
//! what is applied from the CIB's ownership record, and the daemon's next
//! document replaces both.

use std::path::Path;

use anyhow::{bail, Context as _};

use cib_tools::cib::Cib;
use cib_transforms::merge::{Options, Ownership, Report};
use cib_transforms::scope::Scope;
use cib_transforms::xml::Element;

use crate::apply::{self, Applied};
use crate::pipeline;
use crate::state::{self, Note, TicketStatus, Timestamp, VersionSeen};

/// What [`keep`] did with a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// The CIB holds this version already: nothing is kept (a lazy copy
    /// left from before is removed).
    InCib,
    /// Verified and kept in `lazy.xml`; what applying it would change.
    Kept(Report),
}

/// Verifies `scope` (transformed for this site) against the local CIB as
/// auto mode would before patching, and keeps it in `lazy.xml`. The CIB is
/// not written.
///
/// # Errors
///
/// When the merge is refused (conflicts, an older term, a scope without its
/// `rsc_ticket`), the merged CIB does not verify, or the file cannot be
/// written; nothing is kept then, and an earlier lazy copy stays.
pub fn keep(local: &(String, Element), scope: &Scope, state_dir: &Path, ticket: &str) -> anyhow::Result<Kept> {
    let applied = state::load_applied(state_dir, ticket);
    let checked = apply::check_apply(local, scope, Options::default(), applied.as_ref())?;
    if !checked.changed {
        state::remove_lazy(state_dir, ticket)?;
        return Ok(Kept::InCib);
    }
    let path = state::lazy_path(state_dir, ticket);
    state::write_group_readable(state_dir, &path, pipeline::staged_document(scope).as_bytes())?;
    if let Err(e) = state::share_ticket_dir(state_dir, ticket) {
        tracing::warn!(%ticket, error = %e, "the gate (run as booth's user) will not be able to record what it writes");
    }
    Ok(Kept::Kept(checked.report))
}

/// The lazy copy waiting to be written to the CIB: recorded in the state,
/// the version last received, and not the version the CIB's ownership
/// record holds. `None` otherwise (no lazy copy, a stale one, or one the
/// CIB holds already).
#[must_use]
pub fn waiting(local: &Element, ticket: &str, status: &TicketStatus) -> Option<VersionSeen> {
    let (Some(lazy), Some(received)) = (&status.lazy, &status.received) else {
        return None;
    };
    if lazy.digest != received.digest {
        return None;
    }
    let in_cib = Ownership::read(local, ticket).ok().and_then(|o| o.applied_digest);
    (in_cib.as_deref() != Some(lazy.digest.as_str())).then(|| lazy.clone())
}

/// What [`materialize`] did.
#[derive(Debug)]
pub struct Materialized {
    /// The copy written.
    pub scope: Scope,
    /// What changed in the CIB.
    pub applied: Applied,
    /// What could not be recorded afterwards (the CIB is written).
    pub warnings: Vec<String>,
}

/// Writes the lazy copy of `ticket` to the CIB: one version-checked write,
/// also while the ticket is granted here, after the same checks as
/// `replicate-now` (conflicts, `crm_verify`). `expected` is the version the
/// state records ([`waiting`]): a file holding another one is refused.
/// Then, best effort, the state records it as applied and the file goes.
///
/// # Errors
///
/// When the file is missing, damaged or not `expected`, or the merge or
/// the patch is refused; the CIB is unchanged then.
pub fn materialize(cib: &Cib, state_dir: &Path, ticket: &str, expected: &VersionSeen) -> anyhow::Result<Materialized> {
    let path = state::lazy_path(state_dir, ticket);
    let (scope, _) = pipeline::load_staged(&path, ticket).context("reading the lazy copy")?;
    if scope.digest != expected.digest {
        bail!(
            "{} holds {}, not the version recorded as kept ({}): nothing was written",
            path.display(),
            scope.digest,
            expected.digest
        );
    }
    let kept = state::load_applied(state_dir, ticket);
    let opts = Options {
        materialize: true,
        ..Options::default()
    };
    let applied = apply::replicate_now(cib, &scope, opts, kept.as_ref(), &mut |m| tracing::warn!(%ticket, "{m}"))?;
    let mut warnings = Vec::new();
    if let Err(e) = state::save_applied(state_dir, ticket, &scope) {
        warnings.push(format!("the document written is not kept for drift reports: {e}"));
    }
    let recorded = state::update(state_dir, ticket, |s| {
        s.applied = Some(VersionSeen {
            at: Timestamp::now(),
            ..expected.clone()
        });
        s.lazy = None;
        s.last_success = Some(Timestamp::now());
        s.last_failure = None;
        s.last_result = Some(Note::now("lazy copy written to the CIB as the ticket was acquired"));
    });
    if let Err(e) = recorded {
        warnings.push(format!("the state is not updated (the daemon catches up): {e}"));
    }
    if let Err(e) = state::remove_lazy(state_dir, ticket) {
        warnings.push(format!("the lazy copy is not removed (the daemon removes it): {e}"));
    }
    Ok(Materialized {
        scope,
        applied,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cib_transforms::xml::parse;

    fn seen(digest: &str) -> VersionSeen {
        VersionSeen {
            digest: digest.into(),
            version: Some("0.3.1".into()),
            term: Some(2),
            at: Timestamp(0),
        }
    }

    fn cib(applied: Option<&str>) -> Element {
        let record = applied.map_or(String::new(), |d| {
            format!(r#"<cluster_property_set id="cib-replicator-T"><nvpair id="r-d" name="applied-digest" value="{d}"/></cluster_property_set>"#)
        });
        parse(&format!(
            r#"<cib><configuration><crm_config>{record}</crm_config><resources/><constraints/></configuration><status/></cib>"#
        ))
        .unwrap()
    }

    #[test]
    fn a_lazy_copy_waits_while_it_is_current_and_not_in_the_cib() {
        let mut s = TicketStatus {
            received: Some(seen("sha256:aa")),
            lazy: Some(seen("sha256:aa")),
            ..TicketStatus::default()
        };
        assert_eq!(waiting(&cib(None), "T", &s), Some(seen("sha256:aa")));
        assert_eq!(waiting(&cib(Some("sha256:old")), "T", &s), Some(seen("sha256:aa")));
        // Written already.
        assert_eq!(waiting(&cib(Some("sha256:aa")), "T", &s), None);
        // A newer version was received and not kept: stale, not waiting.
        s.received = Some(seen("sha256:bb"));
        assert_eq!(waiting(&cib(None), "T", &s), None);
        s.lazy = None;
        assert_eq!(waiting(&cib(None), "T", &s), None);
    }
}
