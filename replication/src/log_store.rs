//! openraft's `RaftLogStorage` / `RaftLogReader` over [`GroupLog`], the small
//! per-group log API storage v2 implements (and [`MemLog`] in memory).
//!
//! What the adapter guarantees, whatever the backend (issue 11's list):
//! 1. index 0 is an ordinary index (openraft writes its first membership
//!    entry there): "empty" is `None`, never 0;
//! 2. entries are readable as soon as `append` returns (the backend keeps
//!    them in memory until written): `GroupLog::append` applies in memory
//!    first and hands back a future for durability;
//! 3. a full backend queue (`AppendError::Backpressure`) is waited out with a
//!    bounded backoff ([`APPEND_WAIT_MAX`]) instead of failing — an error
//!    from `append` stops the group;
//! 4. reads are clamped to what the log holds;
//! 5. the purge mark keeps its term (`last_purged_log_id`);
//! 6. the committed log id is saved, so openraft re-applies on restart only
//!    up to it (an uncommitted tail that was later replaced is never applied);
//!    the backend gets one record per [`COMMITTED_EVERY`] entries (an older
//!    committed id only means re-applying less on restart, never more);
//! 7. `truncate_after(None)` empties the log; `limited_get_log_entries` stops
//!    after [`READ_CAP_BYTES`]; the vote has a fixed binary encoding;
//! 8. purge is clamped by a [`PurgeFloor`]: the index up to which the node's
//!    state machine is durable (its checkpoint). Logically purged entries
//!    above the floor stay on disk until the floor passes them, so a restart
//!    never finds the state machine behind the first entry of its log.

use std::cell::RefCell;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};

use crate::codec;
use crate::types::{log_id, term_of, Entry, LogId, Vote, C};

/// Longest time an append waits for room in a full backend queue.
pub const APPEND_WAIT_MAX: Duration = Duration::from_secs(10);
/// Byte cap of one `limited_get_log_entries` read (replication batches).
pub const READ_CAP_BYTES: usize = 4 << 20;

/// One entry as the log stores it: `(term, index)` + the encoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub term: u64,
    pub index: u64,
    pub payload: Bytes,
}

/// `(term, index)` of a log position.
pub type TermIndex = (u64, u64);
/// `(last purged, last)` positions of a log.
pub type LogBounds = (Option<TermIndex>, Option<TermIndex>);

/// Why an append was not taken.
#[derive(Debug)]
pub enum AppendError {
    /// The backend's queue is full: nothing was applied; the records come
    /// back so the caller can wait and retry.
    Backpressure(Vec<LogRecord>),
    Io(io::Error),
}

/// A Raft-log-shaped per-group log. Every mutating call takes effect in
/// memory at once (reads see it) and returns a future that resolves when it
/// is durable; such a future may be dropped (durability still happens, the
/// log is ordered: a later durable write implies the earlier ones).
pub trait GroupLog: 'static {
    type Durable: Future<Output = io::Result<()>> + 'static;

    /// Append records continuing the log (`index = last + 1`, or any index
    /// when the log is empty). Readable at once.
    fn append(&mut self, records: Vec<LogRecord>) -> Result<Self::Durable, AppendError>;
    /// Records with `start <= index < end`, in order, clamped to what the
    /// log holds; stops once `max_bytes` of payload are read (always returns
    /// at least one record when one is in range). A hole is an error.
    fn read(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<LogRecord>>;
    /// `(term, index)` of the last purged record and of the last record.
    fn bounds(&self) -> LogBounds;
    /// Remove every record after `index` (`None`: all of them).
    fn truncate_after(&mut self, index: Option<u64>) -> io::Result<Self::Durable>;
    /// Drop records up to and including `index`; remember `(term, index)`.
    fn purge_upto(&mut self, term: u64, index: u64) -> io::Result<Self::Durable>;
    fn save_vote(&mut self, vote: &[u8]) -> io::Result<Self::Durable>;
    fn read_vote(&self) -> io::Result<Option<Vec<u8>>>;
    fn save_committed(&mut self, committed: Option<(u64, u64)>) -> io::Result<Self::Durable>;
    fn read_committed(&self) -> io::Result<Option<(u64, u64)>>;
}

