//! `cib-subscriber status`: whether this site's copy of each ticket is in
//! step, as text for people and as JSON for machines, with an exit code.
//!
//! A ticket's report ([`TicketReport`]) is built from two sources only this
//! site has: the local CIB (is the ticket granted here, the ownership record
//! of what was applied, the state of each owned element) and the daemon's
//! state (`state_dir/TICKET/state.toml`, see [`crate::state`]). Whether the
//! copy is current follows the failover gate ([`crate::gate::decide`]), so
//! `status`, `gate` and the booth attribute agree.
//!
//! The JSON fields are documented in `subscriber/README.md` ("status
//! --output json"); [`FORMAT`] changes when a field changes meaning or goes
//! away (new fields may be added without changing it).

use std::path::{Path, PathBuf};

use serde::Serialize;

use cib_transforms::canonical::element_digest;
use cib_transforms::merge::{Ownership, UNKNOWN_DIGEST};
use cib_transforms::{cib, Element};

use crate::config::Config;
use crate::gate::{self, Verdict};
use crate::state::{self, Note, TicketStatus, Timestamp, VersionSeen};


/// Version of the JSON format, the `format` field.
pub const FORMAT: u32 = 1;

/// How `status` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Lines for people.
    Text,
    /// One JSON object (fields in subscriber/README.md).
    Json,
}

/// The outcome of one ticket, or of the whole report (the worst of its
/// tickets); also the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// In step, or granted here (exit 0).
    InStep,
    /// Not in step; the reasons say why (exit 1).
    NotInStep,
    /// The state could not be determined (exit 2).
    Error,
}

impl Outcome {
    /// The exit code: 0, 1 or 2.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Outcome::InStep => 0,
            Outcome::NotInStep => 1,
            Outcome::Error => 2,
        }
    }
}

/// Why a ticket is not in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// A replicated element was edited locally since it was applied.
    Drift,
    /// A replicated element was deleted locally.
    Missing,
    /// The ticket is not granted here and the local CIB has no `rsc_ticket`
    /// for it: there is no copy to fail over to.
    NoCopy,
    /// A version is staged (manual mode) and not applied.
    Pending,
    /// The version the daemon last received is not the one applied.
    Stale,
    /// The last document was refused or could not be applied (or
    /// staged), and none was since.
    Failed,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Drift => "drift",
            Reason::Missing => "missing",
            Reason::NoCopy => "no-copy",
            Reason::Pending => "pending",
            Reason::Stale => "stale",
            Reason::Failed => "failed",
        }
    }
}

/// The whole report: one entry per ticket.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: u32,
    /// The worst outcome of the tickets, or `error` when the report could
    /// not be made at all.
    pub result: Outcome,
    /// Why the report could not be made (configuration or CIB unreadable).
    pub error: Option<String>,
    /// One entry per ticket, in the order asked or configured.
    pub tickets: Vec<TicketReport>,
}

/// The state of one ticket at this site.
#[derive(Debug, Clone, Serialize)]
pub struct TicketReport {
    /// The ticket.
    pub ticket: String,
    /// In step, not in step, or error.
    pub result: Outcome,
    /// Why it is not in step (empty when it is).
    pub reasons: Vec<Reason>,
    /// Why its state could not be determined.
    pub error: Option<String>,
    /// Whether the ticket is granted at this site (`null` on error).
    pub granted_here: Option<bool>,
    /// What the CIB records as replicated (`null` on error).
    pub replica: Option<Replica>,
    /// What the daemon recorded (`null` when it has no state file).
    pub daemon: Option<Daemon>,
}

/// The ownership record of a ticket in the local CIB.
#[derive(Debug, Clone, Serialize)]
pub struct Replica {
    /// Publisher digest of the scope applied.
    pub scope_digest: Option<String>,
    /// Origin CIB version of the scope applied.
    pub origin_version: Option<String>,
    /// Grant term of the scope applied.
    pub grant_term: Option<u64>,
    /// Every owned element and its state.
    pub elements: Vec<OwnedElement>,
}

