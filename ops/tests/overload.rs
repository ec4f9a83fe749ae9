//! Cold-path admission control end to end: the real `maple serve` with a
//! slow in-process simulator and a tiny `--max-queue-ms`. A burst of
//! distinct cold names gets some 503 OVERLOADED (with Retry-After) and the
//! rest 200; cache hits and likes are still answered during the overload;
//! once the admitted work is done a shed name is served. No timing asserts:
//! the simulator's latency only keeps the admitted computations in progress.

use std::process::Command;
use std::time::Duration;

mod common;
use common::http::{get, request};
use common::maple::{DataDir, Launch};
use common::{enc, metric, Resp};

/// Each cold computation makes two upstream calls (id, equipment), so it
/// stays in progress for at least 2 s: far longer than the burst takes.
const SIM_LATENCY_MS: &str = "1000";
const BURST: usize = 16;

fn expectation(name: &str) -> String {
    format!("/api/v4/characters/{}/expectation", enc(name))
}

fn token(user: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(["token", "--user", user])
        .env_remove("MAPLE_JWT_SECRET")
        .output()
        .expect("maple token");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn assert_shed(r: &Resp) {
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"), "a short estimated wait → retry after 1 s");
    let body = r.json();
    assert_eq!(body["code"], "OVERLOADED", "{body}");
    assert_eq!(body["status"], 503, "{body}");
    assert!(body["message"].as_str().unwrap().contains("limit 1 ms"), "{body}");
}

#[test]
fn a_cold_burst_is_partly_shed_while_hits_and_likes_are_served() {
    let dir = DataDir::new("overload");
    let node = Launch::serve(dir.path()).args(&["--cores", "1", "--sim-latency-ms", SIM_LATENCY_MS, "--max-queue-ms", "1"]).start();
    let a = node.addr;
    let warm = get(a, &expectation("warm-before"));
    assert_eq!(warm.status, 200);
    assert_eq!(metric(a, "maple_admission_admitted_total"), 1.0);
    assert_eq!(metric(a, "maple_admission_cold_in_progress"), 0.0, "the warm-up is done");

    let burst: Vec<_> = (0..BURST)
        .map(|i| {
            let path = expectation(&format!("burst{i}"));
            std::thread::spawn(move || (path.clone(), get(a, &path)))
        })
        .collect();
    // While the admitted part of the burst waits on the simulator: a cache
    // hit is answered, a like is answered, and a new cold name is shed.
    std::thread::sleep(Duration::from_millis(300));
    let hit = get(a, &expectation("warm-before"));
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.body, warm.body);
    let auth = format!("Bearer {}", token("overload-user"));
    let like = request(a, "POST", &format!("/api/v2/characters/{}/like", enc("burst0")), &[("authorization", &auth)]);
    assert_eq!(like.status, 200, "likes are not subject to cold admission: {:?}", like.json());
    assert!(metric(a, "maple_admission_cold_in_progress") >= 1.0, "the overload is still on");
    let late = get(a, &expectation("late-name"));
    assert_shed(&late);

    let results: Vec<(String, Resp)> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    let ok: Vec<&(String, Resp)> = results.iter().filter(|(_, r)| r.status == 200).collect();
    let shed: Vec<&(String, Resp)> = results.iter().filter(|(_, r)| r.status == 503).collect();
    let statuses: Vec<u16> = results.iter().map(|(_, r)| r.status).collect();
    assert_eq!(ok.len() + shed.len(), BURST, "only 200 or 503: {statuses:?}");
    assert!(!ok.is_empty(), "an idle core admits the first: {statuses:?}");
    assert!(!shed.is_empty(), "a 1 ms queue cannot take the whole burst: {statuses:?}");
    for (_, r) in &ok {
        assert_eq!(r.header("x-cache"), Some("MISS"));
    }
    for (_, r) in &shed {
        assert_shed(r);
    }
    // Every refusal is counted, and nothing was queued: the shed ones made
    // no upstream call (2 per admitted computation: id + equipment).
    assert_eq!(metric(a, "maple_admission_shed_total"), (shed.len() + 1) as f64);
    assert_eq!(metric(a, "maple_admission_admitted_total"), (1 + ok.len()) as f64);
    let sim = get(a, "/sim/stats").json();
    assert_eq!(sim["equipment"].as_u64().unwrap(), (1 + ok.len()) as u64, "{sim}");

    // The admitted work is done (every answer is in): the core admits again.
    assert_eq!(metric(a, "maple_admission_cold_in_progress"), 0.0);
    let (name, _) = shed[0];
    let retried = get(a, name);
    assert_eq!(retried.status, 200, "a shed name is served once the core is free");
    assert_eq!(retried.header("x-cache"), Some("MISS"));
    assert!(metric(a, "maple_admission_cold_cost_seconds") > 0.0);
}

#[test]
fn bad_max_queue_values_are_refused_at_start() {
    for bad in ["0", "60001", "x"] {
        let dir = DataDir::new("overload-bad-flag");
        let out = Command::new(env!("CARGO_BIN_EXE_maple"))
            .args(["serve", "--listen", "127.0.0.1:0", "--resp-listen", "off", "--max-queue-ms", bad, "--data-dir"])
            .arg(dir.path())
            .env_remove("MAPLE_NEXON_API_KEY")
            .output()
            .expect("run maple");
        assert!(!out.status.success(), "--max-queue-ms {bad} must be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("max_queue_ms") || err.contains("max-queue-ms"), "{err}");
    }
}
