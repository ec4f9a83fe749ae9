//! Runs one measured load phase: `threads` OS threads, one monoio runtime
//! each, `connections` lanes spread over them. A lane is one keep-alive
//! connection with one request in flight, paced by its [`LaneSchedule`].
//!
//! Timeline of a run (all threads share the same instants):
//! `t0` (lanes connected) → warm-up → `measure_start` → `end` → drain.
//! Only requests *due* in `[measure_start, end)` are recorded. An open-loop
//! lane still behind at `end + drain` counts its remaining due requests as
//! `unsent` errors instead of hiding them.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::http::{Conn, Target};
use crate::report::{Outcome, Protocol, Recorder, Report, RunMeta};
use crate::resp::RespOptions;
use crate::schedule::{latency_origin, LaneSchedule, Pacing, Timing};
use crate::workload::{LaneRequests, Workload};

/// Time given to threads to start and lanes to connect before `t0`.
const SETUP_GRACE: Duration = Duration::from_millis(300);
/// Pause after a failed connect, so a dead server is not spun on.
pub(crate) const CONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// Most lanes one run may open (file descriptors, memory).
pub const MAX_CONNECTIONS: usize = 20_000;

#[derive(Clone)]
pub struct RunConfig {
    /// The servers driven; lane `l` talks to `targets[l % targets.len()]`
    /// (for RESP: its first node; the slot map may send commands elsewhere).
    /// The workload must have been built with the same hosts in this order.
    pub targets: Vec<Target>,
    pub workload: Workload,
    pub pacing: Pacing,
    pub threads: usize,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Per request (connect, or send + full response).
    pub timeout: Duration,
    /// Open loop: how long after `end` late lanes may still send due requests.
    pub drain: Duration,
    pub seed: u64,
    pub driver: Driver,
    /// RESP workloads: pipelining depth, RESP3, cluster routing.
    pub resp: RespOptions,
}

/// monoio driver of the bench threads. For many small request/response
/// round trips on loopback, epoll used less CPU per request than io_uring
/// in our measurements (see bench/RESULTS.md), so it is the default; `auto`
/// is monoio's FusionDriver (io_uring when the kernel allows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Driver {
    #[default]
    Epoll,
    Auto,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid run configuration: {0}")]
    Config(String),
    #[error("cannot start a monoio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("a bench thread failed: {0}")]
    Thread(String),
}

impl RunConfig {
    fn validate(&self) -> Result<(), RunError> {
        let bad = |m: &str| Err(RunError::Config(m.to_string()));
        if self.threads == 0 || self.threads > 256 {
            return bad("threads must be in 1..=256");
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return bad("connections must be in 1..=20000");
        }
        if self.connections < self.threads {
            return bad("need at least one connection per thread");
        }
        if self.targets.is_empty() || self.targets.len() > self.connections {
            return bad("need 1 to `connections` targets (every target gets a lane)");
        }
        if self.workload.target_count() != self.targets.len() {
            return bad("the workload was built for another number of targets");
        }
        if self.resp.pipeline == 0 || self.resp.pipeline > crate::resp::MAX_PIPELINE {
            return bad("pipeline must be in 1..=1024");
        }
        if self.resp.pipeline > 1 && !self.workload.kind().is_resp() {
            return bad("pipelining (--pipeline > 1) is for the resp-* workloads");
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return bad("duration must be in (0, 24h]");
        }
        if self.timeout.is_zero() {
            return bad("timeout must be > 0");
        }
        match self.pacing {
            Pacing::FixedRate { rate } if !(rate > 0.0 && rate.is_finite() && rate <= 10_000_000.0) => {
                bad("rate must be in (0, 1e7] requests/s")
            }
            Pacing::ThinkTime { min, max } if min > max || max.is_zero() => bad("think time needs 0 <= min <= max, max > 0"),
            _ => Ok(()),
        }
    }

    pub fn mode_name(&self) -> String {
        match self.pacing {
            Pacing::Closed => "closed-loop".into(),
            Pacing::FixedRate { rate } => format!("open-loop fixed rate {rate:.1} req/s"),
            Pacing::ThinkTime { min, max } => {
                format!("open-loop users, think time {}-{} ms", min.as_millis(), max.as_millis())
            }
        }
    }
}

