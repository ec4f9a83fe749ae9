//! What the owner runtime reports: one method per event, called on the
//! core. The binary registers the metrics and implements this (ops'
//! `CoreMetrics`); `engine` knows nothing of Prometheus. Every method has a
//! no-op default ([`NoSink`] for tests).

/// Events of one core's owner runtime.
pub trait Sink {
    /// `cache`: equipment, expectation, basic, ocid; `result`: hit, miss,
    /// stale, read_copy, store.
    fn cache(&self, _cache: &'static str, _result: &'static str) {}
    /// Bytes a cache holds now.
    fn cache_bytes(&self, _cache: &'static str, _bytes: usize) {}
    /// A request joined an upstream fetch already in flight.
    fn flight_join(&self) {}
    /// `endpoint`: id, equipment, basic; `outcome`: ok, not_found, error, timeout, rejected.
    fn upstream(&self, _endpoint: &'static str, _outcome: &'static str) {}
    /// 0 closed, 1 open, 2 half-open.
    fn breaker_state(&self, _gauge: i64) {}
    /// A like toggle on its owner core: ok, invalid, busy, unavailable.
    fn like_toggle(&self, _result: &'static str) {}
    /// A fresh expectation written behind: appended, durable, refused, too_large.
    fn write_behind(&self, _result: &'static str) {}
    /// A request for another core: sent, full.
    fn cross_core(&self, _result: &'static str) {}
    /// Admission of the cold path: a computation admitted, one shed, the
    /// queue's state (computations in progress, cost of one and the wait
    /// of a new one, seconds).
    fn admission_admitted(&self) {}
    fn admission_shed(&self) {}
    fn admission_state(&self, _in_progress: u32, _cost_s: f64, _wait_s: f64) {}
    /// The periodic jobs ran on partition `partition` (due, and its group
    /// leads on this core), whether or not they had anything to write.
    fn job_run(&self, _partition: u32) {}
}

/// Reports nothing.
pub struct NoSink;

impl Sink for NoSink {}