/// The index up to which the state machine is durable; purge never goes
/// physically past it. Shared by the group's log store and whatever makes
/// the state machine durable (the store writer's checkpoints, on their own
/// thread: `Send + Sync`).
#[derive(Clone, Debug)]
pub struct PurgeFloor(Arc<AtomicU64>);

impl PurgeFloor {
    /// No floor: for state machines that are durable when `apply` returns,
    /// and for tests.
    pub fn unlimited() -> PurgeFloor {
        PurgeFloor::at(Some(u64::MAX))
    }
    /// Purge may go up to `durable` (`None`: nothing may be purged yet).
    pub fn at(durable: Option<u64>) -> PurgeFloor {
        PurgeFloor(Arc::new(AtomicU64::new(Self::raw(durable))))
    }
    /// 0 = none, else index + 1 (saturating: `u64::MAX` is "no limit").
    fn raw(v: Option<u64>) -> u64 {
        v.map_or(0, |i| i.saturating_add(1))
    }
    pub fn get(&self) -> Option<u64> {
        match self.0.load(Ordering::Acquire) {
            0 => None,
            u64::MAX => Some(u64::MAX),
            v => Some(v - 1),
        }
    }
    /// Raise the floor (never lowers it).
    pub fn set(&self, durable: Option<u64>) {
        self.0.fetch_max(Self::raw(durable), Ordering::AcqRel);
    }
}

/// `save_committed` writes at most one record per this many committed entries.
pub const COMMITTED_EVERY: u64 = 64;

struct Shared<B> {
    log: B,
    /// The committed log id last handed to the backend.
    saved_committed: Option<LogId>,
    /// The committed log id last saved (the backend's may be older).
    committed: Option<LogId>,
    /// Logical purge mark (what openraft asked for); the backend's own mark
    /// may lag behind it (floor).
    purged: Option<LogId>,
}

/// The adapter: openraft's log store and log reader (clones share the log).
pub struct LogStore<B: GroupLog> {
    inner: Rc<RefCell<Shared<B>>>,
    floor: PurgeFloor,
}

impl<B: GroupLog> Clone for LogStore<B> {
    fn clone(&self) -> Self {
        LogStore { inner: self.inner.clone(), floor: self.floor.clone() }
    }
}

fn io_err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
}

fn to_pair(id: &LogId) -> (u64, u64) {
    (term_of(id), id.index)
}

fn from_pair(p: (u64, u64)) -> LogId {
    log_id(p.0, p.1)
}

fn decode_record(r: LogRecord) -> io::Result<Entry> {
    let payload = codec::decode_payload(&r.payload).map_err(|e| io_err("log entry payload", e))?;
    Ok(Entry { log_id: log_id(r.term, r.index), payload })
}

fn range_to_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start < end).then_some((start, end))
}

impl<B: GroupLog> LogStore<B> {
    pub fn new(log: B, floor: PurgeFloor) -> LogStore<B> {
        let purged = log.bounds().0.map(from_pair);
        let saved_committed = log.read_committed().ok().flatten().map(from_pair);
        LogStore { inner: Rc::new(RefCell::new(Shared { log, purged, saved_committed, committed: saved_committed })), floor }
    }

    /// Run `f` on the backend (tests, stats).
    pub fn with_log<R>(&self, f: impl FnOnce(&mut B) -> R) -> R {
        f(&mut self.inner.borrow_mut().log)
    }

