//! The link that `wan-emu` emulates, apart from netlink: each packet offered
//! is lost at random, or dropped because the queue is full, or held for a
//! delay drawn uniformly from `delay ± jitter` and then released, in the
//! order of the times they are due (so jitter reorders packets, as netem's
//! does). The queue is bounded: at most `limit` packets are held.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// What the link does to its packets (netem's `loss`, `delay`, `limit`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Chance of losing a packet, 0.0 to 1.0.
    pub loss: f64,
    /// Mean delay.
    pub delay: Duration,
    /// Half the width of the uniform distribution around `delay`
    /// (at most `delay`).
    pub jitter: Duration,
    /// Most packets held at once; more are dropped.
    pub limit: usize,
}

impl Params {
    /// Checks the values: loss a probability, jitter not beyond the delay,
    /// a queue of at least one packet.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!(
                "loss must be within 0 and 100 %, not {} %",
                self.loss * 100.0
            ));
        }
        if self.jitter > self.delay {
            return Err(format!(
                "jitter ({} ms) must not exceed the delay ({} ms)",
                self.jitter.as_millis(),
                self.delay.as_millis()
            ));
        }
        if self.limit == 0 {
            return Err("the limit must be at least one packet".into());
        }
        Ok(())
    }
}

/// Why a packet was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Lost at random (`loss`).
    Loss,
    /// The queue held `limit` packets already.
    Limit,
}

/// Counts since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub offered: u64,
    pub lost: u64,
    pub over_limit: u64,
    pub released: u64,
    /// Sum of the delays of the packets released, in microseconds.
    pub delay_us: u128,
    /// Most packets held at once.
    pub peak_held: usize,
}

impl Stats {
    /// One line for the log.
    pub fn summary(&self) -> String {
        let pct = |n: u64| {
            if self.offered == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.offered as f64
            }
        };
        let mean_ms = if self.released == 0 {
            0.0
        } else {
            self.delay_us as f64 / self.released as f64 / 1000.0
        };
        format!(
            "{} packets: {} lost at random ({:.1} %), {} over the limit, {} delivered after {:.0} ms on average; at most {} held at once",
            self.offered,
            self.lost,
            pct(self.lost),
            self.over_limit,
            self.released,
            mean_ms,
            self.peak_held
        )
    }
}

struct Held<T> {
    due: Instant,
    delay: Duration,
    seq: u64,
    packet: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// The link: packets go in with [`Link::offer`] and come out with
/// [`Link::release`] once due.
pub struct Link<T> {
    params: Params,
    rng: fastrand::Rng,
    held: BinaryHeap<Reverse<Held<T>>>,
    seq: u64,
    stats: Stats,
}

impl<T> Link<T> {
    /// A link with `params` (checked by the caller) and a random generator.
    pub fn new(params: Params, rng: fastrand::Rng) -> Self {
        Link {
            params,
            rng,
            held: BinaryHeap::new(),
            seq: 0,
            stats: Stats::default(),
        }
    }

    /// A packet arrives at `now`: `Ok` when it is held, or given back with
    /// the reason it is dropped.
    pub fn offer(&mut self, now: Instant, packet: T) -> Result<(), (T, Dropped)> {
        self.stats.offered += 1;
        if self.params.loss > 0.0 && self.rng.f64() < self.params.loss {
            self.stats.lost += 1;
            return Err((packet, Dropped::Loss));
        }
        if self.held.len() >= self.params.limit {
            self.stats.over_limit += 1;
            return Err((packet, Dropped::Limit));
        }
        let delay = self.draw_delay();
        self.seq += 1;
        self.held.push(Reverse(Held {
            due: now + delay,
            delay,
            seq: self.seq,
            packet,
        }));
        self.stats.peak_held = self.stats.peak_held.max(self.held.len());
        Ok(())
    }

    /// `delay ± jitter`, uniform, to the microsecond.
    fn draw_delay(&mut self) -> Duration {
        let d = self.params.delay.as_micros() as u64;
        let j = self.params.jitter.as_micros() as u64;
        Duration::from_micros(self.rng.u64(d - j..=d + j))
    }

