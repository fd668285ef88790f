//! The failover gate: whether this site may acquire a ticket, for booth's
//! `before-acquire-handler`.
//!
//! booth runs the handler before it acquires or renews a ticket at a site
//! and gives the ticket up (or does not take it) when the handler exits
//! non-zero. `cib-subscriber gate` answers from two facts only this site
//! has: its CIB (is the ticket granted here, is there a copy of its
//! configuration, which version was applied: the ownership record) and the
//! daemon's state (the last version it saw published for the ticket).
//!
//! | situation | verdict |
//! |---|---|
//! | the ticket is granted here (a renewal) | allow (first writing a lazy copy that waits) |
//! | a lazy copy of the version last received waits out of the CIB | write it to the CIB, then allow |
//! | no `rsc_ticket` for the ticket in the local CIB | refuse: nothing to run |
//! | the daemon never received a version | allow: this site is the origin (first grant) |
//! | the version received is the one applied (same digest) | allow |
//! | a version was received and not applied (failed, staged in manual mode) | refuse: stale copy |
//!
//! Taking the ticket to a stale site would start yesterday's configuration;
//! refusing keeps the ticket where it is, or lets booth give it to a site
//! whose copy is current. To move the ticket to a stale site anyway, bring
//! its copy up to date first (`cib-subscriber replicate-now`).
//!
//! A lazy copy ([`crate::lazy`]) is written to the CIB by [`acquire`], the
//! whole of `cib-subscriber gate`; refused (exit 1) when writing fails.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use cib_tools::cib::Cib;

use cib_transforms::cib;
use cib_transforms::merge::Ownership;
use cib_transforms::Element;

use crate::state::{TicketStatus, Timestamp, VersionSeen};

/// The answer of the gate for one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The ticket is granted at this site already: renewing is fine.
    Holder,
    /// The daemon never received a version: this site holds the ticket's
    /// configuration as its origin.
    Origin,
    /// The version last received is the one applied.
    Current(VersionSeen),
    /// The version last received is verified and kept out of the CIB (lazy
    /// mode): it is written to the CIB as the ticket is acquired.
    Lazy(VersionSeen),
    /// The local CIB has no `rsc_ticket` for the ticket: there is nothing
    /// here to run.
    Missing,
    /// A version was received and is not the one applied.
    Stale {
        /// The version last received from a publisher.
        received: VersionSeen,
        /// The digest recorded as applied in the CIB, if any.
        applied: Option<String>,
    },
}

impl Verdict {
    /// Whether the site may acquire (or renew) the ticket.
    #[must_use]
    pub fn allows(&self) -> bool {
        matches!(self, Verdict::Holder | Verdict::Origin | Verdict::Current(_) | Verdict::Lazy(_))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = |v: &VersionSeen| {
            let mut s = v.version.clone().unwrap_or_else(|| "?".into());
            if let Some(t) = v.term {
                s += &format!(" (term {t})");
            }
            s
        };
        match self {
            Verdict::Holder => write!(f, "allowed: the ticket is granted at this site"),
            Verdict::Origin => write!(
                f,
                "allowed: no version was ever received here; this site's configuration is the origin"
            ),
            Verdict::Current(v) => write!(f, "allowed: the copy is current (version {}, {})", version(v), v.digest),
            Verdict::Lazy(v) => write!(
                f,
                "allowed: the copy kept lazily is current (version {}, {}); it enters the CIB as the ticket is acquired",
                version(v),
                v.digest
            ),
            Verdict::Missing => write!(f, "refused: the local CIB has no rsc_ticket for the ticket (no copy here)"),
            Verdict::Stale { received, applied } => write!(
                f,
                "refused: the copy is stale: version {} ({}) was received, {} is applied; \
                 bring it up to date with cib-subscriber replicate-now",
                version(received),
                received.digest,
                applied.as_deref().unwrap_or("nothing")
            ),
        }
    }
}

/// Decides whether this site, with local CIB `local` and the daemon's
/// state `status` for `ticket`, may acquire the ticket.
#[must_use]
pub fn decide(local: &Element, ticket: &str, status: &TicketStatus) -> Verdict {
    if cib::ticket_state(local, ticket).is_ok_and(|s| s.granted) {
        return Verdict::Holder;
    }
    if let Some(v) = crate::lazy::waiting(local, ticket, status) {
        return Verdict::Lazy(v);
    }
    if !has_rsc_ticket(local, ticket) {
        return Verdict::Missing;
    }
    let Some(received) = &status.received else {
        return Verdict::Origin;
    };
    let applied = Ownership::read(local, ticket).ok().and_then(|o| o.applied_digest);
    if applied.as_deref() == Some(received.digest.as_str()) {
        Verdict::Current(received.clone())
    } else {
        Verdict::Stale {
            received: received.clone(),
            applied,
        }
    }
}

