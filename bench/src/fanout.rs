//! One publisher, many watchers (`cib-bench fanout`).
//!
//! Starts the release `cib-publisher serve` on a generated CIB (site A of
//! [`crate::sites`]) and opens `streams` event streams to it, each from its
//! own HTTPS client — the client the subscriber daemon uses
//! (`cib_subscriber::fetch::stream_client`: mutual TLS, HTTP/2 by ALPN), so
//! each stream is one TCP connection and one TLS session, as each subscribing
//! site would have. Once every stream has received the current version, each
//! round makes one change at site A with `cibadmin --modify` and times, per
//! client, from just before `cibadmin` starts to the moment the client has
//! parsed the whole event of the new version.
//!
//! The publisher's memory (`VmRSS` and its peak `VmHWM` from
//! `/proc/PID/status`) is read when idle, with every stream open, and after
//! each round. The benchmark and the publisher share the machine: the
//! clients' TLS decryption and parsing compete with the publisher for the
//! same cores.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context as _};
use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use cib_net::protocol::{stream_path, EVENT_SCOPE, MAX_DOCUMENT_BYTES};
use cib_net::sse;

use crate::generate::TICKET;
use crate::sites::{self, ms, Daemon, Sites, Summary};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent event streams, one client each.
    pub streams: usize,
    /// Changes made at site A, one per round.
    pub changes: usize,
    /// Primitives in site A's CIB.
    pub primitives: usize,
    /// Streams being opened at once (TLS handshakes in flight).
    pub connect_concurrency: usize,
    /// Where the release publisher is (default: next to cib-bench).
    pub bin_dir: Option<PathBuf>,
    /// Per-client CSV output.
    pub csv: Option<PathBuf>,
    /// Keep the temporary directory (CIB, certificates, log).
    pub keep: bool,
}

/// What a client task reports.
#[derive(Debug)]
enum Msg {
    /// A `scope` event was parsed completely.
    Event {
        client: usize,
        id: Option<String>,
        bytes: usize,
        at: Instant,
        /// The HTTP version of the stream's response.
        http: reqwest::Version,
    },
    /// The stream could not be opened, broke or ended.
    Failed { client: usize, error: String },
}

/// The publisher's memory at one moment, KiB.
#[derive(Debug, Clone)]
struct Memory {
    when: String,
    rss: u64,
    hwm: u64,
}

/// One round: a change at A and its arrival at every client.
#[derive(Debug)]
struct Round {
    cibadmin: Duration,
    /// Per client, from just before `cibadmin` started to the event parsed.
    latencies: Vec<Option<Duration>>,
}

/// Runs the benchmark; returns the markdown report.
pub fn run(opts: &Options) -> anyhow::Result<String> {
    ensure!(opts.streams > 0, "--streams must be at least 1");
    ensure!(opts.changes > 0, "--changes must be at least 1");
    let bins = sites::bin_dir(opts.bin_dir.as_deref())?;
    let nofile = raise_nofile(opts.streams)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        sites::watch_signals();
        let mut sites = Sites::create(opts.primitives)?;
        allow_all_streams(&sites, opts.streams)?;
        if opts.keep {
            sites.dir.disable_cleanup(true);
            eprintln!("cib-bench: files kept in {}", sites.dir.path().display());
        }
        let load_before = sites::load_average();
        // Started here, on the thread that runs the benchmark; stopped when
        // dropped, also on error.
        let started = sites.start_publisher(&bins, "info");
        let mut publisher = sites.keep_on_error(started)?;
        let measured = measure(opts, &sites, &mut publisher).await;
        drop(publisher);
        let (memory, rounds, open_time, event_bytes, versions) = sites.keep_on_error(measured)?;
        let load_after = sites::load_average();
        if let Some(csv) = &opts.csv {
            write_csv(csv, &rounds)?;
        }
        Ok(report(
            opts,
            &sites,
            &nofile,
            &memory,
            &rounds,
            open_time,
            event_bytes,
            &versions,
            [load_before, load_after],
        ))
    })
}

