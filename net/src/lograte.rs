//! Rate limit for log events a remote peer can trigger at will (malformed
//! requests, slow bodies, bad tokens): each [`LogLimiter`] lets one event
//! through per interval, and that event carries how many were suppressed
//! since the previous one, so a flood costs one line per interval and the
//! counters in `/metrics` still count every event. Lock-free; usable from
//! every core.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct LogLimiter {
    interval_ms: u64,
    /// Milliseconds since the process's first check when the next event may pass.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    pub const fn new(interval: Duration) -> Self {
        LogLimiter { interval_ms: interval.as_millis() as u64, next_ms: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(suppressed)`: log this event (and say how many were dropped
    /// since the last one); `None`: drop it (it is counted).
    pub fn check(&self) -> Option<u64> {
        let now = elapsed_ms();
        let next = self.next_ms.load(Relaxed);
        if now >= next && self.next_ms.compare_exchange(next, now + self.interval_ms, Relaxed, Relaxed).is_ok() {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

fn elapsed_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_and_the_count_of_the_rest() {
        let l = LogLimiter::new(Duration::from_millis(200));
        assert_eq!(l.check(), Some(0));
        assert_eq!((0..5).filter_map(|_| l.check()).count(), 0);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(l.check(), Some(5));
        assert_eq!(l.check(), None);
    }
}
