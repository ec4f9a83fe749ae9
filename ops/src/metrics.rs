//! The node's Prometheus metrics (prometheus-client, OpenMetrics text).
//!
//! One [`NodeMetrics`] registry per process; each core takes a
//! [`CoreMetrics`] with its own handles, labelled `core`, so a request only
//! touches that core's atomics (counters, gauges) or that core's histogram
//! (its internal lock is never contended: one writer, and scrapes). Label
//! sets are resolved once per core and kept in a core-local map.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;
use std::time::Duration;

use std::sync::atomic::Ordering;

use storage::log::LogStats;

use crate::cluster::NodeCluster;
use crate::http::NodeStorage;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct NodeMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    cache: Family<Labels, Counter>,
    flight_joins: Family<Labels, Counter>,
    upstream_calls: Family<Labels, Counter>,
    breaker_state: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    cross_core: Family<Labels, Counter>,
    cache_bytes: Family<Labels, Gauge>,
    like_toggles: Family<Labels, Counter>,
    write_behind: Family<Labels, Counter>,
    job_runs: Family<Labels, Counter>,
    /// Cold-path admission control (shed counter, queue depth, estimated wait).
    pub admission: AdmissionMetrics,
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::with_prefix("maple");
        let requests = Family::<Labels, Counter>::default();
        registry.register("http_requests", "Requests answered by the service, by route and status", requests.clone());
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("http_request_duration_seconds", "Service time per request, by core and route", latency.clone());
        let cache = Family::<Labels, Counter>::default();
        registry.register("cache_lookups", "Cache lookups by cache, result (hit, miss, stale, read_copy, store) and core", cache.clone());
        let flight_joins = Family::<Labels, Counter>::default();
        registry.register("singleflight_joins", "Requests that joined an upstream fetch already in flight", flight_joins.clone());
        let upstream_calls = Family::<Labels, Counter>::default();
        registry.register(
            "upstream_calls",
            "Upstream calls by endpoint and outcome (ok, not_found, error, timeout, rejected)",
            upstream_calls.clone(),
        );
        let breaker_state = Family::<Labels, Gauge>::default();
        registry.register("upstream_breaker_state", "Circuit breaker per core: 0 closed, 1 open, 2 half-open", breaker_state.clone());
        let in_flight = Family::<Labels, Gauge>::default();
        registry.register("requests_in_flight", "Requests inside the service, per core", in_flight.clone());
        let cross_core = Family::<Labels, Counter>::default();
        registry.register("cross_core_messages", "Requests forwarded to the owner core, by sending core and result", cross_core.clone());
        let cache_bytes = Family::<Labels, Gauge>::default();
        registry.register("cache_bytes", "Bytes held by each per-core cache", cache_bytes.clone());
        let like_toggles = Family::<Labels, Counter>::default();
        registry.register("likes_toggles", "Like toggles by owner core and result (ok, invalid, busy, unavailable)", like_toggles.clone());
        let write_behind = Family::<Labels, Counter>::default();
        registry.register(
            "expectation_write_behind",
            "Fresh expectations written behind to the log, by result (appended, durable, refused, too_large)",
            write_behind.clone(),
        );
        let job_runs = Family::<Labels, Counter>::default();
        registry.register(
            "partition_job_runs",
            "Due runs of the periodic jobs (expectation eviction, idempotency expiry) on a partition led here, whether or not they wrote anything",
            job_runs.clone(),
        );
        let admission = AdmissionMetrics::register(&mut registry);
        NodeMetrics {
            registry,
            requests,
            latency,
            cache,
            flight_joins,
            upstream_calls,
            breaker_state,
            in_flight,
            cross_core,
            cache_bytes,
            like_toggles,
            write_behind,
            job_runs,
            admission,
        }
    }

    /// Cross-core forwards of `core` with `result` so far (the shed summary reads "full").
    pub fn cross_core_count(&self, core: usize, result: &str) -> u64 {
        self.cross_core.get_or_create(&vec![("core", core.to_string()), ("result", result.to_string())]).get()
    }

    pub fn core(&self, core: usize) -> CoreMetrics {
        let c = core.to_string();
        CoreMetrics {
            core: c.clone(),
            requests: self.requests.clone(),
            latency: self.latency.clone(),
            cache: self.cache.clone(),
            flight_joins: self.flight_joins.get_or_create_owned(&vec![("core", c.clone())]),
            upstream_calls: self.upstream_calls.clone(),
            breaker_state: self.breaker_state.get_or_create_owned(&vec![("core", c.clone())]),
            in_flight: self.in_flight.get_or_create_owned(&vec![("core", c.clone())]),
            cross_core: self.cross_core.clone(),
            cache_bytes: self.cache_bytes.clone(),
            like_toggles: self.like_toggles.clone(),
            write_behind: self.write_behind.clone(),
            job_runs: self.job_runs.clone(),
            admission: self.admission.core(core),
            local: RefCell::new(LocalHandles::default()),
        }
    }

    /// OpenMetrics text: our registry, the HTTP server's own counters, then
    /// the node's logs, partitions and process.
    pub fn render(
        &self,
        server: Option<&net::ServerStats>,
        resp: Option<&crate::resp::RespShared>,
        storage: Option<&NodeStorage>,
        cluster: Option<&NodeCluster>,
    ) -> String {
        let mut out = String::with_capacity(16 * 1024);
        encode_registry(&mut out, &self.registry).expect("writing to a String cannot fail");
        if let Some(stats) = server {
            render_server_stats(&mut out, stats);
        }
        if let Some(resp) = resp {
            render_resp(&mut out, resp);
        }
        if let Some(storage) = storage {
            render_storage(&mut out, storage);
        }
        if let Some(c) = cluster {
            render_cluster(&mut out, c);
        }
        if let Some(p) = ProcessStats::read() {
            render_process(&mut out, &p);
        }
        encode_eof(&mut out).expect("writing to a String cannot fail");
        out
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn render_server_stats(out: &mut String, stats: &net::ServerStats) {
    let per_core = stats.per_core();
    let mut family = |name: &str, kind: &str, help: &str, get: &dyn Fn(&net::CoreSnapshot) -> u64| {
        let _ = writeln!(out, "# HELP maple_server_{name} {help}");
        let _ = writeln!(out, "# TYPE maple_server_{name} {kind}");
        let suffix = if kind == "counter" { "_total" } else { "" };
        for (i, s) in per_core.iter().enumerate() {
            let _ = writeln!(out, "maple_server_{name}{suffix}{{core=\"{i}\"}} {}", get(s));
        }
    };
    family("requests", "counter", "Requests parsed, per core (per-core load)", &|s| s.requests);
    family("connections_active", "gauge", "Open connections", &|s| s.connections_active);
    family("connections_rejected", "counter", "Connections refused at the per-core limit", &|s| s.connections_rejected);
    family("rejected_malformed", "counter", "400: malformed requests", &|s| s.err_malformed);
    family("rejected_header_too_large", "counter", "431: request head too large", &|s| s.err_header_too_large);
    family("rejected_body_too_large", "counter", "413: request body too large", &|s| s.err_body_too_large);
    family("rejected_overloaded", "counter", "503: in-flight limit reached", &|s| s.err_overloaded);
    family("timeouts", "counter", "Connections closed by header, body (408) or idle timeout", &|s| {
        s.timeout_header + s.timeout_body + s.timeout_idle
    });
}

/// The RESP server's counters per core (`maple_resp_*`), and the node's
/// redirects: `-MOVED` and `-TRYAGAIN` answers.
fn render_resp(out: &mut String, resp: &crate::resp::RespShared) {
    let per_core = resp.stats.per_core();
    let Some(first) = per_core.first() else { return };
    for (i, (name, _)) in first.fields().into_iter().enumerate() {
        let gauge = matches!(name, "connections_active" | "in_flight");
        let (kind, suffix) = if gauge { ("gauge", "") } else { ("counter", "_total") };
        let _ = writeln!(out, "# HELP maple_resp_{name} RESP server: {}", name.replace('_', " "));
        let _ = writeln!(out, "# TYPE maple_resp_{name} {kind}");
        for (core, s) in per_core.iter().enumerate() {
            let _ = writeln!(out, "maple_resp_{name}{suffix}{{core=\"{core}\"}} {}", s.fields()[i].1);
        }
    }
    let _ = writeln!(out, "# HELP maple_resp_moved -MOVED answers: commands for a slot another node serves");
    let _ = writeln!(out, "# TYPE maple_resp_moved counter");
    let _ = writeln!(out, "maple_resp_moved_total {}", resp.moved.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP maple_resp_tryagain -TRYAGAIN answers: commands for a partition without a leader");
    let _ = writeln!(out, "# TYPE maple_resp_tryagain counter");
    let _ = writeln!(out, "maple_resp_tryagain_total {}", resp.tryagain.load(Ordering::Relaxed));
}

/// The standard process metrics (as the Prometheus client libraries name
/// them), from `/proc/self`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// `None` where `/proc` is not there (not Linux).
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // SAFETY: sysconf only reads a constant of the system.
        let (page, ticks) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
        let mut p = parse_stat(&stat, page.max(1) as u64, ticks.max(1) as u64)?;
        p.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        p.max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| parse_max_fds(&l));
        p.start_time_seconds = process_start_time(&stat, ticks.max(1) as u64);
        Some(p)
    }
}

