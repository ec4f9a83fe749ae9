//! Typed errors of the storage layer. Every failure a caller can see is one of
//! these; nothing in this crate panics on bad input or bad bytes on disk.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Too many appends are waiting for the syncer; retry later (HTTP 503).
    #[error("write-ahead log is full ({pending} pending requests); retry later")]
    Backpressure { pending: usize },
    /// The entries of one append do not follow the log's last index.
    #[error("non-contiguous append: expected index {expected}, got {got}")]
    NonContiguous { expected: u64, got: u64 },
    /// A term went backwards inside the log.
    #[error("term {got} at index {index} is lower than the previous term {previous}")]
    TermRegression { index: u64, previous: u64, got: u64 },
    #[error("entry of {bytes} bytes exceeds the limit of {limit} bytes")]
    EntryTooLarge { bytes: usize, limit: usize },
    #[error("index range {start}..={end} is outside the log ({first}..={last})")]
    OutOfRange { start: u64, end: u64, first: u64, last: u64 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Bytes on disk failed their checksum or framing where they must be whole
    /// (not at the tail, which recovery truncates instead).
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("record schema version {found} is not supported (expected {expected})")]
    UnsupportedVersion { found: u16, expected: u16 },
    #[error("record kind {found} does not match the expected kind {expected}")]
    WrongKind { found: u16, expected: u16 },
    #[error("record encoding failed: {0}")]
    Encode(String),
    #[error("record decoding failed: {0}")]
    Decode(String),
    /// An fsync or write failed earlier. After a failed fsync the page cache
    /// state is unknown (the kernel may have dropped dirty pages), so the log
    /// refuses all further writes until it is reopened and recovered.
    #[error("write-ahead log is poisoned after an I/O failure: {0}")]
    Poisoned(String),
    /// Another open log (this or another process) holds the directory.
    #[error("write-ahead log directory {0} is in use by another process or handle")]
    Locked(String),
    /// The syncer thread is gone (the log was closed).
    #[error("write-ahead log is closed")]
    Closed,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    /// Bytes on disk that recovery must not repair (anything but a torn
    /// last record of the last segment): names the file and the byte
    /// offset. Nothing on disk was changed; an operator (or, in a cluster,
    /// a replica) decides.
    #[error("damaged {}: at byte {offset}: {detail}; nothing on disk was changed", path.display())]
    Damaged { path: PathBuf, offset: u64, detail: String },
    /// A file the log's manifest or a checkpoint says exists is missing.
    #[error("missing {}: {detail}; nothing on disk was changed", path.display())]
    Missing { path: PathBuf, detail: String },
    /// The state store (sled) cannot be opened, or holds less than its
    /// durable checkpoint says it does (sled drops damaged data silently).
    #[error("state store {}: {detail}", path.display())]
    StateStore { path: PathBuf, detail: String },
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        StorageError::Io { context: context.into(), source }
    }

    pub(crate) fn damaged(path: impl Into<PathBuf>, offset: u64, detail: impl Into<String>) -> Self {
        StorageError::Damaged { path: path.into(), offset, detail: detail.into() }
    }

    /// A state-store error as one line naming `path` (sled's own messages
    /// may span lines).
    pub(crate) fn state_store(path: impl Into<PathBuf>, detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        StorageError::StateStore { path: path.into(), detail }
    }

    /// True when the files on disk are damaged or missing (the process
    /// should refuse to start rather than retry).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StorageError::Damaged { .. } | StorageError::Missing { .. } | StorageError::Corrupt { .. } | StorageError::StateStore { .. }
        )
    }

    /// True when the caller should retry the same request later (503 + Retry-After).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Backpressure { .. })
    }
}

/// Attaches a human context (usually a path) to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::io(context(), source))
    }
}
