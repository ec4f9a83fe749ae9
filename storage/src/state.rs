//! The state store: committed log entries applied to sled, checkpoints,
//! replay at restart.
//!
//! The log is the only source of truth; sled is a cache of it that may lose
//! anything after its last durable checkpoint (sled's own flush is not
//! durable). Idempotency comes from the keys themselves: every value stores
//! the index of the entry that wrote it, and an entry never overwrites a key
//! written by the same or a later entry. Replaying any suffix of the log any
//! number of times therefore converges to the same state.
//!
//! Deletes leave a tombstone (the deleting entry's index) so that replay
//! cannot resurrect the key from an older entry. A tombstone is only needed
//! while some replay could still apply an older entry, i.e. while its index
//! is above the durable checkpoint; checkpoints compact the others (see
//! [`StateStore::checkpoint`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use crate::error::{IoContext, StorageError};
use crate::failpoint::{self, FailPoint};
use crate::fsutil;
use crate::kv::KvTrees;
pub use crate::kv::{Applied, KvPair, KvWrite, Visit};
use crate::stats::StateStats;
use crate::wal::{decode_u64_record, encode_u64_file, Completion, Wal};
use crate::Entry;

const CHECKPOINT_FILE: &str = "checkpoint";
const SLED_DIR: &str = "sled";
/// sled tree of the tombstones not yet compacted: `index (u64 BE) | key` → ``.
/// Ordered by index, so a checkpoint finds the compactable ones with one range scan.
const TOMBS_TREE: &str = "tombs";
/// sled's own default page cache (`cache_capacity`), bytes.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;
/// Entries read from the log per apply step.
const APPLY_CHUNK: u64 = 1024;

/// Turns a committed entry into key writes. Replay calls it again for the
/// same entry, so it must depend on the entry alone (log records should
/// carry outcomes, e.g. the like count after the toggle, not deltas).
pub trait ApplyEntry: Send + 'static {
    fn writes(&mut self, entry: &Entry) -> Result<Vec<KvWrite>, StorageError>;

    /// Housekeeping on the applier thread, after every checkpoint and at
    /// least every [`ApplierOptions::maintain_every`] (e.g. sweeping expired
    /// rows with [`StateStore::forget`], or deciding evictions to append to
    /// the log). Errors are logged, never fatal.
    fn maintain(&mut self, _store: &StateStore) -> Result<(), StorageError> {
        Ok(())
    }
}

impl<F> ApplyEntry for F
where
    F: FnMut(&Entry) -> Result<Vec<KvWrite>, StorageError> + Send + 'static,
{
    fn writes(&mut self, entry: &Entry) -> Result<Vec<KvWrite>, StorageError> {
        self(entry)
    }
}

pub struct StateStore {
    dir: PathBuf,
    db: sled::Db,
    trees: KvTrees,
    opened: Instant,
    applied_index: AtomicU64,
    checkpoint_index: AtomicU64,
    /// Microseconds since `opened` of the last checkpoint, `u64::MAX` if none.
    checkpoint_at_us: AtomicU64,
    checkpoints: AtomicU64,
    entries_applied: AtomicU64,
    writes_skipped: AtomicU64,
    replayed_on_open: AtomicU64,
    replay_us: AtomicU64,
    tombstones_compacted: AtomicU64,
    forgotten: AtomicU64,
    /// Entries above this index were never applied before this process
    /// (they were not in the log when `replay` ran), so no key can hold a
    /// value of theirs or of a later entry: their Put/Delete skip the read
    /// of the old value. `u64::MAX` (always read) until `replay` sets it.
    fresh_after: AtomicU64,
}

