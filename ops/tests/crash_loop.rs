//! `maple bench crash-loop` end to end, through the real binary: it starts
//! its own 3-node cluster, kills the busiest leader twice under keyed like
//! load, restarts it, and its JSON report says every round recovered and
//! nothing acknowledged was lost or applied twice; its temporary data dir is
//! gone and no node is left running. A run whose nodes cannot start fails
//! (exit 1) and leaves nothing behind either.
//!
//! Here rather than in `bench/tests`: the command spawns `maple serve`, and
//! only the `ops` package's tests get the freshly built `maple`
//! (`CARGO_BIN_EXE_maple`).

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::maple::DataDir;

/// A base port whose HTTP (base..base+3) and peer (base+100..base+103)
/// ports are free now, below the ephemeral range (32768..): a client's
/// local port never lands on a killed node's port.
/// Each call starts elsewhere: the tests of this file run in parallel in
/// one process, and a range free now may be taken by the other test's nodes
/// a moment later.
fn free_base() -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (std::process::id() as u16).wrapping_add(call.wrapping_mul(5_987));
    for k in 0..500u16 {
        let base = 20_000 + (seed.wrapping_add(k.wrapping_mul(211)) % 12_000);
        let ok = (0..3).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
        });
        if ok {
            return base;
        }
    }
    panic!("no free port range");
}

/// `maple bench crash-loop <args>` with none of the developer's `MAPLE_*`
/// settings (bounded by the command's own timeouts).
fn crash_loop(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maple"));
    cmd.args(["bench", "crash-loop"]).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MAPLE_") && key != "MAPLE_NET_DRIVER" {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null()).output().expect("run maple bench crash-loop")
}

fn nothing_listens(base: u16) {
    for port in (0..3).flat_map(|i| [base + i, base + 100 + i]) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "port {port}: a node is still running");
    }
}

#[test]
fn two_kills_under_keyed_like_load_lose_nothing_and_report_the_failover() {
    let out_dir = DataDir::new("crash-loop-out");
    let base = free_base();
    let out =
        crash_loop(&["--rounds", "2", "--loaders", "2", "--base-port", &base.to_string(), "--out", &out_dir.path().to_string_lossy()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.starts_with("OK: 2 of 2 rounds recovered"), "{stdout}");
    assert!(stdout.contains("failover (kill -9 -> a keyed toggle acknowledged again"), "{stdout}");

    let text = std::fs::read_to_string(out_dir.path().join("report.json")).expect("report.json under --out");
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["ok"], true, "{text}");
    assert_eq!((r["rounds_requested"].as_u64(), r["rounds_recovered"].as_u64()), (Some(2), Some(2)), "{text}");
    assert_eq!((r["nodes"].as_u64(), r["partitions"].as_u64(), r["loaders"].as_u64()), (Some(3), Some(16), Some(2)));
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        assert_eq!(round["recovered"], true, "{round}");
        let (failover, leaders) = (round["failover_ms"].as_f64().unwrap(), round["leaders_ms"].as_f64().unwrap());
        assert!(failover > 0.0 && failover < 30_000.0, "{round}");
        assert!(leaders > 0.0 && leaders < 30_000.0, "{round}");
        assert!(round["restart_ready_ms"].as_f64().is_some(), "{round}");
        assert!((1..=3).contains(&round["victim"].as_u64().unwrap()), "{round}");
        assert!(round["victim_led_partitions"].as_u64().unwrap() >= 1, "{round}");
        assert_ne!(round["probe_answered_by"], round["victim"], "a surviving node acknowledged the probe");
    }
    assert_eq!(r["failover"]["count"], 2);
    let f = &r["failover"];
    assert!(f["p50_ms"].as_f64().unwrap() <= f["p99_ms"].as_f64().unwrap() && f["p99_ms"] == f["max_ms"], "{f}");
    // Nothing lost, nothing applied twice, no unexpected answer.
    assert!(r["loader_toggles"].as_u64().unwrap() > 0, "{text}");
    assert_eq!(r["probe_toggles"], 2);
    assert_eq!(r["acknowledged_toggles"].as_u64(), Some(r["loader_toggles"].as_u64().unwrap() + 2));
    assert_eq!(
        (r["wrong_answers"].as_u64(), r["read_mismatches"].as_u64(), r["error_count"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{text}"
    );
    // 2 loaders on one character + the probe's pair in each partition it used.
    let pairs = r["final_pairs_checked"].as_u64().unwrap();
    assert!((3..=4).contains(&pairs), "{text}");
    assert!(r["failures"].as_array().unwrap().is_empty(), "{text}");
    assert!(std::fs::read_to_string(out_dir.path().join("report.txt")).unwrap().starts_with("OK: "));

    // A passing run removes its temporary data dir and stops every node.
    let data = r["data_dir"].as_str().unwrap();
    assert!(!std::path::Path::new(data).exists(), "{data} removed after a pass");
    nothing_listens(base);
}

#[test]
fn nodes_that_cannot_start_fail_the_run_and_leave_nothing_running() {
    let dir = DataDir::new("crash-loop-bad");
    let base = free_base();
    // `/bin/false` exits at once: node 1 "exited before it was ready".
    let out = crash_loop(&[
        "--rounds",
        "1",
        "--base-port",
        &base.to_string(),
        "--maple-bin",
        "/bin/false",
        "--data-dir",
        &dir.path().to_string_lossy(),
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.starts_with("FAILED: node 1 exited"), "{stdout}");
    assert!(stderr.contains("crash-loop failed"), "{stderr}");
    assert!(dir.path().join("node-1.log").exists(), "the logs are kept");
    nothing_listens(base);

    let refused = crash_loop(&["--nodes", "2"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--nodes must be in 3..=9"), "{}", String::from_utf8_lossy(&refused.stderr));
}