/// Raises the publisher's `[limits]` to let one address and one
/// certificate (every client here is site B on 127.0.0.1) hold `streams`
/// connections and streams: the defaults are sized for a few subscriber
/// sites, not for this benchmark.
fn allow_all_streams(sites: &Sites, streams: usize) -> anyhow::Result<()> {
    let limits = format!(
        "[limits]\nmax_connections = {conns}\nmax_connections_per_peer = {conns}\nmax_streams_per_client = {streams}\n",
        conns = streams + 16
    );
    let path = &sites.publisher_toml;
    let mut text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.push_str(&limits);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The soft and hard limits on open files, raising the soft one (inherited
/// by the publisher) to what `streams` need on both ends.
fn raise_nofile(streams: usize) -> anyhow::Result<String> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let need = u64::try_from(streams)?.saturating_add(256);
    let before = getrlimit(Resource::Nofile);
    let soft = before.current.unwrap_or(u64::MAX);
    let hard = before.maximum.unwrap_or(u64::MAX);
    let show = |v: u64| {
        if v == u64::MAX {
            "unlimited".to_owned()
        } else {
            v.to_string()
        }
    };
    if soft >= need {
        return Ok(format!(
            "RLIMIT_NOFILE soft {} (enough, not raised), hard {}",
            show(soft),
            show(hard)
        ));
    }
    ensure!(
        hard >= need,
        "{streams} streams need {need} open files, and the hard limit is {hard}: raise it (ulimit -Hn) first"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(need),
            maximum: before.maximum,
        },
    )
    .context("raising RLIMIT_NOFILE")?;
    Ok(format!(
        "RLIMIT_NOFILE soft raised from {} to {need}, hard {}",
        show(soft),
        show(hard)
    ))
}

/// What [`measure`] found: memory, rounds, time to open every stream,
/// event size, and the HTTP versions the streams ran on.
type Measured = (Vec<Memory>, Vec<Round>, Duration, usize, String);

