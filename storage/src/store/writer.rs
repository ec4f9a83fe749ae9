//! The write-behind applier of one log: a thread that applies the key
//! writes a Raft state machine computed (on its core) to the partitions'
//! sled trees, in batches, and checkpoints the log's partitions.
//!
//! Unlike [`super::LogApplier`], which reads committed entries back from the
//! log and decodes them itself, this one is *pushed* the writes: the state
//! machine that applied an entry in memory is the only one that knows its
//! writes (an expiry's writes depend on the machine's state, not on the
//! record alone). The log stays the source of truth: a write lost in a crash
//! before a checkpoint covered it is recomputed by the replay after the
//! checkpoint.
//!
//! Bounds: the channel holds at most [`WriterOptions::queue`] messages; a
//! full channel makes [`BatchWriter::apply`] wait (the state machine's apply,
//! hence the group's commits, slow down to sled's pace — backpressure, never
//! an unbounded queue). One round takes every message queued (up to
//! [`MAX_ROUND`]) and applies each partition's entries with one call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CheckpointReport, Partition, SnapshotRow, Store};
use crate::completion::{Completion, Reply};
use crate::error::{IoContext, StorageError};
use crate::kv::KvWrite;
use crate::log::{GroupId, LogId};

/// Messages one round takes at most.
pub const MAX_ROUND: usize = 1024;
/// Pause after a round that did not fill up: the writes of that time wait
/// in the channel and make the next round, instead of waking the thread
/// once each (measured: one wake-up per state-machine batch cost as much
/// CPU as the sled writes themselves). Writes are behind the log anyway.
const LINGER: Duration = Duration::from_micros(500);

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Messages the channel holds.
    pub queue: usize,
    /// Checkpoint after this many entries applied since the last one ...
    pub checkpoint_every_entries: u64,
    /// ... or after this long with anything new applied.
    pub checkpoint_every: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { queue: 1024, checkpoint_every_entries: 100_000, checkpoint_every: Duration::from_secs(30) }
    }
}

/// Called on the writer thread after every durable checkpoint (the Raft
/// layer raises each group's purge floor from it).
pub type OnCheckpoint = Box<dyn Fn(&CheckpointReport) + Send + 'static>;

enum Msg {
    Apply {
        part: Partition,
        entries: Vec<(LogId, Vec<KvWrite>)>,
    },
    /// Resolves once everything sent before it is applied.
    Barrier(Reply<()>),
    Checkpoint(Reply<CheckpointReport>),
    Install {
        part: Partition,
        applied: LogId,
        rows: Vec<SnapshotRow>,
        done: Reply<()>,
    },
}

struct Shared {
    failed: Mutex<Option<String>>,
}

/// The writer of one log. Cheap to clone; the thread applies what is queued
/// and stops when the last clone is dropped.
#[derive(Clone)]
pub struct BatchWriter {
    tx: flume::Sender<Msg>,
    shared: Arc<Shared>,
    log_no: u32,
    _thread: Arc<Joiner>,
}

