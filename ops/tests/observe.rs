//! What an operator sees of a running node, through the real binary's
//! stderr and HTTP: the log filter and formats, breaker transitions and
//! upstream failures (rate-limited), the load-shed summary, and readiness
//! when the write-ahead log fails (a fail point makes its fdatasync fail
//! with ENOSPC, as on a full disk).

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::http::{get, request};
use common::maple::{DataDir, Launch, Maple};
use common::{enc, metric};

const SECRET: &str = "observe-test-secret";

fn token(user: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_maple")).args(["token", "--user", user, "--secret", SECRET]).output().expect("maple token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn expectation(name: &str) -> String {
    format!("/api/v4/characters/{}/expectation", enc(name))
}

/// Wait until the node's log has a line containing `needle` (bounded).
fn wait_for_line(node: &Maple, needle: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let lines = node.log_lines(needle);
        if !lines.is_empty() {
            return lines;
        }
        assert!(Instant::now() < deadline, "no log line with {needle:?} after {within:?} (log follows)");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rust_log_filters_and_the_default_is_info() {
    let dir = DataDir::new("observe-debug");
    let mut node = Launch::serve(dir.path()).args(&["--cores", "1"]).env("RUST_LOG", "debug").start();
    assert_eq!(get(node.addr, "/health/live").status, 200);
    let debug = node.log_lines(" DEBUG ");
    assert!(!debug.is_empty(), "RUST_LOG=debug prints debug events (log follows)");
    assert!(!node.log_lines(" INFO ").is_empty(), "and info ones");
    node.stop_gracefully();
    assert!(!node.log_lines("SIGTERM received: draining").is_empty(), "the signal is logged");
    assert!(!node.log_lines("drain took").is_empty(), "and the end of the drain");

    let dir = DataDir::new("observe-info");
    let mut node = Launch::serve(dir.path()).args(&["--cores", "1"]).env("RUST_LOG", "").start();
    assert!(node.log_lines(" DEBUG ").is_empty(), "the default filter is info: {}", node.log());
    assert_eq!(node.log_lines("maple serve: listening on").len(), 1);
    node.stop_gracefully();
}

#[test]
fn json_format_is_one_object_per_line() {
    let dir = DataDir::new("observe-json");
    // `--log-format` is global: after the subcommand too.
    let mut node = Launch::serve(dir.path()).args(&["--cores", "1", "--log-format", "json"]).env("RUST_LOG", "").start();
    assert_eq!(get(node.addr, "/health/ready").status, 200);
    node.stop_gracefully();
    let log = node.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 4, "{log}");
    let mut messages = Vec::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(v["level"].is_string() && v["target"].is_string() && v["timestamp"].is_string(), "{line}");
        assert!(v["fields"].is_object(), "{line}");
        messages.push(v["fields"]["message"].as_str().unwrap_or_default().to_owned());
    }
    // The operator lines keep their text in the message.
    for needle in ["listening on 127.0.0.1:", "log 0 recovered", "final checkpoint", "SIGTERM received"] {
        assert!(messages.iter().any(|m| m.contains(needle)), "no message with {needle:?}: {messages:?}");
    }
    let recovered = lines.iter().find(|l| l.contains("log 0 recovered")).unwrap();
    let v: serde_json::Value = serde_json::from_str(recovered).unwrap();
    assert_eq!(v["fields"]["log"], 0, "structured fields travel as fields: {recovered}");
    assert_eq!(v["level"], "INFO");

    // The environment variable selects it too; a failing start ends with one JSON error line.
    let out = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(["serve", "--listen", "127.0.0.1:0", "--resp-listen", "off", "--max-queue-ms", "0", "--data-dir"])
        .arg(dir.path())
        .env("MAPLE_LOG_FORMAT", "json")
        .env_remove("MAPLE_NEXON_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let last: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(last["level"], "ERROR");
    assert!(last["fields"]["error"].as_str().unwrap().contains("max_queue_ms"), "{last}");
}

/// closed → open → half-open → closed, each once, with the core and the
/// reason; ten upstream failures in a row make one failure line, not ten.
#[test]
fn breaker_transitions_and_upstream_failures_are_logged_once() {
    let dir = DataDir::new("observe-breaker");
    let node = Launch::serve(dir.path()).args(&["--cores", "1", "--breaker-open-secs", "1"]).start();
    let a = node.addr;
    assert_eq!(get(a, "/sim/config?failure_rate=1.0").status, 200);
    for i in 0..14 {
        let r = get(a, &expectation(&format!("down{i}")));
        assert!(r.status == 502 || r.status == 503, "{}", r.status);
    }
    let opened = wait_for_line(&node, "closed -> open", Duration::from_secs(5));
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0].contains("on core 0") && opened[0].contains("10 of the last 10 calls failed"), "{opened:?}");
    assert!(opened[0].contains("upstream answered 503"), "the last error is the reason: {opened:?}");
    let failures = node.log_lines("upstream id call failed");
    assert_eq!(failures.len(), 1, "rate-limited to one line per endpoint per 10 s: {failures:?}");

    assert_eq!(get(a, "/sim/config?failure_rate=0").status, 200);
    std::thread::sleep(Duration::from_millis(1200)); // past --breaker-open-secs
                                                     // Each new name makes two upstream calls (id, equipment): three probes.
    for i in 0..2 {
        assert_eq!(get(a, &expectation(&format!("back{i}"))).status, 200);
    }
    assert_eq!(wait_for_line(&node, "open -> half-open", Duration::from_secs(5)).len(), 1);
    let closed = wait_for_line(&node, "half-open -> closed", Duration::from_secs(5));
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(closed[0].contains("3 of 3 probes succeeded"), "{closed:?}");
    assert_eq!(metric(a, "maple_upstream_breaker_state{core=\"0\"}"), 0.0);
    assert_eq!(node.log_lines("closed -> open").len(), 1);
}

