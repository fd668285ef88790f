//! The event stream: a new event soon after each committed change, resuming
//! with `Last-Event-ID`, ending on revoke and on shutdown; clients that stop
//! reading delay no one and get the newest version, not a backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use cib_net::protocol::{scope_path, stream_path};
use cib_net::tls::client_config;
use cib_publisher::publication::Published;
use cib_transforms::scope::Scope;
use cib_transforms::xml;

use crate::harness::{EventReader, Site, ALLOWED, TICKET};

async fn open(site: &Site, last_event_id: Option<&str>) -> EventReader {
    let mut req = site.client(ALLOWED).get(site.url(&stream_path(TICKET)));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
    assert_eq!(r.headers()["x-site"], "site-a");
    EventReader::new(r)
}

fn scope_of(event: &cib_net::sse::Event) -> Scope {
    assert_eq!(event.event, "scope");
    Scope::from_document(xml::parse(&event.data).unwrap(), Some(TICKET)).unwrap()
}

#[tokio::test]
async fn first_event_is_the_current_document() {
    let site = Site::start().await;
    let current = site.client(ALLOWED).get(site.url(&scope_path(TICKET))).send().await.unwrap();
    let etag = current.headers()["etag"].to_str().unwrap().trim_matches('"').to_owned();
    let document = current.text().await.unwrap();
    let mut events = open(&site, None).await;
    let first = events.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(first.id.as_deref(), Some(etag.as_str()));
    assert_eq!(first.data, document, "the event carries the document byte for byte");
    scope_of(&first);
}