/// One owned element.
#[derive(Debug, Clone, Serialize)]
pub struct OwnedElement {
    /// `section:id`, e.g. `resources:web`.
    pub key: String,
    /// Its state.
    pub state: ElementState,
}

/// The state of an owned element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElementState {
    /// As applied.
    Ok,
    /// Edited locally since.
    Drift,
    /// Deleted locally.
    Missing,
    /// Something owned was edited, and which cannot be told: the document
    /// applied last is not kept here (a state directory started empty).
    Unknown,
}

impl ElementState {
    fn as_str(self) -> &'static str {
        match self {
            ElementState::Ok => "ok",
            ElementState::Drift => "drift",
            ElementState::Missing => "missing",
            ElementState::Unknown => "unknown",
        }
    }
}

/// The daemon's state of a ticket, from its state file.
#[derive(Debug, Clone, Serialize)]
pub struct Daemon {
    /// The state file.
    pub state_file: PathBuf,
    /// The site whose document was last accepted.
    pub source_site: Option<String>,
    /// The publisher whose document was last accepted.
    pub source_url: Option<String>,
    /// The newest grant term seen.
    pub term: Option<u64>,
    /// The last version accepted.
    pub received: Option<Version>,
    /// The last version applied (or found already there).
    pub applied: Option<Version>,
    /// The version staged in manual mode.
    pub pending: Option<Version>,
    /// The version verified and kept out of the CIB (lazy mode).
    pub lazy: Option<Version>,
    /// What happened to the last document.
    pub last_result: Option<Note>,
    /// When a document was last applied, found up to date, or staged.
    pub last_success: Option<Timestamp>,
    /// The last failure, connection errors included.
    pub last_error: Option<Note>,
    /// The last document refused or not applied, until one is applied,
    /// found up to date or staged.
    pub last_failure: Option<Note>,
    /// Each peer's connection.
    pub peers: Vec<Peer>,
}

/// One version of a ticket's scope, as published.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    /// The publisher's digest (`sha256:…`).
    pub digest: String,
    /// The origin CIB version.
    pub version: Option<String>,
    /// The grant term.
    pub term: Option<u64>,
    /// When it was received, applied or staged.
    pub at: Timestamp,
}

impl From<VersionSeen> for Version {
    fn from(v: VersionSeen) -> Version {
        Version {
            digest: v.digest,
            version: v.version,
            term: v.term,
            at: v.at,
        }
    }
}

impl From<&Version> for VersionSeen {
    fn from(v: &Version) -> VersionSeen {
        VersionSeen {
            digest: v.digest.clone(),
            version: v.version.clone(),
            term: v.term,
            at: v.at,
        }
    }
}

/// The connection to one peer publisher.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    /// Its base URL.
    pub url: String,
    /// Whether an event stream is open.
    pub streaming: bool,
    /// Since when.
    pub since: Timestamp,
    /// The site name it announced.
    pub site: Option<String>,
    /// Why the stream is not open.
    pub error: Option<String>,
}

impl Report {
    /// A report that could not be made.
    #[must_use]
    pub fn failed(error: String) -> Report {
        Report {
            format: FORMAT,
            result: Outcome::Error,
            error: Some(error),
            tickets: Vec::new(),
        }
    }

    /// The report of `tickets` (every ticket of `config` when empty) for the
    /// local CIB `local` and the daemon's `state_dir`. `config` is the
    /// daemon's configuration when one was given: a ticket it does not list
    /// is unknown.
    #[must_use]
    pub fn build(local: &Element, tickets: &[String], config: Option<&Config>, state_dir: &Path) -> Report {
        let tickets: Vec<TicketReport> = tickets
            .iter()
            .map(|t| match config {
                Some(c) if !c.tickets.iter().any(|tc| &tc.name == t) => {
                    TicketReport::error(t, "unknown ticket: not in the configuration".into())
                }
                _ => TicketReport::build(local, t, state_dir, config.is_some()),
            })
            .collect();
        Report {
            format: FORMAT,
            result: tickets.iter().map(|t| t.result).max().unwrap_or(Outcome::InStep),
            error: None,
            tickets,
        }
    }

