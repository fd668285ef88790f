//! Faults: a publisher killed mid-stream, altered documents, signals.

use std::time::Duration;

use cib_publisher::publication::Published;

use crate::harness::{grant, set_web_ip, Publisher, Subscriber, World, TICKET};

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
