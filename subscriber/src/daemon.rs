//! The daemon: for each ticket, follow every peer and keep the local copy
//! current ([`run`]).
//!
//! Per ticket there is one *coordinator* task and one follower task per
//! peer ([`crate::follow`]). Followers forward events; the coordinator alone
//! decides, one document at a time, so two peers never race into the CIB:
//!
//! 1. **Verify** the document: hardened parser, ticket, SHA-256 digest of
//!    the content (`Scope::from_document`), and that the event id (the
//!    entity tag `digest@term`) matches it. A document that fails is
//!    refused, logged and recorded as the last error; nothing else happens.
//! 2. **Grant term**: accepted only if its `replicator-term` is at least the
//!    newest term seen for the ticket (kept in the state file and in the
//!    CIB's ownership record, so it survives restarts; it never goes back).
//!    The peer whose document is accepted becomes the *source*. A document
//!    from an older term — a site that lost the ticket and still serves it,
//!    or a replay — is refused and logged.
//! 3. **Local grant**: if this site holds the ticket granted, nothing is
//!    done (logged at info: this site is the origin).
//! 4. **Transform** with the site's steps
//!    ([`crate::pipeline::transform_counted`]). A rule that matched nothing
//!    is logged as a warning and counted; under `strict_rules` the document
//!    is refused.
//! 5. **Apply** (`auto`): exactly what `replicate-now` does
//!    ([`crate::apply::replicate_now`]): merge, `crm_verify`, one
//!    version-checked write. **Stage** (`manual`): if the merge would change
//!    anything, write the transformed document to
//!    `<state_dir>/<ticket>/pending.xml` (atomically) for `diff` and
//!    `replicate-now` without `--from`. **Keep** (`lazy`): every check of
//!    `auto` short of the patch, then `<state_dir>/<ticket>/lazy.xml`
//!    ([`crate::lazy`]); the gate writes it to the CIB on acquire.
//!
//! Any failure leaves the CIB as it was (the patch is all or nothing) and is
//! recorded in the state file ([`crate::state`]); failures after step 3 are
//! retried with backoff (1 s doubling to a minute) until a newer document
//! arrives — a conflict resolved or a CIB that became writable again heals
//! without an event. Refusals (steps 1 and 2) are not retried, nor a
//! document refused because a rule matched nothing under `strict_rules`
//! (step 4: the same rules would refuse it again).
//!
//! A peer that refuses this site or that this site must not trust (a TLS
//! handshake refused either way, a `403`) is logged as a warning and
//! recorded as the ticket's last error, whichever peer it is; it is retried
//! with backoff like any peer that is down.
//!
//! When a stream opens, and after each document applied, found up to date,
//! staged or refused, the publisher it came from is told what this site
//! now holds
//! ([`crate::ack`]), in a task of its own: acknowledging never delays or
//! affects applying.
//!
//! Events that queue up while a document is being applied are coalesced:
//! only the newest of each peer is processed (every version is a whole
//! snapshot).
//!
//! On shutdown the followers stop at once; a coordinator finishes the
//! document it is applying and keeps the one it applied last for drift
//! reports, bounded by the grace period.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::Url;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use cib_net::protocol::{entity_tag, MAX_DOCUMENT_BYTES};
use cib_net::sse;
use cib_tools::cib::Cib;
use cib_transforms::merge::{self, Options, Ownership, Report};
use cib_transforms::scope::Scope;
use cib_transforms::{cib, xml};

use crate::ack::{self, AckSwitch};
use crate::apply;
use crate::config::{Config, Mode};
use crate::kept::KeptCib;
use crate::metrics::Metrics;
use crate::error::Error;
use crate::follow::{follow_peer, Backoff, DownKind, Peer, PeerMsg, INITIAL_BACKOFF, PROBE_TIMEOUT};
use crate::pipeline::{self, Step};
use crate::state::{self, Note, PeerStatus, Timestamp, TicketStatus, VersionSeen};

/// First pause before a failed document is tried again.
pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest pause between two tries of a failed document.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// Runs the daemon until `shutdown` is cancelled. `config` must have been
/// validated ([`Config::validate`]). Serves metrics on its
/// `metrics_listen`; no reload ([`run_with`] for both).
///
/// # Errors
///
/// As [`run_with`].
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = match config.metrics_addr()? {
        Some(addr) => cib_net::metrics::bind(addr).await,
        None => None,
    };
    run_with(config, RunOptions { metrics: listener, reload: None }, shutdown).await
}

/// What [`run_with`] takes besides the configuration.
#[derive(Default)]
pub struct RunOptions {
    /// Where to serve `/metrics` (plain HTTP); `None`: nowhere.
    pub metrics: Option<tokio::net::TcpListener>,
    /// How to reload, and when ([`crate::reload`]).
    pub reload: Option<crate::reload::Reload>,
}

