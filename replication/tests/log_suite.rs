//! openraft's own log-storage conformance suite against our adapter.

use replication::log_store::MemLog;
use replication::testkit::run_log_suite;

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
