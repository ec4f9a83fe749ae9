//! Recording samples (one [`Recorder`] per bench thread, merged at the end)
//! and turning them into a [`Report`]: text, JSON.
//!
//! Every response whose status is not 2xx/3xx is an error, and so is every
//! request that got no response (connect, i/o, timeout, malformed, unsent),
//! with one exception kept apart: a 503 whose body says `OVERLOADED` (or the
//! HTTP server's own overload refusal, see `http::is_overload_body`) is the
//! server shedding load on purpose ([`Outcome::Shed`]). `Retry-After` alone
//! does not make a shed: a node whose log failed answers 503 + Retry-After
//! to every write, and that is an outage, not shedding. A shed is counted and
//! shown on its own (`shed`, `shed_share`), never as accepted and never
//! mixed into `errors`. A report with any error says so in its first line
//! (`ERRORS: ...`); one whose only failures are sheds starts `SHED: ...`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::http::{ClientError, ResponseMeta};
use crate::schedule::Timing;

/// Latencies are recorded in microseconds, 1 µs .. 1 h, 3 significant digits.
const HIST_MAX_US: u64 = 3_600_000_000;
/// Timeline histograms are coarser (2 digits): there is one per time bucket.
const TIMELINE_SIGFIG: u8 = 2;
/// Upper bound on timeline buckets; longer runs use wider buckets.
pub const MAX_TIMELINE_BUCKETS: usize = 600;

fn new_hist(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, sigfig).expect("static histogram bounds are valid")
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// A 2xx or 3xx response.
    Ok(u16),
    /// 503 OVERLOADED: the server refused the work to stay fast.
    Shed,
    /// A response with any other status (any other 503 too).
    Status(u16),
    Connect,
    Io,
    Closed,
    Timeout,
    Protocol,
    /// Due (open loop) but never sent before the run's hard stop.
    Unsent,
    /// RESP: an error reply (`-ERR ...`, `-NOAUTH ...`, a `-MOVED` or
    /// `-TRYAGAIN` still there after the redirects/retries allowed), by code.
    RespError(ErrorCode),
    /// RESP: a null reply where the workload expects data.
    NullReply,
}

/// The code of a RESP error reply: its first word (`ERR`, `NOAUTH`,
/// `MOVED` ...), upper-cased, at most 15 bytes, kept inline so an
/// [`Outcome`] stays `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ErrorCode {
    len: u8,
    bytes: [u8; 15],
}

impl ErrorCode {
    /// The code of an error reply's text (`MOVED 3999 127.0.0.1:6381` → `MOVED`).
    /// Anything but ASCII letters, digits, `_` and `-` is dropped.
    pub fn of_text(text: &[u8]) -> ErrorCode {
        let word = text.split(|&b| b == b' ').next().unwrap_or(b"");
        let mut bytes = [0u8; 15];
        let mut len = 0;
        for &b in word.iter().filter(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-') {
            if len == bytes.len() {
                break;
            }
            bytes[len] = b.to_ascii_uppercase();
            len += 1;
        }
        if len == 0 {
            return ErrorCode::of_text(b"EMPTY");
        }
        ErrorCode { len: len as u8, bytes }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("ASCII only")
    }

    /// `-OVERLOADED` and `-BUSY`: the server refused the work to stay fast.
    pub fn is_shed(&self) -> bool {
        matches!(self.as_str(), "OVERLOADED" | "BUSY")
    }
}

