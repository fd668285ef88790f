//! Lazy mode against real CIB files: the daemon's step ([`lazy::keep`])
//! verifies the copy and keeps it out of site B's CIB; `cib-subscriber
//! gate` writes it to the CIB when the ticket is acquired (a grant, or the
//! first renewal after an election) and refuses a stale one.

use std::path::{Path, PathBuf};

use cib_subscriber::apply;
use cib_subscriber::lazy::{self, Kept};
use cib_subscriber::pipeline::{self, StepArg};
use cib_subscriber::state::{self, Timestamp, VersionSeen};
use cib_tools::cib::Cib;
use cib_transforms::merge::Ownership;

use crate::support::{bin, run, scope_primitives, site_b_rules, two_sites, Run, Site, TICKET};

/// What the daemon does with the published `scope_file` in lazy mode at
/// `site`: transform with site B's rules, [`lazy::keep`], and record the
/// version as received and kept. Returns the outcome and the version.
fn keep_lazily(site: &Site, scope_file: &Path, dir: &Path) -> anyhow::Result<(Kept, VersionSeen)> {
    let scope = pipeline::load_scope_file(scope_file, Some(TICKET))?;
    let steps = pipeline::load_steps(vec![(0, StepArg::Rules(site_b_rules()))])?;
    let (scope, _) = pipeline::transform(scope, &steps)?;
    let local = apply::read_local(&Cib::file(site.cib_path()))?;
    let seen = VersionSeen {
        digest: scope.digest.clone(),
        version: scope.version.clone(),
        term: scope.term,
        at: Timestamp::now(),
    };
    let kept = lazy::keep(&local, &scope, dir, TICKET)?;
    state::update(dir, TICKET, |s| {
        s.received = Some(seen.clone());
        if matches!(kept, Kept::Kept(_)) {
            s.lazy = Some(seen.clone());
        }
    })?;
    Ok((kept, seen))
}

/// Runs the gate at `site` with `state_dir`, the ticket given by booth's
/// environment variable.
fn gate(site: &Site, state_dir: &Path) -> Run {
    let mut cmd = site.command(bin("cib-subscriber"));
    cmd.arg("gate").arg("--state-dir").arg(state_dir).env("BOOTH_TICKET", TICKET);
    run(cmd)
}

/// Site B with an empty state directory, and A's published scope.
fn site_b() -> (Site, PathBuf, Site, PathBuf) {
    let (a, scope, b) = two_sites();
    let dir = b.path("state");
    std::fs::create_dir_all(&dir).unwrap();
    (a, scope, b, dir)
}

#[test]
fn a_lazy_copy_is_verified_and_kept_out_of_the_cib_until_the_gate_writes_it() {
    let (_a, scope, b, dir) = site_b();
    let before = b.bytes();
    let (kept, seen) = keep_lazily(&b, &scope, &dir).unwrap();
    assert!(matches!(kept, Kept::Kept(ref r) if !r.added.is_empty()), "{kept:?}");
    assert_eq!(b.bytes(), before, "lazy mode wrote to the CIB");
    assert!(state::lazy_path(&dir, TICKET).is_file());

    // status and the gate count it as current; the gate writes it.
    let status = b.subscriber(["status", "--ticket", TICKET, "--state-dir"].map(std::ffi::OsStr::new).into_iter().chain([dir.as_os_str()]));
    status.expect_code(0).expect_stdout(&["in step (kept lazily", "kept lazily:"]);
    gate(&b, &dir).expect_code(0).expect_stdout(&["ticket geo: allowed: the copy kept lazily", "was written to the CIB"]);
    assert_ne!(b.bytes(), before);
    for id in scope_primitives(&scope) {
        assert!(b.element(&id).is_some(), "{id} is not in the CIB after the gate");
    }
    assert_eq!(Ownership::read(&b.cib(), TICKET).unwrap().applied_digest.as_deref(), Some(seen.digest.as_str()));
    b.expect_verify_clean();
    let after = state::load(&dir, TICKET).unwrap();
    assert_eq!((after.lazy, after.applied.map(|v| v.digest)), (None, Some(seen.digest)));
    assert!(!state::lazy_path(&dir, TICKET).exists());

    // Written once: the next run of the gate finds an ordinary current copy.
    let written = b.bytes();
    gate(&b, &dir).expect_code(0).expect_stdout(&["allowed: the copy is current"]);
    assert_eq!(b.bytes(), written);
}

#[test]
fn the_holder_writes_a_waiting_lazy_copy_at_its_first_renewal() {
    // booth 1.0 runs no handler before an election: the ticket is granted
    // here before the gate runs, at the first renewal.
    let (_a, scope, b, dir) = site_b();
    keep_lazily(&b, &scope, &dir).unwrap();
    b.grant(TICKET);
    gate(&b, &dir).expect_code(0).expect_stdout(&["was written to the CIB"]);
    for id in scope_primitives(&scope) {
        assert!(b.element(&id).is_some(), "{id} is not in the CIB after the gate");
    }
    gate(&b, &dir).expect_code(0).expect_stdout(&["allowed: the ticket is granted at this site"]);
}

#[test]
fn a_stale_lazy_copy_is_refused_and_nothing_is_written() {
    let (_a, scope, b, dir) = site_b();
    keep_lazily(&b, &scope, &dir).unwrap();
    // A newer version arrived and could not be kept (it failed to verify).
    state::update(&dir, TICKET, |s| {
        if let Some(r) = &mut s.received {
            r.digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111".into();
        }
    })
    .unwrap();
    let before = b.bytes();
    gate(&b, &dir).expect_code(1).expect_stdout(&["refused"]);
    assert_eq!(b.bytes(), before, "the gate wrote a stale lazy copy");
    b.subscriber(["status".as_ref(), "--ticket".as_ref(), TICKET.as_ref(), "--state-dir".as_ref(), dir.as_os_str()])
        .expect_code(1)
        .expect_stdout(&["not in step", "stale"]);
}

#[test]
fn a_lazy_copy_replaced_on_disk_is_refused() {
    let (_a, scope, b, dir) = site_b();
    keep_lazily(&b, &scope, &dir).unwrap();
    let path = state::lazy_path(&dir, TICKET);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("<primitive", "<primitive description=\"edited\"", 1)).unwrap();
    let before = b.bytes();
    gate(&b, &dir).expect_code(1).expect_stdout(&["refused: the copy kept lazily could not be written"]);
    assert_eq!(b.bytes(), before);
}

#[test]
fn lazy_mode_refuses_what_auto_mode_would() {
    let (_a, scope, b, dir) = site_b();
    // An unowned local element with a replicated id: a conflict.
    let id = scope_primitives(&scope).into_iter().next().expect("a primitive in the scope");
    b.cibadmin(["-C", "-o", "resources", "-X", &format!(r#"<primitive id="{id}" class="ocf" provider="pacemaker" type="Dummy"/>"#)])
        .expect_ok();
    let before = b.bytes();
    let err = keep_lazily(&b, &scope, &dir).unwrap_err();
    assert!(format!("{err:#}").contains(&id), "{err:#}");
    assert_eq!(b.bytes(), before);
    assert!(!state::lazy_path(&dir, TICKET).exists());
}
