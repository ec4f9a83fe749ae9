//! Storage v2: the node's state store — one sled Db, a data tree and a
//! tombstone tree per partition, checkpoints per log, snapshots per
//! partition.
//!
//! # Layout
//!
//! ```text
//! <state dir>/
//!   sled/                 the one sled Db (page cache: StoreOptions::cache_bytes)
//!     tree p<group>.g<gen>.data   rows: key -> index u64 BE | tag | value
//!     tree p<group>.g<gen>.tomb   tombstone index: index BE | key -> ()
//!     tree meta                   applied/<group BE><gen BE> -> term BE | index BE
//!   checkpoint-<log:04>   per log: per group applied log id, tree generation,
//!                         row high-water mark, and the log's newest segment
//! ```
//!
//! The idempotent-apply rule of v1 holds per partition: a key keeps the
//! index of the entry that wrote it, an older entry never overwrites it,
//! deletes leave tombstones that checkpoints compact.
//!
//! # Durability
//!
//! sled's own flush is not durable (it never fsyncs), so the log stays the
//! source of truth. A checkpoint of one log: read its partitions' applied
//! log ids, write each one's marker into sled, flush sled, fdatasync sled's
//! files and directories, write the log's checkpoint file (temp, fsync,
//! rename, fsync dir) — and only then may those groups be purged in the log
//! up to them. At open, each partition replays its group from its
//! checkpoint to the index the caller passes (under Raft: committed — an
//! uncommitted tail must never be applied).
//!
//! sled silently drops data it finds damaged; the marker catches that: a
//! partition whose sled marker is missing or older than its checkpoint
//! refuses to open ([`StorageError::StateStore`], naming the path), as does
//! a sled directory sled itself cannot open — never a panic.
//!
//! # Snapshots
//!
//! [`Partition::snapshot`] is an ordered scan of the partition's data tree
//! (rows with their writing index, tombstones included), read in bounded
//! chunks. It is not an isolated point-in-time copy: rows applied while it
//! runs may appear with their (newer) indexes. That is safe under the
//! idempotent rule: installing it and then applying the log after
//! [`Snapshot::applied`] converges to the same state. [`Store::install_snapshot`]
//! loads rows into a new tree generation, then switches to it with a
//! durable checkpoint before it returns; a crash before that leaves the old
//! generation in force.

mod applier;
mod checkpoint;
mod writer;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use applier::{ApplierOptions, Apply, LogApplier};
use checkpoint::{CkptEntry, CkptFile};
pub use writer::{BatchWriter, EntryWrites, OnCheckpoint, WriterOptions};

use crate::error::{IoContext, StorageError};
use crate::failpoint::{self, FailPoint};
use crate::fsutil;
use crate::kv::{self, KvTrees};
pub use crate::kv::{Applied, KvPair, KvWrite, Visit};
use crate::log::{GroupId, GroupLog, Log, LogId, WalSync};

const SLED_DIR: &str = "sled";
const META_TREE: &str = "meta";
/// Entries read from the log per apply step.
pub(crate) const APPLY_CHUNK: u64 = 1024;
/// Bytes of rows per sled batch when installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache in bytes (sled's default is 1 GiB per Db): the
    /// node passes its share of `--memory-mb`.
    pub cache_bytes: u64,
    /// `Off` skips every fsync of a checkpoint (benchmarks only, like the log's).
    pub sync: WalSync,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { cache_bytes: 64 << 20, sync: WalSync::Fsync }
    }
}

/// One row of a partition snapshot: a value or a tombstone (`None`), with
/// the index of the entry that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub key: Vec<u8>,
    pub index: u64,
    pub value: Option<Vec<u8>>,
}

impl SnapshotRow {
    fn cost(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, |v| v.len()) + 16
    }
}

/// Numbers of one partition.
#[derive(Debug, Clone, Default)]
pub struct PartitionStats {
    pub group: GroupId,
    pub applied: Option<LogId>,
    pub checkpointed: Option<LogId>,
    /// Highest index the applier was told is committed.
    pub committed: Option<u64>,
    /// Entries committed but not yet applied.
    pub apply_lag: u64,
    pub entries_applied: u64,
    /// Key writes skipped because the key already held a newer entry (replay).
    pub writes_skipped: u64,
    pub replayed_on_open: u64,
    pub replay_duration: Duration,
    pub tombstones_compacted: u64,
    /// Rows deleted outside the log by [`Partition::forget`].
    pub forgotten: u64,
    pub snapshots_installed: u64,
}

