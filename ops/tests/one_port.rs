//! Two `maple serve` processes and one port (issue 9), through the real
//! binary:
//! - another data dir on a port a running node holds: the second process
//!   exits 1 with "port N is in use by another process"; the first keeps
//!   answering every new connection (no SO_REUSEPORT split);
//! - the same data dir while the first runs: the second waits for the data
//!   dir lock WITHOUT binding (every new connection is the first's), and
//!   takes over the port and the data once the first exits after SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::http::Conn;
use common::maple::{DataDir, Launch, Maple, EXIT_TIMEOUT, START_TIMEOUT};
use common::{enc, metric};

const SECRET: &str = "one-port-secret";
/// Fresh connections checked while the second process is around.
const PROBES: usize = 40;
/// A connection the kernel queued on a listener nobody accepts from hangs;
/// an answer from a live node on 2 loaded cores comes well within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// `PROBES` fresh connections, one `GET /health/live` each: the number that
/// got no answer within [`ANSWER_WITHIN`] (connection refused, reset, hang).
fn unanswered(addr: SocketAddr) -> usize {
    (0..PROBES)
        .filter(|_| {
            let answered = (|| -> std::io::Result<bool> {
                let mut s = TcpStream::connect_timeout(&addr, ANSWER_WITHIN)?;
                s.set_read_timeout(Some(ANSWER_WITHIN))?;
                s.write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")?;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf)?;
                Ok(buf.starts_with(b"HTTP/1.1 200 "))
            })();
            !matches!(answered, Ok(true))
        })
        .count()
}

fn wait_log(node: &Maple, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while node.log_lines(needle).is_empty() {
        assert!(Instant::now() < deadline, "no {needle:?} in the log after {within:?}:\n{}", node.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bearer(scheme: &str, user: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    format!("{scheme} {}", net::jwt::sign(SECRET.as_bytes(), user, exp))
}

fn like_answer(r: &common::Resp) -> (bool, u64) {
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    (v["liked"].as_bool().unwrap(), v["likeCount"].as_u64().unwrap())
}

#[test]
fn a_second_node_on_a_held_port_exits_and_the_first_keeps_every_connection() {
    let (dir_a, dir_b) = (DataDir::new("one-port-a"), DataDir::new("one-port-b"));
    let mut first = Launch::serve(dir_a.path()).arg("--cores", "2").start();
    let addr = first.addr;
    let mut second = Launch::serve(dir_b.path()).arg("--cores", "2").listen(addr).spawn();
    let status = second.wait_exit(EXIT_TIMEOUT);
    let message = format!("port {} is in use by another process", addr.port());
    assert_eq!(status.code(), Some(1), "the second node must refuse the port:\n{}", second.log());
    assert!(!second.log_lines(&message).is_empty(), "no {message:?} in:\n{}", second.log());
    assert!(second.log_lines("listening on").is_empty(), "{}", second.log());
    // Every new connection is the first node's (its request counter sees
    // each: the probes plus the second scrape itself).
    let before = metric(addr, "maple_server_requests_total{");
    assert_eq!(unanswered(addr), 0, "connections lost while a second node tried the port");
    let after = metric(addr, "maple_server_requests_total{");
    assert_eq!(after - before, PROBES as f64 + 1.0, "every probe answered by the first node");
    first.stop_gracefully();
}

#[test]
fn a_second_node_on_the_same_data_dir_waits_unbound_then_takes_over() {
    let dir = DataDir::new("one-port-same-dir");
    let launch = Launch::serve(dir.path()).arg("--cores", "2").env("MAPLE_JWT_SECRET", SECRET);
    let mut first = launch.start();
    let addr = first.addr;
    // A like on the first node, with the scheme in capitals (case-insensitive).
    let like = format!("/api/v2/characters/{}/like", enc("한포트"));
    let mut conn = Conn::open(addr).unwrap();
    let r = conn.send("POST", &like, &[("Authorization", &bearer("BEARER", "porter"))]).unwrap();
    assert_eq!(like_answer(&r), (true, 1));
    drop(conn);

    let mut second = launch.clone().listen(addr).spawn();
    wait_log(&second, "waiting for the data dir lock", START_TIMEOUT);
    // Waiting, it holds no port: every new connection reaches the first node.
    assert_eq!(unanswered(addr), 0, "connections lost to the waiting second process:\n{}", second.log());
    assert!(second.log_lines("listening on").is_empty(), "bound while waiting:\n{}", second.log());
    assert!(second.try_exit().is_none(), "the second process gave up:\n{}", second.log());
    let holder = std::fs::read_to_string(dir.path().join("lock")).unwrap();
    assert_eq!(holder.trim(), first.pid().to_string(), "the lock file names its holder");

    // The first one goes; the second takes the port and the data.
    first.stop_gracefully();
    second.wait_listening(START_TIMEOUT);
    assert_eq!(second.addr, addr);
    second.wait_ready(START_TIMEOUT);
    assert_eq!(unanswered(addr), 0);
    let mut conn = Conn::open(addr).unwrap();
    let r = conn.send("GET", &format!("{like}/status"), &[("Authorization", &bearer("bearer", "porter"))]).unwrap();
    assert_eq!(like_answer(&r), (true, 1), "the like made on the first node");
    drop(conn);
    second.stop_gracefully();
}