/// Admission sheds are summarised: one line for the period with the count
/// (the metric's), not one per refused request.
#[test]
fn load_shed_is_summarised_not_logged_per_request() {
    let dir = DataDir::new("observe-shed");
    let mut node = Launch::serve(dir.path()).args(&["--cores", "1", "--sim-latency-ms", "1000", "--max-queue-ms", "1"]).start();
    let a = node.addr;
    let burst: Vec<_> = (0..16).map(|i| std::thread::spawn(move || get(a, &expectation(&format!("shed{i}"))).status)).collect();
    let statuses: Vec<u16> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    let shed = statuses.iter().filter(|s| **s == 503).count();
    assert!(shed > 0, "a 1 ms queue cannot take the burst: {statuses:?}");
    assert_eq!(metric(a, "maple_admission_shed_total"), shed as f64);
    // The summary comes within its period (10 s); a burst that straddles
    // two periods makes two lines, whose counts add up.
    let summed = |lines: &[String]| -> usize {
        lines
            .iter()
            .map(|l| {
                let n = l.split("load shed: ").nth(1).and_then(|r| r.split(' ').next()).expect("a count");
                n.parse::<usize>().unwrap_or_else(|e| panic!("{e}: {l}"))
            })
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(25);
    while summed(&node.log_lines("load shed:")) < shed {
        assert!(Instant::now() < deadline, "no summary of the {shed} sheds (log follows)");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = node.log_lines("load shed:");
    assert!(lines.len() <= 2, "{lines:?}");
    assert!(lines[0].contains("cold computations answered 503 OVERLOADED (admission)"), "{lines:?}");
    assert_eq!(summed(&lines), shed, "{lines:?}");
    // Nothing more is said while nothing more is shed (stopping flushes an empty period).
    node.stop_gracefully();
    assert_eq!(node.log_lines("load shed:").len(), lines.len(), "{}", node.log());
    assert_eq!(node.log_lines("OVERLOADED").len(), lines.len(), "no per-request lines");
}

/// A failed fdatasync poisons the log: likes answer 503 STORAGE_UNAVAILABLE
/// without a file path, readiness turns DOWN with the reason, liveness
/// stays up, and the log says it once, with the directory.
#[test]
fn a_failed_log_makes_readiness_down_and_hides_paths_from_clients() {
    let dir = DataDir::new("observe-enospc");
    // The first 40 commit fdatasyncs pass (the start of the partitions'
    // Raft groups takes a few of them; how many depends on how the group
    // commit batches them), every later one fails (ENOSPC).
    let mut node = Launch::serve(dir.path())
        .args(&["--cores", "1", "--partitions", "1", "--jwt-secret", SECRET])
        .env("MAPLE_STORAGE_CRASH_AT", "wal-fsync-enospc@40")
        .start();
    let a = node.addr;
    let auth = format!("Bearer {}", token("alice"));
    let like = |name: &str| request(a, "POST", &format!("/api/v2/characters/{}/like", enc(name)), &[("authorization", &auth)]);
    assert_eq!(like("one").status, 200, "before the failure");
    assert_eq!(get(a, "/health/ready").status, 200);
    // One toggle at a time: one fdatasync each, until the failing one.
    let mut acked = 1;
    let first_failure = loop {
        let r = like(&format!("c{acked}"));
        if r.status != 200 {
            break r;
        }
        acked += 1;
        assert!(acked < 60, "the fail point never hit");
    };
    let data_dir = dir.path().to_str().unwrap().to_owned();
    for r in [first_failure, like("five"), like("one")] {
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("1"));
        let body = String::from_utf8_lossy(&r.body).to_string();
        let v = r.json();
        assert_eq!(v["code"], "STORAGE_UNAVAILABLE", "{body}");
        assert_eq!(v["message"], "storage: write-ahead log 0 failed; restart needed", "{body}");
        assert!(!body.contains('/') && !body.contains(&data_dir), "no path in a client's body: {body}");
    }
    let ready = get(a, "/health/ready");
    assert_eq!(ready.status, 503);
    let v = ready.json();
    assert_eq!(v["status"], "DOWN");
    assert_eq!(v["reason"], "storage: write-ahead log 0 failed; restart needed");
    assert_eq!(get(a, "/health/live").status, 200, "alive: an operator can still scrape it");
    let status = request(a, "GET", &format!("/api/v2/characters/{}/like/status", enc("one")), &[("authorization", &auth)]);
    assert_eq!(status.status, 503, "reads of the like book are refused too: {:?}", status.json());
    let poisoned = node.log_lines("write-ahead log poisoned");
    assert_eq!(poisoned.len(), 1, "said once: {poisoned:?}");
    assert!(poisoned[0].contains(&data_dir) && poisoned[0].contains("No space left on device"), "with its context: {poisoned:?}");
    assert!(node.log_lines("like log failed").is_empty(), "not said twice (log follows)");
    node.crash();
}
