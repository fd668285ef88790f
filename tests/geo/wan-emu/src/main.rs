//! wan-emu: a lossy, slow link in user space, for the geo lab where the
//! kernel has no `sch_netem`. An nftables rule sends the packets of a link
//! to NFQUEUE number `--queue`; wan-emu reads that queue (netlink, the `nfq`
//! crate), drops `--loss` percent of the packets at random and accepts
//! every other one after `--delay-ms` ± `--jitter-ms` (uniform) — netem's
//! `loss 30% delay 200ms 100ms` is `--loss 30 --delay-ms 200 --jitter-ms 100`.
//!
//! At most `--limit` packets wait at once (in the kernel's queue and here);
//! more are dropped, as by a full queue. Packets wait in the kernel, which
//! keeps them until their verdict: wan-emu holds only their ids (it asks
//! for no payload). Without the `bypass` flag on the rule, the kernel drops
//! the queue's packets while no wan-emu runs: the link is down then, never
//! silently good.
//!
//! SIGTERM or SIGINT: the packets still held are dropped (the link goes
//! away, as with netem's queue), the queue is unbound, the counts are
//! printed, and wan-emu exits 0.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cib_wan_emu::{Link, Params};
use clap::Parser;
use nfq::{Queue, Verdict};

/// A lossy, slow link: reads an NFQUEUE, drops and delays its packets.
#[derive(Parser, Debug)]
#[command(name = "wan-emu", version)]
struct Args {
    /// The NFQUEUE number the nftables rule sends packets to.
    #[arg(long)]
    queue: u16,
    /// Percent of packets lost at random.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Mean delay of the packets delivered, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Half the width of the uniform spread around the delay, in milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Most packets waiting at once; more are dropped (netem's default: 1000).
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// Seed of the random choices (default: a random one).
    #[arg(long)]
    seed: Option<u64>,
}

/// How often the queue is read when nothing is due sooner. The `nfq` crate
/// gives no descriptor to wait on, so wan-emu polls its socket
/// (non-blocking) at this pace.
const TICK: Duration = Duration::from_millis(1);

fn main() -> ExitCode {
    let args = Args::parse();
    let params = Params {
        loss: args.loss / 100.0,
        delay: Duration::from_millis(args.delay_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        limit: args.limit as usize,
    };
    if let Err(e) = params.check() {
        eprintln!("wan-emu: {e}");
        return ExitCode::from(2);
    }
    match run(&args, params) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wan-emu: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, params: Params) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    let n = args.queue;
    let mut q = Queue::open().map_err(|e| format!("opening a netfilter netlink socket: {e}"))?;
    q.bind(n)
        .map_err(|e| format!("binding NFQUEUE {n} (another reader bound to it?): {e}"))?;
    // Only the packets' ids and metadata: the packets stay in the kernel.
    q.set_copy_range(n, 0)
        .map_err(|e| format!("NFQUEUE {n}: setting the copy range: {e}"))?;
    q.set_queue_max_len(n, args.limit)
        .map_err(|e| format!("NFQUEUE {n}: setting its length: {e}"))?;
    q.set_fail_open(n, false)
        .map_err(|e| format!("NFQUEUE {n}: setting fail-open off: {e}"))?;
    q.set_nonblocking(true);
    let rng = args
        .seed
        .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    let mut link = Link::new(params, rng);
    eprintln!(
        "wan-emu: NFQUEUE {n} bound: loss {} %, delay {} ms ± {} ms (uniform), limit {} packets",
        args.loss, args.delay_ms, args.jitter_ms, args.limit
    );

    while !stop.load(Ordering::Relaxed) {
        // Every packet that arrived since the last turn.
        loop {
            match q.recv() {
                Ok(msg) => {
                    if let Err((mut msg, _why)) = link.offer(Instant::now(), msg) {
                        msg.set_verdict(Verdict::Drop);
                        q.verdict(msg)
                            .map_err(|e| format!("NFQUEUE {n}: verdict: {e}"))?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("NFQUEUE {n}: receiving: {e}")),
            }
        }
        // Every packet due.
        let now = Instant::now();
        while let Some(mut msg) = link.release(now) {
            msg.set_verdict(Verdict::Accept);
            q.verdict(msg)
                .map_err(|e| format!("NFQUEUE {n}: verdict: {e}"))?;
        }
        let wait = link.next_due().map_or(TICK, |due| {
            due.saturating_duration_since(Instant::now()).min(TICK)
        });
        std::thread::sleep(wait);
    }

    let held = link.take_all();
    let dropped_at_exit = held.len();
    for mut msg in held {
        msg.set_verdict(Verdict::Drop);
        // The socket closes next: the kernel drops what is left anyway.
        let _ = q.verdict(msg);
    }
    let _ = q.unbind(n);
    eprintln!(
        "wan-emu: stopped: {}; {dropped_at_exit} dropped at exit",
        link.stats().summary()
    );
    Ok(())
}
