//! The applier of one log: a background thread that applies its
//! partitions' committed entries, checkpoints (on demand and periodically),
//! installs snapshots and runs the owner's maintenance — as v1's applier,
//! per log instead of per store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CheckpointReport, Partition, SnapshotRow, Store};
use crate::completion::{Completion, Reply};
use crate::error::{IoContext, StorageError};
use crate::kv::KvWrite;
use crate::log::{GroupId, LogId};
use crate::Entry;

/// Turns a committed entry of a group into key writes. Replay calls it
/// again for the same entry, so it must depend on the entry alone.
pub trait Apply: Send + 'static {
    fn writes(&mut self, group: GroupId, entry: &Entry) -> Result<Vec<KvWrite>, StorageError>;

    /// Housekeeping on the applier thread, after every checkpoint and at
    /// least every [`ApplierOptions::maintain_every`]. Errors are logged,
    /// never fatal.
    fn maintain(&mut self, _store: &Store, _log_no: u32) -> Result<(), StorageError> {
        Ok(())
    }
}

impl<F> Apply for F
where
    F: FnMut(GroupId, &Entry) -> Result<Vec<KvWrite>, StorageError> + Send + 'static,
{
    fn writes(&mut self, group: GroupId, entry: &Entry) -> Result<Vec<KvWrite>, StorageError> {
        self(group, entry)
    }
}

/// When the applier checkpoints.
#[derive(Debug, Clone)]
pub struct ApplierOptions {
    /// Checkpoint after this many entries applied since the last one.
    pub checkpoint_every_entries: u64,
    /// ... or after this long with anything new applied.
    pub checkpoint_every: Duration,
    /// After a checkpoint, purge each group up to its checkpoint (single
    /// node). Off in a cluster: Raft purges after snapshots.
    pub purge_log: bool,
    /// Run [`Apply::maintain`] at least this often (and after every checkpoint).
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

enum Msg {
    Kick,
    Checkpoint(Reply<CheckpointReport>),
    Install { group: GroupId, applied: LogId, rows: Vec<SnapshotRow>, done: Reply<()> },
}

/// The applier thread of one log. Dropping it applies what is committed and stops.
pub struct LogApplier {
    tx: flume::Sender<Msg>,
    kicked: Arc<AtomicBool>,
    store: Store,
    log_no: u32,
    thread: Option<JoinHandle<()>>,
}

impl LogApplier {
    /// Start the applier of log `log_no` (attached to `store`, its
    /// partitions opened and replayed).
    pub fn spawn(store: Store, log_no: u32, mut apply: impl Apply, opts: ApplierOptions) -> Result<LogApplier, StorageError> {
        store.slot(log_no)?;
        let (tx, rx) = flume::bounded(64);
        let kicked = Arc::new(AtomicBool::new(false));
        let (st, k) = (store.clone(), kicked.clone());
        let thread = std::thread::Builder::new()
            .name(format!("applier:{log_no}"))
            .spawn(move || run(&st, log_no, &mut apply, &opts, &k, rx))
            .ctx(|| "spawn applier thread".to_string())?;
        Ok(LogApplier { tx, kicked, store, log_no, thread: Some(thread) })
    }

    /// Publish that entries of `group` up to `index` are committed (single
    /// node: their append resolved; Raft: a quorum has them). Never blocks;
    /// one wake-up per apply round however many commits arrive.
    pub fn notify_committed(&self, group: GroupId, index: u64) {
        let part = self.store.inner.partitions.read().unwrap_or_else(|p| p.into_inner()).get(&group).cloned();
        match part {
            Some(p) if p.log_no == self.log_no => {
                p.committed.fetch_max(index.saturating_add(1), Ordering::SeqCst);
            }
            _ => {
                tracing::warn!(group, log = self.log_no, "commit notice for a partition this applier does not serve");
                return;
            }
        }
        if !self.kicked.swap(true, Ordering::SeqCst) {
            // Full only with requests queued; the applier also wakes by itself.
            let _ = self.tx.try_send(Msg::Kick);
        }
    }

    /// Apply everything committed, then checkpoint (and purge, when
    /// configured); resolves with what the checkpoint covers.
    pub fn checkpoint(&self) -> Result<Completion<CheckpointReport>, StorageError> {
        let (done, fut) = Completion::channel();
        self.tx.try_send(Msg::Checkpoint(done)).map_err(|_| StorageError::Backpressure { pending: self.tx.len() })?;
        Ok(fut)
    }

