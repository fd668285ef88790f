//! The fleet view: every allowed site's state per ticket, as this publisher
//! knows it from the sites' requests and acknowledgements.
//!
//! The server records, per ticket and site ([`Records`]): when the site was
//! last seen (any request the allow-list let through, and the end of each
//! of its streams), how many streams it holds open now, and its last
//! acknowledgement ([`cib_net::ack::Ack`]) with the time it arrived. A site
//! is named by the certificate name its ticket's allow-list matched,
//! lower-cased — never by anything it sends.
//!
//! [`report`] compares those records with what is published
//! ([`crate::publication::Channels::history`]) and gives a [`FleetReport`]:
//! `cib-publisher status` prints it ([`render_text`]), `/status.json`
//! serves it as JSON, `/status` as an HTML table ([`crate::status_page`]),
//! and the metrics `cib_publisher_site_behind_seconds` and
//! `cib_publisher_site_in_step` follow it.
//!
//! The JSON fields are stable (`publisher/README.md`, "status --output
//! json"); [`FORMAT`] changes when a field changes meaning or goes away.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use cib_net::ack::Ack;
use cib_transforms::printable::printable;

use crate::publication::{Published, VersionPublished};

/// Version of the JSON format, the `format` field.
pub const FORMAT: u32 = 1;

/// What the publisher knows of one site for one ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteRecord {
    /// The last acknowledgement, and when it arrived.
    pub ack: Option<(Ack, SystemTime)>,
    /// The last request let through, or the end of the last stream.
    pub last_seen: Option<SystemTime>,
    /// Streams of the ticket the site holds open now.
    pub streams: usize,
}

/// The records of every site, per ticket then site name. Only sites an
/// allow-list let through are recorded, so the map is bounded by the
/// configuration.
#[derive(Debug, Default)]
pub struct Records(Mutex<BTreeMap<String, BTreeMap<String, SiteRecord>>>);

impl Records {
    fn change(&self, ticket: &str, site: &str, f: impl FnOnce(&mut SiteRecord)) {
        // A poisoned lock only means a panic mid-update of plain values.
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(all.entry(ticket.to_owned()).or_default().entry(site.to_owned()).or_default());
    }

    /// `site` made a request about `ticket` now.
    pub fn seen(&self, ticket: &str, site: &str) {
        self.change(ticket, site, |r| r.last_seen = Some(SystemTime::now()));
    }

    /// `site` acknowledged `ack` for `ticket` now.
    pub fn acked(&self, ticket: &str, site: &str, ack: Ack) {
        let now = SystemTime::now();
        self.change(ticket, site, |r| {
            r.ack = Some((ack, now));
            r.last_seen = Some(now);
        });
    }

    /// `site` opened a stream of `ticket`; it counts as connected until the
    /// returned guard is dropped.
    #[must_use]
    pub fn stream_opened(self: &Arc<Self>, ticket: &str, site: &str) -> StreamSeen {
        self.change(ticket, site, |r| {
            r.streams += 1;
            r.last_seen = Some(SystemTime::now());
        });
        StreamSeen {
            records: Arc::clone(self),
            ticket: ticket.to_owned(),
            site: site.to_owned(),
        }
    }

    /// The records of `ticket`.
    #[must_use]
    pub fn of(&self, ticket: &str) -> BTreeMap<String, SiteRecord> {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(ticket).cloned().unwrap_or_default()
    }
}

/// Counts a site's stream as open until dropped; then the site was last
/// seen at the drop.
#[derive(Debug)]
pub struct StreamSeen {
    records: Arc<Records>,
    ticket: String,
    site: String,
}

impl Drop for StreamSeen {
    fn drop(&mut self) {
        self.records.change(&self.ticket, &self.site, |r| {
            r.streams = r.streams.saturating_sub(1);
            r.last_seen = Some(SystemTime::now());
        });
    }
}

/// What [`report`] needs of one ticket.
#[derive(Debug, Clone)]
pub struct TicketInput {
    /// The ticket.
    pub ticket: String,
    /// Its allow-list now (reloads included).
    pub allow: Vec<String>,
    /// The version published now; `None` when the ticket is not served
    /// here.
    pub published: Option<Arc<Published>>,
    /// The last versions published, oldest first.
    pub history: Vec<VersionPublished>,
    /// The sites' records.
    pub records: BTreeMap<String, SiteRecord>,
}

/// The whole view: `/status.json`, `cib-publisher status --output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetReport {
    /// [`FORMAT`].
    pub format: u32,
    /// This publisher's site name.
    pub site: String,
    /// When the report was made, Unix seconds.
    pub at: u64,
    /// Whether every allowed site of every ticket published here is in
    /// step (true when no ticket is published here).
    pub in_step: bool,
    /// One entry per configured ticket.
    pub tickets: Vec<TicketReport>,
}

