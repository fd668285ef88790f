//! The daemon following real publishers.

use std::time::Duration;

use crate::harness::{grant, pcmk, revoke, set_web_ip, Publisher, Subscriber, World, TICKET};

const LIMIT: Duration = Duration::from_secs(15);

/// Site A holding `geo` (term 5), its publisher watching its CIB file.
async fn site_a(world: &World) -> Publisher {
    let cib = world.cib("site-a", "site-a.xml");
    grant(&cib, 5);
    Publisher::start(world, "site-a", cib, true).await
}

#[tokio::test]
async fn auto_applies_a_change_at_a_within_a_second() {
    let world = World::new();
    let a = site_a(&world).await;
    let b = Subscriber::configure(&world, "auto", &[&a]).start();
    b.wait_for("the first version applied", LIMIT, |s, cib| s.applied.is_some() && cib.contains("10.2.1.10"))
        .await;

    set_web_ip(&a.cib, "192.168.1.11");
    let took = b.wait_for("the change applied at B", LIMIT, |_, cib| cib.contains("10.2.1.11")).await;
    eprintln!("change at A applied at B after {took:?}");
    // About 0.2 s alone, under 1 s with the rest of the suite in parallel.
    assert!(took < Duration::from_secs(2), "took {took:?}: not event-driven");
    assert!(!b.cib_text().contains("10.2.1.10"));

    // The state names the source and what was applied.
    let served = a.served_digest().unwrap();
    b.wait_for("the state records the version", LIMIT, |s, _| s.applied.as_ref().is_some_and(|v| v.digest == served))
        .await;
    let s = b.state();
    assert_eq!(s.source_site.as_deref(), Some("site-a"));
    assert_eq!(s.source_url.as_deref(), Some(a.url().as_str()));
    assert_eq!(s.term, Some(5));
    assert!(s.last_success.is_some() && s.last_error.is_none(), "{s:?}");
    assert!(s.peers[&a.url()].streaming);

    // `status` prints it beside the CIB's ownership record.
    let (code, out, err) = b.cli(&["status", "--ticket", TICKET]).await;
    assert_eq!(code, 0, "{err}");
    eprintln!("{out}");
    assert!(out.contains(&format!("applied scope:   {served}")), "{out}");
    assert!(out.contains(&format!("source:          site-a ({})", a.url())), "{out}");
    assert!(out.contains("newest term:     5"), "{out}");
    assert!(out.contains("s ago)"), "{out}");
    assert!(out.contains("streaming since"), "{out}");

    // The document applied is kept beside the state once the outcome is
    // recorded (off the next document's path), transformed for this site:
    // what tells a local edit from an upstream change.
    let applied = cib_subscriber::state::applied_path(&b.state_dir, TICKET);
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&applied).is_ok_and(|d| d.contains("10.2.1.11")) {
        assert!(start.elapsed() < LIMIT, "{} never held the version applied", applied.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kept = std::fs::read_to_string(&applied).unwrap();
    assert!(!kept.contains("192.168.1.11") && !kept.contains("10.2.1.10"), "{kept}");
    // An owned value edited at B is reported as drift, per element.
    set_web_ip(&b.cib, "10.2.1.99");
    let (code, out, _) = b.cli(&["status", "--ticket", TICKET]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not in step: drift"), "{out}");
}

#[tokio::test]
async fn a_daemon_stopped_right_after_an_apply_has_kept_the_document() {
    let world = World::new();
    let a = site_a(&world).await;
    let mut b = Subscriber::configure(&world, "auto", &[&a]).start();
    // Stopped as soon as the outcome is recorded: the document applied is
    // kept in the background after that, and the stop waits for it.
    b.wait_for("the first version recorded", LIMIT, |s, _| s.applied.is_some()).await;
    b.stop().await;
    let kept = std::fs::read_to_string(cib_subscriber::state::applied_path(&b.state_dir, TICKET)).expect("applied.xml kept");
    assert!(kept.contains("10.2.1.10"), "{kept}");
    let digests = std::fs::read_to_string(cib_subscriber::state::applied_digests_path(&b.state_dir, TICKET)).expect("applied.digests kept");
    assert!(digests.lines().any(|l| l.starts_with("resources:")), "{digests}");
}

#[tokio::test]
async fn manual_stages_and_replicate_now_applies() {
    let world = World::new();
    let a = site_a(&world).await;
    let mut b = Subscriber::configure(&world, "manual", &[&a]).start();
    let before = std::fs::read(&b.cib).unwrap();
    b.wait_for("a version staged", LIMIT, |s, _| s.pending.is_some()).await;
    assert!(b.pending().is_file());
    assert_eq!(std::fs::read(&b.cib).unwrap(), before, "manual mode changed the CIB");
    let s = b.state();
    assert!(s.last_result.as_ref().is_some_and(|r| r.text.starts_with("staged: added")), "{s:?}");
    assert_eq!(s.pending.as_ref().map(|p| p.digest.clone()), a.served_digest());

    // `diff` without --from shows the staged change, already transformed.
    let (code, out, err) = b.cli(&["diff", "--ticket", TICKET, "--color", "never"]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("web-ip") && out.contains("10.2.1.10"), "{out}");
    assert!(err.contains("pending.xml"), "{err}");
    // Steps are the daemon's: --rules without --from is refused.
    let (code, _, err) = b.cli(&["diff", "--ticket", TICKET, "--rules", "x.toml"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("need --from"), "{err}");

    b.stop().await;
    let (code, out, err) = b.cli(&["replicate-now", "--ticket", TICKET]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("applied scope"), "{out}");
    let after = b.cib_text();
    assert!(after.contains(r#"id="web-ip""#) && after.contains("10.2.1.10"), "not applied");
    assert!(!b.pending().exists(), "the staged document was not removed");
    let s = b.state();
    assert_eq!(s.pending, None);
    assert_eq!(s.applied.as_ref().map(|p| p.digest.clone()), a.served_digest());
    assert_eq!(s.last_result.map(|r| r.text).as_deref(), Some("applied by replicate-now"));

    // Nothing left to apply.
    let (code, out, _) = b.cli(&["diff", "--ticket", TICKET]).await;
    assert_eq!((code, out.trim()), (0, "ticket geo: nothing staged"));
    let (code, _, err) = b.cli(&["replicate-now", "--ticket", TICKET]).await;
    assert_eq!(code, 2);
    assert!(err.contains("nothing staged"), "{err}");
}

#[tokio::test]
async fn lazy_keeps_a_verified_copy_out_of_the_cib_until_the_gate_writes_it() {
    let world = World::new();
    let a = site_a(&world).await;
    let mut b = Subscriber::configure(&world, "lazy", &[&a]).start();
    let before = std::fs::read(&b.cib).unwrap();
    b.wait_for("a version kept lazily", LIMIT, |s, _| s.lazy.is_some()).await;
    let lazy = cib_subscriber::state::lazy_path(&b.state_dir, TICKET);
    assert!(lazy.is_file());
    let s = b.state();
    assert!(s.last_result.as_ref().is_some_and(|r| r.text.starts_with("kept lazily: added")), "{s:?}");
    assert_eq!(s.lazy.as_ref().map(|p| p.digest.clone()), a.served_digest());
    assert_eq!(s.applied, None);

    // A change at A is kept too, transformed; the CIB is never written.
    set_web_ip(&a.cib, "192.168.1.11");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&lazy).unwrap_or_default().contains("10.2.1.11") {
        assert!(start.elapsed() < LIMIT, "the change at A was not kept lazily: {:?}", b.state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read(&b.cib).unwrap(), before, "lazy mode changed the CIB");
    let (code, out, err) = b.cli(&["status", "--ticket", TICKET]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("in step (kept lazily"), "{out}");

    // The gate (booth's before-acquire-handler) writes it, then allows.
    b.stop().await;
    let (code, out, err) = b.cli(&["gate", "--ticket", TICKET]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("was written to the CIB"), "{out}");
    let after = b.cib_text();
    assert!(after.contains(r#"id="web-ip""#) && after.contains("10.2.1.11"), "not written");
    let s = b.state();
    assert_eq!((s.lazy.is_none(), s.applied.is_some()), (true, true), "{s:?}");
    assert!(!lazy.exists());
}

#[tokio::test]
async fn revoke_at_a_keeps_the_last_good_copy() {
    let world = World::new();
    let a = site_a(&world).await;
    let b = Subscriber::configure(&world, "auto", &[&a]).start();
    b.wait_for("the first version applied", LIMIT, |s, _| s.applied.is_some()).await;
    let good = std::fs::read(&b.cib).unwrap();

    revoke(&a.cib);
    b.wait_for("the source reported unavailable", LIMIT, |s, _| {
        s.last_error.as_ref().is_some_and(|e| e.text.contains("503"))
    })
    .await;
    let s = b.state();
    let e = s.last_error.unwrap().text;
    assert!(e.contains("not granted at site site-a"), "{e}");
    assert!(!s.peers[&a.url()].streaming);
    // A change at A while revoked is not served, and B keeps its copy.
    set_web_ip(&a.cib, "192.168.1.99");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(std::fs::read(&b.cib).unwrap(), good, "B's CIB changed");
    let (code, out, _) = b.cli(&["status", "--ticket", TICKET]).await;
    assert_eq!(code, 0);
    assert!(out.contains("last error:") && out.contains("503"), "{out}");
}

#[tokio::test]
async fn follows_the_newer_term_and_refuses_an_older_one() {
    let world = World::new();
    let a = site_a(&world).await;
    // Site C: the same configuration with its own address, ticket not granted.
    let cib_c = world.cib("site-c", "site-a.xml");
    set_web_ip(&cib_c, "192.168.1.30");
    let c = Publisher::start(&world, "site-c", cib_c, true).await;
    let b = Subscriber::configure(&world, "auto", &[&a, &c]).start();
    b.wait_for("A's version applied", LIMIT, |s, cib| s.term == Some(5) && cib.contains("10.2.1.10")).await;
    assert_eq!(b.state().source_site.as_deref(), Some("site-a"));

    // The ticket moves to C with a newer term: B follows C.
    revoke(&a.cib);
    grant(&c.cib, 6);
    b.wait_for("C's version applied", LIMIT, |s, cib| {
        s.source_site.as_deref() == Some("site-c") && s.term == Some(6) && cib.contains("10.2.1.30")
    })
    .await;

    // A serves again with an older term (a stale site or a replay): refused.
    grant(&a.cib, 4);
    set_web_ip(&a.cib, "192.168.1.44");
    b.wait_for("A's older term refused", LIMIT, |s, _| {
        s.last_error.as_ref().is_some_and(|e| e.text.contains("grant term 4 is older than term 6"))
    })
    .await;
    let s = b.state();
    assert_eq!(s.source_site.as_deref(), Some("site-c"));
    assert_eq!(s.term, Some(6));
    let cib = b.cib_text();
    assert!(cib.contains("10.2.1.30") && !cib.contains("10.2.1.44"), "B went back to the older term");
    // C's changes still flow.
    set_web_ip(&c.cib, "192.168.1.31");
    b.wait_for("C's change applied", LIMIT, |_, cib| cib.contains("10.2.1.31")).await;
}

#[tokio::test]
async fn nothing_is_applied_while_b_holds_the_ticket() {
    let world = World::new();
    let a = site_a(&world).await;
    let cib_b = world.cib("site-b", "site-b.xml");
    pcmk(&cib_b, "crm_ticket", &["-t", TICKET, "-g", "--force"]);
    let before = std::fs::read(&cib_b).unwrap();
    let b = Subscriber::configure_with(&world, cib_b, "auto", &[&a]).start();
    b.wait_for("the document received and left alone", LIMIT, |s, _| {
        s.last_result.as_ref().is_some_and(|r| r.text.contains("granted at this site"))
    })
    .await;
    let s = b.state();
    assert!(s.received.is_some() && s.applied.is_none() && s.last_error.is_none(), "{s:?}");
    assert_eq!(std::fs::read(&b.cib).unwrap(), before, "B's CIB changed");
}