impl Outcome {
    pub fn of(result: &Result<ResponseMeta, ClientError>) -> Outcome {
        match result {
            Ok(m) if (200..400).contains(&m.status) => Outcome::Ok(m.status),
            Ok(m) if m.status == 503 && m.overload => Outcome::Shed,
            Ok(m) => Outcome::Status(m.status),
            Err(ClientError::Connect(_)) => Outcome::Connect,
            Err(ClientError::Io(_)) => Outcome::Io,
            Err(ClientError::Closed) => Outcome::Closed,
            Err(ClientError::Protocol(_)) => Outcome::Protocol,
        }
    }
    /// Neither accepted nor shed.
    pub fn is_error(&self) -> bool {
        !matches!(self, Outcome::Ok(_) | Outcome::Shed)
    }
    pub fn is_shed(&self) -> bool {
        matches!(self, Outcome::Shed)
    }
    /// Whether a response (of any status, or any RESP reply) came back.
    pub fn has_response(&self) -> bool {
        matches!(self, Outcome::Ok(_) | Outcome::Status(_) | Outcome::Shed | Outcome::RespError(_) | Outcome::NullReply)
    }
    /// Stable key used in reports: `status_503`, `timeout`, ...
    pub fn error_key(&self) -> Option<String> {
        Some(match self {
            Outcome::Ok(_) | Outcome::Shed => return None,
            Outcome::Status(s) => format!("status_{s}"),
            Outcome::Connect => "connect".into(),
            Outcome::Io => "io".into(),
            Outcome::Closed => "closed_early".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Protocol => "malformed_response".into(),
            Outcome::Unsent => "unsent".into(),
            Outcome::RespError(code) => format!("resp_{}", code.as_str().to_ascii_lowercase()),
            Outcome::NullReply => "resp_null".into(),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteCounts {
    pub requests: u64,
    pub ok: u64,
}

/// What a RESP run did besides answering commands: redirects followed,
/// retries, slot-map refreshes. Reported apart from ok / shed / errors:
/// a command that was redirected is counted once, by its final reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RespCounts {
    /// `-MOVED slot host:port` answers followed to the named node.
    pub redirects: u64,
    /// `-TRYAGAIN` answers retried after a pause.
    pub tryagain_retries: u64,
    /// `-ASK` answers (not followed: counted as errors too).
    pub ask: u64,
    /// `CLUSTER SLOTS` fetches that gave a slot map (start and after MOVED).
    pub slot_map_refreshes: u64,
    /// `CLUSTER SLOTS` fetches that failed or were refused (a standalone server).
    pub slot_map_unavailable: u64,
    /// Connections opened (setup: `HELLO 3`, `AUTH`), start included.
    pub connections_opened: u64,
}

impl RespCounts {
    pub fn add(&mut self, o: &RespCounts) {
        self.redirects += o.redirects;
        self.tryagain_retries += o.tryagain_retries;
        self.ask += o.ask;
        self.slot_map_refreshes += o.slot_map_refreshes;
        self.slot_map_unavailable += o.slot_map_unavailable;
        self.connections_opened += o.connections_opened;
    }
}

struct Bucket {
    responses: u64,
    errors: u64,
    shed: u64,
    latency: Histogram<u64>,
}

/// Samples of one thread (or of a whole run after merging).
pub struct Recorder {
    /// From intended send time, every request that got a response.
    latency: Histogram<u64>,
    /// From intended send time, 2xx/3xx only ("accepted").
    ok_latency: Histogram<u64>,
    /// From intended send time, 503 OVERLOADED only: how fast the
    /// server says no (a slow refusal is queueing under another name).
    shed_latency: Histogram<u64>,
    /// From actual send time (service time), every response.
    service: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<Outcome, u64>,
    routes: BTreeMap<&'static str, RouteCounts>,
    requests: u64,
    responses: u64,
    ok: u64,
    /// 503 OVERLOADED answers.
    shed: u64,
    bytes: u64,
    gzip: u64,
    /// Sent more than 1 ms after their intended time (client or lane busy).
    late_sends: u64,
    bucket_width: Duration,
    timeline: Vec<Bucket>,
    /// RESP runs: redirects, retries, slot-map refreshes.
    pub resp: RespCounts,
}

impl Recorder {
    pub fn new(bucket_width: Duration) -> Recorder {
        assert!(!bucket_width.is_zero());
        Recorder {
            latency: new_hist(3),
            ok_latency: new_hist(3),
            shed_latency: new_hist(3),
            service: new_hist(3),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            routes: BTreeMap::new(),
            requests: 0,
            responses: 0,
            ok: 0,
            shed: 0,
            bytes: 0,
            gzip: 0,
            late_sends: 0,
            bucket_width,
            timeline: Vec::new(),
            resp: RespCounts::default(),
        }
    }

    /// Records one finished request. `since_start` places it on the timeline
    /// (time of completion since the measurement began).
    pub fn record(
        &mut self,
        route: &'static str,
        outcome: Outcome,
        timing: Option<Timing>,
        meta: Option<&ResponseMeta>,
        since_start: Duration,
    ) {
        let wire = meta.map(|m| (Some(m.status), m.wire_bytes, m.gzip));
        self.record_sample(route, outcome, timing, wire, since_start);
    }

    /// Records one finished RESP command: `wire_bytes` of its reply (0 when none).
    pub fn record_resp(&mut self, route: &'static str, outcome: Outcome, timing: Option<Timing>, wire_bytes: u64, since_start: Duration) {
        let wire = outcome.has_response().then_some((None, wire_bytes, false));
        self.record_sample(route, outcome, timing, wire, since_start);
    }

    /// `wire`: (HTTP status, bytes, gzip) of the response, if one came.
    fn record_sample(
        &mut self,
        route: &'static str,
        outcome: Outcome,
        timing: Option<Timing>,
        wire: Option<(Option<u16>, u64, bool)>,
        since_start: Duration,
    ) {
        self.requests += 1;
        let route_counts = self.routes.entry(route).or_default();
        route_counts.requests += 1;
        match outcome {
            Outcome::Ok(_) => {
                route_counts.ok += 1;
                self.ok += 1;
            }
            Outcome::Shed => self.shed += 1,
            _ => *self.errors.entry(outcome).or_default() += 1,
        }
        if let Some((status, bytes, gzip)) = wire {
            self.bytes += bytes;
            self.gzip += gzip as u64;
            if let Some(status) = status {
                *self.statuses.entry(status).or_default() += 1;
            }
        }
        let lat_us = timing.map(|t| us(t.latency()));
        if let Some(t) = timing {
            if t.send_delay() > Duration::from_millis(1) {
                self.late_sends += 1;
            }
        }
        if outcome.has_response() {
            self.responses += 1;
            let t = timing.expect("a response has a timing");
            let lat = us(t.latency());
            self.latency.saturating_record(lat);
            self.service.saturating_record(us(t.service()));
            match outcome {
                Outcome::Ok(_) => self.ok_latency.saturating_record(lat),
                Outcome::Shed => self.shed_latency.saturating_record(lat),
                _ => {}
            }
        }
        let idx = ((since_start.as_nanos() / self.bucket_width.as_nanos()) as usize).min(MAX_TIMELINE_BUCKETS - 1);
        while self.timeline.len() <= idx {
            self.timeline.push(Bucket { responses: 0, errors: 0, shed: 0, latency: new_hist(TIMELINE_SIGFIG) });
        }
        let b = &mut self.timeline[idx];
        b.responses += outcome.has_response() as u64;
        b.errors += outcome.is_error() as u64;
        b.shed += outcome.is_shed() as u64;
        if outcome.has_response() {
            b.latency.saturating_record(lat_us.expect("a response has a timing"));
        }
    }

    /// Adds another thread's samples into this one.
    pub fn merge(&mut self, other: &Recorder) {
        assert_eq!(self.bucket_width, other.bucket_width, "recorders of one run share a bucket width");
        self.latency.add(&other.latency).expect("same histogram bounds");
        self.ok_latency.add(&other.ok_latency).expect("same histogram bounds");
        self.shed_latency.add(&other.shed_latency).expect("same histogram bounds");
        self.service.add(&other.service).expect("same histogram bounds");
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(*k).or_default() += v;
        }
        for (k, v) in &other.routes {
            let r = self.routes.entry(k).or_default();
            r.requests += v.requests;
            r.ok += v.ok;
        }
        self.requests += other.requests;
        self.responses += other.responses;
        self.ok += other.ok;
        self.shed += other.shed;
        self.bytes += other.bytes;
        self.gzip += other.gzip;
        self.late_sends += other.late_sends;
        self.resp.add(&other.resp);
        for (i, b) in other.timeline.iter().enumerate() {
            while self.timeline.len() <= i {
                self.timeline.push(Bucket { responses: 0, errors: 0, shed: 0, latency: new_hist(TIMELINE_SIGFIG) });
            }
            let mine = &mut self.timeline[i];
            mine.responses += b.responses;
            mine.errors += b.errors;
            mine.shed += b.shed;
            mine.latency.add(&b.latency).expect("same histogram bounds");
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }
    /// Requests neither accepted nor shed.
    pub fn errors(&self) -> u64 {
        self.requests - self.ok - self.shed
    }

    /// The finished report. `duration` is the measured phase's length.
    pub fn report(&self, meta: RunMeta, duration: Duration) -> Report {
        let secs = duration.as_secs_f64().max(1e-9);
        let errors: BTreeMap<String, u64> = self.errors.iter().map(|(k, v)| (k.error_key().expect("only errors are stored"), *v)).collect();
        let error_total = self.errors();
        let w = self.bucket_width.as_secs_f64();
        let timeline = self
            .timeline
            .iter()
            .enumerate()
            .map(|(i, b)| TimelinePoint {
                t_s: i as f64 * w,
                responses_per_s: b.responses as f64 / w,
                errors_per_s: b.errors as f64 / w,
                shed_per_s: b.shed as f64 / w,
                p50_us: if b.latency.is_empty() { None } else { Some(b.latency.value_at_quantile(0.5)) },
                p99_us: if b.latency.is_empty() { None } else { Some(b.latency.value_at_quantile(0.99)) },
                max_us: if b.latency.is_empty() { None } else { Some(b.latency.max()) },
            })
            .collect();
        Report {
            first_line: String::new(),
            duration_s: secs,
            requests: self.requests,
            responses: self.responses,
            ok: self.ok,
            errors_total: error_total,
            error_share: if self.requests == 0 { 0.0 } else { error_total as f64 / self.requests as f64 },
            shed: self.shed,
            shed_share: if self.requests == 0 { 0.0 } else { self.shed as f64 / self.requests as f64 },
            responses_per_s: self.responses as f64 / secs,
            ok_per_s: self.ok as f64 / secs,
            bytes: self.bytes,
            bytes_per_s: self.bytes as f64 / secs,
            gzip_responses: self.gzip,
            late_sends: self.late_sends,
            latency_us: Percentiles::of(&self.latency),
            ok_latency_us: Percentiles::of(&self.ok_latency),
            shed_latency_us: Percentiles::of(&self.shed_latency),
            service_us: Percentiles::of(&self.service),
            percentile_spectrum: spectrum(&self.latency),
            statuses: self.statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            errors,
            routes: self.routes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            timeline,
            derived: BTreeMap::new(),
            goals: Vec::new(),
            resp: (meta.protocol == Protocol::Resp).then(|| self.resp.clone()),
            meta,
        }
        .with_first_line()
    }
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// What the load generator speaks to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Resp,
}

/// Describes the run: what was driven, how.
#[derive(Debug, Clone, Serialize)]
pub struct RunMeta {
    pub workload: String,
    /// `http` or `resp`.
    pub protocol: Protocol,
    /// The server(s) driven, comma separated.
    pub target: String,
    /// `closed-loop`, `open-loop fixed rate`, `open-loop think time`.
    pub mode: String,
    pub threads: usize,
    pub connections: usize,
    pub warmup_s: f64,
    /// Workload parameters, as given or defaulted.
    pub params: BTreeMap<String, String>,
    pub started_utc: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles { count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0.0 };
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub responses_per_s: f64,
    pub errors_per_s: f64,
    pub shed_per_s: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
}

/// One point of the percentile plot.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SpectrumPoint {
    pub quantile: f64,
    pub latency_us: u64,
}

/// Latency at quantiles evenly spaced in "nines" (0, 0.9, 0.99 ...), up to
/// what the sample count supports, then the max.
fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let max_nines = (h.len() as f64).log10().clamp(1.0, 6.0);
    let steps = 60;
    let mut out: Vec<SpectrumPoint> = (0..=steps)
        .map(|i| {
            let nines = max_nines * i as f64 / steps as f64;
            let q = 1.0 - 10f64.powf(-nines);
            SpectrumPoint { quantile: q, latency_us: h.value_at_quantile(q) }
        })
        .collect();
    out.push(SpectrumPoint { quantile: 1.0, latency_us: h.max() });
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The first line of the text report: `OK: ...` or `ERRORS: ...`.
    pub first_line: String,
    pub meta: RunMeta,
    pub duration_s: f64,
    /// Requests due in the measured phase: `ok + shed + errors_total`.
    pub requests: u64,
    pub responses: u64,
    pub ok: u64,
    /// Neither accepted nor shed: other non-2xx/3xx statuses, no response.
    pub errors_total: u64,
    pub error_share: f64,
    /// 503 OVERLOADED (load shed by the server), apart from errors.
    pub shed: u64,
    pub shed_share: f64,
    pub responses_per_s: f64,
    pub ok_per_s: f64,
    pub bytes: u64,
    pub bytes_per_s: f64,
    pub gzip_responses: u64,
    pub late_sends: u64,
    pub latency_us: Percentiles,
    pub ok_latency_us: Percentiles,
    /// 503 OVERLOADED answers only, from intended send time.
    pub shed_latency_us: Percentiles,
    pub service_us: Percentiles,
    pub percentile_spectrum: Vec<SpectrumPoint>,
    pub statuses: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub routes: BTreeMap<String, RouteCounts>,
    pub timeline: Vec<TimelinePoint>,
    /// Workload-specific figures (characters/s, 503 share, capacity ...).
    pub derived: BTreeMap<String, f64>,
    /// The workload's targets and whether this run met them.
    pub goals: Vec<crate::goals::GoalResult>,
    /// RESP runs: redirects followed, retries, slot-map refreshes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp: Option<RespCounts>,
}

impl Report {
    fn with_first_line(mut self) -> Report {
        self.first_line = first_line_with(self.errors_total, self.shed, self.requests, &self.errors, self.ok_per_s, self.shed_label());
        self
    }

