//! The server over real sockets: keep-alive, pipelining, every limit, drain.

mod common;

use common::*;
use net::Limits;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let srv = TestServer::start(2, test_limits());
    let mut s = srv.connect();
    for i in 0..20 {
        let r = request(&mut s, format!("GET /echo?i={i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-query"), Some(format!("i={i}").as_str()));
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT") && d.len() == 29));
    }
    let stats = srv.stop();
    assert_eq!(stats.total().requests, 20);
    assert_eq!(stats.total().connections_accepted, 1);
}

#[test]
fn post_body_is_delivered_and_echoed() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let r = request(&mut s, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    assert_eq!(r.header("x-method"), Some("POST"));
}

#[test]
fn chunked_request_body_is_decoded() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let r = request(&mut s, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    // The connection stays usable after a chunked body.
    let r = request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.body, b"hello");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    // 20 requests (> pipeline_depth 8) in one write, a slow one in the middle.
    let mut batch = Vec::new();
    for i in 0..20 {
        if i == 5 {
            batch.extend_from_slice(b"GET /slow?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n");
        } else {
            batch.extend_from_slice(format!("POST /echo?i={i} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nb{i:02}").as_bytes());
        }
    }
    s.write_all(&batch).unwrap();
    let mut pending = Vec::new();
    for i in 0..20 {
        let r = read_response(&mut s, &mut pending).unwrap();
        if i == 5 {
            assert_eq!(r.body, b"slow done");
        } else {
            assert_eq!(r.header("x-query"), Some(format!("i={i}").as_str()));
            assert_eq!(r.body, format!("b{i:02}").as_bytes());
        }
    }
}

#[test]
fn head_too_large_is_431_and_closed() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let big = format!("GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    let r = request(&mut s, big.as_bytes());
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["status"], 431);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(is_closed(&mut s));
}

#[test]
fn too_many_headers_is_431() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let headers: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = request(&mut s, format!("GET /hello HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes());
    assert_eq!(r.status, 431);
    assert!(is_closed(&mut s));
    assert_eq!(srv.stop().total().err_header_too_large, 1);
}

#[test]
fn body_over_limit_is_413_and_closed() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let r = request(&mut s, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "request body too large");
    assert!(is_closed(&mut s));

    // Chunked bodies are bounded the same way.
    let mut s = srv.connect();
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b'z'; 0x400]);
        raw.extend_from_slice(b"\r\n");
    }
    let r = request(&mut s, &raw);
    assert_eq!(r.status, 413);
    assert!(is_closed(&mut s));
}

#[test]
fn malformed_request_is_400_and_closed() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let r = request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\nBad Header Line\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], 400);
    assert!(is_closed(&mut s));

    let mut s = srv.connect();
    let r = request(&mut s, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(r.status, 400);
    assert!(is_closed(&mut s));
    assert_eq!(srv.stop().total().err_malformed, 2);
}

