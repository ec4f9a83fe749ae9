//! Per-core counters: plain atomics written by one core, read by anyone
//! (the metrics layer maps a snapshot to Prometheus).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Counters of one core. Only that core writes; `Relaxed` is enough since
/// each counter is read on its own.
#[derive(Debug, Default)]
pub struct CoreCounters {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    /// Accepted but answered 503 because the core was at `max_connections_per_core`.
    pub connections_rejected: AtomicU64,
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// 400: malformed request line or headers.
    pub err_malformed: AtomicU64,
    /// 431: head too large or too many headers.
    pub err_header_too_large: AtomicU64,
    /// 413: body over `max_body_bytes`.
    pub err_body_too_large: AtomicU64,
    /// 411/501: unsupported body framing.
    pub err_unsupported: AtomicU64,
    /// 503: in-flight limit reached.
    pub err_overloaded: AtomicU64,
    /// Connection closed because the head did not arrive in time.
    pub timeout_header: AtomicU64,
    /// 408: the request body did not arrive within `body_read_timeout`
    /// (or stalled for `idle_timeout`).
    pub timeout_body: AtomicU64,
    /// Keep-alive connection closed after `idle_timeout`, or a stalled write.
    pub timeout_idle: AtomicU64,
    /// Read/write errors (resets etc).
    pub io_errors: AtomicU64,
    /// Service panics turned into 500.
    pub service_panics: AtomicU64,
}

impl CoreCounters {
    #[inline]
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
    #[inline]
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
    #[inline]
    pub(crate) fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Relaxed);
    }

    pub fn snapshot(&self) -> CoreSnapshot {
        CoreSnapshot {
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_active: self.connections_active.load(Relaxed),
            connections_rejected: self.connections_rejected.load(Relaxed),
            requests: self.requests.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            err_malformed: self.err_malformed.load(Relaxed),
            err_header_too_large: self.err_header_too_large.load(Relaxed),
            err_body_too_large: self.err_body_too_large.load(Relaxed),
            err_unsupported: self.err_unsupported.load(Relaxed),
            err_overloaded: self.err_overloaded.load(Relaxed),
            timeout_header: self.timeout_header.load(Relaxed),
            timeout_body: self.timeout_body.load(Relaxed),
            timeout_idle: self.timeout_idle.load(Relaxed),
            io_errors: self.io_errors.load(Relaxed),
            service_panics: self.service_panics.load(Relaxed),
        }
    }
}

/// A point-in-time copy of one core's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    pub connections_accepted: u64,
    pub connections_active: u64,
    pub connections_rejected: u64,
    pub requests: u64,
    pub in_flight: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub err_malformed: u64,
    pub err_header_too_large: u64,
    pub err_body_too_large: u64,
    pub err_unsupported: u64,
    pub err_overloaded: u64,
    pub timeout_header: u64,
    pub timeout_body: u64,
    pub timeout_idle: u64,
    pub io_errors: u64,
    pub service_panics: u64,
}

impl CoreSnapshot {
    fn merge(mut self, o: &CoreSnapshot) -> CoreSnapshot {
        self.connections_accepted += o.connections_accepted;
        self.connections_active += o.connections_active;
        self.connections_rejected += o.connections_rejected;
        self.requests += o.requests;
        self.in_flight += o.in_flight;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.err_malformed += o.err_malformed;
        self.err_header_too_large += o.err_header_too_large;
        self.err_body_too_large += o.err_body_too_large;
        self.err_unsupported += o.err_unsupported;
        self.err_overloaded += o.err_overloaded;
        self.timeout_header += o.timeout_header;
        self.timeout_body += o.timeout_body;
        self.timeout_idle += o.timeout_idle;
        self.io_errors += o.io_errors;
        self.service_panics += o.service_panics;
        self
    }
}

/// Handle to every core's counters. Cheap to clone, `Send + Sync`: give it
/// to the metrics layer before the server starts ([`crate::BoundServer::stats`]).
#[derive(Debug, Clone)]
pub struct ServerStats {
    cores: Arc<[Arc<CoreCounters>]>,
}

impl ServerStats {
    pub(crate) fn new(cores: usize) -> Self {
        ServerStats { cores: (0..cores).map(|_| Arc::new(CoreCounters::default())).collect() }
    }

    pub(crate) fn core(&self, i: usize) -> Arc<CoreCounters> {
        self.cores[i].clone()
    }

    pub fn cores(&self) -> usize {
        self.cores.len()
    }

    /// One snapshot per core, index = core index.
    pub fn per_core(&self) -> Vec<CoreSnapshot> {
        self.cores.iter().map(|c| c.snapshot()).collect()
    }

    /// Sum over all cores.
    pub fn total(&self) -> CoreSnapshot {
        self.per_core().iter().fold(CoreSnapshot::default(), |acc, s| acc.merge(s))
    }
}
