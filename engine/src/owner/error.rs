//! Errors an owner request can end in. The binary maps each to its HTTP
//! (or RESP) answer; the messages never carry file paths.

use super::admission::Shed;
use super::groups::GroupError;
use super::upstream::UpstreamError;
use crate::partition::PartitionError;

#[derive(Debug, Clone, PartialEq)]
pub enum OwnerError {
    /// The character does not exist upstream.
    NotFound,
    Upstream(UpstreamError),
    /// A bound was hit (single-flight waiters, cross-core queue).
    Overloaded(&'static str),
    /// Admission control: a new cold computation would wait longer than
    /// `--max-queue-ms` on its owner core (see `admission`).
    Shed(Shed),
    /// The work this request waited on was dropped (shutdown).
    Abandoned,
    /// Upstream sent equipment we cannot compute from (nothing cached).
    Calc(String),
    /// Upstream sent a basic-character body that is not one (nothing cached).
    BadBasic(String),
    /// A like request the partition refused: bad input, a reused
    /// idempotency key, or a bound (see [`PartitionError`]).
    Like(PartitionError),
    /// The partition's group could not take the write or confirm the read.
    Group(GroupError),
    /// A like request's cross-core queue is full (retry: 503).
    Busy(&'static str),
}

impl OwnerError {
    /// Worth serving a stale cached value instead (upstream trouble, not
    /// "no such character" — an unusable 200 body is trouble too; or a
    /// refresh shed under load).
    pub fn allows_stale(&self) -> bool {
        matches!(self, OwnerError::Upstream(e) if *e != UpstreamError::NotFound)
            || matches!(self, OwnerError::Shed(_) | OwnerError::Calc(_) | OwnerError::BadBasic(_))
    }

    /// The metric label of a failed like toggle.
    pub fn like_label(&self) -> &'static str {
        match self {
            OwnerError::Like(
                PartitionError::InvalidUser(_)
                | PartitionError::InvalidCharacter(_)
                | PartitionError::InvalidIdempotencyKey(_)
                | PartitionError::IdempotencyKeyReused { .. },
            ) => "invalid",
            OwnerError::Like(_) | OwnerError::Busy(_) | OwnerError::Overloaded(_) => "busy",
            _ => "unavailable",
        }
    }
}

impl From<UpstreamError> for OwnerError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::NotFound => OwnerError::NotFound,
            e => OwnerError::Upstream(e),
        }
    }
}

impl From<PartitionError> for OwnerError {
    fn from(e: PartitionError) -> Self {
        OwnerError::Like(e)
    }
}

impl From<GroupError> for OwnerError {
    fn from(e: GroupError) -> Self {
        OwnerError::Group(e)
    }
}

impl std::fmt::Display for OwnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OwnerError::NotFound => write!(f, "character not found"),
            OwnerError::Upstream(e) => write!(f, "{e}"),
            OwnerError::Overloaded(what) => write!(f, "overloaded: {what}"),
            OwnerError::Shed(s) => write!(
                f,
                "overloaded: a new computation would wait about {} ms on its core (limit {} ms); retry later",
                s.estimated_wait.as_millis(),
                s.max_wait.as_millis()
            ),
            OwnerError::Abandoned => write!(f, "the upstream fetch was abandoned (shutting down)"),
            OwnerError::Calc(e) => write!(f, "cannot compute from the upstream equipment: {e}"),
            OwnerError::BadBasic(e) => write!(f, "upstream sent an unusable basic-character document: {e}"),
            OwnerError::Like(e) => write!(f, "{e}"),
            OwnerError::Group(e) => write!(f, "{e}"),
            OwnerError::Busy(what) => write!(f, "{what}; retry later"),
        }
    }
}
