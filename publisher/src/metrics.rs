//! Prometheus metrics of the publisher, served at `/metrics` in the
//! OpenMetrics text format (prometheus-client).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `cib_publisher_scope_info` | gauge (1) | `ticket`, `version`, `digest`, `term` | the version currently published; one series per ticket, replaced on change |
//! | `cib_publisher_ticket_granted` | gauge | `ticket` | 1 while this site holds the ticket granted (not standby) |
//! | `cib_publisher_ticket_term` | gauge | `ticket` | grant term of the published version (0: none) |
//! | `cib_publisher_versions_published_total` | counter | `ticket` | new versions published |
//! | `cib_publisher_scope_computations_total` | counter | `ticket` | scopes computed |
//! | `cib_publisher_cib_reads_total` | counter | `trigger` | whole reads of the CIB, by what made the publisher read: `start`, `file` (an event of the CIB file, and its version changed), `recheck` (the periodic re-check found a new version: no file event announced it first) |
//! | `cib_publisher_open_streams` | gauge | `ticket` | event streams open now |
//! | `cib_publisher_errors_total` | counter | `kind` | errors: `cib_query`, `cib_parse`, `scope`, `tls_handshake`, `client_identity`, `forbidden`, `too_many_streams`, `term` (a grant term that is not a number: not published), `watch`, `ack` (an acknowledgement refused: too large or malformed) |
//! | `cib_publisher_open_connections` | gauge | | TCP connections held now (handshaking or authenticated) |
//! | `cib_publisher_connections_refused_total` | counter | `reason` | connections closed as soon as accepted: `max_connections`, `max_connections_per_peer` |
//! | `cib_publisher_connections_timed_out_total` | counter | `phase` | connections closed by a timeout: `handshake` (TLS handshake not finished in time), `idle` (no request and no stream) |
//! | `cib_publisher_site_behind_seconds` | gauge | `ticket`, `site` | seconds since this publisher moved past the version the site acknowledged (0 in step; at least the age of the oldest version remembered when unknown); only for tickets published here, computed at each scrape (`crate::fleet`) |
//! | `cib_publisher_site_in_step` | gauge | `ticket`, `site` | 1 when the site acknowledged the current version with no error, nothing staged and no drift, else 0 |
//! | `cib_publisher_certificate_expiry_seconds` | gauge | `certificate` | until this site's (`local`) and the CA's (`ca`) certificate expire, read at each scrape (the daemon only: [`Metrics::watch_certificates`]) |
//!
//! Served on the mTLS port, and on `metrics_listen` (plain HTTP, loopback
//! by default, no client certificate: [`cib_net::metrics::serve`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use cib_net::metrics::CertificateExpiry;
use cib_net::tls::TlsPaths;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label set `{ticket}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TicketLabel {
    /// The ticket.
    pub ticket: String,
}

/// Label set of `cib_publisher_scope_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    /// The ticket.
    pub ticket: String,
    /// CIB version the scope was cut from.
    pub version: String,
    /// Scope digest.
    pub digest: String,
    /// Grant term (empty when none).
    pub term: String,
}

/// Label set `{ticket, site}` of the per-site gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    /// The ticket.
    pub ticket: String,
    /// The site's certificate name.
    pub site: String,
}

/// Label set `{kind}` of the error counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// Error kind (see the module table).
    pub kind: &'static str,
}

/// Label set `{trigger}` of the CIB reads counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabel {
    /// What made the publisher read (see the module table).
    pub trigger: &'static str,
}

/// Label set `{reason}` of the refused-connections counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Which cap refused the connection (see the module table).
    pub reason: &'static str,
}

/// Label set `{phase}` of the timed-out-connections counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// When the connection timed out (see the module table).
    pub phase: &'static str,
}

