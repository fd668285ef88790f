//! Mutual TLS: who gets in, who is refused, and how it is recorded: every
//! refusal is counted and logged with the peer's address and the reason.

use std::time::Duration;

use cib_net::test_pki::Pki;
use cib_net::tls::{client_config, provider};
use reqwest::StatusCode;

use crate::harness::{client_with, Site, ALLOWED, TICKET};

const HANDSHAKE_ERRORS: &str = r#"cib_publisher_errors_total{kind="tls_handshake"}"#;

/// Waits until the server has counted `n` refused handshakes (the client
/// may see its error before the server logs it).
async fn handshake_errors_reach(site: &Site, n: f64) {
    for _ in 0..100 {
        if site.metric(HANDSHAKE_ERRORS) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server counted {} refused handshakes, expected {n}", site.metric(HANDSHAKE_ERRORS));
}

#[tokio::test]
async fn allowed_client_is_served() {
    let site = Site::start().await;
    let r = site.client(ALLOWED).get(site.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "ok\n");
    assert_eq!(site.metric(HANDSHAKE_ERRORS), 0.0);
    assert!(!site.logs.lines().iter().any(|l| l.contains("refused")), "{:?}", site.logs.lines());
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let site = Site::start().await;
    let paths = site.client_paths(ALLOWED);
    let mut roots = rustls::RootCertStore::empty();
    for c in cib_net::tls::load_certs(&paths.ca, "CA").unwrap() {
        roots.add(c).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let err = client_with(config).get(site.url("/healthz")).send().await.unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    handshake_errors_reach(&site, 1.0).await;
    refusal_logged(&site, "reason=the peer presented no certificate").await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let site = Site::start().await;
    let other = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut paths = other.write_site(dir.path(), ALLOWED);
    // The client trusts the server (right CA) but presents a certificate
    // with the allowed name from another CA.
    paths.ca = site.client_paths("x.example").ca;
    let err = site_request(&site, client_config(&paths).unwrap()).await;
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    handshake_errors_reach(&site, 1.0).await;
    // The test CAs share their name: the signature is what fails.
    refusal_logged(&site, "reason=the peer's certificate is not signed by the configured CA").await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let site = Site::start().await;
    let paths = site.pki.write_expired_site(site.dir.path(), ALLOWED);
    let err = site_request(&site, client_config(&paths).unwrap()).await;
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    handshake_errors_reach(&site, 1.0).await;
    refusal_logged(&site, "reason=the peer's certificate has expired").await;
}

#[tokio::test]
async fn client_does_not_trust_a_server_from_another_ca() {
    let site = Site::start().await;
    let other = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let paths = other.write_site(dir.path(), ALLOWED);
    let err = site_request(&site, client_config(&paths).unwrap()).await;
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    // The client says why in its alert; the server logs it.
    handshake_errors_reach(&site, 1.0).await;
    refusal_logged(&site, "reason=the peer refused the handshake: a signature did not verify").await;
}

#[tokio::test]
async fn valid_certificate_not_in_the_allow_list_gets_403() {
    let site = Site::start().await;
    let client = site.client("site-c.example");
    // Authenticated: health is fine.
    let r = client.get(site.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for path in [format!("/v1/tickets/{TICKET}/scope"), format!("/v1/tickets/{TICKET}/stream")] {
        let r = client.get(site.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("site-c.example"), "{body}");
        assert!(!body.contains("<configuration"), "{body}");
    }
    assert_eq!(site.metric(r#"cib_publisher_errors_total{kind="forbidden"}"#), 2.0);
    assert_eq!(site.metric(HANDSHAKE_ERRORS), 0.0);
    let refused: Vec<String> = site
        .logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("client certificate not allowed for this ticket"))
        .collect();
    assert_eq!(refused.len(), 2, "one line per refused request: {refused:?}");
    for line in &refused {
        assert!(line.starts_with("WARN "), "{line}");
        assert!(line.contains("ticket=geo") && line.contains("site-c.example"), "{line}");
        assert!(line.contains("peer=127.0.0.1:"), "the peer address is logged: {line}");
    }
    assert!(
        !site.logs.lines().iter().any(|l| l.contains("stream opened")),
        "no stream was opened for the refused client"
    );
    no_secrets_logged(&site);
}

/// Waits for the server's `TLS handshake refused` line naming the peer and
/// `reason`; checks no key or certificate material went to the log.
async fn refusal_logged(site: &Site, reason: &str) {
    let line = site.logs.wait_for(&["TLS handshake refused", reason]).await;
    assert!(line.starts_with("WARN "), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "the peer address is logged: {line}");
    no_secrets_logged(site);
}

fn no_secrets_logged(site: &Site) {
    for line in site.logs.lines() {
        assert!(!line.contains("-----BEGIN") && !line.contains("PRIVATE KEY"), "{line}");
    }
}

async fn site_request(site: &Site, config: rustls::ClientConfig) -> reqwest::Error {
    client_with(config).get(site.url("/healthz")).send().await.unwrap_err()
}
