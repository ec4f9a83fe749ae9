//! A log-line throttle for recurring events.

use std::time::{Duration, Instant};

/// Period of the recurring-event lines (upstream failures, load shed, ...).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// At most one log line per `every` for a recurring event; counts the
/// events in between so the next line can say how many were not logged.
/// Lives where the event happens (one per core and endpoint: no lock).
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle { every, last: None, suppressed: 0 }
    }

    /// `Some(n)`: log now, mentioning the `n` events not logged since the
    /// previous line. `None`: counted, not logged.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