/// Every metric of the publisher, with its registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    scope_info: Family<ScopeLabels, Gauge>,
    current_info: Mutex<HashMap<String, ScopeLabels>>,
    granted: Family<TicketLabel, Gauge>,
    term: Family<TicketLabel, Gauge>,
    published: Family<TicketLabel, Counter>,
    computations: Family<TicketLabel, Counter>,
    cib_reads: Family<TriggerLabel, Counter>,
    open_streams: Family<TicketLabel, Gauge>,
    errors: Family<ErrorLabel, Counter>,
    open_connections: Gauge,
    refused: Family<ReasonLabel, Counter>,
    timed_out: Family<PhaseLabel, Counter>,
    site_behind: Family<SiteLabels, Gauge<f64, AtomicU64>>,
    site_in_step: Family<SiteLabels, Gauge>,
    expiry: Option<Arc<CertificateExpiry>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered, all at zero.
    #[must_use]
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cib_publisher");
        let scope_info = Family::<ScopeLabels, Gauge>::default();
        let granted = Family::<TicketLabel, Gauge>::default();
        let term = Family::<TicketLabel, Gauge>::default();
        let published = Family::<TicketLabel, Counter>::default();
        let computations = Family::<TicketLabel, Counter>::default();
        let cib_reads = Family::<TriggerLabel, Counter>::default();
        let open_streams = Family::<TicketLabel, Gauge>::default();
        let errors = Family::<ErrorLabel, Counter>::default();
        let open_connections = Gauge::default();
        let refused = Family::<ReasonLabel, Counter>::default();
        let timed_out = Family::<PhaseLabel, Counter>::default();
        let site_behind = Family::<SiteLabels, Gauge<f64, AtomicU64>>::default();
        let site_in_step = Family::<SiteLabels, Gauge>::default();
        registry.register("scope_info", "The scope version currently published (value 1)", scope_info.clone());
        registry.register("ticket_granted", "1 while this site holds the ticket granted and not standby", granted.clone());
        registry.register("ticket_term", "Grant term of the published version (0 when none)", term.clone());
        registry.register("versions_published", "New scope versions published", published.clone());
        registry.register("scope_computations", "Scopes computed from the CIB", computations.clone());
        registry.register("cib_reads", "Whole reads of the CIB, by what made the publisher read", cib_reads.clone());
        registry.register("open_streams", "Event streams open now", open_streams.clone());
        registry.register("errors", "Errors by kind", errors.clone());
        registry.register("open_connections", "TCP connections held now", open_connections.clone());
        registry.register("connections_refused", "Connections closed as soon as accepted, by the cap that refused them", refused.clone());
        registry.register("connections_timed_out", "Connections closed by the handshake or the idle timeout", timed_out.clone());
        registry.register(
            "site_behind_seconds",
            "Seconds since this publisher moved past the version the site acknowledged (0: in step)",
            site_behind.clone(),
        );
        registry.register("site_in_step", "1 when the site holds the current version without error, staged version or drift", site_in_step.clone());
        Metrics {
            registry,
            scope_info,
            current_info: Mutex::new(HashMap::new()),
            granted,
            term,
            published,
            computations,
            cib_reads,
            open_streams,
            errors,
            open_connections,
            refused,
            timed_out,
            site_behind,
            site_in_step,
            expiry: None,
        }
    }

    /// Also reports when the certificates of `paths` expire (read at each
    /// encoding); returns the gauge, to follow a reload.
    pub fn watch_certificates(&mut self, paths: TlsPaths) -> Arc<CertificateExpiry> {
        let expiry = CertificateExpiry::register(&mut self.registry, paths);
        self.expiry = Some(Arc::clone(&expiry));
        expiry
    }

    /// Encodes every metric in the OpenMetrics text format.
    #[must_use]
    pub fn encode(&self) -> String {
        if let Some(e) = &self.expiry {
            e.refresh();
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records that a new version of `ticket` is published.
    pub fn published(&self, ticket: &str, version: &str, digest: &str, term: Option<u64>) {
        let labels = ScopeLabels {
            ticket: ticket.to_owned(),
            version: version.to_owned(),
            digest: digest.to_owned(),
            term: term.map(|t| t.to_string()).unwrap_or_default(),
        };
        self.replace_info(ticket, Some(labels));
        self.term
            .get_or_create(&label(ticket))
            .set(term.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)));
        self.published.get_or_create(&label(ticket)).inc();
    }

    /// Records whether `ticket` is granted here; when it is not, the info
    /// series of the ticket is removed (nothing is published).
    pub fn granted(&self, ticket: &str, granted: bool) {
        self.granted.get_or_create(&label(ticket)).set(i64::from(granted));
        if !granted {
            self.replace_info(ticket, None);
        }
    }

    /// Counts one whole read of the CIB, made for `trigger`.
    pub fn cib_read(&self, trigger: &'static str) {
        self.cib_reads.get_or_create(&TriggerLabel { trigger }).inc();
    }

    /// Counts one scope computation.
    pub fn computed(&self, ticket: &str) {
        self.computations.get_or_create(&label(ticket)).inc();
    }

    /// Replaces the per-site gauges with those of `report`: one series per
    /// site of each ticket published here (`behind_seconds` only when
    /// known).
    pub fn set_sites(&self, report: &crate::fleet::FleetReport) {
        self.site_behind.clear();
        self.site_in_step.clear();
        for t in report.tickets.iter().filter(|t| t.published.is_some()) {
            for s in &t.sites {
                let labels = SiteLabels {
                    ticket: t.ticket.clone(),
                    site: s.site.clone(),
                };
                self.site_in_step.get_or_create(&labels).set(i64::from(s.in_step));
                if let Some(b) = s.behind_seconds {
                    #[allow(clippy::cast_precision_loss)] // seconds fit f64
                    self.site_behind.get_or_create(&labels).set(b as f64);
                }
            }
        }
    }

    /// Counts one error of `kind`.
    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&ErrorLabel { kind }).inc();
    }

    /// Counts a connection refused by a cap (`max_connections` or
    /// `max_connections_per_peer`).
    pub fn connection_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a connection closed by a timeout (`handshake` or `idle`).
    pub fn connection_timed_out(&self, phase: &'static str) {
        self.timed_out.get_or_create(&PhaseLabel { phase }).inc();
    }

    /// Counts a connection as open until the returned guard is dropped.
    #[must_use]
    pub fn connection_opened(&self) -> GaugeGuard {
        self.open_connections.inc();
        GaugeGuard {
            gauge: self.open_connections.clone(),
        }
    }

    /// Counts a stream as open until the returned guard is dropped.
    #[must_use]
    pub fn stream_opened(&self, ticket: &str) -> GaugeGuard {
        let gauge = self.open_streams.get_or_create(&label(ticket)).clone();
        gauge.inc();
        GaugeGuard { gauge }
    }

    fn replace_info(&self, ticket: &str, new: Option<ScopeLabels>) {
        // A poisoned lock only means another thread panicked mid-update of
        // this map; its content is still a valid map.
        let mut current = self.current_info.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = current.remove(ticket) {
            self.scope_info.remove(&old);
        }
        if let Some(new) = new {
            self.scope_info.get_or_create(&new).set(1);
            current.insert(ticket.to_owned(), new);
        }
    }
}

