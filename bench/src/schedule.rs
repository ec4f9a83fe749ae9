//! When each request is meant to be sent.
//!
//! Closed loop: a lane sends its next request when the previous one is done,
//! so its intended send time is "now" and a slow server slows the load down
//! (what wrk does). Open loop: intended send times come from a clock that
//! does not look at responses — a fixed rate split over the lanes, or users
//! with think times. If a lane is still waiting for a response when its next
//! request is due, that request goes out late and its latency is measured
//! from the *intended* time, so the time it spent queued behind the slow one
//! is counted (no coordinated omission, as in wrk2).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    Closed,
    /// `rate` requests/s in total, spread evenly over all lanes.
    FixedRate {
        rate: f64,
    },
    /// Each lane is a user who waits a uniform random time in `[min, max]`
    /// between the intended times of its requests.
    ThinkTime {
        min: Duration,
        max: Duration,
    },
}

impl Pacing {
    pub fn is_open_loop(&self) -> bool {
        !matches!(self, Pacing::Closed)
    }
}

/// A small deterministic PRNG (SplitMix64); seeded per lane so runs repeat.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0); the modulo bias is negligible for bench use.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next_u64() % n
    }
    /// Uniform duration in `[min, max]`.
    pub fn duration_between(&mut self, min: Duration, max: Duration) -> Duration {
        assert!(min <= max);
        let span = (max - min).as_nanos() as u64;
        min + Duration::from_nanos(if span == 0 { 0 } else { self.below(span + 1) })
    }
}

/// The intended send times of one lane.
#[derive(Debug, Clone)]
pub struct LaneSchedule {
    pacing: Pacing,
    start: Instant,
    /// FixedRate: this lane's offset inside one period, and the period.
    phase_ns: u64,
    period_ns: u64,
    /// Requests handed out so far.
    k: u64,
    prev: Option<Instant>,
    rng: SplitMix64,
}

impl LaneSchedule {
    /// `lane` in `0..lanes`; `start` is when the first requests are due.
    pub fn new(pacing: Pacing, start: Instant, lane: usize, lanes: usize, seed: u64) -> Self {
        assert!(lanes > 0 && lane < lanes);
        let (phase_ns, period_ns) = match pacing {
            Pacing::FixedRate { rate } => {
                assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
                // Each lane sends every `lanes / rate` seconds; lanes are
                // staggered so the union is evenly spaced at 1/rate.
                let gap_ns = 1e9 / rate;
                ((gap_ns * lane as f64) as u64, ((gap_ns * lanes as f64) as u64).max(1))
            }
            _ => (0, 0),
        };
        let rng = SplitMix64::new(seed ^ (lane as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        LaneSchedule { pacing, start, phase_ns, period_ns, k: 0, prev: None, rng }
    }

    /// The intended time of the next request. `now` matters only for the
    /// closed loop, whose next request is intended when it can be sent.
    pub fn next_intended(&mut self, now: Instant) -> Instant {
        let t = match self.pacing {
            Pacing::Closed => now.max(self.start),
            Pacing::FixedRate { .. } => self.start + Duration::from_nanos(self.phase_ns + self.k * self.period_ns),
            Pacing::ThinkTime { min, max } => match self.prev {
                // Users arrive spread over the first think interval.
                None => self.start + self.rng.duration_between(Duration::ZERO, max),
                Some(p) => p + self.rng.duration_between(min, max),
            },
        };
        self.k += 1;
        self.prev = Some(t);
        t
    }

    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }
}

/// Timing of one request: intended, actually sent, completed.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub intended: Instant,
    pub sent: Instant,
    pub done: Instant,
}

impl Timing {
    /// Latency as a user sees it: from when the request was due. This is
    /// the coordinated-omission-corrected figure.
    pub fn latency(&self) -> Duration {
        self.done.saturating_duration_since(self.intended)
    }
    /// Time on the wire and in the server only.
    pub fn service(&self) -> Duration {
        self.done.saturating_duration_since(self.sent)
    }
    /// How late the send was against its intended time.
    pub fn send_delay(&self) -> Duration {
        self.sent.saturating_duration_since(self.intended)
    }
}

/// Where a request's latency is counted from. If the lane was still busy
/// with the previous response at the intended time, the wait is the
/// server's doing and counts (coordinated-omission correction: from
/// `intended`). If the lane was idle, any delay is only the client's timer
/// waking late (monoio's timer has millisecond granularity), which is not
/// the server's latency: count from `sent`.
pub fn latency_origin(intended: Instant, lane_free_at: Instant, sent: Instant) -> Instant {
    if lane_free_at > intended {
        intended
    } else {
        sent.max(intended)
    }
}

