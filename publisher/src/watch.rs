//! Change detection: when the CIB changes, recompute and publish.
//!
//! Event-driven first: `notify` watches the *directory* of the CIB file and
//! keeps the events that name the file — Pacemaker (and editors) replace
//! `cib.xml` by renaming a new file over it, which a watch on the file itself
//! would miss after the first time; `cibadmin` in `CIB_file` mode rewrites it
//! in place. A close after writing or a rename into place means a complete
//! new version: the CIB is read at once. Other events (data written,
//! created, removed) wait for one of those, or [`DEBOUNCE`] at most; events
//! that arrive meanwhile coalesce, so one commit (several writes) costs one
//! read. On a live cluster the first sign is earlier: the CIB manager's
//! disk writer opens `cib.xml` as soon as it starts writing a new version
//! ([`classify`]). A periodic re-check (`recheck_seconds`) catches
//! what no file event announces — on a live cluster the ticket grants live
//! in the status section, which Pacemaker keeps in memory and does not write
//! to `cib.xml` — and covers a watch that could not be set up, or one that
//! lags: on a big CIB Pacemaker writes `cib.xml` seconds after the change.
//! The re-check asks for the CIB's version and its ticket states only
//! ([`Fingerprint`]: one `cibadmin --query --xpath` of a few hundred bytes;
//! in `CIB_file` mode, where every change rewrites the file, the file's
//! size, modification time and inode) and reads the CIB whole only when
//! they changed, so that it can run every second or two on a site of
//! thousands of resources without keeping Pacemaker's CIB manager busy.
//!
//! Each refresh reads the CIB (`Cib::read` of `cib-tools`: the file itself
//! in `CIB_file` mode, `cibadmin --query` on a live cluster) and runs the
//! parsing and scoping on the blocking thread pool, then publishes through
//! [`Channels`], which wakes streams only on observable changes. Refreshes
//! run one at a time; events arriving meanwhile coalesce into one more.
//!
//! If the CIB cannot be read, the last published state is kept (a
//! `cibadmin` hiccup must not end every stream) and the error is logged and
//! counted; before the first successful read every ticket is
//! [`TicketView::Unavailable`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cib_tools::cib::Cib;
use cib_transforms::canonical;
use cib_transforms::cib::{Stamps, STAMPS_XPATH};
use cib_transforms::xml::{self, Element};

use crate::error::Error;
use crate::metrics::Metrics;
use crate::publication::{views_of, Channels, TicketView};

/// The CIB file a live cluster writes on every configuration change.
pub const LIVE_CIB_FILE: &str = "/var/lib/pacemaker/cib/cib.xml";
/// Longest wait, after an event saying the CIB file is being written, for
/// the event saying it is complete (closed after writing, or renamed into
/// place) before the CIB is read anyway.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// What a file event says about the CIB file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A complete new version is in place: closed after writing, or renamed
    /// over the old one. Read it now.
    Settled,
    /// It is being written, created or removed: wait for [`Change::Settled`]
    /// (or [`DEBOUNCE`]).
    Busy,
}

/// What made the publisher read the CIB whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first read, at start.
    Start,
    /// An event of the CIB file ([`classify`]) and a changed [`Fingerprint`].
    File,
    /// The periodic re-check found a changed [`Fingerprint`].
    Recheck,
}

impl Trigger {
    /// `start`, `file` or `recheck`, for metrics.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::File => "file",
            Trigger::Recheck => "recheck",
        }
    }
}

/// Where the CIB is read from and which file announces its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The handle the CIB is read through.
    pub cib: Cib,
    /// The file whose changes trigger a refresh.
    pub file: PathBuf,
}

