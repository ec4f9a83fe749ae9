//! A group's in-memory view of its log: what `append` has accepted (written
//! or not), where each live entry is on disk once written, and a bounded
//! cache of recent entries.
//!
//! Every operation on a group is validated and applied here first, under the
//! group's mutex, and queued for the syncer in the same critical section, so
//! the queue holds a group's operations in the order this view applied them.
//! Each operation gets a number (`op`); a slot remembers the operation that
//! created it, so the syncer publishes a location only to the slot it wrote
//! (not to a later entry that replaced it), and "durable up to operation S"
//! translates into a durable index with one binary search (slot ops never
//! decrease along the log).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::meta::Meta;
use super::{GroupId, LogId};
use crate::error::StorageError;
use crate::Entry;

/// Where a written entry's frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub seq: u64,
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub term: u64,
    /// The operation that created this slot.
    pub op: u64,
    /// Set once the frame is written (and synced).
    pub loc: Option<Loc>,
    /// The entry itself: always while unwritten, then while the cache keeps it.
    pub data: Option<Arc<Entry>>,
}

/// What an accepted append asks the syncer to write before its entries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppendPlan {
    /// An implicit truncation (the append replaces the tail from its first
    /// index): the group's last log id just before the new entries.
    pub truncate: Option<Option<LogId>>,
}

pub(crate) struct GroupInner {
    pub meta: Meta,
    /// Slots of the live entries `meta.first ..= meta.last_live()`.
    pub slots: VecDeque<Slot>,
    pub next_op: u64,
    /// Every operation up to this one is durable.
    pub synced_op: u64,
    /// Payload bytes held by `data` of written slots (the cache).
    pub cached_bytes: usize,
    /// Index below which no written slot holds cached data.
    pub cache_lo: u64,
}

pub(crate) struct GroupCell {
    pub id: GroupId,
    inner: Mutex<GroupInner>,
}

impl GroupCell {
    pub fn new(id: GroupId, meta: Meta, slots: VecDeque<Slot>) -> GroupCell {
        let cache_lo = meta.first;
        GroupCell { id, inner: Mutex::new(GroupInner { meta, slots, next_op: 1, synced_op: 0, cached_bytes: 0, cache_lo }) }
    }

    pub fn lock(&self) -> MutexGuard<'_, GroupInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn payload_cost(e: &Entry) -> usize {
    e.payload.len() + 64
}

impl GroupInner {
    fn slot(&self, index: u64) -> Option<&Slot> {
        let k = index.checked_sub(self.meta.first)?;
        self.slots.get(usize::try_from(k).ok()?)
    }

    /// Term of live entry `index`, or of the purge point.
    pub fn term_of(&self, index: u64) -> Option<u64> {
        if let Some(s) = self.slot(index) {
            return Some(s.term);
        }
        self.meta.purged.filter(|p| p.index == index).map(|p| p.term)
    }

    /// Check an append; nothing changes.
    pub fn plan_append(&self, entries: &[Entry], max_entry: usize) -> Result<AppendPlan, StorageError> {
        let e0 = &entries[0];
        for e in entries {
            if e.payload.len() > max_entry {
                return Err(StorageError::EntryTooLarge { bytes: e.payload.len(), limit: max_entry });
            }
        }
        for w in entries.windows(2) {
            if w[1].index != w[0].index.wrapping_add(1) {
                return Err(StorageError::NonContiguous { expected: w[0].index.wrapping_add(1), got: w[1].index });
            }
            if w[1].term < w[0].term {
                return Err(StorageError::TermRegression { index: w[1].index, previous: w[0].term, got: w[1].term });
            }
        }
        if entries.last().expect("non-empty").index == u64::MAX {
            return Err(StorageError::InvalidArgument("index u64::MAX is reserved".into()));
        }
        let m = &self.meta;
        let (prev, truncate) = match m.last {
            None => (None, None),
            Some(l) if e0.index == l.index + 1 => (Some(l), None),
            Some(l) if e0.index > l.index + 1 => return Err(StorageError::NonContiguous { expected: l.index + 1, got: e0.index }),
            Some(_) => {
                // A conflict: the append replaces the tail from e0.index.
                if let Some(p) = m.purged {
                    if e0.index <= p.index {
                        return Err(StorageError::InvalidArgument(format!(
                            "append at index {} would replace purged entries (purged up to {})",
                            e0.index, p.index
                        )));
                    }
                }
                if e0.index < m.first {
                    return Err(StorageError::NonContiguous { expected: m.first, got: e0.index });
                }
                let prev = if e0.index == m.first {
                    if m.purged.is_some_and(|p| p.index + 1 != m.first) {
                        return Err(StorageError::InvalidArgument(format!(
                            "append at index {} would leave a gap after the purge point",
                            e0.index
                        )));
                    }
                    m.purged
                } else {
                    let i = e0.index - 1;
                    Some(LogId { term: self.term_of(i).expect("live entry"), index: i })
                };
                (prev, Some(prev))
            }
        };
        if let Some(p) = prev {
            if e0.term < p.term {
                return Err(StorageError::TermRegression { index: e0.index, previous: p.term, got: e0.term });
            }
        }
        Ok(AppendPlan { truncate })
    }

