//! The state machine of a partition group on a node: [`NodeMachine`]
//! implements [`PartitionMachine`] over
//! - the in-memory [`engine::partition::Partition`], on the group's core,
//!   shared (`Rc<RefCell<..>>`) with the owner runtime that proposes on it;
//! - its [`storage::store::Partition`] (a sled tree), written off the core:
//!   `apply` computes the key writes on the core and queues them to the
//!   log's [`BatchWriter`], which applies them in batches.
//!
//! **Where a like toggle is applied**: [`NodeMachine::apply`] →
//! `engine::partition::Partition::apply` (memory, the answer) → the writer
//! (sled, later). The log stays the source of truth: a checkpoint of the
//! log's partitions makes sled durable up to a log id, and restart replays
//! the committed entries after it ([`recover_partition`]).
//!
//! The applied state (applied log id + last membership, [`AppliedState`])
//! is the row [`APPLIED_ROW`] of the partition, written with every batch,
//! so a snapshot (a scan of the partition) carries it. A snapshot is built
//! off the core after the writer caught up; an install loads the rows into
//! the store (durable before it returns) and rebuilds the machine from them.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use engine::partition::{Limits, Outcome, Partition as Machine, Record, Restorer, RESTORE_PREFIXES};
use storage::log::LogId as StoreLogId;
use storage::store::{BatchWriter, EntryWrites, KvWrite, Partition as StorePartition, SnapshotRow, Store};
use storage::StorageError;

use crate::codec;
use crate::state_machine::{run_off_thread, AppliedState, CommittedRecord, PartitionMachine, SnapshotJob, SNAPSHOT_CHUNK_BYTES};
use crate::types::{log_id, term_of, EntryPayload, GroupId, SnapshotChunks, StoredMembership};

/// Store row of the applied state (not a prefix the engine restores from).
pub const APPLIED_ROW: &[u8] = b"raft/applied";
/// Entries replayed per batch at start.
const REPLAY_CHUNK: u64 = 1024;

/// A partition's machine, shared by the Raft state machine and the owner runtime (same core).
pub type SharedMachine = Rc<RefCell<Machine>>;

/// Numbers of one group the scrape and readiness read from any thread.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Last index applied by the machine (memory), + 1 (0: none).
    pub applied: AtomicU64,
    /// Idempotency bindings forgotten by expiry records.
    pub bindings_expired: AtomicU64,
    /// Current term, leader flag (1) and ready flag (1: leader whose first
    /// entry of the term is applied), set by the core's watcher.
    pub term: AtomicU64,
    pub leader: AtomicU64,
    pub ready: AtomicU64,
    /// The leader this node knows (0: none), the cluster-committed index
    /// plus one (0: none) and whether this replica applied everything
    /// committed (1), kept by the core's status poll (`CoreGroups::refresh`).
    pub leader_id: AtomicU64,
    pub committed: AtomicU64,
    pub caught_up: AtomicU64,
    /// This replica's state ("leader", "follower", ...), its last log
    /// index + 1, and (leader only) per replica the highest index known
    /// replicated there, kept by the same poll (for the cluster status).
    pub state: std::sync::Mutex<&'static str>,
    pub last_log: AtomicU64,
    pub matched: std::sync::Mutex<Vec<(u64, Option<u64>)>>,
    /// Entries replayed at start.
    pub replayed: AtomicU64,
}

impl GroupStats {
    pub fn applied_index(&self) -> Option<u64> {
        self.applied.load(Ordering::Relaxed).checked_sub(1)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) == 1
    }

    /// Ready to serve on this node: the leader here and ready, or a
    /// follower of a known leader that applied everything committed.
    pub fn is_serving(&self, me: u64) -> bool {
        let leader = self.leader_id.load(Ordering::Acquire);
        self.is_ready() || (leader != 0 && leader != me && self.caught_up.load(Ordering::Acquire) == 1)
    }
}

/// A partition opened, restored and replayed at start: everything its group
/// needs, built on a recovery thread and moved to its core (`Send`).
pub struct Recovered {
    pub group: GroupId,
    pub store: StorePartition,
    pub machine: Machine,
    /// `None` for a group that never applied anything (bootstrap it).
    pub applied: Option<AppliedState>,
    /// Committed entries after the checkpoint, applied at start.
    pub replayed: u64,
}

fn decode_err(what: String) -> StorageError {
    tracing::error!(error = %what, "partition recovery refused");
    StorageError::Decode(what)
}

fn store_id(term: u64, index: u64) -> StoreLogId {
    StoreLogId::new(term, index)
}