impl Source {
    /// The configured file if any; else the file named by the `CIB_file`
    /// environment variable (inherited by `cibadmin`, exactly as every
    /// Pacemaker tool does); else the live CIB, watched through
    /// [`LIVE_CIB_FILE`].
    #[must_use]
    pub fn new(cib_file: Option<&Path>) -> Source {
        if let Some(f) = cib_file {
            return Source {
                cib: Cib::file(absolute(f)),
                file: absolute(f),
            };
        }
        match std::env::var_os("CIB_file").filter(|v| !v.is_empty()) {
            Some(f) => Source {
                cib: Cib::from_env(),
                file: absolute(Path::new(&f)),
            },
            None => Source {
                cib: Cib::from_env(),
                file: PathBuf::from(LIVE_CIB_FILE),
            },
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// Reads the CIB and publishes what changed, on file events and
/// periodically.
#[derive(Debug)]
pub struct Watcher {
    source: Source,
    tickets: Vec<String>,
    channels: Arc<Channels>,
    metrics: Arc<Metrics>,
    recheck: Duration,
    ever_read: bool,
    /// The [`Fingerprint`] of the CIB read whole last, when it was read.
    read_last: Option<Fingerprint>,
}

/// What tells, without reading the CIB whole, that the published views
/// may have changed. Equal fingerprints, equal views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    /// A live CIB: the configuration's version (`admin_epoch`, `epoch`:
    /// Pacemaker raises `epoch` with every configuration change;
    /// `num_updates`, raised by every status update, is left out), the
    /// schema it is validated against, and the ticket states.
    Cib {
        /// `admin_epoch.epoch validate-with`.
        version: String,
        /// The digest of the ticket states, when there is any.
        tickets: Option<String>,
    },
    /// A CIB file, which every change rewrites: its size, modification
    /// time and inode.
    File {
        /// Size in bytes.
        len: u64,
        /// Modification time.
        modified: Option<std::time::SystemTime>,
        /// Inode (a file renamed into place is another one).
        ino: u64,
    },
}

impl Fingerprint {
    /// The fingerprint of a CIB's [`Stamps`].
    #[must_use]
    pub fn of(stamps: &Stamps) -> Fingerprint {
        let attr = |name| stamps.root.attr(name).unwrap_or("");
        Fingerprint::Cib {
            version: format!("{}.{} {}", attr("admin_epoch"), attr("epoch"), attr("validate-with")),
            tickets: stamps.tickets_element().as_ref().map(canonical::element_digest),
        }
    }

    /// The fingerprint of a whole parsed CIB.
    #[must_use]
    pub fn of_cib(cib: &Element) -> Fingerprint {
        Fingerprint::of(&Stamps::of_cib(cib))
    }

    /// The fingerprint of the CIB file at `path`, from its metadata.
    ///
    /// # Errors
    ///
    /// When the file's metadata cannot be read.
    pub fn of_file(path: &Path) -> Result<Fingerprint, String> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Fingerprint::File {
            len: m.len(),
            modified: m.modified().ok(),
            ino: m.ino(),
        })
    }

    /// The fingerprint of `cib` as it is now: [`Fingerprint::of_file`] for a
    /// CIB file, [`Fingerprint::query`] for a live CIB.
    ///
    /// # Errors
    ///
    /// As those.
    pub fn current(cib: &Cib) -> Result<Fingerprint, String> {
        match cib.file_path() {
            Some(path) => Fingerprint::of_file(path),
            None => Fingerprint::query(cib),
        }
    }

    /// Asks the CIB for its [`Fingerprint::Cib`] alone: one `cibadmin
    /// --query --no-children --xpath` of the `<cib>` element and the ticket
    /// states ([`STAMPS_XPATH`]).
    ///
    /// # Errors
    ///
    /// When the query fails or its answer does not parse.
    pub fn query(cib: &Cib) -> Result<Fingerprint, String> {
        let answer = cib.query_shallow(STAMPS_XPATH).map_err(|e| e.to_string())?;
        let answer = xml::parse(&answer).map_err(|e| e.to_string())?;
        Ok(Fingerprint::of(&Stamps::from_answer(answer).map_err(|e| e.to_string())?))
    }
}