    /// Install a snapshot of `group` on the applier thread (so no apply
    /// runs on the partition meanwhile); resolves once it is durable.
    pub fn install_snapshot(&self, group: GroupId, applied: LogId, rows: Vec<SnapshotRow>) -> Result<Completion<()>, StorageError> {
        let (done, fut) = Completion::channel();
        self.tx.try_send(Msg::Install { group, applied, rows, done }).map_err(|_| StorageError::Backpressure { pending: self.tx.len() })?;
        Ok(fut)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Drop for LogApplier {
    fn drop(&mut self) {
        let (tx, _) = flume::bounded(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Apply what is committed in every partition of the log.
fn apply_committed(store: &Store, parts: &[Partition], apply: &mut dyn Apply) -> Result<u64, StorageError> {
    let mut n = 0;
    for part in parts {
        let Some(c) = part.inner.committed.load(Ordering::SeqCst).checked_sub(1) else { continue };
        let g = part.group();
        let from = part.applied().map_or_else(|| g.first_index(), |a| a.index + 1);
        let Some(upto) = g.last_index().map(|l| l.min(c)) else { continue };
        if from <= upto {
            n += store.apply_range(part, from, upto, apply)?;
        }
    }
    Ok(n)
}

fn run(store: &Store, log_no: u32, apply: &mut dyn Apply, opts: &ApplierOptions, kicked: &AtomicBool, rx: flume::Receiver<Msg>) {
    let mut since_checkpoint: u64 = 0;
    let mut last_checkpoint = Instant::now();
    let mut last_maintain = Instant::now();
    let mut failed: Option<String> = None;
    let checkpoint = |store: &Store| if opts.purge_log { store.checkpoint_and_purge(log_no) } else { store.checkpoint(log_no) };
    loop {
        let tick = opts.checkpoint_every.min(opts.maintain_every).min(Duration::from_millis(500));
        let msg = rx.recv_timeout(tick);
        let disconnected = matches!(msg, Err(flume::RecvTimeoutError::Disconnected));
        kicked.store(false, Ordering::SeqCst);
        let parts = store.partitions_of(log_no);
        if failed.is_none() {
            match apply_committed(store, &parts, apply) {
                Ok(n) => since_checkpoint += n,
                Err(e) => {
                    tracing::error!(error = %e, log = log_no, "state applier stopped");
                    failed = Some(e.to_string());
                }
            }
        }
        let mut explicit = None;
        match msg {
            Ok(Msg::Checkpoint(done)) => explicit = Some(done),
            Ok(Msg::Install { group, applied, rows, done }) => {
                let r = match &failed {
                    Some(why) => Err(StorageError::Poisoned(why.clone())),
                    None => store.partition(log_no, group).and_then(|p| store.install_snapshot(&p, applied, rows.into_iter().map(Ok))),
                };
                if let Err(e) = &r {
                    tracing::error!(error = %e, log = log_no, group, "snapshot install failed");
                }
                let _ = done.send(r);
            }
            _ => {}
        }
        let due = since_checkpoint >= opts.checkpoint_every_entries
            || (since_checkpoint > 0 && last_checkpoint.elapsed() >= opts.checkpoint_every);
        let mut maintain_now = failed.is_none() && !disconnected && last_maintain.elapsed() >= opts.maintain_every;
        if failed.is_none() && (due || explicit.is_some()) {
            let r = checkpoint(store);
            match &r {
                Ok(_) => {
                    since_checkpoint = 0;
                    last_checkpoint = Instant::now();
                    maintain_now = !disconnected;
                }
                Err(e) => tracing::error!(error = %e, log = log_no, "checkpoint failed"),
            }
            if let Some(done) = explicit {
                let _ = done.send(r);
            }
        } else if let Some(done) = explicit {
            let _ = done.send(Err(StorageError::Poisoned(failed.clone().unwrap_or_default())));
        }
        if maintain_now {
            last_maintain = Instant::now();
            if let Err(e) = apply.maintain(store, log_no) {
                tracing::warn!(error = %e, log = log_no, "state maintenance failed");
            }
        }
        if disconnected {
            return;
        }
    }
}
