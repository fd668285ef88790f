//! Change at site A to applied at site B, end to end (`cib-bench latency`).
//!
//! Two sites on loopback ([`crate::sites`]): the release `cib-publisher
//! serve` on site A's CIB file, the release `cib-subscriber run` (mode
//! `auto`, the benchmark's ip and path rules) on site B's, mutual TLS with
//! freshly generated certificates. Each change: `cibadmin --modify` sets
//! one nvpair at A to a new value (timed on its own), then site B's CIB file
//! is polled until the rewritten value is there. The change's latency runs
//! from just before `cibadmin` starts to the poll that sees the value.
//!
//! The daemons log at debug level; their timestamps split each change into
//! stages (A's `cibadmin` until the publisher reads the file, the
//! publisher's refresh, the subscriber's own work, its `crm_verify`, the
//! computing of its write and `cibadmin` writing it: a guarded
//! `--modify`, or `--patch`). Our own share of a change is the sum of the
//! daemons' own stages (the publisher's refresh, the subscriber's work
//! before `crm_verify` and computing its write): the rest is
//! `cibadmin --modify` at A, `crm_verify` and the `cibadmin` write at B. The Pacemaker
//! tools the daemons run are then timed alone on the same files, with the
//! daemons stopped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{ensure, Context as _};

use crate::sites::{self, ms, Daemon, FileWatch, Sites, Summary, NVPAIR_ID};

/// The target: our own share of a change (its p50) at most this fraction
/// of the median change-at-A-to-applied-at-B latency.
pub const TARGET_OWN_SHARE: f64 = 0.10;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured changes.
    pub changes: usize,
    /// Changes made first and not counted.
    pub warmup: usize,
    /// Primitives in site A's CIB.
    pub primitives: usize,
    /// Pause after a change was seen at B, before the next one.
    pub pause: Duration,
    /// Interval of the polls of site B's file.
    pub poll: Duration,
    /// Runs of each Pacemaker tool timed alone (0: none).
    pub tool_runs: usize,
    /// Where the release daemons are (default: next to cib-bench).
    pub bin_dir: Option<PathBuf>,
    /// Per-change CSV output.
    pub csv: Option<PathBuf>,
    /// Keep the temporary directory (CIBs, certificates, logs).
    pub keep: bool,
}

/// One measured change.
#[derive(Debug, Clone)]
struct Sample {
    index: usize,
    /// Wall-clock time just before `cibadmin` started.
    start: SystemTime,
    /// How long `cibadmin --modify` took.
    cibadmin: Duration,
    /// From just before `cibadmin` started to the value seen at site B.
    latency: Duration,
    /// Stages from the daemons' logs, when found.
    stages: Option<Stages>,
}

impl Sample {
    /// Our own part of the change, from the daemons' logs: the publisher's
    /// refresh (read, parse, scope, digest, event sent), the subscriber's
    /// work until `crm_verify` starts (receive, verify, transform, read
    /// B's CIB, merge) and its computing of the write. What is left of the
    /// latency is the Pacemaker commands (whose ends overlap the next stage:
    /// the daemons see the file written before `cibadmin` has exited).
    fn own(&self) -> Option<Duration> {
        let stages = self.stages?;
        let apply = stages.apply?;
        Some(stages.publisher + apply.before_verify + apply.write)
    }
}

/// One change split by the daemons' log timestamps.
#[derive(Debug, Clone, Copy)]
struct Stages {
    /// The change starts → the publisher starts reading the CIB: A's
    /// `cibadmin --modify` until it has written the file, and the file
    /// event.
    to_refresh: Duration,
    /// The publisher reads the CIB, cuts and frames the scope → the event
    /// goes out on the stream.
    publisher: Duration,
    /// Event sent → the new value is in site B's CIB file.
    subscriber: Duration,
    /// The part of `subscriber` the subscriber's log splits, when found.
    apply: Option<Apply>,
}

/// The subscriber's debug line "merged CIB verified and applied": the
/// durations it reports, and the time it was logged.
#[derive(Debug, Clone, Copy)]
struct Apply {
    /// Event sent → the whole document is received and parsed out of the
    /// stream (the subscriber's "document received"), when found.
    received: Option<Duration>,
    /// Event sent → `crm_verify` starts: receiving, checking the digest,
    /// transforming, reading B's CIB, merging.
    before_verify: Duration,
    /// `crm_verify` of the merged CIB.
    verify: Duration,
    /// Computing the write (the guarded modify document, or the patch).
    write: Duration,
    /// `cibadmin --modify` or `--patch`, and the check that it took.
    cibadmin: Duration,
    /// `cibadmin` returned → the poll sees the value in B's file.
    to_seen: Duration,
}

