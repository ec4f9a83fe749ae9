//! Durable append throughput of the WAL versus the machine's raw fdatasync
//! rate, measured in the same run (absolute numbers vary by disk; the
//! ratios are what to compare).
//!
//! `log::Log` (one log shared by many groups): durable appends/s and
//! fsyncs/s with 1 group vs 16 groups in one log — fsyncs/s should not grow
//! with groups — and, for contrast, 16 separate logs of one group each.
//! (The format-1 `Wal` this compared against is gone.)
//!
//! `cargo bench -p storage --bench wal_append [-- SECONDS]`

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use storage::log::{GroupLog, Log, LogOptions};
use storage::Entry;

const PAYLOAD: usize = 128;

/// pwrite `record` bytes at increasing offsets of a pre-written file, each
/// followed by fdatasync: the best a log with one record per sync can do.
fn raw_fdatasync_rate(dir: &std::path::Path, record: usize, secs: f64) -> f64 {
    let path = dir.join("raw.bin");
    let f = OpenOptions::new().create(true).read(true).write(true).truncate(true).open(&path).unwrap();
    let size = 64u64 << 20;
    let zeros = vec![0u8; 1 << 20];
    for i in 0..64 {
        f.write_all_at(&zeros, i << 20).unwrap();
    }
    f.sync_all().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let buf = vec![0xabu8; record];
    let (mut off, mut n) = (0u64, 0u64);
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        f.write_all_at(&buf, off).unwrap();
        f.sync_data().unwrap();
        off = (off + record as u64) % (size - record as u64);
        n += 1;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    std::fs::remove_file(path).unwrap();
    rate
}

