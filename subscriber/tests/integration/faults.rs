//! Faults: a publisher killed between and in the middle of events,
//! truncated and altered documents, signals. The CIB is never changed by a
//! broken or altered document, and the daemon reconnects.

use std::sync::Arc;
use std::time::Duration;

use cib_net::protocol::{stream_path, EVENT_SCOPE};
use cib_publisher::publication::Published;

use crate::harness::{
    chunk, document_of, grant, set_web_ip, stream_head, FakePublisher, Gate, Publisher, Reply, Subscriber, World, TICKET,
};

const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn reconnects_when_a_killed_publisher_comes_back() {
    let world = World::new();
    let cib_a = world.cib("site-a", "site-a.xml");
    grant(&cib_a, 5);
    let mut a = Publisher::start(&world, "site-a", cib_a, true).await;
    let b = Subscriber::configure(&world, "auto", &[&a]).start();
    b.wait_for("the first version applied", LIMIT, |_, cib| cib.contains("10.2.1.10")).await;
    let url = a.url();

    a.kill().await;
    b.wait_for("the stream seen broken", LIMIT, |s, _| !s.peers[&url].streaming).await;
    set_web_ip(&a.cib, "192.168.1.12");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.cib_text().contains("10.2.1.10"), "B changed while A was down");

    a.restart().await;
    assert_eq!(a.url(), url);
    b.wait_for("the change made while down applied", LIMIT, |s, cib| {
        s.peers[&url].streaming && cib.contains("10.2.1.12")
    })
    .await;
}

#[tokio::test]
async fn altered_documents_change_nothing() {
    let world = World::new();
    let cib_a = world.cib("site-a", "site-a.xml");
    grant(&cib_a, 5);
    let a = Publisher::start(&world, "site-a", cib_a, false).await;
    let good = a.document();
    // Content altered in transit, digest attribute and entity tag kept.
    let altered = good.document_str().replace("192.168.1.10", "192.168.1.66");
    assert_ne!(altered, good.document_str());
    a.publish(Published::new(TICKET, altered, good.digest.clone(), good.version.clone(), good.term).unwrap());
    let b = Subscriber::configure(&world, "auto", &[&a]).start();
    let before = std::fs::read(&b.cib).unwrap();
    b.wait_for("the altered document refused", LIMIT, |s, _| {
        s.last_error.as_ref().is_some_and(|e| e.text.contains("digest mismatch"))
    })
    .await;
    assert_eq!(std::fs::read(&b.cib).unwrap(), before, "B's CIB changed");
    assert_eq!(b.state().received, None);

    // A self-consistent document under another entity tag (mixed up).
    a.publish(Published::new(TICKET, good.document_str().to_owned(), "sha256:00".into(), good.version.clone(), good.term).unwrap());
    b.wait_for("the mixed-up document refused", LIMIT, |s, _| {
        s.last_error.as_ref().is_some_and(|e| e.text.contains("does not match the document"))
    })
    .await;
    assert_eq!(std::fs::read(&b.cib).unwrap(), before, "B's CIB changed");

    // The good document goes through.
    a.publish((*good).clone());
    b.wait_for("the good document applied", LIMIT, |_, cib| cib.contains("10.2.1.10")).await;
}