/// What a run measured besides the changes.
struct Facts {
    /// The subscriber started → the first copy in site B's file.
    first_copy: Duration,
    /// Size of the scope served at the end, bytes.
    scope_bytes: usize,
    /// Load averages before and after.
    load: [String; 2],
    /// How long the run took.
    elapsed: Duration,
}

/// Runs the benchmark; returns the markdown report.
pub fn run(opts: &Options) -> anyhow::Result<String> {
    ensure!(opts.changes > 0, "--changes must be at least 1");
    let bins = sites::bin_dir(opts.bin_dir.as_deref())?;
    let mut sites = Sites::create(opts.primitives)?;
    if opts.keep {
        sites.dir.disable_cleanup(true);
        eprintln!("cib-bench: files kept in {}", sites.dir.path().display());
    }
    let load_before = sites::load_average();
    let started = SystemTime::now();
    let ((samples, first_copy), scope_bytes) = {
        let started = sites.start_publisher(&bins, "info,cib_publisher=debug");
        let mut publisher = sites.keep_on_error(started)?;
        let first_started = Instant::now();
        let started = sites.start_subscriber(&bins, "info,cib_subscriber::apply=debug,cib_subscriber::follow=debug");
        let mut subscriber = sites.keep_on_error(started)?;
        let samples = measure(opts, &sites, &mut publisher, &mut subscriber, first_started);
        // Stops both daemons, also on error.
        drop((publisher, subscriber));
        (sites.keep_on_error(samples)?, scope_size(&sites))
    };
    let elapsed = started.elapsed().unwrap_or_default();
    let load_after = sites::load_average();
    let mut samples = samples;
    let log = std::fs::read_to_string(sites.dir.path().join("publisher.log")).unwrap_or_default();
    let sub_log = std::fs::read_to_string(sites.dir.path().join("subscriber.log")).unwrap_or_default();
    attach_stages(&mut samples, &log, &sub_log);
    let tools = if opts.tool_runs > 0 {
        Some(time_tools(&sites, opts.tool_runs)?)
    } else {
        None
    };
    if let Some(csv) = &opts.csv {
        write_csv(csv, &samples)?;
    }
    let facts = Facts {
        first_copy,
        scope_bytes,
        load: [load_before, load_after],
        elapsed,
    };
    Ok(report(opts, &sites, &samples, tools.as_deref(), &facts))
}

/// The first copy (from `first_started`, just before the subscriber was
/// started, to the ownership record in site B's file), then the changes:
/// warm-up ones first, then the measured ones.
fn measure(
    opts: &Options,
    sites: &Sites,
    publisher: &mut Daemon,
    subscriber: &mut Daemon,
    first_started: Instant,
) -> anyhow::Result<(Vec<Sample>, Duration)> {
    let mut alive = || -> anyhow::Result<()> {
        publisher.check_running()?;
        subscriber.check_running()
    };
    let mut watch = FileWatch::new(&sites.cib_b);
    // The ownership record appears with the first apply.
    let first_copy = watch
        .wait_for(
            "id=\"cib-replicator-geo\"",
            Duration::from_millis(20),
            Duration::from_secs(600),
            &mut alive,
        )
        .context("waiting for site B's first copy")?
        - first_started;
    std::thread::sleep(opts.pause);
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut samples = Vec::with_capacity(opts.changes);
    for i in 0..opts.warmup + opts.changes {
        sites::check_interrupted()?;
        let at_a = format!("/srv/site-a/bench/{nonce}/{i:05}");
        let at_b = format!("value=\"/srv/site-b/bench/{nonce}/{i:05}\"");
        let start = SystemTime::now();
        let t0 = Instant::now();
        let cibadmin = sites::cibadmin_modify(&sites.cib_a, &at_a)?;
        let seen = watch
            .wait_for(&at_b, opts.poll, Duration::from_secs(600), &mut alive)
            .with_context(|| format!("change {i}"))?;
        if i >= opts.warmup {
            samples.push(Sample {
                index: i - opts.warmup,
                start,
                cibadmin,
                latency: seen - t0,
                stages: None,
            });
        }
        std::thread::sleep(opts.pause);
    }
    Ok((samples, first_copy))
}

