//! A partition group's Raft log on storage v2: [`WalGroup`] implements
//! [`crate::log_store::GroupLog`] over [`storage::log::GroupLog`] (one group
//! of a multi-group write-ahead log: one fdatasync covers every group of
//! the log). openraft's conformance suite runs on it
//! (`tests/log_suite.rs`), and crash tests abort inside it
//! (`tests/wal_crash.rs`).
//!
//! What storage v2 already gives, item by item of the adapter's contract
//! ([`crate::log_store`]): entries readable as soon as `append` returns
//! (in-memory tail), index 0 as a real index, `Backpressure` on a full queue
//! (the adapter waits it out), clamped and byte-capped reads, the purge mark
//! with its term, vote and committed log id stored durably, truncation.
//!
//! Crash points (tests only): `MAPLE_RAFT_CRASH_AT=<op>@<n>` aborts the
//! process right after the n-th `<op>` (`append`, `truncate`, `purge`,
//! `vote`, `committed`) was handed to the log and before it is known to be
//! durable — the state a kill -9 leaves most often.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use storage::log::{GroupLog as StorageGroup, LogId};
use storage::{Completion, Entry, StorageError};

use crate::log_store::{AppendError, GroupLog, LogBounds, LogRecord};

/// Environment variable of the adapter's crash points.
pub const CRASH_ENV: &str = "MAPLE_RAFT_CRASH_AT";

/// The adapter's operations, for the crash points.
pub const CRASH_OPS: [&str; 5] = ["append", "truncate", "purge", "vote", "committed"];

/// A group of a storage v2 log as a Raft log.
#[derive(Clone)]
pub struct WalGroup {
    group: StorageGroup,
}

impl WalGroup {
    pub fn new(group: StorageGroup) -> WalGroup {
        WalGroup { group }
    }

    pub fn inner(&self) -> &StorageGroup {
        &self.group
    }
}

/// Durability of one operation.
pub type Durable = Pin<Box<dyn Future<Output = io::Result<()>>>>;

fn to_io(e: StorageError) -> io::Error {
    match e {
        StorageError::Io { context, source } => io::Error::new(source.kind(), format!("{context}: {source}")),
        other => io::Error::other(other.to_string()),
    }
}

fn durable<T: 'static>(c: Completion<T>) -> Durable {
    Box::pin(async move { c.await.map(|_| ()).map_err(to_io) })
}

/// `MAPLE_RAFT_CRASH_AT=<op>@<n>`: abort after the n-th `op` (n from 1).
fn crash_point(op: &'static str) {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
    let target = TARGET.get_or_init(|| {
        let v = std::env::var(CRASH_ENV).ok()?;
        let (name, n) = v.split_once('@').unwrap_or((v.as_str(), "1"));
        Some((name.to_string(), n.parse().ok()?))
    });
    let Some((name, n)) = target else { return };
    if name != op {
        return;
    }
    let i = CRASH_OPS.iter().position(|o| *o == op).expect("a known op");
    if SEEN[i].fetch_add(1, Ordering::SeqCst) + 1 == *n {
        eprintln!("raft log crash point: {op}@{n}");
        std::process::abort();
    }
}

impl GroupLog for WalGroup {
    type Durable = Durable;

    fn append(&mut self, records: Vec<LogRecord>) -> Result<Durable, AppendError> {
        let entries = records.iter().map(|r| Entry::new(r.term, r.index, r.payload.to_vec())).collect();
        let res = match self.group.append(entries) {
            Ok(c) => Ok(durable(c)),
            Err(StorageError::Backpressure { .. }) => return Err(AppendError::Backpressure(records)),
            Err(e) => {
                tracing::error!(group = self.group.id(), error = %e, "raft log: append refused by the write-ahead log");
                Err(AppendError::Io(to_io(e)))
            }
        };
        crash_point("append");
        res
    }

    fn read(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<LogRecord>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let entries = self.group.read_capped(start..end, max_bytes).map_err(to_io)?;
        let mut expect = None;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if expect.is_some_and(|x| x != e.index) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("raft log: hole before index {}", e.index)));
            }
            expect = Some(e.index + 1);
            out.push(LogRecord { term: e.term, index: e.index, payload: e.payload.into() });
        }
        Ok(out)
    }

    fn bounds(&self) -> LogBounds {
        let pair = |l: LogId| (l.term, l.index);
        (self.group.last_purged().map(pair), self.group.last_log_id().map(pair))
    }

    fn truncate_after(&mut self, index: Option<u64>) -> io::Result<Durable> {
        let c = self.group.truncate_after(index).map_err(to_io)?;
        crash_point("truncate");
        Ok(durable(c))
    }

    fn purge_upto(&mut self, term: u64, index: u64) -> io::Result<Durable> {
        let c = self.group.purge_upto(LogId::new(term, index)).map_err(to_io)?;
        crash_point("purge");
        Ok(durable(c))
    }

    fn save_vote(&mut self, vote: &[u8]) -> io::Result<Durable> {
        let c = self.group.save_vote(vote).map_err(to_io)?;
        crash_point("vote");
        Ok(durable(c))
    }

    fn read_vote(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.group.read_vote())
    }

    fn save_committed(&mut self, committed: Option<(u64, u64)>) -> io::Result<Durable> {
        let c = self.group.save_committed(committed.map(|(t, i)| LogId::new(t, i))).map_err(to_io)?;
        crash_point("committed");
        Ok(durable(c))
    }

    fn read_committed(&self) -> io::Result<Option<(u64, u64)>> {
        Ok(self.group.read_committed().map(|l| (l.term, l.index)))
    }
}
