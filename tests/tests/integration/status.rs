//! `cib-subscriber status` through the real binary on CIB files: the exit
//! codes (0 in step, 1 not in step, 2 error) and the fields of
//! `--output json` (subscriber/README.md), for one ticket and for every
//! ticket of a configuration.

use std::ffi::OsStr;
use std::path::Path;

use serde_json::Value;

use cib_subscriber::state::{self, Note, Timestamp, VersionSeen};

use crate::support::{replicated, Run, Site, TICKET};

/// `status --output json` with `args`; the exit code must be `code`.
#[track_caller]
fn json(site: &Site, args: &[&OsStr], code: i32) -> (Run, Value) {
    let mut full: Vec<&OsStr> = vec![OsStr::new("status"), OsStr::new("--output"), OsStr::new("json")];
    full.extend_from_slice(args);
    let r = site.subscriber(full);
    r.expect_code(code);
    let value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status printed no JSON ({e})\n{r}"));
    (r, value)
}

/// `--ticket geo --state-dir DIR`.
fn ticket_args(dir: &Path) -> Vec<&OsStr> {
    vec!["--ticket".as_ref(), TICKET.as_ref(), "--state-dir".as_ref(), dir.as_os_str()]
}

fn received(digest: &str) -> VersionSeen {
    VersionSeen {
        digest: digest.into(),
        version: Some("0.42.0".into()),
        term: Some(7),
        at: Timestamp::now(),
    }
}