/// Number of fixed-rate intended times in `[from, to)` over all lanes —
/// what an open-loop run must account for (sent or counted as unsent).
pub fn fixed_rate_count(rate: f64, lanes: usize, start: Instant, from: Instant, to: Instant) -> u64 {
    let mut n = 0;
    for lane in 0..lanes {
        let mut s = LaneSchedule::new(Pacing::FixedRate { rate }, start, lane, lanes, 0);
        loop {
            let t = s.next_intended(start);
            if t >= to {
                break;
            }
            if t >= from {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_lanes_interleave_evenly() {
        let t0 = Instant::now();
        let lanes = 4;
        let mut all: Vec<Duration> = Vec::new();
        for lane in 0..lanes {
            let mut s = LaneSchedule::new(Pacing::FixedRate { rate: 1000.0 }, t0, lane, lanes, 7);
            for _ in 0..250 {
                all.push(s.next_intended(t0 + Duration::from_secs(100)) - t0);
            }
        }
        all.sort();
        // 1000/s over 4 lanes = one request every 1 ms overall.
        for (i, d) in all.iter().enumerate() {
            assert_eq!(d.as_micros(), i as u128 * 1000, "request {i}");
        }
        assert_eq!(fixed_rate_count(1000.0, lanes, t0, t0, t0 + Duration::from_secs(1)), 1000);
        assert_eq!(fixed_rate_count(1000.0, lanes, t0, t0 + Duration::from_millis(200), t0 + Duration::from_secs(1)), 800);
    }

    #[test]
    fn open_loop_schedule_ignores_response_times() {
        // `now` (when the previous response came back) does not move the
        // next intended time of an open-loop lane.
        let t0 = Instant::now();
        let mut a = LaneSchedule::new(Pacing::FixedRate { rate: 10.0 }, t0, 0, 1, 1);
        let mut b = a.clone();
        for i in 0..20 {
            let late = t0 + Duration::from_secs(60 + i);
            assert_eq!(a.next_intended(t0), b.next_intended(late));
        }
        let think = Pacing::ThinkTime { min: Duration::from_millis(100), max: Duration::from_millis(500) };
        let mut a = LaneSchedule::new(think, t0, 3, 10, 9);
        let mut b = a.clone();
        let mut prev = None;
        for i in 0..50 {
            let ta = a.next_intended(t0);
            assert_eq!(ta, b.next_intended(t0 + Duration::from_secs(i)));
            if let Some(p) = prev {
                let gap: Duration = ta - p;
                assert!(gap >= Duration::from_millis(100) && gap <= Duration::from_millis(500), "{gap:?}");
            }
            prev = Some(ta);
        }
    }

    #[test]
    fn closed_loop_is_intended_when_sendable() {
        let t0 = Instant::now();
        let mut s = LaneSchedule::new(Pacing::Closed, t0, 0, 1, 0);
        let later = t0 + Duration::from_millis(5);
        assert_eq!(s.next_intended(later), later);
        assert_eq!(s.next_intended(t0 - Duration::from_millis(5)), t0);
    }

    /// A server that stalls for 1 s once, driven at 100 req/s by one lane:
    /// the requests due during the stall are sent late, and their latency
    /// counts the wait (1 s, 0.99 s, 0.98 s ...), not just their service time.
    #[test]
    fn coordinated_omission_is_corrected() {
        let t0 = Instant::now();
        let service = Duration::from_millis(1);
        let stall = Duration::from_secs(1);
        let mut s = LaneSchedule::new(Pacing::FixedRate { rate: 100.0 }, t0, 0, 1, 0);
        let mut free_at = t0; // when the lane's connection is free again
        let mut timings = Vec::new();
        for i in 0..300 {
            let intended = s.next_intended(free_at);
            let sent = intended.max(free_at);
            let done = sent + if i == 0 { stall } else { service };
            free_at = done;
            timings.push(Timing { intended, sent, done });
        }
        // No request was dropped from the schedule: 300 due in 3 s, 300 timed.
        assert_eq!(timings.last().unwrap().intended - t0, Duration::from_millis(2990));
        let lat: Vec<u128> = timings.iter().map(|t| t.latency().as_millis()).collect();
        let svc: Vec<u128> = timings.iter().map(|t| t.service().as_millis()).collect();
        assert_eq!(lat[0], 1000);
        assert_eq!(lat[1], 991); // due at 10 ms, sent at 1000 ms, done at 1001 ms
        assert_eq!(lat[50], 550); // due at 500 ms, sent at 1049 ms behind the backlog
        assert_eq!(svc[1], 1); // what a closed-loop tool would have reported
        let over_100ms = lat.iter().filter(|&&l| l > 100).count();
        assert!(over_100ms >= 90, "the stall shows up in ~1/3 of the samples, got {over_100ms}");
        // Once the backlog is gone, latency is the service time again.
        assert_eq!(lat[299], 1);
    }

    #[test]
    fn latency_origin_blames_only_the_server() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Busy lane: the previous response came at 5 ms, due at 2 ms, sent at 5 ms.
        assert_eq!(latency_origin(t0 + ms(2), t0 + ms(5), t0 + ms(5)), t0 + ms(2));
        // Idle lane (free since 0 ms), the timer woke 1 ms late: count from the send.
        assert_eq!(latency_origin(t0 + ms(2), t0, t0 + ms(3)), t0 + ms(3));
        // Closed loop: intended == free == sent.
        assert_eq!(latency_origin(t0, t0, t0), t0);
    }

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            let x = a.below(7);
            assert_eq!(x, b.below(7));
            assert!(x < 7);
        }
    }
}
