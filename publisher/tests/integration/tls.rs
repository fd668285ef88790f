//! Mutual TLS: who gets in, who is refused, and how it is recorded.

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
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let site = Site::start().await;
    let paths = site.pki.write_expired_site(site.dir.path(), ALLOWED);
    let err = site_request(&site, client_config(&paths).unwrap()).await;
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    handshake_errors_reach(&site, 1.0).await;
}

#[tokio::test]
async fn client_does_not_trust_a_server_from_another_ca() {
    let site = Site::start().await;
    let other = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let paths = other.write_site(dir.path(), ALLOWED);
    let err = site_request(&site, client_config(&paths).unwrap()).await;
    assert!(err.is_connect() || err.is_request(), "{err:?}");
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
}

async fn site_request(site: &Site, config: rustls::ClientConfig) -> reqwest::Error {
    client_with(config).get(site.url("/healthz")).send().await.unwrap_err()
}
