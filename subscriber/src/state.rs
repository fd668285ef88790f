//! Per-ticket state on disk: what the daemon follows, applied and staged.
//!
//! Layout, one directory per ticket under `state_dir`:
//!
//! - `<state_dir>/<ticket>/state.toml` — a [`TicketStatus`]: the source
//!   site, the newest grant term seen, the versions received, applied and
//!   pending, the last result, error and success with their times, and each
//!   peer's connection state. Written by the daemon, and by `replicate-now`
//!   when it applies a staged document; read by `status`.
//! - `<state_dir>/<ticket>/pending.xml` — manual mode only: the transformed
//!   document waiting for `replicate-now --ticket T` (see
//!   [`crate::pipeline::staged_document`]).
//! - `<state_dir>/<ticket>/lazy.xml` — lazy mode only: the transformed,
//!   verified document kept out of the CIB until the ticket is acquired
//!   here ([`crate::lazy`]); readable by the state directory's group, since
//!   booth runs `cib-subscriber gate` as hacluster.
//!
//! Every write is atomic (a temporary file in the same directory, synced,
//! then renamed over the old one), so a reader or a crash never sees half a
//! file. Updates are read-modify-write ([`update`]): the daemon and a
//! `replicate-now` by hand each change only their fields. The ticket names
//! used as directory names are checked by the configuration
//! ([`cib_net::protocol::is_valid_ticket`]: no `/`, no `..`).
//!
//! Times are stored as RFC 3339 UTC strings (`2026-05-04T12:00:00Z`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use cib_transforms::merge::AppliedDigests;
use cib_transforms::scope::Scope;

use crate::error::Error;

/// File name of the state of one ticket.
pub const STATE_FILE: &str = "state.toml";
/// File name of the staged document of one ticket (manual mode).
pub const PENDING_FILE: &str = "pending.xml";
/// File name of the verified copy kept out of the CIB (lazy mode).
pub const LAZY_FILE: &str = "lazy.xml";

/// The directory of `ticket` under `state_dir`.
#[must_use]
pub fn ticket_dir(state_dir: &Path, ticket: &str) -> PathBuf {
    state_dir.join(ticket)
}

/// The state file of `ticket`.
#[must_use]
pub fn state_path(state_dir: &Path, ticket: &str) -> PathBuf {
    ticket_dir(state_dir, ticket).join(STATE_FILE)
}

/// The document applied last for `ticket` ([`save_applied`]).
#[must_use]
pub fn applied_path(state_dir: &Path, ticket: &str) -> PathBuf {
    ticket_dir(state_dir, ticket).join("applied.xml")
}

/// The digests of the elements applied last for `ticket`
/// ([`save_applied`], [`AppliedDigests::to_text`]).
#[must_use]
pub fn applied_digests_path(state_dir: &Path, ticket: &str) -> PathBuf {
    ticket_dir(state_dir, ticket).join("applied.digests")
}

/// Keeps what was applied last beside the state, for drift against it:
/// the digest of each element (`applied.digests`, whose SHA-256 is the
/// manifest in the CIB's ownership record, which holds only that), then
/// the document itself, transformed for this site (`applied.xml`, for an
/// admin to read). The digests go first: a document left older than them
/// by a crash is never read for drift. Kept only where a state directory
/// exists (the daemon's, or `--state-dir`); returns whether it was.
///
/// # Errors
///
/// When they cannot be written.
pub fn save_applied(state_dir: &Path, ticket: &str, scope: &Scope) -> Result<bool, Error> {
    if !state_dir.is_dir() {
        return Ok(false);
    }
    let dir = ticket_dir(state_dir, ticket);
    create_dirs(&dir).map_err(|cause| Error::State {
        what: "creating state directory",
        path: dir.clone(),
        cause,
    })?;
    write_atomic(&applied_digests_path(state_dir, ticket), AppliedDigests::of(&scope.config).to_text().as_bytes())?;
    write_atomic(&applied_path(state_dir, ticket), crate::pipeline::transformed_document(scope).as_bytes())?;
    Ok(true)
}

/// The digests of what was applied last ([`save_applied`]), if kept and
/// readable; from `applied.xml` where only that was kept (by a version
/// before the digests were). A damaged file is as good as none: the
/// ownership record's manifest decides whether they are the ones applied.
pub fn load_applied(state_dir: &Path, ticket: &str) -> Option<AppliedDigests> {
    let limit = cib_transforms::xml::Limits::default().max_bytes;
    let digests = cib_tools::files::read_bounded(&applied_digests_path(state_dir, ticket), limit).ok();
    if let Some(digests) = digests.as_deref().and_then(AppliedDigests::from_text) {
        return Some(digests);
    }
    let text = cib_tools::files::read_bounded(&applied_path(state_dir, ticket), limit).ok()?;
    cib_transforms::xml::parse(&text).ok().map(|doc| AppliedDigests::of(&doc))
}