/// Joins the thread when the last clone goes (after `tx`, declared
/// before it, was dropped: the thread sees the end of the channel).
struct Joiner {
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Joiner {
    fn drop(&mut self) {
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl BatchWriter {
    /// Start the writer of log `log_no` (attached to `store`).
    pub fn spawn(store: Store, log_no: u32, opts: WriterOptions, on_checkpoint: OnCheckpoint) -> Result<BatchWriter, StorageError> {
        store.slot(log_no)?;
        let (tx, rx) = flume::bounded(opts.queue.max(1));
        let shared = Arc::new(Shared { failed: Mutex::new(None) });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("writer:{log_no}"))
            .spawn(move || run(&store, log_no, &opts, &*on_checkpoint, &sh, rx))
            .ctx(|| "spawn store writer thread".to_string())?;
        let joiner = Arc::new(Joiner { thread: Mutex::new(Some(thread)) });
        Ok(BatchWriter { tx, shared, log_no, _thread: joiner })
    }

    pub fn log_no(&self) -> u32 {
        self.log_no
    }

    /// Why the writer stopped applying, if it did (a sled error: restart).
    pub fn failure(&self) -> Option<String> {
        self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn check(&self) -> Result<(), StorageError> {
        match self.failure() {
            Some(why) => Err(StorageError::Poisoned(why)),
            None => Ok(()),
        }
    }

    /// Queue the writes of `entries` (increasing, after the partition's
    /// applied log id); waits while the channel is full.
    pub async fn apply(&self, part: &Partition, entries: Vec<(LogId, Vec<KvWrite>)>) -> Result<(), StorageError> {
        self.check()?;
        self.tx.send_async(Msg::Apply { part: part.clone(), entries }).await.map_err(|_| StorageError::Closed)
    }

    /// [`BatchWriter::apply`] from a plain thread (blocks while full).
    pub fn apply_blocking(&self, part: &Partition, entries: Vec<(LogId, Vec<KvWrite>)>) -> Result<(), StorageError> {
        self.check()?;
        self.tx.send(Msg::Apply { part: part.clone(), entries }).map_err(|_| StorageError::Closed)
    }

    /// Resolves once everything queued before it is applied.
    pub fn barrier(&self) -> Completion<()> {
        let (done, fut) = Completion::channel();
        if self.tx.send(Msg::Barrier(done)).is_err() {
            return Completion::ready(Err(StorageError::Closed));
        }
        fut
    }

    /// Apply what is queued, then checkpoint the log's partitions.
    pub fn checkpoint(&self) -> Completion<CheckpointReport> {
        let (done, fut) = Completion::channel();
        if self.tx.send(Msg::Checkpoint(done)).is_err() {
            return Completion::ready(Err(StorageError::Closed));
        }
        fut
    }

    /// Replace a partition's state with snapshot rows (see
    /// [`Store::install_snapshot`]), after everything queued before;
    /// resolves once it is durable.
    pub fn install(&self, part: &Partition, applied: LogId, rows: Vec<SnapshotRow>) -> Completion<()> {
        let (done, fut) = Completion::channel();
        if self.tx.send(Msg::Install { part: part.clone(), applied, rows, done }).is_err() {
            return Completion::ready(Err(StorageError::Closed));
        }
        fut
    }

    /// Messages waiting for the thread.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

/// A partition's entries: log id and key writes of each.
pub type EntryWrites = Vec<(LogId, Vec<KvWrite>)>;

struct Round {
    /// Entries per partition, in the order they came.
    applies: BTreeMap<GroupId, (Partition, EntryWrites)>,
}

impl Round {
    fn flush(&mut self, failed: &mut Option<String>, log_no: u32) -> u64 {
        let mut n = 0;
        for (g, (part, entries)) in std::mem::take(&mut self.applies) {
            if failed.is_some() {
                continue;
            }
            match part.apply_batch(&entries) {
                Ok(_) => n += entries.len() as u64,
                Err(e) => {
                    tracing::error!(error = %e, log = log_no, partition = g, "state writer stopped: sled apply failed; restart needed");
                    *failed = Some(format!("state store of log {log_no}: {e}"));
                }
            }
        }
        n
    }
}

fn run(
    store: &Store,
    log_no: u32,
    opts: &WriterOptions,
    on_checkpoint: &dyn Fn(&CheckpointReport),
    shared: &Shared,
    rx: flume::Receiver<Msg>,
) {
    let mut since_checkpoint: u64 = 0;
    let mut last_checkpoint = Instant::now();
    let mut failed: Option<String> = None;
    let tick = opts.checkpoint_every.min(Duration::from_millis(500));
    let publish = |failed: &Option<String>| {
        if failed.is_some() {
            let mut f = shared.failed.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                *f = failed.clone();
            }
        }
    };
    let checkpoint = |failed: &Option<String>| -> Result<CheckpointReport, StorageError> {
        if let Some(why) = failed {
            return Err(StorageError::Poisoned(why.clone()));
        }
        let r = store.checkpoint(log_no);
        match &r {
            Ok(report) => on_checkpoint(report),
            Err(e) => tracing::error!(error = %e, log = log_no, "checkpoint failed"),
        }
        r
    };
    loop {
        let first = match rx.recv_timeout(tick) {
            Ok(m) => Some(m),
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        let mut round = Round { applies: BTreeMap::new() };
        let mut taken = 0;
        for msg in first.into_iter().chain(rx.try_iter().take(MAX_ROUND - 1)) {
            taken += 1;
            match msg {
                Msg::Apply { part, entries } => {
                    round.applies.entry(part.id()).or_insert_with(|| (part.clone(), Vec::new())).1.extend(entries);
                }
                Msg::Barrier(done) => {
                    since_checkpoint += round.flush(&mut failed, log_no);
                    publish(&failed);
                    let _ = done.send(failed.as_ref().map_or(Ok(()), |w| Err(StorageError::Poisoned(w.clone()))));
                }
                Msg::Checkpoint(done) => {
                    since_checkpoint += round.flush(&mut failed, log_no);
                    publish(&failed);
                    let r = checkpoint(&failed);
                    if r.is_ok() {
                        since_checkpoint = 0;
                        last_checkpoint = Instant::now();
                    }
                    let _ = done.send(r);
                }
                Msg::Install { part, applied, rows, done } => {
                    since_checkpoint += round.flush(&mut failed, log_no);
                    publish(&failed);
                    let r = match &failed {
                        Some(why) => Err(StorageError::Poisoned(why.clone())),
                        None => store.install_snapshot(&part, applied, rows.into_iter().map(Ok)),
                    };
                    match &r {
                        // The install ended with a durable checkpoint: report
                        // it like any other (it writes nothing new now).
                        Ok(()) => {
                            let _ = checkpoint(&failed);
                        }
                        Err(e) => tracing::error!(error = %e, log = log_no, partition = part.id(), "snapshot install failed"),
                    }
                    let _ = done.send(r);
                }
            }
        }
        since_checkpoint += round.flush(&mut failed, log_no);
        publish(&failed);
        if taken > 0 && taken < MAX_ROUND {
            std::thread::sleep(LINGER);
        }
        let due = since_checkpoint >= opts.checkpoint_every_entries
            || (since_checkpoint > 0 && last_checkpoint.elapsed() >= opts.checkpoint_every);
        if due && failed.is_none() && checkpoint(&failed).is_ok() {
            since_checkpoint = 0;
            last_checkpoint = Instant::now();
        }
    }
}