struct Run {
    appends_per_s: f64,
    entries_per_fsync: f64,
    fsyncs_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

/// One thread keeps `inflight` single-entry appends outstanding per group,
/// round-robin over `groups` (like a core serving its partitions), and
/// waits for the oldest. `logs` > 1: the groups are spread over that many
/// separate logs (one syncer and one fdatasync stream each).
fn log_run(dir: &std::path::Path, logs: usize, groups: u32, inflight: usize, secs: f64) -> Run {
    let opened: Vec<Log> = (0..logs)
        .map(|l| {
            let d = dir.join(format!("log-{logs}-{groups}-{inflight}-{l}"));
            // 16 MiB segments: the background pre-allocation of the next
            // one (zeros + fsync) settles within the pause below.
            let opts =
                LogOptions { segment_bytes: 16 << 20, max_pending: (inflight * groups as usize).max(16) * 2, ..LogOptions::default() };
            Log::open(&d, opts).unwrap().0
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let gs: Vec<GroupLog> = (0..groups).map(|g| opened[g as usize % logs].group(g).unwrap()).collect();
    let payload = vec![7u8; PAYLOAD];
    let mut next = vec![0u64; gs.len()];
    let mut q = VecDeque::with_capacity(inflight * gs.len());
    for _ in 0..inflight {
        for (k, g) in gs.iter().enumerate() {
            q.push_back((k, g.append(vec![Entry::new(1, next[k], payload.clone())]).unwrap()));
            next[k] += 1;
        }
    }
    let mut acked = 0u64;
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        let (k, f) = q.pop_front().unwrap();
        futures::executor::block_on(f).unwrap();
        acked += 1;
        q.push_back((k, gs[k].append(vec![Entry::new(1, next[k], payload.clone())]).unwrap()));
        next[k] += 1;
    }
    let elapsed = t.elapsed().as_secs_f64();
    for (_, f) in q {
        futures::executor::block_on(f).unwrap();
    }
    let stats: Vec<_> = opened.iter().map(|l| l.stats()).collect();
    let fsyncs: u64 = stats.iter().map(|s| s.fsyncs).sum();
    let rounds: u64 = stats.iter().map(|s| s.sync_rounds).sum();
    let entries: u64 = stats.iter().map(|s| s.appended_entries).sum();
    let mut lat = stats[0].fsync_latency_us.clone();
    for s in &stats[1..] {
        lat.add(&s.fsync_latency_us).unwrap();
    }
    drop(gs);
    drop(opened);
    // Let the next run start on a quiet disk: no writeback of this one's files.
    for l in 0..logs {
        let _ = std::fs::remove_dir_all(dir.join(format!("log-{logs}-{groups}-{inflight}-{l}")));
    }
    // SAFETY: sync(2) takes no arguments and touches no memory of ours.
    unsafe { libc::sync() };
    Run {
        appends_per_s: acked as f64 / elapsed,
        entries_per_fsync: if rounds == 0 { 0.0 } else { entries as f64 / rounds as f64 },
        fsyncs_per_s: fsyncs as f64 / elapsed,
        p50_us: lat.value_at_quantile(0.5),
        p99_us: lat.value_at_quantile(0.99),
    }
}

fn mean(runs: &[Run]) -> Run {
    let n = runs.len() as f64;
    Run {
        appends_per_s: runs.iter().map(|r| r.appends_per_s).sum::<f64>() / n,
        entries_per_fsync: runs.iter().map(|r| r.entries_per_fsync).sum::<f64>() / n,
        fsyncs_per_s: runs.iter().map(|r| r.fsyncs_per_s).sum::<f64>() / n,
        p50_us: runs.iter().map(|r| r.p50_us).sum::<u64>() / runs.len() as u64,
        p99_us: runs.iter().map(|r| r.p99_us).sum::<u64>() / runs.len() as u64,
    }
}

fn v2(dir: &std::path::Path, secs: f64) {
    println!();
    println!("v2 multi-group log: {PAYLOAD}-byte payloads, one driver thread, single-entry appends, {secs} s per run");
    println!(
        "{:>30} {:>13} {:>10} {:>9} {:>9} {:>9}",
        "layout (groups x in flight)", "appends/s", "ent/fsync", "fsyncs/s", "p50 us", "p99 us"
    );
    let show = |name: &str, r: &Run| {
        println!(
            "{:>30} {:>13.0} {:>10.1} {:>9.0} {:>9} {:>9}",
            name, r.appends_per_s, r.entries_per_fsync, r.fsyncs_per_s, r.p50_us, r.p99_us
        )
    };
    // (logs, groups, in flight per group); run three times, interleaved,
    // and average: the disk is shared and noisy.
    let layouts: [(&str, usize, u32, usize); 4] =
        [("1 log: 1 x 16", 1, 1, 16), ("1 log: 16 x 16", 1, 16, 16), ("1 log: 1 x 256", 1, 1, 256), ("16 logs: 16 x 16", 16, 16, 16)];
    let mut results: Vec<Vec<Run>> = (0..layouts.len()).map(|_| Vec::new()).collect();
    for rep in 0..3 {
        for (k, (name, logs, groups, inflight)) in layouts.iter().enumerate() {
            let r = log_run(&dir.join(format!("rep{rep}")), *logs, *groups, *inflight, secs);
            show(name, &r);
            results[k].push(r);
        }
    }
    let m: Vec<Run> = results.iter().map(|r| mean(r)).collect();
    println!("means of the three repetitions:");
    for (k, (name, ..)) in layouts.iter().enumerate() {
        show(name, &m[k]);
    }
    let (one, sixteen, one_256, separate) = (&m[0], &m[1], &m[2], &m[3]);
    println!("16 groups vs 1 group in one log, same load per group (16 in flight each):");
    println!(
        "  durable appends/s x{:.2}, fsyncs/s x{:.2}",
        sixteen.appends_per_s / one.appends_per_s,
        sixteen.fsyncs_per_s / one.fsyncs_per_s
    );
    println!("16 groups vs 1 group in one log, same total in flight (16 x 16 vs 1 x 256):");
    println!(
        "  durable appends/s x{:.2}, fsyncs/s x{:.2}",
        sixteen.appends_per_s / one_256.appends_per_s,
        sixteen.fsyncs_per_s / one_256.fsyncs_per_s
    );
    println!("16 groups in one log vs one log per group (16 logs):");
    println!(
        "  durable appends/s x{:.2}, fsyncs/s x{:.2}",
        sixteen.appends_per_s / separate.appends_per_s,
        sixteen.fsyncs_per_s / separate.fsyncs_per_s
    );
}

fn main() {
    let secs: f64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3.0);
    let dir = std::env::var_os("WAL_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = dir.join(format!("wal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The disk is shared and noisy: the raw rate of the same run, for the ratios.
    println!("raw pwrite+fdatasync ({} B records): {:.0} syncs/s", PAYLOAD + 24, raw_fdatasync_rate(&dir, PAYLOAD + 24, secs));
    v2(&dir, secs);
    let _ = std::fs::remove_dir_all(&dir);
}
