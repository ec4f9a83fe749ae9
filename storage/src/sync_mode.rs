//! Whether a log fdatasyncs before it acknowledges (`--wal-sync`).

use crate::error::StorageError;

/// How the log makes appends durable (`maple serve --wal-sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WalSync {
    /// fdatasync every write round before acknowledging it (group commit).
    #[default]
    Fsync,
    /// Benchmark mode: write every entry (same rounds, same batching) but
    /// never fdatasync; an append resolves once its bytes are in the page
    /// cache. Acknowledged entries survive a process crash, not a power loss.
    Off,
}

impl WalSync {
    pub fn as_str(self) -> &'static str {
        match self {
            WalSync::Fsync => "fsync",
            WalSync::Off => "off",
        }
    }
}

impl std::str::FromStr for WalSync {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<WalSync, StorageError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fsync" => Ok(WalSync::Fsync),
            "off" => Ok(WalSync::Off),
            other => Err(StorageError::InvalidArgument(format!("wal sync mode must be `fsync` or `off`, got {other:?}"))),
        }
    }
}

impl std::fmt::Display for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
