//! Counted slots of a bounded resource, per key and in all: the
//! connections of each peer address, the event streams of each client.
//!
//! [`Slots::take`] hands out a [`Slot`] while the key holds fewer than the
//! per-key cap and everything holds fewer than the total cap; dropping the
//! slot gives it back. A key that holds nothing is forgotten, so the map
//! never holds more keys than there are slots taken.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Which cap refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every slot is taken.
    Total,
    /// The key holds as many slots as it may.
    Key,
}

/// Slots capped per key and in total.
#[derive(Debug)]
pub struct Slots<K> {
    shared: Arc<Mutex<Counts<K>>>,
}

#[derive(Debug)]
struct Counts<K> {
    max_total: usize,
    max_per_key: usize,
    total: usize,
    per_key: HashMap<K, usize>,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    /// At most `max_total` slots, and `max_per_key` per key.
    #[must_use]
    pub fn new(max_total: usize, max_per_key: usize) -> Slots<K> {
        Slots {
            shared: Arc::new(Mutex::new(Counts {
                max_total,
                max_per_key,
                total: 0,
                per_key: HashMap::new(),
            })),
        }
    }

    /// A slot for `key`, held until the returned [`Slot`] is dropped.
    ///
    /// # Errors
    ///
    /// [`Full::Total`] when every slot is taken, else [`Full::Key`] when
    /// `key` holds its share.
    pub fn take(&self, key: K) -> Result<Slot<K>, Full> {
        let mut c = lock(&self.shared);
        if c.total >= c.max_total {
            return Err(Full::Total);
        }
        let max_per_key = c.max_per_key;
        let held = c.per_key.entry(key.clone()).or_insert(0);
        if *held >= max_per_key {
            return Err(Full::Key);
        }
        *held += 1;
        c.total += 1;
        Ok(Slot {
            shared: Arc::clone(&self.shared),
            key: Some(key),
        })
    }

    /// Slots held by `key` now.
    #[must_use]
    pub fn held(&self, key: &K) -> usize {
        lock(&self.shared).per_key.get(key).copied().unwrap_or(0)
    }

    /// Slots held now, and the number of keys holding any.
    #[must_use]
    pub fn total(&self) -> (usize, usize) {
        let c = lock(&self.shared);
        (c.total, c.per_key.len())
    }
}

/// One slot of a [`Slots`], given back when dropped.
#[derive(Debug)]
pub struct Slot<K: Hash + Eq> {
    shared: Arc<Mutex<Counts<K>>>,
    /// `Some` until dropped.
    key: Option<K>,
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut c = lock(&self.shared);
        c.total = c.total.saturating_sub(1);
        if let Some(held) = c.per_key.get_mut(&key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                c.per_key.remove(&key);
            }
        }
    }
}

/// The counts; a panic elsewhere while holding the lock leaves them
/// consistent (every update is a whole step), so poisoning is ignored.
fn lock<K>(m: &Mutex<Counts<K>>) -> MutexGuard<'_, Counts<K>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_key_cap_refuses_only_that_key() {
        let slots = Slots::new(10, 2);
        let a1 = slots.take(ip("10.0.0.1")).unwrap();
        let _a2 = slots.take(ip("10.0.0.1")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.1")).unwrap_err(), Full::Key);
        let _b = slots.take(ip("10.0.0.2")).unwrap();
        assert_eq!(slots.held(&ip("10.0.0.1")), 2);
        assert_eq!(slots.total(), (3, 2));
        drop(a1);
        assert_eq!(slots.held(&ip("10.0.0.1")), 1);
        let _a3 = slots.take(ip("10.0.0.1")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.1")).unwrap_err(), Full::Key);
    }

    #[test]
    fn total_cap_refuses_every_key_until_a_slot_is_given_back() {
        let slots = Slots::new(3, 2);
        let held: Vec<_> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().map(|a| slots.take(ip(a)).unwrap()).collect();
        assert_eq!(slots.take(ip("10.0.0.4")).unwrap_err(), Full::Total);
        // The total is checked first: a key at its share is told the server is full.
        assert_eq!(slots.take(ip("10.0.0.1")).unwrap_err(), Full::Total);
        drop(held);
        assert_eq!(slots.total(), (0, 0));
        slots.take(ip("10.0.0.4")).unwrap();
    }

    #[test]
    fn refusals_take_nothing_and_idle_keys_are_forgotten() {
        let slots = Slots::new(100, 1);
        let a = slots.take(ip("10.0.0.1")).unwrap();
        for _ in 0..50 {
            assert_eq!(slots.take(ip("10.0.0.1")).unwrap_err(), Full::Key);
        }
        assert_eq!(slots.total(), (1, 1));
        drop(a);
        assert_eq!(slots.total(), (0, 0), "no entry left for a key that holds nothing");
        // Many keys coming and going leave nothing behind.
        for i in 0..=255u8 {
            drop(slots.take(IpAddr::from([10, 1, 0, i])).unwrap());
        }
        assert_eq!(slots.total(), (0, 0));
    }

    #[test]
    fn slots_are_given_back_from_other_threads() {
        let slots = Arc::new(Slots::new(1000, 1000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let slots = Arc::clone(&slots);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let s = slots.take(format!("client-{t}")).unwrap();
                        drop(s);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(slots.total(), (0, 0));
    }
}
