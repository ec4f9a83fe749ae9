//! Admission control of the cold path: shed a new cold computation with
//! 503 OVERLOADED at once, rather than queue it, when it would wait longer
//! than `--max-queue-ms` behind the cold work already on its owner core.
//!
//! A cold computation (upstream fetch + parse + compute + render) runs on
//! the key's owner core and shares that core's thread with every other one
//! in progress: they interleave, so a newcomer's work finishes after all of
//! theirs does. Its wait is estimated as
//!
//! ```text
//! estimated wait = computations in progress on the core × CPU cost of one
//! ```
//!
//! where the cost is an EWMA of the core time the cold path spent per
//! completed computation. That time is measured, not guessed: every
//! upstream flight's task is wrapped in [`Admission::metered`], which adds
//! the duration of each of its polls (a poll is core time: one thread, no
//! preemption by other tasks). Computations waiting on a slow upstream
//! count as in progress too, so with a high-latency upstream the estimate is
//! conservative (it assumes their CPU work is still all ahead).
//!
//! What the bound does not see: the core time of the HTTP handling, of the
//! 503s themselves and of hits. Measured on a 2-core box at 3x the cold
//! capacity, accepted requests finished within about 4x `--max-queue-ms`
//! (p99 0.44 s at 100 ms, 0.78 s at 200 ms) instead of growing without bound.
//!
//! What is never shed: cache hits, read copies, STORE answers (none of
//! them reach a flight), single-flight joiners (no new work), flights
//! started by an admitted computation (its own equipment and ocid fetches:
//! part of the work already admitted), likes (their own log backpressure).
//!
//! Invariants: a core with no cold computation in progress admits (so the
//! node always makes progress and the cost estimate keeps being refreshed);
//! `in_progress` is the number of live [`ColdTicket`]s.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::error::OwnerError;
use super::sink::Sink;

/// Cost assumed before the first computation on a core completes: about a
/// release build's measured cold character (≈ 6 ms of one core, README).
pub const INITIAL_COST: Duration = Duration::from_millis(5);

/// Weight of a new cost sample (1/8, as TCP's smoothed RTT): a burst of
/// completions moves the estimate within a few dozen samples, one outlier
/// (a page fault, a slow allocation) moves it by an eighth.
const COST_WEIGHT: f64 = 0.125;

/// Retry-After bounds of a shed answer, seconds.
const RETRY_AFTER_MAX_S: u64 = 10;

/// The estimator: pure arithmetic over counts and durations, no clock and
/// no metrics, so tests drive it with exact numbers.
#[derive(Debug, Clone)]
pub struct ColdQueue {
    max_wait: Duration,
    in_progress: u32,
    /// Smoothed CPU cost of one computation, seconds.
    cost_s: f64,
    /// Cold-path CPU spent since the last completion was sampled.
    cpu_since_sample: Duration,
}

/// Why a computation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    pub estimated_wait: Duration,
    pub max_wait: Duration,
}

impl Shed {
    /// Whole seconds, 1..=10: about when the work ahead will be done.
    pub fn retry_after_s(&self) -> u64 {
        self.estimated_wait.as_secs_f64().ceil().clamp(1.0, RETRY_AFTER_MAX_S as f64) as u64
    }
}

impl ColdQueue {
    pub fn new(max_wait: Duration) -> ColdQueue {
        ColdQueue { max_wait, in_progress: 0, cost_s: INITIAL_COST.as_secs_f64(), cpu_since_sample: Duration::ZERO }
    }

    pub fn in_progress(&self) -> u32 {
        self.in_progress
    }

    pub fn cost(&self) -> Duration {
        Duration::from_secs_f64(self.cost_s)
    }

    /// How long a computation started now would wait behind the others.
    pub fn estimated_wait(&self) -> Duration {
        Duration::from_secs_f64(self.in_progress as f64 * self.cost_s)
    }

    /// Admit (counted as in progress until [`ColdQueue::finish`]) or shed.
    pub fn try_admit(&mut self) -> Result<(), Shed> {
        let wait = self.estimated_wait();
        if self.in_progress > 0 && wait > self.max_wait {
            return Err(Shed { estimated_wait: wait, max_wait: self.max_wait });
        }
        self.in_progress += 1;
        Ok(())
    }

