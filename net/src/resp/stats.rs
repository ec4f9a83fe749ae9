//! Per-core RESP counters: atomics written by their core, read by anyone
//! (the metrics layer maps a snapshot to Prometheus).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Counters of one core. Only that core writes.
        #[derive(Debug, Default)]
        pub struct RespCounters {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// A point-in-time copy of one core's counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct RespSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl RespCounters {
            pub fn snapshot(&self) -> RespSnapshot {
                RespSnapshot { $( $name: self.$name.load(Relaxed), )* }
            }
        }

        impl RespSnapshot {
            fn merge(mut self, o: &RespSnapshot) -> RespSnapshot {
                $( self.$name += o.$name; )*
                self
            }

            /// `(name, value)` of every counter, for exporting.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

counters! {
    connections_accepted,
    connections_active,
    /// Accepted but answered `-ERR max number of clients reached` (core at its limit).
    connections_rejected,
    /// Every command read (connection commands included).
    commands,
    /// Commands handed to the service.
    commands_service,
    /// Commands inside the service right now.
    in_flight,
    bytes_read,
    bytes_written,
    /// Unparseable request: `-ERR Protocol error: ...` and close.
    err_protocol,
    /// `-ERR unknown command` / unknown subcommand.
    err_unknown_command,
    /// `-ERR wrong number of arguments`.
    err_arity,
    /// `-NOAUTH`: an AUTH-flagged command on an unauthenticated connection.
    err_noauth,
    /// `AUTH` / `HELLO AUTH` refused by the service.
    err_auth_failed,
    /// Other errors of connection commands (syntax, bad SELECT index, ...).
    err_syntax,
    /// `-OVERLOADED`: the core's in-flight limit was reached.
    err_overloaded,
    /// Error replies from the service.
    err_service,
    /// Service panics turned into `-ERR internal error`.
    service_panics,
    /// Connections cut off because their unsent replies passed `max_reply_buffer_bytes`.
    cut_off_output,
    /// Closed after `idle_timeout` without a request.
    timeout_idle,
    /// Closed because a started request did not complete in `request_timeout`.
    timeout_request,
    /// Closed because a write made no progress for `write_timeout`.
    timeout_write,
    /// Read/write errors (resets etc).
    io_errors,
}

impl RespCounters {
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
}

/// Handle to every core's RESP counters; cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct RespStats {
    cores: Arc<[Arc<RespCounters>]>,
}

impl RespStats {
    pub(crate) fn new(cores: usize) -> Self {
        RespStats { cores: (0..cores).map(|_| Arc::new(RespCounters::default())).collect() }
    }

    pub(crate) fn core(&self, i: usize) -> Arc<RespCounters> {
        self.cores[i].clone()
    }

    pub fn cores(&self) -> usize {
        self.cores.len()
    }

    /// One snapshot per core, index = core index.
    pub fn per_core(&self) -> Vec<RespSnapshot> {
        self.cores.iter().map(|c| c.snapshot()).collect()
    }

    /// Sum over all cores.
    pub fn total(&self) -> RespSnapshot {
        self.per_core().iter().fold(RespSnapshot::default(), |acc, s| acc.merge(s))
    }
}