    /// The exit code: 0 in step, 1 not in step, 2 error.
    #[must_use]
    pub fn code(&self) -> u8 {
        self.result.code()
    }

    /// The report as pretty-printed JSON, with a final newline.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with
        // non-string keys, no custom serializers that error.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The report as lines for people, ages relative to `now`; tickets
    /// separated by a blank line. [`Report::error`] is not included (the
    /// caller prints it on stderr).
    #[must_use]
    pub fn to_text(&self, now: Timestamp) -> String {
        let mut out = String::new();
        for (i, t) in self.tickets.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out += &t.to_text(now);
        }
        out
    }
}

impl TicketReport {
    fn error(ticket: &str, error: String) -> TicketReport {
        TicketReport {
            ticket: ticket.to_owned(),
            result: Outcome::Error,
            reasons: Vec::new(),
            error: Some(error),
            granted_here: None,
            replica: None,
            daemon: None,
        }
    }

    /// The report of `ticket`. Without a configuration (`configured`
    /// false), a ticket neither the CIB nor the daemon's state knows is
    /// unknown.
    fn build(local: &Element, ticket: &str, state_dir: &Path, configured: bool) -> TicketReport {
        let kept = state::load_applied(state_dir, ticket);
        let own = match Ownership::read_with(local, ticket, kept.as_ref(), None) {
            Ok(own) => own,
            Err(e) => return TicketReport::error(ticket, e.to_string()),
        };
        let status = match state::load(state_dir, ticket) {
            Ok(s) => s,
            Err(e) => return TicketReport::error(ticket, e.to_string()),
        };
        let state_file = state::state_path(state_dir, ticket);
        let has_state = state_file.is_file();
        let verdict = gate::decide(local, ticket, &status);
        let unknown = !configured
            && verdict == Verdict::Missing
            && own.applied_digest.is_none()
            && own.owned.is_empty()
            && !state::ticket_dir(state_dir, ticket).is_dir();
        if unknown {
            return TicketReport::error(
                ticket,
                format!(
                    "unknown ticket: no rsc_ticket nor replica for it in the CIB, no daemon state in {} (give the daemon's --config)",
                    state_dir.display()
                ),
            );
        }
        let elements = owned_elements(local, &own);
        let holder = verdict == Verdict::Holder;
        let mut reasons = Vec::new();
        if !holder {
            if elements.iter().any(|e| matches!(e.state, ElementState::Drift | ElementState::Unknown)) {
                reasons.push(Reason::Drift);
            }
            if elements.iter().any(|e| e.state == ElementState::Missing) {
                reasons.push(Reason::Missing);
            }
            if verdict == Verdict::Missing {
                reasons.push(Reason::NoCopy);
            }
            if status.pending.is_some() || state::pending_path(state_dir, ticket).is_file() {
                reasons.push(Reason::Pending);
            }
            let lazy_stale = status.lazy.is_some() && !gate::replica_is_current(&status);
            if matches!(verdict, Verdict::Stale { .. }) || lazy_stale {
                reasons.push(Reason::Stale);
            }
            if status.last_failure.is_some() {
                reasons.push(Reason::Failed);
            }
        }
        TicketReport {
            ticket: ticket.to_owned(),
            result: if reasons.is_empty() { Outcome::InStep } else { Outcome::NotInStep },
            reasons,
            error: None,
            granted_here: Some(holder),
            replica: Some(Replica {
                scope_digest: own.applied_digest,
                origin_version: own.applied_version,
                grant_term: own.applied_term,
                elements,
            }),
            daemon: has_state.then(|| Daemon::from_state(state_file, status)),
        }
    }