#[tokio::test]
async fn sigterm_stops_the_daemon_cleanly() {
    let world = World::new();
    let cib_a = world.cib("site-a", "site-a.xml");
    grant(&cib_a, 5);
    let a = Publisher::start(&world, "site-a", cib_a, true).await;
    let b = Subscriber::configure(&world, "auto", &[&a]);

    let (code, out, err) = b.cli(&["run", "--check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("is valid"), "{out}");

    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cib-subscriber"))
        .arg("run")
        .arg("--config")
        .arg(&b.config)
        .env_remove("CIB_file")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    b.wait_for("applied by the daemon process", LIMIT, |_, cib| cib.contains("10.2.1.10")).await;
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM received") && stderr.contains("stopped"), "{stderr}");
    assert!(stderr.contains("applied"), "{stderr}");
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_before_connecting() {
    let world = World::new();
    let cib_a = world.cib("site-a", "site-a.xml");
    let a = Publisher::start(&world, "site-a", cib_a, false).await;
    let b = Subscriber::configure(&world, "auto", &[&a]);
    let text = std::fs::read_to_string(&b.config).unwrap().replace("mode = \"auto\"", "mode = \"auto\"\nadopt = true");
    std::fs::write(&b.config, text).unwrap();
    let (code, _, err) = b.cli(&["run"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("adopt"), "{err}");
    assert!(!b.state_dir.exists(), "the daemon started despite the error");
}

/// Site A's document (`geo` granted, term 5), as the real publisher frames
/// it, for a [`FakePublisher`] to send whole or in part.
fn site_a_document(world: &World) -> Arc<Published> {
    let cib = world.cib("site-a", "site-a.xml");
    grant(&cib, 5);
    document_of(&cib)
}

/// B in auto mode following `fake`; returns it with its CIB as it was.
fn follow(world: &World, fake: &FakePublisher) -> (Subscriber, Vec<u8>) {
    let b = Subscriber::configure_full(world, world.cib("site-b", "site-b.xml"), "auto", &[fake.url()], &world.client);
    let before = std::fs::read(&b.cib).unwrap();
    (b.start(), before)
}

/// Waits until the `n`-th stream request was followed by another (the
/// follower reconnects only once the stream is down, and reports why
/// first), then checks nothing was received or changed; returns the peer's
/// error.
async fn went_down_unchanged(b: &Subscriber, fake: &FakePublisher, n: usize, before: &[u8]) -> String {
    fake.wait_for_requests(n + 1).await;
    let url = fake.url();
    b.wait_for("the broken stream seen", LIMIT, |s, _| s.peers.get(&url).is_some_and(|p| !p.streaming && p.error.is_some()))
        .await;
    let s = b.state();
    assert!(s.received.is_none() && s.applied.is_none(), "{s:?}");
    assert_eq!(std::fs::read(&b.cib).unwrap(), before, "B's CIB changed");
    s.peers[&url].error.clone().unwrap()
}

/// A fake publisher whose first connection gets `first` and is killed,
/// the second `second` (killed too), the third the whole event of `doc`
/// (held open). The second and third answers wait for their gate, so a
/// test sees each connection's outcome before opening the next.
fn two_failures_then_whole(world: &World, doc: &Published, first: Vec<u8>, second: Vec<u8>) -> (FakePublisher, [Gate; 2]) {
    let gates = [Gate::default(), Gate::default()];
    let mut whole = stream_head("transfer-encoding: chunked");
    whole.extend(chunk(&doc.frame));
    let fake = FakePublisher::start(
        world,
        vec![
            Reply::killed_after(first),
            Reply::killed_after(second).when(&gates[0]),
            Reply::held_after(whole).when(&gates[1]),
        ],
    );
    (fake, gates)
}

/// Checks that no document reached the daemon's coordinator: a part of an
/// event is never handed on.
fn nothing_handed_on(b: &Subscriber) {
    let s = b.state();
    assert!(s.last_error.is_none() && s.last_result.is_none(), "{s:?}");
}

#[tokio::test]
async fn a_publisher_killed_in_the_middle_of_an_event_changes_nothing() {
    let world = World::new();
    let doc = site_a_document(&world);
    let half = &doc.frame[..doc.frame.len() / 2];
    // Killed after sending half the event in a chunk of a chunked body.
    let mut chunked = stream_head("transfer-encoding: chunked");
    chunked.extend(chunk(half));
    // Killed after half the event of a body that ends with the connection.
    let mut until_close = stream_head("");
    until_close.extend_from_slice(half);
    // Then a publisher that sends the whole event.
    let (fake, gates) = two_failures_then_whole(&world, &doc, chunked, until_close);
    let (b, before) = follow(&world, &fake);

    let error = went_down_unchanged(&b, &fake, 1, &before).await;
    assert!(error.contains("the stream broke"), "{error}");
    nothing_handed_on(&b);
    gates[0].open();
    went_down_unchanged(&b, &fake, 2, &before).await;
    nothing_handed_on(&b);
    // The half event's id was never taken as received.
    for request in fake.requests() {
        assert!(request.starts_with(&format!("GET {} HTTP/1.1", stream_path(TICKET))), "{request}");
        assert!(!request.to_ascii_lowercase().contains("last-event-id"), "{request}");
    }

    gates[1].open();
    b.wait_for("the whole event applied", LIMIT, |s, cib| {
        s.applied.as_ref().is_some_and(|a| a.digest == doc.digest) && cib.contains("10.2.1.10")
    })
    .await;
}

#[tokio::test]
async fn truncated_bodies_change_nothing() {
    let world = World::new();
    let doc = site_a_document(&world);
    // A body shorter than its Content-Length.
    let mut short = stream_head(&format!("content-length: {}", doc.frame.len()));
    short.extend_from_slice(&doc.frame[..doc.frame.len() / 2]);
    // A whole event whose document was cut short (at a line end), under
    // the id of the whole one.
    let lines: Vec<&str> = doc.document_str().lines().collect();
    let cut = lines[..lines.len() / 2].join("\n");
    let cut_event = cib_net::sse::frame(EVENT_SCOPE, &doc.etag, &cut).unwrap();
    let mut cut_short = stream_head("transfer-encoding: chunked");
    cut_short.extend(chunk(cut_event.as_bytes()));
    let (fake, gates) = two_failures_then_whole(&world, &doc, short, cut_short);
    let (b, before) = follow(&world, &fake);

    let error = went_down_unchanged(&b, &fake, 1, &before).await;
    assert!(error.contains("the stream broke"), "{error}");
    nothing_handed_on(&b);
    gates[0].open();
    b.wait_for("the cut-short document refused", LIMIT, |s, _| {
        s.last_error.as_ref().is_some_and(|e| e.text.contains("refused") && e.text.contains("parsing the document"))
    })
    .await;
    // The refusal is acknowledged; the fake answers 404, as a publisher
    // older than acknowledgements does, and nothing else changes.
    let start = std::time::Instant::now();
    while !fake.acks().iter().any(|a| a.starts_with("POST /v1/tickets/geo/ack ") && a.contains(r#""error":"document from"#)) {
        assert!(start.elapsed() < LIMIT, "no acknowledgement of the refusal: {:?}", fake.acks());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    went_down_unchanged(&b, &fake, 2, &before).await;

    gates[1].open();
    b.wait_for("the whole event applied", LIMIT, |s, cib| {
        s.applied.as_ref().is_some_and(|a| a.digest == doc.digest) && cib.contains("10.2.1.10")
    })
    .await;
}