impl StateStore {
    /// Open sled under `dir/sled` (with sled's default page cache, 1 GiB)
    /// and read the last durable checkpoint. Call [`StateStore::replay`]
    /// next, before serving reads.
    pub fn open(dir: &Path) -> Result<StateStore, StorageError> {
        StateStore::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`StateStore::open`] with sled's page cache bounded to `cache_bytes`
    /// (sled's `cache_capacity`; it counts the pages it keeps, not every
    /// byte sled allocates).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<StateStore, StorageError> {
        fs::create_dir_all(dir).ctx(|| format!("create dir {}", dir.display()))?;
        fsutil::remove_if_exists(&dir.join(format!("{CHECKPOINT_FILE}.tmp")))?;
        let checkpoint = match fsutil::read_optional(&dir.join(CHECKPOINT_FILE))? {
            None => 0,
            Some(b) => decode_u64_record(&b, "checkpoint file")?,
        };
        let db = sled::Config::new().path(dir.join(SLED_DIR)).cache_capacity(cache_bytes).open()?;
        let trees = KvTrees { kv: db.open_tree("kv")?, tombs: db.open_tree(TOMBS_TREE)? };
        Ok(StateStore {
            dir: dir.to_path_buf(),
            db,
            trees,
            opened: Instant::now(),
            applied_index: AtomicU64::new(checkpoint),
            checkpoint_index: AtomicU64::new(checkpoint),
            checkpoint_at_us: AtomicU64::new(u64::MAX),
            checkpoints: AtomicU64::new(0),
            entries_applied: AtomicU64::new(0),
            writes_skipped: AtomicU64::new(0),
            replayed_on_open: AtomicU64::new(0),
            replay_us: AtomicU64::new(0),
            tombstones_compacted: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
            fresh_after: AtomicU64::new(u64::MAX),
        })
    }

    /// Apply every entry of `wal` after the checkpoint, up to `upto`
    /// (single node: `wal.last_index()`). Returns the number of entries replayed.
    pub fn replay(&self, wal: &Wal, upto: u64, apply: &mut dyn ApplyEntry) -> Result<u64, StorageError> {
        let started = Instant::now();
        let from = self.applied_index() + 1;
        if from < wal.first_index() && from <= upto {
            return Err(StorageError::Corrupt {
                what: "log versus checkpoint".into(),
                detail: format!("checkpoint covers up to {}, but the log starts at {}", from - 1, wal.first_index()),
            });
        }
        let n = self.apply_from_log(wal, upto, apply)?;
        // Only committed entries are ever applied; a committed entry is
        // durable and never truncated (Raft truncates only uncommitted ones),
        // so nothing past the log's end was ever applied to this store.
        // (`--wal-sync off` + power loss voids this, as it voids durability.)
        self.fresh_after.store(wal.last_index(), Ordering::Release);
        self.replayed_on_open.fetch_add(n, Ordering::Relaxed);
        self.replay_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Apply log entries `applied + 1 ..= upto` in chunks.
    fn apply_from_log(&self, wal: &Wal, upto: u64, apply: &mut dyn ApplyEntry) -> Result<u64, StorageError> {
        let upto = upto.min(wal.last_index());
        let mut n = 0;
        let mut next = self.applied_index() + 1;
        while next <= upto {
            let end = upto.min(next + APPLY_CHUNK - 1);
            for entry in wal.read(next..=end)? {
                let writes = apply.writes(&entry)?;
                self.apply(entry.index, &writes)?;
                n += 1;
            }
            next = end + 1;
        }
        Ok(n)
    }

    /// Apply the writes of entry `index`. Entries must be applied in index
    /// order; a key already written by entry `index` or later is left alone.
    pub fn apply(&self, index: u64, writes: &[KvWrite]) -> Result<Applied, StorageError> {
        let applied = self.applied_index();
        if index <= applied {
            return Err(StorageError::InvalidArgument(format!("entry {index} applied out of order (applied up to {applied})")));
        }
        let fresh = index > self.fresh_after.load(Ordering::Acquire);
        let out = self.trees.apply(index, writes, fresh)?;
        self.applied_index.store(index, Ordering::Release);
        self.entries_applied.fetch_add(1, Ordering::Relaxed);
        self.writes_skipped.fetch_add(out.skipped as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// The value of `key`, with the index of the entry that wrote it.
    pub fn get(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StorageError> {
        self.trees.get(key)
    }

    /// Call `f` for every live value whose key starts with `prefix`, in key
    /// order (or reverse order), until it returns `false`.
    pub fn visit_prefix(&self, prefix: &[u8], reverse: bool, f: impl FnMut(Visit<'_>) -> bool) -> Result<(), StorageError> {
        self.trees.visit_prefix(prefix, reverse, f)
    }

    /// Delete keys directly, outside the log. Only for rows every reader
    /// already ignores (e.g. expired ones): the state is then a view of the
    /// log *and the clock*, and a replay that writes such a row again is
    /// harmless — it is still ignored and the next sweep forgets it again.
    /// Returns how many keys were present.
    pub fn forget(&self, keys: &[Vec<u8>]) -> Result<usize, StorageError> {
        let n = self.trees.forget(keys)?;
        self.forgotten.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Every live `(key, value)` whose key starts with `prefix`, at most `limit`.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<KvPair>, StorageError> {
        self.trees.scan_prefix(prefix, limit)
    }

    /// Keys stored, tombstones included (O(n): diagnostics and tests).
    pub fn stored_keys(&self) -> usize {
        self.trees.kv.len()
    }

    /// Tombstones not yet compacted (O(n): diagnostics and tests).
    pub fn pending_tombstones(&self) -> usize {
        self.trees.tombs.len()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    pub fn checkpoint_index(&self) -> u64 {
        self.checkpoint_index.load(Ordering::Acquire)
    }

    /// Make everything applied so far durable and record it:
    /// sled flush → fdatasync sled's files and directories → write the
    /// checkpoint file (temp, fsync, rename, fsync dir). Returns the index
    /// covered. Blocking (sled flush takes milliseconds): call it from the
    /// applier thread or a blocking pool, never from a core thread.
    pub fn checkpoint(&self) -> Result<u64, StorageError> {
        let index = self.applied_index();
        if index == self.checkpoint_index() {
            return Ok(index);
        }
        self.db.flush()?;
        failpoint::hit(FailPoint::AfterSledFlush);
        fsutil::sync_tree(&self.dir.join(SLED_DIR))?;
        failpoint::hit(FailPoint::AfterSledSync);
        fsutil::write_temp(&self.dir, CHECKPOINT_FILE, &encode_u64_file(index), true)?;
        failpoint::hit(FailPoint::AfterCheckpointTemp);
        fsutil::publish_temp(&self.dir, CHECKPOINT_FILE, true)?;
        failpoint::hit(FailPoint::AfterCheckpointRename);
        self.checkpoint_index.store(index, Ordering::Release);
        self.checkpoint_at_us.store(self.opened.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.compact_tombstones(index)?;
        Ok(index)
    }

    /// Drop the tombstones written by entries `<= checkpoint` (see
    /// [`KvTrees::compact_tombstones`] for why this is safe).
    fn compact_tombstones(&self, checkpoint: u64) -> Result<u64, StorageError> {
        assert!(checkpoint <= self.checkpoint_index(), "compaction beyond the durable checkpoint");
        let n = self.trees.compact_tombstones(checkpoint)?;
        self.tombstones_compacted.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Snapshot of the store's numbers; `committed` is the log's commit
    /// (single node: durable) index, for the apply lag.
    pub fn stats(&self, committed: u64) -> StateStats {
        let at = self.checkpoint_at_us.load(Ordering::Relaxed);
        let applied = self.applied_index();
        StateStats {
            applied_index: applied,
            apply_lag: committed.saturating_sub(applied),
            checkpoint_index: self.checkpoint_index(),
            checkpoint_age: (at != u64::MAX).then(|| self.opened.elapsed().saturating_sub(Duration::from_micros(at))),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            entries_applied: self.entries_applied.load(Ordering::Relaxed),
            writes_skipped: self.writes_skipped.load(Ordering::Relaxed),
            replayed_on_open: self.replayed_on_open.load(Ordering::Relaxed),
            replay_duration: Duration::from_micros(self.replay_us.load(Ordering::Relaxed)),
            tombstones_compacted: self.tombstones_compacted.load(Ordering::Relaxed),
            forgotten: self.forgotten.load(Ordering::Relaxed),
        }
    }
}

/// When the applier checkpoints.
#[derive(Debug, Clone)]
pub struct ApplierOptions {
    /// Checkpoint after this many entries applied since the last one.
    pub checkpoint_every_entries: u64,
    /// ... or after this long with anything new applied.
    pub checkpoint_every: Duration,
    /// After a checkpoint, delete log segments wholly covered by it.
    /// Turn off when followers may still need those entries (cluster mode
    /// purges through Raft snapshots instead).
    pub purge_log: bool,
    /// Run [`ApplyEntry::maintain`] at least this often (and after every checkpoint).
    pub maintain_every: Duration,
}

impl Default for ApplierOptions {
    fn default() -> Self {
        ApplierOptions {
            checkpoint_every_entries: 100_000,
            checkpoint_every: Duration::from_secs(30),
            purge_log: true,
            maintain_every: Duration::from_secs(60),
        }
    }
}

enum ApplierMsg {
    Kick,
    Checkpoint(oneshot::Sender<Result<u64, StorageError>>),
}

struct Shared {
    /// Why the applier stopped applying, if it did (set once).
    failed: std::sync::OnceLock<String>,
    committed: AtomicU64,
    /// A wake-up is queued and the applier has not started on it yet: later
    /// commits need no second one (one wake-up per apply round, not per commit).
    kicked: std::sync::atomic::AtomicBool,
}

/// Background thread that applies committed entries from the log to the
/// state store and checkpoints it. It pulls entries from the log itself, so
/// a burst of commits never queues anything: the core only publishes a
/// commit index and sends a (coalescing) wake-up.
pub struct Applier {
    tx: flume::Sender<ApplierMsg>,
    shared: Arc<Shared>,
    store: Arc<StateStore>,
    thread: Option<JoinHandle<()>>,
}

impl Applier {
    /// `committed`: the index already known committed (single node after
    /// replay: `wal.last_index()`).
    pub fn spawn(
        store: Arc<StateStore>,
        wal: Wal,
        mut apply: impl ApplyEntry,
        opts: ApplierOptions,
        committed: u64,
    ) -> Result<Applier, StorageError> {
        let (tx, rx) = flume::bounded(64);
        let shared = Arc::new(Shared { failed: Default::default(), committed: AtomicU64::new(committed), kicked: Default::default() });
        let (s, st) = (shared.clone(), store.clone());
        let thread = std::thread::Builder::new()
            .name("state-applier".into())
            .spawn(move || applier_loop(&st, &wal, &mut apply, &opts, &s, rx))
            .ctx(|| "spawn applier thread".to_string())?;
        Ok(Applier { tx, shared, store, thread: Some(thread) })
    }

    /// Publish that entries up to `index` are committed (durable on a
    /// quorum; single node: their append future resolved). Never blocks.
    pub fn notify_committed(&self, index: u64) {
        // Publish first, then kick: the applier clears `kicked` before it
        // reads `committed`, so a commit that finds `kicked` set is seen.
        self.shared.committed.fetch_max(index, Ordering::SeqCst);
        if !self.shared.kicked.swap(true, Ordering::SeqCst) {
            // Full only with checkpoint requests queued; the applier also
            // wakes on its own every tick, and clears `kicked` each round.
            let _ = self.tx.try_send(ApplierMsg::Kick);
        }
    }

    /// Apply everything committed, then checkpoint; resolves with the
    /// checkpoint index.
    pub fn checkpoint(&self) -> Result<Completion<u64>, StorageError> {
        let (done, rx) = oneshot::channel();
        self.tx.try_send(ApplierMsg::Checkpoint(done)).map_err(|_| StorageError::Backpressure { pending: self.tx.len() })?;
        Ok(Completion::from_receiver(rx))
    }

    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// Why the applier stopped (it applies nothing more until a restart), if it did.
    pub fn failure(&self) -> Option<&str> {
        self.shared.failed.get().map(String::as_str)
    }

    pub fn committed_index(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> StateStats {
        self.store.stats(self.committed_index())
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        // Disconnect, then let the thread apply what is committed and exit.
        let (tx, _) = flume::bounded(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn applier_loop(
    store: &StateStore,
    wal: &Wal,
    apply: &mut dyn ApplyEntry,
    opts: &ApplierOptions,
    shared: &Shared,
    rx: flume::Receiver<ApplierMsg>,
) {
    let mut since_checkpoint: u64 = 0;
    let mut last_checkpoint = Instant::now();
    let mut last_maintain = Instant::now();
    let mut failed: Option<String> = None;
    // Checkpoint failures are logged when they start and when they end, not
    // on every retry (a full disk fails every tick).
    let mut checkpoint_failures: u64 = 0;
    let dir = store.dir.display().to_string();
    loop {
        let tick = opts.checkpoint_every.min(opts.maintain_every).min(Duration::from_millis(500));
        let msg = rx.recv_timeout(tick);
        let disconnected = matches!(msg, Err(flume::RecvTimeoutError::Disconnected));
        shared.kicked.store(false, Ordering::SeqCst);
        if failed.is_none() {
            match store.apply_from_log(wal, shared.committed.load(Ordering::SeqCst), apply) {
                Ok(n) => since_checkpoint += n,
                Err(e) => {
                    tracing::error!(%dir, error = %e, "state applier stopped: the state store applies nothing more until the process restarts");
                    failed = Some(e.to_string());
                    let _ = shared.failed.set(e.to_string());
                }
            }
        }
        let due = since_checkpoint >= opts.checkpoint_every_entries
            || (since_checkpoint > 0 && last_checkpoint.elapsed() >= opts.checkpoint_every);
        let explicit = match msg {
            Ok(ApplierMsg::Checkpoint(done)) => Some(done),
            _ => None,
        };
        let mut maintain_now = failed.is_none() && !disconnected && last_maintain.elapsed() >= opts.maintain_every;
        if failed.is_none() && (due || explicit.is_some()) {
            let r = checkpoint_and_purge(store, wal, opts.purge_log);
            if r.is_ok() {
                since_checkpoint = 0;
                last_checkpoint = Instant::now();
                maintain_now = !disconnected;
                if checkpoint_failures > 0 {
                    tracing::warn!(%dir, failures = checkpoint_failures, "checkpoint succeeded again after {checkpoint_failures} failed attempts");
                    checkpoint_failures = 0;
                }
            }
            if let Err(e) = &r {
                if checkpoint_failures == 0 {
                    tracing::error!(%dir, error = %e, "checkpoint failed (retried every tick; the log keeps growing until one succeeds)");
                } else {
                    tracing::debug!(%dir, error = %e, attempt = checkpoint_failures + 1, "checkpoint failed again");
                }
                checkpoint_failures += 1;
            }
            if let Some(done) = explicit {
                let _ = done.send(r);
            }
        } else if let Some(done) = explicit {
            let why = failed.clone().unwrap_or_default();
            let _ = done.send(Err(StorageError::Poisoned(why)));
        }
        if maintain_now {
            last_maintain = Instant::now();
            if let Err(e) = apply.maintain(store) {
                tracing::warn!(%dir, error = %e, "state maintenance failed (retried at the next sweep)");
            }
        }
        if disconnected {
            return;
        }
    }
}

fn checkpoint_and_purge(store: &StateStore, wal: &Wal, purge: bool) -> Result<u64, StorageError> {
    let index = store.checkpoint()?;
    if purge && index >= wal.first_index() {
        futures::executor::block_on(wal.purge_upto(index)?)?;
    }
    Ok(index)
}