    fn to_text(&self, now: Timestamp) -> String {
        let mut out = String::new();
        let t = &self.ticket;
        let (Some(granted), Some(replica)) = (self.granted_here, &self.replica) else {
            return format!("ticket {t}: error: {}\n", self.error.as_deref().unwrap_or("unknown"));
        };
        out += &format!("ticket {t}: {}\n", if granted { "granted here" } else { "not granted here" });
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        out += &format!("applied scope:   {}\n", show(&replica.scope_digest));
        out += &format!("origin version:  {}\n", show(&replica.origin_version));
        out += &format!("grant term:      {}\n", replica.grant_term.map_or("-".into(), |t| t.to_string()));
        out += &format!("owned elements:  {}\n", replica.elements.len());
        for e in &replica.elements {
            out += &format!("  {:<8} {}\n", e.state.as_str(), e.key);
        }
        match &self.daemon {
            None => out += "daemon state:    none\n",
            Some(d) => {
                out += &format!("daemon state ({}):\n", d.state_file.display());
                for line in state::render(&d.to_state(), now).lines() {
                    out += &format!("  {line}\n");
                }
            }
        }
        let reasons: Vec<&str> = self.reasons.iter().map(|r| r.as_str()).collect();
        out += &match self.result {
            Outcome::InStep if granted => "result:          in step (granted here)\n".to_owned(),
            Outcome::InStep if self.daemon.as_ref().is_some_and(|d| d.lazy.is_some()) => {
                "result:          in step (kept lazily, out of the CIB until the ticket is acquired here)\n".to_owned()
            }
            Outcome::InStep => "result:          in step\n".to_owned(),
            _ => format!("result:          not in step: {}\n", reasons.join(", ")),
        };
        out
    }
}

impl Daemon {
    fn from_state(state_file: PathBuf, s: TicketStatus) -> Daemon {
        Daemon {
            state_file,
            source_site: s.source_site,
            source_url: s.source_url,
            term: s.term,
            received: s.received.map(Version::from),
            applied: s.applied.map(Version::from),
            pending: s.pending.map(Version::from),
            lazy: s.lazy.map(Version::from),
            last_result: s.last_result,
            last_success: s.last_success,
            last_error: s.last_error,
            last_failure: s.last_failure,
            peers: s
                .peers
                .into_iter()
                .map(|(url, p)| Peer {
                    url,
                    streaming: p.streaming,
                    since: p.since,
                    site: p.site,
                    error: p.error,
                })
                .collect(),
        }
    }

    fn to_state(&self) -> TicketStatus {
        TicketStatus {
            source_site: self.source_site.clone(),
            source_url: self.source_url.clone(),
            term: self.term,
            received: self.received.as_ref().map(VersionSeen::from),
            applied: self.applied.as_ref().map(VersionSeen::from),
            pending: self.pending.as_ref().map(VersionSeen::from),
            lazy: self.lazy.as_ref().map(VersionSeen::from),
            last_result: self.last_result.clone(),
            last_success: self.last_success,
            last_error: self.last_error.clone(),
            last_failure: self.last_failure.clone(),
            peers: self
                .peers
                .iter()
                .map(|p| {
                    let peer = state::PeerStatus {
                        streaming: p.streaming,
                        since: p.since,
                        site: p.site.clone(),
                        error: p.error.clone(),
                    };
                    (p.url.clone(), peer)
                })
                .collect(),
        }
    }
}