/// `cib-subscriber gate`: decides for `ticket` from the CIB and the state
/// in `state_dir` and, when a lazy copy waits ([`crate::lazy::waiting`]:
/// the verdict is [`Verdict::Lazy`], or [`Verdict::Holder`] right after an
/// election), writes it to the CIB first. Returns whether the site may
/// acquire the ticket and the line that says why.
///
/// # Errors
///
/// When the CIB or the state cannot be read.
pub fn acquire(cib: &Cib, state_dir: &Path, ticket: &str) -> anyhow::Result<(bool, String)> {
    let (_, local) = crate::apply::read_local(cib)?;
    let status = crate::state::load(state_dir, ticket)?;
    let verdict = decide(&local, ticket, &status);
    let waiting = match &verdict {
        Verdict::Lazy(v) => Some(v.clone()),
        Verdict::Holder => crate::lazy::waiting(&local, ticket, &status),
        _ => None,
    };
    let Some(lazy) = waiting else {
        return Ok((verdict.allows(), verdict.to_string()));
    };
    let started = std::time::Instant::now();
    match crate::lazy::materialize(cib, state_dir, ticket, &lazy) {
        Ok(m) => {
            let mut line = format!(
                "allowed: the copy kept lazily (version {}, {}) was written to the CIB in {} ms",
                lazy.version.as_deref().unwrap_or("?"),
                lazy.digest,
                started.elapsed().as_millis()
            );
            for w in &m.warnings {
                line += &format!("; note: {w}");
            }
            Ok((true, line))
        }
        Err(e) => Ok((false, format!("refused: the copy kept lazily could not be written to the CIB: {e:#}"))),
    }
}

/// Whether the daemon's state says this site's copy is current: it never
/// received a version, or the version last received is the one applied or
/// the one kept lazily. What [`crate::booth`] publishes to booth.
#[must_use]
pub fn replica_is_current(status: &TicketStatus) -> bool {
    match (&status.received, &status.applied) {
        (None, _) => true,
        (Some(r), _) if status.lazy.as_ref().is_some_and(|l| l.digest == r.digest) => true,
        (Some(r), Some(a)) => r.digest == a.digest,
        (Some(_), None) => false,
    }
}

/// Whether no publisher of the ticket has had an open stream to this site
/// for `after` or longer at `now` (the state's peers, by when their
/// streams last went down): a site cut off cannot know which changes it
/// missed. False while any stream is open or no peer is recorded.
#[must_use]
pub fn source_silent(status: &TicketStatus, after: Duration, now: Timestamp) -> bool {
    if status.peers.is_empty() || status.peers.values().any(|p| p.streaming) {
        return false;
    }
    let last = status.peers.values().map(|p| p.since).max().unwrap_or(now);
    now.0.saturating_sub(last.0) >= after.as_secs()
}

