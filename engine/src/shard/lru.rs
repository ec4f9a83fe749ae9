//! A byte-bounded LRU map with a hard age limit.
//!
//! Bounded two ways: the total weight of the entries never exceeds
//! `max_bytes` (least recently used go first), and an entry older than
//! `max_age` is never returned (it is dropped when met). Callers that keep a
//! shorter "fresh" TTL compare the returned age themselves: an entry older
//! than the fresh TTL but younger than `max_age` is what stale serving uses.
//!
//! Time is passed in (`now`) so the policy is testable without sleeping.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Approximate bytes an entry holds (value only; the map adds the key).
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// Per-entry bookkeeping overhead counted against the budget.
const ENTRY_OVERHEAD: usize = 96;

struct Entry<V> {
    value: V,
    stored_at: Instant,
    tick: u64,
    weight: usize,
}

pub struct ByteLru<V> {
    map: HashMap<String, Entry<V>>,
    /// tick → key; the smallest tick is the least recently used.
    order: BTreeMap<u64, String>,
    next_tick: u64,
    bytes: usize,
    max_bytes: usize,
    max_age: Duration,
    evictions: u64,
}

impl<V: Weigh> ByteLru<V> {
    pub fn new(max_bytes: usize, max_age: Duration) -> ByteLru<V> {
        ByteLru { map: HashMap::new(), order: BTreeMap::new(), next_tick: 0, bytes: 0, max_bytes, max_age, evictions: 0 }
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// The value and its age; marks it most recently used. An entry past
    /// `max_age` is removed and not returned.
    pub fn get(&mut self, key: &str, now: Instant) -> Option<(&V, Duration)> {
        let age = {
            let e = self.map.get(key)?;
            now.saturating_duration_since(e.stored_at)
        };
        if age > self.max_age {
            self.remove(key);
            self.evictions += 1;
            return None;
        }
        let tick = self.tick();
        let e = self.map.get_mut(key).expect("checked above");
        let old = std::mem::replace(&mut e.tick, tick);
        let k = self.order.remove(&old).expect("order holds every key");
        self.order.insert(tick, k);
        let e = &self.map[key];
        Some((&e.value, age))
    }

    /// Inserts or replaces. Returns false (and stores nothing) when the
    /// entry alone is bigger than the whole budget.
    pub fn insert(&mut self, key: String, value: V, now: Instant) -> bool {
        let weight = value.weight() + key.len() + ENTRY_OVERHEAD;
        if weight > self.max_bytes {
            self.remove(&key);
            return false;
        }
        self.remove(&key);
        while self.bytes + weight > self.max_bytes {
            let (_, lru_key) = self.order.pop_first().expect("bytes > 0 implies an entry");
            let e = self.map.remove(&lru_key).expect("order and map agree");
            self.bytes -= e.weight;
            self.evictions += 1;
        }
        let tick = self.tick();
        self.order.insert(tick, key.clone());
        self.map.insert(key, Entry { value, stored_at: now, tick, weight });
        self.bytes += weight;
        debug_assert_eq!(self.map.len(), self.order.len());
        debug_assert!(self.bytes <= self.max_bytes);
        true
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let e = self.map.remove(key)?;
        self.order.remove(&e.tick);
        self.bytes -= e.weight;
        Some(e.value)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Entries dropped for space or age since creation.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Blob(usize);
    impl Weigh for Blob {
        fn weight(&self) -> usize {
            self.0
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn evicts_least_recently_used_to_stay_under_budget() {
        let now = Instant::now();
        // room for exactly two 1000-byte values with their overhead
        let per = 1000 + 1 + ENTRY_OVERHEAD;
        let mut lru = ByteLru::new(2 * per, HOUR);
        assert!(lru.insert("a".into(), Blob(1000), now));
        assert!(lru.insert("b".into(), Blob(1000), now));
        assert!(lru.get("a", now).is_some()); // a is now the most recent
        assert!(lru.insert("c".into(), Blob(1000), now));
        assert!(lru.get("b", now).is_none(), "b was least recently used");
        assert!(lru.get("a", now).is_some());
        assert!(lru.get("c", now).is_some());
        assert_eq!(lru.len(), 2);
        assert!(lru.bytes() <= lru.max_bytes());
        assert_eq!(lru.evictions(), 1);
    }

    #[test]
    fn entries_past_max_age_are_not_returned() {
        let t0 = Instant::now();
        let mut lru = ByteLru::new(1 << 20, Duration::from_secs(10));
        lru.insert("k".into(), Blob(10), t0);
        let (_, age) = lru.get("k", t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(age, Duration::from_secs(4));
        assert!(lru.get("k", t0 + Duration::from_secs(11)).is_none());
        assert!(lru.is_empty());
        assert_eq!(lru.bytes(), 0);
    }

    #[test]
    fn oversized_entry_is_refused_and_replacing_keeps_accounting_exact() {
        let now = Instant::now();
        let mut lru = ByteLru::new(500, HOUR);
        assert!(!lru.insert("big".into(), Blob(10_000), now));
        assert!(lru.is_empty());
        assert!(lru.insert("k".into(), Blob(100), now));
        let before = lru.bytes();
        assert!(lru.insert("k".into(), Blob(200), now));
        assert_eq!(lru.bytes(), before + 100);
        assert_eq!(lru.len(), 1);
        lru.remove("k");
        assert_eq!(lru.bytes(), 0);
    }
}