    /// Core time the cold path just spent (one poll of a flight's task).
    pub fn record_cpu(&mut self, spent: Duration) {
        self.cpu_since_sample += spent;
    }

    /// An admitted computation ended (done, failed or dropped): the CPU
    /// spent since the previous completion is this completion's sample.
    /// Over a run the samples add up to all cold CPU, so their mean is the
    /// cost per computation however the computations interleave.
    pub fn finish(&mut self) {
        assert!(self.in_progress > 0, "finish without a matching admit");
        self.in_progress -= 1;
        let sample = std::mem::take(&mut self.cpu_since_sample).as_secs_f64();
        self.cost_s += COST_WEIGHT * (sample - self.cost_s);
        // A cost of zero would admit without bound; a microsecond is below
        // any real computation.
        self.cost_s = self.cost_s.max(1e-6);
    }
}

/// A core's admission controller (lives on the core, `Rc`).
pub struct Admission {
    queue: RefCell<ColdQueue>,
    /// True while a metered flight task is being polled: a flight started
    /// then belongs to already admitted work.
    inside_cold_work: Cell<bool>,
    metrics: Rc<dyn Sink>,
}

impl Admission {
    pub fn new(max_wait: Duration, metrics: Rc<dyn Sink>) -> Admission {
        let a = Admission { queue: RefCell::new(ColdQueue::new(max_wait)), inside_cold_work: Cell::new(false), metrics };
        a.publish();
        a
    }

    /// Called where a request would lead a new upstream flight. `Ok(None)`:
    /// the flight is started by admitted work (nothing to count).
    pub fn try_start(self: &Rc<Self>) -> Result<Option<ColdTicket>, OwnerError> {
        if self.inside_cold_work.get() {
            return Ok(None);
        }
        let admitted = self.queue.borrow_mut().try_admit();
        self.publish();
        match admitted {
            Ok(()) => {
                self.metrics.admission_admitted();
                Ok(Some(ColdTicket { admission: self.clone() }))
            }
            Err(shed) => {
                self.metrics.admission_shed();
                Err(OwnerError::Shed(shed))
            }
        }
    }

    /// `fut` (a flight's fetch) with the core time of each of its polls
    /// counted as cold-path CPU, and flights it starts marked as its own.
    pub fn metered<F: Future>(self: &Rc<Self>, fut: F) -> impl Future<Output = F::Output> {
        struct Inside<'a>(&'a Cell<bool>, bool);
        impl Drop for Inside<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let admission = self.clone();
        let mut fut = Box::pin(fut);
        std::future::poll_fn(move |cx| {
            let _restore = Inside(&admission.inside_cold_work, admission.inside_cold_work.replace(true));
            let started = Instant::now();
            let polled = fut.as_mut().poll(cx);
            admission.queue.borrow_mut().record_cpu(started.elapsed());
            polled
        })
    }

    #[cfg(test)]
    fn snapshot(&self) -> ColdQueue {
        self.queue.borrow().clone()
    }

    fn publish(&self) {
        let q = self.queue.borrow();
        self.metrics.admission_state(q.in_progress(), q.cost().as_secs_f64(), q.estimated_wait().as_secs_f64());
    }
}

/// One admitted cold computation; dropping it ends it. Held by the flight's
/// task, so it lasts as long as the work (not as long as the asking client).
pub struct ColdTicket {
    admission: Rc<Admission>,
}

