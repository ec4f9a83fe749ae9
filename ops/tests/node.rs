//! End-to-end tests of `maple serve` (and `maple upstream-sim`): the real
//! binary on a free port, the real simulator behind it, a std-only HTTP
//! client. No timing asserts; sleeps only wait for TTLs to pass.

use std::io::Read;
use std::process::Command;
use std::time::Duration;

mod common;
use common::http::{get, raw, request};
use common::maple::{DataDir, Launch, Maple};
use common::{enc, metric, Resp};

/// A node on a data dir of its own (the write-ahead log locks its
/// directory, so two nodes of one test process must not share one); the
/// process ends before the directory is removed (field order).
struct Node {
    maple: Maple,
    _dir: DataDir,
}

impl std::ops::Deref for Node {
    type Target = Maple;
    fn deref(&self) -> &Maple {
        &self.maple
    }
}

fn serve(extra: &[&str]) -> Node {
    let dir = DataDir::new("node-test");
    let maple = Launch::serve(dir.path()).args(extra).start();
    Node { maple, _dir: dir }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

#[test]
fn every_endpoint_gzip_etag_and_korean_names() {
    let node = serve(&["--cores", "2"]);
    let a = node.addr;

    let r = get(a, "/api/v4/characters/evan/expectation");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache"), Some("MISS"));
    let v = r.json();
    assert_eq!(v["userIgn"], "evan");
    // The Evan fixture's highest preset, as the original computes it (derived/README.md).
    assert_eq!(v["totalExpectedCost"].as_f64().unwrap(), 3_325_625_981_940.0);
    assert_eq!(v["maxPresetNo"], 2);
    let etag = r.header("etag").unwrap().to_owned();

    let again = get(a, "/api/v4/characters/evan/expectation");
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert!(again.body == r.body, "served from the stored bytes");

    let gz = request(a, "GET", "/api/v4/characters/evan/expectation", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gz.body.len() < r.body.len() / 3);
    assert!(gunzip(&gz.body) == r.body, "gzip holds the same JSON");

    let nm = request(a, "GET", "/api/v4/characters/evan/expectation", &[("If-None-Match", &etag)]);
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), Some(etag.as_str()));

    let p = get(a, "/api/v4/characters/evan/expectation/preset/2").json();
    assert_eq!(p["presetNo"], 2);
    assert_eq!(p["totalExpectedCost"].as_f64().unwrap(), 3_325_625_981_940.0);

    let rc = request(a, "POST", "/api/v4/characters/evan/expectation/recalculate", &[]);
    assert_eq!(rc.status, 200);
    assert_eq!(rc.header("x-cache"), Some("MISS"), "recalculate bypasses the cache");
    let fresh = get(a, "/api/v4/characters/evan/expectation?force=true");
    assert_eq!(fresh.header("x-cache"), Some("MISS"));

    let eq = get(a, "/api/v2/characters/mechanic/equipment").json();
    assert_eq!(eq["character_class"], "메카닉");
    assert!(eq["item_equipment_preset_1"].as_array().unwrap().len() > 10);
    let eq_gz = request(a, "GET", "/api/v2/characters/mechanic/equipment", &[("Accept-Encoding", "gzip")]);
    assert_eq!(eq_gz.header("content-encoding"), Some("gzip"));
    assert_eq!(eq_gz.header("x-cache"), Some("HIT"));
    let unzipped: serde_json::Value = serde_json::from_slice(&gunzip(&eq_gz.body)).unwrap();
    assert!(unzipped == eq, "the stored gzip holds the same equipment JSON");

    for name in ["아델", "강은호", "진격캐넌"] {
        let r = get(a, &format!("/api/v4/characters/{}/expectation", enc(name)));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.json()["userIgn"], name);
        assert!(!r.json()["presets"].as_array().unwrap().is_empty());
        let b = get(a, &format!("/api/v1/characters/{}", enc(name)));
        assert_eq!(b.status, 200);
        assert_eq!(b.json()["character_name"], name);
    }
    // Different names get different (deterministic) equipment.
    let x = get(a, &format!("/api/v4/characters/{}/expectation", enc("강은호"))).json();
    let y = get(a, &format!("/api/v4/characters/{}/expectation", enc("진격캐넌"))).json();
    assert_ne!(x["totalExpectedCost"], y["totalExpectedCost"]);

    assert_eq!(get(a, "/health/live").status, 200);
    assert_eq!(get(a, "/health/ready").status, 200);
    let m = get(a, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = String::from_utf8(m.body).unwrap();
    for needle in [
        "maple_http_requests_total{route=\"expectation\",status=\"200\"}",
        "maple_http_request_duration_seconds_bucket",
        "maple_cache_lookups_total",
        "maple_upstream_calls_total{endpoint=\"equipment\",outcome=\"ok\"}",
        "maple_upstream_breaker_state",
        "maple_requests_in_flight",
        "maple_server_requests_total{core=\"1\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn errors_are_json_with_the_right_status() {
    let node = serve(&["--cores", "1", "--max-header-bytes", "4096", "--max-body-bytes", "1024"]);
    let a = node.addr;
    let check = |r: Resp, status: u16| {
        assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&r.body));
        if status != 431 && status != 413 {
            assert_eq!(r.json()["status"], status);
        }
    };
    check(get(a, "/no/such/route"), 404);
    check(request(a, "DELETE", "/api/v4/characters/evan/expectation", &[]), 405);
    check(request(a, "GET", "/api/v4/characters/evan/expectation/recalculate", &[]), 405);
    check(get(a, "/api/v4/characters/%FF%FE/expectation"), 400);
    check(get(a, "/api/v4/characters/%20%20/expectation"), 400);
    check(get(a, &format!("/api/v4/characters/{}/expectation", "a".repeat(200))), 400);
    check(get(a, "/api/v4/characters/evan/expectation/preset/9"), 400);
    check(get(a, "/api/v4/characters/missing-person/expectation"), 404);
    // Limits and malformed requests, answered by the server before any route.
    let big_header = format!("GET /health/live HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "x".repeat(8192));
    assert_eq!(raw(a, big_header.as_bytes()).status, 431);
    let big_body = format!(
        "POST /api/v4/characters/evan/expectation/recalculate HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n{}",
        "x".repeat(4096)
    );
    assert_eq!(raw(a, big_body.as_bytes()).status, 413);
    assert_eq!(raw(a, b"NOT A REQUEST\r\n\r\n").status, 400);
    assert_eq!(raw(a, b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n").status, 400);
    // Still serving after all that.
    assert_eq!(get(a, "/health/live").status, 200);
}

#[test]
fn one_upstream_fetch_for_a_hundred_concurrent_misses() {
    // A separate simulator over HTTP (the net client path); its latency
    // keeps the first fetch in flight while the others arrive.
    let sim = Launch::upstream_sim(&["--latency-ms", "400"]).start();
    let url = format!("http://{}", sim.addr);
    let node = serve(&["--cores", "2", "--upstream-url", &url]);
    let a = node.addr;
    let path = format!("/api/v4/characters/{}/expectation", enc("동시요청"));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || get(a, &path))
        })
        .collect();
    let bodies: Vec<Resp> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(bodies.iter().all(|r| r.status == 200), "{:?}", bodies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(bodies.windows(2).all(|w| w[0].body == w[1].body), "everyone got the same rendering");
    let stats = get(sim.addr, "/sim/stats").json();
    assert_eq!(stats["id"], 1, "one id lookup: {stats}");
    assert_eq!(stats["equipment"], 1, "one equipment fetch: {stats}");
    assert!(metric(a, "maple_singleflight_joins_total") >= 1.0);
    // Other cores now answer from their read copy without asking the owner.
    for _ in 0..10 {
        assert_eq!(get(a, &path).header("x-cache"), Some("HIT"));
    }
    assert_eq!(get(sim.addr, "/sim/stats").json()["total"], 2);
}

