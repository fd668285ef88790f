//! The scope document over HTTPS: headers, conditional GET, errors, health
//! and metrics.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

use cib_transforms::scope::Scope;
use cib_transforms::xml;

use crate::harness::{Site, ALLOWED, TICKET};

fn scope_path() -> String {
    cib_net::protocol::scope_path(TICKET)
}

/// The `admin_epoch.epoch.num_updates` of a CIB file.
fn cib_version(site: &Site) -> String {
    let cib = xml::parse(&std::fs::read_to_string(&site.cib).unwrap()).unwrap();
    cib_transforms::cib::version(&cib)
}

/// Polls the scope until it answers `status` (the watcher is event-driven,
/// but the change reaches the server asynchronously).
async fn wait_for_status(site: &Site, client: &reqwest::Client, status: StatusCode) -> reqwest::Response {
    let start = Instant::now();
    loop {
        let r = client.get(site.url(&scope_path())).send().await.unwrap();
        if r.status() == status {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "still {} after 3 s", r.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn scope_with_version_digest_term_and_site() {
    let site = Site::start().await;
    let r = site.client(ALLOWED).get(site.url(&scope_path())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h[CONTENT_TYPE], "application/xml");
    assert_eq!(h["x-site"], "site-a");
    assert_eq!(h["x-cib-version"], cib_version(&site).as_str());
    let digest = h["x-cib-digest"].to_str().unwrap().to_owned();
    let term = h["x-ticket-term"].to_str().unwrap().to_owned();
    assert!(term.parse::<u64>().unwrap() > 1_600_000_000, "last-granted as term: {term}");
    assert_eq!(h[ETAG], format!("\"{digest}@{term}\"").as_str());
    let body = r.text().await.unwrap();
    let scope = Scope::from_document(xml::parse(&body).unwrap(), Some(TICKET)).unwrap();
    assert_eq!(scope.digest, digest);
    assert_eq!(scope.term.map(|t| t.to_string()), Some(term));
    assert!(scope.config.find_id("web-ip").is_some());
    assert!(scope.config.find_id("site-a-monitoring").is_none());
    assert!(scope.config.find_id("fence-a").is_none());
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_is_304() {
    let site = Site::start().await;
    let client = site.client(ALLOWED);
    let r = client.get(site.url(&scope_path())).send().await.unwrap();
    let etag = r.headers()[ETAG].clone();
    let r = client.get(site.url(&scope_path())).header(IF_NONE_MATCH, etag.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()[ETAG], etag);
    assert!(r.text().await.unwrap().is_empty());
    // A stale tag gets the document.
    let r = client.get(site.url(&scope_path())).header(IF_NONE_MATCH, "\"sha256:00@1\"").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // After a change in scope, the old tag gets the new document.
    site.pcmk("cibadmin", &["--modify", "--xml-text", r#"<nvpair id="web-ip-ip" value="192.168.1.99"/>"#]);
    let start = Instant::now();
    loop {
        let r = client.get(site.url(&scope_path())).header(IF_NONE_MATCH, etag.clone()).send().await.unwrap();
        if r.status() == StatusCode::OK {
            assert_ne!(r.headers()[ETAG], etag);
            assert!(r.text().await.unwrap().contains("192.168.1.99"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(3), "change not published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn not_granted_is_503_and_granted_again_is_200() {
    let site = Site::start().await;
    let client = site.client(ALLOWED);
    wait_for_status(&site, &client, StatusCode::OK).await;
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--revoke", "--force"]);
    let r = wait_for_status(&site, &client, StatusCode::SERVICE_UNAVAILABLE).await;
    let body = r.text().await.unwrap();
    assert!(body.contains("not granted at site site-a"), "{body}");
    // Stream requests are refused too.
    let r = client.get(site.url(&cib_net::protocol::stream_path(TICKET))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--grant", "--force"]);
    wait_for_status(&site, &client, StatusCode::OK).await;
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--standby", "--force"]);
    let r = wait_for_status(&site, &client, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(r.text().await.unwrap().contains("standby"));
}

#[tokio::test]
async fn a_term_that_is_not_a_number_is_not_published() {
    let site = Site::start().await;
    let client = site.client(ALLOWED);
    let mut events = crate::harness::EventReader::new(
        client.get(site.url(&cib_net::protocol::stream_path(TICKET))).send().await.unwrap(),
    );
    events.next(Duration::from_secs(2)).await.unwrap();
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--set-attr", "term", "--attr-value", "+5"]);
    let r = wait_for_status(&site, &client, StatusCode::SERVICE_UNAVAILABLE).await;
    let body = r.text().await.unwrap();
    assert!(body.contains("cannot be published") && !body.contains("+5"), "the reason stays in the log: {body}");
    assert_eq!(events.next(Duration::from_secs(2)).await, None, "the stream ends");
    let line = site.logs.wait_for(&["ERROR", "not serving it", r#"term="+5""#]).await;
    assert!(line.contains("ticket `geo`"), "{line}");
    assert_eq!(site.metric(r#"cib_publisher_errors_total{kind="term"}"#), 1.0);
    // A canonical term is published again.
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--set-attr", "term", "--attr-value", "5"]);
    let r = wait_for_status(&site, &client, StatusCode::OK).await;
    assert_eq!(r.headers()["x-ticket-term"], "5");
}

#[tokio::test]
async fn never_granted_is_503_from_the_start() {
    let site = Site::start_with(false).await;
    let r = site.client(ALLOWED).get(site.url(&scope_path())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_ticket_is_404() {
    let site = Site::start().await;
    let r = site.client(ALLOWED).get(site.url("/v1/tickets/other/scope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = site.client(ALLOWED).get(site.url("/nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn request_bodies_are_refused() {
    let site = Site::start().await;
    let r = site
        .client(ALLOWED)
        .get(site.url(&scope_path()))
        .body("x".repeat(100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let site = Site::start().await;
    let r = site
        .client(ALLOWED)
        .get(site.url(&scope_path()))
        .header("x-big", "x".repeat(64 * 1024))
        .send()
        .await;
    match r {
        Ok(r) => assert!(r.status().is_client_error(), "{}", r.status()),
        Err(e) => assert!(e.is_request() || e.is_connect(), "{e:?}"),
    }
}

#[tokio::test]
async fn http1_works_too() {
    let site = Site::start().await;
    let mut config = cib_net::tls::client_config(&site.client_paths(ALLOWED)).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = reqwest::Client::builder().tls_backend_preconfigured(config).http1_only().build().unwrap();
    let r = client.get(site.url(&scope_path())).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_report_version_computations_and_streams() {
    let site = Site::start().await;
    let client = site.client(ALLOWED);
    let r = client.get(site.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    let version = cib_version(&site);
    assert!(text.contains(&format!(r#"cib_publisher_scope_info{{ticket="geo",version="{version}""#)), "{text}");
    assert!(text.contains(r#"cib_publisher_ticket_granted{ticket="geo"} 1"#), "{text}");
    assert!(text.contains(r#"cib_publisher_scope_computations_total{ticket="geo"} 1"#), "{text}");
    let stream = client.get(site.url(&cib_net::protocol::stream_path(TICKET))).send().await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(site.metric(r#"cib_publisher_open_streams{ticket="geo"}"#), 1.0);
    drop(stream);
    let start = Instant::now();
    while site.metric(r#"cib_publisher_open_streams{ticket="geo"}"#) != 0.0 {
        assert!(start.elapsed() < Duration::from_secs(3), "closed stream still counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
