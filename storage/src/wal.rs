//! The write-ahead log: segment files, one syncer thread, group commit.
//!
//! Every mutation goes through one bounded channel to the log's syncer
//! thread, which is the only writer. The syncer drains whatever is queued,
//! writes it with `pwrite`, runs ONE fdatasync for all of it and only then
//! completes the waiters (group commit: appends that arrive while a sync runs
//! share the next one). Callers get a future that works from any runtime and
//! never block: a full queue answers `Backpressure` at once.
//!
//! Invariants (asserted in the syncer and checked at recovery):
//! - indices are dense: the entry after index `i` is `i + 1`, across segments;
//! - terms never decrease along the log;
//! - an append is acknowledged only after every byte of it, and of every
//!   entry before it, was fdatasynced (and its segment's name was made durable).

use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

pub use crate::completion::Completion;
use crate::completion::Reply;
use crate::error::{IoContext, StorageError};
use crate::frame::{self, FRAME_HEADER, SEGMENT_HEADER};
use crate::fsutil;
use crate::segment::{self, Segment, Torn};
use crate::spare::SparePrep;
use crate::stats::{SyncMetrics, WalStats};
use crate::{failpoint, Entry};

const VOTE_FILE: &str = "vote";
const PURGE_FILE: &str = "purged";
const MAX_VOTE_BYTES: usize = 64 * 1024;
/// Requests taken from the queue for one write + sync round.
const MAX_REQUESTS_PER_ROUND: usize = 4096;

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Size of each pre-allocated segment file.
    pub segment_bytes: u64,
    /// Requests (appends and control operations) that may wait for the
    /// syncer; one more is refused with `Backpressure`.
    pub max_pending: usize,
    /// Largest payload of one entry.
    pub max_entry_bytes: usize,
    /// Bytes buffered before a `pwrite` inside one round.
    pub max_write_bytes: usize,
    /// Whether an append is fdatasynced before it is acknowledged.
    /// [`WalSync::Off`] exists only to measure what the sync costs.
    pub sync: WalSync,
    /// Write zeros into new segments up front (faster fdatasync later).
    pub preallocate: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            max_pending: 4096,
            max_entry_bytes: 4 << 20,
            max_write_bytes: 1 << 20,
            sync: WalSync::Fsync,
            preallocate: true,
        }
    }
}

/// How the log makes appends durable (`maple serve --wal-sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalSync {
    /// fdatasync every write round before acknowledging it (group commit).
    #[default]
    Fsync,
    /// Benchmark mode: write every entry (same rounds, same batching) but
    /// never fdatasync; an append resolves once its bytes are in the page
    /// cache. Acknowledged entries survive a process crash, not a power loss.
    Off,
}

impl WalSync {
    pub fn as_str(self) -> &'static str {
        match self {
            WalSync::Fsync => "fsync",
            WalSync::Off => "off",
        }
    }
}

impl std::str::FromStr for WalSync {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<WalSync, StorageError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fsync" => Ok(WalSync::Fsync),
            "off" => Ok(WalSync::Off),
            other => Err(StorageError::InvalidArgument(format!("wal sync mode must be `fsync` or `off`, got {other:?}"))),
        }
    }
}

impl std::fmt::Display for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WalOptions {
    /// Whether this log calls fdatasync at all.
    pub fn fsyncs(&self) -> bool {
        self.sync == WalSync::Fsync
    }

