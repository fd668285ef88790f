//! Operations: metrics scraped over plain HTTP, reloads (rules,
//! certificates) while the daemon runs, SIGHUP to the daemon process.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use cib_subscriber::config::Overrides;
use cib_subscriber::daemon::RunOptions;
use cib_subscriber::reload::Reload;

use crate::harness::{example, grant, set_web_ip, Publisher, Subscriber, World};

const LIMIT: Duration = Duration::from_secs(15);

/// Site A holding `geo` (term 5), its publisher watching its CIB file.
async fn site_a(world: &World) -> Publisher {
    let cib = world.cib("site-a", "site-a.xml");
    grant(&cib, 5);
    Publisher::start(world, "site-a", cib, true).await
}

/// `GET /metrics` over plain HTTP/1.1, the body.
async fn scrape(addr: SocketAddr) -> String {
    tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        tcp.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out
    })
    .await
    .unwrap()
}

/// The value of `series` (a full series name with its labels) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_move_after_an_apply() {
    let world = World::new();
    // Nothing publishes yet: B has applied nothing.
    let cib = world.cib("site-a", "site-a.xml");
    let a = Publisher::start(&world, "site-a", cib, false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let b = Subscriber::configure(&world, "auto", &[&a]).start_with(RunOptions {
        metrics: Some(listener),
        reload: None,
    });
    let before = scrape(addr).await;
    let t = "{ticket=\"geo\"}";
    assert_eq!(value(&before, &format!("cib_subscriber_owned_elements{t}")), Some(0.0), "{before}");
    assert_eq!(value(&before, &format!("cib_subscriber_applied_term{t}")), Some(0.0), "{before}");
    assert_eq!(value(&before, &format!("cib_subscriber_pending{t}")), Some(0.0), "{before}");
    assert_eq!(value(&before, &format!("cib_subscriber_seconds_since_received{t}")), None, "{before}");
    let local = value(&before, "cib_subscriber_certificate_expiry_seconds{certificate=\"local\"}").unwrap();
    assert!(local > 86_400.0, "{before}");
    assert!(value(&before, "cib_subscriber_certificate_expiry_seconds{certificate=\"ca\"}").unwrap() > 86_400.0);

    grant(&a.cib, 5);
    a.publish((*a.document()).clone());
    b.wait_for("the first version applied", LIMIT, |s, _| s.applied.is_some()).await;
    let after = scrape(addr).await;
    assert!(value(&after, &format!("cib_subscriber_owned_elements{t}")).unwrap() > 0.0, "{after}");
    assert_eq!(value(&after, &format!("cib_subscriber_applied_term{t}")), Some(5.0), "{after}");
    assert_eq!(value(&after, &format!("cib_subscriber_drift{t}")), Some(0.0), "{after}");
    assert_eq!(value(&after, &format!("cib_subscriber_in_step{t}")), Some(1.0), "{after}");
    assert_eq!(value(&after, &format!("cib_subscriber_conflicts{t}")), Some(0.0), "{after}");
    assert!(value(&after, &format!("cib_subscriber_seconds_since_received{t}")).unwrap() < 60.0, "{after}");
    assert!(value(&after, &format!("cib_subscriber_seconds_since_success{t}")).unwrap() < 60.0, "{after}");
    // Every rule of the example matched something.
    assert_eq!(value(&after, &format!("cib_subscriber_idle_rules_total{t}")), Some(0.0), "{after}");
}

/// B's configuration with its own copy of the example's rules; the copy's
/// path.
fn with_own_rules(b: &Subscriber, world: &World) -> std::path::PathBuf {
    let rules = world.dir.path().join("rules.toml");
    std::fs::copy(example("site-b-rules.toml"), &rules).unwrap();
    let text = std::fs::read_to_string(&b.config).unwrap();
    let text = text.replace(&example("site-b-rules.toml").display().to_string(), &rules.display().to_string());
    std::fs::write(&b.config, text).unwrap();
    rules
}

#[tokio::test]
async fn a_reload_reads_new_rules_and_keeps_the_old_ones_when_the_new_are_bad() {
    let world = World::new();
    let a = site_a(&world).await;
    let b = Subscriber::configure(&world, "auto", &[&a]);
    let rules = with_own_rules(&b, &world);
    let trigger = Arc::new(Notify::new());
    let reload = Reload::new(b.config.clone(), Overrides::default(), Arc::clone(&trigger));
    let b = b.start_with(RunOptions {
        metrics: None,
        reload: Some(reload),
    });
    b.wait_for("applied with the first rules", LIMIT, |_, cib| cib.contains("10.2.1.10")).await;

    // A rule file that does not parse: refused, the old rules stay.
    std::fs::write(&rules, "[[rule]]\ntype = \"ip\"\nfrom = \"192.168.1.0/24\"\n").unwrap();
    trigger.notify_one();
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_web_ip(&a.cib, "192.168.1.11");
    b.wait_for("a change applied with the old rules", LIMIT, |_, cib| cib.contains("10.2.1.11")).await;

    // New rules: the current version is applied again with them.
    let new = std::fs::read_to_string(example("site-b-rules.toml")).unwrap().replace("10.2.1.0/24", "10.7.1.0/24");
    std::fs::write(&rules, new).unwrap();
    trigger.notify_one();
    b.wait_for("the version applied with the new rules", LIMIT, |_, cib| cib.contains("10.7.1.11")).await;
}