#[tokio::test]
async fn a_cibadmin_change_arrives_within_a_second() {
    let site = Site::start().await;
    let mut events = open(&site, None).await;
    let first = scope_of(&events.next(Duration::from_secs(2)).await.unwrap());
    for (i, ip) in ["192.168.1.50", "192.168.1.51", "192.168.1.52"].iter().enumerate() {
        let start = Instant::now();
        site.pcmk(
            "cibadmin",
            &["--modify", "--xml-text", &format!(r#"<nvpair id="web-ip-ip" value="{ip}"/>"#)],
        );
        let event = events.next(Duration::from_secs(5)).await.expect("stream ended");
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(1), "change {i} took {elapsed:?}");
        let scope = scope_of(&event);
        assert_ne!(scope.digest, first.digest);
        assert!(event.data.contains(ip), "change {i}");
        assert_eq!(event.id.as_deref(), Some(format!("{}@{}", scope.digest, scope.term.unwrap()).as_str()));
    }
}

#[tokio::test]
async fn changes_outside_the_scope_send_nothing() {
    let site = Site::start().await;
    let mut events = open(&site, None).await;
    events.next(Duration::from_secs(2)).await.unwrap();
    let computed = site.metric(r#"cib_publisher_scope_computations_total{ticket="geo"}"#);
    site.pcmk(
        "cibadmin",
        &["--create", "--scope", "resources", "--xml-text", r#"<primitive id="unrelated" class="ocf" provider="pacemaker" type="Dummy"/>"#],
    );
    // The change is seen (the scope is recomputed) but no event is sent:
    // the next thing on the stream is the revoke's end of stream.
    let start = Instant::now();
    while site.metric(r#"cib_publisher_scope_computations_total{ticket="geo"}"#) <= computed {
        assert!(start.elapsed() < Duration::from_secs(3), "change not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--revoke", "--force"]);
    assert_eq!(events.next(Duration::from_secs(3)).await, None);
}

#[tokio::test]
async fn last_event_id_is_not_resent() {
    let site = Site::start().await;
    let mut events = open(&site, None).await;
    let first = events.next(Duration::from_secs(2)).await.unwrap();
    drop(events);
    let mut resumed = open(&site, first.id.as_deref()).await;
    site.pcmk("cibadmin", &["--modify", "--xml-text", r#"<nvpair id="web-ip-ip" value="192.168.1.77"/>"#]);
    let next = resumed.next(Duration::from_secs(3)).await.unwrap();
    assert_ne!(next.id, first.id);
    assert!(next.data.contains("192.168.1.77"));
    // An unknown id gets the current version at once.
    let mut fresh = open(&site, Some("sha256:0000@1")).await;
    let now = fresh.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(now.id, next.id);
}

#[tokio::test]
async fn stream_ends_when_the_ticket_is_revoked() {
    let site = Site::start().await;
    let mut events = open(&site, None).await;
    events.next(Duration::from_secs(2)).await.unwrap();
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--revoke", "--force"]);
    let start = Instant::now();
    assert_eq!(events.next(Duration::from_secs(3)).await, None, "stream should end");
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
}

#[tokio::test]
async fn stream_ends_on_standby() {
    let site = Site::start().await;
    let mut events = open(&site, None).await;
    events.next(Duration::from_secs(2)).await.unwrap();
    site.pcmk("crm_ticket", &["--ticket", TICKET, "--standby", "--force"]);
    assert_eq!(events.next(Duration::from_secs(3)).await, None);
}

#[tokio::test]
async fn keep_alive_comments_keep_an_idle_stream_open() {
    let site = Site::start().await;
    let r = site.client(ALLOWED).get(site.url(&stream_path(TICKET))).send().await.unwrap();
    let mut r = r;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !seen.contains(": keep-alive\n\n") {
        assert!(Instant::now() < deadline, "no keep-alive in {seen:?}");
        let chunk = tokio::time::timeout(Duration::from_secs(3), r.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn shutdown_ends_streams_and_the_server() {
    let mut site = Site::start().await;
    let mut events = open(&site, None).await;
    events.next(Duration::from_secs(2)).await.unwrap();
    let start = Instant::now();
    site.shutdown.cancel();
    assert_eq!(events.next(Duration::from_secs(3)).await, None);
    let server = site.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(3), server).await.unwrap().unwrap();
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(site.addr).await.is_err());
}

/// Size of the padding of each version in the slow-client test: large
/// against the socket buffers, so what the publisher queues shows.
const BIG: usize = 2 * 1024 * 1024;

/// Version `i` of a padded document, published by hand.
fn big_version(i: usize) -> Published {
    let document = format!("<configuration n=\"{i}\">\n{}\n</configuration>\n", "x".repeat(BIG));
    Published::new(TICKET, document, format!("sha256:{i:04}"), format!("0.{i}.0"), Some(7)).unwrap()
}

fn big_id(i: usize) -> String {
    format!("sha256:{i:04}@7")
}

/// The most versions a client that stopped reading can still receive: the
/// first, those the kernel's socket buffers hold (`tcp_wmem` maximum on
/// the publisher's side, [`SMALL_WINDOW`] on the client's), one in the server's
/// write buffer, one in TLS and flow-control slack, and the newest when it
/// reads again. A publisher that queued every version would deliver all.
fn most_versions_for_a_stalled_client() -> usize {
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or(4 * 1024 * 1024);
    4 + wmem_max.div_ceil(BIG)
}

/// Receive buffer (HTTP/1.1) and flow-control window (HTTP/2) of the
/// clients that stop reading: small against one version.
const SMALL_WINDOW: u32 = 64 * 1024;

/// An HTTP/1.1 stream request on a socket with a small receive buffer; the
/// response head is read, then nothing until the test says so.
struct StalledHttp1 {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    received: Vec<u8>,
}

impl StalledHttp1 {
    async fn open(site: &Site) -> StalledHttp1 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(SMALL_WINDOW).unwrap();
        let tcp = socket.connect(site.addr).await.unwrap();
        let mut config = client_config(&site.client_paths(ALLOWED)).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("site-a.example").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let head = format!("GET {} HTTP/1.1\r\nhost: site-a.example\r\naccept: text/event-stream\r\n\r\n", stream_path(TICKET));
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 256];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "connection closed before the response head");
            received.extend_from_slice(&buf[..n]);
        }
        assert!(received.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&received));
        StalledHttp1 { tls, received }
    }

    /// Reads until the event `last` has arrived; returns the ids of the
    /// events received, in order.
    async fn read_until(&mut self, last: &str) -> Vec<String> {
        let marker = format!("id: {last}\n");
        let mut buf = vec![0u8; 64 * 1024];
        let mut searched = 0usize;
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let from = searched.saturating_sub(marker.len());
                if self.received[from..].windows(marker.len()).any(|w| w == marker.as_bytes()) {
                    return;
                }
                searched = self.received.len();
                let n = self.tls.read(&mut buf).await.unwrap();
                assert!(n > 0, "the stream ended before {last}");
                self.received.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("the stalled client never got the newest version");
        // Each frame is one chunk of the chunked body: its `id:` line is
        // never split by chunk framing.
        String::from_utf8_lossy(&self.received)
            .lines()
            .filter_map(|l| l.strip_prefix("id: ").map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn clients_that_stop_reading_hold_up_no_one_and_get_only_the_newest_version() {
    let site = Site::start_manual().await;
    site.publish(big_version(0));
    // Two clients that stop reading after the response head: HTTP/1.1 with
    // a small socket receive buffer, and HTTP/2 with a small window.
    let mut http1 = StalledHttp1::open(&site).await;
    let config = client_config(&site.client_paths(ALLOWED)).unwrap();
    let h2_client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .http2_initial_stream_window_size(SMALL_WINDOW)
        .http2_initial_connection_window_size(SMALL_WINDOW)
        .build()
        .unwrap();
    let http2 = h2_client.get(site.url(&stream_path(TICKET))).send().await.unwrap();
    assert_eq!((http2.status(), http2.version()), (StatusCode::OK, reqwest::Version::HTTP_2));
    // And a subscriber that reads.
    let mut reader = open(&site, None).await;
    assert_eq!(reader.next(Duration::from_secs(5)).await.unwrap().id, Some(big_id(0)));
    assert_eq!(site.metric(r#"cib_publisher_open_streams{ticket="geo"}"#), 3.0);

    let bound = most_versions_for_a_stalled_client();
    let versions = 2 * bound;
    let mut slowest = Duration::ZERO;
    for i in 1..=versions {
        let version = big_version(i);
        let size = version.document.len();
        let start = Instant::now();
        site.publish(version);
        let event = reader.next(Duration::from_secs(10)).await.expect("the reading stream ended");
        slowest = slowest.max(start.elapsed());
        assert_eq!(event.id, Some(big_id(i)), "the reader missed a version");
        assert_eq!(event.data.len(), size);
    }
    eprintln!("{versions} versions of {BIG} bytes, slowest delivery to the reader {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "a version took {slowest:?} to reach the reader");
    // The stalled clients are still connected (resynchronised, not dropped).
    assert_eq!(site.metric(r#"cib_publisher_open_streams{ticket="geo"}"#), 3.0);

    // Reading again, each gets a few versions and then the newest: what it
    // missed was never queued for it.
    let newest = big_id(versions);
    let got = http1.read_until(&newest).await;
    eprintln!("HTTP/1.1 client received {} of {} versions: {got:?}", got.len(), versions + 1);
    assert!(got.len() <= bound, "HTTP/1.1: {} versions queued for a client that did not read: {got:?}", got.len());
    assert_eq!(got.first(), Some(&big_id(0)));
    assert_eq!(got.last(), Some(&newest));
    let mut stalled = EventReader::new(http2);
    let mut got = Vec::new();
    while got.last() != Some(&newest) {
        let event = stalled.next(Duration::from_secs(20)).await.expect("the HTTP/2 stream ended");
        got.push(event.id.unwrap());
    }
    eprintln!("HTTP/2 client received {} of {} versions: {got:?}", got.len(), versions + 1);
    assert!(got.len() <= bound, "HTTP/2: {} versions queued for a client that did not read: {got:?}", got.len());
    assert_eq!(got.first(), Some(&big_id(0)));
}
