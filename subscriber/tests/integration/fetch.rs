//! `cib-subscriber replicate-now --from https://…` against a publisher
//! started in-process (the real `cib_publisher` server, real mutual TLS with
//! certificates generated at test time), with the real `cibadmin` on a CIB
//! file (`CIB_file` set on the child).
//!
//! A good document is applied; a document altered in transit, a publisher
//! that does not hold the ticket, or a publisher from another CA is an
//! error (exit 2) and the local CIB file stays byte-for-byte the same.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use cib_net::test_pki::Pki;
use cib_net::tls::{server_config, TlsPaths};
use cib_publisher::metrics::Metrics;
use cib_publisher::publication::{Channels, Published, TicketView};
use cib_publisher::server::{app, run, AppState, TicketAccess};
use cib_publisher::watch::{Source, Watcher};

const TICKET: &str = "geo";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/offline").join(name)
}

use cib_testkit::tool;

/// Two sites in one temporary directory: A publishes, B subscribes.
struct Sites {
    dir: TempDir,
    pki: Pki,
    cib_a: PathBuf,
    cib_b: PathBuf,
    client: TlsPaths,
    channels: Arc<Channels>,
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Sites {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Sites {
    /// Site A with `geo` granted (`crm_ticket`), served from its CIB file
    /// when `watch` is true (else the test publishes by hand); site B's
    /// CIB file.
    async fn start(watch: bool) -> Sites {
        Sites::start_with(watch, Pki::write_site).await
    }

    /// As [`Sites::start`], with site A's certificate written by `server`.
    async fn start_with(watch: bool, server: fn(&Pki, &Path, &str) -> TlsPaths) -> Sites {
        let dir = tempfile::tempdir().unwrap();
        let cib_a = dir.path().join("site-a.xml");
        let cib_b = dir.path().join("site-b.xml");
        std::fs::copy(example("site-a.xml"), &cib_a).unwrap();
        std::fs::copy(example("site-b.xml"), &cib_b).unwrap();
        let out = std::process::Command::new(tool("crm_ticket"))
            .args(["--ticket", TICKET, "--grant", "--force"])
            .env("CIB_file", &cib_a)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let pki = Pki::new();
        let server = server(&pki, dir.path(), "site-a.example");
        let client = pki.write_site(dir.path(), "site-b.example");
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let channels = Arc::new(Channels::new([TICKET]));
        if watch {
            let w = Watcher::new(Source::new(Some(&cib_a)), Arc::clone(&channels), Arc::clone(&metrics), Duration::from_secs(30));
            let _task = w.start(shutdown.clone()).await;
        }
        let mut tickets = BTreeMap::new();
        tickets.insert(
            TICKET.to_owned(),
            TicketAccess {
                allow: vec!["site-b.example".into()],
                views: channels.subscribe(TICKET).unwrap(),
            },
        );
        let state = AppState::new("site-a", tickets, Arc::clone(&metrics), shutdown.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = server_config(&server).unwrap();
        tokio::spawn({
            let (metrics, shutdown) = (Arc::clone(&metrics), shutdown.clone());
            async move { run(listener, tls, app(state), metrics, shutdown, Duration::from_secs(1)).await.unwrap() }
        });
        Sites {
            dir,
            pki,
            cib_a,
            cib_b,
            client,
            channels,
            metrics,
            addr,
            shutdown,
        }
    }

    /// Runs `cib-subscriber replicate-now` at site B; returns (exit code, stderr).
    async fn replicate_now(&self, from: &str, tls: &TlsPaths) -> (i32, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cib-subscriber"))
            .args(["replicate-now", "--ticket", TICKET, "--from", from])
            .arg("--rules")
            .arg(example("site-b-rules.toml"))
            .arg("--cert")
            .arg(&tls.cert)
            .arg("--key")
            .arg(&tls.key)
            .arg("--ca")
            .arg(&tls.ca)
            .env("CIB_file", &self.cib_b)
            .env_remove("CIB_shadow")
            .output()
            .await
            .unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The document site A would publish, computed from its CIB file.
    fn published_document(&self) -> Arc<Published> {
        let text = std::process::Command::new(tool("cibadmin"))
            .arg("--query")
            .env("CIB_file", &self.cib_a)
            .output()
            .unwrap()
            .stdout;
        let views = cib_publisher::publication::views(&String::from_utf8(text).unwrap(), &[TICKET.into()], &self.metrics).unwrap();
        match &views[0].1 {
            TicketView::Granted(p) => Arc::clone(p),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn replicate_now_from_a_publisher_applies_the_scope() {
    let sites = Sites::start(true).await;
    let before = std::fs::read_to_string(&sites.cib_b).unwrap();
    assert!(!before.contains("web-ip"));
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &sites.client).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("from site site-a"), "{stderr}");
    let after = std::fs::read_to_string(&sites.cib_b).unwrap();
    assert!(after.contains(r#"id="web-ip""#), "replicated resource missing");
    assert!(after.contains("10.2.1.10"), "site-b rules not applied");
    // The full scope URL works the same, and applying again changes nothing.
    let url = format!("{}/v1/tickets/{TICKET}/scope", sites.base_url());
    let (code, stderr) = sites.replicate_now(&url, &sites.client).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn a_document_altered_in_transit_changes_nothing() {
    let sites = Sites::start(false).await;
    let good = sites.published_document();
    // Content altered, digest attribute kept: the digest no longer matches.
    let altered = good.document_str().replace("192.168.1.10", "192.168.1.66");
    assert_ne!(altered, good.document_str());
    let bad = Published::new(TICKET, altered, good.digest.clone(), good.version.clone(), good.term).unwrap();
    sites.channels.publish(TICKET, TicketView::Granted(Arc::new(bad)), &sites.metrics);
    let before = std::fs::read(&sites.cib_b).unwrap();
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &sites.client).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("digest"), "{stderr}");
    assert_eq!(std::fs::read(&sites.cib_b).unwrap(), before, "the CIB was changed");
}

#[tokio::test]
async fn a_digest_header_that_disagrees_changes_nothing() {
    let sites = Sites::start(false).await;
    let good = sites.published_document();
    // A self-consistent document under another digest header (e.g. a
    // response mixed up in transit).
    let wrong = Published::new(TICKET, good.document_str().to_owned(), "sha256:00".into(), good.version.clone(), good.term).unwrap();
    sites.channels.publish(TICKET, TicketView::Granted(Arc::new(wrong)), &sites.metrics);
    let before = std::fs::read(&sites.cib_b).unwrap();
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &sites.client).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("x-cib-digest"), "{stderr}");
    assert_eq!(std::fs::read(&sites.cib_b).unwrap(), before);
}

#[tokio::test]
async fn a_publisher_without_the_ticket_changes_nothing() {
    let sites = Sites::start(false).await;
    sites.channels.publish(TICKET, TicketView::NotGranted { standby: false }, &sites.metrics);
    let before = std::fs::read(&sites.cib_b).unwrap();
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &sites.client).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("503") && stderr.contains("not granted at site site-a"), "{stderr}");
    assert_eq!(std::fs::read(&sites.cib_b).unwrap(), before);
}

#[tokio::test]
async fn tls_failures_say_which_side_refused_and_change_nothing() {
    let sites = Sites::start(true).await;
    let before = std::fs::read(&sites.cib_b).unwrap();
    let refused = |stderr: &str, reason: &str| {
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {stderr}");
        assert!(lines[0].contains(reason), "expected `{reason}` in: {stderr}");
        assert!(!stderr.contains("connection closed") || stderr.contains(reason), "{stderr}");
    };
    // A publisher from another CA: this site refuses it.
    let other = Pki::new();
    let other_dir = tempfile::tempdir().unwrap();
    let stranger = other.write_site(other_dir.path(), "site-b.example");
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &stranger).await;
    assert_eq!(code, 2, "{stderr}");
    // (Both test CAs have the same name: the signature is what fails.)
    refused(&stderr, "this site refused the publisher's certificate: the peer's certificate is not signed by the configured CA");
    // This site's certificate from another CA, the publisher's trusted:
    // the publisher refuses it (its alert, asked for by the prober).
    let foreign_client = TlsPaths {
        ca: sites.client.ca.clone(),
        ..stranger.clone()
    };
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &foreign_client).await;
    assert_eq!(code, 2, "{stderr}");
    refused(&stderr, "the publisher refused this site's certificate: the peer refused the handshake:");
    // Not allowed for the ticket: the publisher's 403 and its reason.
    let outsider = sites.pki.write_site(sites.dir.path(), "site-c.example");
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &outsider).await;
    assert_eq!(code, 2, "{stderr}");
    refused(&stderr, "the publisher answered 403 Forbidden: the client certificate (site-c.example");
    assert!(stderr.contains("is not allowed to read ticket `geo`"), "{stderr}");
    // Missing flags, plaintext.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cib-subscriber"))
        .args(["replicate-now", "--ticket", TICKET, "--from", &sites.base_url()])
        .env("CIB_file", &sites.cib_b)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cert, --key, --ca"));
    let (code, stderr) = sites.replicate_now(&format!("http://{}", sites.addr), &sites.client).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("plaintext"), "{stderr}");
    assert_eq!(std::fs::read(&sites.cib_b).unwrap(), before);
    let _ = &sites.cib_a;
}

#[tokio::test]
async fn a_publisher_certificate_not_naming_the_host_is_refused() {
    let sites = Sites::start_with(true, Pki::write_site_named_only).await;
    let before = std::fs::read(&sites.cib_b).unwrap();
    let (code, stderr) = sites.replicate_now(&sites.base_url(), &sites.client).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("this site refused the publisher's certificate: the peer's certificate does not name the host connected to"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&sites.cib_b).unwrap(), before);
}