/// Runs the daemon until `shutdown` is cancelled, serving metrics on
/// `opts.metrics` and reloading when `opts.reload` is triggered (SIGHUP):
/// the configuration, the rules and the certificates are read again and,
/// when they are valid, the tickets' tasks are restarted with them (streams
/// reconnect; a document being applied is finished first). When they are
/// not, the daemon logs why and goes on with what it had.
///
/// # Errors
///
/// Only at start-up: [`Error::Invalid`] (steps or peers, if `config` was
/// not validated), [`Error::Net`] / [`Error::Client`] (TLS files),
/// [`Error::State`] (the state directory cannot be created). Once running,
/// every failure is logged, recorded in the state files, and retried.
pub async fn run_with(mut config: Config, opts: RunOptions, shutdown: CancellationToken) -> Result<(), Error> {
    // One copy of the live CIB for the daemon's life: every ticket and the
    // metrics read through it.
    let kept = Arc::new(KeptCib::new());
    let metrics = Arc::new(Metrics::new(&config, Arc::clone(&kept)));
    let mut server = opts.metrics.map(|listener| {
        let m = Arc::clone(&metrics);
        tokio::spawn(cib_net::metrics::serve(listener, Arc::new(move || m.encode()), shutdown.clone()))
    });
    let mut generation = Generation::start(&config, &metrics, &kept, &shutdown).await?;
    loop {
        let reloaded = match &opts.reload {
            Some(reload) => tokio::select! {
                () = shutdown.cancelled() => break,
                r = reload.next(&config) => r,
            },
            None => {
                shutdown.cancelled().await;
                break;
            }
        };
        let Some(new) = reloaded else { continue };
        // The new configuration is valid and its files load: stop the
        // tickets' tasks (finishing what they apply) and start them again.
        generation.stop(config.shutdown_grace()).await;
        match Generation::start(&new, &metrics, &kept, &shutdown).await {
            Ok(g) => {
                metrics.reconfigure(&new);
                config = new;
                generation = g;
                tracing::info!("reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "reload: cannot start with the new configuration; going on with the previous one");
                generation = Generation::start(&config, &metrics, &kept, &shutdown).await?;
            }
        }
    }
    generation.stop(config.shutdown_grace()).await;
    if let Some(s) = server.take() {
        let _ = s.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The tasks of every ticket under one configuration: followers,
/// coordinators, booth attribute keepers.
struct Generation {
    tasks: JoinSet<()>,
    token: CancellationToken,
}

impl Generation {
    /// Starts every ticket's tasks; they stop when `shutdown` is cancelled
    /// or [`Generation::stop`] is called.
    async fn start(config: &Config, metrics: &Arc<Metrics>, kept: &Arc<KeptCib>, shutdown: &CancellationToken) -> Result<Generation, Error> {
        let shutdown = shutdown.child_token();
        let client = crate::fetch::stream_client(&config.tls).map_err(|e| Error::Client(format!("{e:#}")))?;
        let prober = cib_net::tls::Prober::new(&config.tls, PROBE_TIMEOUT)?;
        let cib = config.cib();
        let mut tickets = Vec::new();
        for t in &config.tickets {
            let dir = state::ticket_dir(&config.state_dir, &t.name);
            state::create_dirs(&dir).map_err(|cause| Error::State {
                what: "creating state directory",
                path: dir.clone(),
                cause,
            })?;
            tickets.push((t.clone(), t.peer_urls()?, t.steps()?));
        }
        let mut tasks = JoinSet::new();
        for (t, peers, steps) in tickets {
            let (tx, rx) = mpsc::channel(16);
            for (i, base) in peers.iter().enumerate() {
                tasks.spawn(follow_peer(
                    Peer::new(i, base, &t.name),
                    client.clone(),
                    prober.clone(),
                    tx.clone(),
                    Backoff::new(INITIAL_BACKOFF, config.reconnect_max()),
                    shutdown.clone(),
                ));
            }
            drop(tx);
            let work = Arc::new(Work {
                ticket: t.name.clone(),
                mode: t.mode,
                strict: t.strict_rules(config.strict_rules),
                steps,
                cib: cib.clone(),
                state_dir: config.state_dir.clone(),
                metrics: Arc::clone(metrics),
                client: client.clone(),
                kept: Arc::clone(kept),
            });
            if let Some(attribute) = &t.booth_attribute {
                tasks.spawn(crate::booth::keep_attribute(
                    config.state_dir.clone(),
                    t.name.clone(),
                    attribute.clone(),
                    t.stale_after(),
                    shutdown.clone(),
                ));
            }
            let coordinator = Coordinator::start(work, peers).await;
            tasks.spawn(coordinator.run(rx, shutdown.clone()));
        }
        tracing::info!(
            site = %config.site,
            tickets = ?config.tickets.iter().map(|t| format!("{} ({})", t.name, t.mode)).collect::<Vec<_>>(),
            state_dir = %config.state_dir.display(),
            "following"
        );
        Ok(Generation { tasks, token: shutdown })
    }

    /// Stops the tasks: followers at once, a coordinator after the
    /// document it is applying, bounded by `grace`.
    async fn stop(mut self, grace: Duration) {
        self.token.cancel();
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = self.tasks.join_next().await {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a task panicked");
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(open = self.tasks.len(), grace_s = grace.as_secs(), "grace period over: stopping the remaining tasks");
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// Whether a document with grant term `offered` may be accepted when the
/// newest term seen is `newest`: yes when nothing was seen, or when it is
/// not older. A document without a term is older than any term.
#[must_use]
pub fn term_acceptable(newest: Option<u64>, offered: Option<u64>) -> bool {
    match (newest, offered) {
        (None, _) => true,
        (Some(n), Some(o)) => o >= n,
        (Some(_), None) => false,
    }
}

/// Parses and verifies the document of a `scope` event for `ticket`:
/// hardened parser, ticket, digest of the content, and agreement of the
/// event id (entity tag) with the document's digest and term.
///
/// # Errors
///
/// When any of these fails; the message says which.
pub fn verify_event(ticket: &str, event: &sse::Event) -> anyhow::Result<Scope> {
    if event.data.len() > MAX_DOCUMENT_BYTES {
        anyhow::bail!("the document is larger than the limit of {MAX_DOCUMENT_BYTES} bytes");
    }
    let doc = xml::parse(&event.data).context("parsing the document")?;
    let scope = Scope::from_published(doc, Some(ticket)).context("reading the scope")?;
    if let Some(id) = &event.id {
        let expected = entity_tag(&scope.digest, scope.term);
        if *id != expected {
            anyhow::bail!("the event id {id} does not match the document ({expected}): altered or mixed up in transit?");
        }
    }
    Ok(scope)
}

/// What the blocking part needs: which CIB, which steps, where to stage.
#[derive(Debug)]
struct Work {
    ticket: String,
    mode: Mode,
    /// A rule that matches nothing refuses the document (`strict_rules`).
    strict: bool,
    steps: Vec<Step>,
    cib: Cib,
    state_dir: PathBuf,
    metrics: Arc<Metrics>,
    /// The HTTPS client of the streams, for acknowledgements.
    client: reqwest::Client,
    /// The local CIB as last read whole, shared by the tickets.
    kept: Arc<KeptCib>,
}

/// The local CIB as read for a document: its text and tree.
type LocalRead = anyhow::Result<(String, xml::Element)>;

/// What happened to an accepted document.
#[derive(Debug)]
enum Outcome {
    /// This site holds the ticket: nothing was done.
    GrantedHere,
    /// Applied to the CIB: what changed, and the scope as transformed and
    /// applied (kept for drift reports).
    Applied(Report, Box<Scope>),
    /// The CIB already had it (in manual mode: nothing to stage).
    UpToDate,
    /// Staged in `pending.xml` (manual mode).
    Staged(Report),
    /// Verified and kept in `lazy.xml`, out of the CIB (lazy mode).
    Lazy(Report),
}

impl Outcome {
    /// The conflicts left in the plan (staged in manual mode).
    fn conflicts(&self) -> usize {
        match self {
            Outcome::Staged(r) | Outcome::Applied(r, _) | Outcome::Lazy(r) => r.conflicts.len(),
            Outcome::GrantedHere | Outcome::UpToDate => 0,
        }
    }
}

impl Work {
    /// Reads the local CIB for a document (the kept copy when it is
    /// current: [`KeptCib::read`]), logged and counted.
    fn read_local(&self) -> LocalRead {
        let started = std::time::Instant::now();
        let (text, local, how) = self.kept.read(&self.cib)?;
        tracing::debug!(ticket = %self.ticket, read = how.name(), read_ms = started.elapsed().as_secs_f64() * 1000.0, "local CIB read");
        self.metrics.local_read(&self.ticket, how);
        Ok((text, local))
    }

    /// Steps 3 to 5 of the module documentation (blocking: runs Pacemaker
    /// tools and xsltproc), on `local` when the local CIB was read already
    /// ([`Work::read_local`]).
    fn process(&self, scope: Scope, local: Option<LocalRead>) -> anyhow::Result<Outcome> {
        let (text, local) = match local {
            Some(read) => read?,
            None => self.read_local()?,
        };
        if cib::ticket_state(&local, &self.ticket)?.granted {
            return Ok(Outcome::GrantedHere);
        }
        let scope = self.transform(scope)?;
        let result = match self.mode {
            // The CIB just read is the first attempt's base: the write is
            // version-checked, so a change made meanwhile is not lost.
            Mode::Auto => {
                let kept = state::load_applied(&self.state_dir, &self.ticket);
                let applied = apply::replicate_now_from(&self.cib, (text, local), &scope, Options::default(), kept.as_ref(), &mut |m| {
                    tracing::warn!(ticket = %self.ticket, "{m}");
                });
                // The document applied is kept for drift reports once the
                // outcome is recorded (`Coordinator::after_write`).
                applied.map(|a| if a.changed { Outcome::Applied(a.report, Box::new(scope)) } else { Outcome::UpToDate })
            }
            Mode::Manual => self.stage(&local, &scope),
            Mode::Lazy => crate::lazy::keep(&(text, local), &scope, &self.state_dir, &self.ticket).map(|kept| match kept {
                crate::lazy::Kept::InCib => Outcome::UpToDate,
                crate::lazy::Kept::Kept(report) => Outcome::Lazy(report),
            }),
        };
        match result {
            Err(e) if matches!(e.downcast_ref(), Some(cib_transforms::Error::TicketGrantedLocally(_))) => Ok(Outcome::GrantedHere),
            other => other,
        }
    }

    /// Step 4: the site's steps; a rule that matched nothing is logged and
    /// counted, and refuses the document under `strict_rules`.
    fn transform(&self, scope: Scope) -> anyhow::Result<Scope> {
        let t = pipeline::transform_counted(scope, &self.steps)?;
        for line in &t.log {
            match line {
                pipeline::Line::Change(text) => tracing::trace!(ticket = %self.ticket, "{text}"),
                pipeline::Line::Step(text) => tracing::debug!(ticket = %self.ticket, "{text}"),
            }
        }
        for line in &t.idle {
            tracing::warn!(ticket = %self.ticket, "{line}");
        }
        self.metrics.idle_rules(&self.ticket, t.idle.len());
        if self.strict {
            pipeline::check_strict(&t.idle)?;
        }
        Ok(t.scope)
    }

    /// Stages the transformed scope if merging it would change the CIB;
    /// removes a stale staged document otherwise.
    fn stage(&self, local: &xml::Element, scope: &Scope) -> anyhow::Result<Outcome> {
        let kept = state::load_applied(&self.state_dir, &self.ticket);
        let plan = merge::plan_with(local, scope, Options::default(), kept.as_ref())?;
        if !plan.changed {
            state::remove_pending(&self.state_dir, &self.ticket)?;
            return Ok(Outcome::UpToDate);
        }
        let path = state::pending_path(&self.state_dir, &self.ticket);
        state::write_atomic(&path, pipeline::staged_document(scope).as_bytes())?;
        Ok(Outcome::Staged(plan.report))
    }
}

/// A document accepted for processing.
#[derive(Debug, Clone)]
struct Candidate {
    peer: usize,
    scope: Scope,
}

/// A failed document waiting to be tried again.
#[derive(Debug)]
struct Retry {
    candidate: Candidate,
    at: Instant,
}

/// The task that decides for one ticket.
struct Coordinator {
    work: Arc<Work>,
    /// Base URLs of the peers, by index.
    peers: Vec<Url>,
    /// Site names the peers announced, by index.
    sites: Vec<Option<String>>,
    newest_term: Option<u64>,
    source: Option<usize>,
    retry: Option<Retry>,
    retry_backoff: Backoff,
    /// Per peer: whether it takes acknowledgements.
    acks: Vec<AckSwitch>,
    /// Replicated elements edited locally and not put back: found by the
    /// last plan of a staged version (an apply puts them back).
    drift: usize,
    /// What follows the last apply, off the next document's path: the
    /// document applied kept for drift reports, the local CIB read again
    /// ([`KeptCib::refresh`]). Waited for before the next read of the
    /// local CIB.
    refreshing: Option<tokio::task::JoinHandle<()>>,
}

impl Coordinator {
    /// Reads the newest term from the state file and the CIB's ownership
    /// record, and forgets peers no longer configured.
    async fn start(work: Arc<Work>, peers: Vec<Url>) -> Coordinator {
        let recorded = {
            let work = Arc::clone(&work);
            // Through the kept copy: the first document then plans on this
            // read instead of reading the CIB whole again.
            tokio::task::spawn_blocking(move || {
                work.kept.read(&work.cib).and_then(|(_, local, _)| Ok(Ownership::read(&local, &work.ticket)?.applied_term))
            })
            .await
        };
        let in_cib = match recorded {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                tracing::warn!(ticket = %work.ticket, error = %format!("{e:#}"), "cannot read the grant term recorded in the CIB (will retry with the first document)");
                None
            }
            Err(e) => {
                tracing::error!(ticket = %work.ticket, error = %e, "reading the CIB panicked");
                None
            }
        };
        let configured: BTreeSet<String> = peers.iter().map(peer_key).collect();
        let mut newest_term = in_cib;
        let updated = state::update(&work.state_dir, &work.ticket, |s| {
            s.peers.retain(|k, _| configured.contains(k));
            newest_term = newest_term.max(s.term);
            s.term = newest_term;
        });
        if let Err(e) = updated {
            tracing::error!(ticket = %work.ticket, error = %e, "cannot write the state file");
        }
        tracing::info!(ticket = %work.ticket, mode = %work.mode, newest_term = ?newest_term, peers = ?configured, "following ticket");
        Coordinator {
            sites: vec![None; peers.len()],
            acks: vec![AckSwitch::default(); peers.len()],
            drift: 0,
            refreshing: None,
            work,
            peers,
            newest_term,
            source: None,
            retry: None,
            retry_backoff: Backoff::new(RETRY_INITIAL, RETRY_MAX),
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<PeerMsg>, shutdown: CancellationToken) {
        loop {
            let retry_at = self.retry.as_ref().map(|r| r.at);
            tokio::select! {
                () = shutdown.cancelled() => break,
                msg = rx.recv() => {
                    let Some(first) = msg else { break };
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    for msg in coalesce(batch) {
                        self.handle(msg).await;
                    }
                }
                () = sleep_until(retry_at), if retry_at.is_some() => {
                    if let Some(r) = self.retry.take() {
                        tracing::info!(ticket = %self.work.ticket, "trying the failed document again");
                        self.process(r.candidate, None).await;
                    }
                }
            }
        }
        if let Some(after_write) = self.refreshing.take() {
            // The document last applied is kept for drift reports before
            // the daemon stops (within the grace period, as the rest).
            let _ = after_write.await;
        }
        tracing::debug!(ticket = %self.work.ticket, "coordinator stopped");
    }

    fn ticket(&self) -> &str {
        &self.work.ticket
    }

    fn url(&self, peer: usize) -> String {
        self.peers.get(peer).map(peer_key).unwrap_or_default()
    }

    fn site(&self, peer: usize) -> String {
        self.sites.get(peer).cloned().flatten().unwrap_or_else(|| "?".into())
    }

    /// Tells `peer` what this site now holds, with `error` (the last
    /// document's); in a task of its own, never waited for.
    fn acknowledge(&self, peer: usize, error: Option<&str>) {
        let (Some(base), Some(switch)) = (self.peers.get(peer), self.acks.get(peer)) else {
            return;
        };
        match state::load(&self.work.state_dir, self.ticket()) {
            Ok(status) => ack::send(&self.work.client, base, self.ticket(), &ack::ack_of(&status, self.drift, error), switch),
            Err(e) => tracing::debug!(ticket = %self.ticket(), error = %e, "no acknowledgement: the state cannot be read"),
        }
    }

    /// After a write, in the background and in this order: keeps the
    /// document applied (`applied`, transformed for this site) for drift
    /// reports ([`state::save_applied`]), then reads the local CIB whole
    /// again so that the next document finds the kept copy current
    /// ([`crate::kept`]). Both come after the outcome is recorded: until
    /// the document is kept, the ownership record's manifest tells the one
    /// kept before from the one applied (docs/ownership.md).
    fn after_write(&mut self, applied: Box<Scope>) {
        let work = Arc::clone(&self.work);
        self.refreshing = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = state::save_applied(&work.state_dir, &work.ticket, &applied) {
                tracing::warn!(ticket = %work.ticket, error = %e, "the document applied is not kept for drift reports");
            }
            drop(applied);
            let started = std::time::Instant::now();
            match work.kept.refresh(&work.cib) {
                Ok(()) => tracing::debug!(ticket = %work.ticket, read_ms = started.elapsed().as_secs_f64() * 1000.0, "local CIB read again after the write"),
                Err(e) => tracing::debug!(ticket = %work.ticket, error = %format!("{e:#}"), "cannot read the local CIB again after the write; the next document reads it whole"),
            }
        }));
    }

    /// Starts reading the local CIB for a document while it is verified,
    /// once what followed the last write is done ([`Coordinator::after_write`]).
    /// The write stays guarded by the version read, so a configuration
    /// changed meanwhile is refused and read again.
    fn read_ahead(&mut self) -> tokio::task::JoinHandle<LocalRead> {
        let after_write = self.refreshing.take();
        let work = Arc::clone(&self.work);
        tokio::spawn(async move {
            if let Some(after_write) = after_write {
                // One that failed (or panicked) left no copy: the read is whole.
                let _ = after_write.await;
            }
            tokio::task::spawn_blocking(move || work.read_local())
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("reading the local CIB panicked: {e}")))
        })
    }

    /// A read started by [`Coordinator::read_ahead`] for a document then
    /// refused: the next document waits for it (and for what it waited
    /// for) as for what follows a write.
    fn read_unused(&mut self, read: tokio::task::JoinHandle<LocalRead>) {
        self.refreshing = Some(tokio::spawn(async move {
            let _ = read.await;
        }));
    }

    fn record(&self, change: impl FnOnce(&mut TicketStatus)) {
        if let Err(e) = state::update(&self.work.state_dir, &self.work.ticket, change) {
            tracing::error!(ticket = %self.ticket(), error = %e, "cannot write the state file");
        }
    }

    async fn handle(&mut self, msg: PeerMsg) {
        match msg {
            PeerMsg::Streaming { peer, site } => {
                if site.is_some() {
                    self.sites[peer].clone_from(&site);
                }
                let url = self.url(peer);
                if let Some(switch) = self.acks.get(peer) {
                    switch.on();
                }
                tracing::info!(ticket = %self.ticket(), peer = %url, site = %self.site(peer), "stream open");
                // A publisher that restarted knows nothing of this site, and
                // a resumed stream sends no event until the next version.
                let failure = state::load(&self.work.state_dir, self.ticket()).ok().and_then(|s| s.last_failure).map(|n| n.text);
                self.acknowledge(peer, failure.as_deref());
                self.record(|s| {
                    s.peers.insert(
                        url,
                        PeerStatus {
                            streaming: true,
                            since: Timestamp::now(),
                            site,
                            error: None,
                        },
                    );
                });
            }
            PeerMsg::Down { peer, error, kind } => self.down(peer, error, kind),
            PeerMsg::Event { peer, site, event } => {
                if site.is_some() {
                    self.sites[peer] = site;
                }
                self.event(peer, event).await;
            }
        }
    }

    /// Records that `peer`'s stream is down. A refusal (TLS, `403`) is an
    /// error of this ticket whichever peer it comes from; an unavailable
    /// peer is one only when it was the source.
    fn down(&mut self, peer: usize, error: String, kind: DownKind) {
        let url = self.url(peer);
        let is_source = self.source == Some(peer);
        let current = state::load(&self.work.state_dir, self.ticket()).unwrap_or_default();
        let before = current.peers.get(&url);
        let was_streaming = before.is_some_and(|p| p.streaming);
        let same = before.is_some_and(|p| !p.streaming && p.error.as_deref() == Some(error.as_str()));
        if same {
            tracing::debug!(ticket = %self.ticket(), peer = %url, %error, "still unavailable");
            return;
        }
        let refused = kind == DownKind::Refused;
        if refused {
            tracing::warn!(
                ticket = %self.ticket(), peer = %url, %error,
                "the publisher and this site refuse each other: check the certificates, the CA and the publisher's allow-list; retrying"
            );
        } else if is_source {
            tracing::warn!(ticket = %self.ticket(), peer = %url, site = %self.site(peer), %error, "the source publisher is unavailable; keeping the last good copy");
        } else if was_streaming {
            tracing::info!(ticket = %self.ticket(), peer = %url, %error, "stream closed");
        } else {
            tracing::info!(ticket = %self.ticket(), peer = %url, %error, "peer unavailable");
        }
        let site = self.sites[peer].clone();
        self.record(|s| {
            let since = match s.peers.get(&url) {
                Some(p) if !p.streaming => p.since,
                _ => Timestamp::now(),
            };
            if refused {
                s.last_error = Some(Note::now(format!("connection to {url} refused: {error}")));
            } else if is_source {
                s.last_error = Some(Note::now(format!("source {url} unavailable: {error}")));
            }
            s.peers.insert(
                url,
                PeerStatus {
                    streaming: false,
                    since,
                    site,
                    error: Some(error),
                },
            );
        });
    }

    /// A document from `peer`: processed if [`Coordinator::accept`]
    /// takes it, on the local CIB read meanwhile.
    async fn event(&mut self, peer: usize, event: sse::Event) {
        let local = self.read_ahead();
        match self.accept(peer, event).await {
            Some(scope) => self.process(Candidate { peer, scope }, Some(local)).await,
            None => self.read_unused(local),
        }
    }

    /// Steps 1 and 2: the document verified and its term accepted, then
    /// recorded as received; a refusal is logged, recorded and
    /// acknowledged, and gives `None`.
    async fn accept(&mut self, peer: usize, event: sse::Event) -> Option<Scope> {
        let url = self.url(peer);
        let site = self.site(peer);
        let ticket = self.work.ticket.clone();
        let verified = tokio::task::spawn_blocking(move || verify_event(&ticket, &event)).await;
        let scope = match verified {
            Ok(Ok(scope)) => scope,
            Ok(Err(e)) => {
                let e = format!("{e:#}");
                tracing::warn!(ticket = %self.ticket(), peer = %url, %site, error = %e, "document refused; nothing changed");
                self.work.metrics.failure(self.ticket(), "refused");
                let text = format!("document from {site} ({url}) refused: {e}");
                self.record(|s| {
                    let note = Note::now(text.clone());
                    s.last_failure = Some(note.clone());
                    s.last_error = Some(note);
                });
                self.acknowledge(peer, Some(&text));
                return None;
            }
            Err(e) => {
                tracing::error!(ticket = %self.ticket(), error = %e, "verifying a document panicked");
                return None;
            }
        };
        if !term_acceptable(self.newest_term, scope.term) {
            let offered = scope.term.map_or("none".into(), |t| t.to_string());
            let newest = self.newest_term.unwrap_or_default();
            tracing::warn!(
                ticket = %self.ticket(), peer = %url, %site, %offered, newest,
                "document refused: its grant term is older than the newest seen (a site that lost the ticket, or a replay); nothing changed"
            );
            self.work.metrics.failure(self.ticket(), "stale_term");
            let text = format!("document from {site} ({url}) refused: grant term {offered} is older than term {newest} already seen");
            self.record(|s| s.last_error = Some(Note::now(text.clone())));
            self.acknowledge(peer, Some(&text));
            return None;
        }
        if self.source != Some(peer) {
            tracing::info!(ticket = %self.ticket(), peer = %url, %site, term = ?scope.term, "following this publisher");
        }
        self.source = Some(peer);
        self.newest_term = self.newest_term.max(scope.term);
        let newest = self.newest_term;
        let seen = seen(&scope);
        let source_site = self.sites[peer].clone();
        self.record(|s| {
            s.source_site = source_site;
            s.source_url = Some(url);
            s.term = newest.max(s.term);
            s.received = Some(seen);
        });
        self.retry = None;
        self.retry_backoff.reset();
        Some(scope)
    }

    /// Processes `candidate` (steps 3 to 5), on the local CIB `local` has
    /// read when given ([`Coordinator::read_ahead`]).
    async fn process(&mut self, candidate: Candidate, local: Option<tokio::task::JoinHandle<LocalRead>>) {
        let local = match local {
            Some(read) => Some(read.await.unwrap_or_else(|e| Err(anyhow::anyhow!("reading the local CIB failed: {e}")))),
            None => {
                if let Some(after_write) = self.refreshing.take() {
                    let _ = after_write.await;
                }
                None
            }
        };
        let work = Arc::clone(&self.work);
        let scope = candidate.scope.clone();
        let outcome = tokio::task::spawn_blocking(move || work.process(scope, local)).await;
        let ticket = self.work.ticket.clone();
        let site = self.site(candidate.peer);
        let digest = candidate.scope.digest.clone();
        let seen = seen(&candidate.scope);
        let auto = self.work.mode == Mode::Auto;
        if let Ok(result) = &outcome {
            self.work.metrics.outcome(&ticket, result.as_ref().map(Outcome::conflicts));
        }
        let peer = candidate.peer;
        let error = match outcome {
            Ok(Ok(Outcome::GrantedHere)) => {
                tracing::info!(%ticket, %site, "the ticket is granted at this site: nothing applied");
                self.record(|s| s.last_result = Some(Note::now("not applied: the ticket is granted at this site")));
                None
            }
            Ok(Ok(Outcome::Applied(report, applied))) => {
                // Replication won: the elements edited here are put back.
                self.drift = 0;
                tracing::info!(%ticket, %site, %digest, version = ?seen.version, term = ?seen.term, changes = %counts(&report), "applied");
                self.record(|s| {
                    s.applied = Some(seen);
                    s.pending = None;
                    s.last_success = Some(Timestamp::now());
                    s.last_failure = None;
                    s.last_result = Some(Note::now(format!("applied: {}", counts(&report))));
                });
                self.after_write(applied);
                None
            }
            Ok(Ok(Outcome::UpToDate)) => {
                tracing::info!(%ticket, %site, %digest, "up to date");
                self.drift = 0;
                self.record(|s| {
                    if s.applied.as_ref().is_none_or(|a| a.digest != seen.digest || a.term != seen.term) {
                        s.applied = Some(seen);
                    }
                    s.pending = None;
                    s.lazy = None;
                    s.last_success = Some(Timestamp::now());
                    s.last_failure = None;
                    s.last_result = Some(Note::now("up to date"));
                });
                None
            }
            Ok(Ok(Outcome::Staged(report))) => {
                tracing::info!(
                    %ticket, %site, %digest, changes = %counts(&report),
                    "staged; review with `cib-subscriber diff --ticket {ticket}`, apply with `cib-subscriber replicate-now --ticket {ticket}`"
                );
                self.drift = report.drift.len();
                let conflicts = (!report.conflicts.is_empty())
                    .then(|| format!("staged, but replicate-now will refuse unless --adopt: conflicts {}", report.conflicts.join(", ")));
                self.record(|s| {
                    s.pending = Some(seen);
                    s.last_success = Some(Timestamp::now());
                    s.last_failure = None;
                    s.last_result = Some(Note::now(format!("staged: {}", counts(&report))));
                    if let Some(c) = &conflicts {
                        s.last_error = Some(Note::now(c.clone()));
                    }
                });
                conflicts
            }
            Ok(Ok(Outcome::Lazy(report))) => {
                tracing::info!(%ticket, %site, %digest, version = ?seen.version, changes = %counts(&report), "verified and kept lazily, out of the CIB");
                self.record(|s| {
                    s.lazy = Some(seen);
                    s.last_success = Some(Timestamp::now());
                    s.last_failure = None;
                    s.last_result = Some(Note::now(format!("kept lazily: {}", counts(&report))));
                });
                None
            }
            Ok(Err(e)) => {
                let stale = matches!(e.downcast_ref(), Some(cib_transforms::Error::StaleTerm { .. }));
                // The same rules refuse the same document: no retry (a
                // reload with other rules, or a new version, tries again).
                let strict = e.downcast_ref::<pipeline::IdleRules>().is_some();
                let text = format!("{e:#}");
                let what = if auto { "not applied" } else if self.work.mode == Mode::Lazy { "not kept" } else { "not staged" };
                if stale {
                    tracing::warn!(%ticket, %site, error = %text, "{what}: older than what the CIB records");
                } else if strict {
                    tracing::error!(%ticket, %site, error = %text, "{what}: strict_rules; the CIB is unchanged");
                } else {
                    let pause = self.retry_backoff.next_delay();
                    tracing::error!(%ticket, %site, error = %text, retry_in_s = pause.as_secs_f32(), "{what}; the CIB is unchanged");
                    self.retry = Some(Retry {
                        candidate,
                        at: Instant::now() + pause,
                    });
                }
                let text = format!("{what}: {text}");
                self.record(|s| {
                    let note = Note::now(text.clone());
                    s.last_failure = Some(note.clone());
                    s.last_error = Some(note);
                });
                Some(text)
            }
            Err(e) => {
                tracing::error!(%ticket, error = %e, "processing a document panicked");
                let text = format!("internal error: {e}");
                self.record(|s| {
                    let note = Note::now(text.clone());
                    s.last_failure = Some(note.clone());
                    s.last_error = Some(note);
                });
                Some(text)
            }
        };
        self.acknowledge(peer, error.as_deref());
    }
}

/// Drops every `Event` followed in `batch` by a newer `Event` of the same
/// peer; keeps everything else in order.
fn coalesce(batch: Vec<PeerMsg>) -> Vec<PeerMsg> {
    let mut later: BTreeSet<usize> = BTreeSet::new();
    let mut out: Vec<PeerMsg> = Vec::with_capacity(batch.len());
    for msg in batch.into_iter().rev() {
        if let PeerMsg::Event { peer, .. } = &msg {
            if !later.insert(*peer) {
                continue;
            }
        }
        out.push(msg);
    }
    out.reverse();
    out
}

fn seen(scope: &Scope) -> VersionSeen {
    VersionSeen {
        digest: scope.digest.clone(),
        version: scope.version.clone(),
        term: scope.term,
        at: Timestamp::now(),
    }
}

/// `added 2, changed 1, removed 0` (plus drift and conflicts when any).
fn counts(r: &Report) -> String {
    let mut out = format!("added {}, changed {}, removed {}", r.added.len(), r.changed.len(), r.removed.len());
    if !r.adopted.is_empty() {
        out += &format!(", adopted {} ({})", r.adopted.len(), r.adopted.join(", "));
    }
    if !r.drift.is_empty() {
        out += &format!(", drift {} ({})", r.drift.len(), r.drift.join(", "));
    }
    if !r.conflicts.is_empty() {
        out += &format!(", conflicts {} ({})", r.conflicts.len(), r.conflicts.join(", "));
    }
    out
}

/// The key of a peer in the state file: its base URL without the trailing
/// slash.
fn peer_key(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_never_go_back() {
        assert!(term_acceptable(None, None));
        assert!(term_acceptable(None, Some(3)));
        assert!(term_acceptable(Some(3), Some(3)));
        assert!(term_acceptable(Some(3), Some(4)));
        assert!(!term_acceptable(Some(3), Some(2)));
        assert!(!term_acceptable(Some(3), None));
    }

    fn event(peer: usize, id: &str) -> PeerMsg {
        PeerMsg::Event {
            peer,
            site: None,
            event: sse::Event {
                event: "scope".into(),
                id: Some(id.into()),
                data: String::new(),
            },
        }
    }

    #[test]
    fn coalescing_keeps_the_newest_event_of_each_peer() {
        let down = PeerMsg::Down {
            peer: 0,
            error: "x".into(),
            kind: DownKind::Unavailable,
        };
        let out = coalesce(vec![event(0, "a1"), event(1, "c1"), down.clone(), event(0, "a2"), event(0, "a3")]);
        assert_eq!(out, vec![event(1, "c1"), down, event(0, "a3")]);
    }

    #[test]
    fn events_are_verified_against_their_id() {
        let mut config = xml::parse(
            r#"<configuration><resources><primitive id="p" class="ocf" provider="heartbeat" type="Dummy"/></resources><constraints><rsc_ticket id="t" rsc="p" ticket="geo"/></constraints></configuration>"#,
        )
        .unwrap();
        cib_transforms::canonical::canonicalize(&mut config);
        let scope = Scope {
            ticket: "geo".into(),
            digest: cib_transforms::canonical::digest(&config),
            config,
            version: Some("0.1.0".into()),
            term: Some(5),
            left_out: vec![],
        };
        let data = scope.to_document().to_xml();
        let ev = |id: &str, data: &str| sse::Event {
            event: "scope".into(),
            id: Some(id.into()),
            data: data.into(),
        };
        let good = entity_tag(&scope.digest, Some(5));
        assert_eq!(verify_event("geo", &ev(&good, &data)).unwrap(), scope);
        let err = verify_event("geo", &ev(&entity_tag(&scope.digest, Some(6)), &data)).unwrap_err();
        assert!(format!("{err:#}").contains("does not match"), "{err:#}");
        let altered = data.replace("Dummy", "Stateful");
        let err = verify_event("geo", &ev(&good, &altered)).unwrap_err();
        assert!(format!("{err:#}").contains("digest mismatch"), "{err:#}");
        let err = verify_event("other", &ev(&good, &data)).unwrap_err();
        assert!(format!("{err:#}").contains("expected `other`"), "{err:#}");
    }
}
