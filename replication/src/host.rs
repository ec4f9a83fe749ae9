//! The groups of one core. A core owns the Raft groups (partitions) placed
//! on it; the Raft handle is `!Send`, so everything reaches a group through
//! its core: the peer server hands incoming RPCs to [`Host::handle`], the
//! node's request path calls [`Host::write`] / [`Host::read_index`], the
//! drain calls [`Host::transfer_all`] then [`Host::shutdown`].

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{ClientWriteError, InitializeError, LinearizableReadError, RaftError};
use openraft::raft::ReadPolicy;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::{Config, ServerState, SnapshotPolicy};

use crate::codec::{self, Reader, Writer};
use crate::log_store::{GroupLog, LogStore, PurgeFloor};
use crate::network::{decode_chunk, GroupNetworkFactory, MsgKind, Transport, TransportError};
use crate::state_machine::{PartitionMachine, StateMachine};
use crate::types::{term_of, GroupId, NodeId, NodeInfo, Snapshot, SnapshotChunks, SnapshotMeta, Vote, C};

/// A group's Raft handle.
pub type Raft<M> = openraft::Raft<C, StateMachine<M>>;

/// Timing and snapshot policy of every group, chosen for this workload
/// (see the README's cluster section for the reasoning):
///
/// - heartbeat 100 ms, election timeout 400–800 ms: a dead leader is noticed
///   within 0.8 s and replaced well inside the 2 s failover goal, while a
///   loaded 2-core box (three nodes, sled flushes, fdatasync) does not miss
///   four heartbeats in a row and call spurious elections. The append RPC
///   timeout is the heartbeat interval (openraft's rule), so a follower's
///   fdatasync must stay well under 100 ms.
/// - pre-vote on: a node cut off from the others cannot win, and when it
///   comes back it does not bump the term and depose a healthy leader.
/// - snapshot every 50 000 entries since the last one; keep 10 000 entries
///   already in the snapshot (openraft #1706: the leader may purge while a
///   follower is still installing; what is kept lets that follower continue
///   from the log instead of needing another snapshot); followers more than
///   100 000 behind get a snapshot (must exceed the snapshot interval).
/// - purge in batches of 1024 (one purge call per batch, not per entry).
/// - snapshot install timeout 30 s per chunk (the last chunk includes the
///   clear + load of the partition).
pub fn default_config() -> Config {
    Config {
        cluster_name: "maple".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        enable_pre_vote: Some(true),
        max_payload_entries: 1024,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(50_000),
        max_in_snapshot_log_to_keep: 10_000,
        replication_lag_threshold: 100_000,
        purge_batch_size: 1024,
        install_snapshot_timeout: 30_000,
        ..Config::default()
    }
}

/// Longest wait for a write to commit or a read index to be confirmed (a
/// leader without its quorum answers "unknown" / "no quorum" after it).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Limits of one host.
#[derive(Debug, Clone)]
pub struct HostLimits {
    /// Largest snapshot accepted from a leader (sum of its chunks).
    pub max_snapshot_bytes: usize,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits { max_snapshot_bytes: 1 << 30 }
    }
}

/// Why a write was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("group {0} is not hosted on this core")]
    NoGroup(GroupId),
    /// Not the leader: forward to `leader` (if known) or answer 503.
    #[error("not the leader of group {group}; leader {leader:?}")]
    NotLeader { group: GroupId, leader: Option<(NodeId, NodeInfo)> },
    /// Leadership changed after the entry was appended: it may or may not
    /// commit. The caller retries with the same idempotency key.
    #[error("group {0}: leader changed, outcome unknown")]
    Unknown(GroupId),
    #[error("group {group} stopped: {reason}")]
    Stopped { group: GroupId, reason: String },
}

/// Why a linearizable read could not be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("group {0} is not hosted on this core")]
    NoGroup(GroupId),
    #[error("not the leader of group {group}; leader {leader:?}")]
    NotLeader { group: GroupId, leader: Option<(NodeId, NodeInfo)> },
    #[error("group {0}: no quorum confirmed the leadership")]
    NoQuorum(GroupId),
    #[error("group {group} stopped: {reason}")]
    Stopped { group: GroupId, reason: String },
}

