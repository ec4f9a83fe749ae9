//! Crash hooks for the crash tests.
//!
//! Set `MAPLE_STORAGE_CRASH_AT=<name>` (see [`FailPoint::name`]) and the
//! process calls `std::process::abort()` when it reaches that step: no
//! destructors, no buffered flushes, exactly like a power cut for everything
//! that was not yet fsynced (page-cache contents survive an abort, so the
//! crash tests exercise ordering and idempotency; torn writes are covered by
//! the torn-tail tests, which cut files at every byte).

use std::sync::OnceLock;

pub const CRASH_ENV: &str = "MAPLE_STORAGE_CRASH_AT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Checkpoint: sled flushed, its files not yet fsynced.
    AfterSledFlush,
    /// Checkpoint: sled files and directory fsynced, checkpoint file not written.
    AfterSledSync,
    /// Checkpoint: `checkpoint.tmp` written and fsynced, not renamed.
    AfterCheckpointTemp,
    /// Checkpoint: renamed into place, old segments not yet purged.
    AfterCheckpointRename,
    /// Purge: purge mark durable, first old segment deleted, others remain.
    MidSegmentDelete,
    /// Apply: half of one entry's key writes applied to sled.
    MidApply,
    /// Checkpoint done, tombstone compaction: one tombstone deleted from
    /// the state, its index row not yet.
    MidTombstoneCompaction,
    // --- v2 multi-group log ([`crate::log`]) ---
    /// Roll: the new segment file is in place (header durable, renamed),
    /// the manifest does not list it yet.
    LogRollAfterInstall,
    /// Roll: the manifest lists the new segment; no record is in it yet.
    LogRollAfterManifest,
    /// Manifest update: `MANIFEST.tmp` written and fsynced, not renamed.
    ManifestTemp,
    /// Purge: the purge record is durable, no segment collected yet.
    LogPurgeDurable,
    /// Segment collection: the manifest no longer lists the old
    /// segments, none is unlinked yet.
    LogGcAfterManifest,
    /// Segment collection: the first of several old segments unlinked.
    LogGcMidUnlink,
    // --- v2 state store ([`crate::store`]) ---
    /// Snapshot install: rows loaded into the new generation's trees, the
    /// checkpoint that switches to it not written.
    StoreInstallLoaded,
}

impl FailPoint {
    /// The crash points of the v1 log + state store checkpoint.
    pub const ALL: [FailPoint; 7] = [
        FailPoint::AfterSledFlush,
        FailPoint::AfterSledSync,
        FailPoint::AfterCheckpointTemp,
        FailPoint::AfterCheckpointRename,
        FailPoint::MidSegmentDelete,
        FailPoint::MidApply,
        FailPoint::MidTombstoneCompaction,
    ];

    /// The crash points of the v2 log.
    pub const LOG: [FailPoint; 6] = [
        FailPoint::LogRollAfterInstall,
        FailPoint::LogRollAfterManifest,
        FailPoint::ManifestTemp,
        FailPoint::LogPurgeDurable,
        FailPoint::LogGcAfterManifest,
        FailPoint::LogGcMidUnlink,
    ];

    /// The crash points a v2 store checkpoint (+ log purge) or snapshot
    /// install passes through.
    pub const STORE: [FailPoint; 9] = [
        FailPoint::AfterSledFlush,
        FailPoint::AfterSledSync,
        FailPoint::AfterCheckpointTemp,
        FailPoint::AfterCheckpointRename,
        FailPoint::MidApply,
        FailPoint::MidTombstoneCompaction,
        FailPoint::LogPurgeDurable,
        FailPoint::LogGcAfterManifest,
        FailPoint::StoreInstallLoaded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FailPoint::AfterSledFlush => "after-sled-flush",
            FailPoint::AfterSledSync => "after-sled-sync",
            FailPoint::AfterCheckpointTemp => "after-checkpoint-temp",
            FailPoint::AfterCheckpointRename => "after-checkpoint-rename",
            FailPoint::MidSegmentDelete => "mid-segment-delete",
            FailPoint::MidApply => "mid-apply",
            FailPoint::MidTombstoneCompaction => "mid-tombstone-compaction",
            FailPoint::LogRollAfterInstall => "log-roll-after-install",
            FailPoint::LogRollAfterManifest => "log-roll-after-manifest",
            FailPoint::ManifestTemp => "manifest-temp",
            FailPoint::LogPurgeDurable => "log-purge-durable",
            FailPoint::LogGcAfterManifest => "log-gc-after-manifest",
            FailPoint::LogGcMidUnlink => "log-gc-mid-unlink",
            FailPoint::StoreInstallLoaded => "store-install-loaded",
        }
    }

    pub fn from_name(s: &str) -> Option<FailPoint> {
        FailPoint::ALL.into_iter().chain(FailPoint::LOG).chain([FailPoint::StoreInstallLoaded]).find(|f| f.name() == s)
    }
}

/// Injected I/O errors (not crashes): `MAPLE_STORAGE_CRASH_AT=<name>` or
/// `<name>@<n>` (the first `n` passes succeed, every later one fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFailPoint {
    /// The write-ahead log's fdatasync of a commit round fails with ENOSPC
    /// (as on a full disk), which poisons the log.
    WalFsyncEnospc,
}

impl IoFailPoint {
    pub fn name(self) -> &'static str {
        match self {
            IoFailPoint::WalFsyncEnospc => "wal-fsync-enospc",
        }
    }

    fn parse(s: &str) -> Option<(IoFailPoint, u64)> {
        let (name, after) = match s.split_once('@') {
            Some((name, n)) => (name, n.parse().ok()?),
            None => (s, 0),
        };
        [IoFailPoint::WalFsyncEnospc].into_iter().find(|p| p.name() == name).map(|p| (p, after))
    }
}

fn armed_io() -> Option<(IoFailPoint, u64)> {
    static ARMED: OnceLock<Option<(IoFailPoint, u64)>> = OnceLock::new();
    *ARMED.get_or_init(|| std::env::var(CRASH_ENV).ok().and_then(|v| IoFailPoint::parse(&v)))
}

/// The error to inject at `point`, if it is armed and its passes are used up.
#[inline]
pub fn io_error(point: IoFailPoint) -> Option<std::io::Error> {
    static PASSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (armed, after) = armed_io()?;
    if armed != point || PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < after {
        return None;
    }
    Some(std::io::Error::from_raw_os_error(libc::ENOSPC))
}

fn armed() -> Option<FailPoint> {
    static ARMED: OnceLock<Option<FailPoint>> = OnceLock::new();
    *ARMED.get_or_init(|| std::env::var(CRASH_ENV).ok().and_then(|v| FailPoint::from_name(&v)))
}

/// Abort the process if `point` is the armed fail point.
#[inline]
pub fn hit(point: FailPoint) {
    if armed() == Some(point) {
        eprintln!("storage: fail point {} reached, aborting", point.name());
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_fail_points_parse_with_an_optional_pass_count() {
        assert_eq!(IoFailPoint::parse("wal-fsync-enospc"), Some((IoFailPoint::WalFsyncEnospc, 0)));
        assert_eq!(IoFailPoint::parse("wal-fsync-enospc@3"), Some((IoFailPoint::WalFsyncEnospc, 3)));
        assert_eq!(IoFailPoint::parse("wal-fsync-enospc@x"), None);
        assert_eq!(IoFailPoint::parse("mid-apply"), None);
        assert_eq!(FailPoint::from_name("wal-fsync-enospc"), None, "not a crash point");
    }
}
