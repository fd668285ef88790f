//! Acknowledgements: the real daemon tells the real publisher what it
//! applied or staged, and the publisher's fleet view shows it.

use std::time::{Duration, Instant};

use cib_publisher::fleet::{FleetReport, SiteReport, SiteState};

use crate::harness::{grant, set_web_ip, Publisher, Subscriber, World, SITE_B};

const LIMIT: Duration = Duration::from_secs(15);

/// Site A holding `geo` (term 5), its publisher watching its CIB file.
async fn site_a(world: &World) -> Publisher {
    let cib = world.cib("site-a", "site-a.xml");
    grant(&cib, 5);
    Publisher::start(world, "site-a", cib, true).await
}

/// Site B as the publisher's fleet view shows it.
fn site_b(r: &FleetReport) -> SiteReport {
    r.tickets[0].sites.iter().find(|s| s.site == SITE_B).cloned().expect("site B is on the allow-list")
}

/// Waits until the fleet view of `a` satisfies `cond`; returns it.
async fn wait_fleet(a: &Publisher, what: &str, cond: impl Fn(&FleetReport) -> bool) -> FleetReport {
    let start = Instant::now();
    loop {
        let r = a.fleet();
        if cond(&r) {
            return r;
        }
        assert!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}; the view: {r:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_subscriber_that_applies_is_in_step_at_the_publisher() {
    let world = World::new();
    let a = site_a(&world).await;
    wait_fleet(&a, "the first version published", |r| r.tickets[0].published.is_some()).await;
    let before = site_b(&a.fleet());
    assert_eq!(before.state, SiteState::NotSeen, "{before:?}");
    assert!(!a.fleet().in_step);

    let b = Subscriber::configure(&world, "auto", &[&a]).start();
    let served = a.served_digest().unwrap();
    let r = wait_fleet(&a, "B in step", |r| site_b(r).in_step).await;
    let s = site_b(&r);
    assert_eq!(s.applied.as_ref().and_then(|a| a.digest.as_deref()), Some(served.as_str()));
    assert_eq!(s.applied.as_ref().and_then(|a| a.term), Some(5));
    assert_eq!((s.versions_behind, s.behind_seconds, s.drift, s.pending, s.error.as_deref()), (Some(0), Some(0), 0, false, None));
    assert!(s.connected && s.last_seen.is_some(), "{s:?}");
    assert!(r.in_step && r.tickets[0].in_step, "{r:#?}");

    // A new version: B is behind until it applied it, then in step again.
    set_web_ip(&a.cib, "192.168.1.11");
    let r = wait_fleet(&a, "B in step with the new version", |r| {
        let p = r.tickets[0].published.as_ref().map(|p| p.digest.clone());
        p.as_deref() != Some(served.as_str()) && site_b(r).in_step && site_b(r).applied.and_then(|a| a.digest) == p
    })
    .await;
    assert_eq!(site_b(&r).versions_behind, Some(0));
    b.wait_for("B applied it", LIMIT, |_, cib| cib.contains("10.2.1.11")).await;
}

#[tokio::test]
async fn a_staged_version_shows_behind_at_the_publisher() {
    let world = World::new();
    let a = site_a(&world).await;
    let _b = Subscriber::configure(&world, "manual", &[&a]).start();
    let r = wait_fleet(&a, "B acknowledged a staged version", |r| site_b(r).pending).await;
    let s = site_b(&r);
    assert_eq!(s.state, SiteState::Behind, "{s:?}");
    assert!(!s.in_step && !r.in_step);
    assert_eq!(s.applied.as_ref().and_then(|a| a.digest.clone()), None, "nothing applied yet: {s:?}");
}