    fn read_entries(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<Entry>> {
        let inner = self.inner.borrow();
        let start = match inner.purged {
            Some(p) => start.max(p.index + 1),
            None => start,
        };
        if start >= end {
            return Ok(Vec::new());
        }
        let records = inner.log.read(start, end, max_bytes)?;
        drop(inner);
        records.into_iter().map(decode_record).collect()
    }

    /// Purge physically what the floor allows of the logical purge mark.
    async fn purge_physical(&self) -> io::Result<()> {
        let fut = {
            let mut inner = self.inner.borrow_mut();
            let Some(logical) = inner.purged else { return Ok(()) };
            let Some(floor) = self.floor.get() else { return Ok(()) };
            let target = logical.index.min(floor);
            let physical = inner.log.bounds().0.map(|p| p.1);
            if physical.is_some_and(|p| p >= target) {
                return Ok(());
            }
            let target_id = if target == logical.index {
                to_pair(&logical)
            } else {
                match inner.log.read(target, target + 1, 1)?.first() {
                    Some(r) if r.index == target => (r.term, r.index),
                    _ => return Ok(()),
                }
            };
            inner.log.purge_upto(target_id.0, target_id.1)?
        };
        fut.await
    }

    /// The state machine became durable up to `index`: purge what the last
    /// purge request left on disk because of the floor.
    pub async fn advance_floor(&self, index: u64) -> io::Result<()> {
        self.floor.set(Some(index));
        self.purge_physical().await
    }
}

impl<B: GroupLog> RaftLogReader<C> for LogStore<B> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        match range_to_bounds(&range) {
            Some((s, e)) => self.read_entries(s, e, usize::MAX),
            None => Ok(Vec::new()),
        }
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        let raw = self.inner.borrow().log.read_vote()?;
        match raw {
            None => Ok(None),
            Some(b) => codec::decode_vote(&b).map(Some).map_err(|e| io_err("stored vote", e)),
        }
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, io::Error> {
        self.read_entries(start, end, READ_CAP_BYTES)
    }
}

