//! The idempotent key-value rules of the state store ([`crate::store`], and
//! the format-1 stores the migration reads).
//!
//! Every value stores the index of the log entry that wrote it
//! (`index: u64 BE | tag: u8 | value`), and an entry never overwrites a key
//! written by the same or a later entry, so replaying any suffix of the log
//! any number of times converges to the same state. Deletes leave a
//! tombstone (tag 1, the deleting entry's index) so that a replayed older
//! entry cannot resurrect the key; each tombstone also has a row
//! `index BE | key` in the tombstone tree, ordered by index, so a checkpoint
//! finds the ones it may compact with one range scan.

use crate::error::StorageError;
use crate::failpoint::{self, FailPoint};

const TAG_VALUE: u8 = 0;
const TAG_TOMBSTONE: u8 = 1;

/// A live `(key, value)` of the state store.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// One key write produced by a committed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvWrite {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    /// Delete `key` only if it holds a live value written by entry
    /// `written_by` or earlier: an eviction decided from a read of the state
    /// must not remove a newer value written after that read. A key that is
    /// already absent is left alone (no tombstone is written).
    Evict {
        key: Vec<u8>,
        written_by: u64,
    },
}

/// Outcome of applying one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    pub written: usize,
    pub skipped: usize,
}

/// A live value seen by a prefix visit.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub key: &'a [u8],
    /// Index of the entry that wrote the value.
    pub index: u64,
    pub value: &'a [u8],
}

/// The data tree and the tombstone tree of one key space.
#[derive(Clone)]
pub(crate) struct KvTrees {
    pub kv: sled::Tree,
    pub tombs: sled::Tree,
}

