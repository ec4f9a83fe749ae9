//! End to end: the real generator (monoio client, lanes, schedules, report,
//! plot) against a tiny std HTTP/1.1 server started here. Asserts counts and
//! error classification, never speed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bench::http::Target;
use bench::schedule::{fixed_rate_count, Pacing};
use bench::workload::{Workload, WorkloadKind, WorkloadParams};
use bench::{run, RunConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "test-secret";

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    valid_likes: AtomicU64,
}

/// A keep-alive HTTP/1.1 server, one thread per connection. Every
/// `fail_every`-th request (0 = never) gets a 503 + Retry-After: maple's
/// `OVERLOADED` body when `shed` (load shedding), its `STORAGE_UNAVAILABLE`
/// body otherwise (an outage, not a shed). Likes answer chunked and
/// check the bearer token's HS256 signature; reads answer with Content-Length.
fn start_server(fail_every: u64) -> (String, Arc<Counters>) {
    start_server_with(fail_every, true)
}

fn start_server_with(fail_every: u64, shed: bool) -> (String, Arc<Counters>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let c = Arc::clone(&counters);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let c = Arc::clone(&c);
            std::thread::spawn(move || serve_conn(stream, fail_every, shed, &c));
        }
    });
    (format!("http://{addr}"), counters)
}