#[test]
fn stale_serving_and_circuit_breaker() {
    let node = serve(&["--cores", "1", "--cache-ttl-secs", "1"]);
    let a = node.addr;
    let ok = get(a, "/api/v4/characters/evan/expectation");
    assert_eq!(ok.status, 200);
    assert_eq!(get(a, "/sim/config?failure_rate=1.0").status, 200);
    std::thread::sleep(Duration::from_millis(1200)); // past the 1 s TTL
    let stale = get(a, "/api/v4/characters/evan/expectation");
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("x-cache"), Some("STALE"));
    assert!(stale.header("warning").unwrap().starts_with("110"));
    assert!(stale.body == ok.body, "the stored rendering is served");
    // Uncached names: nothing to serve → 502, until 10 failures in the
    // window open the breaker → 503 without calling upstream.
    let mut statuses = Vec::new();
    for i in 0..14 {
        statuses.push(get(a, &format!("/api/v4/characters/nobody{i}/expectation")).status);
    }
    assert!(statuses.contains(&502), "{statuses:?}");
    assert_eq!(*statuses.last().unwrap(), 503, "{statuses:?}");
    let calls_when_open = get(a, "/sim/stats").json()["total"].as_u64().unwrap();
    let r = get(a, "/api/v4/characters/nobody-more/expectation");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["code"], "UPSTREAM_CIRCUIT_OPEN");
    assert_eq!(get(a, "/sim/stats").json()["total"].as_u64().unwrap(), calls_when_open, "open breaker makes no call");
    assert_eq!(metric(a, "maple_upstream_breaker_state{core=\"0\"}"), 1.0);
    // The cached character is still served (stale) while the breaker is open.
    assert_eq!(get(a, "/api/v4/characters/evan/expectation").header("x-cache"), Some("STALE"));
}