/// Fields of `/proc/self/stat` after the `(comm)` (which may hold spaces):
/// utime, stime at 14, 15; vsize at 23; rss (pages) at 24 (1-based, man proc).
fn parse_stat(stat: &str, page_bytes: u64, ticks_per_s: u64) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state).
    let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    let cpu_ticks = field(14)? + field(15)?;
    Some(ProcessStats {
        resident_bytes: field(24)? * page_bytes,
        virtual_bytes: field(23)?,
        cpu_seconds: cpu_ticks as f64 / ticks_per_s as f64,
        open_fds: 0,
        max_fds: None,
        start_time_seconds: None,
    })
}

fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Start time (field 22, ticks after boot) + boot time (`btime` of /proc/stat).
fn process_start_time(stat: &str, ticks_per_s: u64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let start_ticks: u64 = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat").ok()?.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    Some(btime as f64 + start_ticks as f64 / ticks_per_s as f64)
}

fn render_process(out: &mut String, p: &ProcessStats) {
    let mut one = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let suffix = if kind == "counter" { "_total" } else { "" };
        let _ = writeln!(out, "{name}{suffix} {value}");
    };
    one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes", p.resident_bytes as f64);
    one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes", p.virtual_bytes as f64);
    one("process_cpu_seconds", "counter", "Total user and system CPU time spent in seconds", p.cpu_seconds);
    one("process_open_fds", "gauge", "Number of open file descriptors", p.open_fds as f64);
    if let Some(max) = p.max_fds {
        one("process_max_fds", "gauge", "Maximum number of open file descriptors", max as f64);
    }
    if let Some(t) = p.start_time_seconds {
        one("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds", t);
    }
}