/// Every owned element of the record and whether it is as applied.
fn owned_elements(local: &Element, own: &Ownership) -> Vec<OwnedElement> {
    let config = cib::configuration(local).ok();
    let mut seen_missing = std::collections::BTreeSet::new();
    own.owned
        .iter()
        .filter_map(|(key, recorded)| {
            let (section, id) = key.split_once(':').unwrap_or(("", key));
            let found = config
                .and_then(|c| c.child(section))
                .and_then(|s| s.children.iter().find(|c| c.id() == Some(id)));
            let unknown = recorded == UNKNOWN_DIGEST;
            let state = match found {
                // Without the digests as applied, a deleted element's
                // section is not known either: it is listed once.
                None if unknown && !seen_missing.insert(id) => return None,
                None => ElementState::Missing,
                Some(_) if unknown => ElementState::Unknown,
                Some(el) if &element_digest(el) != recorded => ElementState::Drift,
                Some(_) => ElementState::Ok,
            };
            Some(OwnedElement { key: key.clone(), state })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cib_transforms::xml::parse;

    const CIB: &str = r#"<cib><configuration><crm_config/><resources>
        <primitive id="app" class="ocf" provider="pacemaker" type="Dummy"/></resources>
        <constraints><rsc_ticket id="app-T" rsc="app" ticket="T" loss-policy="stop"/></constraints>
        </configuration><status/></cib>"#;

    fn at(secs: u64) -> Timestamp {
        Timestamp(1_795_464_000 + secs)
    }

    fn seen(digest: &str) -> VersionSeen {
        VersionSeen {
            digest: digest.into(),
            version: Some("0.4.2".into()),
            term: Some(3),
            at: at(0),
        }
    }

    #[test]
    fn reasons_follow_the_daemon_state() {
        let local = parse(CIB).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let report = |dir: &Path| Report::build(&local, &["T".into()], None, dir);

        // Origin: nothing received, a copy (rsc_ticket) here.
        state::update(dir.path(), "T", |_| {}).unwrap();
        let r = report(dir.path());
        assert_eq!((r.result, r.code()), (Outcome::InStep, 0), "{r:?}");

        // Received and not applied: stale; a document not applied: failed.
        state::update(dir.path(), "T", |s| {
            s.received = Some(seen("sha256:aa"));
            s.last_success = Some(at(1));
            s.last_error = Some(Note { text: "not applied: boom".into(), at: at(2) });
            s.last_failure = s.last_error.clone();
        })
        .unwrap();
        let r = report(dir.path());
        assert_eq!(r.code(), 1);
        assert_eq!(r.tickets[0].reasons, [Reason::Stale, Reason::Failed]);

        // A later success clears `failed`; a staged version is pending.
        state::update(dir.path(), "T", |s| {
            s.last_success = Some(at(3));
            s.last_failure = None;
            s.pending = Some(seen("sha256:aa"));
        })
        .unwrap();
        assert_eq!(report(dir.path()).tickets[0].reasons, [Reason::Pending, Reason::Stale]);

        let json: serde_json::Value = serde_json::from_str(&report(dir.path()).to_json()).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(json["result"], "not-in-step");
        assert_eq!(json["tickets"][0]["reasons"], serde_json::json!(["pending", "stale"]));
        assert_eq!(json["tickets"][0]["daemon"]["pending"]["at"], "2026-11-23T20:00:00Z");
        assert_eq!(json["tickets"][0]["daemon"]["last_error"]["text"], "not applied: boom");
    }

    #[test]
    fn unknown_tickets_and_tickets_without_a_copy() {
        let local = parse(CIB).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = Report::build(&local, &["U".into()], None, dir.path());
        assert_eq!(r.code(), 2);
        assert!(r.tickets[0].error.as_deref().unwrap().starts_with("unknown ticket"), "{r:?}");
        // Known to the daemon's state, but no copy here.
        std::fs::create_dir(dir.path().join("U")).unwrap();
        let r = Report::build(&local, &["U".into()], None, dir.path());
        assert_eq!(r.tickets[0].reasons, [Reason::NoCopy]);
        assert!(r.to_text(at(0)).contains("result:          not in step: no-copy"), "{}", r.to_text(at(0)));
    }
}
