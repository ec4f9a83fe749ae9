//! The Raft type configuration every partition group uses, and the few
//! openraft aliases the rest of the crate names.
//!
//! Standard Raft leader ids (`leader_id_std`): one leader per term, and a
//! log id is exactly `(term, index)` — what the storage frame stores.

use std::fmt;

use bytes::Bytes;

/// A node of the cluster (`--node-id`).
pub type NodeId = u64;

/// A Raft group: one partition.
pub type GroupId = u32;

/// Where a node is reached. Carried in the group membership, so every replica
/// knows its peers' addresses from the log itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct NodeInfo {
    /// Internal peer protocol address (`host:port`).
    pub peer_addr: String,
    /// Public HTTP address.
    pub http_addr: String,
    /// RESP address (empty when the node has no RESP listener).
    pub resp_addr: String,
}

/// One proposed write: an encoded partition record, opaque to Raft.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Record(pub Bytes);

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Record({} bytes)", self.0.len())
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record[{}B]", self.0.len())
    }
}

/// A snapshot of one group's state machine, as bounded chunks (each at most
/// [`crate::SNAPSHOT_CHUNK_BYTES`]), built off the core thread and sent one
/// chunk per peer frame.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SnapshotChunks {
    pub chunks: Vec<Bytes>,
}

impl SnapshotChunks {
    pub fn total_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }
}

impl fmt::Debug for SnapshotChunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotChunks({} chunks, {} bytes)", self.chunks.len(), self.total_bytes())
    }
}

openraft::declare_raft_types!(
    /// Type configuration of every partition group.
    pub TypeConfig:
        D = Record,
        R = Bytes,
        NodeId = NodeId,
        Node = NodeInfo,
        Term = u64,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
        AsyncRuntime = openraft_rt_monoio::MonoioRuntime,
);

pub type C = TypeConfig;
pub type LogId = openraft::type_config::alias::LogIdOf<C>;
pub type Vote = openraft::type_config::alias::VoteOf<C>;
pub type Entry = openraft::type_config::alias::EntryOf<C>;
pub type Membership = openraft::Membership<NodeId, NodeInfo>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<C>;
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<C>;
pub type Snapshot = openraft::type_config::alias::SnapshotOf<C, SnapshotChunks>;
pub type EntryPayload = openraft::EntryPayload<Record, NodeId, NodeInfo>;

/// `(term, index)` → openraft log id.
pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(openraft::vote::leader_id_std::CommittedLeaderId::new(term), index)
}

/// The term of a log id.
pub fn term_of(id: &LogId) -> u64 {
    id.leader_id.term
}
