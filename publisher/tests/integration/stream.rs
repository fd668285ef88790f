//! The event stream: a new event soon after each committed change, resuming
//! with `Last-Event-ID`, ending on revoke and on shutdown.

use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;

use cib_net::protocol::{scope_path, stream_path};
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
