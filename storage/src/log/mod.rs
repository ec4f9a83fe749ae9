//! Storage v2: one write-ahead log shared by many Raft groups.
//!
//! One log directory, one syncer thread, many groups ([`GroupId`]), each
//! with its own dense index sequence — the raft-engine model: one
//! fdatasync covers the entries of every group of the log, so the fsyncs a
//! node makes do not grow with its number of partitions.
//!
//! # On-disk format
//!
//! ```text
//! <log dir>/
//!   LOCK                   flock held while the log is open
//!   MANIFEST               first_seq..=last_seq of the live segments (atomic, fsynced)
//!   00000000000000000007.log   segments, named by sequence number
//!   00000000000000000008.log   (the last one listed is the active one)
//! ```
//!
//! A segment is pre-allocated (zero-filled) and starts with a 32-byte
//! header (magic `MAPLLOG2`, version, its sequence number, checksum). Its
//! records are CRC-framed; the checksum also covers the segment's sequence
//! number. Record kinds: `Entry{group, term, index, payload}`,
//! `Vote{group, bytes}`, `Committed{group, log id?}`,
//! `Purge{group, log id}` (last purged log id, with its term),
//! `Truncate{group, last log id?}` and `GroupState` — the first record of
//! every segment, holding every group's vote, committed, purged, first
//! index and last log id as of the segment's start, so metadata records in
//! older segments are always superseded and never pin a segment. See
//! `format.rs` for the byte layout.
//!
//! The manifest is updated *before* records are written into a new segment
//! and *before* old segments are unlinked. A segment is deleted once no
//! group has a live (unpurged, not truncated) entry in it and it is not the
//! active one; [`Log::pinning_groups`] names the groups that hold the oldest
//! one (the Raft layer snapshots and purges those).
//!
//! # Recovery rules
//!
//! Only a damaged LAST record of the LAST segment, with nothing valid after
//! it, is a torn tail: it is cut (zeroed and fdatasynced). Everything else —
//! damage followed by any valid record, a bad segment header or magic,
//! damage in a closed segment, a missing or truncated segment, a manifest
//! that is missing or fails its checksum, a gap or a term regression in a
//! group's indexes, live entries no segment holds — refuses to open with
//! [`StorageError::Damaged`] / [`StorageError::Missing`], naming the file
//! and byte offset, before any byte on disk is changed. Leftovers of
//! interrupted rolls and collections (an unlisted newer segment with no
//! records, an unlisted older one, `*.tmp` files) are removed. Details in
//! `recovery.rs`.
//!
//! # Groups
//!
//! [`Log::group`] gives a [`GroupLog`]: a cheap `Clone + Send + Sync`
//! handle with the operations openraft's `RaftLogStorage` needs. Appends of
//! one group come from one thread at a time; different groups from any
//! threads. An entry is readable as soon as `append` returns (openraft
//! #1780), from an in-memory tail that also keeps recent entries for
//! replication reads (bounded by [`LogOptions::group_cache_bytes`]).
//! Index 0 is a valid index: there is no "0 = empty" sentinel (use
//! `Option`).

mod format;
mod group;
mod meta;
mod queue;
mod recovery;
mod syncer;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::future::Future;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub use crate::completion::Completion;
use crate::error::{IoContext, StorageError};
use crate::fsutil;
use crate::spare::SparePrep;
use crate::stats::SyncMetrics;
pub use crate::sync_mode::WalSync;
use crate::Entry;
use format::{Decoded, Record};
use group::{GroupCell, Loc, Slot};
use queue::{Op, Queue, Request};

pub(crate) const MANIFEST: &str = "MANIFEST";

/// A Raft group (partition) id inside one log.
pub type GroupId = u32;

/// A Raft log id: the term and index of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    pub term: u64,
    pub index: u64,
}

impl LogId {
    pub fn new(term: u64, index: u64) -> LogId {
        LogId { term, index }
    }
}

