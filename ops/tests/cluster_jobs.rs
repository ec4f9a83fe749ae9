//! The periodic jobs (expectation eviction, idempotency expiry) run once per
//! partition per period across the cluster (issue 11, P1-7): over a window
//! in which leadership did not move, each partition's
//! `maple_partition_job_runs_total` grows on exactly one node — its leader —
//! by about window / period.

use std::net::SocketAddr;
use std::time::Duration;

mod common;
use common::cluster::Cluster;

const PARTITIONS: usize = 16;
const EVERY_MS: u64 = 500;
const WINDOW: Duration = Duration::from_secs(3);

/// Each partition's job runs on the node at `addr` (0 before its first run there).
fn job_runs(addr: SocketAddr) -> Vec<f64> {
    let text = String::from_utf8(common::http::get(addr, "/metrics").body).expect("metrics are UTF-8");
    (0..PARTITIONS).map(|p| common::metric_sum(&text, &format!("maple_partition_job_runs_total{{partition=\"{p}\"}}"))).collect()
}

/// Per partition the leader every node agrees on (None if they do not),
/// and every node's term of it: equal before and after a window means no
/// election or transfer happened in between (each raises the term).
fn leadership(c: &Cluster) -> (Option<Vec<u64>>, Vec<Vec<u64>>) {
    let views: Vec<serde_json::Value> = (1..=3).map(|id| c.status(id)).collect();
    let leaders: Vec<Vec<Option<u64>>> =
        views.iter().map(|v| v["partitions"].as_array().unwrap().iter().map(|p| p["leader"].as_u64()).collect()).collect();
    let terms = views
        .iter()
        .map(|v| v["partitions"].as_array().unwrap().iter().map(|p| p["here"]["term"].as_u64().unwrap_or(0)).collect())
        .collect();
    let agreed = leaders.iter().all(|l| *l == leaders[0]).then(|| leaders[0].iter().copied().collect::<Option<Vec<u64>>>()).flatten();
    (agreed, terms)
}

#[test]
fn periodic_jobs_run_once_per_partition_per_period_across_the_cluster() {
    let c = Cluster::start("cl-jobs", 3, &["--jobs-every-ms", &EVERY_MS.to_string()]);
    // Leadership settles on the preferred replicas (moved every 2 s).
    std::thread::sleep(Duration::from_secs(3));
    c.wait_leaders(Duration::from_secs(60));
    let most = (WINDOW.as_millis() as u64 / EVERY_MS + 2) as f64;
    for attempt in 1..=5 {
        let before = leadership(&c);
        let first: Vec<Vec<f64>> = (1..=3).map(|id| job_runs(c.addr(id))).collect();
        std::thread::sleep(WINDOW);
        let second: Vec<Vec<f64>> = (1..=3).map(|id| job_runs(c.addr(id))).collect();
        let after = leadership(&c);
        let Some(leaders) = before.0.clone().filter(|_| before == after) else {
            eprintln!("attempt {attempt}: leadership moved during the window ({before:?} -> {after:?}); again");
            continue;
        };
        let runs: Vec<f64> = (0..PARTITIONS).map(|p| (0..3).map(|n| second[n][p] - first[n][p]).sum()).collect();
        eprintln!("job runs per partition in {WINDOW:?} (all nodes): {runs:?}");
        for (p, leader) in leaders.iter().enumerate() {
            let grew: Vec<(u64, f64)> =
                (0..3).map(|n| (n as u64 + 1, second[n][p] - first[n][p])).filter(|(_, runs)| *runs > 0.0).collect();
            assert_eq!(grew.len(), 1, "partition {p}: job runs grew on {grew:?}, expected its leader {leader} only");
            let (node, runs) = grew[0];
            assert_eq!(node, *leader, "partition {p}: the jobs ran on node {node}, not on its leader");
            assert!((1.0..=most).contains(&runs), "partition {p}: {runs} runs in {WINDOW:?} at one per {EVERY_MS} ms");
        }
        return;
    }
    panic!("leadership moved in each of 5 windows of {WINDOW:?}");
}
