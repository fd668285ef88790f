//! Acknowledgements and the fleet view: acknowledgements posted with real
//! client certificates over mutual TLS, the view read from the plain-HTTP
//! listener (`/status.json`, `/status`, `/metrics`), `cib-publisher status`
//! run against it, and the page rendered by headless Chromium.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;

use cib_net::ack::{Ack, MAX_ACK_BYTES};
use cib_publisher::fleet::{FleetReport, PublishedReport, SiteReport, SiteState};

use crate::harness::{Site, ALLOWED, ALLOWED_TOO, TICKET};

const BIN: &str = env!("CARGO_BIN_EXE_cib-publisher");
const JSON: &str = "application/json";

/// The version published, once there is one.
async fn published(site: &Site) -> PublishedReport {
    let start = Instant::now();
    loop {
        if let Some(p) = site.status().await.tickets[0].published.clone() {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "nothing published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The view of site `name`.
fn site_of(r: &FleetReport, name: &str) -> SiteReport {
    r.tickets[0].sites.iter().find(|s| s.site == name).cloned().unwrap_or_else(|| panic!("no {name} in {r:#?}"))
}

/// An acknowledgement of holding `p`.
fn holding(p: &PublishedReport) -> Ack {
    Ack {
        digest: Some(p.digest.clone()),
        version: Some(p.version.clone()),
        term: p.term,
        at: 1,
        ..Ack::default()
    }
}

#[tokio::test]
async fn acknowledgements_show_each_site_in_step_behind_in_error_or_not_seen() {
    let site = Site::start().await;
    let v1 = published(&site).await;
    let r = site.status().await;
    assert_eq!(r.site, "site-a");
    assert_eq!(site_of(&r, ALLOWED).state, SiteState::NotSeen);
    assert_eq!(site_of(&r, ALLOWED_TOO).state, SiteState::NotSeen);
    assert!(!r.in_step);

    assert_eq!(site.ack(ALLOWED, TICKET, JSON, holding(&v1).to_json()).await, StatusCode::NO_CONTENT);
    let r = site.status().await;
    let b = site_of(&r, ALLOWED);
    assert_eq!((b.state, b.in_step, b.versions_behind, b.behind_seconds), (SiteState::InStep, true, Some(0), Some(0)));
    assert!(b.acked_at.is_some() && b.last_seen.is_some() && !b.connected, "{b:?}");
    assert_eq!(site_of(&r, ALLOWED_TOO).state, SiteState::NotSeen);
    let metrics = reqwest::get(site.status_url("/metrics")).await.unwrap().text().await.unwrap();
    for (series, value) in [
        (r#"cib_publisher_site_in_step{ticket="geo",site="site-b.example"}"#, 1.0),
        (r#"cib_publisher_site_in_step{ticket="geo",site="site-e.example"}"#, 0.0),
        (r#"cib_publisher_site_behind_seconds{ticket="geo",site="site-b.example"}"#, 0.0),
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
        assert_eq!(cib_testkit::metric(&metrics, series), value, "{series}");
    }

    // Site E refused the version: an error.
    let refused = holding(&v1).with_error(Some("not applied: crm_verify refused the merged CIB"));
    assert_eq!(site.ack(ALLOWED_TOO, TICKET, JSON, refused.to_json()).await, StatusCode::NO_CONTENT);
    let e = site_of(&site.status().await, ALLOWED_TOO);
    assert_eq!(e.state, SiteState::Error);
    assert_eq!(e.error.as_deref(), Some("not applied: crm_verify refused the merged CIB"));

    // A new version: B is one version behind until it acknowledges it.
    site.pcmk("cibadmin", &["--modify", "--xml-text", r#"<nvpair id="web-ip-ip" value="192.168.1.99"/>"#]);
    let start = Instant::now();
    let v2 = loop {
        let p = published(&site).await;
        if p.digest != v1.digest {
            break p;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the change was not published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let b = site_of(&site.status().await, ALLOWED);
    assert_eq!((b.state, b.in_step, b.versions_behind), (SiteState::Behind, false, Some(1)), "{b:?}");
    assert!(b.behind_seconds.is_some_and(|s| s < 60), "{b:?}");
    let metrics = site.state.encode_metrics();
    assert_eq!(cib_testkit::metric(&metrics, r#"cib_publisher_site_in_step{ticket="geo",site="site-b.example"}"#), 0.0);

    for name in [ALLOWED, ALLOWED_TOO] {
        assert_eq!(site.ack(name, TICKET, JSON, holding(&v2).to_json()).await, StatusCode::NO_CONTENT);
    }
    let r = site.status().await;
    assert!(r.in_step && r.tickets[0].in_step, "{r:#?}");
    assert_eq!(site_of(&r, ALLOWED).applied.unwrap().version.as_deref(), Some(v2.version.as_str()));
}

#[tokio::test]
async fn acknowledgements_from_outsiders_and_malformed_ones_change_nothing() {
    let site = Site::start().await;
    let v = published(&site).await;
    let good = holding(&v).to_json();
    assert_eq!(site.ack("site-c.example", TICKET, JSON, good.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(site.ack(ALLOWED, "other", JSON, good.clone()).await, StatusCode::NOT_FOUND);
    let refused = [
        (format!("{good}{}", " ".repeat(MAX_ACK_BYTES)), JSON, StatusCode::PAYLOAD_TOO_LARGE),
        ("{".to_owned(), JSON, StatusCode::BAD_REQUEST),
        ("[]".to_owned(), JSON, StatusCode::BAD_REQUEST),
        (good.replace(r#""drift""#, r#""site":"site-e.example","drift""#), JSON, StatusCode::BAD_REQUEST),
        (good.replace("sha256:", "md5:"), JSON, StatusCode::BAD_REQUEST),
        (good.replace(r#""pending":0"#, r#""pending":7"#), JSON, StatusCode::BAD_REQUEST),
        (good.clone(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ];
    for (body, content_type, expect) in &refused {
        assert_eq!(site.ack(ALLOWED, TICKET, content_type, body.clone()).await, *expect, "{body}");
    }
    let get = site.client(ALLOWED).get(site.url("/v1/tickets/geo/ack")).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);

    let r = site.status().await;
    assert_eq!(r.tickets[0].sites.len(), 2, "no site added: {r:#?}");
    for name in [ALLOWED, ALLOWED_TOO] {
        let s = site_of(&r, name);
        assert_eq!((s.state, s.applied.as_ref(), s.acked_at), (SiteState::NotSeen, None, None), "{s:?}");
    }
    assert_eq!(site.metric(r#"cib_publisher_errors_total{kind="ack"}"#), refused.len() as f64);
    assert_eq!(site.metric(r#"cib_publisher_errors_total{kind="forbidden"}"#), 1.0);
    site.logs.wait_for(&["client certificate not allowed", "site-c.example"]).await;
}

/// Writes a configuration whose `metrics_listen` is `listen`.
fn config(dir: &Path, name: &str, listen: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!("site = \"site-a\"\nmetrics_listen = \"{listen}\"\n[tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nca = \"ca.pem\"\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `cib-publisher status ARGS`: exit code, stdout, stderr.
async fn status(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = tokio::process::Command::new(BIN)
        .arg("status")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn the_status_command_exits_0_in_step_1_not_2_on_error() {
    let site = Site::start().await;
    let v = published(&site).await;
    let dir = site.dir.path();
    let running = config(dir, "running.toml", &site.status_addr.to_string());

    let (code, out, err) = status(&[], &running).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("ticket geo: published version") && out.contains("site-b.example not-seen"), "{out}");

    assert_eq!(site.ack(ALLOWED, TICKET, JSON, holding(&v).to_json()).await, StatusCode::NO_CONTENT);
    let (code, out, _) = status(&[], &running).await;
    assert_eq!(code, 1, "site E is still not seen: {out}");
    assert!(out.contains("site-b.example in-step"), "{out}");
    assert_eq!(site.ack(ALLOWED_TOO, TICKET, JSON, holding(&v).to_json()).await, StatusCode::NO_CONTENT);
    let (code, out, err) = status(&[], &running).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("every site in step"), "{out}");
    let (code, out, _) = status(&["--output", "json"], &running).await;
    assert_eq!(code, 0);
    let r: FleetReport = serde_json::from_str(&out).unwrap();
    assert!(r.in_step && r.format == 1, "{out}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (code, _, err) = status(&[], &config(dir, "closed.toml", &closed.to_string())).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("asking the daemon"), "{err}");
    let (code, _, err) = status(&[], &config(dir, "off.toml", "off")).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("metrics_listen is off"), "{err}");
    let (code, _, err) = status(&[], &dir.join("missing.toml")).await;
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn the_page_escapes_what_sites_send_and_renders_in_chromium() {
    let site = Site::start().await;
    let v = published(&site).await;
    let hostile = r#"</td></tr></table><script>document.title="owned"</script><img src=x onerror="document.title='owned'"> & 'q'"#;
    assert_eq!(site.ack(ALLOWED, TICKET, JSON, holding(&v).to_json()).await, StatusCode::NO_CONTENT);
    let bad = holding(&v).with_error(Some(hostile));
    assert_eq!(site.ack(ALLOWED_TOO, TICKET, JSON, bad.to_json()).await, StatusCode::NO_CONTENT);

    let r = reqwest::get(site.status_url("/status")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>document") && !page.contains("<img"), "{page}");
    assert!(
        page.contains("&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;script&gt;document.title=&quot;owned&quot;&lt;/script&gt;&lt;img src=x onerror=&quot;document.title=&#39;owned&#39;&quot;&gt; &amp; &#39;q&#39;"),
        "{page}"
    );
    assert!(page.contains(r#"<tr class="site in-step" data-site="site-b.example">"#), "{page}");
    assert!(page.contains(r#"<tr class="site error" data-site="site-e.example">"#), "{page}");
    assert!(page.contains(r#"<noscript><meta http-equiv="refresh" content="10"></noscript>"#), "{page}");
    for (path, content_type) in [("/status.js", "text/javascript; charset=utf-8"), ("/status.css", "text/css; charset=utf-8")] {
        let r = reqwest::get(site.status_url(path)).await.unwrap();
        assert_eq!((r.status(), r.headers()[CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, content_type), "{path}");
    }

    let Some(browser) = cib_testkit::chromium() else { return };
    let url = site.status_url("/status");
    let dom = {
        let (browser, url) = (browser.clone(), url.clone());
        tokio::task::spawn_blocking(move || cib_testkit::dump_dom(&browser, &url)).await.unwrap()
    };
    // The script ran (it marks the page) and rebuilt the same table.
    assert!(dom.contains("data-updated="), "the script did not run:\n{dom}");
    assert!(dom.contains(r#"data-site="site-b.example""#) && dom.contains(r#"data-site="site-e.example""#), "{dom}");
    assert!(dom.contains(r#"<tr class="site in-step" data-site="site-b.example">"#), "{dom}");
    assert!(dom.contains(r#"<tr class="site error" data-site="site-e.example">"#), "{dom}");
    assert!(dom.contains("&lt;img src=x") && !dom.contains("<img"), "the error is text, not markup:\n{dom}");
    assert!(!dom.contains("owned</title>"), "{dom}");

    let shot = site.dir.path().join("status.png");
    tokio::task::spawn_blocking(move || cib_testkit::screenshot(&browser, &url, &shot)).await.unwrap();
}
