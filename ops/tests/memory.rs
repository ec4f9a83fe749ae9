//! The memory budget end to end: the real `maple serve` with `--memory-mb
//! 512`, driven by the bench's own workloads (cold characters, then likes)
//! in this process, stays under 512 MB resident, as its own
//! `process_resident_memory_bytes` says.
//!
//! Without the budget (sled's default 1 GiB page cache per core's store,
//! 64 + 64 + 8 MiB caches per core) the same run grows past it: the cold
//! characters are written behind to the store and sled keeps them all.
//! `MAPLE_MEMORY_TEST_SECS` lengthens the phases (default 45 s of cold
//! characters, 15 s of likes); `MAPLE_MEMORY_TEST_FLAGS` replaces the budget
//! flags (e.g. to measure the unbudgeted node).

use std::time::Duration;

use bench::http::Target;
use bench::schedule::Pacing;
use bench::workload::{Workload, WorkloadKind, WorkloadParams};
use bench::{run, RunConfig};

mod common;
use common::maple::{DataDir, Launch};
use common::metric;

const SECRET: &str = "memory-test-secret";
const BUDGET_MB: f64 = 512.0;

fn drive(addr: std::net::SocketAddr, kind: WorkloadKind, secs: u64, connections: usize, tag: &str) -> bench::Report {
    let target = Target::parse(&format!("http://{addr}")).unwrap();
    let params = WorkloadParams::new(SECRET, 200_000, 2_000, tag.into(), connections);
    let cfg = RunConfig {
        workload: Workload::new(kind, &params, &target.host),
        targets: vec![target],
        pacing: Pacing::Closed,
        threads: 1,
        connections,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(secs),
        timeout: Duration::from_secs(30),
        drain: Duration::from_secs(10),
        seed: 7,
        driver: bench::run::Driver::Epoll,
        resp: bench::resp::RespOptions::default(),
    };
    run(&cfg).unwrap()
}

fn rss_mb(addr: std::net::SocketAddr) -> f64 {
    metric(addr, "process_resident_memory_bytes ") / (1024.0 * 1024.0)
}

#[test]
fn a_node_with_a_512_mb_budget_stays_under_it_under_the_bench_workloads() {
    let secs: u64 = std::env::var("MAPLE_MEMORY_TEST_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45);
    let flags = std::env::var("MAPLE_MEMORY_TEST_FLAGS").unwrap_or_else(|_| "--memory-mb 512".into());
    let dir = DataDir::new("memory");
    let mut args = vec!["--cores", "2", "--jwt-secret", SECRET, "--wal-sync", "off", "--max-queue-ms", "2000"];
    args.extend(flags.split_whitespace());
    let node = Launch::serve(dir.path()).args(&args).start();
    let a = node.addr;
    let idle = rss_mb(a);
    let mut peak = idle;
    let mut phases = Vec::new();
    // Cold characters in slices, reading the RSS between them.
    let slices = secs.div_ceil(15);
    for i in 0..slices {
        let r = drive(a, WorkloadKind::Cold, secs / slices, 8, &format!("mem{i}"));
        assert_eq!(r.errors_total, 0, "{}", r.first_line);
        let now = rss_mb(a);
        peak = peak.max(now);
        phases.push(format!("cold {}: {} ok, rss {now:.0} MB", i + 1, r.ok));
    }
    // The like book is bounded too: past its share of the budget a new like
    // is refused (503 STORAGE_BUSY), and only that.
    let likes = drive(a, WorkloadKind::Likes, (secs / 3).max(5), 16, "memlikes");
    let refused = likes.errors.get("status_503").copied().unwrap_or(0);
    assert_eq!(likes.errors_total, refused, "{}", likes.first_line);
    assert_eq!(
        metric(a, "maple_likes_toggles_total{core=\"0\",result=\"busy\"}")
            + metric(a, "maple_likes_toggles_total{core=\"1\",result=\"busy\"}"),
        refused as f64
    );
    if refused > 0 {
        assert!(!node.log_lines("like storage of partition").is_empty(), "a full like book is logged (log follows)");
    }
    let now = rss_mb(a);
    peak = peak.max(now);
    phases.push(format!("likes: {} ok, {refused} refused (book full), rss {now:.0} MB", likes.ok));
    let store_cache: Vec<String> = node.log_lines("memory budget");
    eprintln!("flags {flags:?}: idle {idle:.0} MB, peak {peak:.0} MB; {}\n{store_cache:?}", phases.join("; "));
    assert!(idle > 1.0, "the metric is there");
    assert!(peak < BUDGET_MB, "resident {peak:.0} MB with {flags:?}: over {BUDGET_MB} MB ({})", phases.join("; "));
}