/// The certificate a server presents to a new connection.
fn presented_certificate(addr: SocketAddr, client: &cib_net::tls::TlsPaths) -> Vec<u8> {
    let config = Arc::new(cib_net::tls::client_config(client).unwrap());
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.peer_certificates().unwrap()[0].as_ref().to_vec()
}

#[tokio::test]
async fn a_rotated_publisher_certificate_keeps_open_streams_and_serves_new_connections() {
    let world = World::new();
    let a = site_a(&world).await;
    let b = Subscriber::configure(&world, "auto", &[&a]).start();
    b.wait_for("the first version applied", LIMIT, |s, _| s.applied.is_some()).await;
    let since = b.state().peers[&a.url()].since;
    let addr = a.addr;
    let client = world.client.clone();
    let old = tokio::task::spawn_blocking(move || presented_certificate(addr, &client)).await.unwrap();

    // A new certificate for A, from the same CA, in new files.
    let dir = world.dir.path().join("rotated");
    std::fs::create_dir(&dir).unwrap();
    let rotated = world.pki.write_site(&dir, "site-a.example");
    // A bad one first: a key that is not the certificate's. Refused.
    let wrong = cib_net::tls::TlsPaths { key: world.client.key.clone(), ..rotated.clone() };
    assert!(a.rotate(&wrong).is_err());
    a.rotate(&rotated).unwrap();

    let client = world.client.clone();
    let new = tokio::task::spawn_blocking(move || presented_certificate(addr, &client)).await.unwrap();
    assert_ne!(new, old, "new connections still get the old certificate");
    let der = cib_net::tls::load_certs(&rotated.cert, "certificate").unwrap();
    assert_eq!(new, der[0].as_ref(), "new connections get the rotated certificate");

    // The stream opened before the rotation carries the next change.
    set_web_ip(&a.cib, "192.168.1.11");
    b.wait_for("the change applied over the same stream", LIMIT, |_, cib| cib.contains("10.2.1.11")).await;
    let peer = &b.state().peers[&a.url()];
    assert!(peer.streaming && peer.since == since, "the stream was reopened: {peer:?}");
}

#[tokio::test]
async fn sighup_reloads_the_daemon_process() {
    let world = World::new();
    let a = site_a(&world).await;
    let b = Subscriber::configure(&world, "auto", &[&a]);
    let rules = with_own_rules(&b, &world);
    let b = b.spawn();
    b.wait_for("applied", LIMIT, |_, cib| cib.contains("10.2.1.10")).await;
    let new = std::fs::read_to_string(&rules).unwrap().replace("10.2.1.0/24", "10.8.1.0/24");
    std::fs::write(&rules, new).unwrap();
    let pid = b.pid().unwrap().to_string();
    let started = Instant::now();
    let status = std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    b.wait_for_log(&["SIGHUP received"], LIMIT).await;
    b.wait_for("applied with the reloaded rules", LIMIT, |_, cib| cib.contains("10.8.1.10")).await;
    b.wait_for_log(&["reloaded"], LIMIT).await;
    eprintln!("reloaded after {:?}", started.elapsed());
    // At debug level each document's rules say how many values they
    // changed; the value-by-value lines, the same for every version
    // received, are left to trace level.
    let steps = b.log_lines(&["DEBUG", "rules.toml: ", " changed"]);
    assert!(steps.len() >= 2, "one line per document transformed:\n{}", b.log());
    assert!(b.log_lines(&["rule #1 (ip)"]).is_empty(), "value-by-value lines at debug level:\n{}", b.log());
}

#[tokio::test]
async fn strict_rules_refuse_a_document_a_rule_of_which_matches_nothing() {
    let world = World::new();
    let a = site_a(&world).await;
    let b = Subscriber::configure(&world, "auto", &[&a]);
    let rules = with_own_rules(&b, &world);
    let mut text = std::fs::read_to_string(&rules).unwrap();
    text.push_str("\n[[rule]]\ntype = \"path\"\nfrom = \"/nowhere\"\nto = \"/elsewhere\"\n");
    std::fs::write(&rules, &text).unwrap();
    let table = text.lines().enumerate().filter(|(_, l)| *l == "[[rule]]").last().unwrap().0 + 1;
    let config = std::fs::read_to_string(&b.config).unwrap().replacen("site = \"site-b\"\n", "site = \"site-b\"\nstrict_rules = true\n", 1);
    std::fs::write(&b.config, config).unwrap();
    let before = b.cib_text();
    let b = b.start();
    let idle = format!("rule #4 (path) {}:{table} matched nothing", rules.display());
    b.wait_for("the document refused", LIMIT, |s, _| s.last_failure.as_ref().is_some_and(|f| f.text.contains(&idle)))
        .await;
    assert_eq!(b.cib_text(), before, "a document refused under strict_rules changed the CIB");
    let (code, out, _) = b.cli(&["status", "--ticket", "geo"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed"), "{out}");
}
