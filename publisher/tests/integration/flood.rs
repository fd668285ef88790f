//! The publisher under a flood: connection caps (whole server and per peer
//! address), the handshake and idle timeouts, and the cap on streams per
//! client certificate — each test fails when its limit is taken away.
//!
//! The subscriber connects from 127.0.0.1; flooders bind other loopback
//! addresses (127.0.0.2, …: Linux routes all of 127.0.0.0/8 to `lo`), so
//! the per-peer cap tells them apart as it would tell sites apart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use cib_net::protocol::{scope_path, stream_path};
use cib_net::tls::client_config;
use cib_publisher::config::Limits;

use crate::harness::{EventReader, Site, ALLOWED, SERVER_NAME, TICKET};

const OPEN: &str = "cib_publisher_open_connections";
const REFUSED_PER_PEER: &str = r#"cib_publisher_connections_refused_total{reason="max_connections_per_peer"}"#;
const REFUSED_TOTAL: &str = r#"cib_publisher_connections_refused_total{reason="max_connections"}"#;
const HANDSHAKE_TIMED_OUT: &str = r#"cib_publisher_connections_timed_out_total{phase="handshake"}"#;
const IDLE_TIMED_OUT: &str = r#"cib_publisher_connections_timed_out_total{phase="idle"}"#;

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP connection to the site from `from`, which sends nothing.
async fn tcp_from(site: &Site, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(site.addr).await.unwrap()
}

/// A TLS connection from `from` with an allowed client certificate,
/// offering only `alpn`; `Err` when the server closed it first.
async fn tls_from(site: &Site, from: IpAddr, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    let mut config = client_config(&site.client_paths(ALLOWED)).unwrap();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tcp_from(site, from).await;
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .expect("a TLS handshake hung")
}