async fn measure(
    opts: &Options,
    sites: &Sites,
    publisher: &mut Daemon,
) -> anyhow::Result<Measured> {
    let mut memory = Vec::new();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss, hwm) = publisher.memory_kib()?;
    memory.push(Memory {
        when: "idle (CIB read, no client)".into(),
        rss,
        hwm,
    });

    let url = reqwest::Url::parse(&format!(
        "https://127.0.0.1:{}{}",
        sites.port,
        stream_path(TICKET)
    ))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(opts.connect_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let open_start = Instant::now();
    for client in 0..opts.streams {
        let http = cib_subscriber::fetch::stream_client(&sites.tls_b)?;
        tasks.spawn(watch(
            client,
            http,
            url.clone(),
            tx.clone(),
            Arc::clone(&gate),
            stop.clone(),
        ));
    }
    drop(tx);
    let _stop_all = stop.clone().drop_guard();

    // Every client's first event: the current version.
    let mut last: Vec<Option<String>> = vec![None; opts.streams];
    let mut opened = 0;
    let mut event_bytes = 0;
    let mut versions: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while opened < opts.streams {
        match next(&mut rx, deadline, publisher).await? {
            Msg::Event {
                client,
                id,
                bytes,
                http,
                ..
            } => {
                if last[client].is_none() {
                    opened += 1;
                    *versions.entry(format!("{http:?}")).or_default() += 1;
                }
                last[client] = Some(id.unwrap_or_default());
                event_bytes = bytes;
            }
            Msg::Failed { client, error } => bail!("stream {client}: {error} ({opened} open)"),
        }
    }
    let open_time = open_start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, hwm) = publisher.memory_kib()?;
    memory.push(Memory {
        when: format!("{} streams open", opts.streams),
        rss,
        hwm,
    });

    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut rounds = Vec::new();
    for r in 0..opts.changes {
        let value = format!("/srv/site-a/fanout/{nonce}/{r:05}");
        let cib_a = sites.cib_a.clone();
        let t0 = Instant::now();
        let cibadmin =
            tokio::task::spawn_blocking(move || sites::cibadmin_modify(&cib_a, &value)).await??;
        let mut latencies: Vec<Option<Duration>> = vec![None; opts.streams];
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while got < opts.streams {
            match next(&mut rx, deadline, publisher).await? {
                Msg::Event { client, id, at, .. } => {
                    let id = id.unwrap_or_default();
                    if last[client].as_deref() != Some(id.as_str()) && latencies[client].is_none() {
                        latencies[client] = Some(at.saturating_duration_since(t0));
                        last[client] = Some(id);
                        got += 1;
                    }
                }
                Msg::Failed { client, error } => bail!("stream {client}: {error} (round {r})"),
            }
        }
        rounds.push(Round {
            cibadmin,
            latencies,
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss, hwm) = publisher.memory_kib()?;
        memory.push(Memory {
            when: format!("after change {} (all {} received it)", r + 1, opts.streams),
            rss,
            hwm,
        });
    }
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    let versions = versions
        .iter()
        .map(|(v, n)| format!("{v}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((memory, rounds, open_time, event_bytes, versions))
}

/// The next message from the clients; fails on timeout, interruption or a
/// dead publisher.
async fn next(
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    deadline: tokio::time::Instant,
    publisher: &mut Daemon,
) -> anyhow::Result<Msg> {
    loop {
        sites::check_interrupted()?;
        publisher.check_running()?;
        let step = tokio::time::Instant::now() + Duration::from_millis(200);
        tokio::select! {
            m = rx.recv() => return m.context("every client task ended"),
            () = tokio::time::sleep_until(step.min(deadline)) => {
                if tokio::time::Instant::now() >= deadline {
                    bail!("timed out waiting for the streams");
                }
            }
        }
    }
}

/// One client: opens the stream (at most `gate` at once), reports every
/// `scope` event until `stop`.
async fn watch(
    client: usize,
    http: reqwest::Client,
    url: reqwest::Url,
    tx: mpsc::UnboundedSender<Msg>,
    gate: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let fail = |error: String| {
        let _ = tx.send(Msg::Failed { client, error });
    };
    let permit = gate.acquire_owned().await;
    let request = http.get(url).header(ACCEPT, "text/event-stream").send();
    let mut response = tokio::select! {
        () = stop.cancelled() => return,
        r = request => match r {
            Ok(r) if r.status() == StatusCode::OK => r,
            Ok(r) => return fail(format!("status {}", r.status())),
            Err(e) => return fail(format!("{e:#}")),
        },
    };
    let http = response.version();
    let mut permit = Some(permit);
    let mut parser = sse::Parser::new(MAX_DOCUMENT_BYTES + MAX_DOCUMENT_BYTES / 4);
    loop {
        let chunk = tokio::select! {
            () = stop.cancelled() => return,
            c = response.chunk() => match c {
                Ok(Some(c)) => c,
                Ok(None) => return fail("the stream ended".into()),
                Err(e) => return fail(format!("the stream broke: {e:#}")),
            },
        };
        let events = match parser.push(&chunk) {
            Ok(e) => e,
            Err(e) => return fail(e.to_string()),
        };
        for event in events {
            if event.event != EVENT_SCOPE {
                continue;
            }
            let at = Instant::now();
            // The first event is in: let the next client connect.
            permit.take();
            let msg = Msg::Event {
                client,
                id: event.id,
                bytes: event.data.len(),
                at,
                http,
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
}

fn write_csv(path: &std::path::Path, rounds: &[Round]) -> anyhow::Result<()> {
    let mut out = String::from("change,client,cibadmin_ms,latency_ms\n");
    for (r, round) in rounds.iter().enumerate() {
        for (c, l) in round.latencies.iter().enumerate() {
            let l = l.map_or(String::new(), |l| format!("{:.3}", ms(l)));
            let _ = writeln!(out, "{},{c},{:.3},{l}", r + 1, ms(round.cibadmin));
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &Options,
    sites: &Sites,
    nofile: &str,
    memory: &[Memory],
    rounds: &[Round],
    open_time: Duration,
    event_bytes: usize,
    versions: &str,
    load: [String; 2],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} event streams to one publisher over mutual TLS (one client, one connection each; by HTTP version: {versions}), \
         opened {} at a time in {:.1} s. Site A: {} primitives, CIB {} bytes; each version is a {}-byte event, \
         {:.0} MB to send per change. {nofile}. Load average before {}, after {}.\n",
        opts.streams,
        opts.connect_concurrency,
        open_time.as_secs_f64(),
        opts.primitives,
        sites.cib_a_bytes,
        event_bytes,
        (event_bytes * opts.streams) as f64 / 1e6,
        load[0],
        load[1],
    );
    out.push_str(
        "| change | `cibadmin` ms | first client ms | p50 ms | p99 ms | max = all received ms | received |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for (r, round) in rounds.iter().enumerate() {
        let got: Vec<f64> = round.latencies.iter().flatten().map(|d| ms(*d)).collect();
        let n = got.len();
        let s = Summary::new(got);
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {n} / {} |",
            r + 1,
            ms(round.cibadmin),
            s.min(),
            s.pct(50.0),
            s.pct(99.0),
            s.max(),
            round.latencies.len()
        );
    }
    out.push_str("\n| publisher memory | VmRSS MiB | VmHWM (peak) MiB |\n|---|---:|---:|\n");
    for m in memory {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} |",
            m.when,
            m.rss as f64 / 1024.0,
            m.hwm as f64 / 1024.0
        );
    }
    out
}
