//! `cib-bench` — the inputs and the drivers of the benchmarks of
//! cib-replicator. `bench/run.sh` times the release binaries against their
//! anchors (xsltproc, crm_diff) in turns (`paired`), and runs the end-to-end
//! measurements with the real daemons (`latency`, `fanout`); see
//! docs/benchmarks.md.

mod fanout;
mod generate;
mod latency;
mod paired;
mod sites;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context as _};
use clap::{Parser, Subcommand};

use cib_transforms::scope;
use cib_transforms::{patch, xml, Element};

use generate::{Variant, TICKET};


/// Benchmark inputs and drivers for cib-replicator.
#[derive(Debug, Parser)]
#[command(name = "cib-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write cib.xml, cib-b.xml, rules.toml, equivalent.xsl, scope.xml and
    /// scope-config.xml into DIR.
    Generate {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Number of primitives in the CIB.
        #[arg(long, default_value_t = 10_000)]
        primitives: usize,
        /// Bind every top-level resource (the fencing device aside) to the
        /// ticket instead of nine in ten.
        #[arg(long)]
        all_bound: bool,
    },
    /// Change at site A to applied at site B, through the release daemons.
    ///
    /// Generates site A's CIB (every resource bound to the ticket) and an
    /// empty site B, certificates and configurations in a temporary
    /// directory; starts `cib-publisher serve` and `cib-subscriber run` on
    /// loopback with mutual TLS (CIB_file mode on both sides); then, for
    /// each change, runs `cibadmin --modify` on one nvpair at A (timed
    /// alone too) and polls B's CIB file until the rewritten value is there.
    /// Prints markdown tables (latency and `cibadmin` p50/p99, stages from
    /// the daemons' logs, the Pacemaker tools timed alone). The daemons are
    /// stopped by PID on exit, on error and on SIGINT/SIGTERM.
    Latency {
        /// Measured changes.
        #[arg(long, default_value_t = 100)]
        changes: usize,
        /// Changes made first and not counted.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Primitives in site A's CIB.
        #[arg(long, default_value_t = 250)]
        primitives: usize,
        /// Pause after each change was seen at B, in milliseconds.
        #[arg(long, default_value_t = 200)]
        pause_ms: u64,
        /// Interval of the polls of B's CIB file, in milliseconds.
        #[arg(long, default_value_t = 1)]
        poll_ms: u64,
        /// Runs of each Pacemaker tool timed alone afterwards (0: skip).
        #[arg(long, default_value_t = 20)]
        tool_runs: usize,
        /// Directory of the release cib-publisher and cib-subscriber
        /// (default: the directory of cib-bench).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Write one line per change to this CSV file.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Keep the temporary directory (CIBs, certificates, daemon logs).
        #[arg(long)]
        keep: bool,
    },
    /// Many concurrent event streams to one publisher, then changes at A.
    ///
    /// Starts `cib-publisher serve` on a generated CIB (mutual TLS,
    /// loopback), opens STREAMS event streams, each from its own client
    /// (the subscriber's HTTPS client: one TLS connection each), then, per
    /// change, runs `cibadmin --modify` at A and times until every client
    /// has the new version. Reports p50/p99/max across clients and the
    /// publisher's VmRSS/VmHWM idle, with the streams open and after each
    /// change. Raises the soft RLIMIT_NOFILE if needed (the publisher
    /// inherits it).
    Fanout {
        /// Concurrent event streams.
        #[arg(long, default_value_t = 1000)]
        streams: usize,
        /// Changes at A (one round each).
        #[arg(long, default_value_t = 3)]
        changes: usize,
        /// Primitives in site A's CIB.
        #[arg(long, default_value_t = 250)]
        primitives: usize,
        /// Streams being opened at once.
        #[arg(long, default_value_t = 50)]
        connect_concurrency: usize,
        /// Directory of the release cib-publisher (default: the directory
        /// of cib-bench).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Write one line per client and change to this CSV file.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Keep the temporary directory (CIB, certificates, publisher log).
        #[arg(long)]
        keep: bool,
    },
    /// Run our command and the anchor's in turns and report the median of
    /// the per-round ratios (robust to a machine whose speed drifts).
    ///
    /// Each round runs both commands back to back, the first of the pair
    /// alternating; commands are split on white space (no shell, unless
    /// --shell) and their output is discarded. Prints a markdown table and the ratio
    /// anchor/ours (median, quartiles, lowest) and the overhead ours/anchor.
    Paired {
        /// Our command line.
        ours: String,
        /// The anchor's command line.
        anchor: String,
        /// Rounds measured.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Rounds run first, not measured.
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Write each round's times (ms) to this CSV file.
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
        /// Run both command lines with `sh -c` (pipelines, redirections).
        #[arg(long)]
        shell: bool,
    },
    /// Print the versioned format-2 patch from one CIB to another, as
    /// `crm_diff --original OLD --new NEW` does (what `replicate-now` and
    /// the subscriber daemon compute instead of running `crm_diff`); with
    /// --modify, the guarded `cibadmin --modify` document they write
    /// instead where a modify can express the change.
    Diff {
        /// The old CIB.
        old: PathBuf,
        /// The new CIB.
        new: PathBuf,
        /// Print the guarded modify document (fails when the change needs
        /// a patch).
        #[arg(long)]
        modify: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            dir,
            primitives,
            all_bound,
        } => generate_files(&dir, primitives, all_bound),
        Command::Latency {
            changes,
            warmup,
            primitives,
            pause_ms,
            poll_ms,
            tool_runs,
            bin_dir,
            csv,
            keep,
        } => {
            let opts = latency::Options {
                changes,
                warmup,
                primitives,
                pause: Duration::from_millis(pause_ms),
                poll: Duration::from_millis(poll_ms.max(1)),
                tool_runs,
                bin_dir,
                csv,
                keep,
            };
            // Signals are turned into a flag by a task of this runtime, so
            // that the daemons are stopped on the way out.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let _in_runtime = runtime.enter();
            sites::watch_signals();
            print!("{}", latency::run(&opts)?);
            Ok(())
        }
        Command::Fanout {
            streams,
            changes,
            primitives,
            connect_concurrency,
            bin_dir,
            csv,
            keep,
        } => {
            let opts = fanout::Options {
                streams,
                changes,
                primitives,
                connect_concurrency,
                bin_dir,
                csv,
                keep,
            };
            print!("{}", fanout::run(&opts)?);
            Ok(())
        }
        Command::Paired {
            ours,
            anchor,
            rounds,
            warmup,
            csv,
            shell,
        } => {
            let opts = paired::Options {
                ours: (&ours, &ours),
                anchor: (&anchor, &anchor),
                rounds,
                warmup,
                csv: csv.as_deref(),
                shell,
            };
            print!("{}", paired::run(&opts)?);
            Ok(())
        }
        Command::Diff { old, new, modify } => {
            let read = |path: &Path| {
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
            };
            let old_text = read(&old)?;
            let parse = |text: &str, path: &Path| {
                xml::parse(text).with_context(|| format!("parsing {}", path.display()))
            };
            let old_cib = parse(&old_text, &old)?;
            let new_cib = parse(&read(&new)?, &new)?;
            let text = if modify {
                match cib_transforms::modify::guarded_modify(&old_cib, &new_cib) {
                    cib_transforms::modify::Modify::Unchanged => return Ok(()),
                    cib_transforms::modify::Modify::Xml(text) => text,
                    cib_transforms::modify::Modify::Unsupported(reason) => {
                        anyhow::bail!("no guarded modify for these CIBs: {reason}")
                    }
                }
            } else {
                match patch::versioned_patch(&old_text, &old_cib, &new_cib) {
                    patch::Patch::Unchanged => return Ok(()),
                    patch::Patch::Xml(text) => text,
                    patch::Patch::Unsupported(reason) => {
                        anyhow::bail!("no native patch for these CIBs: {reason}")
                    }
                }
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

/// Reads and parses a CIB file.
pub fn load_cib(path: &Path) -> anyhow::Result<Element> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    xml::parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes the generated CIBs, the rules and the stylesheet, then the scope
/// cut by our own code (so that the inputs are there even if it fails).
fn generate_files(dir: &Path, primitives: usize, all_bound: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let model = generate::model(primitives, all_bound);
    let a = generate::render(&model, Variant::A);
    let b = generate::render(&model, Variant::B);
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("{:>10} bytes  {}", text.len(), path.display());
        Ok(())
    };
    write("cib.xml", &a)?;
    write("cib-b.xml", &b)?;
    write("rules.toml", generate::RULES_TOML)?;
    write("equivalent.xsl", generate::EQUIVALENT_XSL)?;
    let cib = xml::parse(&a).context("parsing the generated CIB")?;
    let s = scope::scope(&cib, TICKET).context("scope of the generated CIB")?;
    ensure!(
        !s.left_out.is_empty(),
        "the generated CIB should leave something out"
    );
    write("scope.xml", &s.to_document().to_xml())?;
    write("scope-config.xml", &s.config.to_xml())?;
    let tops = s.config.child("resources").map_or(0, |r| r.children.len());
    println!(
        "{} primitives; {} top-level resources bound to `{TICKET}`, {tops} in its scope; {} left out",
        model.primitives,
        model.bound,
        s.left_out.len()
    );
    Ok(())
}