/// Decrements an open-streams or open-connections gauge when dropped.
#[derive(Debug)]
pub struct GaugeGuard {
    gauge: Gauge,
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

fn label(ticket: &str) -> TicketLabel {
    TicketLabel {
        ticket: ticket.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_series_is_replaced_not_accumulated() {
        let m = Metrics::new();
        m.granted("geo", true);
        m.published("geo", "0.1.0", "sha256:aa", Some(5));
        m.published("geo", "0.2.0", "sha256:bb", Some(5));
        let text = m.encode();
        assert!(!text.contains("sha256:aa"), "{text}");
        assert!(text.contains(r#"cib_publisher_scope_info{ticket="geo",version="0.2.0",digest="sha256:bb",term="5"} 1"#), "{text}");
        assert!(text.contains(r#"cib_publisher_versions_published_total{ticket="geo"} 2"#), "{text}");
        assert!(text.contains(r#"cib_publisher_ticket_term{ticket="geo"} 5"#), "{text}");
        m.granted("geo", false);
        let text = m.encode();
        assert!(!text.contains("sha256:bb"), "{text}");
        assert!(text.contains(r#"cib_publisher_ticket_granted{ticket="geo"} 0"#), "{text}");
    }

    #[test]
    fn stream_guard_counts() {
        let m = Metrics::new();
        let a = m.stream_opened("geo");
        let b = m.stream_opened("geo");
        assert!(m.encode().contains(r#"cib_publisher_open_streams{ticket="geo"} 2"#));
        drop(a);
        drop(b);
        assert!(m.encode().contains(r#"cib_publisher_open_streams{ticket="geo"} 0"#));
        m.error("forbidden");
        assert!(m.encode().contains(r#"cib_publisher_errors_total{kind="forbidden"} 1"#));
        let c = m.connection_opened();
        assert!(m.encode().contains("cib_publisher_open_connections 1"));
        drop(c);
        assert!(m.encode().contains("cib_publisher_open_connections 0"));
        m.connection_refused("max_connections_per_peer");
        m.connection_timed_out("idle");
        let text = m.encode();
        assert!(text.contains(r#"cib_publisher_connections_refused_total{reason="max_connections_per_peer"} 1"#), "{text}");
        assert!(text.contains(r#"cib_publisher_connections_timed_out_total{phase="idle"} 1"#), "{text}");
    }
}