    /// Apply a checked append as operation `op`.
    pub fn apply_append(&mut self, plan: &AppendPlan, entries: &[Arc<Entry>], op: u64) {
        if let Some(last) = plan.truncate {
            self.apply_truncate(last);
        }
        for e in entries {
            self.meta.append_entry(LogId { term: e.term, index: e.index });
            self.cached_bytes += payload_cost(e);
            self.slots.push_back(Slot { term: e.term, op, loc: None, data: Some(e.clone()) });
        }
    }

    /// The last log id after `truncate_after(after)`, or `None` if it changes nothing.
    pub fn plan_truncate(&self, after: Option<u64>) -> Result<Option<Option<LogId>>, StorageError> {
        let m = &self.meta;
        let new_last = match after {
            None => m.purged,
            Some(a) => {
                if m.last.is_none_or(|l| a >= l.index) {
                    return Ok(None);
                }
                if let Some(p) = m.purged {
                    if a < p.index {
                        return Err(StorageError::InvalidArgument(format!("truncate after {a} reaches below the purge point {}", p.index)));
                    }
                }
                if a < m.first {
                    m.purged
                } else {
                    Some(LogId { term: self.term_of(a).expect("live entry"), index: a })
                }
            }
        };
        Ok((new_last != m.last).then_some(new_last))
    }

    pub fn apply_truncate(&mut self, last: Option<LogId>) {
        let keep = match last {
            Some(l) if l.index >= self.meta.first => (l.index - self.meta.first + 1) as usize,
            _ => 0,
        };
        while self.slots.len() > keep {
            let s = self.slots.pop_back().expect("longer than keep");
            if let Some(d) = s.data {
                self.cached_bytes -= payload_cost(&d);
            }
        }
        self.meta.truncate(last);
        if self.slots.is_empty() {
            self.cache_lo = self.meta.first;
        } else {
            self.cache_lo = self.cache_lo.min(self.meta.first + self.slots.len() as u64);
        }
    }

    /// Whether `purge_upto(upto)` changes anything; errors for a term that
    /// does not match the entry.
    pub fn plan_purge(&self, upto: LogId) -> Result<bool, StorageError> {
        if self.meta.purged.is_some_and(|p| upto.index <= p.index) {
            return Ok(false);
        }
        if let Some(t) = self.slot(upto.index).map(|s| s.term) {
            if t != upto.term {
                return Err(StorageError::InvalidArgument(format!("purge up to {upto:?}: entry {} has term {t}", upto.index)));
            }
        }
        Ok(true)
    }

    pub fn apply_purge(&mut self, upto: LogId) {
        while self.slots.front().is_some() && self.meta.first <= upto.index {
            let s = self.slots.pop_front().expect("non-empty");
            if let Some(d) = s.data {
                self.cached_bytes -= payload_cost(&d);
            }
            self.meta.first += 1;
        }
        self.meta.purge(upto);
        if self.meta.live() == 0 {
            for s in self.slots.drain(..) {
                if let Some(d) = s.data {
                    self.cached_bytes -= payload_cost(&d);
                }
            }
        }
        self.cache_lo = self.cache_lo.max(self.meta.first);
    }

    /// The syncer wrote operation `op`'s entry `index` at `loc`.
    pub fn publish(&mut self, op: u64, index: u64, loc: Loc) {
        let Some(k) = index.checked_sub(self.meta.first) else { return };
        if let Some(s) = self.slots.get_mut(k as usize) {
            if s.op == op {
                s.loc = Some(loc);
            }
        }
    }

    /// Drop cached entries (oldest written first) until the cache fits `budget`.
    pub fn trim_cache(&mut self, budget: usize) {
        while self.cached_bytes > budget {
            let Some(k) = self.cache_lo.checked_sub(self.meta.first) else {
                self.cache_lo = self.meta.first;
                continue;
            };
            let Some(s) = self.slots.get_mut(k as usize) else { return };
            if s.loc.is_none() {
                return; // unwritten entries stay in memory
            }
            if let Some(d) = s.data.take() {
                self.cached_bytes -= payload_cost(&d);
            }
            self.cache_lo += 1;
        }
    }

    /// Last index whose entry (and every one before it) is durable.
    pub fn durable_index(&self) -> Option<u64> {
        let k = self.slots.partition_point(|s| s.op <= self.synced_op);
        if k == 0 {
            if self.slots.is_empty() {
                self.meta.last.map(|l| l.index)
            } else {
                self.meta.purged.map(|p| p.index)
            }
        } else {
            Some(self.meta.first + k as u64 - 1)
        }
    }
}