    /// What a shed answer is called for this run's protocol.
    fn shed_label(&self) -> &'static str {
        match self.meta.protocol {
            Protocol::Http => "503 OVERLOADED",
            Protocol::Resp => "-OVERLOADED/-BUSY",
        }
    }

    pub fn derive(&mut self, key: &str, value: f64) {
        self.derived.insert(key.to_string(), value);
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    pub fn to_text(&self) -> String {
        let m = &self.meta;
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.first_line);
        let _ = writeln!(s, "workload    {}  ->  {}", m.workload, m.target);
        let params: Vec<String> = m.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "params      {}", params.join(" "));
        let _ = writeln!(
            s,
            "mode        {}, {} connections, {} thread(s), warm-up {:.1} s, measured {:.2} s, started {}",
            m.mode, m.connections, m.threads, m.warmup_s, self.duration_s, m.started_utc
        );
        let _ = writeln!(
            s,
            "throughput  {:.1} responses/s ({:.1} ok/s), {} requests, {} responses, {:.2} MiB ({:.2} MiB/s)",
            self.responses_per_s,
            self.ok_per_s,
            self.requests,
            self.responses,
            self.bytes as f64 / 1048576.0,
            self.bytes_per_s / 1048576.0
        );
        let _ = writeln!(s, "latency     {}   (from intended send time)", fmt_pct(&self.latency_us));
        let accepted = if self.meta.protocol == Protocol::Resp { "replies other than errors" } else { "2xx/3xx only" };
        let _ = writeln!(s, "  accepted  {}   ({accepted})", fmt_pct(&self.ok_latency_us));
        if self.shed > 0 {
            let _ = writeln!(s, "  shed      {}   ({} answers)", fmt_pct(&self.shed_latency_us), self.shed_label());
        }
        let _ = writeln!(s, "  service   {}   (from actual send time)", fmt_pct(&self.service_us));
        if self.meta.protocol == Protocol::Http {
            let statuses: Vec<String> = self.statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            let _ = writeln!(s, "statuses    {}", if statuses.is_empty() { "-".into() } else { statuses.join(" ") });
        }
        let errors: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let _ = writeln!(s, "errors      {}", if errors.is_empty() { "none".into() } else { errors.join(" ") });
        if self.shed > 0 {
            let _ = writeln!(
                s,
                "shed        {} requests answered {} ({:.2} %), not counted as errors",
                self.shed,
                self.shed_label(),
                100.0 * self.shed_share
            );
        }
        if let Some(r) = &self.resp {
            let _ = writeln!(
                s,
                "resp        {} MOVED followed, {} TRYAGAIN retried, {} ASK, {} slot-map refreshes (CLUSTER SLOTS), {} without a map, {} connections opened",
                r.redirects,
                r.tryagain_retries,
                r.ask,
                r.slot_map_refreshes,
                r.slot_map_unavailable,
                r.connections_opened
            );
        }
        if self.routes.len() > 1 || self.routes.keys().any(|r| !r.is_empty()) {
            let routes: Vec<String> = self.routes.iter().map(|(k, v)| format!("{k}: {} ({} ok)", v.requests, v.ok)).collect();
            let _ = writeln!(s, "routes      {}", routes.join(", "));
        }
        if self.gzip_responses > 0 {
            let _ = writeln!(s, "gzip        {} of {} responses", self.gzip_responses, self.responses);
        }
        if self.late_sends > 0 {
            let _ = writeln!(
                s,
                "late sends  {} requests went out >1 ms late because their lane was still busy (counted in latency)",
                self.late_sends
            );
        }
        for (k, v) in &self.derived {
            let _ = writeln!(s, "{k:<11} {v:.3}");
        }
        if !self.goals.is_empty() {
            let _ = writeln!(s, "{}", crate::goals::summary_line(&self.goals));
            for g in &self.goals {
                let _ = writeln!(s, "  {}", g.to_line());
            }
        }
        s
    }
}

