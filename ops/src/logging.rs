//! Logging of the `maple` binary: one `tracing` subscriber writing to
//! stderr, filtered by `RUST_LOG` (default `info`), as text or as one JSON
//! object per line (`--log-format`, `MAPLE_LOG_FORMAT`).
//!
//! Also the helpers that keep error logging bounded: [`Throttle`] (at most
//! one line per period for a recurring failure, with the count of the ones
//! not logged) and [`spawn_shed_summary`] (load shed summarised, not one line
//! per refused request).
//!
//! The operator lines that scripts and tests read (`maple serve: listening
//! on ADDR ...`, `core N recovered ...`, `final checkpoint ...`) are events
//! whose message keeps that text: in the text format the line contains it,
//! in JSON the `fields.message` does.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines: time, level, target, message, fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// The filter when `RUST_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info,openraft=error";

/// Install the process-wide subscriber (once; later calls do nothing).
/// A `RUST_LOG` that does not parse falls back to `info`, with a warning.
pub fn init(format: LogFormat) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => match EnvFilter::try_new(&s) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some((s, e.to_string()))),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(false).with_span_list(false).try_init(),
    };
    if installed.is_ok() {
        if let Some((value, error)) = bad {
            tracing::warn!(rust_log = %value, %error, "RUST_LOG does not parse; logging at {DEFAULT_FILTER}");
        }
    }
}

/// The error that ends the process: a plain `maple: ...` line in the text
/// format (what a shell user expects), an `error` event in JSON (so every
/// line stays one object).
pub fn fatal(format: LogFormat, error: &anyhow::Error) {
    match format {
        LogFormat::Text => eprintln!("maple: {error:#}"),
        LogFormat::Json => tracing::error!(error = %format!("{error:#}"), "maple: exiting on error"),
    }
}

pub use engine::owner::throttle::{Throttle, SUMMARY_EVERY};

/// Counters of load the node refused on purpose, read by the summary.
pub trait ShedCounters: Send + Sync + 'static {
    /// Cold computations refused by admission control (503 OVERLOADED), all cores.
    fn admission_shed(&self) -> u64;
    /// Requests refused at the per-core in-flight limit, all cores.
    fn in_flight_rejected(&self) -> u64;
    /// Connections refused at the per-core connection limit, all cores.
    fn connections_rejected(&self) -> u64;
    /// Requests refused because the owner core's inbound queue was full (503 OVERLOADED).
    fn cross_core_full(&self) -> u64 {
        0
    }
    /// Writes refused because a core's write-ahead log queue was full (503 STORAGE_BUSY).
    fn log_backpressure(&self) -> u64 {
        0
    }
}

/// What the node shed during one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShedCounts {
    pub admission: u64,
    pub in_flight: u64,
    pub connections: u64,
    pub cross_core: u64,
    pub log_full: u64,
}

impl ShedCounts {
    fn read(c: &dyn ShedCounters) -> ShedCounts {
        ShedCounts {
            admission: c.admission_shed(),
            in_flight: c.in_flight_rejected(),
            connections: c.connections_rejected(),
            cross_core: c.cross_core_full(),
            log_full: c.log_backpressure(),
        }
    }

    fn since(self, before: ShedCounts) -> ShedCounts {
        ShedCounts {
            admission: self.admission.saturating_sub(before.admission),
            in_flight: self.in_flight.saturating_sub(before.in_flight),
            connections: self.connections.saturating_sub(before.connections),
            cross_core: self.cross_core.saturating_sub(before.cross_core),
            log_full: self.log_full.saturating_sub(before.log_full),
        }
    }

    fn any(self) -> bool {
        self.admission + self.in_flight + self.connections + self.cross_core + self.log_full > 0
    }
}

/// Log one `load shed` line for a period in which anything was shed.
pub fn log_shed(d: ShedCounts, period: Duration) {
    if d.any() {
        tracing::warn!(
            admission = d.admission,
            in_flight_limit = d.in_flight,
            connection_limit = d.connections,
            cross_core_queue = d.cross_core,
            log_queue = d.log_full,
            period_s = period.as_secs_f64().round() as u64,
            "load shed: {} cold computations answered 503 OVERLOADED (admission), {} requests over the in-flight limit, \
             {} connections over the connection limit, {} requests at a full cross-core queue, {} writes at a full \
             write-ahead log queue (503 STORAGE_BUSY) in the last {:.0} s",
            d.admission,
            d.in_flight,
            d.connections,
            d.cross_core,
            d.log_full,
            period.as_secs_f64()
        );
    }
}

/// A thread that logs, every `every`, what the node shed in that period
/// (nothing when nothing was shed), until `stop` is set (after the server
/// drained); then one last line for the partial period, if anything was shed.
pub fn spawn_shed_summary(
    counters: Arc<dyn ShedCounters>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    every: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("maple-shed-log".into()).spawn(move || {
        let mut before = ShedCounts::read(&*counters);
        let mut period_start = Instant::now();
        let tick = Duration::from_millis(100).min(every);
        loop {
            let stopping = stop.load(std::sync::atomic::Ordering::Acquire);
            if stopping || period_start.elapsed() >= every {
                let now = ShedCounts::read(&*counters);
                log_shed(now.since(before), period_start.elapsed());
                before = now;
                period_start = Instant::now();
            }
            if stopping {
                return;
            }
            std::thread::sleep(tick);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn throttle_logs_once_per_period_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.allow(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(5), "the next line tells the 5 not logged");
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(30)), Some(1));
    }

    #[derive(Default)]
    struct Fake(AtomicU64);
    impl ShedCounters for Fake {
        fn admission_shed(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
        fn in_flight_rejected(&self) -> u64 {
            0
        }
        fn connections_rejected(&self) -> u64 {
            1
        }
    }

    #[test]
    fn shed_counts_are_per_period() {
        let f = Fake::default();
        let a = ShedCounts::read(&f);
        f.0.store(7, Ordering::Relaxed);
        let b = ShedCounts::read(&f);
        assert_eq!(b.since(a), ShedCounts { admission: 7, ..ShedCounts::default() });
        assert!(b.since(a).any());
        assert!(!b.since(b).any());
    }
}