#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Size of each pre-allocated segment file.
    pub segment_bytes: u64,
    /// Appends that may wait for the syncer; one more is refused with
    /// `Backpressure` ([`GroupLog::append`]) or waits ([`GroupLog::append_within`]).
    /// Control operations are admitted up to twice this many requests.
    pub max_pending: usize,
    /// Largest payload of one entry.
    pub max_entry_bytes: usize,
    /// Largest vote.
    pub max_vote_bytes: usize,
    /// Bytes buffered before a `pwrite` inside one round.
    pub max_write_bytes: usize,
    /// Whether an operation is fdatasynced before it completes.
    pub sync: WalSync,
    /// Write zeros into new segments up front (faster fdatasync later).
    pub preallocate: bool,
    /// Per group: payload bytes of written entries kept in memory for reads
    /// (replication, the applier). Unwritten entries are always in memory.
    pub group_cache_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            max_pending: 4096,
            max_entry_bytes: 4 << 20,
            max_vote_bytes: 4096,
            max_write_bytes: 1 << 20,
            sync: WalSync::Fsync,
            preallocate: true,
            group_cache_bytes: 1 << 20,
        }
    }
}

impl LogOptions {
    pub fn fsyncs(&self) -> bool {
        self.sync == WalSync::Fsync
    }

    fn validate(&self) -> Result<(), StorageError> {
        let need = (format::SEGMENT_HEADER
            + format::state_frame_len(std::iter::empty())
            + format::STATE_PER_GROUP
            + self.max_vote_bytes
            + format::entry_frame_len(self.max_entry_bytes)) as u64;
        if self.segment_bytes < need {
            return Err(StorageError::InvalidArgument(format!(
                "segment_bytes {} must hold a group state and one maximal entry ({need} bytes)",
                self.segment_bytes
            )));
        }
        if self.segment_bytes > u32::MAX as u64 {
            return Err(StorageError::InvalidArgument("segment_bytes must be < 4 GiB".into()));
        }
        if self.max_pending == 0 || self.max_write_bytes == 0 {
            return Err(StorageError::InvalidArgument("max_pending and max_write_bytes must be > 0".into()));
        }
        Ok(())
    }

    /// How many groups fit the GroupState record of one segment (with
    /// maximal votes, next to a maximal entry).
    fn max_groups(&self) -> usize {
        let room = self.segment_bytes as usize
            - format::SEGMENT_HEADER
            - format::state_frame_len(std::iter::empty())
            - format::entry_frame_len(self.max_entry_bytes);
        room / (format::STATE_PER_GROUP + self.max_vote_bytes)
    }
}

/// A torn tail cut at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    pub offset: u64,
    /// Bytes zeroed (from `offset` to the last non-zero byte).
    pub bytes: u64,
}

/// What [`Log::open`] found and repaired.
#[derive(Debug, Clone, Default)]
pub struct LogRecovery {
    pub first_seq: u64,
    pub last_seq: u64,
    pub segments: usize,
    /// Whole records replayed.
    pub records: u64,
    /// Groups with any state.
    pub groups: usize,
    /// Live entries over all groups.
    pub live_entries: u64,
    pub torn_tail: Option<TornTail>,
    /// Leftovers removed: temporary files, segments of interrupted rolls
    /// and collections.
    pub removed_files: Vec<PathBuf>,
    pub duration: Duration,
}

/// Snapshot of one log's numbers, for metrics.
#[derive(Clone)]
pub struct LogStats {
    pub sync: WalSync,
    /// Bytes of records in the live segments (not the pre-allocated size).
    pub log_bytes: u64,
    pub segments: usize,
    pub first_seq: u64,
    pub last_seq: u64,
    pub groups: usize,
    /// Groups with live entries in the oldest segment (when it is not the active one).
    pub pinning_groups: Vec<GroupId>,
    /// Requests queued for the syncer right now.
    pub pending_requests: usize,
    pub appended_entries: u64,
    pub appended_bytes: u64,
    pub fsyncs: u64,
    pub fsync_seconds_total: f64,
    pub sync_rounds: u64,
    pub backpressure_rejections: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// fdatasync latency in microseconds.
    pub fsync_latency_us: Histogram<u64>,
    /// Entries made durable by one write + sync round (group-commit batch size).
    pub entries_per_fsync: Histogram<u64>,
    pub recovery: LogRecovery,
}

