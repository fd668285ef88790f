//! Prometheus metrics of the subscriber, served on `metrics_listen`
//! (plain HTTP, loopback by default: [`cib_net::metrics`]) in the
//! OpenMetrics text format.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `cib_subscriber_seconds_since_received` | gauge | `ticket` | since the last document was accepted from a publisher (no series before the first) |
//! | `cib_subscriber_seconds_since_success` | gauge | `ticket` | since a document was last applied, found up to date or staged (no series before the first) |
//! | `cib_subscriber_pending` | gauge | `ticket` | 1 while a version is staged (manual mode) |
//! | `cib_subscriber_drift` | gauge | `ticket` | replicated elements edited or deleted locally |
//! | `cib_subscriber_owned_elements` | gauge | `ticket` | elements of the ownership record |
//! | `cib_subscriber_applied_term` | gauge | `ticket` | grant term of the version applied (0: none) |
//! | `cib_subscriber_in_step` | gauge | `ticket` | 1 when `status` says in step |
//! | `cib_subscriber_conflicts` | gauge | `ticket` | conflicts of the last document planned |
//! | `cib_subscriber_apply_failures_total` | counter | `ticket`, `reason` | documents refused or not applied: `refused` (verification), `stale_term`, `conflict`, `strict_rules`, `other` |
//! | `cib_subscriber_idle_rules_total` | counter | `ticket` | rules that matched nothing |
//! | `cib_subscriber_local_cib_reads_total` | counter | `ticket`, `how` | documents processed, by how the local CIB was read: `whole`, or the `kept` copy ([`crate::kept`]) |
//! | `cib_subscriber_certificate_expiry_seconds` | gauge | `certificate` | until this site's (`local`) and the CA's (`ca`) certificate expire |
//!
//! The gauges but `conflicts` are read at each scrape from what `status`
//! reads (the state files and the CIB), so they cannot disagree with it.
//! A live CIB is read through the daemon's kept copy ([`crate::kept`]): one
//! small query per scrape while the configuration is unchanged, instead of
//! the whole CIB (seconds at 10,000 primitives).

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use cib_net::metrics::CertificateExpiry;
use cib_tools::cib::Cib;

use crate::config::Config;
use crate::kept::KeptCib;
use crate::state::Timestamp;
use crate::status::{ElementState, Outcome, Report};

/// Label set `{ticket}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TicketLabel {
    /// The ticket.
    pub ticket: String,
}

/// Label set `{ticket, reason}` of the failure counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The ticket.
    pub ticket: String,
    /// Why (see the module table).
    pub reason: &'static str,
}

/// Label set `{ticket, how}` of the local-read counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadLabels {
    /// The ticket.
    pub ticket: String,
    /// `whole` or `kept` ([`crate::kept::Read`]).
    pub how: &'static str,
}

/// What the scrape reads: the configured tickets, state directory and CIB.
#[derive(Debug, Clone)]
struct Sources {
    tickets: Vec<String>,
    state_dir: PathBuf,
    cib: Cib,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of the subscriber, with its registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sources: RwLock<Sources>,
    expiry: Arc<CertificateExpiry>,
    since_received: Family<TicketLabel, FloatGauge>,
    since_success: Family<TicketLabel, FloatGauge>,
    pending: Family<TicketLabel, Gauge>,
    drift: Family<TicketLabel, Gauge>,
    owned: Family<TicketLabel, Gauge>,
    applied_term: Family<TicketLabel, Gauge>,
    in_step: Family<TicketLabel, Gauge>,
    conflicts: Family<TicketLabel, Gauge>,
    failures: Family<FailureLabels, Counter>,
    idle_rules: Family<TicketLabel, Counter>,
    local_reads: Family<ReadLabels, Counter>,
    /// The daemon's copy of the live CIB, which a scrape reads through.
    kept: Arc<KeptCib>,
}

impl Metrics {
    /// A registry with every metric registered, reading the tickets, state
    /// and CIB of `config`; the CIB through `kept`, the daemon's copy.
    #[must_use]
    pub fn new(config: &Config, kept: Arc<KeptCib>) -> Metrics {
        let mut registry = Registry::with_prefix("cib_subscriber");
        let expiry = CertificateExpiry::register(&mut registry, config.tls.clone());
        let m = Metrics {
            sources: RwLock::new(Sources::of(config)),
            expiry,
            since_received: Family::default(),
            since_success: Family::default(),
            pending: Family::default(),
            drift: Family::default(),
            owned: Family::default(),
            applied_term: Family::default(),
            in_step: Family::default(),
            conflicts: Family::default(),
            failures: Family::default(),
            idle_rules: Family::default(),
            local_reads: Family::default(),
            kept,
            registry: Registry::default(),
        };
        registry.register("seconds_since_received", "Seconds since the last document was accepted", m.since_received.clone());
        registry.register("seconds_since_success", "Seconds since a document was last applied, found up to date or staged", m.since_success.clone());
        registry.register("pending", "1 while a version is staged (manual mode)", m.pending.clone());
        registry.register("drift", "Replicated elements edited or deleted locally", m.drift.clone());
        registry.register("owned_elements", "Elements of the ownership record", m.owned.clone());
        registry.register("applied_term", "Grant term of the version applied (0: none)", m.applied_term.clone());
        registry.register("in_step", "1 when the ticket's copy is in step", m.in_step.clone());
        registry.register("conflicts", "Conflicts of the last document planned", m.conflicts.clone());
        registry.register("apply_failures", "Documents refused or not applied, by reason", m.failures.clone());
        registry.register("idle_rules", "Rules that matched nothing", m.idle_rules.clone());
        registry.register("local_cib_reads", "Documents processed, by how the local CIB was read (whole, or the kept copy)", m.local_reads.clone());
        Metrics { registry, ..m }
    }