fn serve_conn(mut s: TcpStream, fail_every: u64, shed: bool, c: &Counters) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4); // requests here carry no body (Content-Length: 0)
        let n = c.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let line = head.lines().next().unwrap_or("");
        let path = line.split(' ').nth(1).unwrap_or("");
        let resp: Vec<u8> = if fail_every > 0 && n.is_multiple_of(fail_every) && shed {
            let body = r#"{"status":503,"code":"OVERLOADED","message":"estimated wait 120 ms (limit 100 ms); retry later"}"#;
            format!("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
        } else if fail_every > 0 && n.is_multiple_of(fail_every) {
            let body =
                r#"{"status":503,"code":"STORAGE_UNAVAILABLE","message":"storage: write-ahead log of core 1 failed; restart needed"}"#;
            format!("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
        } else if path.ends_with("/like") && line.starts_with("POST ") {
            let token = head.lines().find_map(|l| l.strip_prefix("Authorization: Bearer ")).unwrap_or("");
            if token_is_valid(token) {
                c.valid_likes.fetch_add(1, Ordering::Relaxed);
                // Two chunks plus the last chunk, to exercise the decoder.
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                  b\r\n{\"liked\":tr\r\n11\r\nue,\"likeCount\":1}\r\n0\r\n\r\n"
                    .to_vec()
            } else {
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
        } else {
            let gzip = head.contains("Accept-Encoding: gzip");
            let body = vec![b'x'; 3000];
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n",
                if gzip { "Content-Encoding: gzip\r\n" } else { "" },
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        };
        if s.write_all(&resp).is_err() {
            return;
        }
    }
}

fn token_is_valid(token: &str) -> bool {
    let Some((signed, sig)) = token.rsplit_once('.') else { return false };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    mac.verify_slice(&sig).is_ok()
}

fn config(target: &str, kind: WorkloadKind, pacing: Pacing, connections: usize, secret: &str) -> RunConfig {
    let target = Target::parse(target).unwrap();
    let params = WorkloadParams::new(secret, 100, 30, "e2e".into(), connections);
    RunConfig {
        workload: Workload::new(kind, &params, &target.host),
        targets: vec![target],
        pacing,
        threads: 2,
        connections,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(1000),
        timeout: Duration::from_secs(5),
        drain: Duration::from_secs(2),
        seed: 1,
        driver: bench::run::Driver::Epoll,
        resp: bench::resp::RespOptions::default(),
    }
}

#[test]
fn closed_loop_seed_v4_without_errors_writes_all_outputs() {
    let (url, counters) = start_server(0);
    let report = run(&config(&url, WorkloadKind::SeedV4, Pacing::Closed, 4, SECRET)).unwrap();
    assert!(report.responses > 10, "some load went through: {}", report.responses);
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert_eq!(report.ok, report.requests);
    assert_eq!(report.statuses.keys().collect::<Vec<_>>(), ["200"]);
    assert_eq!(report.gzip_responses, report.responses, "Accept-Encoding: gzip was sent");
    assert_eq!(report.routes["v4 expectation"].ok, report.ok);
    // Warm-up requests reached the server but are not in the report.
    assert!(counters.requests.load(Ordering::Relaxed) > report.requests);
    assert!(report.bytes >= report.responses * 3000);
    assert!(report.first_line.starts_with("OK:"), "{}", report.first_line);
    assert!(report.latency_us.count == report.responses && report.latency_us.p50 <= report.latency_us.max);

    let dir = tempfile::tempdir().unwrap();
    bench::cli::save(dir.path(), &report, &report.to_text()).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("latency by percentile"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["meta"]["workload"], "seed-v4");
    assert_eq!(json["responses"], report.responses);
    let text = std::fs::read_to_string(dir.path().join("report.txt")).unwrap();
    assert!(text.starts_with("OK:"));
}

#[test]
fn likes_are_signed_and_chunked_replies_parse() {
    let (url, counters) = start_server(0);
    let report = run(&config(&url, WorkloadKind::Likes, Pacing::Closed, 4, SECRET)).unwrap();
    assert!(report.ok > 10);
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert!(counters.valid_likes.load(Ordering::Relaxed) >= report.ok, "every 2xx was a verified token");

    // With the wrong secret every write is refused, and the report says so first.
    let (url, counters) = start_server(0);
    let report = run(&config(&url, WorkloadKind::Likes, Pacing::Closed, 2, "wrong")).unwrap();
    assert_eq!(counters.valid_likes.load(Ordering::Relaxed), 0);
    assert!(report.requests > 0);
    assert_eq!(report.errors["status_401"], report.requests);
    assert!(report.first_line.starts_with("ERRORS: "), "{}", report.first_line);
}

/// 503 OVERLOADED is load shedding: counted as shed, apart from errors,
/// and the first line says SHED, not OK.
#[test]
fn open_loop_accounts_for_every_due_request_and_counts_sheds() {
    let (url, _) = start_server(4);
    let rate = 300.0;
    let cfg = config(&url, WorkloadKind::SeedV4, Pacing::FixedRate { rate }, 6, SECRET);
    let report = run(&cfg).unwrap();
    let t = Instant::now();
    let due = fixed_rate_count(rate, cfg.connections, t, t + cfg.warmup, t + cfg.warmup + cfg.duration);
    assert_eq!(due, 300);
    // Each due request is accepted, shed or an error: none vanish.
    assert_eq!(report.requests, due);
    assert!(report.shed > 0 && report.shed < report.requests, "{}", report.shed);
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert_eq!(report.statuses["503"], report.shed);
    assert_eq!(report.ok + report.shed, report.requests);
    assert_eq!(report.ok_latency_us.count, report.ok);
    assert_eq!(report.shed_latency_us.count, report.shed, "every shed answer timed on its own");
    assert!(report.first_line.starts_with("SHED: "), "{}", report.first_line);
    let goals = bench::goals::for_run(WorkloadKind::Overload, &report);
    assert!(goals[0].met && goals[1].met, "no other errors, some shed: {goals:?}");
}

/// A 503 that is not OVERLOADED (here a failed log's, with Retry-After) is
/// an error like any other non-2xx/3xx: a run of them is an outage, not
/// "SHED: no other errors".
#[test]
fn storage_unavailable_503_with_retry_after_is_an_error_not_a_shed() {
    let (url, _) = start_server_with(3, false);
    let report = run(&config(&url, WorkloadKind::SeedV4, Pacing::Closed, 2, SECRET)).unwrap();
    assert_eq!(report.shed, 0);
    assert!(report.errors["status_503"] > 0);
    assert_eq!(report.ok + report.errors_total, report.requests);
    assert!(report.first_line.starts_with("ERRORS: "));
    assert!(report.first_line.contains("status_503"));
    let goals = bench::goals::for_run(WorkloadKind::SeedV4, &report);
    assert!(!goals.iter().find(|g| g.goal.contains("errors")).unwrap().met);
}

#[test]
fn mixed_users_send_reads_and_likes() {
    let (url, _) = start_server(0);
    let mut cfg =
        config(&url, WorkloadKind::Mixed, Pacing::ThinkTime { min: Duration::from_millis(10), max: Duration::from_millis(30) }, 8, SECRET);
    cfg.duration = Duration::from_millis(1500);
    let report = run(&cfg).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    let reads = report.routes["equipment"].ok;
    let likes = report.routes["like"].ok;
    assert!(reads > 0 && likes > 0 && reads > likes, "{reads} reads, {likes} likes");
}

#[test]
fn refused_connections_are_errors_not_hangs() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = config(&format!("http://127.0.0.1:{port}"), WorkloadKind::SeedV4, Pacing::Closed, 2, SECRET);
    cfg.duration = Duration::from_millis(400);
    let report = run(&cfg).unwrap();
    assert_eq!(report.responses, 0);
    assert!(report.errors["connect"] > 0);
    assert!(report.first_line.starts_with("ERRORS: "));
}

/// `--targets`: lanes dealt round-robin over several servers (a cluster's
/// nodes), each request carrying its own server's `Host`; the CLI path.
#[test]
fn likes_round_robin_over_several_targets() {
    let servers: Vec<(String, Arc<Counters>)> = (0..3).map(|_| start_server(0)).collect();
    let urls: Vec<&str> = servers.iter().map(|(u, _)| u.as_str()).collect();
    let dir = tempfile::tempdir().unwrap();
    let args = bench::cli::RunArgs {
        targets: urls.iter().map(|u| u.to_string()).collect(),
        connections: Some(6),
        ..run_args(WorkloadKind::Likes, dir.path())
    };
    let report = bench::cli::run_workload(&args).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert_eq!(report.meta.target, urls.join(","));
    for (url, c) in &servers {
        let likes = c.valid_likes.load(Ordering::Relaxed);
        assert!(likes > 0, "{url} got no like");
    }
    let total: u64 = servers.iter().map(|(_, c)| c.valid_likes.load(Ordering::Relaxed)).sum();
    assert!(total >= report.ok, "every ok was a like one of the servers verified");
    // 2 lanes each: the servers' shares are alike (closed loop, same speed).
    let least = servers.iter().map(|(_, c)| c.valid_likes.load(Ordering::Relaxed)).min().unwrap();
    assert!(least * 4 >= total / 3, "lanes were dealt evenly: {least} of {total}");
    assert!(dir.path().join("multi/report.json").is_file());
}

/// The flags of `maple bench run` with short phases for tests.
fn run_args(workload: WorkloadKind, out: &std::path::Path) -> bench::cli::RunArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: bench::cli::RunArgs,
    }
    let mut a =
        Cli::try_parse_from(["x", workload.name(), "--duration", "800ms", "--warmup", "200ms", "--name", "multi", "--jwt-secret", SECRET])
            .unwrap()
            .run;
    a.out = out.to_path_buf();
    a
}