/// Size of the scope the publisher serves now (from site A's CIB), bytes.
fn scope_size(sites: &Sites) -> usize {
    crate::load_cib(&sites.cib_a)
        .ok()
        .and_then(|cib| cib_transforms::scope::scope(&cib, crate::generate::TICKET).ok())
        .map_or(0, |s| s.to_document().to_xml().len())
}

/// Fills [`Sample::stages`] from the publisher's log: the first "CIB file
/// changed" after the change started (logged as the refresh starts) and the
/// first "stream: sending version" after that; and from the subscriber's
/// log, the first "merged CIB verified and applied" after that.
fn attach_stages(samples: &mut [Sample], log: &str, sub_log: &str) {
    let events = |what: &str| -> Vec<SystemTime> {
        log.lines()
            .filter(|l| l.contains(what))
            .filter_map(|l| l.split_whitespace().next().and_then(parse_utc))
            .collect()
    };
    let changed = events("CIB file changed");
    let sent = events("stream: sending version");
    let applied: Vec<(SystemTime, [Duration; 3])> = sub_log
        .lines()
        .filter(|l| l.contains("merged CIB verified and applied"))
        .filter_map(|l| {
            let at = l.split_whitespace().next().and_then(parse_utc)?;
            let field = |name: &str| -> Option<Duration> {
                let v = l.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?;
                Some(Duration::from_secs_f64(v.parse::<f64>().ok()? / 1000.0))
            };
            Some((at, [field("verify_ms")?, field("write_ms")?, field("cibadmin_ms")?]))
        })
        .collect();
    let received: Vec<SystemTime> = sub_log
        .lines()
        .filter(|l| l.contains("document received"))
        .filter_map(|l| l.split_whitespace().next().and_then(parse_utc))
        .collect();
    let starts: Vec<SystemTime> = samples.iter().map(|s| s.start).collect();
    for (k, s) in samples.iter_mut().enumerate() {
        let end = starts.get(k + 1).copied();
        let within = |t: &&SystemTime| end.is_none_or(|e| **t < e);
        let Some(c) = changed.iter().find(|t| **t >= s.start).filter(within) else {
            continue;
        };
        let Some(e) = sent.iter().find(|t| *t >= c).filter(within) else {
            continue;
        };
        let seen = s.start + s.latency;
        let gap = |a: SystemTime, b: SystemTime| b.duration_since(a).unwrap_or_default();
        let apply = applied.iter().find(|(t, _)| t >= e).filter(|(t, _)| within(&t)).map(|&(at, [verify, write, cibadmin])| {
            let verify_start = at.checked_sub(verify + write + cibadmin).unwrap_or(at);
            Apply {
                received: received.iter().find(|t| *t >= e && **t <= verify_start).map(|t| gap(*e, *t)),
                before_verify: gap(*e, verify_start),
                verify,
                write,
                cibadmin,
                to_seen: gap(at, seen),
            }
        });
        s.stages = Some(Stages {
            to_refresh: gap(s.start, *c),
            publisher: gap(*c, *e),
            subscriber: gap(*e, seen),
            apply,
        });
    }
}

/// Parses the timestamp at the start of a daemon's log line
/// (`2026-11-23T21:09:25.123456Z`, UTC).
fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':').map(str::parse::<u64>);
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let digits = frac.len().min(9);
    let frac = frac.get(..digits)?;
    let nanos: u64 = frac.parse::<u64>().ok()? * 10u64.pow(u32::try_from(9 - digits).ok()?);
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// One Pacemaker tool timed alone.
#[derive(Debug)]
struct Tool {
    what: &'static str,
    per_change: &'static str,
    times: Summary,
}

/// One Pacemaker tool command to time.
struct ToolSpec {
    what: &'static str,
    per_change: &'static str,
    argv: Vec<String>,
    /// `CIB_file` for the command (none: removed from its environment).
    cib_file: Option<PathBuf>,
    /// Copied over `cib_file` before each run (the command changes it).
    fresh_from: Option<PathBuf>,
}

