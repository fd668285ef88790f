//! What the publisher publishes per ticket, and the channels that carry it
//! from the CIB watcher to the server.
//!
//! [`views`] turns the text of a CIB into one [`TicketView`] per configured
//! ticket: the published document while this site holds the ticket granted
//! (and not standby), otherwise why not. It is pure apart from the clock-free
//! parsing and scoping, so it is tested without a server.
//!
//! [`Channels`] holds one `tokio::sync::watch` sender per ticket. A new view
//! is sent only when it differs from the current one in what a subscriber can
//! observe — the published [entity tag](cib_net::protocol::entity_tag)
//! (digest and term) or the grant state — so a CIB change outside the scope
//! (status updates, other resources) wakes no stream. It also keeps the
//! last [`HISTORY_LEN`] versions of each ticket with the time they were
//! published ([`Channels::history`]): how far behind a site is follows from
//! it (`crate::fleet`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use tokio::sync::watch;

use cib_net::protocol::{entity_tag, EVENT_SCOPE};
use cib_net::sse::{self, SseError};
use cib_transforms::cib::{self, ticket_state};
use cib_transforms::scope;
use cib_transforms::xml::{self, Element};

use crate::metrics::Metrics;

/// One published version of a ticket's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The ticket.
    pub ticket: String,
    /// The published document (`Scope::to_document().to_xml()`, UTF-8).
    pub document: Bytes,
    /// `sha256:<hex>` of the canonical content.
    pub digest: String,
    /// CIB version (`admin_epoch.epoch.num_updates`) the scope was cut from.
    pub version: String,
    /// Grant term at this site, if the CIB records one.
    pub term: Option<u64>,
    /// Unquoted entity tag, also the SSE event id ([`entity_tag`]).
    pub etag: String,
    /// The document framed as one SSE `scope` event, shared by every stream.
    pub frame: Bytes,
}

impl Published {
    /// Builds a publication: computes its entity tag and frames the event.
    ///
    /// A carriage return in the document (possible only in text content;
    /// attribute values are already escaped) is written as `&#13;`, which
    /// parses back to the same character and survives SSE framing.
    ///
    /// # Errors
    ///
    /// [`SseError`] if the document contains NUL (no XML document does).
    pub fn new(ticket: &str, document: String, digest: String, version: String, term: Option<u64>) -> Result<Published, SseError> {
        let document = if document.contains('\r') {
            document.replace('\r', "&#13;")
        } else {
            document
        };
        let etag = entity_tag(&digest, term);
        let frame = sse::frame(EVENT_SCOPE, &etag, &document)?;
        Ok(Published {
            ticket: ticket.to_owned(),
            document: Bytes::from(document),
            digest,
            version,
            term,
            etag,
            frame: Bytes::from(frame),
        })
    }

    /// The document as text.
    #[must_use]
    pub fn document_str(&self) -> &str {
        // Built from a String in `new`; never modified.
        std::str::from_utf8(&self.document).unwrap_or_default()
    }
}

/// The state of one ticket as the server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketView {
    /// The CIB has not been read successfully yet (reason for the log).
    Unavailable(String),
    /// This site does not hold the ticket (not granted, or granted but
    /// standby).
    NotGranted {
        /// Granted but in standby.
        standby: bool,
    },
    /// Granted here, but its scope cannot be computed or its grant term
    /// cannot be read (reason for the log; not sent to clients).
    Failed(String),
    /// Granted here: this is served.
    Granted(Arc<Published>),
}

impl TicketView {
    /// Whether a subscriber could tell `self` and `other` apart.
    #[must_use]
    pub fn observably_equal(&self, other: &TicketView) -> bool {
        match (self, other) {
            (TicketView::Granted(a), TicketView::Granted(b)) => a.etag == b.etag,
            (TicketView::NotGranted { standby: a }, TicketView::NotGranted { standby: b }) => a == b,
            (TicketView::Unavailable(_), TicketView::Unavailable(_)) | (TicketView::Failed(_), TicketView::Failed(_)) => true,
            _ => false,
        }
    }

    /// Whether the ticket is served.
    #[must_use]
    pub fn is_granted(&self) -> bool {
        matches!(self, TicketView::Granted(_))
    }
}

/// The grant term of `ticket` in a parsed CIB: booth's `term` if its
/// `ticket_state` has one, else `last-granted`; `None` when it has neither
/// (a ticket granted with `crm_ticket` and never by booth may have none).
///
/// # Errors
///
/// [`cib_transforms::Error::BadTerm`] when the value is not a canonical
/// unsigned decimal: publishing such a ticket as having no term would let
/// subscribers accept an older grant's configuration, so it is not
/// published at all.
pub fn grant_term(cib: &Element, ticket: &str) -> Result<Option<u64>, cib_transforms::Error> {
    ticket_state(cib, ticket).map(|s| s.term)
}

