//! openraft's `RaftStateMachine` over [`PartitionMachine`], the trait the node
//! implements with engine's partition state machine (and [`crate::testkit`]'s
//! counter machine in tests).
//!
//! - Committed entries reach the machine in batches (`apply` once per batch
//!   openraft hands over); one answer per record comes back and is the
//!   client's `client_write` response.
//! - The applied state (applied log id + last membership, [`AppliedState`])
//!   is handed to the machine with every batch, to persist atomically with
//!   the batch's writes; restart reads it back through `applied_state`.
//! - Snapshots are built OFF the core thread (openraft #1403: a heartbeat
//!   must never wait behind a snapshot): `PartitionMachine::snapshot` only
//!   captures a consistent view on the core; the returned job runs on its own
//!   thread and produces the chunks. Install = clear + load (`install`).

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{OptionalSend, RaftSnapshotBuilder};

use crate::codec::{self, Reader, Writer};
use crate::types::{EntryPayload, LogId, Snapshot, SnapshotChunks, SnapshotMeta, StoredMembership, C};

/// Largest snapshot chunk (one peer frame each).
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// Applied log id + the last membership applied: what a partition's state
/// store persists next to its data so a restart knows where it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

const APPLIED_STATE_VERSION: u8 = 1;

impl AppliedState {
    /// Index of the last applied entry.
    pub fn index(&self) -> Option<u64> {
        self.last_applied.map(|l| l.index)
    }

    /// `(term, index)` of the last applied entry.
    pub fn log_id(&self) -> Option<(u64, u64)> {
        self.last_applied.map(|l| (l.leader_id.term, l.index))
    }

    /// Versioned binary form (store it with the data).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.u8(APPLIED_STATE_VERSION);
        codec::put_opt_log_id(&mut w, &self.last_applied);
        codec::put_stored_membership(&mut w, &self.membership);
        w.buf
    }

    pub fn decode(b: &[u8]) -> Result<AppliedState, codec::DecodeError> {
        let mut r = Reader::new(b);
        let v = r.u8("applied state version")?;
        if v != APPLIED_STATE_VERSION {
            return Err(codec::DecodeError::BadTag { what: "applied state version", tag: v });
        }
        let last_applied = codec::get_opt_log_id(&mut r)?;
        let membership = codec::get_stored_membership(&mut r)?;
        r.finish()?;
        Ok(AppliedState { last_applied, membership })
    }
}

/// Produces a snapshot's chunks on a thread of its own.
pub type SnapshotJob = Box<dyn FnOnce() -> io::Result<Vec<Bytes>> + Send + 'static>;

/// One committed record handed to the machine: its log index and the
/// encoded partition record.
#[derive(Debug, Clone)]
pub struct CommittedRecord {
    pub index: u64,
    pub term: u64,
    pub record: Bytes,
}

/// The deterministic partition state machine, as Raft drives it. Runs on the
/// group's core; `!Send` is fine.
#[allow(async_fn_in_trait)]
pub trait PartitionMachine: 'static {
    /// Apply committed records in log order; return one answer per record.
    /// `state` is the applied state after this batch (it may advance with no
    /// record: blank and membership entries): persist it atomically with the
    /// batch's writes. Must be deterministic in (records, prior state).
    async fn apply(&mut self, records: Vec<CommittedRecord>, state: &AppliedState) -> io::Result<Vec<Bytes>>;

    /// The applied state persisted with the latest writes (`None`: fresh).
    fn applied_state(&mut self) -> io::Result<Option<AppliedState>>;

    /// Capture a consistent view of the state as of the last applied entry,
    /// cheaply, on the core; the returned job serialises it into chunks of at
    /// most [`SNAPSHOT_CHUNK_BYTES`] on another thread.
    fn snapshot(&mut self) -> io::Result<SnapshotJob>;

    /// Replace the whole state with a snapshot (clear + load); the applied
    /// state becomes `state`. Durable when it returns.
    async fn install(&mut self, state: &AppliedState, snapshot: SnapshotChunks) -> io::Result<()>;
}

/// The adapter openraft drives.
pub struct StateMachine<M: PartitionMachine> {
    machine: M,
    applied: Option<AppliedState>,
    current: Rc<RefCell<Option<Snapshot>>>,
}

impl<M: PartitionMachine> StateMachine<M> {
    pub fn new(machine: M) -> StateMachine<M> {
        StateMachine { machine, applied: None, current: Rc::new(RefCell::new(None)) }
    }