/// Shared, read-only facts of one run, per thread.
pub(crate) struct Phase {
    pub targets: Vec<Target>,
    pub pacing: Pacing,
    pub lanes: usize,
    pub t0: Instant,
    pub measure_start: Instant,
    pub end: Instant,
    pub hard_stop: Instant,
    pub timeout: Duration,
    pub seed: u64,
    pub driver: Driver,
    /// RESP: commands in flight per lane, `HELLO 3`, slot-map routing.
    pub pipeline: usize,
    pub resp3: bool,
    pub slot_map: bool,
    /// Drive the lanes over RESP.
    pub resp: bool,
}

/// Runs the load and returns the merged report.
pub fn run(cfg: &RunConfig) -> Result<Report, RunError> {
    cfg.validate()?;
    let started_utc = utc_timestamp(std::time::SystemTime::now());
    let t0 = Instant::now() + SETUP_GRACE;
    let measure_start = t0 + cfg.warmup;
    let end = measure_start + cfg.duration;
    let drain = if cfg.pacing.is_open_loop() { cfg.drain } else { Duration::ZERO };
    let bucket_width = bucket_width(cfg.duration);

    let mut handles = Vec::with_capacity(cfg.threads);
    for thread in 0..cfg.threads {
        let phase = Phase {
            targets: cfg.targets.clone(),
            pacing: cfg.pacing,
            lanes: cfg.connections,
            t0,
            measure_start,
            end,
            hard_stop: end + drain,
            timeout: cfg.timeout,
            seed: cfg.seed,
            driver: cfg.driver,
            pipeline: cfg.resp.pipeline,
            resp3: cfg.resp.resp3,
            slot_map: cfg.resp.slot_map,
            resp: cfg.workload.kind().is_resp(),
        };
        // Lanes are dealt round-robin: thread k gets lanes k, k+threads, ...
        let lanes: Vec<(usize, LaneRequests)> =
            (thread..cfg.connections).step_by(cfg.threads).map(|l| (l, cfg.workload.lane(l, cfg.seed))).collect();
        let h = std::thread::Builder::new()
            .name(format!("bench-{thread}"))
            .spawn(move || run_thread(phase, lanes, bucket_width))
            .map_err(RunError::Runtime)?;
        handles.push(h);
    }
    let mut total = Recorder::new(bucket_width);
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(rec)) => total.merge(&rec),
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => first_err = first_err.or(Some(RunError::Thread("panicked".into()))),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let resp = cfg.workload.kind().is_resp();
    let scheme = if resp { "redis" } else { "http" };
    let mut params = cfg.workload.params().clone();
    if resp {
        params.insert("pipeline".into(), cfg.resp.pipeline.to_string());
        params.insert("protocol".into(), if cfg.resp.resp3 { "RESP3 (HELLO 3)" } else { "RESP2" }.into());
        params.insert("slot_map".into(), if cfg.resp.slot_map { "CLUSTER SLOTS + MOVED" } else { "off (MOVED followed, not kept)" }.into());
    }
    let meta = RunMeta {
        workload: cfg.workload.kind().name().to_string(),
        protocol: if resp { Protocol::Resp } else { Protocol::Http },
        target: cfg.targets.iter().map(|t| format!("{scheme}://{}", t.host)).collect::<Vec<_>>().join(","),
        mode: cfg.mode_name(),
        threads: cfg.threads,
        connections: cfg.connections,
        warmup_s: cfg.warmup.as_secs_f64(),
        params,
        started_utc,
    };
    Ok(total.report(meta, cfg.duration))
}

/// About 300 points on the latency-over-time plot, at least 1 s each.
fn bucket_width(duration: Duration) -> Duration {
    let per = duration.as_secs_f64() / 300.0;
    Duration::from_secs_f64(per.max(1.0).ceil())
}

