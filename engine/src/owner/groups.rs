//! How the owner runtime reaches the partition groups of its core: a small
//! trait the Raft layer implements (`replication::groups`), so `engine`
//! knows nothing of Raft. Every write and linearizable read of a partition
//! goes through it.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use crate::partition::Partition;

/// A partition number (`0..P`).
pub type PartitionId = u32;

/// Why a group could not take a write or confirm a read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// No leader here now (starting, stopping, an election, or led by
    /// another node): nothing was written; retry later (503 + Retry-After).
    #[error("partition {partition} has no leader on this node right now ({why}); retry")]
    Unavailable { partition: PartitionId, why: String },
    /// Leadership changed after the entry was appended: it may or may not
    /// commit. Retry with the same Idempotency-Key (503 + Retry-After).
    #[error("partition {partition}: leadership changed while writing; the outcome is unknown, retry")]
    Unknown { partition: PartitionId },
    /// The group stopped (its storage failed): nothing more is written
    /// until a restart (503).
    #[error("partition {partition}: storage failed; restart needed")]
    Stopped { partition: PartitionId, why: String },
}

/// The partition groups hosted by one core, as the owner runtime uses them.
pub trait Groups {
    /// The partition's state machine (shared with its Raft group on this
    /// core), `None` when the partition is not hosted here.
    fn machine(&self, p: PartitionId) -> Option<Rc<RefCell<Partition>>>;

    /// The partition's state-store tree (stored expectations are read from
    /// it), `None` when not hosted here.
    fn store(&self, p: PartitionId) -> Option<storage::store::Partition>;

    /// Propose an encoded [`crate::partition::Record`]; resolves with the
    /// applied outcome ([`crate::partition::Outcome::encode`]) once it is
    /// committed and applied. The proposal is handed to the group on the
    /// returned future's first poll, so proposals polled in order enter the
    /// log in that order.
    fn write(&self, p: PartitionId, record: Vec<u8>) -> LocalBoxFuture<'static, Result<Bytes, GroupError>>;

    /// Confirm leadership and wait until everything committed before now is
    /// applied: then the machine's applied state answers linearizably.
    fn read_index(&self, p: PartitionId) -> LocalBoxFuture<'static, Result<(), GroupError>>;

    /// `Ok` when this core leads the partition and has applied its first
    /// entry of the current term (so the applied state holds every earlier
    /// entry and proposals may start).
    fn ready(&self, p: PartitionId) -> Result<(), GroupError>;
}