#[test]
fn a_fresh_copy_is_in_step_and_a_local_edit_is_not() {
    let (_a, b, dir, applied) = replicated();
    let (r, v) = json(&b, &ticket_args(&dir), 0);
    assert_eq!(v["format"], 1, "{r}");
    assert_eq!(v["result"], "in-step", "{r}");
    assert_eq!(v["error"], Value::Null, "{r}");
    let t = &v["tickets"][0];
    assert_eq!(t["ticket"], TICKET, "{r}");
    assert_eq!(t["result"], "in-step", "{r}");
    assert_eq!(t["reasons"], serde_json::json!([]), "{r}");
    assert_eq!(t["granted_here"], false, "{r}");
    assert_eq!(t["replica"]["scope_digest"], applied.as_str(), "{r}");
    assert!(t["replica"]["origin_version"].is_string(), "{r}");
    let elements = t["replica"]["elements"].as_array().expect("elements");
    assert!(!elements.is_empty() && elements.iter().all(|e| e["state"] == "ok"), "{r}");
    assert!(elements.iter().any(|e| e["key"] == "resources:web"), "{r}");
    assert_eq!(t["daemon"], Value::Null, "{r}");

    // Text for people: the same verdict.
    let mut args = vec![OsStr::new("status")];
    args.extend(ticket_args(&dir));
    b.subscriber(&args).expect_ok().expect_stdout(&["result:          in step"]);

    b.cibadmin(["--modify", "--xml-text", r#"<nvpair id="web-ip-ip" value="10.9.9.9"/>"#]);
    let (r, v) = json(&b, &ticket_args(&dir), 1);
    assert_eq!(v["result"], "not-in-step", "{r}");
    assert_eq!(v["tickets"][0]["reasons"], serde_json::json!(["drift"]), "{r}");
    let web = v["tickets"][0]["replica"]["elements"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["key"] == "resources:web"))
        .cloned();
    assert_eq!(web.map(|e| e["state"].clone()), Some(Value::from("drift")), "{r}");
    b.subscriber(&args).expect_code(1).expect_stdout(&["result:          not in step: drift"]);
}

#[test]
fn the_daemon_state_decides_pending_stale_and_failed() {
    let (_a, b, dir, applied) = replicated();

    // The version received is the one applied: in step, the daemon's record shown.
    state::update(&dir, TICKET, |s| {
        s.source_site = Some("site-a".into());
        s.received = Some(received(&applied));
        s.applied = Some(received(&applied));
        s.last_success = Some(Timestamp::now());
    })
    .expect("writing the state");
    let (r, v) = json(&b, &ticket_args(&dir), 0);
    let daemon = &v["tickets"][0]["daemon"];
    assert_eq!(daemon["source_site"], "site-a", "{r}");
    assert_eq!(daemon["received"]["digest"], applied.as_str(), "{r}");
    assert_eq!(daemon["received"]["version"], "0.42.0", "{r}");
    assert_eq!(daemon["received"]["term"], 7, "{r}");
    assert!(daemon["received"]["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
    assert_eq!(daemon["pending"], Value::Null, "{r}");
    assert!(daemon["state_file"].as_str().is_some_and(|p| p.ends_with("geo/state.toml")), "{r}");

    // A newer version staged in manual mode: pending and stale.
    let newer = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    state::update(&dir, TICKET, |s| {
        s.received = Some(received(newer));
        s.pending = Some(received(newer));
    })
    .expect("writing the state");
    let (r, v) = json(&b, &ticket_args(&dir), 1);
    assert_eq!(v["tickets"][0]["reasons"], serde_json::json!(["pending", "stale"]), "{r}");

    // The last document was not applied: failed.
    state::update(&dir, TICKET, |s| {
        s.pending = None;
        s.last_success = Some(Timestamp(Timestamp::now().0 - 60));
        s.last_error = Some(Note::now("not applied: the merged CIB does not validate"));
        s.last_failure = s.last_error.clone();
    })
    .expect("writing the state");
    let (r, v) = json(&b, &ticket_args(&dir), 1);
    assert_eq!(v["tickets"][0]["reasons"], serde_json::json!(["stale", "failed"]), "{r}");
    assert_eq!(
        v["tickets"][0]["daemon"]["last_failure"]["text"],
        "not applied: the merged CIB does not validate",
        "{r}"
    );

    // A connection error alone is no failure of the copy.
    state::update(&dir, TICKET, |s| {
        s.received = Some(received(&applied));
        s.last_failure = None;
        s.last_error = Some(Note::now("source https://site-a.example:9443 unavailable: 503"));
    })
    .expect("writing the state");
    let (r, v) = json(&b, &ticket_args(&dir), 0);
    assert_eq!(v["tickets"][0]["daemon"]["last_failure"], Value::Null, "{r}");
}

#[test]
fn unknown_tickets_and_unreadable_state_or_cib_are_errors() {
    let (_a, b, dir, _) = replicated();

    let unknown: Vec<&OsStr> = vec!["--ticket".as_ref(), "nope".as_ref(), "--state-dir".as_ref(), dir.as_os_str()];
    let (r, v) = json(&b, &unknown, 2);
    assert_eq!(v["result"], "error", "{r}");
    assert_eq!(v["tickets"][0]["result"], "error", "{r}");
    assert!(v["tickets"][0]["error"].as_str().is_some_and(|e| e.starts_with("unknown ticket")), "{r}");
    let mut args = vec![OsStr::new("status")];
    args.extend(&unknown);
    b.subscriber(&args).expect_code(2).expect_stdout(&["ticket nope: error: unknown ticket"]);

    std::fs::create_dir_all(state::ticket_dir(&dir, TICKET)).expect("making the state directory");
    std::fs::write(state::state_path(&dir, TICKET), "term = \"not a number\"").expect("writing the state");
    let (r, v) = json(&b, &ticket_args(&dir), 2);
    assert!(v["tickets"][0]["error"].as_str().is_some_and(|e| e.contains("state.toml")), "{r}");

    let mut cmd = b.command(crate::support::bin("cib-subscriber"));
    cmd.env("CIB_file", b.path("no-such-cib.xml")).args(["status", "--output", "json"]).args(ticket_args(&dir));
    let r = crate::support::run(cmd);
    r.expect_code(2);
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("no JSON ({e})\n{r}"));
    assert_eq!(v["result"], "error", "{r}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("reading the local CIB")), "{r}");
    assert_eq!(v["tickets"], serde_json::json!([]), "{r}");
}

#[test]
fn without_a_ticket_every_configured_ticket_is_reported() {
    let (_a, b, _dir, _) = replicated();
    let peers = r#"peers = ["https://site-a.example:9443"]"#;
    let config = |tickets: &[&str]| {
        let mut text = String::from("site = \"site-b\"\nstate_dir = \"state\"\n[tls]\ncert = \"b.pem\"\nkey = \"b.key\"\nca = \"ca.pem\"\n");
        for t in tickets {
            text += &format!("[[ticket]]\nname = \"{t}\"\nmode = \"auto\"\n{peers}\n");
        }
        b.write("subscriber.toml", text)
    };

    let path = config(&[TICKET]);
    let (r, v) = json(&b, &["--config".as_ref(), path.as_os_str()], 0);
    assert_eq!(v["tickets"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(v["tickets"][0]["ticket"], TICKET, "{r}");

    // A second configured ticket with no copy here: not in step.
    let path = config(&[TICKET, "other"]);
    let (r, v) = json(&b, &["--config".as_ref(), path.as_os_str()], 1);
    assert_eq!(v["result"], "not-in-step", "{r}");
    assert_eq!(v["tickets"][0]["result"], "in-step", "{r}");
    assert_eq!(v["tickets"][1]["ticket"], "other", "{r}");
    assert_eq!(v["tickets"][1]["reasons"], serde_json::json!(["no-copy"]), "{r}");
    let text = b.subscriber(["status".as_ref(), "--config".as_ref(), path.as_os_str()]);
    text.expect_code(1).expect_stdout(&["ticket geo: not granted here", "ticket other: not granted here", "not in step: no-copy"]);

    // A ticket the configuration does not list is unknown.
    let (r, v) = json(&b, &["--config".as_ref(), path.as_os_str(), "--ticket".as_ref(), "nope".as_ref()], 2);
    assert!(v["tickets"][0]["error"].as_str().is_some_and(|e| e.contains("not in the configuration")), "{r}");

    // Neither --ticket nor a configuration.
    let (r, v) = json(&b, &["--state-dir".as_ref(), b.path("state").as_os_str()], 2);
    assert!(v["error"].as_str().is_some_and(|e| e.contains("needs --ticket")), "{r}");
}