/// One ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketReport {
    /// The ticket.
    pub ticket: String,
    /// The version published here now; `null` when the ticket is not
    /// served here (not granted, standby, or its scope cannot be computed).
    pub published: Option<PublishedReport>,
    /// Whether the ticket is published here and every allowed site is in
    /// step.
    pub in_step: bool,
    /// Every site on the allow-list, then any other that acknowledged or
    /// was seen (a list changed by a reload), by name.
    pub sites: Vec<SiteReport>,
}

/// The version a ticket is published at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedReport {
    /// CIB version (`admin_epoch.epoch.num_updates`).
    pub version: String,
    /// `sha256:<hex>` of the scope.
    pub digest: String,
    /// Grant term; `null` when none.
    pub term: Option<u64>,
    /// When this publisher published it, Unix seconds (`null` if unknown).
    pub since: Option<u64>,
}

/// How a site stands, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteState {
    /// Never seen since this publisher started: no stream, no request, no
    /// acknowledgement.
    NotSeen,
    /// Its last document was refused or could not be applied.
    Error,
    /// It holds an older version (or a staged one not applied), or has not
    /// acknowledged what it holds.
    Behind,
    /// It holds the current version, but replicated elements were edited
    /// there and not put back.
    Drift,
    /// It holds the current version, nothing staged, no error, no drift.
    InStep,
    /// The ticket is not published here: nothing to compare with.
    Idle,
}

impl SiteState {
    /// The name used in JSON, text and the page's CSS classes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SiteState::NotSeen => "not-seen",
            SiteState::Error => "error",
            SiteState::Behind => "behind",
            SiteState::Drift => "drift",
            SiteState::InStep => "in-step",
            SiteState::Idle => "idle",
        }
    }
}

/// One site of one ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteReport {
    /// The site's certificate name (as on the allow-list, lower-cased).
    pub site: String,
    /// Whether the ticket's allow-list names it now.
    pub allowed: bool,
    /// How it stands.
    pub state: SiteState,
    /// `state` is `in-step`.
    pub in_step: bool,
    /// Whether it holds a stream of the ticket open now.
    pub connected: bool,
    /// When it was last seen, Unix seconds (now while connected); `null`:
    /// never since this publisher started.
    pub last_seen: Option<u64>,
    /// What it acknowledged holding; `null` without an acknowledgement.
    pub applied: Option<AppliedReport>,
    /// Versions published here after the one it holds; `null` when
    /// unknown (no acknowledgement, or a version older than the history
    /// kept).
    pub versions_behind: Option<u64>,
    /// Seconds since this publisher moved past the version it holds (0 in
    /// step); when that version is unknown, at least the age of the oldest
    /// version remembered. `null` when nothing is published.
    pub behind_seconds: Option<u64>,
    /// Replicated elements edited there and not put back.
    pub drift: u32,
    /// Whether a version is staged there and not applied (manual mode).
    pub pending: bool,
    /// Its last error (a document refused or not applied); `null`: none.
    pub error: Option<String>,
    /// When its last acknowledgement arrived, Unix seconds.
    pub acked_at: Option<u64>,
}

/// The version a site acknowledged holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedReport {
    /// CIB version at the origin; `null` when unknown.
    pub version: Option<String>,
    /// Publisher digest; `null` when nothing is applied there.
    pub digest: Option<String>,
    /// Grant term; `null` when none.
    pub term: Option<u64>,
}

/// Unix seconds of `t` (0 before 1970).
#[must_use]
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Builds the report of `site` (this publisher) at `now`.
#[must_use]
pub fn report(site: &str, now: SystemTime, tickets: Vec<TicketInput>) -> FleetReport {
    let tickets: Vec<TicketReport> = tickets.into_iter().map(|t| ticket_report(now, t)).collect();
    FleetReport {
        format: FORMAT,
        site: site.to_owned(),
        at: unix(now),
        in_step: tickets.iter().all(|t| t.in_step || t.published.is_none()),
        tickets,
    }
}

fn ticket_report(now: SystemTime, t: TicketInput) -> TicketReport {
    let mut names: Vec<(String, bool)> = Vec::new();
    for a in &t.allow {
        let a = a.trim().to_ascii_lowercase();
        if !names.iter().any(|(n, _)| *n == a) {
            names.push((a, true));
        }
    }
    for name in t.records.keys() {
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.clone(), false));
        }
    }
    let sites: Vec<SiteReport> = names
        .into_iter()
        .map(|(name, allowed)| {
            let record = t.records.get(&name).cloned().unwrap_or_default();
            site_report(now, name, allowed, &record, t.published.as_deref(), &t.history)
        })
        .collect();
    let published = t.published.as_ref().map(|p| PublishedReport {
        version: p.version.clone(),
        digest: p.digest.clone(),
        term: p.term,
        since: t.history.iter().rev().find(|h| h.etag == p.etag).map(|h| unix(h.at)),
    });
    TicketReport {
        in_step: published.is_some() && sites.iter().filter(|s| s.allowed).all(|s| s.in_step),
        ticket: t.ticket,
        published,
        sites,
    }
}