/// Why no view could be computed for any ticket.
#[derive(Debug, thiserror::Error)]
#[error("parsing the CIB: {0}")]
pub struct CibParseError(#[from] cib_transforms::Error);

/// The view of every ticket in `tickets` from the text of a full CIB.
///
/// # Errors
///
/// [`CibParseError`] when the text is not a CIB; a ticket whose scope cannot
/// be computed is a [`TicketView::Failed`], not an error.
pub fn views(cib_text: &str, tickets: &[String], metrics: &Metrics) -> Result<Vec<(String, TicketView)>, CibParseError> {
    views_of(&xml::parse(cib_text)?, tickets, metrics)
}

/// [`views`] of a parsed CIB.
///
/// # Errors
///
/// [`CibParseError`] when the CIB has no configuration.
pub fn views_of(cib: &Element, tickets: &[String], metrics: &Metrics) -> Result<Vec<(String, TicketView)>, CibParseError> {
    cib::configuration(cib)?;
    Ok(tickets
        .iter()
        .map(|t| (t.clone(), view_of(cib, t, metrics)))
        .collect())
}

/// The view of one ticket in a parsed CIB. The scope is computed only while
/// the ticket is granted here.
pub fn view_of(cib: &Element, ticket: &str, metrics: &Metrics) -> TicketView {
    let granted = cib::ticket_state_element(cib, ticket).is_some_and(|s| s.attr("granted") == Some("true"));
    let standby = is_standby(cib, ticket);
    if !granted || standby {
        return TicketView::NotGranted { standby };
    }
    let term = match grant_term(cib, ticket) {
        Ok(term) => term,
        Err(e) => {
            metrics.error("term");
            return TicketView::Failed(e.to_string());
        }
    };
    metrics.computed(ticket);
    let s = match scope::scope(cib, ticket) {
        Ok(s) => s,
        Err(e) => return TicketView::Failed(e.to_string()),
    };
    let version = s.version.clone().unwrap_or_else(|| cib::version(cib));
    // The same attribute, read the same way once it is canonical.
    debug_assert_eq!(s.term, term, "the document's term and the checked one");
    match Published::new(ticket, s.to_document_xml(), s.digest, version, term) {
        Ok(p) => TicketView::Granted(Arc::new(p)),
        Err(e) => TicketView::Failed(e.to_string()),
    }
}

/// Whether `<ticket_state id=ticket standby="true">` is recorded.
/// (`cib_transforms::cib::TicketState` carries `granted` and `term` only.)
fn is_standby(cib: &Element, ticket: &str) -> bool {
    cib::ticket_state_element(cib, ticket).is_some_and(|s| s.attr("standby") == Some("true"))
}

/// Versions of a ticket remembered by [`Channels::history`].
pub const HISTORY_LEN: usize = 1024;

/// One version published, as remembered by [`Channels::history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionPublished {
    /// Its entity tag (`digest@term`).
    pub etag: String,
    /// Its CIB version.
    pub version: String,
    /// When it was published here.
    pub at: SystemTime,
}

/// One watch channel per configured ticket.
#[derive(Debug)]
pub struct Channels {
    senders: BTreeMap<String, watch::Sender<TicketView>>,
    /// The last versions published per ticket, oldest first.
    history: Mutex<BTreeMap<String, VecDeque<VersionPublished>>>,
}

impl Channels {
    /// Channels for `tickets`, each starting as [`TicketView::Unavailable`].
    #[must_use]
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(tickets: I) -> Channels {
        let senders = tickets
            .into_iter()
            .map(|t| {
                let (tx, _) = watch::channel(TicketView::Unavailable("the CIB has not been read yet".into()));
                (t.into(), tx)
            })
            .collect();
        Channels {
            senders,
            history: Mutex::default(),
        }
    }

    /// The last versions of `ticket` published (at most [`HISTORY_LEN`]),
    /// oldest first.
    #[must_use]
    pub fn history(&self, ticket: &str) -> Vec<VersionPublished> {
        // A poisoned lock only means a panic mid-push; the deque is whole.
        let history = self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        history.get(ticket).map(|h| h.iter().cloned().collect()).unwrap_or_default()
    }

    /// The configured tickets.
    pub fn tickets(&self) -> impl Iterator<Item = &str> {
        self.senders.keys().map(String::as_str)
    }