/// One group's state for `maple cluster status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: GroupId,
    pub node: NodeId,
    pub state: &'static str,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    pub snapshot: Option<u64>,
    pub purged: Option<u64>,
    pub voters: Vec<NodeId>,
    /// Leader only: per replica, the highest index known replicated there.
    pub matched: BTreeMap<NodeId, Option<u64>>,
}

struct IncomingSnapshot {
    transfer_id: u64,
    next_seq: u32,
    total: u32,
    vote: Vote,
    meta: SnapshotMeta,
    chunks: Vec<Bytes>,
    bytes: usize,
}

struct GroupEntry<M: PartitionMachine> {
    raft: Raft<M>,
}

/// The groups of one core.
pub struct Host<M: PartitionMachine> {
    node_id: NodeId,
    transport: Rc<dyn Transport>,
    config: Arc<Config>,
    limits: HostLimits,
    groups: RefCell<BTreeMap<GroupId, GroupEntry<M>>>,
    incoming: RefCell<HashMap<GroupId, IncomingSnapshot>>,
}

pub(crate) fn state_str(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl<M: PartitionMachine> Host<M> {
    pub fn new(node_id: NodeId, transport: Rc<dyn Transport>, config: Config, limits: HostLimits) -> Result<Rc<Host<M>>, String> {
        let config = Arc::new(config.validate().map_err(|e| format!("raft config: {e}"))?);
        Ok(Rc::new(Host {
            node_id,
            transport,
            config,
            limits,
            groups: RefCell::new(BTreeMap::new()),
            incoming: RefCell::new(HashMap::new()),
        }))
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Start (or restart from its log and state) one group on this core.
    /// Its membership comes from its log; a fresh group waits for
    /// [`Host::bootstrap`] (on one replica) or for a leader to contact it.
    pub async fn start_group<L: GroupLog>(&self, group: GroupId, log: L, floor: PurgeFloor, machine: M) -> Result<Raft<M>, String> {
        if self.groups.borrow().contains_key(&group) {
            return Err(format!("group {group} already runs on this core"));
        }
        let store = LogStore::new(log, floor);
        let network = GroupNetworkFactory { transport: self.transport.clone(), group };
        let raft = openraft::Raft::new(self.node_id, self.config.clone(), network, store, StateMachine::new(machine))
            .await
            .map_err(|e| format!("group {group}: raft start failed: {e}"))?;
        self.groups.borrow_mut().insert(group, GroupEntry { raft: raft.clone() });
        tracing::debug!(group, node = self.node_id, "raft group started");
        Ok(raft)
    }

    /// The group's Raft handle, if hosted here.
    pub fn raft(&self, group: GroupId) -> Option<Raft<M>> {
        self.groups.borrow().get(&group).map(|g| g.raft.clone())
    }

    pub fn groups(&self) -> Vec<GroupId> {
        self.groups.borrow().keys().copied().collect()
    }

    /// Initialise a fresh group with its replicas (call on one replica only,
    /// see `placement::bootstrap_group`). Idempotent: an already initialised
    /// group is left alone.
    pub async fn bootstrap(&self, group: GroupId, members: BTreeMap<NodeId, NodeInfo>) -> Result<bool, String> {
        let raft = self.raft(group).ok_or_else(|| format!("group {group} not hosted here"))?;
        match raft.initialize(members).await {
            Ok(()) => {
                tracing::debug!(group, "raft group initialised");
                Ok(true)
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(format!("group {group}: initialise failed: {e}")),
        }
    }

    /// Propose a record and wait until it is committed (durable on a quorum)
    /// and applied; returns the state machine's answer.
    pub async fn write(&self, group: GroupId, record: Bytes) -> Result<Bytes, WriteError> {
        let raft = self.raft(group).ok_or(WriteError::NoGroup(group))?;
        // A leader cut off from its quorum never commits: the caller gets
        // "outcome unknown" (retry with the same key), not a hang.
        let written = match monoio::time::timeout(WRITE_TIMEOUT, raft.client_write(crate::types::Record(record))).await {
            Ok(w) => w,
            Err(_) => {
                tracing::debug!(group, "write not committed within {WRITE_TIMEOUT:?}: no quorum?");
                return Err(WriteError::Unknown(group));
            }
        };
        match written {
            Ok(rs) => Ok(rs.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let leader = f.leader_id.map(|id| (id, f.leader_node.unwrap_or_default()));
                Err(WriteError::NotLeader { group, leader })
            }
            Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => Err(WriteError::Unknown(group)),
            Err(RaftError::APIError(e)) => Err(WriteError::Stopped { group, reason: e.to_string() }),
            Err(RaftError::Fatal(e)) => {
                tracing::error!(group, error = %e, "raft group stopped");
                Err(WriteError::Stopped { group, reason: e.to_string() })
            }
        }
    }

    /// Confirm leadership for a linearizable read and wait until the state
    /// machine has applied everything committed before it. `lease`: use the
    /// leader lease (no round trip while the lease holds) instead of a
    /// heartbeat round (read index). Then read the state machine locally.
    pub async fn read_index(&self, group: GroupId, lease: bool) -> Result<(), ReadError> {
        let raft = self.raft(group).ok_or(ReadError::NoGroup(group))?;
        let policy = if lease { ReadPolicy::LeaseRead } else { ReadPolicy::ReadIndex };
        let Ok(confirmed) = monoio::time::timeout(WRITE_TIMEOUT, raft.ensure_linearizable(policy)).await else {
            return Err(ReadError::NoQuorum(group));
        };
        match confirmed {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                let leader = f.leader_id.map(|id| (id, f.leader_node.unwrap_or_default()));
                Err(ReadError::NotLeader { group, leader })
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => Err(ReadError::NoQuorum(group)),
            Err(RaftError::Fatal(e)) => Err(ReadError::Stopped { group, reason: e.to_string() }),
        }
    }

    /// Move leadership of `group` to `to` (or the most up-to-date other
    /// voter). Returns the target, or None when this node is not the leader
    /// or has no other voter.
    pub async fn transfer_leadership(&self, group: GroupId, to: Option<NodeId>) -> Option<NodeId> {
        let raft = self.raft(group)?;
        let m = raft.metrics().borrow_watched().clone();
        if m.current_leader != Some(self.node_id) {
            return None;
        }
        let target = match to {
            Some(t) => t,
            None => {
                let repl = m.replication.clone().unwrap_or_default();
                m.membership_config
                    .membership()
                    .voter_ids()
                    .filter(|id| *id != self.node_id)
                    .max_by_key(|id| (repl.get(id).cloned().flatten().map(|l| l.index), std::cmp::Reverse(*id)))?
            }
        };
        if let Err(e) = raft.trigger().transfer_leader(target).await {
            tracing::warn!(group, target, error = %e, "leadership transfer failed");
            return None;
        }
        Some(target)
    }

    /// Drain step: move every leadership hosted here to another replica and
    /// wait (bounded) until this node leads none of them.
    pub async fn transfer_all(&self, wait: Duration) -> usize {
        let mut moved = 0;
        for g in self.groups() {
            if self.transfer_leadership(g, None).await.is_some() {
                moved += 1;
            }
        }
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            let leading = self
                .groups()
                .into_iter()
                .filter_map(|g| self.raft(g))
                .any(|r| r.metrics().borrow_watched().current_leader == Some(self.node_id));
            if !leading {
                break;
            }
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        moved
    }

    /// Stop every group (inside the core's drain, before the runtime ends).
    pub async fn shutdown(&self) {
        let groups: Vec<(GroupId, Raft<M>)> = self.groups.borrow_mut().iter().map(|(g, e)| (*g, e.raft.clone())).collect();
        for (g, raft) in groups {
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(group = g, error = ?e, "raft shutdown");
            }
        }
        self.groups.borrow_mut().clear();
        self.incoming.borrow_mut().clear();
    }

    /// Status of every group hosted here.
    pub fn status(&self) -> Vec<GroupStatus> {
        self.groups
            .borrow()
            .iter()
            .map(|(g, e)| {
                let m = e.raft.metrics().borrow_watched().clone();
                GroupStatus {
                    group: *g,
                    node: self.node_id,
                    state: state_str(m.state),
                    leader: m.current_leader,
                    term: m.current_term,
                    last_log_index: m.last_log_index,
                    committed: m.cluster_committed.map(|l| l.index),
                    applied: m.last_applied.map(|l| l.index),
                    snapshot: m.snapshot.map(|l| l.index),
                    purged: m.purged.map(|l| l.index),
                    voters: m.membership_config.membership().voter_ids().collect(),
                    matched: m.replication.clone().unwrap_or_default().into_iter().map(|(n, l)| (n, l.map(|l| l.index))).collect(),
                }
            })
            .collect()
    }

    /// Answer one incoming Raft message for a group hosted here.
    pub async fn handle(&self, group: GroupId, kind: MsgKind, body: Bytes) -> Result<Bytes, String> {
        let raft = self.raft(group).ok_or_else(|| format!("group {group} not hosted on node {}", self.node_id))?;
        let mut r = Reader::new(&body);
        let mut w = Writer::new();
        let bad = |e: codec::DecodeError| format!("undecodable {kind:?} for group {group}: {e}");
        match kind {
            MsgKind::Append => {
                let rq = codec::get_append_request(&mut r).map_err(bad)?;
                r.finish().map_err(bad)?;
                let rs = raft.append_entries(rq).await.map_err(|e| e.to_string())?;
                codec::put_append_response(&mut w, &rs);
            }
            MsgKind::Vote | MsgKind::PreVote => {
                let rq = codec::get_vote_request(&mut r).map_err(bad)?;
                r.finish().map_err(bad)?;
                let rs = if kind == MsgKind::Vote { raft.vote(rq).await } else { raft.pre_vote(rq).await };
                codec::put_vote_response(&mut w, &rs.map_err(|e| e.to_string())?);
            }
            MsgKind::Transfer => {
                let rq = codec::get_transfer_request(&mut r).map_err(bad)?;
                r.finish().map_err(bad)?;
                let rs = raft.handle_transfer_leader(rq).await.map_err(|e| e.to_string())?;
                codec::put_transfer_response(&mut w, &rs);
            }
            MsgKind::SnapshotChunk => {
                let msg = decode_chunk(&body).map_err(bad)?;
                if let Some(rs) = self.snapshot_chunk(&raft, group, msg).await? {
                    codec::put_snapshot_response(&mut w, &rs);
                }
            }
            MsgKind::Ping => {}
        }
        Ok(w.into_bytes())
    }

    async fn snapshot_chunk(
        &self,
        raft: &Raft<M>,
        group: GroupId,
        msg: crate::network::SnapshotChunkMsg,
    ) -> Result<Option<openraft::raft::SnapshotResponse<C>>, String> {
        let done = {
            let mut incoming = self.incoming.borrow_mut();
            if let Some((vote, meta)) = msg.head {
                incoming.insert(
                    group,
                    IncomingSnapshot {
                        transfer_id: msg.transfer_id,
                        next_seq: 0,
                        total: msg.total,
                        vote,
                        meta,
                        chunks: Vec::with_capacity(msg.total.min(4096) as usize),
                        bytes: 0,
                    },
                );
            }
            let Some(cur) = incoming.get_mut(&group) else {
                return Err(format!("group {group}: snapshot chunk {} without a transfer in progress", msg.seq));
            };
            if cur.transfer_id != msg.transfer_id || cur.next_seq != msg.seq || cur.total != msg.total {
                incoming.remove(&group);
                return Err(format!("group {group}: snapshot chunk out of sequence"));
            }
            cur.bytes += msg.data.len();
            if cur.bytes > self.limits.max_snapshot_bytes {
                incoming.remove(&group);
                tracing::error!(group, limit = self.limits.max_snapshot_bytes, "incoming snapshot too large; refused");
                return Err(format!("group {group}: snapshot larger than {} bytes", self.limits.max_snapshot_bytes));
            }
            if !msg.data.is_empty() {
                cur.chunks.push(msg.data);
            }
            cur.next_seq += 1;
            if cur.next_seq == cur.total {
                incoming.remove(&group)
            } else {
                None
            }
        };
        let Some(done) = done else { return Ok(None) };
        tracing::info!(group, last = ?done.meta.last_log_id.map(|l| (term_of(&l), l.index)), bytes = done.bytes, "snapshot received; installing");
        let snapshot = Snapshot { meta: done.meta, snapshot: SnapshotChunks { chunks: done.chunks } };
        let rs = raft.install_full_snapshot(done.vote, snapshot).await.map_err(|e| e.to_string())?;
        Ok(Some(rs))
    }

    /// Ask `target` whether `group` runs there (bootstrap readiness).
    pub async fn ping(&self, target: NodeId, group: GroupId, timeout: Duration) -> Result<(), TransportError> {
        self.transport.call(target, group, MsgKind::Ping, Bytes::new(), timeout).await.map(|_| ())
    }
}
