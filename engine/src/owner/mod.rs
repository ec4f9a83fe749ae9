//! The owner runtime of a core: what a core does for the keys of the
//! partitions it hosts, and how it reaches the other cores.
//!
//! - [`shard::Shard`]: the core's entry point; requests for another core's
//!   partitions go to that core's inbox (one message type), hot
//!   expectations may be served from version-checked read copies;
//! - [`fetch::Owner`]: the caches (equipment, rendered expectations, basic
//!   info, ocids), single-flight, the fetch → compute → store path, the
//!   write-behind of fresh expectations and their read back from the store;
//! - [`likes::Likes`]: like toggles (speculation), the idempotency
//!   reservation, linearizable status — through [`groups::Groups`];
//! - [`admission`]: sheds new cold computations the core cannot start in
//!   time; [`breaker`] and [`upstream::Nexon`]: the upstream calls behind a
//!   circuit breaker and a timeout, over the binary's [`upstream::Transport`];
//! - [`render`]: the V4 documents of a computation;
//! - [`jobs`]: the periodic evictions and idempotency expiry of the
//!   partitions this core leads;
//! - [`sink::Sink`]: the events the binary turns into metrics.
//!
//! `engine` reaches the Raft groups only through [`groups::Groups`] and the
//! upstream only through [`upstream::Transport`]: no HTTP, no Raft here.

pub mod admission;
pub mod breaker;
pub mod error;
pub mod fetch;
pub mod groups;
pub mod jobs;
pub mod likes;
pub mod render;
pub mod shard;
pub mod sink;
pub mod throttle;
pub mod upstream;

pub use error::OwnerError;
pub use fetch::{CacheConfig, CacheStatus, DocOp, Owner, Served};
pub use groups::{GroupError, Groups, PartitionId};
pub use shard::{Inboxes, Msg, Place, Reply, Request, Shard};
pub use sink::{NoSink, Sink};
pub use upstream::{Nexon, Transport, UpstreamError};

use crate::name::CharacterName;
use crate::partition::PartitionError;

/// A character name as asked (decoded, trimmed), its key (normalised), its
/// slot, and where its partition lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub display: String,
    pub key: String,
    pub slot: u16,
    pub partition: PartitionId,
    pub core: usize,
}

impl Key {
    /// The key as a character name (it is normalised already: the same string).
    pub fn character(&self) -> Result<CharacterName, OwnerError> {
        CharacterName::parse(&self.key).map_err(|e| OwnerError::Like(PartitionError::InvalidCharacter(e)))
    }
}
