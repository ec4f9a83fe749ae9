//! Plain-number snapshots of the log and the state store, for the ops layer
//! to export (Prometheus) and for benchmarks to print.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::{IoContext, StorageError};
use crate::wal::{Recovery, Shared, WalSync};

#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub appended_entries: AtomicU64,
    pub appended_bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_micros_total: AtomicU64,
    /// Write + sync rounds that carried at least one entry.
    pub rounds: AtomicU64,
    pub backpressure: AtomicU64,
    pub segments_created: AtomicU64,
    pub segments_deleted: AtomicU64,
}

/// Counters and histograms of one log's syncer (v1 and v2 logs alike).
#[derive(Debug)]
pub(crate) struct SyncMetrics {
    pub counters: Counters,
    pub fsync_latency_us: Mutex<Histogram<u64>>,
    pub entries_per_fsync: Mutex<Histogram<u64>>,
}

impl SyncMetrics {
    pub fn new() -> SyncMetrics {
        SyncMetrics {
            counters: Counters::default(),
            fsync_latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")),
            entries_per_fsync: Mutex::new(Histogram::new_with_bounds(1, 1 << 24, 2).expect("valid bounds")),
        }
    }

    /// fdatasync `file`, counting it and recording its latency.
    pub fn fdatasync(&self, file: &File, what: impl FnOnce() -> String) -> Result<(), StorageError> {
        let t = Instant::now();
        // `wal-fsync-enospc` (tests): this fdatasync fails as on a full disk.
        crate::failpoint::io_error(crate::failpoint::IoFailPoint::WalFsyncEnospc).map_or_else(|| file.sync_data(), Err).ctx(what)?;
        let us = t.elapsed().as_micros() as u64;
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.counters.fsync_micros_total.fetch_add(us, Ordering::Relaxed);
        if let Ok(mut h) = self.fsync_latency_us.lock() {
            h.saturating_record(us.max(1));
        }
        Ok(())
    }

    /// One write + sync round that made `entries` entries durable.
    pub fn record_round(&self, entries: u64) {
        if let Ok(mut h) = self.entries_per_fsync.lock() {
            h.saturating_record(entries);
        }
        self.counters.rounds.fetch_add(1, Ordering::Relaxed);
    }

    pub fn fsync_latency(&self) -> Histogram<u64> {
        self.fsync_latency_us.lock().map(|h| h.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn entries_per_fsync(&self) -> Histogram<u64> {
        self.entries_per_fsync.lock().map(|h| h.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Snapshot of one write-ahead log.
#[derive(Debug, Clone)]
pub struct WalStats {
    /// The log's sync mode (`Off`: nothing below is ever fdatasynced).
    pub sync: WalSync,
    /// Bytes of records in the retained segments (not the pre-allocated size).
    pub log_bytes: u64,
    pub segments: usize,
    pub first_index: u64,
    pub last_index: u64,
    pub durable_index: u64,
    /// Requests queued for the syncer right now.
    pub pending_requests: usize,
    pub appended_entries: u64,
    pub appended_bytes: u64,
    pub fsyncs: u64,
    pub fsync_seconds_total: f64,
    pub sync_rounds: u64,
    pub backpressure_rejections: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// fdatasync latency in microseconds.
    pub fsync_latency_us: Histogram<u64>,
    /// Entries made durable by one write + sync round (group-commit batch size).
    pub entries_per_fsync: Histogram<u64>,
    pub recovery_duration: Duration,
    pub recovery_entries: u64,
    pub recovery_dropped_tail_bytes: u64,
}

impl WalStats {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn snapshot(
        shared: &Shared,
        log_bytes: u64,
        segments: usize,
        first_index: u64,
        last_index: u64,
        durable_index: u64,
        pending_requests: usize,
        recovery: &Recovery,
    ) -> WalStats {
        let c = &shared.metrics.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WalStats {
            sync: shared.opts.sync,
            log_bytes,
            segments,
            first_index,
            last_index,
            durable_index,
            pending_requests,
            appended_entries: get(&c.appended_entries),
            appended_bytes: get(&c.appended_bytes),
            fsyncs: get(&c.fsyncs),
            fsync_seconds_total: get(&c.fsync_micros_total) as f64 / 1e6,
            sync_rounds: get(&c.rounds),
            backpressure_rejections: get(&c.backpressure),
            segments_created: get(&c.segments_created),
            segments_deleted: get(&c.segments_deleted),
            fsync_latency_us: shared.metrics.fsync_latency(),
            entries_per_fsync: shared.metrics.entries_per_fsync(),
            recovery_duration: recovery.duration,
            recovery_entries: recovery.entries_replayed,
            recovery_dropped_tail_bytes: recovery.dropped_tail_bytes,
        }
    }

    /// Mean entries per fdatasync (0 when nothing was synced).
    pub fn mean_entries_per_fsync(&self) -> f64 {
        if self.entries_per_fsync.is_empty() {
            0.0
        } else {
            self.entries_per_fsync.mean()
        }
    }
}

/// Snapshot of one state store and its applier.
#[derive(Debug, Clone, Default)]
pub struct StateStats {
    pub applied_index: u64,
    /// Entries committed but not yet applied to sled.
    pub apply_lag: u64,
    pub checkpoint_index: u64,
    /// Time since the last durable checkpoint (`None` before the first one).
    pub checkpoint_age: Option<Duration>,
    pub checkpoints: u64,
    pub entries_applied: u64,
    /// Key writes skipped because the key already held a newer entry (replay).
    pub writes_skipped: u64,
    pub replayed_on_open: u64,
    pub replay_duration: Duration,
    /// Tombstones dropped because a durable checkpoint covered them.
    pub tombstones_compacted: u64,
    /// Rows deleted outside the log by [`crate::StateStore::forget`] (expired ones).
    pub forgotten: u64,
}