#[test]
fn sigterm_drains_in_flight_and_exits_zero() {
    let mut node = serve(&["--cores", "1", "--sim-latency-ms", "1500", "--drain-secs", "10"]);
    let a = node.addr;
    let slow = std::thread::spawn(move || get(a, "/api/v4/characters/drain-me/expectation"));
    std::thread::sleep(Duration::from_millis(400)); // the request is now waiting on upstream
    node.maple.sigterm();
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "in-flight request finished during the drain");
    assert_eq!(r.header("connection"), Some("close"), "answered during the drain");
    let status = node.maple.wait_exit(common::maple::EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", node.log());
    assert_eq!(node.log_lines("final checkpoint").len(), 1, "{}", node.log());
}

#[test]
fn standalone_simulator_serves_the_nexon_paths() {
    let sim = Launch::upstream_sim(&[]).start();
    let a = sim.addr;
    let id = get(a, &format!("/maplestory/v1/id?character_name={}", enc("아델")));
    assert_eq!(id.status, 200);
    let ocid = id.json()["ocid"].as_str().unwrap().to_owned();
    let basic = get(a, &format!("/maplestory/v1/character/basic?ocid={ocid}")).json();
    assert_eq!(basic["character_name"], "아델");
    let eq = get(a, &format!("/maplestory/v1/character/item-equipment?ocid={ocid}"));
    assert_eq!(eq.status, 200);
    assert!(eq.json()["item_equipment"].is_array());
    assert_eq!(get(a, "/maplestory/v1/id?character_name=missing-x").status, 400);
    assert_eq!(get(a, "/sim/stats").json()["total"], 4);
}