impl Watcher {
    /// A watcher publishing every ticket of `channels`.
    #[must_use]
    pub fn new(source: Source, channels: Arc<Channels>, metrics: Arc<Metrics>, recheck: Duration) -> Watcher {
        let tickets = channels.tickets().map(str::to_owned).collect();
        Watcher {
            source,
            tickets,
            channels,
            metrics,
            recheck,
            ever_read: false,
            read_last: None,
        }
    }

    /// Sets up the file watch, reads the CIB once (so the server starts with
    /// the current state), then spawns the loop that keeps it current until
    /// `shutdown`. A watch that cannot be set up is logged; the periodic
    /// re-check still runs.
    pub async fn start(mut self, shutdown: CancellationToken) -> JoinHandle<()> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let live = self.source.cib.file_path().is_none();
        let fs_watch = match watch_file(&self.source.file, live, tx) {
            Ok(w) => {
                tracing::info!(file = %self.source.file.display(), "watching the CIB file");
                Some(w)
            }
            Err(e) => {
                self.metrics.error("watch");
                tracing::warn!(error = %e, recheck_seconds = self.recheck.as_secs(), "cannot watch the CIB file; relying on the periodic re-check");
                None
            }
        };
        self.refresh(Trigger::Start).await;
        tokio::spawn(self.run(rx, fs_watch, shutdown))
    }

    async fn run(mut self, mut events: mpsc::Receiver<Change>, fs_watch: Option<notify::RecommendedWatcher>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + self.recheck, self.recheck);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watching = fs_watch.is_some();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                ev = events.recv(), if watching => {
                    let Some(first) = ev else {
                        watching = false;
                        continue;
                    };
                    if first == Change::Busy {
                        // Being written: wait for the writer to close or
                        // rename it, or for DEBOUNCE at most.
                        let quiet = tokio::time::sleep(DEBOUNCE);
                        tokio::pin!(quiet);
                        loop {
                            tokio::select! {
                                () = shutdown.cancelled() => return,
                                () = &mut quiet => break,
                                next = events.recv() => match next {
                                    Some(Change::Settled) => break,
                                    Some(Change::Busy) => {}
                                    None => {
                                        watching = false;
                                        break;
                                    }
                                },
                            }
                        }
                    }
                    while events.try_recv().is_ok() {}
                    // On a live cluster Pacemaker writes cib.xml after the
                    // change, seconds after on a big CIB: the re-check may
                    // have read it already.
                    if self.source.cib.file_path().is_none() && self.unchanged().await {
                        tracing::debug!("CIB file changed: read already");
                        continue;
                    }
                    tracing::debug!("CIB file changed");
                    self.refresh(Trigger::File).await;
                }
                _ = tick.tick() => {
                    if self.unchanged().await {
                        tracing::trace!("periodic re-check: unchanged");
                    } else {
                        tracing::debug!("periodic re-check: the CIB changed");
                        self.refresh(Trigger::Recheck).await;
                    }
                }
            }
        }
        drop(fs_watch);
    }

    /// Reads the CIB once and publishes every ticket's view; returns whether
    /// the CIB could be read and parsed. `trigger` is counted
    /// (`cib_publisher_cib_reads_total`).
    pub async fn refresh(&mut self, trigger: Trigger) -> bool {
        self.metrics.cib_read(trigger.name());
        let cib = self.source.cib.clone();
        let tickets = self.tickets.clone();
        let metrics = Arc::clone(&self.metrics);
        type Read = (Vec<(String, TicketView)>, Option<Fingerprint>);
        let result = tokio::task::spawn_blocking(move || -> Result<Read, (&'static str, String)> {
            // A file's metadata before it is read: a change meanwhile makes
            // the next re-check read it again.
            let file = cib.file_path().map(Fingerprint::of_file);
            let text = cib.read().map_err(|e| ("cib_query", e.to_string()))?;
            let parsed = xml::parse(&text).map_err(|e| ("cib_parse", e.to_string()))?;
            let views = views_of(&parsed, &tickets, &metrics).map_err(|e| ("cib_parse", e.to_string()))?;
            let fingerprint = match file {
                Some(f) => f.ok(),
                None => Some(Fingerprint::of_cib(&parsed)),
            };
            Ok((views, fingerprint))
        })
        .await;
        self.read_last = None;
        match result {
            Ok(Ok((views, fingerprint))) => {
                self.ever_read = true;
                self.read_last = fingerprint;
                for (ticket, view) in views {
                    self.channels.publish(&ticket, view, &self.metrics);
                }
                true
            }
            Ok(Err((kind, message))) => {
                self.metrics.error(kind);
                tracing::warn!(error = %message, kept_last_state = self.ever_read, "reading the CIB failed");
                if !self.ever_read {
                    for t in &self.tickets {
                        self.channels.publish(t, TicketView::Unavailable(message.clone()), &self.metrics);
                    }
                }
                false
            }
            Err(join) => {
                self.metrics.error("cib_query");
                tracing::error!(error = %join, "the CIB reading task failed");
                false
            }
        }
    }

    /// Whether the CIB's [`Fingerprint`] is still the one of the last
    /// whole read (`false` also when there was none, or it cannot be
    /// asked for: the whole read then says what is wrong).
    async fn unchanged(&self) -> bool {
        let Some(last) = self.read_last.clone() else {
            return false;
        };
        let cib = self.source.cib.clone();
        match tokio::task::spawn_blocking(move || Fingerprint::current(&cib)).await {
            Ok(Ok(now)) => now == last,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "periodic re-check: cannot query the CIB's version; reading it whole");
                false
            }
            Err(_) => false,
        }
    }
}

