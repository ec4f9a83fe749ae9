//! Replication: key placement, and each partition a Raft group (openraft 0.10
//! on monoio, `single-threaded`) whose log is our multi-group WAL and whose
//! state machine is engine's partition state machine.
//!
//! - [`slot`]: character name → slot (Redis Cluster CRC16) → partition.
//! - [`types`]: the Raft type configuration (node id `u64`, node info =
//!   peer/http/resp addresses, app data = an encoded partition record).
//! - [`log_store`]: openraft's log storage over [`log_store::GroupLog`]
//!   ([`wal::WalGroup`] over storage v2; [`log_store::MemLog`] in memory).
//! - [`state_machine`]: openraft's state machine over
//!   [`state_machine::PartitionMachine`] (the node implements it).
//! - [`codec`]: binary encoding of Raft entries, votes and RPCs.
//! - [`testkit`]: a counter machine and the conformance suite runner.
//!
//! Placement: partition = the slot's contiguous range (`slot * P / 16384`,
//! P fixed when the data dir is created), hosted by core `p % cores`.
//! The hash is CRC16/XMODEM (polynomial 0x1021, init 0, no reflection) of the
//! normalised name's UTF-8 bytes, modulo [`SLOT_COUNT`] — the same function
//! Redis Cluster uses (without its `{hash tag}` rule), so a slot can be
//! checked against `redis-cli cluster keyslot`. It is stable across builds,
//! platforms and versions: placement must never depend on `std`'s
//! randomised hasher.

pub mod cluster;
pub mod codec;
pub mod groups;
pub mod host;
pub mod log_store;
pub mod machine;
pub mod network;
pub mod peer;
pub mod placement;
pub mod slot;
pub mod state_machine;
pub mod testkit;
pub mod types;
pub mod wal;

pub use cluster::{ClusterMap, ClusterView, Directory, NodeCard, PartitionView, Route};
pub use groups::{open_log, open_partitions, CoreGroups, OpenedLog, PartitionStart};
pub use host::{default_config, GroupStatus, Host, HostLimits, Raft, ReadError, WriteError};
pub use log_store::{AppendError, GroupLog, LogRecord, LogStore, MemLog, PurgeFloor};
pub use machine::{recover_partition, seed_partition, GroupStats, NodeMachine, Recovered, SharedMachine};
pub use network::{MsgKind, NoPeers, Transport, TransportError};
pub use placement::{balance_leaders, bootstrap_groups, default_rf, Placement, PlacementError};
pub use slot::{crc16_xmodem, normalize_name, slot_of, NameError, SlotMap, MAX_NAME_CHARS, MAX_PARTITIONS, SLOT_COUNT};
pub use state_machine::{AppliedState, CommittedRecord, PartitionMachine, SnapshotJob, StateMachine, SNAPSHOT_CHUNK_BYTES};
pub use types::{GroupId, NodeId, NodeInfo, Record, SnapshotChunks, TypeConfig};
pub use wal::WalGroup;
