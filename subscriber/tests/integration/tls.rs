//! The `cib-subscriber run` process against publishers it cannot use: its
//! certificate is not allowed for the ticket, is from another CA, or has
//! expired; the publisher's certificate is from another CA or does not name
//! the host. Each time the daemon records a clear `last_error` (state file
//! and `status`), logs a warning, keeps retrying with backoff — the
//! publisher sees the attempts — and B's CIB stays byte for byte the same.

use std::time::Duration;

use cib_net::test_pki::Pki;
use cib_net::tls::TlsPaths;

use crate::harness::{grant, Publisher, Subscriber, World, SITE_B, TICKET};

const LIMIT: Duration = Duration::from_secs(15);
const FORBIDDEN: &str = r#"cib_publisher_errors_total{kind="forbidden"}"#;
const HANDSHAKES: &str = r#"cib_publisher_errors_total{kind="tls_handshake"}"#;

/// Site A holding `geo` (term 5), watching its CIB file, with the
/// certificate of `tls` (default: the world's `site-a.example`) on `addr`.
async fn site_a(world: &World, tls: Option<TlsPaths>, addr: &str) -> Publisher {
    let cib = world.cib("site-a", "site-a.xml");
    grant(&cib, 5);
    let tls = tls.unwrap_or_else(|| world.pki.write_site(world.dir.path(), "site-a.example"));
    Publisher::start_on("site-a", cib, true, &tls, addr.parse().unwrap()).await
}

/// The `cib-subscriber run` process of site B following `a`, presenting
/// the certificate of `tls`.
fn site_b(world: &World, a: &Publisher, tls: &TlsPaths) -> Subscriber {
    Subscriber::configure_full(world, world.cib("site-b", "site-b.xml"), "auto", &[a.url()], tls).spawn()
}

/// What every refusal must leave behind: `last_error` and the peer's error
/// naming `reason`, a warning in the log, retries after pauses of the
/// configured backoff (0.25 s to 1 s) that the publisher sees (counted in
/// `series`), nothing received or applied, and the CIB as it was.
async fn refused_and_retried(a: &Publisher, b: &Subscriber, series: &str, reason: &str) {
    let before = std::fs::read(&b.cib).unwrap();
    let url = a.url();
    b.wait_for("the refusal recorded as the last error", LIMIT, |s, _| {
        s.last_error.as_ref().is_some_and(|e| e.text.contains(reason))
    })
    .await;
    let s = b.state();
    let last_error = &s.last_error.as_ref().unwrap().text;
    assert!(last_error.contains(&format!("connection to {url} refused")), "{last_error}");
    let peer = &s.peers[&url];
    assert!(!peer.streaming && peer.error.as_deref().is_some_and(|e| e.contains(reason)), "{peer:?}");

    let warning = b.wait_for_log(&["WARN", "refuse each other", reason], LIMIT).await;
    assert!(warning.contains(&format!("peer={url}")), "{warning}");
    for line in b.log().lines() {
        assert!(!line.contains("-----BEGIN") && !line.contains("PRIVATE KEY"), "{line}");
    }

    // Retried, with pauses: the daemon logs each pause, the publisher sees
    // the attempts.
    let pauses = || -> Vec<u64> {
        b.log_lines(&["reconnecting after a pause"])
            .iter()
            .filter_map(|l| l.split("pause_ms=").nth(1)?.split_whitespace().next()?.parse().ok())
            .collect()
    };
    let start = std::time::Instant::now();
    while pauses().len() < 2 || a.metric(series) < 3.0 {
        assert!(start.elapsed() < LIMIT, "{} attempts seen after {LIMIT:?}; log:\n{}", a.metric(series), b.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pauses = pauses();
    assert!(pauses.iter().all(|p| (250..=1000).contains(p)), "pauses outside the backoff: {pauses:?}");

    let s = b.state();
    assert!(s.received.is_none() && s.applied.is_none(), "{s:?}");
    assert_eq!(std::fs::read(&b.cib).unwrap(), before, "B's CIB changed");
    // `status` shows it too, and exits 1: B has no copy of the ticket.
    let (code, out, err) = b.cli(&["status", "--ticket", TICKET]).await;
    assert!(out.contains("last error:") && out.contains(reason), "{out}");
    assert!(out.contains("result:          not in step: no-copy"), "{out}");
    assert_eq!(code, 1, "{err}");
}

#[tokio::test]
async fn a_certificate_not_allowed_for_the_ticket() {
    let world = World::new();
    let a = site_a(&world, None, "127.0.0.1:0").await;
    // From the right CA, but site-c is not on the ticket's allow-list.
    let outsider = world.pki.write_site(world.dir.path(), "site-c.example");
    let b = site_b(&world, &a, &outsider);
    refused_and_retried(&a, &b, FORBIDDEN, "403 Forbidden").await;
    assert!(b.state().last_error.unwrap().text.contains("site-c.example"));
    assert_eq!(a.metric(HANDSHAKES), 0.0);
}

#[tokio::test]
async fn a_client_certificate_from_another_ca() {
    let world = World::new();
    let a = site_a(&world, None, "127.0.0.1:0").await;
    let other = Pki::new();
    let other_dir = tempfile::tempdir().unwrap();
    // B's name and B trusts A, but its certificate is from another CA.
    let stranger = TlsPaths {
        ca: world.client.ca.clone(),
        ..other.write_site(other_dir.path(), SITE_B)
    };
    let b = site_b(&world, &a, &stranger);
    refused_and_retried(&a, &b, HANDSHAKES, "TLS handshake failed: the peer refused the handshake").await;
    assert_eq!(a.metric(FORBIDDEN), 0.0);
}

#[tokio::test]
async fn an_expired_client_certificate() {
    let world = World::new();
    let a = site_a(&world, None, "127.0.0.1:0").await;
    let expired = world.pki.write_expired_site(world.dir.path(), SITE_B);
    let b = site_b(&world, &a, &expired);
    refused_and_retried(&a, &b, HANDSHAKES, "this end's certificate has expired").await;
}

#[tokio::test]
async fn a_publisher_certificate_from_another_ca() {
    let world = World::new();
    let other = Pki::new();
    let other_dir = tempfile::tempdir().unwrap();
    let impostor = other.write_site(other_dir.path(), "site-a.example");
    let a = site_a(&world, Some(impostor), "127.0.0.1:0").await;
    let b = site_b(&world, &a, &world.client);
    // The test CAs share their name: the signature is what fails.
    refused_and_retried(&a, &b, HANDSHAKES, "not signed by the configured CA").await;
}

#[tokio::test]
async fn a_publisher_certificate_for_another_name() {
    let world = World::new();
    // The certificate names site-a.example, localhost and 127.0.0.1; B
    // reaches the publisher at 127.0.0.2.
    let a = site_a(&world, None, "127.0.0.2:0").await;
    assert!(a.url().starts_with("https://127.0.0.2:"), "{}", a.url());
    let b = site_b(&world, &a, &world.client);
    refused_and_retried(&a, &b, HANDSHAKES, "does not name the host connected to").await;
    assert!(b.state().last_error.unwrap().text.contains("127.0.0.2"));
}