/// Waits (up to `limit`) until `done` holds of the site's metrics.
async fn until(site: &Site, limit: Duration, what: &str, done: impl Fn(&Site) -> bool) {
    let start = Instant::now();
    while !done(site) {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}; metrics:\n{}", site.metrics.encode());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the server has closed `tcp` (EOF or reset) within `limit`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The subscriber, from 127.0.0.1: the scope, and the first event of a
/// stream.
async fn subscriber_is_served(site: &Site) {
    let client = site.client(ALLOWED);
    let r = client.get(site.url(&scope_path(TICKET))).send().await.expect("the subscriber's request failed");
    assert_eq!(r.status(), StatusCode::OK);
    let r = client.get(site.url(&stream_path(TICKET))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let first = EventReader::new(r).next(Duration::from_secs(5)).await.expect("the stream ended");
    assert_eq!(first.event, "scope");
}

/// The soft limit on open files of this process (`ulimit -n`).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// 1,000 half-open connections from one address (fewer if `ulimit -n`
/// would not hold them: the test holds them all) and 200 idle
/// authenticated ones from another: each address keeps its share, the
/// rest are closed at once, and the subscriber is served. Without the
/// per-peer cap the flood fills the server and the subscriber is refused.
#[tokio::test]
async fn a_flood_from_two_addresses_keeps_its_share_and_the_subscriber_is_served() {
    const IDLE_TLS: usize = 200;
    let limit = open_files_limit();
    let half_open = 1000.min(limit.saturating_sub(256));
    assert!(half_open >= 200, "ulimit -n is {limit}: the test needs 456 open files");
    let limits = Limits {
        max_connections: 64,
        max_connections_per_peer: 8,
        handshake_timeout_seconds: 60,
        idle_timeout_seconds: 60,
        ..Limits::default()
    };
    let site = Site::start_limited(limits).await;
    let start = Instant::now();
    let mut flood = Vec::with_capacity(half_open);
    for _ in 0..half_open {
        flood.push(tcp_from(&site, loopback(2)).await);
    }
    let mut idle = Vec::new();
    let mut refused_tls = 0;
    for _ in 0..IDLE_TLS {
        match tls_from(&site, loopback(3), b"h2").await {
            Ok(tls) => idle.push(tls),
            Err(_) => refused_tls += 1,
        }
    }
    let refused = (half_open - 8 + IDLE_TLS - 8) as f64;
    until(&site, Duration::from_secs(10), "every flood connection accepted", |s| s.metric(REFUSED_PER_PEER) >= refused).await;
    eprintln!(
        "{half_open} half-open + {IDLE_TLS} TLS connections opened in {:?}; {} authenticated, {refused_tls} refused (ulimit -n {limit})",
        start.elapsed(),
        idle.len()
    );
    assert_eq!(idle.len(), 8, "the per-peer cap holds for authenticated connections");
    assert_eq!(site.metric(OPEN), 16.0);
    assert_eq!(site.metric(REFUSED_PER_PEER), refused);
    assert_eq!(site.metric(REFUSED_TOTAL), 0.0);
    // The refused half-open connections were closed, the first 8 are held.
    let mut closed = 0;
    for tcp in &mut flood {
        if closed_within(tcp, Duration::from_millis(2)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, half_open - 8);

    let start = Instant::now();
    subscriber_is_served(&site).await;
    eprintln!("subscriber served during the flood in {:?}", start.elapsed());
    // The flood is still held: it was not timed out to make room.
    assert_eq!(site.metric(HANDSHAKE_TIMED_OUT), 0.0);
    assert_eq!(site.metric(IDLE_TIMED_OUT), 0.0);
    // Refusals are logged, but not one line each.
    let warned = site.logs.lines().iter().filter(|l| l.contains("connection refused: too many connections")).count();
    assert!((1..=2).contains(&warned), "{warned} refusal lines");
    // Nor is the flooder letting go a refused handshake worth a WARN each.
    drop(flood);
    until(&site, Duration::from_secs(5), "the half-open connections closed", |s| s.metric(OPEN) == 8.0).await;
    let handshake_warnings: Vec<String> = site.logs.lines().into_iter().filter(|l| l.starts_with("WARN") && l.contains("handshake")).collect();
    assert!(handshake_warnings.is_empty(), "{handshake_warnings:#?}");
    drop(idle);
}

/// Four addresses each within their share fill the whole server: the
/// total cap refuses the rest, the subscriber too, until the handshake
/// timeout frees the half-open connections.
#[tokio::test]
async fn the_total_cap_holds_and_the_handshake_timeout_frees_it() {
    let limits = Limits {
        max_connections: 20,
        max_connections_per_peer: 8,
        handshake_timeout_seconds: 1,
        ..Limits::default()
    };
    let site = Site::start_limited(limits).await;
    let mut flood = Vec::new();
    for from in 2..=5 {
        for _ in 0..8 {
            flood.push(tcp_from(&site, loopback(from)).await);
        }
    }
    until(&site, Duration::from_secs(5), "32 connections accepted", |s| s.metric(OPEN) + s.metric(REFUSED_TOTAL) >= 32.0).await;
    assert_eq!(site.metric(OPEN), 20.0, "the total cap");
    assert_eq!(site.metric(REFUSED_TOTAL), 12.0);
    assert_eq!(site.metric(REFUSED_PER_PEER), 0.0);
    let full_at = Instant::now();
    let err = site.client(ALLOWED).get(site.url("/healthz")).send().await;
    // A server that is full closes the subscriber's connection too (unless
    // the handshake timeout already freed the flood's slots).
    if full_at.elapsed() < Duration::from_millis(500) {
        assert!(err.is_err(), "served while full: {err:?}");
    }
    // Every flood connection is closed within the timeout (and a margin).
    for tcp in &mut flood {
        assert!(closed_within(tcp, Duration::from_secs(3)).await, "a half-open connection outlived the handshake timeout");
    }
    until(&site, Duration::from_secs(3), "the slots given back", |s| s.metric(OPEN) == 0.0).await;
    assert_eq!(site.metric(HANDSHAKE_TIMED_OUT), 20.0);
    subscriber_is_served(&site).await;
}

/// A connection that does not finish its handshake, and an authenticated
/// one without requests (HTTP/1.1 and HTTP/2), are closed after their
/// timeouts; an open stream keeps its connection.
#[tokio::test]
async fn handshake_and_idle_timeouts_close_connections_but_not_streams() {
    let limits = Limits {
        handshake_timeout_seconds: 1,
        idle_timeout_seconds: 1,
        ..Limits::default()
    };
    let site = Site::start_limited(limits).await;

    // Half-open: closed after the handshake timeout.
    let start = Instant::now();
    let mut tcp = tcp_from(&site, loopback(1)).await;
    assert!(closed_within(&mut tcp, Duration::from_secs(3)).await, "half-open connection not closed");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}, before the timeout");
    until(&site, Duration::from_secs(1), "handshake timeout counted", |s| s.metric(HANDSHAKE_TIMED_OUT) == 1.0).await;

    // HTTP/1.1: one request, then idle: closed a timeout after the response.
    let mut h1 = tls_from(&site, loopback(1), b"http/1.1").await.unwrap();
    h1.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {SERVER_NAME}\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.ends_with(b"ok\n") {
        let n = tokio::time::timeout(Duration::from_secs(3), h1.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the response: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&buf[..n]);
    }
    assert!(response.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&response));
    let answered = Instant::now();
    assert!(closed_within(&mut h1, Duration::from_secs(3)).await, "idle HTTP/1.1 connection not closed");
    let took = answered.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}, before the timeout");
    until(&site, Duration::from_secs(1), "idle timeout counted", |s| s.metric(IDLE_TIMED_OUT) == 1.0).await;

    // HTTP/2 (reqwest): the pooled connection is closed with a GOAWAY once
    // idle; the client then connects again.
    let client = site.client(ALLOWED);
    let r = client.get(site.url("/healthz")).send().await.unwrap();
    assert_eq!((r.status(), r.version()), (StatusCode::OK, reqwest::Version::HTTP_2));
    r.text().await.unwrap();
    until(&site, Duration::from_secs(4), "idle HTTP/2 connection closed", |s| s.metric(IDLE_TIMED_OUT) == 2.0 && s.metric(OPEN) == 0.0).await;
    let r = client.get(site.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A stream outlives the idle timeout several times over.
    let r = site.client(ALLOWED).get(site.url(&stream_path(TICKET))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let idle_before = site.metric(IDLE_TIMED_OUT);
    let mut events = EventReader::new(r);
    events.next(Duration::from_secs(2)).await.expect("first event");
    let mut body = String::new();
    let start = Instant::now();
    let mut response = events.into_response();
    while start.elapsed() < Duration::from_millis(3500) {
        let chunk = tokio::time::timeout(Duration::from_secs(2), response.chunk())
            .await
            .expect("the stream went silent")
            .expect("the stream broke")
            .expect("the stream ended during the idle timeout");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(body.contains(": keep-alive"), "{body}");
    // Only the other client's pooled connection may have gone idle meanwhile.
    assert!(site.metric(IDLE_TIMED_OUT) <= idle_before + 1.0);
    assert_eq!(site.metric(r#"cib_publisher_open_streams{ticket="geo"}"#), 1.0);
}

/// One certificate may hold `max_streams_per_client` streams of a ticket;
/// one more is answered 429 with a reason, until one ends.
#[tokio::test]
async fn streams_per_client_certificate_are_capped_with_429() {
    let limits = Limits {
        max_streams_per_client: 2,
        ..Limits::default()
    };
    let site = Site::start_limited(limits).await;
    let client = site.client(ALLOWED);
    let url = site.url(&stream_path(TICKET));
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let mut events = EventReader::new(r);
        events.next(Duration::from_secs(2)).await.unwrap();
        open.push(events);
    }
    // Another client object: another connection, the same certificate.
    let r = site.client(ALLOWED).get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = r.text().await.unwrap();
    assert!(body.contains("site-b.example") && body.contains("already has 2 streams"), "{body}");
    assert_eq!(site.metric(r#"cib_publisher_errors_total{kind="too_many_streams"}"#), 1.0);
    site.logs.wait_for(&["stream refused", "site-b.example", "peer=127.0.0.1:"]).await;
    // The scope itself is still served.
    let r = client.get(site.url(&scope_path(TICKET))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A stream that ends gives its slot back.
    drop(open.pop());
    until(&site, Duration::from_secs(3), "the stream closed", |s| {
        s.metric(r#"cib_publisher_open_streams{ticket="geo"}"#) == 1.0
    })
    .await;
    let r = site.client(ALLOWED).get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
