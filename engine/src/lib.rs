//! The shard and the MapleExpectation domain.
//!
//! `expectation` turns a character's Nexon equipment JSON into the V4
//! expected-cost response. It knows nothing of HTTP or storage.

pub mod expectation;
pub mod likes;
pub mod shard;