#[test]
fn in_flight_over_limit_is_503_with_retry_after() {
    let limits = Limits { max_in_flight_per_core: 1, ..test_limits() };
    let srv = TestServer::start(1, limits);
    let mut slow = srv.connect();
    slow.write_all(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // Wait until the slow request is inside the service.
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.total().in_flight == 0 {
        assert!(Instant::now() < deadline, "slow request never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut s = srv.connect();
    let r = request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["status"], 503);
    // The slow one still completes, and the rejected connection stays usable.
    let r = read_response(&mut slow, &mut Vec::new()).unwrap();
    assert_eq!(r.body, b"slow done");
    let r = request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn connections_over_limit_get_503_and_close() {
    let limits = Limits { max_connections_per_core: 2, ..test_limits() };
    let srv = TestServer::start(1, limits);
    let mut a = srv.connect();
    let mut b = srv.connect();
    // Make sure both are accepted and counted before the third arrives.
    assert_eq!(request(&mut a, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    assert_eq!(request(&mut b, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    let mut c = srv.connect();
    let r = read_response(&mut c, &mut Vec::new()).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "too many connections");
    assert!(is_closed(&mut c));
    drop(a);
    // A slot frees up once a connection closes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = srv.connect();
        let r = request(&mut d, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slowloris_is_closed_after_header_timeout() {
    let srv = TestServer::start(1, test_limits()); // header_read_timeout = 400 ms
    let mut s = srv.connect();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ").unwrap();
    let start = Instant::now();
    // Keep trickling bytes: progress must not extend the header deadline.
    let mut closed = false;
    while start.elapsed() < Duration::from_secs(5) {
        if s.write_all(b"a").is_err() {
            closed = true;
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if is_closed(&mut s) {
            closed = true;
            break;
        }
    }
    assert!(closed, "slowloris connection was never closed");
    assert_eq!(srv.stop().total().timeout_header, 1);
}

#[test]
fn silent_connection_is_closed_after_header_timeout() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    assert!(is_closed(&mut s), "a connection that never sends must be closed");
}

#[test]
fn idle_keep_alive_is_closed_after_idle_timeout() {
    let limits = Limits { idle_timeout: Duration::from_millis(300), ..test_limits() };
    let srv = TestServer::start(1, limits);
    let mut s = srv.connect();
    assert_eq!(request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    assert!(is_closed(&mut s));
    assert_eq!(srv.stop().total().timeout_idle, 1);
}

#[test]
fn http10_and_connection_close_are_honoured() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let r = request(&mut s, b"GET /hello HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(is_closed(&mut s));
    let mut s = srv.connect();
    let r = request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(is_closed(&mut s));
}

#[test]
fn head_request_has_length_but_no_body() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    s.write_all(b"HEAD /big?n=100 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut all).unwrap();
    let text = String::from_utf8(all).unwrap();
    assert!(text.contains("content-length: 100\r\n"));
    assert!(text.ends_with("\r\n\r\n"), "no body after a HEAD answer: {text:?}");
}

#[test]
fn service_panic_becomes_500() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    let r = request(&mut s, b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["status"], 500);
    let r = request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(srv.stop().total().service_panics, 1);
}

#[test]
fn expect_continue_gets_100_then_the_answer() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n").unwrap();
    let mut pending = Vec::new();
    let r = read_response(&mut s, &mut pending).unwrap();
    assert_eq!(r.status, 100);
    s.write_all(b"data").unwrap();
    let r = read_response(&mut s, &mut pending).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"data"[..]));
}

#[test]
fn drain_finishes_in_flight_and_refuses_new_connections() {
    let srv = TestServer::start_with_drain(2, test_limits(), Duration::from_secs(5));
    let addr = srv.addr;
    let mut idle = srv.connect();
    assert_eq!(request(&mut idle, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    let mut slow = srv.connect();
    slow.write_all(b"GET /slow?ms=800 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.total().in_flight == 0 {
        assert!(Instant::now() < deadline, "slow request never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.shutdown.trigger();
    // Idle keep-alive connection is closed at once by the drain.
    assert!(is_closed(&mut idle));
    // New connections are refused once the listeners are gone.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpStream::connect(addr) {
            Err(_) => break,
            // A connect can still land in a listen backlog until its core
            // closes the listener; it is then reset, never served.
            Ok(c) => drop(c),
        }
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The in-flight request completes, with Connection: close.
    let r = read_response(&mut slow, &mut Vec::new()).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"slow done"[..]));
    assert_eq!(r.header("connection"), Some("close"));
    let stats = srv.stop();
    assert_eq!(stats.total().connections_active, 0);
    assert_eq!(stats.total().in_flight, 0);
}

#[test]
fn drain_budget_bounds_shutdown_time() {
    let srv = TestServer::start_with_drain(1, test_limits(), Duration::from_millis(200));
    let mut slow = srv.connect();
    slow.write_all(b"GET /slow?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.total().in_flight == 0 {
        assert!(Instant::now() < deadline, "slow request never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // run() returns (the join below) although the request would take a minute.
    let _ = srv.stop();
    assert!(is_closed(&mut slow));
}

#[test]
fn requests_spread_over_cores_with_reuseport() {
    let srv = TestServer::start(2, test_limits());
    let mut cores_seen = std::collections::HashSet::new();
    for _ in 0..64 {
        let mut s = srv.connect();
        let r = request(&mut s, b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        cores_seen.insert(r.header("x-core").unwrap().to_string());
        if cores_seen.len() == 2 {
            break;
        }
    }
    assert_eq!(cores_seen.len(), 2, "SO_REUSEPORT should spread connections over both cores");
}

#[test]
fn large_bodies_keep_pipelined_order() {
    let srv = TestServer::start(1, test_limits());
    let mut s = srv.connect();
    s.write_all(
        b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /big?n=200000 HTTP/1.1\r\nHost: t\r\n\r\nGET /big?n=70000 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut pending = Vec::new();
    let sizes: Vec<usize> = (0..4).map(|_| read_response(&mut s, &mut pending).unwrap().body.len()).collect();
    assert_eq!(sizes, vec![5, 200_000, 70_000, 5]);
    assert!(pending.is_empty(), "no stray bytes after the last answer");
}

#[test]
fn many_concurrent_pipelining_clients_get_their_own_answers() {
    let srv = TestServer::start(2, test_limits());
    let addr = srv.addr;
    let clients: Vec<_> = (0..16)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut pending = Vec::new();
                for round in 0..10 {
                    let mut batch = Vec::new();
                    for k in 0..5 {
                        let body = format!("c{c}r{round}k{k}");
                        batch.extend_from_slice(
                            format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
                        );
                    }
                    s.write_all(&batch).unwrap();
                    for k in 0..5 {
                        let r = read_response(&mut s, &mut pending).unwrap();
                        assert_eq!(r.body, format!("c{c}r{round}k{k}").as_bytes());
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // Every connection is accounted for once the clients are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.total().connections_active != 0 {
        assert!(Instant::now() < deadline, "connections_active never returned to 0");
        std::thread::sleep(Duration::from_millis(10));
    }
    let total = srv.stop().total();
    assert_eq!((total.requests, total.connections_accepted), (800, 16));
    assert_eq!(total.in_flight, 0);
}

/// Sends `head`, then `body` one byte every `gap` on another thread (until
/// the body is out or the server closed); returns the connection to read from.
fn trickle(srv: &TestServer, head: &'static [u8], body: &'static [u8], gap: Duration) -> TcpStream {
    let mut s = srv.connect();
    s.write_all(head).unwrap();
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for b in body {
            std::thread::sleep(gap);
            if w.write_all(&[*b]).is_err() {
                return;
            }
        }
    });
    s
}

/// Issue 9: one body byte per 100 ms (far inside the idle timeout of 3 s)
/// used to keep a connection for ever; the whole body has a deadline.
#[test]
fn slow_body_is_408_at_the_body_deadline() {
    let srv = TestServer::start(1, test_limits()); // body_read_timeout = 1 s
    let cases: [(&'static [u8], &'static [u8]); 2] = [
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n", b"0123456789012345678901234567890123456789"),
        (
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"28\r\n0123456789012345678901234567890123456789\r\n0\r\n\r\n",
        ),
    ];
    for (head, body) in cases {
        let started = Instant::now();
        let mut s = trickle(&srv, head, body, Duration::from_millis(100));
        let r = read_response(&mut s, &mut Vec::new()).expect("an answer before the body is complete");
        assert_eq!(r.status, 408, "{:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["error"], "request body not received in time");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(started.elapsed() < Duration::from_millis(2500), "answered after {:?}", started.elapsed());
        assert!(is_closed(&mut s));
    }
    assert_eq!(srv.stop().total().timeout_body, 2);
}

/// The symptom: slow-body clients at the connection limit locked
/// every other client out (503) for as long as they trickled.
#[test]
fn slow_body_clients_cannot_hold_the_connection_limit() {
    let limits = Limits { max_connections_per_core: 3, ..test_limits() };
    let srv = TestServer::start(1, limits);
    let head: &'static [u8] = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n";
    let slow: Vec<TcpStream> = (0..3).map(|_| trickle(&srv, head, &[b'x'; 100], Duration::from_millis(100))).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.total().connections_active < 3 {
        assert!(Instant::now() < deadline, "slow clients never connected");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut s = srv.connect();
    assert_eq!(request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").status, 503, "the limit is full");
    // Well before the trickle would end (10 s), the limit frees up.
    let started = Instant::now();
    loop {
        let mut s = srv.connect();
        if request(&mut s, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n").status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(4), "slow-body clients still hold every connection");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(slow);
}
