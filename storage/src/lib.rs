//! Durable storage for maple-engine: a write-ahead log with group commit,
//! a sled state store fed from it, checkpoints and crash recovery.
//!
//! - [`Wal`]: segment files of checksummed `(term, index, payload)` records,
//!   one syncer thread per log, appends acknowledged only once fdatasynced,
//!   shaped like openraft's `RaftLogStorage` (append / read / truncate_after /
//!   purge_upto / save_vote / read_vote).
//! - [`StateStore`] + [`Applier`]: committed entries applied to sled in the
//!   background, idempotently; checkpoints make sled durable, let old
//!   segments go and compact the tombstones they cover;
//!   [`ApplyEntry::maintain`] runs the owner's sweeps on the applier thread
//!   ([`StateStore::forget`] for expired rows, [`KvWrite::Evict`] records
//!   for bounded caches).
//! - [`WalSync`]: `Fsync` (acknowledge after fdatasync) or `Off` (benchmark
//!   baseline: the same write path without the sync).
//! - [`envelope`]: versioned rkyv encoding for the payloads.
//!
//! Typical single-node start:
//! ```no_run
//! # use storage::*; use std::sync::Arc;
//! # fn decode(e: &Entry) -> Result<Vec<KvWrite>, StorageError> { Ok(vec![]) }
//! let (wal, recovery) = Wal::open("data/p0/wal".as_ref(), WalOptions::default())?;
//! let store = Arc::new(StateStore::open("data/p0/state".as_ref())?);
//! store.replay(&wal, wal.last_index(), &mut decode)?;
//! let applier = Applier::spawn(store.clone(), wal.clone(), decode, ApplierOptions::default(), wal.last_index())?;
//! // per write: let idx = wal.append(vec![entry])?.await?; applier.notify_committed(idx);
//! # Ok::<(), StorageError>(())
//! ```

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
mod state;
mod stats;
pub mod store;
mod timer;
mod wal;

pub use error::StorageError;
pub use failpoint::FailPoint;
pub use segment::Torn;
pub use state::{Applied, Applier, ApplierOptions, ApplyEntry, KvPair, KvWrite, StateStore, Visit};
pub use stats::{StateStats, WalStats};
pub use wal::{AppendFuture, Completion, Recovery, Wal, WalOptions, WalSync};

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