/// One log's numbers at scrape time.
struct LogSnapshot {
    log_no: u32,
    wal: LogStats,
    recovery_seconds: f64,
    replayed: u64,
    dropped_tail_bytes: u64,
    checkpoint_age: Option<f64>,
}

/// fdatasync latency buckets, seconds.
const FSYNC_BUCKETS: [f64; 12] = [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0];

/// A metric family: `# HELP`, `# TYPE`, then one sample per label value.
fn family<T>(out: &mut String, name: &str, kind: &str, help: &str, label: &str, items: &[T], get: impl Fn(&T) -> Option<(String, f64)>) {
    let _ = writeln!(out, "# HELP maple_{name} {help}");
    let _ = writeln!(out, "# TYPE maple_{name} {kind}");
    let suffix = if kind == "counter" { "_total" } else { "" };
    for it in items {
        if let Some((l, v)) = get(it) {
            let _ = writeln!(out, "maple_{name}{suffix}{{{label}=\"{l}\"}} {v}");
        }
    }
}

fn render_storage(out: &mut String, storage: &NodeStorage) {
    let logs: Vec<LogSnapshot> = storage
        .logs
        .iter()
        .map(|l| LogSnapshot {
            log_no: l.log_no,
            wal: l.log.stats(),
            recovery_seconds: l.recovered_in.as_secs_f64(),
            replayed: l.replayed,
            dropped_tail_bytes: l.recovery.torn_tail.as_ref().map_or(0, |t| t.bytes),
            checkpoint_age: storage.store.checkpoint_stats(l.log_no).age.map(|a| a.as_secs_f64()),
        })
        .collect();
    let per_log = |out: &mut String, name: &str, kind: &str, help: &str, get: &dyn Fn(&LogSnapshot) -> Option<f64>| {
        family(out, name, kind, help, "log", &logs, |s| get(s).map(|v| (s.log_no.to_string(), v)));
    };
    per_log(out, "wal_fsyncs", "counter", "fdatasync calls of each write-ahead log", &|s| Some(s.wal.fsyncs as f64));
    per_log(
        out,
        "wal_entries_per_fsync",
        "gauge",
        "Mean entries made durable by one fdatasync (group commit over the log's partitions)",
        &|s| Some(s.wal.mean_entries_per_fsync()),
    );
    per_log(
        out,
        "wal_sync_enabled",
        "gauge",
        "1 if the log fdatasyncs before acknowledging (--wal-sync fsync), 0 if off (benchmark mode)",
        &|s| Some((s.wal.sync == storage::WalSync::Fsync) as u8 as f64),
    );
    per_log(out, "wal_log_bytes", "gauge", "Bytes of records in the retained log segments", &|s| Some(s.wal.log_bytes as f64));
    per_log(out, "wal_segments", "gauge", "Segment files of the log", &|s| Some(s.wal.segments as f64));
    per_log(out, "wal_backpressure", "counter", "Appends that found the log queue full (Raft waits them out)", &|s| {
        Some(s.wal.backpressure_rejections as f64)
    });
    per_log(out, "state_checkpoint_age_seconds", "gauge", "Time since the last durable state checkpoint of the log's partitions", &|s| {
        s.checkpoint_age
    });
    per_log(out, "recovery_seconds", "gauge", "Time the log's recovery took at start", &|s| Some(s.recovery_seconds));
    per_log(
        out,
        "recovery_replayed_entries",
        "gauge",
        "Committed log entries replayed into the state at start (0 after a clean stop)",
        &|s| Some(s.replayed as f64),
    );
    per_log(out, "recovery_dropped_tail_bytes", "gauge", "Torn log tail bytes discarded at start (0 after a clean stop)", &|s| {
        Some(s.dropped_tail_bytes as f64)
    });
    let _ = writeln!(out, "# HELP maple_wal_fsync_seconds fdatasync latency of each write-ahead log");
    let _ = writeln!(out, "# TYPE maple_wal_fsync_seconds histogram");
    for s in &logs {
        let (h, l) = (&s.wal.fsync_latency_us, s.log_no);
        for le in FSYNC_BUCKETS {
            let limit_us = (le * 1e6) as u64;
            let n: u64 = h.iter_recorded().filter(|v| v.value_iterated_to() <= limit_us).map(|v| v.count_at_value()).sum();
            let _ = writeln!(out, "maple_wal_fsync_seconds_bucket{{log=\"{l}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "maple_wal_fsync_seconds_bucket{{log=\"{l}\",le=\"+Inf\"}} {}", h.len());
        let _ = writeln!(out, "maple_wal_fsync_seconds_sum{{log=\"{l}\"}} {}", s.wal.fsync_seconds_total);
        let _ = writeln!(out, "maple_wal_fsync_seconds_count{{log=\"{l}\"}} {}", h.len());
    }
    render_partitions(out, storage);
}

/// One partition's numbers at scrape time.
struct PartSnapshot {
    partition: u32,
    ready: bool,
    term: u64,
    applied: Option<u64>,
    stored: Option<u64>,
    tombstones_compacted: u64,
    bindings_expired: u64,
}

fn render_partitions(out: &mut String, storage: &NodeStorage) {
    let parts: Vec<PartSnapshot> = storage
        .groups
        .iter()
        .enumerate()
        .map(|(p, g)| {
            let st = storage.store.partition_stats(p as u32);
            PartSnapshot {
                partition: p as u32,
                ready: g.is_ready(),
                term: g.term.load(Ordering::Relaxed),
                applied: g.applied_index(),
                stored: st.as_ref().and_then(|s| s.applied.map(|a| a.index)),
                tombstones_compacted: st.as_ref().map_or(0, |s| s.tombstones_compacted),
                bindings_expired: g.bindings_expired.load(Ordering::Relaxed),
            }
        })
        .collect();
    let per_part = |out: &mut String, name: &str, kind: &str, help: &str, get: &dyn Fn(&PartSnapshot) -> Option<f64>| {
        family(out, name, kind, help, "partition", &parts, |s| get(s).map(|v| (s.partition.to_string(), v)));
    };
    per_part(out, "partition_ready", "gauge", "1 when the partition's group leads here and applied its first entry of the term", &|s| {
        Some(s.ready as u8 as f64)
    });
    per_part(out, "raft_term", "gauge", "Current Raft term of the partition's group", &|s| Some(s.term as f64));
    per_part(out, "raft_applied_index", "gauge", "Last log index the partition's state machine applied", &|s| s.applied.map(|a| a as f64));
    per_part(out, "state_apply_lag", "gauge", "Entries applied in memory and not yet written to the state store", &|s| {
        Some(s.applied.map_or(0, |a| a.saturating_sub(s.stored.unwrap_or(0))) as f64)
    });
    per_part(
        out,
        "state_tombstones_compacted",
        "counter",
        "Delete markers dropped from the state store once a durable checkpoint covered them",
        &|s| Some(s.tombstones_compacted as f64),
    );
    per_part(
        out,
        "state_rows_expired",
        "counter",
        "Idempotency bindings forgotten by expiry records (expired, or beyond the bound)",
        &|s| Some(s.bindings_expired as f64),
    );
}

/// The cluster: this node's id, per partition the leader it knows and its
/// replica's log / commit indexes, per replica the lag the leader sees,
/// and the forwards to and from other nodes.
fn render_cluster(out: &mut String, c: &NodeCluster) {
    let me = c.me;
    let _ = writeln!(out, "# HELP maple_cluster_node_id This node's id (--node-id)\n# TYPE maple_cluster_node_id gauge");
    let _ = writeln!(out, "maple_cluster_node_id {me}");
    let _ = writeln!(out, "# HELP maple_cluster_nodes Nodes in the cluster\n# TYPE maple_cluster_nodes gauge");
    let _ = writeln!(out, "maple_cluster_nodes {}", c.view.placement.nodes().len());
    let v = &c.view;
    let hosted: Vec<(u32, &std::sync::Arc<replication::GroupStats>)> =
        v.stats.iter().enumerate().map(|(p, s)| (p as u32, s)).filter(|(p, _)| v.hosts(*p)).collect();
    family(
        out,
        "raft_leader_node",
        "gauge",
        "The partition's leader as this node knows it (0: none known)",
        "partition",
        &hosted,
        |(p, _)| Some((p.to_string(), v.map_leader(*p).unwrap_or(0) as f64)),
    );
    family(
        out,
        "raft_committed_index",
        "gauge",
        "Last log index known committed in the partition's group",
        "partition",
        &hosted,
        |(p, s)| s.committed.load(Ordering::Relaxed).checked_sub(1).map(|c| (p.to_string(), c as f64)),
    );
    family(
        out,
        "raft_last_log_index",
        "gauge",
        "Last log index of this node's replica of the partition",
        "partition",
        &hosted,
        |(p, s)| s.last_log.load(Ordering::Relaxed).checked_sub(1).map(|c| (p.to_string(), c as f64)),
    );
    let _ = writeln!(
        out,
        "# HELP maple_raft_replica_lag Entries committed that a replica is not known to hold (reported by the partition's leader)\n\
         # TYPE maple_raft_replica_lag gauge"
    );
    for (p, s) in &hosted {
        let Some(committed) = s.committed.load(Ordering::Relaxed).checked_sub(1) else { continue };
        for (n, m) in s.matched.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let lag = m.map_or(committed + 1, |m| committed.saturating_sub(m));
            let _ = writeln!(out, "maple_raft_replica_lag{{partition=\"{p}\",replica=\"{n}\"}} {lag}");
        }
    }
    let results: Vec<(&str, u64)> =
        crate::cluster::FORWARD_RESULTS.iter().zip(&c.forwards).map(|(r, n)| (*r, n.load(Ordering::Relaxed))).collect();
    family(
        out,
        "forwards",
        "counter",
        "Requests forwarded to a partition's leader on another node, by result",
        "result",
        &results,
        |(r, n)| Some((r.to_string(), *n as f64)),
    );
    let _ = writeln!(out, "# HELP maple_forwards_served Requests other nodes forwarded here\n# TYPE maple_forwards_served counter");
    let _ = writeln!(out, "maple_forwards_served_total {}", c.forwards_in.load(Ordering::Relaxed));
}

/// The admission metrics (registered in the node's registry).
#[derive(Clone, Default)]
pub struct AdmissionMetrics {
    shed: Family<Labels, Counter>,
    admitted: Family<Labels, Counter>,
    in_progress: Family<Labels, Gauge>,
    cost: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    estimated_wait: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl AdmissionMetrics {
    pub fn register(registry: &mut Registry) -> AdmissionMetrics {
        let m = AdmissionMetrics::default();
        registry.register(
            "admission_shed",
            "Cold computations refused with 503 OVERLOADED: estimated wait over --max-queue-ms",
            m.shed.clone(),
        );
        registry.register("admission_admitted", "Cold computations admitted on their owner core", m.admitted.clone());
        registry.register(
            "admission_cold_in_progress",
            "Cold computations in progress on the core (the queue depth)",
            m.in_progress.clone(),
        );
        registry.register("admission_cold_cost_seconds", "Smoothed core time of one cold computation", m.cost.clone());
        registry.register(
            "admission_estimated_wait_seconds",
            "Estimated wait of a cold computation started now (in progress x cost)",
            m.estimated_wait.clone(),
        );
        m
    }

    /// Cold computations shed on `core` so far (for the load-shed summary line).
    pub fn shed_count(&self, core: usize) -> u64 {
        self.shed.get_or_create(&vec![("core", core.to_string())]).get()
    }

    pub fn core(&self, core: usize) -> CoreAdmissionMetrics {
        let l: Labels = vec![("core", core.to_string())];
        CoreAdmissionMetrics {
            shed: self.shed.get_or_create_owned(&l),
            admitted: self.admitted.get_or_create_owned(&l),
            in_progress: self.in_progress.get_or_create_owned(&l),
            cost: self.cost.get_or_create_owned(&l),
            estimated_wait: self.estimated_wait.get_or_create_owned(&l),
        }
    }
}

/// One core's handles.
pub struct CoreAdmissionMetrics {
    shed: Counter,
    admitted: Counter,
    in_progress: Gauge,
    cost: Gauge<f64, std::sync::atomic::AtomicU64>,
    estimated_wait: Gauge<f64, std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct LocalHandles {
    requests: HashMap<(&'static str, u16), Counter>,
    latency: HashMap<&'static str, Histogram>,
    cache: HashMap<(&'static str, &'static str), Counter>,
    upstream: HashMap<(&'static str, &'static str), Counter>,
    cross_core: HashMap<&'static str, Counter>,
    cache_bytes: HashMap<&'static str, Gauge>,
    like_toggles: HashMap<&'static str, Counter>,
    write_behind: HashMap<&'static str, Counter>,
    job_runs: HashMap<u32, Counter>,
}

/// One core's handles. Not `Send`: lives on its core.
pub struct CoreMetrics {
    core: String,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    cache: Family<Labels, Counter>,
    flight_joins: Counter,
    upstream_calls: Family<Labels, Counter>,
    breaker_state: Gauge,
    in_flight: Gauge,
    cross_core: Family<Labels, Counter>,
    cache_bytes: Family<Labels, Gauge>,
    like_toggles: Family<Labels, Counter>,
    write_behind: Family<Labels, Counter>,
    job_runs: Family<Labels, Counter>,
    admission: CoreAdmissionMetrics,
    local: RefCell<LocalHandles>,
}

impl CoreMetrics {
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let mut local = self.local.borrow_mut();
        local
            .requests
            .entry((route, status))
            .or_insert_with(|| self.requests.get_or_create_owned(&vec![("route", route.to_string()), ("status", status.to_string())]))
            .inc();
        local
            .latency
            .entry(route)
            .or_insert_with(|| self.latency.get_or_create_owned(&vec![("core", self.core.clone()), ("route", route.to_string())]))
            .observe(took.as_secs_f64());
    }

    /// `cache`: equipment, expectation, basic, ocid; `result`: hit, miss, stale, read_copy, store.
    pub fn cache(&self, cache: &'static str, result: &'static str) {
        let mut local = self.local.borrow_mut();
        local
            .cache
            .entry((cache, result))
            .or_insert_with(|| {
                self.cache.get_or_create_owned(&vec![
                    ("cache", cache.to_string()),
                    ("result", result.to_string()),
                    ("core", self.core.clone()),
                ])
            })
            .inc();
    }

    pub fn cache_bytes(&self, cache: &'static str, bytes: usize) {
        let mut local = self.local.borrow_mut();
        local
            .cache_bytes
            .entry(cache)
            .or_insert_with(|| self.cache_bytes.get_or_create_owned(&vec![("cache", cache.to_string()), ("core", self.core.clone())]))
            .set(bytes as i64);
    }

    /// `result`: ok, invalid, busy, unavailable (counted on the owner core).
    pub fn like_toggle(&self, result: &'static str) {
        let mut local = self.local.borrow_mut();
        local
            .like_toggles
            .entry(result)
            .or_insert_with(|| self.like_toggles.get_or_create_owned(&vec![("core", self.core.clone()), ("result", result.to_string())]))
            .inc();
    }

    /// `result`: appended, durable, refused, too_large.
    pub fn write_behind(&self, result: &'static str) {
        let mut local = self.local.borrow_mut();
        local
            .write_behind
            .entry(result)
            .or_insert_with(|| self.write_behind.get_or_create_owned(&vec![("core", self.core.clone()), ("result", result.to_string())]))
            .inc();
    }

    /// A due run of the periodic jobs on `partition` (a partition lives
    /// on one core of a node: no core label).
    pub fn job_run(&self, partition: u32) {
        let mut local = self.local.borrow_mut();
        local
            .job_runs
            .entry(partition)
            .or_insert_with(|| self.job_runs.get_or_create_owned(&vec![("partition", partition.to_string())]))
            .inc();
    }

    pub fn flight_join(&self) {
        self.flight_joins.inc();
    }

    pub fn upstream(&self, endpoint: &'static str, outcome: &'static str) {
        let mut local = self.local.borrow_mut();
        local
            .upstream
            .entry((endpoint, outcome))
            .or_insert_with(|| {
                self.upstream_calls.get_or_create_owned(&vec![("endpoint", endpoint.to_string()), ("outcome", outcome.to_string())])
            })
            .inc();
    }

    pub fn breaker_state(&self, gauge: i64) {
        self.breaker_state.set(gauge);
    }

    pub fn in_flight(&self) -> &Gauge<i64, std::sync::atomic::AtomicI64> {
        &self.in_flight
    }

    /// `result`: sent, reply, full, gone.
    pub fn cross_core(&self, result: &'static str) {
        let mut local = self.local.borrow_mut();
        local
            .cross_core
            .entry(result)
            .or_insert_with(|| self.cross_core.get_or_create_owned(&vec![("core", self.core.clone()), ("result", result.to_string())]))
            .inc();
    }
}

impl engine::owner::Sink for CoreMetrics {
    fn cache(&self, cache: &'static str, result: &'static str) {
        CoreMetrics::cache(self, cache, result)
    }
    fn cache_bytes(&self, cache: &'static str, bytes: usize) {
        CoreMetrics::cache_bytes(self, cache, bytes)
    }
    fn flight_join(&self) {
        CoreMetrics::flight_join(self)
    }
    fn job_run(&self, partition: u32) {
        CoreMetrics::job_run(self, partition)
    }
    fn upstream(&self, endpoint: &'static str, outcome: &'static str) {
        CoreMetrics::upstream(self, endpoint, outcome)
    }
    fn breaker_state(&self, gauge: i64) {
        CoreMetrics::breaker_state(self, gauge)
    }
    fn like_toggle(&self, result: &'static str) {
        CoreMetrics::like_toggle(self, result)
    }
    fn write_behind(&self, result: &'static str) {
        CoreMetrics::write_behind(self, result)
    }
    fn cross_core(&self, result: &'static str) {
        CoreMetrics::cross_core(self, result)
    }
    fn admission_admitted(&self) {
        self.admission.admitted.inc();
    }
    fn admission_shed(&self) {
        self.admission.shed.inc();
    }
    fn admission_state(&self, in_progress: u32, cost_s: f64, wait_s: f64) {
        self.admission.in_progress.set(in_progress as i64);
        self.admission.cost.set(cost_s);
        self.admission.estimated_wait.set(wait_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_with_core_labels() {
        let node = NodeMetrics::new();
        let c0 = node.core(0);
        c0.request("expectation", 200, Duration::from_millis(3));
        c0.request("expectation", 200, Duration::from_millis(1));
        c0.cache("expectation", "hit");
        c0.upstream("equipment", "ok");
        c0.flight_join();
        c0.like_toggle("ok");
        let text = node.render(None, None, None, None);
        assert!(text.contains("maple_likes_toggles_total{core=\"0\",result=\"ok\"} 1"), "{text}");
        assert!(text.contains("maple_http_requests_total{route=\"expectation\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("maple_cache_lookups_total{cache=\"expectation\",result=\"hit\",core=\"0\"} 1"), "{text}");
        assert!(text.contains("maple_singleflight_joins_total{core=\"0\"} 1"), "{text}");
        assert!(text.contains("maple_http_request_duration_seconds_count{core=\"0\",route=\"expectation\"} 2"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        let rss = text.lines().find_map(|l| l.strip_prefix("process_resident_memory_bytes ")).expect("rss metric");
        assert!(rss.parse::<f64>().unwrap() > 1e6, "{rss}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\nprocess_open_fds "), "{text}");
        assert!(text.contains("\nprocess_virtual_memory_bytes "), "{text}");
    }

    #[test]
    fn proc_stat_parses_around_a_command_with_spaces() {
        // pid (comm) state ppid ... : utime=14 stime=15 ... vsize=23 rss=24
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[14 - 3] = "250".into();
        fields[15 - 3] = "50".into();
        fields[23 - 3] = "1000000".into();
        fields[24 - 3] = "10".into();
        let stat = format!("42 (a (weird) name) {}", fields.join(" "));
        let p = parse_stat(&stat, 4096, 100).unwrap();
        assert_eq!((p.resident_bytes, p.virtual_bytes), (40960, 1_000_000));
        assert!((p.cpu_seconds - 3.0).abs() < 1e-9);
        assert_eq!(parse_stat("garbage", 4096, 100), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
    }
}
