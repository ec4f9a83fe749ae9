//! openraft's own log-storage conformance suite against our adapter: on the
//! in-memory group log and on storage v2 (one group of a multi-group
//! write-ahead log, small segments so the suite's logs span several).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use replication::log_store::MemLog;
use replication::testkit::run_log_suite;
use replication::WalGroup;
use storage::log::{Log, LogOptions};

#[test]
fn openraft_log_suite_on_the_in_memory_group_log() {
    run_log_suite(MemLog::new);
}

#[test]
fn openraft_log_suite_survives_backpressure() {
    // every append is refused twice with Backpressure first: the adapter waits
    run_log_suite(|| {
        let mut log = MemLog::new();
        log.backpressure_next = 2;
        log
    });
}

pub fn small_log_opts() -> LogOptions {
    LogOptions { segment_bytes: 64 << 10, max_entry_bytes: 8 << 10, max_pending: 64, group_cache_bytes: 4 << 10, ..LogOptions::default() }
}

#[test]
fn openraft_log_suite_on_storage_v2() {
    let base = Arc::new(tempfile::tempdir().unwrap());
    let n = Arc::new(AtomicUsize::new(0));
    let (b, count) = (base.clone(), n.clone());
    run_log_suite(move || {
        // A fresh log per case; each case also uses another group than 0 of
        // a log that holds other groups' entries, as the node's logs do.
        let i = count.fetch_add(1, Ordering::SeqCst);
        let (log, _) = Log::open(&b.path().join(format!("log-{i}")), small_log_opts()).unwrap();
        let other = log.group(1).unwrap();
        futures::executor::block_on(other.append(vec![storage::Entry::new(1, 0, vec![7u8; 100])]).unwrap()).unwrap();
        WalGroup::new(log.group(3).unwrap())
    });
    assert!(n.load(Ordering::SeqCst) > 10, "the suite ran its cases");
}