fn applied_row(state: &AppliedState) -> KvWrite {
    KvWrite::Put { key: APPLIED_ROW.to_vec(), value: state.encode() }
}

/// Add the applied-state row to the batch (with its last entry, or as an
/// entry of its own when the state moved past it: blank and membership
/// entries). What a restart reads of it is the membership (the applied log
/// id is the store's own, at its checkpoint), so it is written when the
/// membership changes, not with every batch.
fn push_applied_row(batch: &mut EntryWrites, state: &AppliedState) {
    let Some(last) = state.last_applied else { return };
    let row = applied_row(state);
    match batch.last_mut() {
        Some((id, writes)) if id.index == last.index => writes.push(row),
        _ => batch.push((store_id(term_of(&last), last.index), vec![row])),
    }
}

/// Open partition `group` of log `log_no`: restore its machine from the
/// store, then replay the committed entries after its checkpoint into both
/// (so the group starts with applied = committed). Refuses a committed
/// entry that does not decode (naming it) and everything the store refuses.
pub fn recover_partition(store: &Store, log_no: u32, group: GroupId, limits: Limits) -> Result<Recovered, StorageError> {
    let part = store.partition(log_no, group)?;
    let checkpoint = part.applied();
    // Checks the log against the checkpoint and readies the store's
    // "fresh entries need no read" mark; applies nothing.
    store.replay(&part, checkpoint.map(|a| a.index), &mut |_g: u32, _e: &storage::Entry| Ok(Vec::new()))?;
    let mut restorer = Restorer::new(limits);
    let mut bad = None;
    for prefix in RESTORE_PREFIXES {
        part.visit_prefix(prefix, false, |v| match restorer.row(v.key, v.index, v.value) {
            Ok(()) => true,
            Err(e) => {
                bad = Some(format!("partition {group}: store row {:?}: {e}", String::from_utf8_lossy(v.key)));
                false
            }
        })?;
    }
    if let Some(why) = bad {
        return Err(decode_err(why));
    }
    let mut machine = restorer.finish(checkpoint.map_or(0, |a| a.index));
    // The row's membership, at the checkpoint's log id (a row written
    // after the checkpoint is rewritten by the replay that follows). A
    // partition never checkpointed starts from nothing and replays all.
    let mut applied = match checkpoint {
        None => None,
        Some(a) => {
            let membership = match part.get(APPLIED_ROW)? {
                Some((_, raw)) => {
                    AppliedState::decode(&raw).map_err(|e| decode_err(format!("partition {group}: applied-state row: {e}")))?.membership
                }
                None => Default::default(),
            };
            Some(AppliedState { last_applied: Some(log_id(a.term, a.index)), membership })
        }
    };
    let replayed = replay_committed(&part, group, &mut machine, &mut applied)?;
    Ok(Recovered { group, store: part, machine, applied, replayed })
}

/// Apply the committed entries after the store's applied one.
fn replay_committed(
    part: &StorePartition,
    group: GroupId,
    machine: &mut Machine,
    applied: &mut Option<AppliedState>,
) -> Result<u64, StorageError> {
    let g = part.group();
    let (Some(committed), Some(last)) = (g.read_committed(), g.last_index()) else { return Ok(0) };
    let upto = committed.index.min(last);
    let mut next = part.applied().map_or_else(|| g.first_index(), |a| a.index + 1);
    let mut n = 0;
    while next <= upto {
        let entries = g.read(next..=upto.min(next + REPLAY_CHUNK - 1))?;
        if entries.first().is_none_or(|e| e.index != next) {
            return Err(StorageError::Missing {
                path: g.log().dir().to_path_buf(),
                detail: format!("partition {group}: committed entry {next} is not in its log"),
            });
        }
        let mut state = applied.clone().unwrap_or_default();
        let mut batch: EntryWrites = Vec::with_capacity(entries.len());
        for e in &entries {
            let payload = codec::decode_payload(&e.payload)
                .map_err(|err| decode_err(format!("partition {group}: log entry {} does not decode: {err}", e.index)))?;
            let writes = match payload {
                EntryPayload::Normal(rec) => {
                    let record = Record::decode(&rec.0)
                        .map_err(|err| decode_err(format!("partition {group}: log entry {} is not a partition record: {err}", e.index)))?;
                    machine.apply(e.index, &record).writes
                }
                EntryPayload::Membership(m) => {
                    state.membership = StoredMembership::new(Some(log_id(e.term, e.index)), m);
                    Vec::new()
                }
                EntryPayload::Blank => Vec::new(),
            };
            state.last_applied = Some(log_id(e.term, e.index));
            batch.push((store_id(e.term, e.index), writes));
        }
        push_applied_row(&mut batch, &state);
        part.apply_batch(&batch)?;
        n += entries.len() as u64;
        next = entries.last().expect("non-empty").index + 1;
        *applied = Some(state);
    }
    Ok(n)
}