fn hist_summary(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "empty".into();
    }
    format!("n={} mean={:.1} p50={} p99={} max={}", h.len(), h.mean(), h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
}

impl std::fmt::Debug for LogStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStats")
            .field("sync", &self.sync)
            .field("log_bytes", &self.log_bytes)
            .field("segments", &self.segments)
            .field("first_seq", &self.first_seq)
            .field("last_seq", &self.last_seq)
            .field("groups", &self.groups)
            .field("pinning_groups", &self.pinning_groups)
            .field("pending_requests", &self.pending_requests)
            .field("appended_entries", &self.appended_entries)
            .field("appended_bytes", &self.appended_bytes)
            .field("fsyncs", &self.fsyncs)
            .field("sync_rounds", &self.sync_rounds)
            .field("backpressure_rejections", &self.backpressure_rejections)
            .field("segments_created", &self.segments_created)
            .field("segments_deleted", &self.segments_deleted)
            .field("fsync_latency_us", &hist_summary(&self.fsync_latency_us))
            .field("entries_per_fsync", &hist_summary(&self.entries_per_fsync))
            .field("recovery", &self.recovery)
            .finish()
    }
}

impl LogStats {
    /// Mean entries per fdatasync round (0 when nothing was synced).
    pub fn mean_entries_per_fsync(&self) -> f64 {
        if self.entries_per_fsync.is_empty() {
            0.0
        } else {
            self.entries_per_fsync.mean()
        }
    }
}

pub(crate) struct SegFile {
    pub file: Arc<File>,
    pub path: PathBuf,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct GcInfo {
    pub first_seq: u64,
    pub last_seq: u64,
    pub segments: usize,
    pub log_bytes: u64,
    pub pinning: Vec<GroupId>,
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub opts: LogOptions,
    pub queue: Queue,
    pub groups: RwLock<BTreeMap<GroupId, Arc<GroupCell>>>,
    pub segments: RwLock<BTreeMap<u64, Arc<SegFile>>>,
    pub metrics: SyncMetrics,
    pub gc: Mutex<GcInfo>,
    pub poisoned: Mutex<Option<String>>,
    recovery: LogRecovery,
    syncer_thread: OnceLock<ThreadId>,
    /// Held open for the log's lifetime: the directory's flock.
    _lock: File,
}

/// Closes the queue and joins the syncer when the last handle goes.
struct Closer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.shared.queue.close();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            // Never join from the syncer itself (a waker it ran dropped the
            // last handle): it exits on its own once the queue is drained.
            if self.shared.syncer_thread.get() != Some(&std::thread::current().id()) {
                let _ = h.join();
            }
        }
    }
}

/// One multi-group write-ahead log. Cheap to clone; the syncer stops (after
/// finishing queued work) when the last `Log` / [`GroupLog`] is dropped.
#[derive(Clone)]
pub struct Log {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
}

/// One group's view of a [`Log`]: what openraft's `RaftLogStorage` needs.
#[derive(Clone)]
pub struct GroupLog {
    log: Log,
    cell: Arc<GroupCell>,
}

/// Resolves to the index of the last entry of the append, once durable.
pub type AppendFuture = Completion<u64>;