fn site_report(
    now: SystemTime,
    site: String,
    allowed: bool,
    record: &SiteRecord,
    published: Option<&Published>,
    history: &[VersionPublished],
) -> SiteReport {
    let ack = record.ack.as_ref().map(|(a, _)| a);
    let applied_etag = ack.and_then(Ack::etag);
    let secs = |t: SystemTime| now.duration_since(t).map_or(0, |d| d.as_secs());
    let (versions_behind, behind_seconds) = match published {
        None => (None, None),
        Some(p) if applied_etag.as_deref() == Some(p.etag.as_str()) => (Some(0), Some(0)),
        Some(_) => match applied_etag.and_then(|e| history.iter().rposition(|h| h.etag == e)) {
            Some(i) => (
                u64::try_from(history.len() - 1 - i).ok(),
                Some(history.get(i + 1).map_or(0, |next| secs(next.at))),
            ),
            None => (None, history.first().map(|h| secs(h.at))),
        },
    };
    let seen = record.ack.is_some() || record.last_seen.is_some() || record.streams > 0;
    let error = ack.and_then(|a| a.error.clone());
    let pending = ack.is_some_and(|a| a.pending == 1);
    let drift = ack.map_or(0, |a| a.drift);
    let state = if published.is_none() {
        SiteState::Idle
    } else if !seen {
        SiteState::NotSeen
    } else if error.is_some() {
        SiteState::Error
    } else if versions_behind != Some(0) || pending {
        SiteState::Behind
    } else if drift > 0 {
        SiteState::Drift
    } else {
        SiteState::InStep
    };
    let connected = record.streams > 0;
    SiteReport {
        site,
        allowed,
        state,
        in_step: state == SiteState::InStep,
        connected,
        last_seen: if connected { Some(unix(now)) } else { record.last_seen.map(unix) },
        applied: ack.map(|a| AppliedReport {
            version: a.version.clone(),
            digest: a.digest.clone(),
            term: a.term,
        }),
        versions_behind,
        behind_seconds,
        drift,
        pending,
        error,
        acked_at: record.ack.as_ref().map(|(_, at)| unix(*at)),
    }
}

