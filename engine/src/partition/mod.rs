//! The partition state machine: what every replica of a partition runs.
//!
//! A partition (a contiguous range of the 16384 slots) is one Raft group;
//! a single node is a one-member group on the same code path. Its log
//! holds [`Record`]s; [`Partition::apply`] turns each committed entry into
//! the in-memory state and the key writes of the partition's state-store
//! tree ([`storage::KvWrite`]: a key keeps the index of the entry that
//! wrote it, deletes leave tombstones). The store is the materialised view
//! the node checkpoints and a Raft snapshot scans; [`Partition::restore`]
//! rebuilds the machine from it. Deterministic: no clock (time comes in the
//! records), no I/O, no configuration in `apply` ([`Limits`] bound only what
//! a leader proposes), so every replica reaches the same state.
//!
//! # What it holds
//! - like relations `(user, character)` and the counts derived from them;
//! - idempotency bindings `(user, key)` → (character, operation, time,
//!   first answer), bounded and expired through the log;
//! - metadata of the written-behind expectations (the blobs stay in the
//!   store), for the eviction the leader appends.
//!
//! # Leader speculation
//! A leader decides a toggle before it is committed:
//! [`Partition::propose_toggle`] computes the record (`liked`, `count_after`)
//! from the applied state plus an overlay of proposals not yet settled;
//! the caller feeds it with [`Partition::speculate`]`(&record)` (which
//! returns the proposal's sequence number) and hands it to the log — no
//! await between the proposal, the feed and the hand-over, so the next
//! proposal sees this one, the log holds proposals in feed order, and many
//! toggles can be in flight. When the write resolves (applied, failed, or
//! its outcome unknown) the caller calls [`Partition::settle`]`(seq)`: the
//! overlay is keyed by proposal, not by log index, because the Raft core
//! assigns the index after the proposal. The answer sent is the applied
//! outcome the write returns (equal to the speculative one). On leadership
//! loss [`Partition::drop_speculation`] returns the view to the applied
//! state; a new leader proposes nothing before its first entry (a `Noop`)
//! is applied, so the applied state then holds every earlier entry.
//!
//! # Idempotency protocol (issue 9)
//! A key identifies one request: `(user, key)` is bound to exactly one
//! (character, operation), node-wide. Reusing it for the same request
//! returns the first answer and changes nothing; reusing it for another
//! character or operation is refused, [`PartitionError::IdempotencyKeyReused`]
//! (HTTP 422), on every core and node.
//!
//! Every `(user, key)` has ONE owner: the partition of `slot(user)`, the
//! user's partition `U`. The character's partition is `C`.
//! 1. **Reserve** at `U` ([`Partition::propose_reservation`]): no binding →
//!    append `IdempotencyReserved {user, key, character, op, at_ms}` and
//!    wait until it is committed; the same binding → go on; another binding
//!    → 422. When `U == C` this step is skipped: step 2 checks the same
//!    table and its record makes the binding.
//! 2. **Toggle** at `C` ([`Partition::propose_toggle`] with the key): a
//!    binding with an answer → answer it (a retry; nothing appended); a
//!    binding to another character/operation → 422; otherwise append
//!    `LikeToggled {.., idempotency_key}`: applying it flips the relation
//!    and stores the first answer in one entry, so the answer and the
//!    toggle are durable together or not at all.
//!
//! Failure cases:
//! - *Crash (or leader change) between the reservation and the toggle.*
//!   The binding at `U` is durable, `C` has neither toggle nor answer. A
//!   retry (same key, same character) finds its own binding at `U`, then no
//!   answer at `C`, and toggles once. A retry for another character is
//!   refused: the key is bound. If no one retries, the binding expires.
//! - *Toggle durable, reservation not.* The node never proposes the toggle
//!   before the reservation is committed, and a committed entry is never
//!   lost, so this arises only when `U` forgot the binding (it expired, or
//!   the log was written before reservations existed: format-1 logs). Then
//!   a retry reserves afresh and `C` returns the stored answer (no second
//!   toggle). A reuse for another character on `C` is still refused by `C`'s
//!   binding; on another partition it toggles — the same as a key used after
//!   its TTL. Bindings at `U` are made before the answer at `C`, so with one
//!   TTL they expire first; an answer never outlives the TTL by more than
//!   one expiry period.
//! - *Both on the same partition.* One table holds the reservation and the
//!   answer: the toggle's record makes the binding and stores the answer
//!   (one entry). A binding reserved earlier by step 1 (node routing that
//!   did not know `U == C`) is rewritten by the toggle with its answer.
//! - *Concurrent requests with one key.* The overlay holds the proposed
//!   binding, so a second request sees it: the same request waits for the
//!   first one's entry and answers its answer; another character gets 422.
//! - *Replay, a follower catching up, a restore from a store that ran
//!   ahead of its checkpoint.* First-binding-wins is the leader's rule (it
//!   proposes a binding only when its view has none, or the same request's);
//!   `apply` writes bindings absolutely, like every record, and leaves one
//!   written by the same or a later entry alone (the store's rule). So the
//!   committed log alone decides every binding, and replaying any suffix onto
//!   any state a restore can see ends in the same bindings and rows (a
//!   "first wins" apply would not: replaying a losing reservation after the
//!   winner's expiry would resurrect it — the property tests found this).
//!
//! Bounds: the leader refuses a new binding when its table holds
//! `max_idempotency_keys` ([`PartitionError::IdempotencyFull`], 503), and
//! its periodic job appends [`Partition::idempotency_expiry`]'s
//! `IdempotencyExpired {before_ms}`: bindings older than the TTL — or, above
//! 7/8 of the bound, the oldest down to 3/4 — are forgotten by every
//! replica at the same entry. Format-1 stores' answer rows (`idem/`) are
//! not restored: they do not name the character a key was used for; the
//! keyed records still in a format-1 log replay into bindings.