    fn validate(&self) -> Result<(), StorageError> {
        let need = (SEGMENT_HEADER + FRAME_HEADER + self.max_entry_bytes) as u64;
        if self.segment_bytes < need {
            return Err(StorageError::InvalidArgument(format!(
                "segment_bytes {} must hold one maximal entry ({need} bytes)",
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
}

/// What `Wal::open` found and repaired.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Whole records found in the retained segments.
    pub entries_replayed: u64,
    pub first_index: u64,
    pub last_index: u64,
    pub segments: usize,
    /// Bytes after the last whole record that held data and were discarded
    /// (a torn or corrupt tail). 0 after a clean shutdown.
    pub dropped_tail_bytes: u64,
    /// Whole segment files discarded because they lay beyond a torn point.
    pub dropped_segments: usize,
    /// Where the scan stopped on bad bytes, if it did.
    pub torn: Option<Torn>,
    pub duration: Duration,
}

/// Resolves to the index of the last entry of the append, once durable.
pub type AppendFuture = Completion<u64>;

enum Request {
    Append { entries: Vec<Entry>, done: Reply<u64> },
    TruncateAfter { index: u64, done: Reply<()> },
    PurgeUpto { index: u64, done: Reply<()> },
    SaveVote { vote: Vec<u8>, done: Reply<()> },
}

struct Segments {
    /// Ascending by base; the last one is the write target. Never empty.
    list: Vec<Segment>,
}

impl Segments {
    fn find(&self, index: u64) -> Option<&Segment> {
        let pos = self.list.partition_point(|s| s.base <= index);
        let seg = self.list.get(pos.checked_sub(1)?)?;
        seg.contains(index).then_some(seg)
    }
}

pub(crate) struct Shared {
    dir: PathBuf,
    pub(crate) opts: WalOptions,
    segments: RwLock<Segments>,
    first_index: AtomicU64,
    last_index: AtomicU64,
    durable_index: AtomicU64,
    vote: RwLock<Option<Vec<u8>>>,
    pub(crate) metrics: SyncMetrics,
    recovery: Recovery,
    /// Why the log refuses writes (set once, by the syncer, when it is poisoned).
    poisoned: std::sync::OnceLock<String>,
    /// Held open for the log's lifetime: the directory's flock.
    _lock: fs::File,
}

struct SyncerThread(Option<JoinHandle<()>>);

impl Drop for SyncerThread {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// Handle to one write-ahead log. Cheap to clone; the syncer thread stops
/// (after finishing queued work) when the last clone is dropped.
#[derive(Clone)]
pub struct Wal {
    // Field order matters: `tx` must drop before `thread` joins the syncer.
    tx: flume::Sender<Request>,
    shared: Arc<Shared>,
    _thread: Arc<SyncerThread>,
}

impl Wal {
    /// Open (or create) the log in `dir`, recover it, start its syncer.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, Recovery), StorageError> {
        opts.validate()?;
        let started = Instant::now();
        fs::create_dir_all(dir).ctx(|| format!("create dir {}", dir.display()))?;
        let lock = fsutil::lock_dir(dir)?;
        remove_temp_files(dir)?;
        let purged = read_purge_mark(dir)?;
        let vote = read_vote_file(dir)?;
        finish_interrupted_purge(dir, purged)?;

        let mut rec = Recovery::default();
        let mut list: Vec<Segment> = Vec::new();
        let mut doomed: Vec<PathBuf> = Vec::new();
        let mut stop = false;
        for base in segment::list_segments(dir)? {
            let path = segment::segment_path(dir, base);
            if stop {
                rec.dropped_tail_bytes += file_extent(&path)?;
                doomed.push(path);
                continue;
            }
            let scan = match segment::scan(&path, base, opts.max_entry_bytes)? {
                Ok(scan) => scan,
                Err(reason) => {
                    rec.torn = Some(Torn { segment_base: base, offset: 0, reason });
                    rec.dropped_tail_bytes += file_extent(&path)?;
                    doomed.push(path);
                    stop = true;
                    continue;
                }
            };
            if let Some(prev) = list.last() {
                if scan.segment.base != prev.last_index() + 1 {
                    rec.torn = Some(Torn { segment_base: base, offset: 0, reason: "gap between segments" });
                    rec.dropped_tail_bytes += file_extent(&path)?;
                    doomed.push(path);
                    stop = true;
                    continue;
                }
            }
            let seg = scan.segment;
            if scan.torn.is_some() || scan.dropped_bytes > 0 {
                // Zero the dead tail so later appends never sit next to stale
                // bytes that could look like a record.
                let end = seg.write_offset + scan.dropped_bytes;
                segment::zero_range(&seg.file, &seg.path, seg.write_offset, end)?;
                seg.file.sync_data().ctx(|| format!("fdatasync {}", seg.path.display()))?;
                rec.dropped_tail_bytes += scan.dropped_bytes;
                rec.torn = scan.torn.or(Some(Torn { segment_base: base, offset: seg.write_offset, reason: "data after the end marker" }));
                stop = true;
            }
            list.push(seg);
        }
        rec.dropped_segments = doomed.len();
        remove_in_order(dir, &doomed)?;

        let needs_fresh = match list.last() {
            None => true,
            Some(last) => last.last_index() < purged,
        };
        if needs_fresh {
            // Empty directory, or everything up to the purge mark is gone.
            let spare = segment::prepare_spare(dir, opts.segment_bytes, opts.preallocate, opts.fsyncs())?;
            let seg = segment::install(spare, dir, purged + 1, opts.fsyncs())?;
            let old: Vec<PathBuf> = list.drain(..).map(|s| s.path).collect();
            remove_in_order(dir, &old)?;
            list.push(seg);
        }

        let first_index = list[0].base.max(purged + 1);
        let last_index = list.last().unwrap().last_index();
        let list = Segments { list };
        let last_term = match list.find(last_index) {
            Some(seg) if last_index >= first_index => seg.read_entry(last_index, opts.max_entry_bytes)?.term,
            _ => 0,
        };
        let list = list.list;
        rec.entries_replayed = list.iter().map(|s| s.offsets.len() as u64).sum();
        rec.first_index = first_index;
        rec.last_index = last_index;
        rec.segments = list.len();
        rec.duration = started.elapsed();

        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            segments: RwLock::new(Segments { list }),
            first_index: AtomicU64::new(first_index),
            last_index: AtomicU64::new(last_index),
            durable_index: AtomicU64::new(last_index),
            vote: RwLock::new(vote),
            metrics: SyncMetrics::new(),
            recovery: rec.clone(),
            poisoned: std::sync::OnceLock::new(),
            _lock: lock,
        });
        let (tx, rx) = flume::bounded(opts.max_pending);
        let mut syncer = Syncer {
            shared: shared.clone(),
            next_index: last_index + 1,
            last_term,
            buf: Vec::with_capacity(opts.max_write_bytes + FRAME_HEADER),
            buf_offsets: Vec::new(),
            dirty: Vec::new(),
            acks: Vec::new(),
            entries_in_round: 0,
            spare: SparePrep::new(dir, opts.segment_bytes, opts.preallocate, opts.fsyncs()),
            poisoned: None,
        };
        syncer.spare.start();
        let thread = std::thread::Builder::new()
            .name(format!("wal-sync:{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("wal")))
            .spawn(move || syncer.run(rx))
            .ctx(|| "spawn wal syncer thread".to_string())?;
        let wal = Wal { tx, shared, _thread: Arc::new(SyncerThread(Some(thread))) };
        Ok((wal, rec))
    }

    fn submit<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<Completion<T>, StorageError> {
        let (done, rx) = oneshot::channel();
        match self.tx.try_send(make(done)) {
            Ok(()) => Ok(Completion::from_receiver(rx)),
            Err(flume::TrySendError::Full(_)) => {
                self.shared.metrics.counters.backpressure.fetch_add(1, Ordering::Relaxed);
                Err(StorageError::Backpressure { pending: self.tx.len() })
            }
            Err(flume::TrySendError::Disconnected(_)) => Err(StorageError::Closed),
        }
    }

    /// Append entries; they must continue the log (`index = last + 1`, dense,
    /// terms non-decreasing). The future resolves with the last index once
    /// the entries are durable. Returns `Backpressure` at once when the
    /// queue is full.
    pub fn append(&self, entries: Vec<Entry>) -> Result<AppendFuture, StorageError> {
        let limit = self.shared.opts.max_entry_bytes;
        if let Some(big) = entries.iter().find(|e| e.payload.len() > limit) {
            return Err(StorageError::EntryTooLarge { bytes: big.payload.len(), limit });
        }
        self.submit(|done| Request::Append { entries, done })
    }

    /// Read entries `range` (written entries, durable or about to be).
    /// An empty range (`start > end`) reads nothing.
    pub fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = (*range.start(), *range.end());
        if start > end {
            return Ok(Vec::new());
        }
        let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
        let first = self.first_index();
        let last = segs.list.last().expect("never empty").last_index();
        if start < first || end > last {
            return Err(StorageError::OutOfRange { start, end, first, last });
        }
        let mut out = Vec::with_capacity((end - start + 1).min(1 << 16) as usize);
        let mut index = start;
        while index <= end {
            let seg = segs
                .find(index)
                .ok_or_else(|| StorageError::Corrupt { what: "segment index".into(), detail: format!("no segment holds index {index}") })?;
            let upto = end.min(seg.last_index());
            seg.read_entries(index, upto, self.shared.opts.max_entry_bytes, &mut out)?;
            index = upto + 1;
        }
        debug_assert_eq!(out.len() as u64, end - start + 1);
        Ok(out)
    }

    /// Remove every entry after `index` (Raft conflict resolution).
    pub fn truncate_after(&self, index: u64) -> Result<Completion<()>, StorageError> {
        self.submit(|done| Request::TruncateAfter { index, done })
    }

    /// Drop entries up to and including `index` (after a checkpoint or a
    /// snapshot); whole segments at or below it are deleted.
    pub fn purge_upto(&self, index: u64) -> Result<Completion<()>, StorageError> {
        self.submit(|done| Request::PurgeUpto { index, done })
    }

    /// Durably store the Raft vote (opaque bytes, at most 64 KiB).
    pub fn save_vote(&self, vote: &[u8]) -> Result<Completion<()>, StorageError> {
        if vote.len() > MAX_VOTE_BYTES {
            return Err(StorageError::EntryTooLarge { bytes: vote.len(), limit: MAX_VOTE_BYTES });
        }
        let vote = vote.to_vec();
        self.submit(|done| Request::SaveVote { vote, done })
    }

    /// The last vote saved, if any.
    pub fn read_vote(&self) -> Option<Vec<u8>> {
        self.shared.vote.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// First index still in the log (`last_index + 1` when empty).
    pub fn first_index(&self) -> u64 {
        self.shared.first_index.load(Ordering::Acquire)
    }

    /// Last index written by the syncer (readable; durable once its append resolves).
    pub fn last_index(&self) -> u64 {
        self.shared.last_index.load(Ordering::Acquire)
    }

    /// Last index known to be on stable storage.
    pub fn durable_index(&self) -> u64 {
        self.shared.durable_index.load(Ordering::Acquire)
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Why the log is poisoned (it refuses every write until reopened), if it is.
    pub fn poisoned(&self) -> Option<&str> {
        self.shared.poisoned.get().map(String::as_str)
    }

    /// How this log makes appends durable.
    pub fn sync_mode(&self) -> WalSync {
        self.shared.opts.sync
    }

    /// A point-in-time copy of the log's counters and histograms.
    pub fn stats(&self) -> WalStats {
        let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
        let log_bytes = segs.list.iter().map(|s| s.write_offset).sum();
        let segments = segs.list.len();
        drop(segs);
        WalStats::snapshot(
            &self.shared,
            log_bytes,
            segments,
            self.first_index(),
            self.last_index(),
            self.durable_index(),
            self.tx.len(),
            &self.shared.recovery,
        )
    }
}

/// The single writer of one log.
struct Syncer {
    shared: Arc<Shared>,
    /// Index the next accepted entry must carry.
    next_index: u64,
    last_term: u64,
    /// Frames not yet written, destined for the last segment.
    buf: Vec<u8>,
    buf_offsets: Vec<u32>,
    /// Files written since the last fdatasync.
    dirty: Vec<Arc<fs::File>>,
    /// Appends waiting for the next fdatasync: (reply, last index).
    acks: Vec<(Reply<u64>, u64)>,
    entries_in_round: u64,
    spare: SparePrep,
    /// Set after a failed write or sync; the log then refuses all writes.
    poisoned: Option<String>,
}

impl Syncer {
    fn run(mut self, rx: flume::Receiver<Request>) {
        let mut round = Vec::with_capacity(64);
        while let Ok(first) = rx.recv() {
            round.push(first);
            while round.len() < MAX_REQUESTS_PER_ROUND {
                match rx.try_recv() {
                    Ok(r) => round.push(r),
                    Err(_) => break,
                }
            }
            for req in round.drain(..) {
                self.handle(req);
            }
            self.commit_or_poison();
        }
        self.commit_or_poison();
        self.spare.discard();
    }

    fn handle(&mut self, req: Request) {
        if let Some(why) = &self.poisoned {
            let err = || StorageError::Poisoned(why.clone());
            match req {
                Request::Append { done, .. } => drop(done.send(Err(err()))),
                Request::TruncateAfter { done, .. } | Request::PurgeUpto { done, .. } | Request::SaveVote { done, .. } => {
                    drop(done.send(Err(err())))
                }
            }
            return;
        }
        match req {
            Request::Append { entries, done } => match self.check_append(&entries) {
                Err(e) => {
                    let _ = done.send(Err(e));
                }
                Ok(()) => match self.buffer_entries(&entries) {
                    Ok(last) => self.acks.push((done, last)),
                    Err(e) => {
                        let _ = done.send(Err(StorageError::Poisoned(e.to_string())));
                        self.poison(e);
                    }
                },
            },
            // Control operations are ordered after every append queued before
            // them: commit those first.
            Request::TruncateAfter { index, done } => {
                let r = self.commit().and_then(|_| self.truncate_after(index));
                self.reply_control(done, r);
            }
            Request::PurgeUpto { index, done } => {
                let r = self.commit().and_then(|_| self.purge_upto(index));
                self.reply_control(done, r);
            }
            Request::SaveVote { vote, done } => {
                let r = self.commit().and_then(|_| self.save_vote(vote));
                self.reply_control(done, r);
            }
        }
    }

    fn reply_control(&mut self, done: Reply<()>, r: Result<(), StorageError>) {
        match r {
            // Argument errors leave the log untouched; I/O errors poison it.
            Err(e @ (StorageError::OutOfRange { .. } | StorageError::InvalidArgument(_))) => {
                let _ = done.send(Err(e));
            }
            Err(e) => {
                let _ = done.send(Err(StorageError::Poisoned(e.to_string())));
                self.poison(e);
            }
            Ok(()) => {
                let _ = done.send(Ok(()));
            }
        }
    }

    fn check_append(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let mut term = self.last_term;
        for (expected, e) in (self.next_index..).zip(entries) {
            if e.index != expected {
                return Err(StorageError::NonContiguous { expected, got: e.index });
            }
            if e.term < term {
                return Err(StorageError::TermRegression { index: e.index, previous: term, got: e.term });
            }
            if e.payload.len() > self.shared.opts.max_entry_bytes {
                return Err(StorageError::EntryTooLarge { bytes: e.payload.len(), limit: self.shared.opts.max_entry_bytes });
            }
            term = e.term;
        }
        Ok(())
    }

    /// Encode entries into the write buffer (rolling segments as needed);
    /// returns the index of the last one.
    fn buffer_entries(&mut self, entries: &[Entry]) -> Result<u64, StorageError> {
        for e in entries {
            let flen = frame::frame_len(e.payload.len()) as u64;
            let (write_offset, capacity) = {
                let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
                let cur = segs.list.last().expect("never empty");
                (cur.write_offset, cur.capacity)
            };
            let mut at = write_offset + self.buf.len() as u64;
            if at + flen > capacity {
                self.write_buffer()?;
                self.roll(e.index)?;
                at = SEGMENT_HEADER as u64;
            }
            self.buf_offsets.push(at as u32);
            frame::encode_frame(e, &mut self.buf);
            self.next_index = e.index + 1;
            self.last_term = e.term;
            self.entries_in_round += 1;
            if self.buf.len() >= self.shared.opts.max_write_bytes {
                self.write_buffer()?;
            }
        }
        Ok(self.next_index - 1)
    }

    /// pwrite the buffered frames into the last segment and publish them to readers.
    fn write_buffer(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut segs = self.shared.segments.write().unwrap_or_else(|p| p.into_inner());
        let cur = segs.list.last_mut().expect("never empty");
        assert!(cur.write_offset + self.buf.len() as u64 <= cur.capacity, "write past segment end");
        assert_eq!(self.buf_offsets.first().copied(), Some(cur.write_offset as u32));
        use std::os::unix::fs::FileExt;
        cur.file.write_all_at(&self.buf, cur.write_offset).ctx(|| format!("write {}", cur.path.display()))?;
        cur.write_offset += self.buf.len() as u64;
        cur.offsets.extend_from_slice(&self.buf_offsets);
        let last = cur.last_index();
        if !self.dirty.iter().any(|f| Arc::ptr_eq(f, &cur.file)) {
            self.dirty.push(cur.file.clone());
        }
        drop(segs);
        let c = &self.shared.metrics.counters;
        c.appended_bytes.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        c.appended_entries.fetch_add(self.buf_offsets.len() as u64, Ordering::Relaxed);
        self.shared.last_index.store(last, Ordering::Release);
        self.buf.clear();
        self.buf_offsets.clear();
        Ok(())
    }

    /// Write what is buffered, fdatasync every touched file once, then
    /// complete the appends that were waiting.
    fn commit(&mut self) -> Result<(), StorageError> {
        self.write_buffer()?;
        if self.shared.opts.fsyncs() {
            for f in self.dirty.drain(..) {
                self.shared.metrics.fdatasync(&f, || format!("fdatasync of a segment in {}", self.shared.dir.display()))?;
            }
        } else {
            self.dirty.clear();
        }
        let durable = self.next_index - 1;
        self.shared.durable_index.store(durable, Ordering::Release);
        if self.entries_in_round > 0 {
            self.shared.metrics.record_round(self.entries_in_round);
            self.entries_in_round = 0;
        }
        for (done, last) in self.acks.drain(..) {
            debug_assert!(last <= durable);
            let _ = done.send(Ok(last));
        }
        Ok(())
    }

    fn commit_or_poison(&mut self) {
        if self.poisoned.is_none() {
            if let Err(e) = self.commit() {
                self.poison(e);
            }
        }
    }

    fn poison(&mut self, e: StorageError) {
        let why = e.to_string();
        tracing::error!(dir = %self.shared.dir.display(), error = %why, "write-ahead log poisoned: it refuses every write until the process restarts");
        let _ = self.shared.poisoned.set(why.clone());
        for (done, _) in self.acks.drain(..) {
            let _ = done.send(Err(StorageError::Poisoned(why.clone())));
        }
        self.buf.clear();
        self.buf_offsets.clear();
        self.poisoned = Some(why);
    }

    /// Start a new segment whose first entry will be `base`.
    fn roll(&mut self, base: u64) -> Result<(), StorageError> {
        assert!(self.buf.is_empty(), "roll with unwritten frames");
        let seg = segment::install(self.spare.take()?, &self.shared.dir, base, self.shared.opts.fsyncs())?;
        self.shared.metrics.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        let mut segs = self.shared.segments.write().unwrap_or_else(|p| p.into_inner());
        segs.list.push(seg);
        Ok(())
    }

    fn truncate_after(&mut self, index: u64) -> Result<(), StorageError> {
        let last = self.next_index - 1;
        if index >= last {
            return Ok(());
        }
        let first = self.shared.first_index.load(Ordering::Acquire);
        if index + 1 < first {
            return Err(StorageError::OutOfRange { start: index + 1, end: last, first, last });
        }
        let fsync = self.shared.opts.fsyncs();
        let max = self.shared.opts.max_entry_bytes;
        // 1. Unpublish, so readers never see entries that are going away.
        let (file, path, from, to, doomed) = {
            let mut segs = self.shared.segments.write().unwrap_or_else(|p| p.into_inner());
            let keep = segs.list.partition_point(|s| s.base <= index + 1);
            assert!(keep >= 1, "segment holding index {} exists", index + 1);
            let doomed: Vec<PathBuf> = segs.list.drain(keep..).map(|s| s.path).collect();
            let seg = segs.list.last_mut().unwrap();
            let cut = (index + 1 - seg.base) as usize;
            let from = seg.offsets.get(cut).map_or(seg.write_offset, |&o| o as u64);
            let to = seg.write_offset;
            seg.offsets.truncate(cut);
            seg.write_offset = from;
            (seg.file.clone(), seg.path.clone(), from, to, doomed)
        };
        self.shared.last_index.store(index, Ordering::Release);
        self.shared.durable_index.fetch_min(index, Ordering::AcqRel);
        // 2. Zero the cut tail durably *before* deleting later segments: a
        // crash in between leaves those behind a gap, which recovery drops.
        segment::zero_range(&file, &path, from, to)?;
        if fsync {
            file.sync_data().ctx(|| format!("fdatasync {}", path.display()))?;
        }
        remove_in_order(&self.shared.dir, &doomed)?;
        self.next_index = index + 1;
        self.last_term = if index >= first {
            let segs = self.shared.segments.read().unwrap_or_else(|p| p.into_inner());
            segs.find(index).map(|s| s.read_entry(index, max)).transpose()?.map_or(0, |e| e.term)
        } else {
            0
        };
        Ok(())
    }

    fn purge_upto(&mut self, index: u64) -> Result<(), StorageError> {
        let first = self.shared.first_index.load(Ordering::Acquire);
        if index < first {
            return Ok(());
        }
        let dir = self.shared.dir.clone();
        let fsync = self.shared.opts.fsyncs();
        if index >= self.next_index {
            // Purging past the end (a snapshot newer than the log): continue
            // in a fresh segment that starts after the snapshot.
            self.roll(index + 1)?;
            self.next_index = index + 1;
            self.shared.last_index.store(index, Ordering::Release);
            self.shared.durable_index.store(index, Ordering::Release);
        }
        fsutil::atomic_write(&dir, PURGE_FILE, &encode_u64_record(index), fsync)?;
        let doomed: Vec<PathBuf> = {
            let mut segs = self.shared.segments.write().unwrap_or_else(|p| p.into_inner());
            // Segment i is wholly purged when its successor starts at or below index + 1.
            let n = segs.list.windows(2).take_while(|w| w[1].base <= index + 1).count();
            // Readers load first_index under the lock: keep the two in step.
            self.shared.first_index.store(index + 1, Ordering::Release);
            segs.list.drain(..n).map(|s| s.path).collect()
        };
        for (i, path) in doomed.iter().enumerate() {
            fsutil::remove_if_exists(path)?;
            if i == 0 && doomed.len() > 1 {
                failpoint::hit(failpoint::FailPoint::MidSegmentDelete);
            }
        }
        if fsync && !doomed.is_empty() {
            fsutil::sync_dir(&dir)?;
        }
        self.shared.metrics.counters.segments_deleted.fetch_add(doomed.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn save_vote(&mut self, vote: Vec<u8>) -> Result<(), StorageError> {
        let mut rec = Vec::with_capacity(8 + vote.len());
        rec.extend_from_slice(&(vote.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(&vote).to_le_bytes());
        rec.extend_from_slice(&vote);
        fsutil::atomic_write(&self.shared.dir, VOTE_FILE, &rec, self.shared.opts.fsyncs())?;
        *self.shared.vote.write().unwrap_or_else(|p| p.into_inner()) = Some(vote);
        Ok(())
    }
}

fn encode_u64_record(v: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&v.to_le_bytes());
    let crc = crc32fast::hash(&b[..8]);
    b[8..].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode_u64_record(b: &[u8], what: &str) -> Result<u64, StorageError> {
    if b.len() != 12 || crc32fast::hash(&b[..8]).to_le_bytes() != b[8..12] {
        return Err(StorageError::Corrupt { what: what.into(), detail: "bad length or checksum".into() });
    }
    Ok(u64::from_le_bytes(b[..8].try_into().unwrap()))
}

pub(crate) fn encode_u64_file(v: u64) -> [u8; 12] {
    encode_u64_record(v)
}

fn read_purge_mark(dir: &Path) -> Result<u64, StorageError> {
    match fsutil::read_optional(&dir.join(PURGE_FILE))? {
        None => Ok(0),
        Some(b) => decode_u64_record(&b, "wal purge mark"),
    }
}

fn read_vote_file(dir: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    let Some(b) = fsutil::read_optional(&dir.join(VOTE_FILE))? else { return Ok(None) };
    let bad = || StorageError::Corrupt { what: "vote file".into(), detail: "bad length or checksum".into() };
    if b.len() < 8 {
        return Err(bad());
    }
    let len = u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(b[4..8].try_into().unwrap());
    if b.len() != 8 + len || crc32fast::hash(&b[8..]) != crc {
        return Err(bad());
    }
    Ok(Some(b[8..].to_vec()))
}

fn remove_temp_files(dir: &Path) -> Result<(), StorageError> {
    for entry in fs::read_dir(dir).ctx(|| format!("read dir {}", dir.display()))? {
        let entry = entry.ctx(|| format!("read dir {}", dir.display()))?;
        if entry.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")) {
            fsutil::remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

/// Delete segments that lie wholly at or below the purge mark (a purge that
/// crashed half-way through its deletions).
fn finish_interrupted_purge(dir: &Path, purged: u64) -> Result<(), StorageError> {
    let bases = segment::list_segments(dir)?;
    let n = bases.windows(2).take_while(|w| w[1] <= purged + 1).count();
    let doomed: Vec<PathBuf> = bases[..n].iter().map(|&b| segment::segment_path(dir, b)).collect();
    remove_in_order(dir, &doomed)
}

/// Unlink files in the given order, making the first unlink durable before
/// the others: deleting the oldest of a run first leaves a gap (truncation)
/// or a shorter prefix (purge) if we crash part-way, never a resurrected
/// middle.
fn remove_in_order(dir: &Path, paths: &[PathBuf]) -> Result<(), StorageError> {
    for (i, p) in paths.iter().enumerate() {
        fsutil::remove_if_exists(p)?;
        if i == 0 {
            fsutil::sync_dir(dir)?;
        }
    }
    if paths.len() > 1 {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// Bytes of a file up to its last non-zero byte.
fn file_extent(path: &Path) -> Result<u64, StorageError> {
    let b = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    Ok(segment::nonzero_extent(&b) as u64)
}
