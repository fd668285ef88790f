//! Ticket names from the command line are checked like those of the
//! configuration files before they name a directory, a file or a URL
//! path: `--ticket ../x` (or `BOOTH_TICKET=../x`) exits 2 and touches
//! nothing. And `cib-publisher scope` refuses a grant term that is not a
//! number instead of printing the scope without one.

use crate::support::{offline, Site, TICKET};

const BAD: &[&str] = &["../x", "..", "a/b", "", "-x", "1geo", "geo x"];

#[test]
fn subscriber_commands_refuse_a_ticket_name_that_is_not_one() {
    let site = Site::from_fixture(&offline("site-b.xml"));
    let state = site.path("state");
    let scope = site.path("scope.xml");
    std::fs::write(&scope, "<configuration/>").unwrap();
    let before = site.bytes();
    for bad in BAD {
        for command in ["status", "gate", "diff", "replicate-now"] {
            let ticket = format!("--ticket={bad}");
            let mut args = vec![command, &ticket, "--state-dir", state.to_str().unwrap()];
            if matches!(command, "diff" | "replicate-now") {
                args.extend(["--from", scope.to_str().unwrap()]);
            }
            let r = site.subscriber(&args);
            r.expect_code(2).expect_stderr(&["is not a ticket name", "--ticket"]);
            assert!(r.stdout.is_empty(), "{r}");
        }
    }
    // booth's variable goes through the same check.
    let mut cmd = site.command(crate::support::bin("cib-subscriber"));
    cmd.args(["gate", "--state-dir", state.to_str().unwrap()]).env("BOOTH_TICKET", "../x");
    crate::support::run(cmd).expect_code(2).expect_stderr(&["\"../x\" is not a ticket name"]);
    assert!(!state.exists(), "a refused ticket name created the state directory");
    assert!(site.bytes() == before, "a refused ticket name changed the CIB");
}

#[test]
fn publisher_scope_refuses_a_ticket_name_that_is_not_one() {
    let site = Site::from_fixture(&offline("site-a.xml"));
    site.grant(TICKET);
    for bad in BAD {
        let r = site.publisher(["scope", &format!("--ticket={bad}")]);
        r.expect_code(2).expect_stderr(&["is not a ticket name"]);
        assert!(r.stdout.is_empty(), "{r}");
    }
}

#[test]
fn publisher_scope_refuses_a_grant_term_that_is_not_a_number() {
    let site = Site::from_fixture(&offline("site-a.xml"));
    site.grant(TICKET);
    for bad in ["+5", "007", "abc", "-1", "18446744073709551616"] {
        site.tool("crm_ticket", ["-t", TICKET, "--set-attr", "term", "--attr-value", bad]).expect_ok();
        let r = site.publisher(["scope", "--ticket", TICKET]);
        r.expect_code(2).expect_stderr(&[&format!("ticket `{TICKET}`"), &format!("term=\"{bad}\""), "not a grant term"]);
        assert!(r.stdout.is_empty(), "{r}");
    }
    // A canonical booth term, then none at all (a plain crm_ticket grant
    // whose last-granted is gone): both are printed as before.
    site.tool("crm_ticket", ["-t", TICKET, "--set-attr", "term", "--attr-value", "12"]).expect_ok();
    let r = site.publisher(["scope", "--ticket", TICKET]);
    r.expect_ok().expect_stdout(&["replicator-term=\"12\""]);
    site.tool("crm_ticket", ["-t", TICKET, "--delete-attr", "term"]).expect_ok();
    site.tool("crm_ticket", ["-t", TICKET, "--delete-attr", "last-granted"]).expect_ok();
    let r = site.publisher(["scope", "--ticket", TICKET]);
    r.expect_ok();
    assert!(r.stdout.starts_with("<configuration") && !r.stdout.contains("replicator-term"), "{r}");
}
