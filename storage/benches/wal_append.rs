//! Durable append throughput of the WAL versus the machine's raw fdatasync
//! rate, measured in the same run (absolute numbers vary by disk; the
//! ratios are what to compare).
//!
//! `cargo bench -p storage --bench wal_append [-- SECONDS]`

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use storage::{Entry, Wal, WalOptions, WalSync};

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

/// One thread keeps `inflight` single-entry appends outstanding (like a core
/// serving that many concurrent like toggles).
fn wal_run(dir: &std::path::Path, inflight: usize, fsync: bool, secs: f64) -> Run {
    let d = dir.join(format!("wal-{inflight}-{fsync}"));
    let (wal, _) = Wal::open(
        &d,
        WalOptions { sync: if fsync { WalSync::Fsync } else { WalSync::Off }, max_pending: inflight.max(16) * 2, ..WalOptions::default() },
    )
    .unwrap();
    // Let the background pre-allocation of the next 64 MiB segment finish,
    // so it does not compete with the measured syncs.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let payload = vec![7u8; PAYLOAD];
    let mut q = VecDeque::with_capacity(inflight);
    let mut next = 1u64;
    let mut acked = 0u64;
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        while q.len() < inflight {
            q.push_back(wal.append(vec![Entry::new(1, next, payload.clone())]).unwrap());
            next += 1;
        }
        futures::executor::block_on(q.pop_front().unwrap()).unwrap();
        acked += 1;
    }
    let elapsed = t.elapsed().as_secs_f64();
    for f in q {
        futures::executor::block_on(f).unwrap();
    }
    let st = wal.stats();
    drop(wal);
    let _ = std::fs::remove_dir_all(&d);
    Run {
        appends_per_s: acked as f64 / elapsed,
        entries_per_fsync: st.mean_entries_per_fsync(),
        fsyncs_per_s: st.fsyncs as f64 / elapsed,
        p50_us: st.fsync_latency_us.value_at_quantile(0.5),
        p99_us: st.fsync_latency_us.value_at_quantile(0.99),
    }
}

fn main() {
    let secs: f64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3.0);
    let dir = std::env::var_os("WAL_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = dir.join(format!("wal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("WAL append benchmark: {PAYLOAD}-byte payloads, {secs} s per run, dir {}", dir.display());

    // The disk is shared and noisy: measure the raw rate before and after
    // the WAL runs and compare against their mean.
    let raw_before = raw_fdatasync_rate(&dir, PAYLOAD + 24, secs);
    println!("raw pwrite+fdatasync ({} B records), before: {:>10.0} syncs/s", PAYLOAD + 24, raw_before);
    let mut runs = Vec::new();
    for inflight in [1usize, 16, 128, 1024] {
        runs.push((inflight, wal_run(&dir, inflight, true, secs)));
    }
    let off = wal_run(&dir, 1024, false, secs);
    let raw_after = raw_fdatasync_rate(&dir, PAYLOAD + 24, secs);
    println!("raw pwrite+fdatasync ({} B records), after:  {:>10.0} syncs/s", PAYLOAD + 24, raw_after);
    let raw = (raw_before + raw_after) / 2.0;
    println!(
        "{:>9} {:>6} {:>13} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "inflight", "fsync", "appends/s", "ent/fsync", "fsyncs/s", "p50 us", "p99 us", "x raw"
    );
    let mut durable_best = 0.0f64;
    for (inflight, r) in runs {
        durable_best = durable_best.max(r.appends_per_s);
        println!(
            "{:>9} {:>6} {:>13.0} {:>10.1} {:>9.0} {:>9} {:>9} {:>10.2}",
            inflight,
            "on",
            r.appends_per_s,
            r.entries_per_fsync,
            r.fsyncs_per_s,
            r.p50_us,
            r.p99_us,
            r.appends_per_s / raw
        );
    }
    println!(
        "{:>9} {:>6} {:>13.0} {:>10} {:>9} {:>9} {:>9} {:>10.2}",
        1024,
        "off",
        off.appends_per_s,
        "-",
        "-",
        "-",
        "-",
        off.appends_per_s / raw
    );
    println!("durable (best) / fsync-off: {:.2}", durable_best / off.appends_per_s);
    let _ = std::fs::remove_dir_all(&dir);
}