impl KvTrees {
    /// Apply the writes of entry `index`. `fresh`: no entry at or after
    /// `index` was ever applied here, so Put/Delete need not read the old
    /// value (an eviction always does).
    pub fn apply(&self, index: u64, writes: &[KvWrite], fresh: bool) -> Result<Applied, StorageError> {
        let mut out = Applied::default();
        for (i, w) in writes.iter().enumerate() {
            if i == writes.len() / 2 && i > 0 {
                failpoint::hit(FailPoint::MidApply);
            }
            let (key, value, evicts) = match w {
                KvWrite::Put { key, value } => (key, Some(value), None),
                KvWrite::Delete { key } => (key, None, None),
                KvWrite::Evict { key, written_by } => (key, None, Some(*written_by)),
            };
            let old = if fresh && evicts.is_none() { None } else { self.kv.get(key)? };
            let old_index = old.as_deref().map(value_index).transpose()?;
            let skip = match (evicts, &old) {
                // A key written by this entry or a later one stays (replay).
                _ if old_index.is_some_and(|i| i >= index) => true,
                (Some(written_by), Some(raw)) => is_tombstone(raw)? || old_index.is_some_and(|i| i > written_by),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if skip {
                out.skipped += 1;
                continue;
            }
            self.kv.insert(key.as_slice(), encode_value(index, value.map(|v| v.as_slice())))?;
            if value.is_none() {
                // Remember the tombstone for compaction once a checkpoint covers it.
                self.tombs.insert(tomb_key(index, key), &[])?;
            }
            out.written += 1;
        }
        Ok(out)
    }

    /// Apply the writes of several entries in index order, as
    /// [`KvTrees::apply`] one by one would: the entries at or above
    /// `fresh_from` (nothing at or after them was ever applied here) need no
    /// read of the old value unless they evict. Plain inserts, not a sled
    /// `Batch`: a batch writes an atomicity manifest into sled's log and,
    /// measured, tripled sled's I/O threads' work per toggle; atomicity
    /// across entries is not needed (a replay after a crash rewrites them).
    pub fn apply_batch(&self, entries: &[(u64, &[KvWrite])], fresh_from: u64) -> Result<Applied, StorageError> {
        let mut out = Applied::default();
        for (index, writes) in entries {
            let a = self.apply(*index, writes, *index >= fresh_from)?;
            out.written += a.written;
            out.skipped += a.skipped;
        }
        Ok(out)
    }

    /// The value of `key`, with the index of the entry that wrote it.
    pub fn get(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        match self.kv.get(key)? {
            None => Ok(None),
            Some(raw) => decode_value(&raw),
        }
    }

    /// Call `f` for every live value whose key starts with `prefix`, in key
    /// order (or reverse order), until it returns `false`.
    pub fn visit_prefix(&self, prefix: &[u8], reverse: bool, mut f: impl FnMut(Visit<'_>) -> bool) -> Result<(), StorageError> {
        let mut iter = self.kv.scan_prefix(prefix);
        loop {
            let item = if reverse { iter.next_back() } else { iter.next() };
            let Some(item) = item else { return Ok(()) };
            let (k, raw) = item?;
            let index = value_index(&raw)?;
            if is_tombstone(&raw)? {
                continue;
            }
            if !f(Visit { key: &k, index, value: &raw[9..] }) {
                return Ok(());
            }
        }
    }

    /// Delete keys outside the log; returns how many were present.
    pub fn forget(&self, keys: &[Vec<u8>]) -> Result<usize, StorageError> {
        let mut n = 0;
        for k in keys {
            n += self.kv.remove(k.as_slice())?.is_some() as usize;
        }
        Ok(n)
    }

    /// Every live `(key, value)` whose key starts with `prefix`, at most `limit`.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<KvPair>, StorageError> {
        let mut out = Vec::new();
        for item in self.kv.scan_prefix(prefix) {
            if out.len() >= limit {
                break;
            }
            let (k, raw) = item?;
            if let Some((_, v)) = decode_value(&raw)? {
                out.push((k.to_vec(), v));
            }
        }
        Ok(out)
    }

    /// Drop the tombstones written by entries `<= checkpoint`, which must be
    /// durably checkpointed.
    ///
    /// Why this is safe: a tombstone only stops a replayed *older* entry
    /// from resurrecting its key. Replay starts after the durable checkpoint
    /// (and the log before it may already be purged), so every entry a
    /// replay can apply has an index above `checkpoint` >= the tombstone's
    /// index and would overwrite the tombstone anyway. Deleting it changes
    /// no outcome. The deletions become durable with the next checkpoint's
    /// flush; if we crash before, sled may bring some back (with their
    /// index rows) and a later checkpoint compacts them again.
    pub fn compact_tombstones(&self, checkpoint: u64) -> Result<u64, StorageError> {
        let mut n = 0;
        let end = checkpoint.saturating_add(1).to_be_bytes();
        let range = if checkpoint == u64::MAX { self.tombs.range::<&[u8], _>(..) } else { self.tombs.range(..&end[..]) };
        for item in range {
            let (tk, _) = item?;
            let (index, key) = split_tomb_key(&tk)?;
            debug_assert!(index <= checkpoint);
            // Only if the key still holds exactly this tombstone (a later
            // Put may have replaced it).
            let cas = self.kv.compare_and_swap(key, Some(encode_value(index, None)), None::<&[u8]>)?;
            n += cas.is_ok() as u64;
            if n == 1 {
                failpoint::hit(FailPoint::MidTombstoneCompaction);
            }
            // kv first, then the index row: a crash in between leaves a row
            // whose tombstone is gone, which the next compaction just drops.
            self.tombs.remove(&tk)?;
        }
        Ok(n)
    }
}

pub(crate) fn tomb_key(index: u64, key: &[u8]) -> Vec<u8> {
    [&index.to_be_bytes()[..], key].concat()
}

pub(crate) fn split_tomb_key(tk: &[u8]) -> Result<(u64, &[u8]), StorageError> {
    if tk.len() < 8 {
        return Err(StorageError::Corrupt { what: "tombstone index".into(), detail: "row shorter than its index".into() });
    }
    Ok((u64::from_be_bytes(tk[..8].try_into().expect("8 bytes")), &tk[8..]))
}

pub(crate) fn is_tombstone(raw: &[u8]) -> Result<bool, StorageError> {
    value_index(raw)?;
    match raw[8] {
        TAG_VALUE => Ok(false),
        TAG_TOMBSTONE => Ok(true),
        t => Err(StorageError::Corrupt { what: "state value".into(), detail: format!("unknown tag {t}") }),
    }
}

pub(crate) fn encode_value(index: u64, value: Option<&[u8]>) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + value.map_or(0, |v| v.len()));
    v.extend_from_slice(&index.to_be_bytes());
    match value {
        Some(val) => {
            v.push(TAG_VALUE);
            v.extend_from_slice(val);
        }
        None => v.push(TAG_TOMBSTONE),
    }
    v
}

pub(crate) fn value_index(raw: &[u8]) -> Result<u64, StorageError> {
    if raw.len() < 9 {
        return Err(StorageError::Corrupt { what: "state value".into(), detail: "shorter than its header".into() });
    }
    Ok(u64::from_be_bytes(raw[..8].try_into().expect("8 bytes")))
}

/// `(index, Some(value))` for a live value, `(index, None)` for a tombstone.
pub(crate) fn decode_raw(raw: &[u8]) -> Result<(u64, Option<&[u8]>), StorageError> {
    let index = value_index(raw)?;
    match raw[8] {
        TAG_VALUE => Ok((index, Some(&raw[9..]))),
        TAG_TOMBSTONE => Ok((index, None)),
        t => Err(StorageError::Corrupt { what: "state value".into(), detail: format!("unknown tag {t}") }),
    }
}

pub(crate) fn decode_value(raw: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
    Ok(match decode_raw(raw)? {
        (index, Some(v)) => Some((index, v.to_vec())),
        (_, None) => None,
    })
}