    /// The next packet due at `now` or before, if any.
    pub fn release(&mut self, now: Instant) -> Option<T> {
        if self.held.peek()?.0.due > now {
            return None;
        }
        let Reverse(h) = self.held.pop()?;
        self.stats.released += 1;
        self.stats.delay_us += h.delay.as_micros();
        Some(h.packet)
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|h| h.0.due)
    }

    /// Packets held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Every packet still held (the link goes away), in no order.
    pub fn take_all(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
            .into_iter()
            .map(|h| h.0.packet)
            .collect()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(loss: f64, delay_ms: u64, jitter_ms: u64, limit: usize) -> Params {
        Params {
            loss,
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            limit,
        }
    }

    #[test]
    fn loses_about_the_share_asked_and_delays_within_the_bounds() {
        let mut link = Link::new(
            params(0.3, 200, 100, 1_000_000),
            fastrand::Rng::with_seed(7),
        );
        let t0 = Instant::now();
        let n = 100_000u64;
        for i in 0..n {
            let _ = link.offer(t0, i);
        }
        let s = link.stats();
        let lost = s.lost as f64 / n as f64;
        assert!((0.29..0.31).contains(&lost), "lost {lost}");
        assert_eq!(s.over_limit, 0);
        // Nothing is due before 100 ms; everything by 300 ms.
        assert_eq!(link.release(t0 + Duration::from_micros(99_999)), None);
        let mut out = 0u64;
        let mut below_200 = 0u64;
        while link.release(t0 + Duration::from_millis(200)).is_some() {
            below_200 += 1;
        }
        out += below_200;
        while link.release(t0 + Duration::from_millis(300)).is_some() {
            out += 1;
        }
        assert_eq!(out, n - s.lost);
        assert_eq!(link.held(), 0);
        // Uniform: about half within 100..200 ms, the mean about 200 ms.
        let half = below_200 as f64 / out as f64;
        assert!((0.48..0.52).contains(&half), "share due by 200 ms: {half}");
        let mean_ms = link.stats().delay_us as f64 / out as f64 / 1000.0;
        assert!((198.0..202.0).contains(&mean_ms), "mean delay {mean_ms} ms");
    }

    #[test]
    fn releases_in_the_order_due_and_reorders_with_jitter() {
        let mut link = Link::new(params(0.0, 200, 100, 1000), fastrand::Rng::with_seed(1));
        let t0 = Instant::now();
        for i in 0..100u32 {
            link.offer(t0 + Duration::from_millis(u64::from(i)), i)
                .unwrap();
        }
        let mut last_due = None;
        let mut order = Vec::new();
        while let Some(due) = link.next_due() {
            assert!(last_due.is_none_or(|l| l <= due));
            last_due = Some(due);
            order.push(link.release(due).unwrap());
        }
        assert_eq!(order.len(), 100);
        assert!(
            order.windows(2).any(|w| w[0] > w[1]),
            "jitter of 100 ms over 1 ms spacing reorders"
        );
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut link = Link::new(params(0.0, 200, 0, 3), fastrand::Rng::with_seed(1));
        let t0 = Instant::now();
        for i in 0..3 {
            link.offer(t0, i).unwrap();
        }
        assert_eq!(link.offer(t0, 3), Err((3, Dropped::Limit)));
        assert_eq!(link.held(), 3);
        assert_eq!(link.stats().peak_held, 3);
        // Once one is out, there is room again.
        assert_eq!(link.release(t0 + Duration::from_millis(200)), Some(0));
        link.offer(t0, 4).unwrap();
        let mut rest = link.take_all();
        rest.sort();
        assert_eq!(rest, vec![1, 2, 4]);
        assert_eq!(link.stats().over_limit, 1);
    }

    #[test]
    fn no_loss_and_no_delay_passes_everything_at_once() {
        let mut link = Link::new(params(0.0, 0, 0, 10), fastrand::Rng::with_seed(3));
        let t0 = Instant::now();
        link.offer(t0, 'a').unwrap();
        assert_eq!(link.release(t0), Some('a'));
        assert_eq!(link.stats().lost, 0);
    }

    #[test]
    fn params_are_checked() {
        assert!(params(0.3, 200, 100, 1000).check().is_ok());
        assert!(params(1.5, 200, 100, 1000).check().is_err());
        assert!(params(0.3, 100, 200, 1000).check().is_err());
        assert!(params(0.3, 200, 100, 0).check().is_err());
    }
}
