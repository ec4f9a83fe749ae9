//! Durable storage for maple-engine: a write-ahead log shared by many Raft
//! groups with group commit, a sled state store fed from it, checkpoints,
//! snapshots and crash recovery.
//!
//! # What the node runs on: [`log`] + [`store`]
//!
//! - [`log::Log`]: ONE write-ahead log shared by many Raft groups (one per
//!   core / log directory), one syncer thread, one fdatasync for every group's
//!   queued entries — fsyncs per node do not grow with partitions.
//!   [`log::GroupLog`] is a group's handle, shaped like openraft's
//!   `RaftLogStorage`: `append` (readable as soon as it returns, index 0 is a
//!   real index, a lower index replaces the tail), bounded waiting
//!   `append_within`, clamped `read` / `read_capped`, `truncate_after(Option)`,
//!   `purge_upto(LogId)`, vote and committed log id.
//! - [`store::Store`]: one sled Db per node, a data tree and a tombstone tree
//!   per partition ([`store::Partition`]), a checkpoint file per log,
//!   replay from a checkpoint up to a given (committed) index, ordered
//!   snapshots and durable installs, an applier thread per log
//!   ([`store::LogApplier`]).
//!
//! ## On-disk format (v2)
//!
//! ```text
//! log-<l>/                       one multi-group log
//!   LOCK                         flock while open
//!   MANIFEST                     32 B: magic, version, crc32, first_seq, last_seq
//!   <seq:020>.log                segments by sequence number, pre-allocated:
//!     header (32 B)              magic "MAPLLOG2", version, seq, crc32
//!     frames                     len u32 | crc32(seq, len, body) u32 | body
//!       body = kind u8 | ...     1 Entry{group, term, index, payload}
//!                                2 Vote{group, bytes}  3 Committed{group, log id?}
//!                                4 Purge{group, log id}  5 Truncate{group, last log id?}
//!                                6 GroupState{every group's first index, last,
//!                                  purged, committed, vote} — first in every segment
//!     zeros                      the unwritten rest
//! state/
//!   sled/                        one Db: p<group>.g<gen>.data / .tomb trees, meta tree
//!   checkpoint-<l:04>            per log: per group applied log id, tree generation,
//!                                row high-water mark; the log's newest segment; crc32
//! ```
//!
//! The manifest is replaced (temp, fsync, rename, fsync dir) before records
//! go into a new segment and before old segments are unlinked. A segment is
//! deleted once no group has a live entry in it and it is not the active
//! one; metadata never pins a segment (the next GroupState supersedes it).
//!
//! ## Recovery rules (v2)
//!
//! Opening reads and checks everything before it changes anything. Only a
//! damaged LAST record of the LAST segment with nothing valid after it (the
//! rest of the file is scanned for valid frames) is a torn tail: cut,
//! zeroed and fdatasynced. Everything else is refused with
//! [`StorageError::Damaged`] (file + byte offset) or
//! [`StorageError::Missing`], leaving every byte on disk as it was: damage
//! followed by a valid record, a bad segment header or magic, any damage in
//! a closed segment, a missing first/middle/newest segment, a segment cut
//! short (caught by the next GroupState disagreeing), a manifest that fails
//! its checksum or is missing while segments exist, a gap or term
//! regression in a group's indexes, live entries no segment holds, a gap
//! between a partition's checkpoint and its group's first entry, a log that
//! ends before its checkpoint or has fewer segments than the checkpoint saw,
//! a checkpoint file that fails its checksum, and a sled Db that holds less
//! than its checkpoint (sled drops damaged data silently; a per-partition
//! marker written at each checkpoint catches it). Leftovers of interrupted
//! steps are removed: `*.tmp`, a segment older than the manifest's first (a
//! collection that crashed), a newer unlisted segment holding no record (a
//! roll that crashed), and a record-less first segment without a manifest
//! (a first start that crashed).
//!
//! Known limit: records of one write round are written with one `pwrite`
//! and made durable by one fdatasync; after a power loss in the middle of
//! that fdatasync the device may have kept a later page of the round but
//! not an earlier one. Recovery then sees damage followed by a valid
//! record and refuses (none of those records was acknowledged): the
//! operator, or later a replica, decides.
//!
//! Typical v2 start (single node, one log):
//! ```no_run
//! # use storage::log::*; use storage::store::*; use storage::{Entry, StorageError};
//! # fn decode(_g: GroupId, e: &Entry) -> Result<Vec<KvWrite>, StorageError> { Ok(vec![]) }
//! let (log, _recovery) = Log::open("data/log-0".as_ref(), LogOptions::default())?;
//! let store = Store::open("data/state".as_ref(), StoreOptions { cache_bytes: 64 << 20, ..Default::default() })?;
//! store.attach_log(0, log.clone())?;
//! let part = store.partition(0, 7)?;
//! let committed = part.group().read_committed().map(|c| c.index).or(part.group().last_index());
//! store.replay(&part, committed, &mut decode)?;
//! let applier = LogApplier::spawn(store.clone(), 0, decode, ApplierOptions::default())?;
//! // per write: let i = part.group().append(entries)?.await?; applier.notify_committed(7, i);
//! # Ok::<(), StorageError>(())
//! ```
//!
//! The node pushes its state machines' key writes to a
//! [`store::BatchWriter`] per log (a thread applying them in batches and
//! checkpointing); [`store::LogApplier`] is the variant that reads committed
//! entries back from the log itself.
//!
//! # Format 1: [`v1`], a reader kept for the migration
//!
//! The per-core `Wal` + `StateStore` of the builds before storage v2 are
//! gone; [`v1::read_core`] reads a `core-<n>/{wal,state}` directory (its
//! segments with `frame` and `segment`, its sled rows with the key-value
//! rules of `kv`), strictly: damage followed by valid records is refused
//! (format 1's own recovery cut the log there).
//!
//! Shared: frame checksums (crc32fast), pre-allocated spare segments,
//! group-commit metrics, atomic file writes, fail points ([`failpoint`]),
//! the idempotent key-value rules ([`KvWrite`]), [`Completion`] and
//! [`envelope`] (versioned rkyv payloads).

mod completion;
pub mod envelope;
mod error;
pub mod failpoint;
mod frame;
mod fsutil;
mod kv;
pub mod log;
mod segment;
mod spare;
mod stats;
pub mod store;
mod sync_mode;
mod timer;
pub mod v1;

pub use completion::Completion;
pub use error::StorageError;
pub use failpoint::{FailPoint, IoFailPoint};
pub use kv::{Applied, KvPair, KvWrite, Visit};
pub use segment::Torn;
pub use sync_mode::WalSync;

/// One log entry. `payload` is opaque to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub payload: Vec<u8>,
}

impl Entry {
    pub fn new(term: u64, index: u64, payload: impl Into<Vec<u8>>) -> Entry {
        Entry { term, index, payload: payload.into() }
    }
}