/// The report as lines for people; every value from the wire printed
/// escaped.
#[must_use]
pub fn render_text(r: &FleetReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "publisher {}: {}", printable(&r.site), if r.in_step { "every site in step" } else { "NOT every site in step" });
    for t in &r.tickets {
        match &t.published {
            Some(p) => {
                let term = p.term.map_or_else(|| "none".to_owned(), |t| t.to_string());
                let _ = writeln!(out, "ticket {}: published version {} {} term {term}", t.ticket, p.version, p.digest);
            }
            None => {
                let _ = writeln!(out, "ticket {}: not published here", t.ticket);
            }
        }
        for s in &t.sites {
            let mut line = format!("  {} {}", printable(&s.site), s.state.as_str());
            if !s.allowed {
                line += " (not on the allow-list)";
            }
            if let Some(a) = &s.applied {
                let _ = write!(line, ", applied {}", a.version.as_deref().map_or_else(|| "none".to_owned(), |v| printable(v).into_owned()));
            }
            match (s.versions_behind, s.behind_seconds) {
                (Some(0), _) | (_, None) => {}
                (Some(v), Some(secs)) => {
                    let _ = write!(line, ", {v} version(s) behind for {secs} s");
                }
                (None, Some(secs)) => {
                    let _ = write!(line, ", behind for at least {secs} s");
                }
            }
            if s.drift > 0 {
                let _ = write!(line, ", drift {}", s.drift);
            }
            if s.pending {
                line += ", a version staged";
            }
            if s.connected {
                line += ", connected";
            } else if let Some(seen) = s.last_seen {
                let _ = write!(line, ", last seen {} s ago", r.at.saturating_sub(seen));
            }
            if let Some(e) = &s.error {
                let _ = write!(line, ", error: {}", printable(e));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn published(version: &str, digest: &str) -> Arc<Published> {
        Arc::new(Published::new("geo", "<configuration/>\n".into(), digest.into(), version.into(), Some(5)).unwrap())
    }

    fn ack(digest: &str, version: &str) -> Ack {
        Ack {
            digest: Some(digest.into()),
            version: Some(version.into()),
            term: Some(5),
            at: 0,
            ..Ack::default()
        }
    }

    fn input(records: BTreeMap<String, SiteRecord>, now: SystemTime) -> TicketInput {
        let at = |s: u64| now - Duration::from_secs(s);
        TicketInput {
            ticket: "geo".into(),
            allow: vec!["Site-B.example".into(), "site-c.example".into(), "site-d.example".into()],
            published: Some(published("0.3.0", "sha256:cc")),
            history: vec![
                VersionPublished { etag: "sha256:aa@5".into(), version: "0.1.0".into(), at: at(100) },
                VersionPublished { etag: "sha256:bb@5".into(), version: "0.2.0".into(), at: at(60) },
                VersionPublished { etag: "sha256:cc@5".into(), version: "0.3.0".into(), at: at(20) },
            ],
            records,
        }
    }

    fn record(a: Option<Ack>, now: SystemTime) -> SiteRecord {
        SiteRecord {
            ack: a.map(|a| (a, now)),
            last_seen: Some(now),
            streams: 1,
        }
    }

    #[test]
    fn sites_in_step_behind_error_and_not_seen() {
        let now = SystemTime::now();
        let mut records = BTreeMap::new();
        records.insert("site-b.example".into(), record(Some(ack("sha256:cc", "0.3.0")), now));
        records.insert("site-c.example".into(), record(Some(ack("sha256:aa", "0.1.0")), now));
        records.insert("site-x.example".into(), record(Some(ack("sha256:cc", "0.3.0").with_error(Some("no <way>"))), now));
        let r = report("site-a", now, vec![input(records, now)]);
        assert!(!r.in_step);
        let t = &r.tickets[0];
        assert_eq!(t.published.as_ref().unwrap().since, Some(unix(now) - 20));
        let by = |n: &str| t.sites.iter().find(|s| s.site == n).unwrap();
        let b = by("site-b.example");
        assert_eq!((b.state, b.in_step, b.versions_behind, b.behind_seconds, b.allowed), (SiteState::InStep, true, Some(0), Some(0), true));
        let c = by("site-c.example");
        assert_eq!((c.state, c.versions_behind, c.behind_seconds), (SiteState::Behind, Some(2), Some(60)));
        let d = by("site-d.example");
        assert_eq!((d.state, d.versions_behind, d.behind_seconds, d.last_seen), (SiteState::NotSeen, None, Some(100), None));
        let x = by("site-x.example");
        assert_eq!((x.state, x.allowed), (SiteState::Error, false));
        assert_eq!(t.sites.iter().map(|s| s.site.as_str()).collect::<Vec<_>>(), ["site-b.example", "site-c.example", "site-d.example", "site-x.example"]);
        let text = render_text(&r);
        assert!(text.contains("site-c.example behind, applied 0.1.0, 2 version(s) behind for 60 s, connected"), "{text}");
        assert!(text.contains("site-d.example not-seen"), "{text}");
    }

    #[test]
    fn drift_pending_and_idle() {
        let now = SystemTime::now();
        let mut records = BTreeMap::new();
        let mut drifted = ack("sha256:cc", "0.3.0");
        drifted.drift = 2;
        let mut staged = ack("sha256:bb", "0.2.0");
        staged.pending = 1;
        records.insert("site-b.example".into(), record(Some(drifted), now));
        records.insert("site-c.example".into(), record(Some(staged), now));
        records.insert("site-d.example".into(), record(None, now));
        let r = report("site-a", now, vec![input(records.clone(), now)]);
        let states: Vec<SiteState> = r.tickets[0].sites.iter().map(|s| s.state).collect();
        assert_eq!(states, [SiteState::Drift, SiteState::Behind, SiteState::Behind]);
        let mut idle = input(records, now);
        idle.published = None;
        let r = report("site-a", now, vec![idle]);
        assert!(r.in_step && !r.tickets[0].in_step);
        assert!(r.tickets[0].sites.iter().all(|s| s.state == SiteState::Idle && s.behind_seconds.is_none()));
    }

    #[test]
    fn json_round_trip_and_names() {
        let now = SystemTime::now();
        let r = report("site-a", now, vec![input(BTreeMap::new(), now)]);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""state":"not-seen""#), "{json}");
        assert_eq!(serde_json::from_str::<FleetReport>(&json).unwrap(), r);
    }

    #[test]
    fn stream_guards_count_connections() {
        let records = Arc::new(Records::default());
        let g = records.stream_opened("geo", "site-b.example");
        assert_eq!(records.of("geo")["site-b.example"].streams, 1);
        drop(g);
        let r = &records.of("geo")["site-b.example"];
        assert_eq!(r.streams, 0);
        assert!(r.last_seen.is_some());
    }
}