mod codec;
mod ids;
mod machine;
mod record;
pub mod rows;
pub mod v1;

pub use ids::{IdempotencyKey, LikeResult, Op, UserId, MAX_IDEMPOTENCY_KEY_BYTES, MAX_USER_BYTES};
pub use machine::{
    Applied, Eviction, ExpectationMeta, KeyBinding, Limits, Outcome, Partition, Proposal, Reservation, Restorer, Speculative,
};
pub use record::{
    ExpectationEvicted, ExpectationWritten, IdempotencyExpired, IdempotencyReserved, LikeToggled, Record, MAX_CHARACTER_BYTES,
    MAX_ETAG_BYTES, MAX_EXPECTATION_BYTES, RECORD_KIND, RECORD_TYPE, RECORD_VERSION,
};
pub use rows::{decode_expectation_row, Row, StoredExpectation, RESTORE_PREFIXES};

pub use crate::name::{CharacterName, NameError};

/// Why a partition refused something. Each maps to one HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// 400.
    #[error("invalid user id: {0}")]
    InvalidUser(&'static str),
    /// 400.
    #[error(transparent)]
    InvalidCharacter(#[from] NameError),
    /// 400.
    #[error("invalid Idempotency-Key: {0}")]
    InvalidIdempotencyKey(&'static str),
    /// 422: the key was used for another request.
    #[error(
        "Idempotency-Key {key:?} was already used for {first_op} of character {first_character:?}; \
         a key identifies one request: use a new key for another character or operation"
    )]
    IdempotencyKeyReused { key: String, first_character: String, first_op: Op },
    /// 503 + Retry-After.
    #[error("like storage is full ({max} like relations)")]
    RelationsFull { max: usize },
    /// 503 + Retry-After (the expiry job makes room).
    #[error("too many idempotency keys remembered ({max}); retry later")]
    IdempotencyFull { max: usize },
    /// 503 + Retry-After.
    #[error("too many proposals in flight ({max}); retry later")]
    InFlightFull { max: usize },
    /// A log payload that is not a valid record (corruption or a foreign format).
    #[error("log record is malformed: {0}")]
    BadRecord(String),
    /// A store row that cannot be read.
    #[error("state row is malformed: {0}")]
    BadRow(String),
    #[error("record encoding failed: {0}")]
    Encode(String),
}
