//! Circuit breaker with the original's numbers (resilience4j semantics):
//! count-based sliding window of the last 10 calls; once the window is full
//! and ≥ 60 % of it failed, the breaker opens for 30 s; then it lets 3 probe
//! calls through (half-open) and closes if fewer than 60 % of them failed,
//! else opens again.
//!
//! One breaker per core (the core that owns a key is the one calling
//! upstream for it), so it needs no lock. Time is passed in for testing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub window: usize,
    pub failure_rate_percent: u32,
    pub open_for: Duration,
    pub half_open_probes: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { window: 10, failure_rate_percent: 60, open_for: Duration::from_secs(30), half_open_probes: 3 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    /// Gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { outcomes: VecDeque<bool> },
    Open { until: Instant },
    HalfOpen { issued: usize, successes: usize, failures: usize },
}

/// A change of state, for the log: from, to, and the calls that decided it
/// (`failed` of `calls`: the window when it opened, the probes otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub failed: usize,
    pub calls: usize,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    state: State,
    /// The last change of state, until taken.
    transition: Option<Transition>,
}

impl CircuitBreaker {
    pub fn new(cfg: BreakerConfig) -> CircuitBreaker {
        assert!(cfg.window > 0 && cfg.half_open_probes > 0 && cfg.failure_rate_percent <= 100);
        CircuitBreaker { cfg, state: State::Closed { outcomes: VecDeque::with_capacity(cfg.window) }, transition: None }
    }

    /// The change of state the last `try_acquire` or `record` made, if any
    /// (taken: a second call returns `None`).
    pub fn take_transition(&mut self) -> Option<Transition> {
        self.transition.take()
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// May a call go out now? A `true` must be followed by exactly one `record`.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match &mut self.state {
            State::Closed { .. } => true,
            State::Open { until } => {
                if now < *until {
                    return false;
                }
                self.state = State::HalfOpen { issued: 1, successes: 0, failures: 0 };
                self.transition = Some(Transition { from: BreakerState::Open, to: BreakerState::HalfOpen, failed: 0, calls: 0 });
                true
            }
            State::HalfOpen { issued, .. } => {
                if *issued >= self.cfg.half_open_probes {
                    return false;
                }
                *issued += 1;
                true
            }
        }
    }

    pub fn record(&mut self, success: bool, now: Instant) {
        let cfg = self.cfg;
        let tripped = |failures: usize, total: usize| failures * 100 >= cfg.failure_rate_percent as usize * total;
        match &mut self.state {
            State::Closed { outcomes } => {
                if outcomes.len() == cfg.window {
                    outcomes.pop_front();
                }
                outcomes.push_back(success);
                let failures = outcomes.iter().filter(|ok| !**ok).count();
                if outcomes.len() == cfg.window && tripped(failures, cfg.window) {
                    self.state = State::Open { until: now + cfg.open_for };
                    self.transition =
                        Some(Transition { from: BreakerState::Closed, to: BreakerState::Open, failed: failures, calls: cfg.window });
                }
            }
            // A call let through before the breaker opened finished late: ignore it.
            State::Open { .. } => {}
            State::HalfOpen { successes, failures, .. } => {
                if success {
                    *successes += 1;
                } else {
                    *failures += 1;
                }
                let done = *successes + *failures;
                if done >= cfg.half_open_probes {
                    let failed = *failures;
                    let (state, to) = if tripped(failed, done) {
                        (State::Open { until: now + cfg.open_for }, BreakerState::Open)
                    } else {
                        (State::Closed { outcomes: VecDeque::with_capacity(cfg.window) }, BreakerState::Closed)
                    };
                    self.state = state;
                    self.transition = Some(Transition { from: BreakerState::HalfOpen, to, failed, calls: done });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_n(b: &mut CircuitBreaker, n: usize, now: Instant) {
        for _ in 0..n {
            assert!(b.try_acquire(now));
            b.record(false, now);
        }
    }

    #[test]
    fn opens_at_sixty_percent_of_a_full_window() {
        let now = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        for _ in 0..4 {
            assert!(b.try_acquire(now));
            b.record(true, now);
        }
        fail_n(&mut b, 5, now);
        assert_eq!(b.state(now), BreakerState::Closed, "9 calls: window not full");
        assert_eq!(b.take_transition(), None);
        fail_n(&mut b, 1, now); // 6 of 10 failed
        assert_eq!(b.state(now), BreakerState::Open);
        assert_eq!(b.take_transition(), Some(Transition { from: BreakerState::Closed, to: BreakerState::Open, failed: 6, calls: 10 }));
        assert!(!b.try_acquire(now + Duration::from_secs(29)));
    }

    #[test]
    fn five_of_ten_failures_stay_closed() {
        let now = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        for i in 0..30 {
            assert!(b.try_acquire(now));
            b.record(i % 2 == 0, now);
        }
        assert_eq!(b.state(now), BreakerState::Closed);
    }

    #[test]
    fn half_open_allows_three_probes_then_closes_on_success() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        fail_n(&mut b, 10, t0);
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert!(b.try_acquire(t1));
        assert!(b.try_acquire(t1));
        assert!(b.try_acquire(t1));
        assert!(!b.try_acquire(t1), "only three probes");
        b.record(true, t1);
        b.record(false, t1);
        b.record(true, t1); // 1 of 3 failed = 33 %
        assert_eq!(b.state(t1), BreakerState::Closed);
        let closed = Transition { from: BreakerState::HalfOpen, to: BreakerState::Closed, failed: 1, calls: 3 };
        assert_eq!(b.take_transition(), Some(closed));
        assert_eq!(b.take_transition(), None, "taken once");
    }

    #[test]
    fn half_open_reopens_when_probes_fail() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig::default());
        fail_n(&mut b, 10, t0);
        let t1 = t0 + Duration::from_secs(31);
        let _ = b.take_transition();
        for _ in 0..3 {
            assert!(b.try_acquire(t1));
        }
        let half = Transition { from: BreakerState::Open, to: BreakerState::HalfOpen, failed: 0, calls: 0 };
        assert_eq!(b.take_transition(), Some(half), "the first probe moves it to half-open");
        b.record(false, t1);
        b.record(false, t1);
        b.record(true, t1);
        assert_eq!(b.state(t1), BreakerState::Open);
        assert!(!b.try_acquire(t1 + Duration::from_secs(29)));
        assert!(b.try_acquire(t1 + Duration::from_secs(30)));
    }
}