/// The staged document of `ticket`.
#[must_use]
pub fn pending_path(state_dir: &Path, ticket: &str) -> PathBuf {
    ticket_dir(state_dir, ticket).join(PENDING_FILE)
}

/// The copy of `ticket` kept out of the CIB (lazy mode, [`crate::lazy`]).
#[must_use]
pub fn lazy_path(state_dir: &Path, ticket: &str) -> PathBuf {
    ticket_dir(state_dir, ticket).join(LAZY_FILE)
}

/// What is known about one ticket at this site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketStatus {
    /// Name of the site whose document was last accepted (its `X-Site`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_site: Option<String>,
    /// Base URL of the publisher whose document was last accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// The newest grant term seen for the ticket; documents from older
    /// terms are refused. Never decreases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// The last document accepted (verified, term not older).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<VersionSeen>,
    /// The last document applied to the local CIB (or found already there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<VersionSeen>,
    /// The document staged in `pending.xml` (manual mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<VersionSeen>,
    /// The document verified and kept in `lazy.xml`, out of the CIB (lazy
    /// mode), until the ticket is acquired here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy: Option<VersionSeen>,
    /// What happened to the last document ("applied: …", "up to date",
    /// "staged: …", "not applied: the ticket is granted at this site", …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<Note>,
    /// When a document was last applied, found up to date, or staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Timestamp>,
    /// The last failure: a refused or failed document, or the source
    /// publisher going away. Kept after later successes (compare the times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Note>,
    /// The last document refused (verification) or not applied (transform,
    /// merge, `crm_verify`, `cibadmin`): what makes `status` report
    /// `failed`. Unlike `last_error`, not set by connection errors, and
    /// cleared when a document is applied, found up to date, or staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Note>,
    /// Each configured peer's connection, by base URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peers: BTreeMap<String, PeerStatus>,
}

/// One version of a ticket's scope, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSeen {
    /// The publisher's digest (`sha256:…`, before this site's transforms).
    pub digest: String,
    /// The origin CIB version (`admin_epoch.epoch.num_updates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The grant term the publisher announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// When.
    pub at: Timestamp,
}

/// A message with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// The message.
    pub text: String,
    /// When.
    pub at: Timestamp,
}

impl Note {
    /// `text`, now.
    #[must_use]
    pub fn now(text: impl Into<String>) -> Note {
        Note {
            text: text.into(),
            at: Timestamp::now(),
        }
    }
}

/// The connection to one peer publisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Whether an event stream is open.
    pub streaming: bool,
    /// Since when the peer is in this state.
    pub since: Timestamp,
    /// The site name the peer announced (`X-Site`), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Why the stream is not open (the last attempt's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads the state of `ticket`; a missing file is the empty state.
///
/// # Errors
///
/// [`Error::State`] when the file cannot be read, [`Error::StateFormat`]
/// when it is not a state file.
pub fn load(state_dir: &Path, ticket: &str) -> Result<TicketStatus, Error> {
    let path = state_path(state_dir, ticket);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| Error::StateFormat {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TicketStatus::default()),
        Err(cause) => Err(Error::State {
            what: "reading state",
            path,
            cause,
        }),
    }
}

/// Reads the state of `ticket`, lets `change` modify it, and writes it back
/// atomically (creating the ticket's directory if needed). Returns the new
/// state. A state file that cannot be understood is replaced.
///
/// # Errors
///
/// [`Error::State`] when the directory or file cannot be written.
pub fn update(state_dir: &Path, ticket: &str, change: impl FnOnce(&mut TicketStatus)) -> Result<TicketStatus, Error> {
    let mut status = match load(state_dir, ticket) {
        Ok(s) => s,
        Err(Error::StateFormat { path, message }) => {
            tracing::warn!(path = %path.display(), %message, "replacing a state file that cannot be read");
            TicketStatus::default()
        }
        Err(e) => return Err(e),
    };
    change(&mut status);
    let text = toml::to_string(&status).map_err(|e| Error::StateFormat {
        path: state_path(state_dir, ticket),
        message: e.to_string(),
    })?;
    write_atomic_mode(&state_path(state_dir, ticket), text.as_bytes(), 0o644)?;
    Ok(status)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory (created if needed), synced, renamed over `path`. The file is
/// readable by its owner only: a staged document holds resource parameters,
/// which may be secrets.
///
/// # Errors
///
/// [`Error::State`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic_mode(path, bytes, 0o600)
}