/// Seed a fresh partition with rows (a migration from another format): they
/// are installed as a snapshot taken at log id (1, 1) whose membership is
/// `members`, durable before this returns, and the group's log is purged up
/// to (1, 1). The group then starts from that snapshot (no bootstrap: it has
/// a membership). Refuses a partition that has state or log entries.
pub fn seed_partition(
    store: &Store,
    log_no: u32,
    group: GroupId,
    mut rows: Vec<SnapshotRow>,
    members: std::collections::BTreeMap<crate::types::NodeId, crate::types::NodeInfo>,
) -> Result<(), StorageError> {
    let part = store.partition(log_no, group)?;
    if part.applied().is_some() || part.group().last_log_id().is_some() {
        return Err(StorageError::InvalidArgument(format!("partition {group} is not fresh: it cannot be seeded")));
    }
    let id = log_id(1, 1);
    let voters = members.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], members)
        .map_err(|e| StorageError::InvalidArgument(format!("partition {group}: membership: {e}")))?;
    let state = AppliedState { last_applied: Some(id), membership: StoredMembership::new(Some(id), membership) };
    rows.retain(|r| r.key != APPLIED_ROW);
    rows.push(SnapshotRow { key: APPLIED_ROW.to_vec(), index: 1, value: Some(state.encode()) });
    store.install_snapshot(&part, store_id(1, 1), rows.into_iter().map(Ok))?;
    futures::executor::block_on(part.group().purge_upto(store_id(1, 1))?)?;
    Ok(())
}

/// The state machine of one partition group (see the module docs).
pub struct NodeMachine {
    group: GroupId,
    limits: Limits,
    machine: SharedMachine,
    store: StorePartition,
    writer: BatchWriter,
    applied: Option<AppliedState>,
    stats: Arc<GroupStats>,
}

impl NodeMachine {
    /// The group's state machine and the handle the owner runtime shares.
    pub fn new(r: Recovered, limits: Limits, writer: BatchWriter, stats: Arc<GroupStats>) -> (NodeMachine, SharedMachine) {
        stats.applied.store(r.applied.as_ref().and_then(|a| a.index()).map_or(0, |i| i + 1), Ordering::Relaxed);
        stats.replayed.store(r.replayed, Ordering::Relaxed);
        let machine = Rc::new(RefCell::new(r.machine));
        let nm = NodeMachine { group: r.group, limits, machine: machine.clone(), store: r.store, writer, applied: r.applied, stats };
        (nm, machine)
    }