    /// A receiver for `ticket`'s views (`None` if not configured).
    #[must_use]
    pub fn subscribe(&self, ticket: &str) -> Option<watch::Receiver<TicketView>> {
        self.senders.get(ticket).map(watch::Sender::subscribe)
    }

    /// The current view of `ticket`.
    #[must_use]
    pub fn current(&self, ticket: &str) -> Option<TicketView> {
        self.senders.get(ticket).map(|s| s.borrow().clone())
    }

    /// Publishes `view` for `ticket` if a subscriber could tell it from the
    /// current one; returns whether it was published. Logs and records
    /// metrics for what changed.
    pub fn publish(&self, ticket: &str, view: TicketView, metrics: &Metrics) -> bool {
        let Some(tx) = self.senders.get(ticket) else {
            return false;
        };
        let changed = tx.send_if_modified(|current| {
            if current.observably_equal(&view) {
                // Keep the newest reason text without waking anyone.
                if matches!(view, TicketView::Failed(_) | TicketView::Unavailable(_)) {
                    current.clone_from(&view);
                }
                return false;
            }
            *current = view.clone();
            true
        });
        if changed {
            metrics.granted(ticket, view.is_granted());
            match &view {
                TicketView::Granted(p) => {
                    metrics.published(ticket, &p.version, &p.digest, p.term);
                    let mut history = self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let h = history.entry(ticket.to_owned()).or_default();
                    if h.len() == HISTORY_LEN {
                        h.pop_front();
                    }
                    h.push_back(VersionPublished {
                        etag: p.etag.clone(),
                        version: p.version.clone(),
                        at: SystemTime::now(),
                    });
                    drop(history);
                    tracing::info!(ticket, version = %p.version, digest = %p.digest, term = ?p.term, "publishing new version");
                }
                TicketView::NotGranted { standby } => {
                    tracing::info!(ticket, standby, "ticket not granted at this site: not serving it");
                }
                TicketView::Failed(reason) => {
                    tracing::error!(ticket, %reason, "ticket granted here but its scope cannot be computed or its grant term not read: not serving it");
                }
                TicketView::Unavailable(reason) => {
                    tracing::warn!(ticket, %reason, "CIB unavailable: not serving the ticket");
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIB: &str = r#"<cib admin_epoch="0" epoch="7" num_updates="3">
  <configuration>
    <crm_config/>
    <nodes/>
    <resources>
      <primitive id="web" class="ocf" provider="heartbeat" type="Dummy"/>
      <primitive id="other" class="ocf" provider="heartbeat" type="Dummy"/>
    </resources>
    <constraints>
      <rsc_ticket id="web-needs-geo" rsc="web" ticket="geo" loss-policy="stop"/>
    </constraints>
  </configuration>
  <status>
    <tickets>
      STATE
    </tickets>
  </status>
</cib>"#;

    fn cib(state: &str) -> String {
        CIB.replace("STATE", state)
    }

    fn view(state: &str, ticket: &str) -> TicketView {
        let m = Metrics::new();
        let mut v = views(&cib(state), &[ticket.to_owned()], &m).unwrap();
        v.remove(0).1
    }

    #[test]
    fn granted_ticket_is_published_with_version_and_term() {
        let v = view(r#"<ticket_state id="geo" granted="true" last-granted="1700000000"/>"#, "geo");
        let TicketView::Granted(p) = v else { panic!("{v:?}") };
        assert_eq!(p.version, "0.7.3");
        assert_eq!(p.term, Some(1_700_000_000));
        assert!(p.digest.starts_with("sha256:"));
        assert_eq!(p.etag, format!("{}@1700000000", p.digest));
        assert!(p.document_str().contains(r#"replicator-ticket="geo""#));
        assert!(p.document_str().contains(r#"id="web""#));
        assert!(!p.document_str().contains(r#"id="other""#));
        assert!(std::str::from_utf8(&p.frame).unwrap().starts_with(&format!("event: scope\nid: {}\ndata: <configuration", p.etag)));
    }

    #[test]
    fn booth_term_wins_over_last_granted() {
        let v = view(r#"<ticket_state id="geo" granted="true" last-granted="1700000000" term="12"/>"#, "geo");
        let TicketView::Granted(p) = v else { panic!("{v:?}") };
        assert_eq!(p.term, Some(12));
    }

    #[test]
    fn no_term_at_all_is_published_without_one() {
        let v = view(r#"<ticket_state id="geo" granted="true"/>"#, "geo");
        let TicketView::Granted(p) = v else { panic!("{v:?}") };
        assert_eq!(p.term, None);
        assert_eq!(p.etag, p.digest);
        assert!(!p.document_str().contains("replicator-term"));
        let v = view(r#"<ticket_state id="geo" granted="true" term="0"/>"#, "geo");
        let TicketView::Granted(p) = v else { panic!("{v:?}") };
        assert_eq!(p.term, Some(0));
    }

    #[test]
    fn a_term_that_is_not_a_canonical_decimal_is_not_published() {
        for (attrs, attr, value) in [
            (r#"term="+5""#, "term", "+5"),
            (r#"term="abc" last-granted="1700000000""#, "term", "abc"),
            (r#"term="007""#, "term", "007"),
            (r#"term="""#, "term", ""),
            (r#"term=" 5""#, "term", " 5"),
            (r#"term="-1""#, "term", "-1"),
            (r#"term="18446744073709551616""#, "term", "18446744073709551616"),
            (r#"last-granted="1.7e9""#, "last-granted", "1.7e9"),
        ] {
            let m = Metrics::new();
            let text = cib(&format!(r#"<ticket_state id="geo" granted="true" {attrs}/>"#));
            let v = views(&text, &["geo".to_owned()], &m).unwrap().remove(0).1;
            let TicketView::Failed(reason) = v else { panic!("{attrs}: {v:?}") };
            let expected = cib_transforms::Error::BadTerm {
                ticket: "geo".into(),
                attr: attr.into(),
                value: value.into(),
            };
            assert_eq!(reason, expected.to_string());
            assert!(reason.contains("ticket `geo`") && reason.contains(&format!("{attr}=\"{value}\"")), "{reason}");
            assert!(m.encode().contains(r#"cib_publisher_errors_total{kind="term"} 1"#), "{attrs}");
        }
        // Not granted here: nothing is published, and the term is not read.
        assert_eq!(
            view(r#"<ticket_state id="geo" granted="false" term="x"/>"#, "geo"),
            TicketView::NotGranted { standby: false }
        );
    }

    #[test]
    fn revoked_standby_and_absent_are_not_granted() {
        assert_eq!(
            view(r#"<ticket_state id="geo" granted="false" last-granted="1"/>"#, "geo"),
            TicketView::NotGranted { standby: false }
        );
        assert_eq!(
            view(r#"<ticket_state id="geo" granted="true" standby="true"/>"#, "geo"),
            TicketView::NotGranted { standby: true }
        );
        assert_eq!(view("", "geo"), TicketView::NotGranted { standby: false });
    }

    #[test]
    fn granted_without_constraints_fails() {
        let v = view(r#"<ticket_state id="other" granted="true"/>"#, "other");
        assert!(matches!(v, TicketView::Failed(_)), "{v:?}");
    }

    #[test]
    fn carriage_returns_are_escaped() {
        let p = Published::new("geo", "<c>a\r\nb</c>\n".into(), "sha256:aa".into(), "0.1.0".into(), None).unwrap();
        assert_eq!(p.document_str(), "<c>a&#13;\nb</c>\n");
        assert_eq!(p.etag, "sha256:aa");
    }

    #[test]
    fn not_a_cib_is_an_error() {
        let m = Metrics::new();
        assert!(views("<nope/>", &["geo".into()], &m).is_err());
        assert!(views("<!DOCTYPE x><cib/>", &["geo".into()], &m).is_err());
    }

    #[test]
    fn channels_publish_only_observable_changes() {
        let m = Metrics::new();
        let ch = Channels::new(["geo"]);
        let mut rx = ch.subscribe("geo").unwrap();
        rx.borrow_and_update();
        let granted = |version: &str, term| {
            TicketView::Granted(Arc::new(Published::new("geo", "<configuration/>".into(), "sha256:aa".into(), version.into(), term).unwrap()))
        };
        assert!(ch.publish("geo", granted("0.1.0", Some(1)), &m));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        // Same digest and term, another CIB version: nothing to tell.
        assert!(!ch.publish("geo", granted("0.1.5", Some(1)), &m));
        assert!(!rx.has_changed().unwrap());
        // A new term with the same content is a new version.
        assert!(ch.publish("geo", granted("0.1.5", Some(2)), &m));
        assert!(ch.publish("geo", TicketView::NotGranted { standby: false }, &m));
        assert!(!ch.publish("geo", TicketView::NotGranted { standby: false }, &m));
        assert!(!ch.publish("nope", TicketView::NotGranted { standby: false }, &m));
        assert!(ch.subscribe("nope").is_none());
    }
}