    fn applied(&mut self) -> io::Result<AppliedState> {
        if self.applied.is_none() {
            self.applied = Some(self.machine.applied_state()?.unwrap_or_default());
        }
        Ok(self.applied.clone().unwrap_or_default())
    }

    pub fn machine(&mut self) -> &mut M {
        &mut self.machine
    }
}

/// Builds one snapshot off the core thread.
pub struct SnapshotBuilder {
    meta: SnapshotMeta,
    job: Option<SnapshotJob>,
    current: Rc<RefCell<Option<Snapshot>>>,
}

/// Run `job` on a new thread and await its result without blocking the core.
pub async fn run_off_thread<T: Send + 'static>(name: &str, job: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let _ = tx.send(job());
    })?;
    rx.await.map_err(|_| io::Error::other("snapshot thread ended without an answer (panicked?)"))
}

impl RaftSnapshotBuilder<C> for SnapshotBuilder {
    type SnapshotData = SnapshotChunks;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let job = self.job.take().ok_or_else(|| io::Error::other("snapshot builder used twice"))?;
        let started = std::time::Instant::now();
        let chunks = run_off_thread("raft-snapshot", job).await??;
        if let Some(big) = chunks.iter().find(|c| c.len() > SNAPSHOT_CHUNK_BYTES) {
            let e = io::Error::new(io::ErrorKind::InvalidData, format!("snapshot chunk of {} bytes > {SNAPSHOT_CHUNK_BYTES}", big.len()));
            tracing::error!(error = %e, "raft snapshot: build rejected");
            return Err(e);
        }
        let snapshot = Snapshot { meta: self.meta.clone(), snapshot: SnapshotChunks { chunks } };
        tracing::info!(
            last_log_id = ?self.meta.last_log_id,
            chunks = snapshot.snapshot.chunks.len(),
            bytes = snapshot.snapshot.total_bytes(),
            ms = started.elapsed().as_millis() as u64,
            "raft snapshot built"
        );
        *self.current.borrow_mut() = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl<M: PartitionMachine> RaftStateMachine<C> for StateMachine<M> {
    type SnapshotData = SnapshotChunks;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let a = self.applied()?;
        Ok((a.last_applied, a.membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut state = self.applied()?;
        let mut records = Vec::new();
        // (position in `records` or None for a non-record entry, responder)
        let mut responders = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            state.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Normal(rec) => {
                    responders.push((Some(records.len()), responder));
                    records.push(CommittedRecord { index: entry.log_id.index, term: entry.log_id.leader_id.term, record: rec.0 });
                }
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), m);
                    responders.push((None, responder));
                }
                EntryPayload::Blank => responders.push((None, responder)),
            }
        }
        if responders.is_empty() {
            return Ok(());
        }
        let n = records.len();
        let answers = self.machine.apply(records, &state).await.inspect_err(|e| {
            tracing::error!(error = %e, last = ?state.last_applied, "raft apply failed; the group stops");
        })?;
        if answers.len() != n {
            return Err(io::Error::other(format!("state machine answered {} of {n} records", answers.len())));
        }
        self.applied = Some(state);
        let mut answers = answers.into_iter();
        for (pos, responder) in responders {
            let answer = if pos.is_some() { answers.next().unwrap_or_default() } else { Bytes::new() };
            if let Some(r) = responder {
                r.send(answer);
            }
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<SnapshotBuilder> {
        Some(self.get_snapshot_builder().await)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        let state = self.applied().unwrap_or_default();
        let meta = SnapshotMeta { last_log_id: state.last_applied, last_membership: state.membership };
        let job: Option<SnapshotJob> = match self.machine.snapshot() {
            Ok(job) => Some(job),
            Err(e) => {
                tracing::error!(error = %e, "raft snapshot: capturing the state failed");
                let msg = e.to_string();
                Some(Box::new(move || Err(io::Error::other(msg))))
            }
        };
        SnapshotBuilder { meta, job, current: self.current.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotChunks) -> Result<(), io::Error> {
        let state = AppliedState { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        let started = std::time::Instant::now();
        let bytes = snapshot.total_bytes();
        self.machine.install(&state, snapshot.clone()).await.inspect_err(|e| {
            tracing::error!(error = %e, last_log_id = ?meta.last_log_id, "raft snapshot: install failed");
        })?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes, ms = started.elapsed().as_millis() as u64, "raft snapshot installed");
        self.applied = Some(state);
        *self.current.borrow_mut() = Some(Snapshot { meta: meta.clone(), snapshot });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.current.borrow().clone())
    }
}
