//! The counters and histograms of a log's syncer (read through
//! `log::Log::stats`).

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::error::{IoContext, StorageError};

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
