//! The shard and the MapleExpectation domain.
//!
//! `expectation` turns a character's Nexon equipment JSON into the V4
//! expected-cost response. It knows nothing of HTTP or storage.
//! `partition` is the deterministic partition state machine (log records,
//! apply, queries, store image) every replica of a partition runs.
//! `name` is the one character-name normaliser. `owner` is the owner
//! runtime of a core (caches, single-flight, likes, admission, breaker).
//! `shard` holds the per-core building blocks (byte-bounded LRU,
//! single-flight, slot versions, stored documents).

pub mod expectation;
pub mod name;
pub mod owner;
pub mod partition;
pub mod shard;