impl Drop for ColdTicket {
    fn drop(&mut self) {
        self.admission.queue.borrow_mut().finish();
        self.admission.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn admits_until_the_estimated_wait_passes_the_limit() {
        let mut q = ColdQueue::new(20 * MS);
        // Initial cost 5 ms: waits 0, 5, 10, 15, 20 ms are admitted (20 is not over).
        for expected_wait in [0, 5, 10, 15, 20] {
            assert_eq!(q.estimated_wait(), expected_wait * MS);
            assert!(q.try_admit().is_ok());
        }
        let shed = q.try_admit().unwrap_err();
        assert_eq!(shed, Shed { estimated_wait: 25 * MS, max_wait: 20 * MS });
        assert_eq!(q.in_progress(), 5, "a shed computation is not counted");
        assert_eq!(shed.retry_after_s(), 1);
    }

    #[test]
    fn an_idle_core_always_admits() {
        let mut q = ColdQueue::new(Duration::ZERO);
        assert!(q.try_admit().is_ok(), "nothing in progress: admitted even with a zero limit");
        assert!(q.try_admit().is_err());
        q.finish();
        assert!(q.try_admit().is_ok());
    }

    #[test]
    fn cost_follows_the_measured_cpu_per_completion() {
        let mut q = ColdQueue::new(Duration::from_secs(1));
        for _ in 0..200 {
            q.try_admit().unwrap();
            // Two polls of 3 ms and 7 ms: 10 ms per computation.
            q.record_cpu(3 * MS);
            q.record_cpu(7 * MS);
            q.finish();
        }
        let cost = q.cost().as_secs_f64();
        assert!((cost - 0.010).abs() < 1e-6, "{cost}");
        // Interleaved: 4 computations, all CPU first, then four completions.
        // The first sample takes all 40 ms, the others none; the estimate
        // moves toward the mean but one batch does not swing it to 40 ms.
        for _ in 0..4 {
            q.try_admit().unwrap();
        }
        q.record_cpu(40 * MS);
        for _ in 0..4 {
            q.finish();
        }
        let after = q.cost().as_secs_f64();
        assert!(after > 0.005 && after < 0.020, "{after}");
        assert_eq!(q.in_progress(), 0);
    }

    #[test]
    fn a_slower_cost_lowers_the_admitted_depth() {
        let mut q = ColdQueue::new(100 * MS);
        for _ in 0..100 {
            q.try_admit().unwrap();
            q.record_cpu(50 * MS);
            q.finish();
        }
        let mut admitted = 0;
        while q.try_admit().is_ok() {
            admitted += 1;
            assert!(admitted < 1000, "must stop admitting");
        }
        // Waits 0, 50, 100 ms admitted; 150 ms is over.
        assert_eq!(admitted, 3);
        let shed = q.try_admit().unwrap_err();
        let wait_ms = shed.estimated_wait.as_secs_f64() * 1e3;
        assert!((wait_ms - 150.0).abs() < 0.01, "{wait_ms}");
    }

    #[test]
    fn cost_never_reaches_zero() {
        let mut q = ColdQueue::new(10 * MS);
        for _ in 0..1000 {
            q.try_admit().unwrap();
            q.finish(); // no CPU recorded at all
        }
        assert!(q.cost() > Duration::ZERO);
        let mut admitted = 0;
        while q.try_admit().is_ok() {
            admitted += 1;
            assert!(admitted <= 10_001, "a zero cost would admit without bound");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_within_bounds() {
        let s = |ms| Shed { estimated_wait: Duration::from_millis(ms), max_wait: MS };
        assert_eq!(s(10).retry_after_s(), 1);
        assert_eq!(s(1500).retry_after_s(), 2);
        assert_eq!(s(600_000).retry_after_s(), 10);
    }

    #[test]
    #[should_panic(expected = "finish without a matching admit")]
    fn finish_without_admit_is_a_bug() {
        ColdQueue::new(MS).finish();
    }

    fn admission(max: Duration) -> Rc<Admission> {
        Rc::new(Admission::new(max, Rc::new(crate::owner::sink::NoSink)))
    }

    #[test]
    fn tickets_count_in_progress_and_flights_inside_cold_work_are_free() {
        let a = admission(Duration::ZERO);
        let first = a.try_start().unwrap().expect("a request's flight is counted");
        assert!(matches!(a.try_start(), Err(OwnerError::Shed(_))), "over the limit");
        // A flight started while a metered task is polled belongs to it.
        let nested = {
            let a2 = a.clone();
            let mut fut = std::pin::pin!(a.metered(async move { a2.try_start().map(|t| t.is_none()) }));
            let waker = futures::task::noop_waker();
            match fut.as_mut().poll(&mut std::task::Context::from_waker(&waker)) {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => panic!("ready at once"),
            }
        };
        assert_eq!(nested, Ok(true));
        assert!(a.try_start().is_err(), "outside the metered task the flag is reset");
        drop(first);
        assert_eq!(a.snapshot().in_progress(), 0);
        assert!(a.try_start().unwrap().is_some());
    }
}