fn run_thread(phase: Phase, lanes: Vec<(usize, LaneRequests)>, bucket_width: Duration) -> Result<Recorder, RunError> {
    let driver = phase.driver;
    let work = async move {
        let phase = Rc::new(phase);
        let rec = Rc::new(RefCell::new(Recorder::new(bucket_width)));
        let slots = Rc::new(crate::resp::lane::ThreadShared::default());
        let mut tasks = Vec::with_capacity(lanes.len());
        for (lane, reqs) in lanes {
            let (phase, rec) = (Rc::clone(&phase), Rc::clone(&rec));
            tasks.push(if phase.resp {
                monoio::spawn(crate::resp::lane::lane_loop(phase, rec, Rc::clone(&slots), lane, reqs))
            } else {
                monoio::spawn(lane_loop(phase, rec, lane, reqs))
            });
        }
        for t in tasks {
            t.await;
        }
        let rec = Rc::try_unwrap(rec).ok().expect("every lane has finished");
        rec.into_inner()
    };
    Ok(match driver {
        Driver::Epoll => {
            monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().map_err(RunError::Runtime)?.block_on(work)
        }
        Driver::Auto => {
            monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().map_err(RunError::Runtime)?.block_on(work)
        }
    })
}

pub(crate) async fn sleep_until(t: Instant) {
    if t > Instant::now() {
        monoio::time::sleep_until(monoio::time::Instant::from_std(t)).await;
    }
}

async fn lane_loop(phase: Rc<Phase>, rec: Rc<RefCell<Recorder>>, lane: usize, mut reqs: LaneRequests) {
    let mut sched = LaneSchedule::new(phase.pacing, phase.t0, lane, phase.lanes, phase.seed);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let addr = phase.targets[reqs.target_index()].addr;
    // Connect before t0 so setup is not in the first sample; a failure here
    // is retried (and counted) at the first request.
    let mut conn = match monoio::time::timeout(phase.timeout, Conn::connect(addr)).await {
        Ok(Ok(c)) => Some(c),
        _ => None,
    };
    sleep_until(phase.t0).await;
    let record = |route: &'static str,
                  outcome: Outcome,
                  timing: Option<Timing>,
                  meta: Option<&crate::http::ResponseMeta>,
                  intended: Instant,
                  at: Instant| {
        if intended >= phase.measure_start && intended < phase.end {
            let since = at.saturating_duration_since(phase.measure_start);
            rec.borrow_mut().record(route, outcome, timing, meta, since);
        }
    };
    // When this lane's previous request finished (see `latency_origin`).
    let mut free_at = phase.t0;
    loop {
        let now = Instant::now();
        let intended = sched.next_intended(now);
        if intended >= phase.end {
            break;
        }
        if now >= phase.hard_stop {
            // Open loop, hopelessly behind: every request still due is an
            // error, not a silently skipped sample.
            let mut due = intended;
            while due < phase.end {
                record("(not sent)", Outcome::Unsent, None, None, due, phase.end);
                due = sched.next_intended(now);
            }
            break;
        }
        sleep_until(intended).await;
        let route = reqs.next(&mut buf);
        if conn.is_none() {
            match monoio::time::timeout(phase.timeout, Conn::connect(addr)).await {
                Ok(Ok(c)) => conn = Some(c),
                failed => {
                    let outcome = if failed.is_err() { Outcome::Timeout } else { Outcome::Connect };
                    record(route, outcome, None, None, intended, Instant::now());
                    monoio::time::sleep(CONNECT_BACKOFF).await;
                    free_at = Instant::now();
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let sent = Instant::now();
        let result = monoio::time::timeout(phase.timeout, c.send(buf)).await;
        let done = Instant::now();
        let timing = Timing { intended: latency_origin(intended, free_at, sent), sent, done };
        free_at = done;
        match result {
            Ok((res, b)) => {
                buf = b;
                let outcome = Outcome::of(&res);
                let meta = res.as_ref().ok().copied();
                if !meta.is_some_and(|m| m.keep_alive) {
                    conn = None;
                }
                let timing = outcome.has_response().then_some(timing);
                record(route, outcome, timing, meta.as_ref(), intended, done);
            }
            Err(_) => {
                // The request buffer went down with the cancelled future.
                buf = Vec::with_capacity(1024);
                conn = None;
                record(route, Outcome::Timeout, None, None, intended, done);
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, RFC 3339, whole seconds).
pub fn utc_timestamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let at = |s| utc_timestamp(std::time::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_426_775), "2026-11-23T09:39:35Z");
    }

    #[test]
    fn bucket_widths() {
        assert_eq!(bucket_width(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(bucket_width(Duration::from_secs(3000)), Duration::from_secs(10));
    }
}