/// What one checkpoint covered.
#[derive(Debug, Clone, Default)]
pub struct CheckpointReport {
    pub log_no: u32,
    /// Each partition of the log with the applied log id now durable.
    pub groups: Vec<(GroupId, Option<LogId>)>,
    /// Whether anything changed (a checkpoint with nothing new writes nothing).
    pub written: bool,
    pub duration: Duration,
}

/// Numbers of one log's checkpoints.
#[derive(Debug, Clone, Default)]
pub struct CheckpointStats {
    pub checkpoints: u64,
    /// Time since the last durable checkpoint (`None` before the first one).
    pub age: Option<Duration>,
    pub last_duration: Duration,
}

struct LogSlot {
    log: Log,
    /// The durable checkpoint file's content; its lock serializes the
    /// checkpoints (and snapshot installs) of this log.
    ckpt: Mutex<CkptFile>,
    checkpoints: AtomicU64,
    /// Microseconds since the store opened of the last checkpoint, MAX if none.
    last_at_us: AtomicU64,
    last_duration_us: AtomicU64,
}

struct PartState {
    gen: u64,
    trees: KvTrees,
}

struct PartInner {
    id: GroupId,
    log_no: u32,
    group: GroupLog,
    state: RwLock<PartState>,
    applied: Mutex<Option<LogId>>,
    checkpointed: Mutex<Option<LogId>>,
    /// Entries at or above this index were never applied here: their
    /// Put/Delete skip the read of the old value. `u64::MAX` until replay.
    fresh_from: AtomicU64,
    /// One more than the highest index a row may carry.
    row_high: AtomicU64,
    /// Committed index + 1 the applier was told (0: none).
    committed: AtomicU64,
    entries_applied: AtomicU64,
    writes_skipped: AtomicU64,
    replayed_on_open: AtomicU64,
    replay_us: AtomicU64,
    tombstones_compacted: AtomicU64,
    forgotten: AtomicU64,
    installs: AtomicU64,
}

struct Inner {
    dir: PathBuf,
    sled_dir: PathBuf,
    opts: StoreOptions,
    db: sled::Db,
    meta: sled::Tree,
    opened: Instant,
    /// Checkpoint files read at open, for logs not attached yet.
    pending: Mutex<BTreeMap<u32, CkptFile>>,
    logs: RwLock<BTreeMap<u32, Arc<LogSlot>>>,
    partitions: RwLock<BTreeMap<GroupId, Arc<PartInner>>>,
}

/// The node's state store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// One partition's state (its group's applied data). Cheap to clone.
#[derive(Clone)]
pub struct Partition {
    inner: Arc<PartInner>,
}

fn tree_prefix(g: GroupId) -> String {
    format!("p{g:010}.g")
}

fn tree_names(g: GroupId, gen: u64) -> (String, String) {
    (format!("{}{gen}.data", tree_prefix(g)), format!("{}{gen}.tomb", tree_prefix(g)))
}

fn marker_key(g: GroupId, gen: u64) -> Vec<u8> {
    [&b"applied/"[..], &g.to_be_bytes(), &gen.to_be_bytes()].concat()
}

fn encode_id(id: LogId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.term.to_be_bytes());
    b[8..].copy_from_slice(&id.index.to_be_bytes());
    b
}

fn decode_id(b: &[u8]) -> Option<LogId> {
    (b.len() == 16)
        .then(|| LogId { term: u64::from_be_bytes(b[..8].try_into().unwrap()), index: u64::from_be_bytes(b[8..].try_into().unwrap()) })
}