impl<B: GroupLog> RaftLogStorage<C> for LogStore<B> {
    type LogReader = LogStore<B>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let inner = self.inner.borrow();
        let (_, last) = inner.log.bounds();
        let purged = inner.purged;
        let last = match (last.map(from_pair), purged) {
            (Some(l), Some(p)) if l.index > p.index => Some(l),
            (Some(_), Some(p)) => Some(p),
            (l, None) => l,
            (None, p) => p,
        };
        Ok(LogState { last_purged_log_id: purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let fut = self.inner.borrow_mut().log.save_vote(&codec::encode_vote(vote))?;
        fut.await.inspect_err(|e| tracing::error!(error = %e, "raft log: saving the vote failed"))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not awaited: a later durable write covers it, and a committed
        // index lost in a crash only means re-applying less on restart. For
        // the same reason not every advance is written: one record per
        // COMMITTED_EVERY entries (or at a term change) keeps the log's
        // syncer from writing a record per commit under load.
        let mut inner = self.inner.borrow_mut();
        let due = match (inner.saved_committed, committed) {
            (Some(old), Some(new)) => term_of(&new) != term_of(&old) || new.index >= old.index + COMMITTED_EVERY,
            (None, None) => false,
            _ => true,
        };
        if due {
            let _durable = inner.log.save_committed(committed.as_ref().map(to_pair))?;
            inner.saved_committed = committed;
        }
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.borrow().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records: Vec<LogRecord> = entries
            .into_iter()
            .map(|e| LogRecord { term: term_of(&e.log_id), index: e.log_id.index, payload: codec::encode_payload(&e.payload).into() })
            .collect();
        if records.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        let durable = loop {
            let res = self.inner.borrow_mut().log.append(records);
            match res {
                Ok(d) => break d,
                Err(AppendError::Io(e)) => {
                    tracing::error!(error = %e, "raft log: append failed; the group stops");
                    return Err(e);
                }
                Err(AppendError::Backpressure(back)) => {
                    if started.elapsed() > APPEND_WAIT_MAX {
                        let e = io::Error::new(io::ErrorKind::TimedOut, "raft log: backend queue full for too long");
                        tracing::error!(waited_ms = started.elapsed().as_millis() as u64, "{e}");
                        return Err(e);
                    }
                    records = back;
                    monoio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        };
        monoio::spawn(async move {
            let res = durable.await;
            if let Err(e) = &res {
                tracing::error!(error = %e, "raft log: append did not become durable");
            }
            callback.io_completed(res);
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let fut = {
            let mut inner = self.inner.borrow_mut();
            if let (Some(p), Some(t)) = (inner.purged, last_log_id) {
                if t.index < p.index {
                    return Err(io_err("truncate_after", format!("{} is below the purge mark {}", t.index, p.index)));
                }
            }
            inner.log.truncate_after(last_log_id.map(|l| l.index))?
        };
        fut.await.inspect_err(|e| tracing::error!(error = %e, "raft log: truncate failed"))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.purged.is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            inner.purged = Some(log_id);
        }
        self.purge_physical().await.inspect_err(|e| tracing::error!(error = %e, "raft log: purge failed"))
    }
}

// ---------------------------------------------------------------------------
// In-memory backend
// ---------------------------------------------------------------------------

/// An in-memory [`GroupLog`]: everything is "durable" at once. Optional
/// durable mirror for measurements ([`MemLog::with_durability`]).
#[derive(Default)]
pub struct MemLog {
    records: std::collections::VecDeque<LogRecord>,
    purged: Option<(u64, u64)>,
    vote: Option<Vec<u8>>,
    committed: Option<(u64, u64)>,
    /// Refuse this many appends with `Backpressure` (tests).
    pub backpressure_next: usize,
    durability: Option<Box<dyn Durability>>,
}

/// Makes a [`MemLog`]'s appends durable somewhere (a file, a WAL).
pub trait Durability: 'static {
    fn append(&mut self, records: &[LogRecord]) -> io::Result<DurableFuture>;
    fn truncate_after(&mut self, index: Option<u64>) -> io::Result<DurableFuture>;
}

pub type DurableFuture = std::pin::Pin<Box<dyn Future<Output = io::Result<()>>>>;

fn ready() -> DurableFuture {
    Box::pin(std::future::ready(Ok(())))
}

impl MemLog {
    pub fn new() -> MemLog {
        MemLog::default()
    }

    pub fn with_durability(d: impl Durability) -> MemLog {
        MemLog { durability: Some(Box::new(d)), ..MemLog::default() }
    }

    fn first_index(&self) -> Option<u64> {
        self.records.front().map(|r| r.index)
    }
}

impl GroupLog for MemLog {
    type Durable = DurableFuture;

    fn append(&mut self, records: Vec<LogRecord>) -> Result<DurableFuture, AppendError> {
        if self.backpressure_next > 0 {
            self.backpressure_next -= 1;
            return Err(AppendError::Backpressure(records));
        }
        let mut expect = match (self.records.back(), self.purged) {
            (Some(last), _) => Some(last.index + 1),
            (None, Some(p)) => Some(p.1 + 1),
            (None, None) => None,
        };
        for r in &records {
            if let Some(e) = expect {
                if r.index != e {
                    return Err(AppendError::Io(io_err("append", format!("index {} does not continue the log at {e}", r.index))));
                }
            }
            expect = Some(r.index + 1);
        }
        let durable = match &mut self.durability {
            Some(d) => d.append(&records).map_err(AppendError::Io)?,
            None => ready(),
        };
        self.records.extend(records);
        Ok(durable)
    }

    fn read(&self, start: u64, end: u64, max_bytes: usize) -> io::Result<Vec<LogRecord>> {
        let Some(first) = self.first_index() else { return Ok(Vec::new()) };
        let start = start.max(first);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut i = (start - first) as usize;
        while let Some(r) = self.records.get(i) {
            if r.index >= end {
                break;
            }
            if !out.is_empty() && bytes + r.payload.len() > max_bytes {
                break;
            }
            bytes += r.payload.len();
            out.push(r.clone());
            i += 1;
        }
        Ok(out)
    }

    fn bounds(&self) -> LogBounds {
        (self.purged, self.records.back().map(|r| (r.term, r.index)))
    }

    fn truncate_after(&mut self, index: Option<u64>) -> io::Result<DurableFuture> {
        match index {
            None => self.records.clear(),
            Some(i) => {
                while self.records.back().is_some_and(|r| r.index > i) {
                    self.records.pop_back();
                }
            }
        }
        match &mut self.durability {
            Some(d) => d.truncate_after(index),
            None => Ok(ready()),
        }
    }

    fn purge_upto(&mut self, term: u64, index: u64) -> io::Result<DurableFuture> {
        while self.records.front().is_some_and(|r| r.index <= index) {
            self.records.pop_front();
        }
        if self.purged.is_none_or(|p| p.1 < index) {
            self.purged = Some((term, index));
        }
        Ok(ready())
    }

    fn save_vote(&mut self, vote: &[u8]) -> io::Result<DurableFuture> {
        self.vote = Some(vote.to_vec());
        Ok(ready())
    }

    fn read_vote(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.vote.clone())
    }

    fn save_committed(&mut self, committed: Option<(u64, u64)>) -> io::Result<DurableFuture> {
        self.committed = committed;
        Ok(ready())
    }

    fn read_committed(&self) -> io::Result<Option<(u64, u64)>> {
        Ok(self.committed)
    }
}