/// Events queued between the watch thread and the loop; when it is full
/// the loop has enough to do already and further events are dropped (a
/// dropped [`Change::Settled`] costs at most [`DEBOUNCE`]).
const EVENT_QUEUE: usize = 64;

/// Watches the directory of `file` and sends a [`Change`] for every event
/// that names `file` and may have changed its content ([`classify`];
/// `live`: `file` is the one a running CIB manager writes).
fn watch_file(file: &Path, live: bool, tx: mpsc::Sender<Change>) -> Result<notify::RecommendedWatcher, Error> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
    let name: OsString = file.file_name().map(ToOwned::to_owned).unwrap_or_default();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
        Ok(event) => {
            let names_file = |p: &PathBuf| p.file_name() == Some(name.as_os_str());
            if let Some(mut change) = classify(&event.kind, live) {
                if event.paths.iter().any(names_file) {
                    // A rename reported with both paths settles the file
                    // only when it is the destination (moved away: gone).
                    if event.kind == EventKind::Modify(ModifyKind::Name(RenameMode::Both))
                        && !event.paths.last().is_some_and(names_file)
                    {
                        change = Change::Busy;
                    }
                    // Full means enough is pending already: coalesce.
                    let _ = tx.try_send(change);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "file watch error"),
    })
    .map_err(|source| Error::Watch {
        path: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| Error::Watch { path: dir, source })?;
    Ok(watcher)
}

