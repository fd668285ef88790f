//! The `cib-publisher serve` binary: configuration checked before binding,
//! certificates from `examples/make-certs.sh` (openssl) accepted, a clean
//! exit on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use cib_net::tls::{client_config, TlsPaths};

use crate::harness::{client_with, pcmk, TICKET};

const BIN: &str = env!("CARGO_BIN_EXE_cib-publisher");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Runs `examples/make-certs.sh -d DIR/certs ...`.
fn make_certs(dir: &Path) {
    let out = std::process::Command::new(examples().join("make-certs.sh"))
        .arg("-d")
        .arg(dir.join("certs"))
        .args(["site-a.example,DNS:localhost,IP:127.0.0.1", "site-b.example", "site-c.example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "make-certs.sh: {}", String::from_utf8_lossy(&out.stderr));
}

fn site_paths(dir: &Path, name: &str) -> TlsPaths {
    TlsPaths {
        cert: dir.join(format!("certs/{name}.pem")),
        key: dir.join(format!("certs/{name}.key")),
        ca: dir.join("certs/ca.pem"),
    }
}

#[tokio::test]
async fn the_example_configuration_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let config = dir.path().join("publisher.toml");
    std::fs::copy(examples().join("publisher.toml"), &config).unwrap();
    let out = Command::new(BIN).arg("serve").arg("--config").arg(&config).arg("--check").output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_bad_configuration_fails_before_the_port_is_bound() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let config = dir.path().join("publisher.toml");
    let text = std::fs::read_to_string(examples().join("publisher.toml"))
        .unwrap()
        .replace("0.0.0.0:9443", &format!("127.0.0.1:{port}"))
        .replace("certs/site-a.example.key", "certs/missing.key");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(BIN).arg("serve").arg("--config").arg(&config).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tls.key") && stderr.contains("missing.key"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    // An unknown key, too.
    std::fs::write(&config, "sight = \"a\"\n").unwrap();
    let out = Command::new(BIN).arg("serve").arg("--config").arg(&config).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sight"), "{stderr}");
}

#[tokio::test]
async fn serve_with_openssl_certificates_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let cib = dir.path().join("cib.xml");
    std::fs::copy(examples().join("offline/site-a.xml"), &cib).unwrap();
    pcmk(&cib, "crm_ticket", &["--ticket", TICKET, "--grant", "--force"]);
    let config = dir.path().join("publisher.toml");
    std::fs::copy(examples().join("publisher.toml"), &config).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        // CIB_file is honoured like by every Pacemaker tool (--cib-file and
        // `cib_file` are covered by the in-process tests).
        .env("CIB_file", &cib)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if let Some(rest) = line.split("listen=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the daemon exited: {log}");
    })
    .await
    .expect("no `serving` line");
    let client = client_with(client_config(&site_paths(dir.path(), "site-b.example")).unwrap());
    let r = client
        .get(format!("https://{addr}/v1/tickets/{TICKET}/scope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-site"], "site-a");
    // site-c is allowed by the example; a name the example does not list is not.
    let out = std::process::Command::new(examples().join("make-certs.sh"))
        .arg("-d")
        .arg(dir.path().join("certs"))
        .arg("site-d.example")
        .output()
        .unwrap();
    assert!(out.status.success());
    let outsider = client_with(client_config(&site_paths(dir.path(), "site-d.example")).unwrap());
    let r = outsider.get(format!("https://{addr}/v1/tickets/{TICKET}/scope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("no exit after SIGTERM").unwrap();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("not allowed"), "the 403 is logged: {log}");
    assert!(!log.contains("<configuration"), "documents never go to the log: {log}");
}