    /// Follows a reloaded configuration (tickets, state, CIB, certificates).
    pub fn reconfigure(&self, config: &Config) {
        *self.sources.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Sources::of(config);
        self.expiry.set_paths(config.tls.clone());
    }

    /// Reads the state, the CIB and the certificates, then encodes every
    /// metric (blocking: may run `cibadmin`).
    #[must_use]
    pub fn encode(&self) -> String {
        self.refresh();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a document of `ticket` refused or not applied.
    pub fn failure(&self, ticket: &str, reason: &'static str) {
        self.failures
            .get_or_create(&FailureLabels {
                ticket: ticket.to_owned(),
                reason,
            })
            .inc();
    }

    /// Counts `n` rules of `ticket` that matched nothing.
    pub fn idle_rules(&self, ticket: &str, n: usize) {
        self.idle_rules.get_or_create(&label(ticket)).inc_by(n as u64);
    }

    /// Counts a document of `ticket` processed from the local CIB read
    /// `how`.
    pub fn local_read(&self, ticket: &str, how: crate::kept::Read) {
        self.local_reads
            .get_or_create(&ReadLabels {
                ticket: ticket.to_owned(),
                how: how.name(),
            })
            .inc();
    }

    /// The conflicts of the last document of `ticket` planned.
    pub fn conflicts(&self, ticket: &str, n: usize) {
        self.conflicts.get_or_create(&label(ticket)).set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Records what became of a document of `ticket`: the conflicts of its
    /// plan, or the failure (counted by reason).
    pub fn outcome(&self, ticket: &str, result: Result<usize, &anyhow::Error>) {
        match result {
            Ok(conflicts) => self.conflicts(ticket, conflicts),
            Err(e) => {
                let reason = match e.chain().find_map(|c| c.downcast_ref::<cib_transforms::Error>()) {
                    Some(cib_transforms::Error::Conflict { ids }) => {
                        self.conflicts(ticket, ids.len());
                        "conflict"
                    }
                    Some(cib_transforms::Error::StaleTerm { .. }) => "stale_term",
                    _ if e.downcast_ref::<crate::pipeline::IdleRules>().is_some() => "strict_rules",
                    _ => "other",
                };
                self.failure(ticket, reason);
            }
        }
    }

    fn refresh(&self) {
        self.expiry.refresh();
        let sources = self.sources.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let local = match self.kept.read(&sources.cib) {
            Ok((_, local, _)) => local,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "metrics: the CIB cannot be read");
                return;
            }
        };
        let report = Report::build(&local, &sources.tickets, None, &sources.state_dir);
        let now = Timestamp::now();
        for t in &report.tickets {
            let l = label(&t.ticket);
            let set_age = |family: &Family<TicketLabel, FloatGauge>, at: Option<Timestamp>| match at {
                #[allow(clippy::cast_precision_loss)] // seconds fit f64
                Some(at) => {
                    family.get_or_create(&l).set(now.0.saturating_sub(at.0) as f64);
                }
                None => {
                    family.remove(&l);
                }
            };
            let daemon = t.daemon.as_ref();
            set_age(&self.since_received, daemon.and_then(|d| d.received.as_ref()).map(|v| v.at));
            set_age(&self.since_success, daemon.and_then(|d| d.last_success));
            self.pending.get_or_create(&l).set(i64::from(daemon.is_some_and(|d| d.pending.is_some())));
            self.in_step.get_or_create(&l).set(i64::from(t.result == Outcome::InStep));
            if let Some(r) = &t.replica {
                let drift = r.elements.iter().filter(|e| e.state != ElementState::Ok).count();
                self.drift.get_or_create(&l).set(i64::try_from(drift).unwrap_or(i64::MAX));
                self.owned.get_or_create(&l).set(i64::try_from(r.elements.len()).unwrap_or(i64::MAX));
                self.applied_term
                    .get_or_create(&l)
                    .set(r.grant_term.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)));
            }
        }
    }
}

impl Sources {
    fn of(config: &Config) -> Sources {
        Sources {
            tickets: config.tickets.iter().map(|t| t.name.clone()).collect(),
            state_dir: config.state_dir.clone(),
            cib: config.cib(),
        }
    }
}

fn label(ticket: &str) -> TicketLabel {
    TicketLabel { ticket: ticket.to_owned() }
}