/// Times the Pacemaker tools the daemons run for one change, on the files
/// of this run (the daemons are stopped by now).
fn time_tools(sites: &Sites, runs: usize) -> anyhow::Result<Vec<Tool>> {
    let dir = sites.dir.path().join("tools");
    std::fs::create_dir_all(&dir)?;
    let b = std::fs::read_to_string(&sites.cib_b)?;
    // B', one value changed and the epoch bumped (what a merge produces),
    // the patch from B to B' and the guarded modify document.
    let mut next = cib_transforms::xml::parse(&b).context("parsing site B's CIB")?;
    let epoch: u64 = next.attr("epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
    next.set_attr("epoch", (epoch + 1).to_string());
    let changed = set_nvpair(&mut next, NVPAIR_ID, "/srv/site-b/bench/tools");
    ensure!(changed, "site B's CIB has no {NVPAIR_ID}");
    let b_path = dir.join("b.xml");
    let b2_path = dir.join("b2.xml");
    let patch_path = dir.join("patch.xml");
    let scratch = dir.join("scratch.xml");
    std::fs::write(&b_path, &b)?;
    std::fs::write(&b2_path, next.to_xml())?;
    let out = Command::new("crm_diff")
        .arg("--original")
        .arg(&b_path)
        .arg("--new")
        .arg(&b2_path)
        .output()
        .context("running crm_diff")?;
    ensure!(out.status.code() == Some(1), "crm_diff found no difference");
    std::fs::write(&patch_path, &out.stdout)?;
    let old = cib_transforms::xml::parse(&b).context("parsing site B's CIB")?;
    let cib_transforms::modify::Modify::Xml(document) = cib_transforms::modify::guarded_modify(&old, &next) else {
        anyhow::bail!("no guarded modify for a value change");
    };
    let modify_path = dir.join("modify.xml");
    std::fs::write(&modify_path, document)?;
    // The anchor of the first copy: A's resources section written into
    // site B's CIB as it was before replication.
    let a = cib_transforms::xml::parse(&std::fs::read_to_string(&sites.cib_a)?).context("parsing site A's CIB")?;
    let resources = cib_transforms::cib::configuration(&a)?
        .child("resources")
        .context("site A's CIB has no resources section")?;
    let resources_path = dir.join("resources-a.xml");
    let empty_b_path = dir.join("b-before.xml");
    std::fs::write(&resources_path, resources.to_xml())?;
    std::fs::write(&empty_b_path, sites::SITE_B_CIB)?;

    let path = |p: &Path| p.display().to_string();
    let specs = [
        ToolSpec {
            what: "`cibadmin --query` (site A's CIB)",
            per_change: "0: the publisher reads the file (1 on a live cluster)",
            argv: vec!["cibadmin".into(), "--query".into()],
            cib_file: Some(sites.cib_a.clone()),
            fresh_from: None,
        },
        ToolSpec {
            what: "`cibadmin --query` (site B's CIB)",
            per_change: "0: the subscriber reads the file (1 on a live cluster)",
            argv: vec!["cibadmin".into(), "--query".into()],
            cib_file: Some(b_path.clone()),
            fresh_from: None,
        },
        ToolSpec {
            what: "`crm_verify -V --xml-file` (site B's merged CIB)",
            per_change: "1 (subscriber)",
            argv: vec![
                "crm_verify".into(),
                "-V".into(),
                "--xml-file".into(),
                path(&b2_path),
            ],
            cib_file: None,
            fresh_from: None,
        },
        ToolSpec {
            what: "`crm_diff` (site B's CIB before and after)",
            per_change: "0: the subscriber computes the patch (`crm_diff` only for a CIB with comments)",
            argv: vec![
                "crm_diff".into(),
                "--original".into(),
                path(&b_path),
                "--new".into(),
                path(&b2_path),
            ],
            cib_file: None,
            fresh_from: None,
        },
        ToolSpec {
            what: "`cibadmin --modify` of the guarded document (site B's CIB)",
            per_change: "1 (subscriber), for a change a modify can express",
            argv: vec![
                "cibadmin".into(),
                "--modify".into(),
                "--xml-file".into(),
                path(&modify_path),
            ],
            cib_file: Some(scratch.clone()),
            fresh_from: Some(b_path.clone()),
        },
        ToolSpec {
            what: "`cibadmin --patch` (site B's CIB)",
            per_change: "0 for a value change; 1 (subscriber) for a deletion, a move, a first copy",
            argv: vec![
                "cibadmin".into(),
                "--patch".into(),
                "--xml-file".into(),
                path(&patch_path),
            ],
            cib_file: Some(scratch.clone()),
            fresh_from: Some(b_path.clone()),
        },
        ToolSpec {
            what: "`cibadmin --replace --scope resources` (site A's resources into site B's CIB before the first copy)",
            per_change: "0: the anchor of the first copy",
            argv: vec![
                "cibadmin".into(),
                "--replace".into(),
                "--scope".into(),
                "resources".into(),
                "--xml-file".into(),
                path(&resources_path),
            ],
            cib_file: Some(scratch.clone()),
            fresh_from: Some(empty_b_path.clone()),
        },
    ];
    let mut tools = Vec::new();
    for spec in specs {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            sites::check_interrupted()?;
            if let Some(src) = &spec.fresh_from {
                std::fs::copy(src, &scratch)?;
            }
            let mut cmd = Command::new(&spec.argv[0]);
            cmd.args(&spec.argv[1..])
                .env_remove("CIB_shadow")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            match &spec.cib_file {
                Some(f) => cmd.env("CIB_file", f),
                None => cmd.env_remove("CIB_file"),
            };
            let start = Instant::now();
            let out = cmd
                .output()
                .with_context(|| format!("running {}", spec.argv[0]))?;
            times.push(ms(start.elapsed()));
            // crm_diff exits 1 when the files differ.
            let ok = out.status.success()
                || (spec.argv[0] == "crm_diff" && out.status.code() == Some(1));
            ensure!(
                ok,
                "{} failed ({}): {}",
                spec.what,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        tools.push(Tool {
            what: spec.what,
            per_change: spec.per_change,
            times: Summary::new(times),
        });
    }
    Ok(tools)
}

/// Sets the value of the nvpair with id `id` anywhere under `el`.
fn set_nvpair(el: &mut cib_transforms::Element, id: &str, value: &str) -> bool {
    if el.name == "nvpair" && el.id() == Some(id) {
        el.set_attr("value", value.to_owned());
        return true;
    }
    el.children.iter_mut().any(|c| set_nvpair(c, id, value))
}

fn write_csv(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let mut out = String::from(
        "change,cibadmin_ms,latency_ms,event_and_debounce_ms,publisher_refresh_ms,subscriber_apply_ms,own_ms\n",
    );
    for s in samples {
        let _ = write!(
            out,
            "{},{:.3},{:.3}",
            s.index,
            ms(s.cibadmin),
            ms(s.latency)
        );
        match s.stages {
            Some(st) => {
                let _ = write!(
                    out,
                    ",{:.3},{:.3},{:.3},",
                    ms(st.to_refresh),
                    ms(st.publisher),
                    ms(st.subscriber)
                );
                match s.own() {
                    Some(own) => {
                        let _ = writeln!(out, "{:.3}", ms(own));
                    }
                    None => out.push('\n'),
                }
            }
            None => out.push_str(",,,,\n"),
        }
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn row(out: &mut String, what: &str, s: &Summary) {
    let _ = writeln!(
        out,
        "| {what} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        s.pct(50.0),
        s.pct(99.0),
        s.min(),
        s.max(),
        s.mean()
    );
}

fn report(
    opts: &Options,
    sites: &Sites,
    samples: &[Sample],
    tools: Option<&[Tool]>,
    facts: &Facts,
) -> String {
    let Facts {
        first_copy,
        scope_bytes,
        load,
        elapsed,
    } = facts;
    let latency = Summary::new(samples.iter().map(|s| ms(s.latency)).collect());
    let cibadmin = Summary::new(samples.iter().map(|s| ms(s.cibadmin)).collect());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Site A: {} primitives, {} top-level resources all bound to the ticket, CIB {} bytes, scope {} bytes. \
         {} changes measured after {} warm-up, {} ms apart; site B polled every {} ms. \
         Load average before {}, after {}; {:.0} s.\n",
        opts.primitives,
        sites.bound,
        sites.cib_a_bytes,
        scope_bytes,
        samples.len(),
        opts.warmup,
        opts.pause.as_millis(),
        opts.poll.as_millis(),
        load[0],
        load[1],
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "First copy (the subscriber started → the ownership record in site B's file): {:.0} ms.\n",
        ms(*first_copy)
    );
    out.push_str("| measure | p50 ms | p99 ms | min ms | max ms | mean ms |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    row(&mut out, "change at A → applied at B", &latency);
    row(
        &mut out,
        "`cibadmin --modify` at A alone (part of the above)",
        &cibadmin,
    );
    let p50 = latency.pct(50.0);
    let own: Vec<f64> = samples.iter().filter_map(Sample::own).map(ms).collect();
    if own.is_empty() {
        out.push_str("\nOur own share: not found in the daemons' logs.\n");
    } else {
        let n = own.len();
        let own = Summary::new(own);
        let share = own.pct(50.0) / p50;
        let _ = writeln!(
            out,
            "\nOur own share (publisher: read, parse, scope, digest, send; subscriber: receive, verify, transform, read B's CIB, merge, compute the write; {n} changes): \
             p50 {:.1} ms, p99 {:.1} ms; {:.1} % of the p50 latency {p50:.1} ms. Target ≤ {:.0} %: {}.",
            own.pct(50.0),
            own.pct(99.0),
            100.0 * share,
            100.0 * TARGET_OWN_SHARE,
            if share <= TARGET_OWN_SHARE { "met" } else { "NOT met" },
        );
    }
    let staged: Vec<Stages> = samples.iter().filter_map(|s| s.stages).collect();
    if !staged.is_empty() {
        let _ = writeln!(
            out,
            "\nWhere the time goes ({} of {} changes matched in the publisher's log):\n",
            staged.len(),
            samples.len()
        );
        out.push_str("| stage | p50 ms | p99 ms | min ms | max ms | mean ms |\n");
        out.push_str("|---|---:|---:|---:|---:|---:|\n");
        row(&mut out, "`cibadmin --modify` at A", &cibadmin);
        let pick =
            |f: fn(&Stages) -> Duration| Summary::new(staged.iter().map(|s| ms(f(s))).collect());
        row(
            &mut out,
            "change starts → publisher starts reading (A's `cibadmin` until it wrote the file, the file event)",
            &pick(|s| s.to_refresh),
        );
        row(
            &mut out,
            "publisher: read A's CIB, parse, scope, digest → event sent",
            &pick(|s| s.publisher),
        );
        row(
            &mut out,
            "subscriber: event sent → value in B's file (all of the rows below)",
            &pick(|s| s.subscriber),
        );
        let split: Vec<Apply> = staged.iter().filter_map(|s| s.apply).collect();
        if !split.is_empty() {
            let pick = |f: fn(&Apply) -> Duration| Summary::new(split.iter().map(|a| ms(f(a))).collect());
            let got: Vec<&Apply> = split.iter().filter(|a| a.received.is_some()).collect();
            if got.len() == split.len() {
                let recv = |f: fn(&Apply) -> Duration| Summary::new(got.iter().map(|a| ms(f(a))).collect());
                row(&mut out, "… receive the event (TLS, HTTP/2, SSE framing)", &recv(|a| a.received.unwrap_or_default()));
                row(
                    &mut out,
                    "… check digest, transform, read B's CIB, merge, serialize",
                    &recv(|a| a.before_verify.saturating_sub(a.received.unwrap_or_default())),
                );
            } else {
                row(
                    &mut out,
                    "… receive, check digest, transform, read B's CIB, merge",
                    &pick(|a| a.before_verify),
                );
            }
            row(&mut out, "… `crm_verify` of the merged CIB", &pick(|a| a.verify));
            row(&mut out, "… compute the write", &pick(|a| a.write));
            row(&mut out, "… the `cibadmin` write (guarded modify, or patch) and its check", &pick(|a| a.cibadmin));
            row(&mut out, "… `cibadmin` returned → seen by the poll", &pick(|a| a.to_seen));
            if split.len() < staged.len() {
                let _ = writeln!(out, "\n({} of {} changes matched in the subscriber's log.)", split.len(), staged.len());
            }
        }
    }
    if let Some(tools) = tools {
        let runs = tools.first().map_or(0, |t| t.times.len());
        let _ = writeln!(
            out,
            "\nThe Pacemaker tools the daemons run, each alone on this run's files ({runs} runs, daemons stopped):\n"
        );
        out.push_str("| tool | calls per change | p50 ms | p99 ms | min ms | max ms |\n");
        out.push_str("|---|---|---:|---:|---:|---:|\n");
        for t in tools {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                t.what,
                t.per_change,
                t.times.pct(50.0),
                t.times.pct(99.0),
                t.times.min(),
                t.times.max()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_timestamps() {
        let t = parse_utc("2026-11-23T21:09:25.123456Z").unwrap();
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        // date -u -d 2026-11-23T21:09:25Z +%s
        assert_eq!(d.as_secs(), 1_795_468_165);
        assert_eq!(d.subsec_micros(), 123_456);
        assert!(parse_utc("INFO").is_none());
        let leap = parse_utc("2024-02-29T00:00:00Z").unwrap();
        assert_eq!(
            leap.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_709_164_800
        );
    }
}
