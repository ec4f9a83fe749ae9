//! Likes: who likes which character, as a state machine fed by the log.
//!
//! The owner core of a character keeps a [`LikeBook`]. A toggle is decided
//! and applied in memory at once ([`LikeBook::toggle`]), which yields a
//! [`LikeRecord`] to append to the partition's write-ahead log; the HTTP
//! answer is sent only when that append is durable. Records carry outcomes
//! (liked or not, the count after), not deltas, so applying one again —
//! replay after a crash, a follower catching up — gives the same state.
//! If an append fails, the in-memory book may be ahead of the log: the shard
//! must rebuild it from the log ([`LikeBook::apply`] over the replayed
//! records, or [`LikeBook::load_kv`] from the state store).

mod book;
mod name;
mod record;

pub use book::{LikeBook, LikeLimits, LikeResult, Toggled};
pub use name::normalize_character;
pub use record::{KvChange, LikeRecord, LIKE_RECORD_KIND, LIKE_RECORD_VERSION, RELATION_PREFIX};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LikeError {
    #[error("invalid character name: {0}")]
    InvalidCharacter(&'static str),
    #[error("invalid user id")]
    InvalidUser,
    #[error("invalid idempotency key")]
    InvalidIdempotencyKey,
    /// The book holds its maximum number of like relations (HTTP 503).
    #[error("like storage is full")]
    Full,
    #[error("like record is malformed: {0}")]
    BadRecord(&'static str),
}