impl Store {
    /// Open (or create) the store in `dir` and read its checkpoint files.
    /// Attach each log ([`Store::attach_log`]), then open its partitions
    /// ([`Store::partition`]) and replay them ([`Store::replay`]).
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Store, StorageError> {
        fs::create_dir_all(dir).ctx(|| format!("create dir {}", dir.display()))?;
        let mut pending = BTreeMap::new();
        let mut owner: BTreeMap<GroupId, u32> = BTreeMap::new();
        let mut temps = Vec::new();
        for e in fs::read_dir(dir).ctx(|| format!("read dir {}", dir.display()))? {
            let e = e.ctx(|| format!("read dir {}", dir.display()))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with("checkpoint-") && name.ends_with(".tmp") {
                temps.push(e.path());
                continue;
            }
            let Some(log_no) = checkpoint::parse_file_name(name) else { continue };
            let bytes = fs::read(e.path()).ctx(|| format!("read {}", e.path().display()))?;
            let f = checkpoint::decode(&bytes).map_err(|why| StorageError::damaged(e.path(), 0, why))?;
            for g in f.groups.keys() {
                if let Some(other) = owner.insert(*g, log_no) {
                    return Err(StorageError::damaged(e.path(), 0, format!("group {g} is also in {}", checkpoint::file_name(other))));
                }
            }
            pending.insert(log_no, f);
        }
        let sled_dir = dir.join(SLED_DIR);
        let cfg = sled::Config::new().path(&sled_dir).cache_capacity(opts.cache_bytes);
        let db = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || cfg.open())) {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => {
                let err = StorageError::state_store(&sled_dir, e);
                tracing::error!(error = %err, "state store cannot be opened");
                return Err(err);
            }
            Err(panic) => {
                let why = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                let err = StorageError::state_store(&sled_dir, format!("sled panicked while opening: {}", why.unwrap_or_default()));
                tracing::error!(error = %err, "state store cannot be opened");
                return Err(err);
            }
        };
        let meta = db.open_tree(META_TREE).map_err(|e| StorageError::state_store(&sled_dir, e))?;
        // Temp files only after everything was read: a refused open changes nothing.
        for t in temps {
            fsutil::remove_if_exists(&t)?;
        }
        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                sled_dir,
                opts,
                db,
                meta,
                opened: Instant::now(),
                pending: Mutex::new(pending),
                logs: RwLock::new(BTreeMap::new()),
                partitions: RwLock::new(BTreeMap::new()),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Log numbers that have a checkpoint file.
    pub fn checkpointed_logs(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect();
        v.extend(self.inner.logs.read().unwrap_or_else(|p| p.into_inner()).keys().copied());
        v.sort_unstable();
        v
    }

    /// Bind log number `log_no` (its checkpoint file) to `log`. Refuses a
    /// log with fewer segments than it had at its last checkpoint.
    pub fn attach_log(&self, log_no: u32, log: Log) -> Result<(), StorageError> {
        let mut logs = self.inner.logs.write().unwrap_or_else(|p| p.into_inner());
        if logs.contains_key(&log_no) {
            return Err(StorageError::InvalidArgument(format!("log {log_no} is already attached")));
        }
        let ck = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()).get(&log_no).cloned().unwrap_or_default();
        let (_, last_seq) = log.seq_range();
        if ck.log_last_seq > last_seq {
            let err = StorageError::Missing {
                path: log.dir().join(format!("{:020}.log", ck.log_last_seq)),
                detail: format!(
                    "{} was taken when the log's newest segment was {}, but the log ends at segment {last_seq}",
                    self.inner.dir.join(checkpoint::file_name(log_no)).display(),
                    ck.log_last_seq
                ),
            };
            tracing::error!(error = %err, "state store refuses its log");
            return Err(err);
        }
        self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&log_no);
        logs.insert(
            log_no,
            Arc::new(LogSlot {
                log,
                ckpt: Mutex::new(ck),
                checkpoints: AtomicU64::new(0),
                last_at_us: AtomicU64::new(u64::MAX),
                last_duration_us: AtomicU64::new(0),
            }),
        );
        Ok(())
    }

    fn slot(&self, log_no: u32) -> Result<Arc<LogSlot>, StorageError> {
        self.inner
            .logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&log_no)
            .cloned()
            .ok_or_else(|| StorageError::InvalidArgument(format!("log {log_no} is not attached to the store")))
    }

    /// Open partition `group` of log `log_no` (created empty on first use).
    /// Refuses it when sled holds less than its checkpoint says.
    pub fn partition(&self, log_no: u32, group: GroupId) -> Result<Partition, StorageError> {
        if let Some(p) = self.inner.partitions.read().unwrap_or_else(|p| p.into_inner()).get(&group) {
            if p.log_no != log_no {
                return Err(StorageError::InvalidArgument(format!("partition {group} belongs to log {}, not {log_no}", p.log_no)));
            }
            return Ok(Partition { inner: p.clone() });
        }
        let slot = self.slot(log_no)?;
        for (other, s) in self.inner.logs.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if *other != log_no && s.ckpt.lock().unwrap_or_else(|p| p.into_inner()).groups.contains_key(&group) {
                return Err(StorageError::InvalidArgument(format!("partition {group} is checkpointed in log {other}, not {log_no}")));
            }
        }
        let mut parts = self.inner.partitions.write().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = parts.get(&group) {
            return Ok(Partition { inner: p.clone() });
        }
        let entry = slot.ckpt.lock().unwrap_or_else(|p| p.into_inner()).groups.get(&group).copied().unwrap_or_default();
        let sled_err = |e: sled::Error| StorageError::state_store(&self.inner.sled_dir, e);
        if let Some(a) = entry.applied {
            let marker = self.inner.meta.get(marker_key(group, entry.gen)).map_err(sled_err)?.and_then(|v| decode_id(&v));
            if marker.is_none_or(|m| m.index < a.index) {
                let err = StorageError::state_store(
                    &self.inner.sled_dir,
                    format!(
                        "partition {group}: sled holds it up to {:?}, but its durable checkpoint says {a:?}: sled lost data (damaged or replaced files)",
                        marker.map(|m| m.index)
                    ),
                );
                tracing::error!(error = %err, "state store refused");
                return Err(err);
            }
        }
        // Drop tree generations the checkpoint does not name (an install
        // that crashed before its checkpoint, or an old generation).
        let (data, tomb) = tree_names(group, entry.gen);
        let prefix = tree_prefix(group);
        for name in self.inner.db.tree_names() {
            let Ok(name) = std::str::from_utf8(&name) else { continue };
            if name.starts_with(&prefix) && name != data && name != tomb {
                self.inner.db.drop_tree(name.as_bytes()).map_err(sled_err)?;
                tracing::info!(tree = name, "state store: dropped a stale tree generation");
            }
        }
        let trees =
            KvTrees { kv: self.inner.db.open_tree(&data).map_err(sled_err)?, tombs: self.inner.db.open_tree(&tomb).map_err(sled_err)? };
        let inner = Arc::new(PartInner {
            id: group,
            log_no,
            group: slot.log.group(group)?,
            state: RwLock::new(PartState { gen: entry.gen, trees }),
            applied: Mutex::new(entry.applied),
            checkpointed: Mutex::new(entry.applied),
            fresh_from: AtomicU64::new(u64::MAX),
            row_high: AtomicU64::new(entry.row_high),
            committed: AtomicU64::new(entry.applied.map_or(0, |a| a.index + 1)),
            entries_applied: AtomicU64::new(0),
            writes_skipped: AtomicU64::new(0),
            replayed_on_open: AtomicU64::new(0),
            replay_us: AtomicU64::new(0),
            tombstones_compacted: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
            installs: AtomicU64::new(0),
        });
        parts.insert(group, inner.clone());
        Ok(Partition { inner })
    }

    /// The open partitions of log `log_no`.
    pub fn partitions_of(&self, log_no: u32) -> Vec<Partition> {
        self.inner
            .partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|p| p.log_no == log_no)
            .map(|p| Partition { inner: p.clone() })
            .collect()
    }

    /// Replay `part`'s group from its checkpoint up to `upto` (under Raft:
    /// the committed index — an uncommitted tail must not be applied;
    /// single node: the last index). Refuses a gap between the checkpoint
    /// and the log's first entry, or a log that ends before the checkpoint.
    pub fn replay(&self, part: &Partition, upto: Option<u64>, apply: &mut dyn Apply) -> Result<u64, StorageError> {
        let started = Instant::now();
        let p = &part.inner;
        let g = &p.group;
        let (first, last, purged) = (g.first_index(), g.last_log_id(), g.last_purged());
        let applied = part.applied();
        let dir = self.slot(p.log_no)?.log.dir().to_path_buf();
        let missing = |detail: String| {
            let err = StorageError::Missing { path: dir.clone(), detail };
            tracing::error!(error = %err, "state store replay refused");
            err
        };
        if let Some(a) = applied {
            if last.is_none_or(|l| l.index < a.index) {
                return Err(missing(format!(
                    "partition {}: its checkpoint covers index {}, but the group's log ends at {:?}: the log lost entries",
                    p.id,
                    a.index,
                    last.map(|l| l.index)
                )));
            }
        }
        let from = match (applied, purged) {
            (Some(a), _) => a.index + 1,
            (None, Some(pp)) => {
                return Err(missing(format!(
                    "partition {}: nothing is checkpointed, but the group's log was purged up to {}: entries were never applied",
                    p.id, pp.index
                )))
            }
            (None, None) => first,
        };
        let mut n = 0;
        if let (Some(upto), Some(l)) = (upto, g.last_index()) {
            let upto = upto.min(l);
            if from <= upto && first > from {
                return Err(missing(format!(
                    "partition {}: checkpoint at {:?} but the group's log starts at {first}: entries {from}..{first} are gone",
                    p.id,
                    applied.map(|a| a.index)
                )));
            }
            n = self.apply_range(part, from, upto, apply)?;
        }
        // No row can carry an index above both the log's end and the
        // recorded high-water mark: later entries need no read.
        let fresh = last.map_or(0, |l| l.index + 1).max(p.row_high.load(Ordering::Acquire));
        p.fresh_from.store(fresh, Ordering::Release);
        p.replayed_on_open.fetch_add(n, Ordering::Relaxed);
        p.replay_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Apply log entries `from..=upto` of the partition's group, in chunks.
    pub(crate) fn apply_range(&self, part: &Partition, from: u64, upto: u64, apply: &mut dyn Apply) -> Result<u64, StorageError> {
        let mut n = 0;
        let mut next = from;
        while next <= upto {
            let end = upto.min(next.saturating_add(APPLY_CHUNK - 1));
            let entries = part.inner.group.read(next..=end)?;
            if entries.first().is_none_or(|e| e.index != next) {
                return Err(StorageError::Missing {
                    path: self.slot(part.inner.log_no)?.log.dir().to_path_buf(),
                    detail: format!("partition {}: entry {next} is not in its log", part.inner.id),
                });
            }
            for e in &entries {
                let writes = apply.writes(part.inner.id, e)?;
                part.apply(LogId { term: e.term, index: e.index }, &writes)?;
                n += 1;
            }
            next = entries.last().expect("non-empty").index + 1;
        }
        Ok(n)
    }

    /// Make everything applied to the partitions of log `log_no` durable
    /// and record it in the log's checkpoint file (see the module docs).
    /// Blocking (sled flush and fsyncs take milliseconds): call it from an
    /// applier thread or a blocking pool, never from a core thread.
    pub fn checkpoint(&self, log_no: u32) -> Result<CheckpointReport, StorageError> {
        let started = Instant::now();
        let slot = self.slot(log_no)?;
        let mut file = slot.ckpt.lock().unwrap_or_else(|p| p.into_inner());
        let parts = self.partitions_of(log_no);
        struct Snap {
            part: Partition,
            gen: u64,
            applied: Option<LogId>,
            row_high: u64,
        }
        let snaps: Vec<Snap> = parts
            .into_iter()
            .map(|part| {
                let gen = part.inner.state.read().unwrap_or_else(|p| p.into_inner()).gen;
                let applied = part.applied();
                let row_high = part.inner.row_high.load(Ordering::Acquire);
                Snap { part, gen, applied, row_high }
            })
            .collect();
        let report_groups: Vec<(GroupId, Option<LogId>)> = snaps.iter().map(|s| (s.part.id(), s.applied)).collect();
        let changed = snaps.iter().any(|s| {
            let e = file.groups.get(&s.part.id()).copied().unwrap_or_default();
            e.gen != s.gen || e.applied != s.applied || e.row_high != s.row_high
        });
        if !changed {
            return Ok(CheckpointReport { log_no, groups: report_groups, written: false, duration: started.elapsed() });
        }
        let sled_err = |e: sled::Error| StorageError::state_store(&self.inner.sled_dir, e);
        let fsync = self.inner.opts.sync == WalSync::Fsync;
        let result = (|| {
            for s in &snaps {
                if let Some(a) = s.applied {
                    self.inner.meta.insert(marker_key(s.part.id(), s.gen), &encode_id(a)[..]).map_err(sled_err)?;
                }
            }
            self.inner.db.flush().map_err(sled_err)?;
            failpoint::hit(FailPoint::AfterSledFlush);
            if fsync {
                fsutil::sync_tree(&self.inner.sled_dir)?;
            }
            failpoint::hit(FailPoint::AfterSledSync);
            let mut next = file.clone();
            next.log_last_seq = next.log_last_seq.max(slot.log.seq_range().1);
            for s in &snaps {
                next.groups.insert(s.part.id(), CkptEntry { gen: s.gen, applied: s.applied, row_high: s.row_high });
            }
            let name = checkpoint::file_name(log_no);
            fsutil::write_temp(&self.inner.dir, &name, &checkpoint::encode(&next), fsync)?;
            failpoint::hit(FailPoint::AfterCheckpointTemp);
            fsutil::publish_temp(&self.inner.dir, &name, fsync)?;
            failpoint::hit(FailPoint::AfterCheckpointRename);
            *file = next;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::error!(error = %e, log = log_no, "checkpoint failed");
            return Err(e);
        }
        drop(file);
        for s in &snaps {
            *s.part.inner.checkpointed.lock().unwrap_or_else(|p| p.into_inner()) = s.applied;
            if let Some(a) = s.applied {
                let st = s.part.inner.state.read().unwrap_or_else(|p| p.into_inner());
                if st.gen == s.gen {
                    let n = st.trees.compact_tombstones(a.index)?;
                    s.part.inner.tombstones_compacted.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        let took = started.elapsed();
        slot.checkpoints.fetch_add(1, Ordering::Relaxed);
        slot.last_at_us.store(self.inner.opened.elapsed().as_micros() as u64, Ordering::Relaxed);
        slot.last_duration_us.store(took.as_micros() as u64, Ordering::Relaxed);
        Ok(CheckpointReport { log_no, groups: report_groups, written: true, duration: took })
    }

    /// [`Store::checkpoint`], then purge each partition's group in the log
    /// up to its durable applied log id (single node; under Raft the log
    /// is purged after snapshots instead). Blocking.
    pub fn checkpoint_and_purge(&self, log_no: u32) -> Result<CheckpointReport, StorageError> {
        let report = self.checkpoint(log_no)?;
        let slot = self.slot(log_no)?;
        let mut waits = Vec::new();
        for (g, applied) in &report.groups {
            if let Some(a) = applied {
                let group = slot.log.group(*g)?;
                if group.last_purged().is_none_or(|p| p.index < a.index) {
                    waits.push(group.purge_upto(*a)?);
                }
            }
        }
        for w in waits {
            futures::executor::block_on(w)?;
        }
        Ok(report)
    }

    /// Replace `part`'s state with snapshot `rows` taken at `applied`:
    /// load them into a new tree generation, switch to it and make it
    /// durable with a checkpoint of the partition's log before returning.
    /// No apply may run on the partition meanwhile (the applier runs this
    /// itself: [`LogApplier::install_snapshot`]). Blocking.
    pub fn install_snapshot(
        &self,
        part: &Partition,
        applied: LogId,
        rows: impl IntoIterator<Item = Result<SnapshotRow, StorageError>>,
    ) -> Result<(), StorageError> {
        let p = &part.inner;
        if part.applied().is_some_and(|a| applied.index < a.index) {
            return Err(StorageError::InvalidArgument(format!(
                "snapshot at {applied:?} is older than partition {}'s applied {:?}",
                p.id,
                part.applied()
            )));
        }
        let sled_err = |e: sled::Error| StorageError::state_store(&self.inner.sled_dir, e);
        let old_gen = p.state.read().unwrap_or_else(|p| p.into_inner()).gen;
        let new_gen = old_gen + 1;
        let (data, tomb) = tree_names(p.id, new_gen);
        let _ = self.inner.db.drop_tree(data.as_bytes());
        let _ = self.inner.db.drop_tree(tomb.as_bytes());
        let trees =
            KvTrees { kv: self.inner.db.open_tree(&data).map_err(sled_err)?, tombs: self.inner.db.open_tree(&tomb).map_err(sled_err)? };
        let mut high = applied.index + 1;
        let loaded = (|| {
            let (mut kvb, mut tbb, mut bytes) = (sled::Batch::default(), sled::Batch::default(), 0usize);
            for row in rows {
                let row = row?;
                high = high.max(row.index.saturating_add(1));
                bytes += row.cost();
                kvb.insert(row.key.as_slice(), kv::encode_value(row.index, row.value.as_deref()));
                if row.value.is_none() {
                    tbb.insert(kv::tomb_key(row.index, &row.key), &[][..]);
                }
                if bytes >= INSTALL_BATCH_BYTES {
                    trees.kv.apply_batch(std::mem::take(&mut kvb)).map_err(sled_err)?;
                    trees.tombs.apply_batch(std::mem::take(&mut tbb)).map_err(sled_err)?;
                    bytes = 0;
                }
            }
            trees.kv.apply_batch(kvb).map_err(sled_err)?;
            trees.tombs.apply_batch(tbb).map_err(sled_err)?;
            Ok::<(), StorageError>(())
        })();
        if let Err(e) = loaded {
            let _ = self.inner.db.drop_tree(data.as_bytes());
            let _ = self.inner.db.drop_tree(tomb.as_bytes());
            tracing::error!(error = %e, partition = p.id, "snapshot install failed");
            return Err(e);
        }
        failpoint::hit(FailPoint::StoreInstallLoaded);
        {
            let mut st = p.state.write().unwrap_or_else(|p| p.into_inner());
            *st = PartState { gen: new_gen, trees };
            *p.applied.lock().unwrap_or_else(|p| p.into_inner()) = Some(applied);
            p.row_high.store(high, Ordering::Release);
            p.fresh_from.store(high.max(p.group.last_index().map_or(0, |l| l + 1)), Ordering::Release);
            p.committed.fetch_max(applied.index + 1, Ordering::AcqRel);
        }
        self.checkpoint(p.log_no)?;
        let (old_data, old_tomb) = tree_names(p.id, old_gen);
        for name in [old_data, old_tomb] {
            if let Err(e) = self.inner.db.drop_tree(name.as_bytes()) {
                tracing::warn!(error = %e, tree = name, "could not drop an old tree generation (dropped at next open)");
            }
        }
        let _ = self.inner.meta.remove(marker_key(p.id, old_gen));
        p.installs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Numbers of partition `group`, if it is open.
    pub fn partition_stats(&self, group: GroupId) -> Option<PartitionStats> {
        let p = self.inner.partitions.read().unwrap_or_else(|p| p.into_inner()).get(&group).cloned()?;
        Some(Partition { inner: p }.stats())
    }

    /// Checkpoint numbers of log `log_no`.
    pub fn checkpoint_stats(&self, log_no: u32) -> CheckpointStats {
        let Ok(slot) = self.slot(log_no) else { return CheckpointStats::default() };
        let at = slot.last_at_us.load(Ordering::Relaxed);
        CheckpointStats {
            checkpoints: slot.checkpoints.load(Ordering::Relaxed),
            age: (at != u64::MAX).then(|| self.inner.opened.elapsed().saturating_sub(Duration::from_micros(at))),
            last_duration: Duration::from_micros(slot.last_duration_us.load(Ordering::Relaxed)),
        }
    }

    /// Bytes sled reports on disk.
    pub fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.inner.db.size_on_disk().map_err(|e| StorageError::state_store(&self.inner.sled_dir, e))
    }
}

impl Partition {
    pub fn id(&self) -> GroupId {
        self.inner.id
    }

    pub fn log_no(&self) -> u32 {
        self.inner.log_no
    }

    /// The partition's group in its log.
    pub fn group(&self) -> &GroupLog {
        &self.inner.group
    }

    fn trees(&self) -> KvTrees {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner()).trees.clone()
    }

    /// Log id of the last entry applied.
    pub fn applied(&self) -> Option<LogId> {
        *self.inner.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Log id the last durable checkpoint covers.
    pub fn checkpointed(&self) -> Option<LogId> {
        *self.inner.checkpointed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply the writes of entry `id`. Entries must be applied in index
    /// order; a key already written by entry `id.index` or later is left alone.
    pub fn apply(&self, id: LogId, writes: &[KvWrite]) -> Result<Applied, StorageError> {
        let mut applied = self.inner.applied.lock().unwrap_or_else(|p| p.into_inner());
        if applied.is_some_and(|a| id.index <= a.index) {
            return Err(StorageError::InvalidArgument(format!("entry {} applied out of order (applied up to {:?})", id.index, *applied)));
        }
        let fresh = id.index >= self.inner.fresh_from.load(Ordering::Acquire);
        let out = self.trees().apply(id.index, writes, fresh)?;
        *applied = Some(id);
        drop(applied);
        self.inner.row_high.fetch_max(id.index + 1, Ordering::AcqRel);
        self.inner.entries_applied.fetch_add(1, Ordering::Relaxed);
        self.inner.writes_skipped.fetch_add(out.skipped as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Apply the writes of several entries (in increasing index order, all
    /// after the applied one) with as few sled batches as the rule allows
    /// (see `KvTrees::apply_batch`): what the write-behind applier does with
    /// what a Raft state machine hands it. Same outcome as [`Partition::apply`]
    /// entry by entry; the applied log id becomes the last entry's.
    pub fn apply_batch(&self, entries: &[(LogId, Vec<KvWrite>)]) -> Result<Applied, StorageError> {
        let Some(last) = entries.last().map(|(id, _)| *id) else { return Ok(Applied::default()) };
        let mut applied = self.inner.applied.lock().unwrap_or_else(|p| p.into_inner());
        let mut prev = applied.map(|a| a.index);
        for (id, _) in entries {
            if prev.is_some_and(|p| id.index <= p) {
                return Err(StorageError::InvalidArgument(format!(
                    "entry {} applied out of order (applied up to {:?}, batch of {})",
                    id.index,
                    *applied,
                    entries.len()
                )));
            }
            prev = Some(id.index);
        }
        let fresh_from = self.inner.fresh_from.load(Ordering::Acquire);
        let refs: Vec<(u64, &[KvWrite])> = entries.iter().map(|(id, w)| (id.index, w.as_slice())).collect();
        let out = self.trees().apply_batch(&refs, fresh_from)?;
        *applied = Some(last);
        drop(applied);
        self.inner.row_high.fetch_max(last.index + 1, Ordering::AcqRel);
        self.inner.entries_applied.fetch_add(entries.len() as u64, Ordering::Relaxed);
        self.inner.writes_skipped.fetch_add(out.skipped as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// The value of `key`, with the index of the entry that wrote it.
    pub fn get(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        self.trees().get(key)
    }

    /// Call `f` for every live value whose key starts with `prefix`, in key
    /// order (or reverse order), until it returns `false`.
    pub fn visit_prefix(&self, prefix: &[u8], reverse: bool, f: impl FnMut(Visit<'_>) -> bool) -> Result<(), StorageError> {
        self.trees().visit_prefix(prefix, reverse, f)
    }

    /// Every live `(key, value)` whose key starts with `prefix`, at most `limit`.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<KvPair>, StorageError> {
        self.trees().scan_prefix(prefix, limit)
    }

    /// Delete keys outside the log — only rows every reader already
    /// ignores (expired ones), as in v1. Returns how many were present.
    pub fn forget(&self, keys: &[Vec<u8>]) -> Result<usize, StorageError> {
        let n = self.trees().forget(keys)?;
        self.inner.forgotten.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Keys stored, tombstones included (O(n): diagnostics and tests).
    pub fn stored_keys(&self) -> usize {
        self.trees().kv.len()
    }

    /// Tombstones not yet compacted (O(n): diagnostics and tests).
    pub fn pending_tombstones(&self) -> usize {
        self.trees().tombs.len()
    }

    /// An ordered scan of the partition (see the module docs).
    pub fn snapshot(&self) -> Snapshot {
        let applied = self.applied();
        Snapshot { applied, iter: self.trees().kv.iter() }
    }

    pub fn stats(&self) -> PartitionStats {
        let p = &self.inner;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let applied = self.applied();
        let committed = get(&p.committed).checked_sub(1);
        PartitionStats {
            group: p.id,
            applied,
            checkpointed: self.checkpointed(),
            committed,
            apply_lag: match (committed, applied) {
                (Some(c), Some(a)) => c.saturating_sub(a.index),
                (Some(c), None) => (c + 1).saturating_sub(p.group.first_index()),
                (None, _) => 0,
            },
            entries_applied: get(&p.entries_applied),
            writes_skipped: get(&p.writes_skipped),
            replayed_on_open: get(&p.replayed_on_open),
            replay_duration: Duration::from_micros(get(&p.replay_us)),
            tombstones_compacted: get(&p.tombstones_compacted),
            forgotten: get(&p.forgotten),
            snapshots_installed: get(&p.installs),
        }
    }
}

/// A partition snapshot: rows in key order, read lazily.
pub struct Snapshot {
    applied: Option<LogId>,
    iter: sled::Iter,
}

impl Snapshot {
    /// The partition's applied log id when the scan started: install the
    /// rows, then apply the log after it.
    pub fn applied(&self) -> Option<LogId> {
        self.applied
    }

    /// The next rows, about `max_bytes` of them (at least one), `None` at the end.
    pub fn next_chunk(&mut self, max_bytes: usize) -> Result<Option<Vec<SnapshotRow>>, StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes || out.is_empty() {
            match self.next() {
                None => break,
                Some(row) => {
                    let row = row?;
                    bytes += row.cost();
                    out.push(row);
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

impl Iterator for Snapshot {
    type Item = Result<SnapshotRow, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.iter.next()?;
        Some((|| {
            let (k, raw) = item?;
            let (index, value) = kv::decode_raw(&raw)?;
            Ok(SnapshotRow { key: k.to_vec(), index, value: value.map(|v| v.to_vec()) })
        })())
    }
}
