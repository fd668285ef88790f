//! `cib-subscriber gate`, booth's before-acquire-handler, against real CIB
//! files: site B after replicate-now, with the daemon's state written as
//! the daemon writes it.

use std::path::Path;

use cib_subscriber::state::{self, TicketStatus, Timestamp, VersionSeen};

use crate::support::{replicated, two_sites, Run, Site, TICKET};

/// Runs the gate at `site` with `state_dir`, the ticket given by booth's
/// environment variable.
fn gate(site: &Site, state_dir: &Path) -> Run {
    let mut cmd = site.command(crate::support::bin("cib-subscriber"));
    cmd.arg("gate").arg("--state-dir").arg(state_dir).env("BOOTH_TICKET", TICKET);
    crate::support::run(cmd)
}

/// Records that the daemon received a version with `digest`.
fn receive(state_dir: &Path, digest: &str) {
    state::update(state_dir, TICKET, |s| {
        s.received = Some(VersionSeen {
            digest: digest.into(),
            version: Some("0.42.0".into()),
            term: Some(7),
            at: Timestamp::now(),
        });
    })
    .expect("writing the state");
}


#[test]
fn a_current_copy_may_take_the_ticket_and_a_stale_one_may_not() {
    let (_a, b, dir, applied) = replicated();
    let before = b.bytes();

    receive(&dir, &applied);
    gate(&b, &dir).expect_code(0).expect_stdout(&["ticket geo: allowed: the copy is current", "0.42.0 (term 7)"]);

    receive(&dir, "sha256:0000000000000000000000000000000000000000000000000000000000000000");
    gate(&b, &dir).expect_code(1).expect_stdout(&["refused: the copy is stale", "0.42.0 (term 7)", &applied]);
    assert_eq!(b.bytes(), before, "the gate changed the CIB");
}

#[test]
fn the_origin_and_the_holder_may_take_the_ticket() {
    let (a, _b, _dir, _) = replicated();
    let dir = a.path("state");
    // Site A never received anything: it is the origin.
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(state::load(&dir, TICKET).unwrap_or_default(), TicketStatus::default());
    // A holds the ticket granted (two_sites grants it): renewals pass even
    // with a stale-looking state.
    receive(&dir, "sha256:1111111111111111111111111111111111111111111111111111111111111111");
    gate(&a, &dir).expect_code(0).expect_stdout(&["allowed: the ticket is granted at this site"]);
    a.tool("crm_ticket", ["-t", TICKET, "--revoke", "--force"]).expect_ok();
    gate(&a, &dir).expect_code(1).expect_stdout(&["refused: the copy is stale"]);
    std::fs::remove_dir_all(&dir).unwrap();
    gate(&a, &dir).expect_code(0).expect_stdout(&["allowed: no version was ever received here"]);
}

#[test]
fn a_site_without_a_copy_may_not_take_the_ticket() {
    let (_a, _scope, b) = two_sites();
    gate(&b, &b.path("state")).expect_code(1).expect_stdout(&["refused: the local CIB has no rsc_ticket"]);
}

#[test]
fn an_unreadable_state_refuses_with_an_error() {
    let (_a, b, dir, _) = replicated();
    let path = state::state_path(&dir, TICKET);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "received = [").unwrap();
    gate(&b, &dir).expect_code(2).expect_stderr(&[&path.display().to_string()]);
}