/// [`write_atomic`] for a file `cib-subscriber gate` must read as booth's
/// user (hacluster): mode 0640, group that of `state_dir` (the package
/// makes it `haclient`). Secrets in resource parameters stay out of reach
/// of other users.
///
/// # Errors
///
/// [`Error::State`].
pub fn write_group_readable(state_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt as _;
    write_atomic_mode(path, bytes, 0o640)?;
    let gid = std::fs::metadata(state_dir).map(|m| m.gid()).map_err(|cause| Error::State {
        what: "reading the group of",
        path: state_dir.to_owned(),
        cause,
    })?;
    let current = std::fs::metadata(path).map(|m| m.gid()).ok();
    if current != Some(gid) {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|cause| Error::State {
            what: "setting the group of",
            path: path.to_owned(),
            cause,
        })?;
    }
    Ok(())
}

/// Lets the state directory's group (`haclient` when the package made it)
/// write in the directory of `ticket` (mode 2775, that group): booth runs
/// `cib-subscriber gate` as hacluster, which records there what it wrote
/// to the CIB in lazy mode. That group may write the CIB already.
///
/// # Errors
///
/// [`Error::State`].
pub fn share_ticket_dir(state_dir: &Path, ticket: &str) -> Result<(), Error> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let dir = ticket_dir(state_dir, ticket);
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |cause| Error::State { what, path, cause }
    };
    let gid = std::fs::metadata(state_dir).map_err(io("reading the group of", state_dir))?.gid();
    let meta = std::fs::metadata(&dir).map_err(io("reading", &dir))?;
    if meta.gid() != gid {
        std::os::unix::fs::chown(&dir, None, Some(gid)).map_err(io("setting the group of", &dir))?;
    }
    if meta.permissions().mode() & 0o7777 != 0o2775 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2775)).map_err(io("setting the mode of", &dir))?;
    }
    Ok(())
}

/// [`write_atomic`] with the file's permission bits. `state.toml` is
/// world-readable (0644): it holds versions, digests, site names and errors,
/// and booth's before-acquire-handler (`cib-subscriber gate`) reads it as
/// user hacluster.
fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
        move |cause| Error::State {
            what,
            path: path.to_owned(),
            cause,
        }
    }
    create_dirs(dir).map_err(io("creating state directory", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io("creating a temporary file in", dir))?;
    // Explicitly: the daemon's umask (Pacemaker's is strict) must not narrow it.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io("setting the permissions of", tmp.path()))?;
    tmp.write_all(bytes).map_err(io("writing", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io("syncing", path))?;
    tmp.persist(path).map_err(|e| Error::State {
        what: "replacing",
        path: path.to_owned(),
        cause: e.error,
    })?;
    Ok(())
}

/// Creates `dir` and its missing ancestors with mode 0755, whatever the
/// umask, so that `cib-subscriber gate` (run by booth as hacluster) can
/// reach `state.toml`. Existing directories are left as they are.
///
/// # Errors
///
/// The I/O error of the first directory that could not be made.
pub fn create_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the staged document of `ticket`, if any.
///
/// # Errors
///
/// [`Error::State`] when it exists and cannot be removed.
pub fn remove_pending(state_dir: &Path, ticket: &str) -> Result<(), Error> {
    remove_file(pending_path(state_dir, ticket))
}

/// Removes the lazy copy of `ticket` ([`lazy_path`]), if any.
///
/// # Errors
///
/// [`Error::State`] when it exists and cannot be removed.
pub fn remove_lazy(state_dir: &Path, ticket: &str) -> Result<(), Error> {
    remove_file(lazy_path(state_dir, ticket))
}

fn remove_file(path: PathBuf) -> Result<(), Error> {
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(cause) => Err(Error::State {
            what: "removing",
            path,
            cause,
        }),
    }
}