/// Nothing beside the binary: it serves from the fixtures compiled into it;
/// the override flags read a directory and fail naming the missing file.
#[test]
fn the_binary_carries_its_fixtures_and_the_overrides_read_a_dir() {
    let bare = DataDir::new("bare-cwd");
    let data = DataDir::new("bare-data");
    let node = Launch::serve(data.path()).arg("--cores", "1").in_bare_dir(bare.path()).start();
    assert_eq!(node.log_lines("in-process simulator (embedded fixtures)").len(), 1, "{}", node.log());
    let evan = get(node.addr, "/api/v4/characters/evan/expectation");
    assert_eq!(evan.status, 200);
    assert_eq!(evan.json()["presets"].as_array().map(Vec::len), Some(3));
    assert_eq!(get(node.addr, &format!("/api/v1/characters/{}", enc("아델"))).json()["character_class"], "아델");
    let sim = Launch::upstream_sim(&[]).in_bare_dir(bare.path()).start();
    assert_eq!(sim.log_lines("(fixtures embedded").len(), 1, "{}", sim.log());
    assert_eq!(get(sim.addr, "/maplestory/v1/id?character_name=evan").status, 200);

    let nowhere = bare.path().join("no-such-dir");
    let nowhere = nowhere.to_str().unwrap();
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_maple")).args(args).current_dir(bare.path()).output().unwrap();
    let out = run(&["upstream-sim", "--addr", "127.0.0.1:0", "--fixtures-dir", nowhere]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-dir/evan_equip.json"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--resp-listen",
        "off",
        "--data-dir",
        data.path().join("d2").to_str().unwrap(),
        "--sim-data-dir",
        nowhere,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-dir/evan_equip.json"), "{}", String::from_utf8_lossy(&out.stderr));
    // The simulator's old `--data-dir` (fixtures) is gone: it meant the log for `serve`.
    let out = run(&["upstream-sim", "--data-dir", nowhere]);
    assert_eq!(out.status.code(), Some(2), "clap rejects the old flag");
}

#[test]
fn serve_help_documents_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_maple")).args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--listen",
        "--resp-listen",
        "MAPLE_RESP_LISTEN",
        "--cores",
        "--data-dir",
        "--nexon-api-key",
        "--upstream-url",
        "--upstream-timeout-ms",
        "--sim-latency-ms",
        "--sim-failure-rate",
        "--cache-equipment-mb",
        "--cache-expectation-mb",
        "--cache-ttl-secs",
        "--cache-stale-secs",
        "--max-header-bytes",
        "--max-body-bytes",
        "--drain-secs",
        "--jwt-secret",
        "--memory-mb",
        "MAPLE_MEMORY_MB",
        "--breaker-open-secs",
        "--log-format",
        "MAPLE_LOG_FORMAT",
        "MAPLE_NEXON_API_KEY",
    ] {
        assert!(text.contains(flag), "`maple serve --help` lacks {flag}");
    }
}

#[test]
fn toml_config_file_is_read_and_bad_files_fail_fast() {
    let tmp = DataDir::new("cfg-test");
    let dir = tmp.path();
    let good = dir.join("good.toml");
    std::fs::write(&good, "listen = \"127.0.0.1:0\"\ncores = 1\ncache_ttl_secs = 5\n").unwrap();
    // Not Launch::serve: the listen address comes from the file.
    let node = Launch::command(&[
        "serve",
        "--config",
        good.to_str().unwrap(),
        "--resp-listen",
        "127.0.0.1:0",
        "--wal-segment-mb",
        "4",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ])
    .until_ready()
    .start();
    assert_eq!(node.addr.ip().to_string(), "127.0.0.1");
    assert_eq!(node.log_lines("(1 cores), upstream").len(), 1, "cores from the file: {}", node.log());
    assert_eq!(get(node.addr, "/health/ready").status, 200);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "no_such_setting = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(["serve", "--resp-listen", "off", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_setting"));
}

#[test]
fn recalculation_invalidates_every_cores_read_copy() {
    let node = serve(&["--cores", "2"]);
    let a = node.addr;
    let path = "/api/v4/characters/mechanic/expectation";
    // Many connections: SO_REUSEPORT spreads them over both cores, so the
    // non-owner core builds a read copy.
    let first = get(a, path);
    let old_tag = first.header("etag").unwrap().to_owned();
    for _ in 0..20 {
        assert_eq!(get(a, path).header("etag"), Some(old_tag.as_str()));
    }
    assert!(metric(a, "maple_cache_lookups_total{cache=\"expectation\",result=\"read_copy\"") >= 1.0);
    std::thread::sleep(Duration::from_millis(1100)); // calculatedAt has 1 s resolution
    let re = request(a, "POST", "/api/v4/characters/mechanic/expectation/recalculate", &[]);
    let new_tag = re.header("etag").unwrap().to_owned();
    assert_ne!(new_tag, old_tag);
    for _ in 0..20 {
        assert_eq!(get(a, path).header("etag"), Some(new_tag.as_str()), "no core serves the old rendering");
    }
}

#[test]
fn slow_upstream_is_a_504_after_the_timeout() {
    let node = serve(&["--cores", "1", "--sim-latency-ms", "2000", "--upstream-timeout-ms", "200"]);
    let r = get(node.addr, "/api/v4/characters/slowpoke/expectation");
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["code"], "UPSTREAM_TIMEOUT");
    assert!(metric(node.addr, "maple_upstream_calls_total{endpoint=\"id\",outcome=\"timeout\"}") >= 1.0);
}