impl Log {
    /// Open (or create) the log in `dir`, recover it strictly (see the
    /// module docs), start its syncer.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<(Log, LogRecovery), StorageError> {
        opts.validate()?;
        std::fs::create_dir_all(dir).ctx(|| format!("create dir {}", dir.display()))?;
        let lock = fsutil::lock_dir(dir)?;
        let rec = recovery::recover(dir, &opts).inspect_err(|e| {
            tracing::error!(error = %e, dir = %dir.display(), "write-ahead log recovery refused");
        })?;
        let report = rec.report.clone();
        let mut cells = BTreeMap::new();
        let mut written = BTreeMap::new();
        for (gid, g) in rec.groups {
            let slots: VecDeque<Slot> = g.known.iter().map(|&(term, loc)| Slot { term, op: 0, loc: Some(loc), data: None }).collect();
            let cell = Arc::new(GroupCell::new(gid, g.meta.clone(), slots));
            written.insert(gid, syncer::Written { meta: g.meta, runs: g.runs, cell: cell.clone(), op: 0 });
            cells.insert(gid, cell);
        }
        let mut segments = BTreeMap::new();
        let mut closed_bytes = BTreeMap::new();
        let mut active = None;
        let n = rec.segments.len();
        for (i, s) in rec.segments.into_iter().enumerate() {
            let file = Arc::new(s.file);
            segments.insert(s.seq, Arc::new(SegFile { file: file.clone(), path: s.path.clone() }));
            if i + 1 == n {
                active = Some(syncer::Active { seq: s.seq, file, path: s.path, write_offset: s.write_offset, capacity: s.capacity });
            } else {
                closed_bytes.insert(s.seq, s.write_offset);
            }
        }
        let active = active.expect("recovery returns at least one segment");
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            queue: Queue::new(opts.max_pending),
            groups: RwLock::new(cells),
            segments: RwLock::new(segments),
            metrics: SyncMetrics::new(),
            gc: Mutex::new(GcInfo {
                first_seq: rec.first_seq,
                last_seq: active.seq,
                segments: closed_bytes.len() + 1,
                log_bytes: closed_bytes.values().sum::<u64>() + active.write_offset,
                pinning: if rec.first_seq < active.seq {
                    written.iter().filter(|(_, w)| w.runs.oldest() == Some(rec.first_seq)).map(|(g, _)| *g).collect()
                } else {
                    Vec::new()
                },
            }),
            poisoned: Mutex::new(None),
            recovery: report.clone(),
            syncer_thread: OnceLock::new(),
            _lock: lock,
        });
        let mut spare = SparePrep::new(dir, opts.segment_bytes, opts.preallocate, opts.fsyncs());
        spare.start();
        let syncer = syncer::Syncer::new(shared.clone(), written, active, rec.first_seq, closed_bytes, rec.active_has_state, spare);
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("log-sync:{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("log")))
            .spawn(move || {
                let _ = s2.syncer_thread.set(std::thread::current().id());
                syncer.run()
            })
            .ctx(|| "spawn log syncer thread".to_string())?;
        let closer = Arc::new(Closer { shared: shared.clone(), thread: Mutex::new(Some(thread)) });
        if report.torn_tail.is_some() || !report.removed_files.is_empty() {
            tracing::info!(dir = %dir.display(), torn_tail = ?report.torn_tail, removed = report.removed_files.len(), "write-ahead log recovered with repairs");
        }
        Ok((Log { shared, _closer: closer }, report))
    }

    /// The handle of group `id` (created on first use). Errors when one more
    /// group would not fit the per-segment group state.
    pub fn group(&self, id: GroupId) -> Result<GroupLog, StorageError> {
        if let Some(cell) = self.shared.groups.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(GroupLog { log: self.clone(), cell: cell.clone() });
        }
        let mut groups = self.shared.groups.write().unwrap_or_else(|p| p.into_inner());
        if !groups.contains_key(&id) && groups.len() >= self.shared.opts.max_groups() {
            return Err(StorageError::InvalidArgument(format!(
                "a log with segment_bytes {} holds at most {} groups",
                self.shared.opts.segment_bytes,
                self.shared.opts.max_groups()
            )));
        }
        let cell = groups.entry(id).or_insert_with(|| Arc::new(GroupCell::new(id, meta::Meta::default(), VecDeque::new()))).clone();
        Ok(GroupLog { log: self.clone(), cell })
    }

    /// Groups this log knows (recovered or opened since).
    pub fn groups(&self) -> Vec<GroupId> {
        self.shared.groups.read().unwrap_or_else(|p| p.into_inner()).keys().copied().collect()
    }

    /// Groups with live entries in the oldest segment, which keep it (and
    /// everything after it) on disk; snapshot + purge them to let it go.
    pub fn pinning_groups(&self) -> Vec<GroupId> {
        self.shared.gc.lock().unwrap_or_else(|p| p.into_inner()).pinning.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn sync_mode(&self) -> WalSync {
        self.shared.opts.sync
    }

    /// The manifest's live range `(first_seq, last_seq)`.
    pub fn seq_range(&self) -> (u64, u64) {
        let gc = self.shared.gc.lock().unwrap_or_else(|p| p.into_inner());
        (gc.first_seq, gc.last_seq)
    }

    /// Why the log refuses writes, if it does (an I/O error; reopen to recover).
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stats(&self) -> LogStats {
        let gc = self.shared.gc.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let c = &self.shared.metrics.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        LogStats {
            sync: self.shared.opts.sync,
            log_bytes: gc.log_bytes,
            segments: gc.segments,
            first_seq: gc.first_seq,
            last_seq: gc.last_seq,
            groups: self.shared.groups.read().unwrap_or_else(|p| p.into_inner()).len(),
            pinning_groups: gc.pinning,
            pending_requests: self.shared.queue.len(),
            appended_entries: get(&c.appended_entries),
            appended_bytes: get(&c.appended_bytes),
            fsyncs: get(&c.fsyncs),
            fsync_seconds_total: get(&c.fsync_micros_total) as f64 / 1e6,
            sync_rounds: get(&c.rounds),
            backpressure_rejections: get(&c.backpressure),
            segments_created: get(&c.segments_created),
            segments_deleted: get(&c.segments_deleted),
            fsync_latency_us: self.shared.metrics.fsync_latency(),
            entries_per_fsync: self.shared.metrics.entries_per_fsync(),
            recovery: self.shared.recovery.clone(),
        }
    }

    fn check_poisoned(&self) -> Result<(), StorageError> {
        match &*self.shared.poisoned.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(why) => Err(StorageError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }
}

/// An entry of a read: in memory, or where to pread it.
enum Item {
    Mem(Arc<Entry>),
    Disk { index: u64, term: u64, loc: Loc, seg: Arc<SegFile> },
}

/// A control operation of a group, planned before it is queued.
enum Ctl {
    Truncate(Option<LogId>),
    Purge(LogId),
    Vote(Vec<u8>),
    Committed(Option<LogId>),
}

/// Why a submit did not queue the operation.
enum Refused<T> {
    /// The queue is full: the input comes back for a retry.
    Full(T),
    Err(StorageError),
}

impl GroupLog {
    pub fn id(&self) -> GroupId {
        self.cell.id
    }

    /// The log this group lives in.
    pub fn log(&self) -> &Log {
        &self.log
    }

    fn shared(&self) -> &Shared {
        &self.log.shared
    }

    fn backpressure(&self) -> StorageError {
        self.shared().metrics.counters.backpressure.fetch_add(1, Ordering::Relaxed);
        StorageError::Backpressure { pending: self.shared().queue.len() }
    }

    /// Validate, queue and apply to the in-memory view, atomically for the
    /// group (under its lock, so the queue holds its operations in order).
    fn submit_append(&self, entries: Vec<Entry>, waker: Option<&std::task::Waker>) -> Result<AppendFuture, Refused<Vec<Entry>>> {
        if let Err(e) = self.log.check_poisoned() {
            return Err(Refused::Err(e));
        }
        let mut g = self.cell.lock();
        if entries.is_empty() {
            // Nothing to make durable: resolves at once with the last index.
            return match g.meta.last {
                Some(l) => Ok(Completion::ready(Ok(l.index))),
                None => Err(Refused::Err(StorageError::InvalidArgument("empty append to a group without entries".into()))),
            };
        }
        let plan = g.plan_append(&entries, self.shared().opts.max_entry_bytes).map_err(Refused::Err)?;
        let arcs: Vec<Arc<Entry>> = entries.into_iter().map(Arc::new).collect();
        let op = g.next_op;
        let (done, fut) = Completion::channel();
        let req = Request { group: self.cell.clone(), op_seq: op, op: Op::Append { plan, entries: arcs.clone(), done } };
        match self.shared().queue.push(req, waker) {
            Ok(()) => {}
            Err(None) => return Err(Refused::Err(StorageError::Closed)),
            Err(Some(req)) => {
                drop(req);
                let entries = arcs.into_iter().map(|a| Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone())).collect();
                return Err(Refused::Full(entries));
            }
        }
        g.next_op += 1;
        g.apply_append(&plan, &arcs, op);
        Ok(fut)
    }

    /// Append entries; resolves with the last index once they are durable.
    ///
    /// The first entry's index must be `last + 1` — or anything for a group
    /// with no entry and no purge (index 0 included) — or an index at or
    /// below `last` (but above the purge point), which replaces the tail
    /// from there (a Raft conflict). Indexes are dense, terms never
    /// decrease. The entries are readable as soon as this returns. A full
    /// queue answers [`StorageError::Backpressure`] at once (the HTTP
    /// path's 503); see [`GroupLog::append_within`] for a bounded wait.
    pub fn append(&self, entries: Vec<Entry>) -> Result<AppendFuture, StorageError> {
        match self.submit_append(entries, None) {
            Ok(f) => Ok(f),
            Err(Refused::Full(_)) => Err(self.backpressure()),
            Err(Refused::Err(e)) => Err(e),
        }
    }

    /// [`GroupLog::append`] that waits (asynchronously) for room in a full
    /// queue until `deadline`, then for durability: a full queue must not
    /// be an error that stops a Raft group. Resolves with `Backpressure`
    /// only if the deadline passes before the append is queued.
    pub fn append_within(&self, entries: Vec<Entry>, deadline: Instant) -> AppendWithin {
        AppendWithin { group: self.clone(), entries: Some(entries), deadline, queued: None, timer_armed: None }
    }

    /// Plan a control operation, queue it, then apply it to the in-memory
    /// view — only once it is queued, all under the group's lock.
    fn submit_control(
        &self,
        plan: impl FnOnce(&group::GroupInner) -> Result<Option<Ctl>, StorageError>,
    ) -> Result<Completion<()>, StorageError> {
        self.log.check_poisoned()?;
        let mut g = self.cell.lock();
        let Some(ctl) = plan(&g)? else { return Ok(Completion::ready(Ok(()))) };
        let op_seq = g.next_op;
        let (done, fut) = Completion::channel();
        let op = match &ctl {
            Ctl::Truncate(last) => Op::Truncate { last: *last, done },
            Ctl::Purge(upto) => Op::Purge { upto: *upto, done },
            Ctl::Vote(vote) => Op::Vote { vote: vote.clone(), done },
            Ctl::Committed(c) => Op::Committed { committed: *c, done },
        };
        match self.shared().queue.push(Request { group: self.cell.clone(), op_seq, op }, None) {
            Ok(()) => {}
            Err(None) => return Err(StorageError::Closed),
            Err(Some(_)) => return Err(self.backpressure()),
        }
        g.next_op += 1;
        match ctl {
            Ctl::Truncate(last) => g.apply_truncate(last),
            Ctl::Purge(upto) => g.apply_purge(upto),
            Ctl::Vote(vote) => g.meta.vote = Some(vote),
            Ctl::Committed(c) => g.meta.committed = c,
        }
        Ok(fut)
    }

    /// Remove every entry after `after` (`None`: every entry after the
    /// purge point). Readers see the result at once; resolves when durable.
    pub fn truncate_after(&self, after: Option<u64>) -> Result<Completion<()>, StorageError> {
        self.submit_control(|g| Ok(g.plan_truncate(after)?.map(Ctl::Truncate)))
    }

    /// Drop entries up to and including `upto` (after a snapshot or a
    /// checkpoint), remembering its term as the last purged log id. Purging
    /// past the last entry continues the log after `upto`. Resolves when
    /// the purge mark is durable; whole segments go once no group needs them.
    pub fn purge_upto(&self, upto: LogId) -> Result<Completion<()>, StorageError> {
        self.submit_control(|g| Ok(g.plan_purge(upto)?.then_some(Ctl::Purge(upto))))
    }

    /// Durably store the Raft vote (opaque bytes, at most `max_vote_bytes`).
    pub fn save_vote(&self, vote: &[u8]) -> Result<Completion<()>, StorageError> {
        let limit = self.shared().opts.max_vote_bytes;
        if vote.len() > limit {
            return Err(StorageError::EntryTooLarge { bytes: vote.len(), limit });
        }
        self.submit_control(|_| Ok(Some(Ctl::Vote(vote.to_vec()))))
    }

    /// The last vote saved, if any.
    pub fn read_vote(&self) -> Option<Vec<u8>> {
        self.cell.lock().meta.vote.clone()
    }

    /// Durably store the committed log id (restart replays only up to it).
    pub fn save_committed(&self, committed: Option<LogId>) -> Result<Completion<()>, StorageError> {
        self.submit_control(|_| Ok(Some(Ctl::Committed(committed))))
    }

    pub fn read_committed(&self) -> Option<LogId> {
        self.cell.lock().meta.committed
    }

    /// Last log id: the last entry's, or the purge point when no entry is
    /// live, `None` for a group with neither.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.cell.lock().meta.last
    }

    pub fn last_index(&self) -> Option<u64> {
        self.last_log_id().map(|l| l.index)
    }

    /// Last purged log id.
    pub fn last_purged(&self) -> Option<LogId> {
        self.cell.lock().meta.purged
    }

    /// Index of the first live entry (or of the next one when none is live;
    /// 0 for a group with nothing).
    pub fn first_index(&self) -> u64 {
        self.cell.lock().meta.first
    }

    /// Last index that is durable along with everything before it.
    pub fn durable_index(&self) -> Option<u64> {
        self.cell.lock().durable_index()
    }

    /// The term of live entry `index` (or of the purge point).
    pub fn term_of(&self, index: u64) -> Option<u64> {
        self.cell.lock().term_of(index)
    }

    /// Entries in `range`, clamped to what exists (a range past the end
    /// returns what is there; before the first live entry, from it).
    pub fn read(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, StorageError> {
        self.read_capped(range, usize::MAX)
    }

    /// [`GroupLog::read`] that stops once the payloads reach `max_bytes`
    /// (always at least one entry when any is in range).
    pub fn read_capped(&self, range: impl RangeBounds<u64>, max_bytes: usize) -> Result<Vec<Entry>, StorageError> {
        let items = {
            let g = self.cell.lock();
            let Some(last) = g.meta.last_live() else { return Ok(Vec::new()) };
            let start = match range.start_bound() {
                Bound::Included(&s) => s,
                Bound::Excluded(&s) => match s.checked_add(1) {
                    Some(s) => s,
                    None => return Ok(Vec::new()),
                },
                Bound::Unbounded => 0,
            }
            .max(g.meta.first);
            let end = match range.end_bound() {
                Bound::Included(&e) => e,
                Bound::Excluded(&e) => match e.checked_sub(1) {
                    Some(e) => e,
                    None => return Ok(Vec::new()),
                },
                Bound::Unbounded => u64::MAX,
            }
            .min(last);
            if start > end {
                return Ok(Vec::new());
            }
            let segs = self.shared().segments.read().unwrap_or_else(|p| p.into_inner());
            let mut items = Vec::with_capacity((end - start + 1).min(4096) as usize);
            let mut bytes = 0usize;
            for index in start..=end {
                if bytes >= max_bytes && !items.is_empty() {
                    break;
                }
                let s = &g.slots[(index - g.meta.first) as usize];
                match (&s.data, s.loc) {
                    (Some(d), _) => {
                        bytes = bytes.saturating_add(d.payload.len());
                        items.push(Item::Mem(d.clone()));
                    }
                    (None, Some(loc)) => {
                        let seg = segs.get(&loc.seq).cloned().ok_or_else(|| StorageError::Missing {
                            path: self.shared().dir.join(format::segment_name(loc.seq)),
                            detail: format!("group {}: entry {index} is in a segment that is gone", self.cell.id),
                        })?;
                        bytes = bytes.saturating_add(loc.len as usize);
                        items.push(Item::Disk { index, term: s.term, loc, seg });
                    }
                    (None, None) => unreachable!("a slot is in memory until written"),
                }
            }
            items
        };
        self.materialize(items)
    }

    /// Turn items into entries, reading runs of adjacent frames with one pread.
    fn materialize(&self, items: Vec<Item>) -> Result<Vec<Entry>, StorageError> {
        const SPAN: u64 = 1 << 20;
        let mut out = Vec::with_capacity(items.len());
        let mut i = 0;
        while i < items.len() {
            let (seq0, start, seg) = match &items[i] {
                Item::Mem(e) => {
                    out.push((**e).clone());
                    i += 1;
                    continue;
                }
                Item::Disk { loc, seg, .. } => (loc.seq, loc.offset as u64, seg.clone()),
            };
            // Extend over adjacent frames of the same segment.
            let mut j = i;
            let mut end = start;
            while let Some(Item::Disk { loc, .. }) = items.get(j) {
                if loc.seq != seq0 || loc.offset as u64 != end || (end - start > 0 && end + loc.len as u64 - start > SPAN) {
                    break;
                }
                end += loc.len as u64;
                j += 1;
            }
            let mut buf = vec![0u8; (end - start) as usize];
            seg.file.read_exact_at(&mut buf, start).ctx(|| format!("read {} at {start}", seg.path.display()))?;
            for item in &items[i..j] {
                let Item::Disk { index, term, loc, seg } = item else { unreachable!() };
                let off = (loc.offset as u64 - start) as usize;
                let frame = &buf[off..off + loc.len as usize];
                match format::decode(frame, loc.seq, frame.len()) {
                    Decoded::Record { rec: Record::Entry { group, id, payload }, frame_len }
                        if group == self.cell.id && id == (LogId { term: *term, index: *index }) && frame_len == frame.len() =>
                    {
                        out.push(Entry { term: *term, index: *index, payload: payload.to_vec() })
                    }
                    other => {
                        let why = match other {
                            Decoded::Invalid(w) => w.to_string(),
                            Decoded::End => "zeros where a record was written".to_string(),
                            Decoded::Record { .. } => format!("another record where group {} entry {index} was written", self.cell.id),
                        };
                        return Err(StorageError::damaged(&seg.path, loc.offset as u64, why));
                    }
                }
            }
            i = j;
        }
        Ok(out)
    }
}