/// Whether the configuration holds an `rsc_ticket` for `ticket`.
fn has_rsc_ticket(local: &Element, ticket: &str) -> bool {
    local
        .child("configuration")
        .and_then(|c| c.child("constraints"))
        .is_some_and(|c| c.children.iter().any(|e| e.name == "rsc_ticket" && e.attr("ticket") == Some(ticket)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Timestamp;
    use cib_transforms::xml::parse;

    fn cib(granted: bool, rsc_ticket: bool, applied: Option<&str>) -> Element {
        let cons = if rsc_ticket {
            r#"<rsc_ticket id="app-T" rsc="app" ticket="T" loss-policy="stop"/>"#
        } else {
            ""
        };
        let record = applied.map_or(String::new(), |d| {
            format!(
                r#"<cluster_property_set id="cib-replicator-T"><nvpair id="r-d" name="applied-digest" value="{d}"/></cluster_property_set>"#
            )
        });
        parse(&format!(
            r#"<cib epoch="1" num_updates="0" admin_epoch="0"><configuration><crm_config>{record}</crm_config><nodes/>
            <resources><primitive id="app" class="ocf" provider="pacemaker" type="Dummy"/></resources>
            <constraints>{cons}</constraints></configuration>
            <status><tickets><ticket_state id="T" granted="{granted}"/></tickets></status></cib>"#
        ))
        .unwrap()
    }

    fn received(digest: &str) -> TicketStatus {
        TicketStatus {
            received: Some(VersionSeen {
                digest: digest.into(),
                version: Some("0.7.1".into()),
                term: Some(3),
                at: Timestamp(0),
            }),
            ..TicketStatus::default()
        }
    }

    #[test]
    fn the_holder_renews_whatever_its_state() {
        let v = decide(&cib(true, true, None), "T", &received("sha256:new"));
        assert_eq!(v, Verdict::Holder);
        assert!(v.allows());
    }

    #[test]
    fn no_rsc_ticket_means_no_copy() {
        let v = decide(&cib(false, false, None), "T", &TicketStatus::default());
        assert_eq!(v, Verdict::Missing);
        assert!(!v.allows());
        assert!(v.to_string().contains("no rsc_ticket"), "{v}");
    }

    #[test]
    fn a_site_that_never_received_a_version_is_the_origin() {
        let v = decide(&cib(false, true, None), "T", &TicketStatus::default());
        assert_eq!(v, Verdict::Origin);
        assert!(v.allows());
    }

    #[test]
    fn the_copy_is_current_when_the_received_digest_is_applied() {
        let v = decide(&cib(false, true, Some("sha256:aa")), "T", &received("sha256:aa"));
        assert!(matches!(v, Verdict::Current(_)), "{v:?}");
        assert!(v.allows());
    }

    #[test]
    fn a_received_version_not_applied_is_stale() {
        for applied in [None, Some("sha256:old")] {
            let v = decide(&cib(false, true, applied), "T", &received("sha256:new"));
            assert!(!v.allows(), "{v}");
            let text = v.to_string();
            assert!(text.contains("stale") && text.contains("0.7.1 (term 3)") && text.contains("sha256:new"), "{text}");
        }
    }

    #[test]
    fn the_state_alone_tells_a_current_copy_from_a_stale_one() {
        let mut s = TicketStatus::default();
        assert!(replica_is_current(&s));
        s = received("sha256:aa");
        assert!(!replica_is_current(&s));
        s.applied = s.received.clone();
        assert!(replica_is_current(&s));
        s.received.as_mut().unwrap().digest = "sha256:bb".into();
        assert!(!replica_is_current(&s));
    }

    #[test]
    fn a_current_lazy_copy_allows_without_a_copy_in_the_cib_and_a_stale_one_refuses() {
        let mut s = received("sha256:aa");
        s.lazy = s.received.clone();
        let v = decide(&cib(false, false, None), "T", &s);
        assert!(matches!(v, Verdict::Lazy(_)) && v.allows(), "{v:?}");
        assert!(v.to_string().contains("kept lazily is current"), "{v}");
        assert!(replica_is_current(&s));
        // Written already: an ordinary current copy.
        assert!(matches!(decide(&cib(false, true, Some("sha256:aa")), "T", &s), Verdict::Current(_)));
        // A newer version received and not kept: stale.
        s.received.as_mut().unwrap().digest = "sha256:bb".into();
        assert!(!replica_is_current(&s));
        assert!(!decide(&cib(false, true, Some("sha256:aa")), "T", &s).allows());
        assert_eq!(decide(&cib(false, false, None), "T", &s), Verdict::Missing);
    }

    #[test]
    fn a_site_is_silent_once_no_stream_was_open_for_the_bound() {
        use crate::state::PeerStatus;
        let peer = |streaming, since| PeerStatus {
            streaming,
            since: Timestamp(since),
            site: None,
            error: None,
        };
        let after = Duration::from_secs(20);
        let mut s = TicketStatus::default();
        assert!(!source_silent(&s, after, Timestamp(1000)));
        s.peers.insert("https://a:1".into(), peer(false, 900));
        s.peers.insert("https://b:1".into(), peer(true, 900));
        assert!(!source_silent(&s, after, Timestamp(1000)));
        s.peers.insert("https://b:1".into(), peer(false, 990));
        assert!(!source_silent(&s, after, Timestamp(1000)));
        assert!(source_silent(&s, after, Timestamp(1010)));
    }

    #[test]
    fn another_tickets_rsc_ticket_is_not_a_copy() {
        let v = decide(&cib(false, true, None), "U", &TicketStatus::default());
        assert_eq!(v, Verdict::Missing);
    }
}