/// A point in time, whole seconds since the Unix epoch, written as RFC 3339
/// UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Now (the Unix epoch if the clock is before it).
    #[must_use]
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// `3 s`, `5 min`, `2 h`, `4 d` — how long before `now` this was
    /// (`0 s` for a time in the future).
    #[must_use]
    pub fn age(self, now: Timestamp) -> String {
        let s = now.0.saturating_sub(self.0);
        match s {
            0..120 => format!("{s} s"),
            120..7200 => format!("{} min", s / 60),
            7200..172_800 => format!("{} h", s / 3600),
            _ => format!("{} d", s / 86_400),
        }
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ`.
    fn parse(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if y < 1970 || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        Some(Timestamp(days * 86_400 + h * 3600 + mi * 60 + s))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d) = civil_from_days(self.0 / 86_400);
        let t = self.0 % 86_400;
        write!(f, "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z", t / 3600, t / 60 % 60, t % 60)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a time like 2026-05-04T12:00:00Z")))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year ≥ 1970);
/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01; Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The state as the lines `status` prints, ages relative to `now`.
#[must_use]
pub fn render(status: &TicketStatus, now: Timestamp) -> String {
    let when = |t: Timestamp| format!("{t} ({} ago)", t.age(now));
    let version = |v: &Option<VersionSeen>| match v {
        None => "-".to_owned(),
        Some(v) => format!(
            "{} (version {}, term {}) at {}",
            v.digest,
            v.version.as_deref().unwrap_or("-"),
            v.term.map_or("-".into(), |t| t.to_string()),
            when(v.at)
        ),
    };
    let note = |n: &Option<Note>| match n {
        None => "-".to_owned(),
        Some(n) => format!("{} — {}", when(n.at), n.text),
    };
    let mut out = String::new();
    let source = match (&status.source_site, &status.source_url) {
        (None, None) => "-".to_owned(),
        (site, url) => format!("{} ({})", site.as_deref().unwrap_or("?"), url.as_deref().unwrap_or("?")),
    };
    out += &format!("source:          {source}\n");
    out += &format!("newest term:     {}\n", status.term.map_or("-".into(), |t| t.to_string()));
    out += &format!("received:        {}\n", version(&status.received));
    out += &format!("applied:         {}\n", version(&status.applied));
    out += &format!("pending:         {}\n", version(&status.pending));
    if status.lazy.is_some() {
        out += &format!("kept lazily:     {}\n", version(&status.lazy));
    }
    out += &format!("last result:     {}\n", note(&status.last_result));
    out += &format!("last success:    {}\n", status.last_success.map_or("-".into(), when));
    out += &format!("last error:      {}\n", note(&status.last_error));
    out += &format!("last failure:    {}\n", note(&status.last_failure));
    for (url, p) in &status.peers {
        let site = p.site.as_deref().map(|s| format!(" (site {s})")).unwrap_or_default();
        let state = if p.streaming { "streaming" } else { "down" };
        let err = p.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        out += &format!("peer {url}{site}: {state} since {}{err}\n", when(p.since));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digests_applied_are_kept_and_read_back_also_from_an_older_state_directory() {
        let cib = cib_transforms::xml::parse(
            r#"<cib admin_epoch="0" epoch="1" num_updates="0"><configuration><crm_config/><nodes/><resources>
            <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2"><instance_attributes id="vip-ia"><nvpair id="vip-ip" name="ip" value="10.2.1.10"/></instance_attributes></primitive>
            </resources><constraints><rsc_ticket id="vip-geo" rsc="vip" ticket="geo"/></constraints></configuration>
            <status><tickets><ticket_state id="geo" granted="true"/></tickets></status></cib>"#,
        )
        .unwrap();
        let scope = cib_transforms::scope::scope(&cib, "geo").unwrap();
        let want = AppliedDigests::of(&scope.config);
        assert_eq!(want.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        assert!(save_applied(dir.path(), "geo", &scope).unwrap());
        assert_eq!(load_applied(dir.path(), "geo").as_ref(), Some(&want));
        let doc = std::fs::read_to_string(applied_path(dir.path(), "geo")).unwrap();
        assert!(doc.contains(r#"value="10.2.1.10""#), "{doc}");
        // Read from the document where the digests are damaged, or where
        // only the document was kept (a state directory of a version
        // before the digests were).
        std::fs::write(applied_digests_path(dir.path(), "geo"), "not digests").unwrap();
        assert_eq!(load_applied(dir.path(), "geo").as_ref(), Some(&want));
        std::fs::remove_file(applied_digests_path(dir.path(), "geo")).unwrap();
        assert_eq!(load_applied(dir.path(), "geo").as_ref(), Some(&want));
        std::fs::remove_file(applied_path(dir.path(), "geo")).unwrap();
        assert_eq!(load_applied(dir.path(), "geo"), None);
        // No state directory: nothing kept.
        assert!(!save_applied(&dir.path().join("absent"), "geo", &scope).unwrap());
    }

    #[test]
    fn the_state_is_world_readable_and_a_staged_document_is_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        update(dir.path(), "geo", |s| s.term = Some(3)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state_path(dir.path(), "geo")), 0o644);
        write_atomic(&pending_path(dir.path(), "geo"), b"<configuration/>").unwrap();
        assert_eq!(mode(&pending_path(dir.path(), "geo")), 0o600);
        assert_eq!(mode(&ticket_dir(dir.path(), "geo")), 0o755);
    }

    #[test]
    fn a_lazy_copy_is_readable_and_its_directory_writable_by_the_state_directory_group() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = tempfile::tempdir().unwrap();
        let meta = |p: &Path| std::fs::metadata(p).unwrap();
        write_group_readable(dir.path(), &lazy_path(dir.path(), "geo"), b"<configuration/>").unwrap();
        share_ticket_dir(dir.path(), "geo").unwrap();
        let lazy = meta(&lazy_path(dir.path(), "geo"));
        let ticket = meta(&ticket_dir(dir.path(), "geo"));
        assert_eq!(lazy.permissions().mode() & 0o777, 0o640);
        assert_eq!(ticket.permissions().mode() & 0o7777, 0o2775);
        assert_eq!((lazy.gid(), ticket.gid()), (meta(dir.path()).gid(), meta(dir.path()).gid()));
        remove_lazy(dir.path(), "geo").unwrap();
        remove_lazy(dir.path(), "geo").unwrap();
        assert!(!lazy_path(dir.path(), "geo").exists());
    }

    #[test]
    fn timestamps_round_trip() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_464_139, "2026-11-23T20:02:19Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(Timestamp(secs).to_string(), text);
            assert_eq!(Timestamp::parse(text), Some(Timestamp(secs)), "{text}");
        }
        for bad in ["", "2026-11-23 20:02:19Z", "2026-13-01T00:00:00Z", "2026-11-23T20:02:19+01:00", "1969-12-31T23:59:59Z"] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ages() {
        let now = Timestamp(1_000_000);
        assert_eq!(Timestamp(1_000_000 - 3).age(now), "3 s");
        assert_eq!(Timestamp(1_000_000 - 600).age(now), "10 min");
        assert_eq!(Timestamp(1_000_000 - 3 * 3600).age(now), "3 h");
        assert_eq!(Timestamp(1_000_000 - 5 * 86_400).age(now), "5 d");
        assert_eq!(Timestamp(1_000_010).age(now), "0 s");
    }

    #[test]
    fn update_round_trips_and_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "geo").unwrap(), TicketStatus::default());
        let at = Timestamp(1_795_464_139);
        let written = update(dir.path(), "geo", |s| {
            s.source_site = Some("site-a".into());
            s.term = Some(7);
            s.applied = Some(VersionSeen {
                digest: "sha256:aa".into(),
                version: Some("0.12.1".into()),
                term: Some(7),
                at,
            });
            s.last_error = Some(Note { text: "boom".into(), at });
            s.peers.insert(
                "https://site-a:9443".into(),
                PeerStatus {
                    streaming: true,
                    since: at,
                    site: Some("site-a".into()),
                    error: None,
                },
            );
        })
        .unwrap();
        assert_eq!(load(dir.path(), "geo").unwrap(), written);
        let text = std::fs::read_to_string(state_path(dir.path(), "geo")).unwrap();
        assert!(text.contains("2026-11-23T20:02:19Z"), "{text}");
        // Only the state file is left: no temporary files.
        let names: Vec<_> = std::fs::read_dir(ticket_dir(dir.path(), "geo")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [STATE_FILE]);
        let shown = render(&written, Timestamp(at.0 + 65));
        assert!(shown.contains("source:          site-a (?)"), "{shown}");
        assert!(shown.contains("sha256:aa (version 0.12.1, term 7) at 2026-11-23T20:02:19Z (65 s ago)"), "{shown}");
        assert!(shown.contains("last error:      2026-11-23T20:02:19Z (65 s ago) — boom"), "{shown}");
        assert!(shown.contains("peer https://site-a:9443 (site site-a): streaming since"), "{shown}");
    }

    #[test]
    fn a_broken_state_file_is_reported_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&state_path(dir.path(), "geo"), b"term = \"x\"").unwrap();
        assert!(matches!(load(dir.path(), "geo"), Err(Error::StateFormat { .. })));
        let s = update(dir.path(), "geo", |s| s.term = Some(1)).unwrap();
        assert_eq!(s.term, Some(1));
    }
}