/// Future of [`GroupLog::append_within`].
pub struct AppendWithin {
    group: GroupLog,
    entries: Option<Vec<Entry>>,
    deadline: Instant,
    queued: Option<AppendFuture>,
    timer_armed: Option<std::task::Waker>,
}

impl Future for AppendWithin {
    type Output = Result<u64, StorageError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(f) = &mut this.queued {
            return Pin::new(f).poll(cx);
        }
        let Some(entries) = this.entries.take() else { return Poll::Ready(Err(StorageError::Closed)) };
        match this.group.submit_append(entries, Some(cx.waker())) {
            Ok(f) => {
                this.queued = Some(f);
                Pin::new(this.queued.as_mut().expect("just set")).poll(cx)
            }
            Err(Refused::Err(e)) => Poll::Ready(Err(e)),
            Err(Refused::Full(entries)) => {
                if Instant::now() >= this.deadline {
                    return Poll::Ready(Err(this.group.backpressure()));
                }
                this.entries = Some(entries);
                if this.timer_armed.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
                    crate::timer::wake_at(this.deadline, cx.waker().clone());
                    this.timer_armed = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn handles_cross_threads() {
        send_sync::<Log>();
        send_sync::<GroupLog>();
        send::<AppendFuture>();
        send::<AppendWithin>();
        send::<Completion<()>>();
        send_sync::<crate::store::Store>();
        send_sync::<crate::store::Partition>();
        send::<crate::store::Snapshot>();
    }
}