fn fmt_us(v: u64) -> String {
    if v >= 1_000_000 {
        format!("{:.2}s", v as f64 / 1e6)
    } else if v >= 1_000 {
        format!("{:.2}ms", v as f64 / 1e3)
    } else {
        format!("{v}us")
    }
}

fn fmt_pct(p: &Percentiles) -> String {
    if p.count == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
        fmt_us(p.p50),
        fmt_us(p.p90),
        fmt_us(p.p99),
        fmt_us(p.p999),
        fmt_us(p.max),
        p.count
    )
}

/// `ERRORS: ...` whenever anything failed (sheds mentioned after the
/// errors), `SHED: ...` when the only failures are 503 OVERLOADED,
/// else `OK: ...`.
pub fn first_line(errors: u64, shed: u64, requests: u64, kinds: &BTreeMap<String, u64>, ok_per_s: f64) -> String {
    first_line_with(errors, shed, requests, kinds, ok_per_s, "503 OVERLOADED")
}

/// [`first_line`] naming the shed answers `shed_label` (`-OVERLOADED/-BUSY` for RESP).
pub fn first_line_with(errors: u64, shed: u64, requests: u64, kinds: &BTreeMap<String, u64>, ok_per_s: f64, shed_label: &str) -> String {
    let shed_note = if shed > 0 {
        format!("; {shed} shed with {shed_label} ({:.2}%)", 100.0 * shed as f64 / requests.max(1) as f64)
    } else {
        String::new()
    };
    if shed > 0 && errors == 0 {
        return format!(
            "SHED: {shed} of {requests} requests answered {shed_label} ({:.2}%), no other errors, {ok_per_s:.1} ok/s",
            100.0 * shed as f64 / requests as f64
        );
    }
    if errors > 0 || requests == 0 {
        if requests == 0 {
            return "ERRORS: no request was completed".to_string();
        }
        let mut kinds: Vec<(&String, &u64)> = kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = kinds.iter().take(4).map(|(k, v)| format!("{k} x{v}")).collect();
        format!(
            "ERRORS: {errors} of {requests} requests failed ({:.2}%): {}{shed_note}",
            100.0 * errors as f64 / requests as f64,
            top.join(", ")
        )
    } else {
        format!("OK: no errors, {requests} requests, {ok_per_s:.1} ok/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn meta() -> RunMeta {
        RunMeta {
            workload: "t".into(),
            protocol: Protocol::Http,
            target: "x".into(),
            mode: "closed-loop".into(),
            threads: 1,
            connections: 1,
            warmup_s: 0.0,
            params: BTreeMap::new(),
            started_utc: "now".into(),
        }
    }

    fn timing(lat_us: u64) -> Timing {
        let t0 = Instant::now();
        Timing { intended: t0, sent: t0, done: t0 + Duration::from_micros(lat_us) }
    }

    fn ok_meta(status: u16) -> ResponseMeta {
        ResponseMeta { status, wire_bytes: 100, gzip: false, keep_alive: true, retry_after: false, overload: false }
    }

    #[test]
    fn percentiles_from_known_samples() {
        let mut r = Recorder::new(Duration::from_secs(1));
        // 1..=1000 ms, one sample each.
        for i in 1..=1000u64 {
            r.record("", Outcome::Ok(200), Some(timing(i * 1000)), Some(&ok_meta(200)), Duration::ZERO);
        }
        let rep = r.report(meta(), Duration::from_secs(10));
        let p = rep.latency_us;
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() / want as f64 <= 0.001;
        assert_eq!(p.count, 1000);
        assert!(close(p.p50, 500_000), "{}", p.p50);
        assert!(close(p.p90, 900_000), "{}", p.p90);
        assert!(close(p.p99, 990_000), "{}", p.p99);
        assert!(close(p.p999, 999_000), "{}", p.p999);
        assert!(close(p.max, 1_000_000), "{}", p.max);
        assert!((p.mean - 500_500.0).abs() / 500_500.0 < 0.001);
        assert_eq!(rep.responses_per_s, 100.0);
        assert_eq!(rep.bytes, 100_000);
        assert!(rep.first_line.starts_with("OK:"));
    }

    #[test]
    fn classification_of_outcomes() {
        let ok = |s| Outcome::of(&Ok(ok_meta(s)));
        assert_eq!(ok(200), Outcome::Ok(200));
        assert_eq!(ok(204), Outcome::Ok(204));
        assert_eq!(ok(304), Outcome::Ok(304));
        assert_eq!(ok(399), Outcome::Ok(399));
        for s in [100, 199, 400, 404, 429, 500, 503] {
            assert_eq!(ok(s), Outcome::Status(s));
            assert!(ok(s).is_error());
        }
        assert_eq!(Outcome::of(&Err(ClientError::Closed)), Outcome::Closed);
        assert_eq!(Outcome::of(&Err(ClientError::Protocol("x"))), Outcome::Protocol);
        let e = std::io::Error::other("x");
        assert_eq!(Outcome::of(&Err(ClientError::Connect(e))), Outcome::Connect);
        assert_eq!(Outcome::Status(503).error_key().unwrap(), "status_503");
        assert_eq!(Outcome::Ok(200).error_key(), None);
    }

    #[test]
    fn errors_are_flagged_in_the_first_line() {
        let mut r = Recorder::new(Duration::from_secs(1));
        for i in 0..100u64 {
            let (o, m) = if i % 10 == 0 { (Outcome::Status(503), ok_meta(503)) } else { (Outcome::Ok(200), ok_meta(200)) };
            r.record("read", o, Some(timing(100)), Some(&m), Duration::ZERO);
        }
        r.record("read", Outcome::Timeout, None, None, Duration::ZERO);
        let rep = r.report(meta(), Duration::from_secs(1));
        let text = rep.to_text();
        let first = text.lines().next().unwrap();
        assert_eq!(first, "ERRORS: 11 of 101 requests failed (10.89%): status_503 x10, timeout x1");
        assert_eq!(rep.errors["status_503"], 10);
        assert_eq!(rep.errors["timeout"], 1);
        assert_eq!(rep.statuses["503"], 10);
        assert_eq!(rep.responses, 100);
        assert_eq!(rep.ok, 90);
        assert_eq!(rep.ok_latency_us.count, 90);
        assert_eq!(rep.routes["read"], RouteCounts { requests: 101, ok: 90 });
        let json: serde_json::Value = serde_json::from_str(&rep.to_json()).unwrap();
        assert_eq!(json["first_line"], first);
        assert_eq!(json["errors_total"], 11);
    }

    /// A 503 OVERLOADED is shed, apart from errors; any other 503 (a failed
    /// log's STORAGE_UNAVAILABLE carries Retry-After too) or a 500 still
    /// raises the ERRORS banner, with the sheds named after it.
    #[test]
    fn shed_is_counted_apart_from_errors() {
        let shed_meta = ResponseMeta { retry_after: true, overload: true, ..ok_meta(503) };
        assert_eq!(Outcome::of(&Ok(shed_meta)), Outcome::Shed);
        assert_eq!(Outcome::of(&Ok(ok_meta(503))), Outcome::Status(503), "not OVERLOADED: an error");
        let storage_down = ResponseMeta { retry_after: true, ..ok_meta(503) };
        assert_eq!(Outcome::of(&Ok(storage_down)), Outcome::Status(503), "Retry-After alone is not a shed");
        let with_retry_500 = ResponseMeta { retry_after: true, ..ok_meta(500) };
        assert_eq!(Outcome::of(&Ok(with_retry_500)), Outcome::Status(500));

        let mut r = Recorder::new(Duration::from_secs(1));
        for i in 0..100u64 {
            let (o, m) = if i % 4 == 0 { (Outcome::Shed, shed_meta) } else { (Outcome::Ok(200), ok_meta(200)) };
            r.record("read", o, Some(timing(100 + i)), Some(&m), Duration::ZERO);
        }
        let rep = r.report(meta(), Duration::from_secs(1));
        assert_eq!((rep.requests, rep.ok, rep.shed, rep.errors_total), (100, 75, 25, 0));
        assert_eq!(rep.shed_share, 0.25);
        assert!(rep.errors.is_empty());
        assert_eq!(rep.statuses["503"], 25);
        assert_eq!(rep.ok_latency_us.count, 75, "accepted latency has no shed samples");
        assert_eq!(rep.shed_latency_us.count, 25);
        assert_eq!(rep.shed_latency_us.max, 196, "the last shed sample: 100 + 96 us");
        assert!(rep.to_text().contains("\n  shed      p50 "));
        assert_eq!(rep.latency_us.count, 100);
        assert_eq!(rep.timeline[0].shed_per_s, 25.0);
        assert_eq!(rep.timeline[0].errors_per_s, 0.0);
        assert!(rep.first_line.starts_with("SHED: 25 of 100 requests answered 503 OVERLOADED (25.00%)"), "{}", rep.first_line);
        assert!(rep.to_text().contains("\nshed        25 requests"));

        r.record("read", Outcome::Status(500), Some(timing(100)), Some(&ok_meta(500)), Duration::ZERO);
        let rep = r.report(meta(), Duration::from_secs(1));
        assert_eq!((rep.requests, rep.shed, rep.errors_total), (101, 25, 1));
        assert!(rep.first_line.starts_with("ERRORS: 1 of 101 requests failed"), "{}", rep.first_line);
        assert!(rep.first_line.ends_with("; 25 shed with 503 OVERLOADED (24.75%)"), "{}", rep.first_line);
    }

    #[test]
    fn empty_run_is_an_error() {
        let r = Recorder::new(Duration::from_secs(1));
        assert!(r.report(meta(), Duration::from_secs(1)).first_line.starts_with("ERRORS:"));
    }

    #[test]
    fn merge_adds_threads_and_timeline() {
        let mut a = Recorder::new(Duration::from_secs(1));
        let mut b = Recorder::new(Duration::from_secs(1));
        a.record("", Outcome::Ok(200), Some(timing(1000)), Some(&ok_meta(200)), Duration::from_millis(500));
        b.record("", Outcome::Ok(200), Some(timing(3000)), Some(&ok_meta(200)), Duration::from_millis(2500));
        b.record("", Outcome::Io, None, None, Duration::from_millis(2600));
        a.merge(&b);
        let rep = a.report(meta(), Duration::from_secs(3));
        assert_eq!((rep.requests, rep.responses, rep.ok), (3, 2, 2));
        assert_eq!(rep.timeline.len(), 3);
        assert_eq!(rep.timeline[0].responses_per_s, 1.0);
        assert_eq!(rep.timeline[1].p50_us, None);
        assert_eq!(rep.timeline[2].errors_per_s, 1.0);
        assert!(rep.latency_us.max.abs_diff(3000) <= 3, "3 significant digits");
    }

    #[test]
    fn timeline_is_bounded() {
        let mut r = Recorder::new(Duration::from_secs(1));
        r.record("", Outcome::Ok(200), Some(timing(10)), Some(&ok_meta(200)), Duration::from_secs(100_000));
        assert_eq!(r.report(meta(), Duration::from_secs(1)).timeline.len(), MAX_TIMELINE_BUCKETS);
    }
}