    pub fn group(&self) -> GroupId {
        self.group
    }
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Snapshot bytes: rows one after the other, `key_len: u32 | key | index:
/// u64 | tag: u8 (0 value, 1 tombstone) | [value_len: u32 | value]`, little
/// endian, cut into chunks of at most [`SNAPSHOT_CHUNK_BYTES`] anywhere (a
/// row may span chunks).
fn encode_row(out: &mut Vec<u8>, row: &SnapshotRow) {
    out.extend_from_slice(&(row.key.len() as u32).to_le_bytes());
    out.extend_from_slice(&row.key);
    out.extend_from_slice(&row.index.to_le_bytes());
    match &row.value {
        None => out.push(1),
        Some(v) => {
            out.push(0);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
}

pub fn decode_rows(chunks: &SnapshotChunks) -> io::Result<Vec<SnapshotRow>> {
    let bytes: Vec<u8> = chunks.chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot rows: {what}"));
    let mut rows = Vec::new();
    let mut b = &bytes[..];
    let take = |b: &mut &[u8], n: usize| -> io::Result<Vec<u8>> {
        if b.len() < n {
            return Err(bad("truncated"));
        }
        let (h, r) = b.split_at(n);
        *b = r;
        Ok(h.to_vec())
    };
    while !b.is_empty() {
        let klen = u32::from_le_bytes(take(&mut b, 4)?.try_into().expect("4 bytes")) as usize;
        let key = take(&mut b, klen)?;
        let index = u64::from_le_bytes(take(&mut b, 8)?.try_into().expect("8 bytes"));
        let value = match take(&mut b, 1)?[0] {
            1 => None,
            0 => {
                let vlen = u32::from_le_bytes(take(&mut b, 4)?.try_into().expect("4 bytes")) as usize;
                Some(take(&mut b, vlen)?)
            }
            t => return Err(bad(&format!("tag {t}"))),
        };
        rows.push(SnapshotRow { key, index, value });
    }
    Ok(rows)
}

impl PartitionMachine for NodeMachine {
    async fn apply(&mut self, records: Vec<CommittedRecord>, state: &AppliedState) -> io::Result<Vec<Bytes>> {
        let mut answers = Vec::with_capacity(records.len());
        let mut batch: EntryWrites = Vec::with_capacity(records.len() + 1);
        {
            let mut m = self.machine.borrow_mut();
            for r in &records {
                let record = Record::decode(&r.record).map_err(|e| {
                    tracing::error!(partition = self.group, index = r.index, error = %e, "committed entry is not a partition record");
                    io_err(format!("partition {} entry {}: {e}", self.group, r.index))
                })?;
                let applied = m.apply(r.index, &record);
                if let Outcome::Expired { forgotten } = applied.outcome {
                    self.stats.bindings_expired.fetch_add(forgotten as u64, Ordering::Relaxed);
                }
                answers.push(Bytes::from(applied.outcome.encode()));
                batch.push((store_id(r.term, r.index), applied.writes));
            }
        }
        if self.applied.as_ref().is_none_or(|a| a.membership != state.membership) {
            push_applied_row(&mut batch, state);
        } else if batch.is_empty() {
            // Blank entries only: the store's applied log id still moves.
            if let Some(last) = state.last_applied {
                batch.push((store_id(term_of(&last), last.index), Vec::new()));
            }
        }
        if !batch.is_empty() {
            self.writer.apply(&self.store, batch).await.map_err(|e| {
                tracing::error!(partition = self.group, error = %e, "state writer refused: the group stops");
                io_err(e)
            })?;
        }
        self.applied = Some(state.clone());
        if let Some(i) = state.index() {
            self.stats.applied.store(i + 1, Ordering::Relaxed);
        }
        Ok(answers)
    }

    fn applied_state(&mut self) -> io::Result<Option<AppliedState>> {
        Ok(self.applied.clone())
    }

    fn snapshot(&mut self) -> io::Result<SnapshotJob> {
        let (writer, store, group) = (self.writer.clone(), self.store.clone(), self.group);
        Ok(Box::new(move || {
            // Everything applied so far was queued before this barrier.
            futures::executor::block_on(writer.barrier()).map_err(io_err)?;
            let mut chunks = Vec::new();
            let mut cur = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES);
            for row in store.snapshot() {
                encode_row(&mut cur, &row.map_err(io_err)?);
                while cur.len() >= SNAPSHOT_CHUNK_BYTES {
                    let rest = cur.split_off(SNAPSHOT_CHUNK_BYTES);
                    chunks.push(Bytes::from(std::mem::replace(&mut cur, rest)));
                }
            }
            if !cur.is_empty() {
                chunks.push(Bytes::from(cur));
            }
            tracing::debug!(partition = group, chunks = chunks.len(), "partition snapshot scanned");
            Ok(chunks)
        }))
    }

    async fn install(&mut self, state: &AppliedState, snapshot: SnapshotChunks) -> io::Result<()> {
        let last = state.last_applied.ok_or_else(|| io_err("snapshot without a last log id"))?;
        let rows = decode_rows(&snapshot)?;
        self.writer.install(&self.store, store_id(term_of(&last), last.index), rows).await.map_err(io_err)?;
        // Rebuild the machine from what the store now holds, off the core.
        let (store, limits, group) = (self.store.clone(), self.limits.clone(), self.group);
        let restored = run_off_thread("partition-restore", move || -> Result<Machine, String> {
            let mut r = Restorer::new(limits);
            let mut bad = None;
            for prefix in RESTORE_PREFIXES {
                store
                    .visit_prefix(prefix, false, |v| match r.row(v.key, v.index, v.value) {
                        Ok(()) => true,
                        Err(e) => {
                            bad = Some(format!("partition {group}: snapshot row: {e}"));
                            false
                        }
                    })
                    .map_err(|e| e.to_string())?;
            }
            match bad {
                Some(why) => Err(why),
                None => Ok(r.finish(last.index)),
            }
        })
        .await?
        .map_err(io_err)?;
        *self.machine.borrow_mut() = restored;
        self.applied = Some(state.clone());
        self.stats.applied.store(last.index + 1, Ordering::Relaxed);
        Ok(())
    }
}
