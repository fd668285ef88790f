//! The watcher's periodic re-check: it asks the CIB for its version and
//! ticket states only (a CIB file: its metadata), and reads the CIB whole
//! (and computes the scope) only when they changed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use cib_publisher::metrics::Metrics;
use cib_publisher::publication::{Channels, TicketView};
use cib_publisher::watch::{Fingerprint, Source, Watcher};
use cib_tools::cib::Cib;
use cib_transforms::xml;

use crate::harness::{pcmk, TICKET};

const COMPUTED: &str = r#"cib_publisher_scope_computations_total{ticket="geo"}"#;

/// A site-A CIB file with `geo` granted, in `dir`.
fn site_a(dir: &Path) -> std::path::PathBuf {
    let cib = dir.join("cib.xml");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/offline/site-a.xml"), &cib).unwrap();
    pcmk(&cib, "crm_ticket", &["--ticket", TICKET, "--grant", "--force"]);
    cib
}

/// The fingerprint a live CIB is asked for (here through `cibadmin` on a
/// file, the same queries).
#[test]
fn the_fingerprint_asked_for_is_the_one_of_the_whole_cib() {
    let dir = tempfile::tempdir().unwrap();
    let cib = site_a(dir.path());
    let whole = Fingerprint::of_cib(&xml::parse(&std::fs::read_to_string(&cib).unwrap()).unwrap());
    let asked = Fingerprint::query(&Cib::file(&cib)).unwrap();
    assert_eq!(asked, whole);
    // A status update other than a ticket's leaves it as it is; a
    // configuration change and a ticket change do not.
    pcmk(&cib, "cibadmin", &["--create", "-o", "status", "--xml-text", r#"<node_state id="9" uname="elsewhere"/>"#]);
    assert_eq!(Fingerprint::query(&Cib::file(&cib)).unwrap(), whole);
    pcmk(&cib, "cibadmin", &["--modify", "--xml-text", r#"<nvpair id="web-ip-ip" value="192.168.1.99"/>"#]);
    let changed = Fingerprint::query(&Cib::file(&cib)).unwrap();
    assert_ne!(changed, whole);
    pcmk(&cib, "crm_ticket", &["--ticket", TICKET, "--standby", "--force"]);
    assert_ne!(Fingerprint::query(&Cib::file(&cib)).unwrap(), changed);
}

#[tokio::test]
async fn the_recheck_reads_the_cib_whole_only_when_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let cib = site_a(dir.path());
    // The file watched is another one: only the re-check sees the changes.
    let source = Source {
        cib: Cib::file(&cib),
        file: dir.path().join("elsewhere").join("cib.xml"),
    };
    let metrics = Arc::new(Metrics::new());
    let channels = Arc::new(Channels::new([TICKET]));
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let _task = Watcher::new(source, Arc::clone(&channels), Arc::clone(&metrics), Duration::from_millis(100))
        .start(shutdown.clone())
        .await;
    let computed = || cib_testkit::metric(&metrics.encode(), COMPUTED);
    let granted_digest = || match channels.current(TICKET) {
        Some(TicketView::Granted(p)) => Some(p.digest.clone()),
        _ => None,
    };
    let reads = |trigger: &str| cib_testkit::metric(&metrics.encode(), &format!(r#"cib_publisher_cib_reads_total{{trigger="{trigger}"}}"#));
    let first = granted_digest().expect("geo is served after the first read");
    assert_eq!(computed(), 1.0);
    assert_eq!(reads("start"), 1.0);

    // Nothing changed: about ten re-checks, no read.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(computed(), 1.0, "the re-check read the CIB whole although the file stayed as it was");

    // A configuration change: read and published.
    pcmk(&cib, "cibadmin", &["--modify", "--xml-text", r#"<nvpair id="web-ip-ip" value="192.168.1.99"/>"#]);
    let start = Instant::now();
    while granted_digest().as_deref() == Some(first.as_str()) {
        assert!(start.elapsed() < Duration::from_secs(5), "the change was not published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(computed(), 2.0);
    assert_eq!(reads("recheck"), 1.0, "no file event announced the change: the re-check read it");

    // A ticket change alone: read; geo is no longer served.
    pcmk(&cib, "crm_ticket", &["--ticket", TICKET, "--revoke", "--force"]);
    let start = Instant::now();
    while granted_digest().is_some() {
        assert!(start.elapsed() < Duration::from_secs(5), "the revoke was not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