/// What an event kind says about new content, if anything: a close after
/// writing or a rename into place is a complete version; creation,
/// removal, data writes and unknown events are a version in the making.
/// Reads and metadata-only changes say nothing, nor do opens of a CIB
/// file (our own reads open it).
///
/// On a live cluster (`live`) an open is the earliest sign of a new
/// version. Nothing of ours reads `cib.xml` there; the CIB manager writes
/// it after each configuration change, in a child process that first
/// opens the old file to check its digest, then writes and checks the new
/// one and renames it into place (Pacemaker's `write_cib_contents` and
/// `cib_file_write_with_digest`). The change is in the CIB manager's
/// memory before that child starts, so the open says "read now" as soon
/// as the change is made, where the rename comes after three parses of the
/// CIB: 0.7 s later at 2,500 primitives. An open by anyone else (an admin,
/// `crm_report`) costs one small query ([`Fingerprint`]).
fn classify(kind: &EventKind, live: bool) -> Option<Change> {
    match kind {
        EventKind::Access(AccessKind::Open(_)) if live => Some(Change::Settled),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Settled),
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Some(Change::Settled),
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => None,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => {
            Some(Change::Busy)
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, MetadataKind};

    use super::*;

    #[test]
    fn event_filter() {
        let settled = Some(Change::Settled);
        let busy = Some(Change::Busy);
        for live in [false, true] {
            assert_eq!(classify(&EventKind::Modify(ModifyKind::Name(RenameMode::To)), live), settled);
            assert_eq!(classify(&EventKind::Modify(ModifyKind::Name(RenameMode::Both)), live), settled);
            assert_eq!(classify(&EventKind::Access(AccessKind::Close(AccessMode::Write)), live), settled);
            assert_eq!(classify(&EventKind::Modify(ModifyKind::Name(RenameMode::From)), live), busy);
            assert_eq!(classify(&EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)), live), busy);
            assert_eq!(classify(&EventKind::Create(CreateKind::File), live), busy);
            assert_eq!(classify(&EventKind::Access(AccessKind::Close(AccessMode::Read)), live), None);
            assert_eq!(classify(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)), live), None);
        }
        // An open: our own read of a CIB file; the CIB manager starting to
        // write a new version of the live one.
        assert_eq!(classify(&EventKind::Access(AccessKind::Open(AccessMode::Any)), false), None);
        assert_eq!(classify(&EventKind::Access(AccessKind::Open(AccessMode::Any)), true), settled);
    }

    #[test]
    fn configured_file_wins() {
        let s = Source::new(Some(Path::new("/tmp/x/cib.xml")));
        assert_eq!(s.file, Path::new("/tmp/x/cib.xml"));
        assert_eq!(s.cib.file_path(), Some(Path::new("/tmp/x/cib.xml")));
    }

    #[tokio::test]
    async fn file_events_are_filtered_by_name_and_survive_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cib.xml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let _w = watch_file(&file, false, tx).unwrap();
        // Whether a Settled event arrives (after any Busy ones): both an
        // in-place write (close after writing) and a rename into place
        // must end with one, or every change would wait for DEBOUNCE.
        async fn wait(rx: &mut mpsc::Receiver<Change>) -> bool {
            tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(change) = rx.recv().await {
                    if change == Change::Settled {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false)
        }
        // Another file in the directory: nothing.
        std::fs::write(dir.path().join("cib.xml.sig"), "x").unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err());
        // Written in place.
        std::fs::write(&file, "b").unwrap();
        assert!(wait(&mut rx).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
        // Replaced by rename, twice (a watch on the file itself would lose it).
        for content in ["c", "d"] {
            let tmp = dir.path().join("cib.tmp");
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, &file).unwrap();
            assert!(wait(&mut rx).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
            while rx.try_recv().is_ok() {}
        }
        // Renamed away: not a new version (the read would find no file).
        let away = dir.path().join("cib.xml.old");
        std::fs::rename(&file, &away).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got = Vec::new();
        while let Ok(change) = rx.try_recv() {
            got.push(change);
        }
        assert!(!got.is_empty() && !got.contains(&Change::Settled), "{got:?}");
        std::fs::rename(&away, &file).unwrap();
        assert!(wait(&mut rx).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        while rx.try_recv().is_ok() {}
        // Reading it: nothing.
        let _ = std::fs::read(&file).unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err());
    }

    #[tokio::test]
    async fn an_open_of_the_live_cib_file_is_a_new_version() {
        // What the CIB manager's disk writer does first: open cib.xml to
        // check the old digest. Of another file in the directory, nothing.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cib.xml");
        std::fs::write(&file, "a").unwrap();
        std::fs::write(dir.path().join("cib-1.raw"), "a").unwrap();
        let (tx, mut rx) = mpsc::channel(EVENT_QUEUE);
        let _w = watch_file(&file, true, tx).unwrap();
        let _ = std::fs::read(dir.path().join("cib-1.raw")).unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err());
        let _ = std::fs::File::open(&file).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        assert_eq!(got.ok().flatten(), Some(Change::Settled));
    }
}
