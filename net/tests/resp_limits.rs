//! RESP bounds and malformed input: every limit answers a RESP error (and
//! closes for protocol errors) instead of buffering, panicking or hanging.

mod resp_common;

use net::resp::RespLimits;
use resp_common::{Client, TestServer};
use std::io::Write;
use std::time::{Duration, Instant};

fn protocol_error(input: &[u8], limits: RespLimits, expect: &str) {
    let srv = TestServer::start(1, limits);
    let mut c = srv.client();
    c.send(input);
    assert_eq!(
        c.read_reply(),
        format!("-ERR Protocol error: {expect}"),
        "input {:?}",
        String::from_utf8_lossy(&input[..input.len().min(80)])
    );
    assert!(c.closed(), "closed after a protocol error");
    // The server itself is fine.
    assert_eq!(srv.client().cmd(&["PING"]), "+PONG");
    assert_eq!(srv.stop().total().err_protocol, 1);
}

#[test]
fn huge_bulk_length_is_refused_before_buffering() {
    protocol_error(b"*2\r\n$4\r\nECHO\r\n$2147483648\r\n", RespLimits::default(), "bulk length 2147483648 over the limit 65536");
    protocol_error(b"*2\r\n$4\r\nECHO\r\n$99999999999999999999999\r\n", RespLimits::default(), "invalid bulk length");
}

#[test]
fn negative_lengths() {
    protocol_error(b"*1\r\n$-5\r\n", RespLimits::default(), "invalid bulk length");
    protocol_error(b"*1\r\n$-1\r\n", RespLimits::default(), "invalid bulk length");
    protocol_error(b"*-7\r\n", RespLimits::default(), "invalid multibulk length");
    // `*-1` and `*0` are empty requests: ignored, as in Redis.
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    c.send(b"*-1\r\n*0\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(c.read_reply(), "+PONG");
}

#[test]
fn too_many_arguments() {
    protocol_error(b"*100000\r\n", RespLimits::default(), "too many arguments: 100000 (limit 1024)");
    let limits = RespLimits { max_args: 3, ..RespLimits::default() };
    protocol_error(b"ECHO a b c\r\n", limits, "too many arguments: 4 (limit 3)");
}

#[test]
fn whole_request_is_bounded() {
    let limits = RespLimits { max_request_bytes: 100 * 1024, ..RespLimits::default() };
    let mut input = b"*3\r\n$4\r\nECHO\r\n$60000\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 60000));
    input.extend_from_slice(b"\r\n$60000\r\n");
    protocol_error(&input, limits, "request over 102400 bytes");
}

#[test]
fn deep_resp3_aggregates_from_a_client() {
    // Nested aggregates inside a request: refused at the first level.
    let mut deep = b"*1\r\n".repeat(100_000);
    deep.extend_from_slice(b":1\r\n");
    protocol_error(&deep, RespLimits::default(), "expected '$', got '*'");
    protocol_error(b"*1\r\n%1\r\n+a\r\n+b\r\n", RespLimits::default(), "expected '$', got '%'");
    // RESP3 types at the top level are not requests: read as inline lines
    // (as Redis does), each one an unknown command; nothing nests.
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    let mut input = b"~1\r\n%1\r\n>1\r\n".repeat(100);
    input.extend_from_slice(b"PING\r\n");
    c.send(&input);
    for i in 0..300 {
        let r = c.read_reply();
        assert!(r.starts_with("-ERR unknown command '"), "{i}: {r}");
    }
    assert_eq!(c.read_reply(), "+PONG");
}

#[test]
fn malformed_frames() {
    protocol_error(b"*1\r\n$4\r\nPINGxx", RespLimits::default(), "expected CRLF after bulk data");
    protocol_error(b"*1\r\n:1\r\n", RespLimits::default(), "expected '$', got ':'");
    protocol_error(b"*abc\r\n", RespLimits::default(), "invalid multibulk length");
    protocol_error(b"*1\r\n$4x\r\n", RespLimits::default(), "invalid bulk length");
    protocol_error(b"*1\r\n$4\rPING", RespLimits::default(), "expected CRLF after a length");
    protocol_error(&[b'*'; 40], RespLimits::default(), "too big mbulk count string");
    protocol_error(&vec![b'P'; 70 * 1024], RespLimits::default(), "too big inline request");
    // Commands before the bad frame are answered first.
    let srv = TestServer::start(1, RespLimits::default());
    let mut c = srv.client();
    c.send(b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n*0\r\n");
    assert_eq!(c.read_reply(), "+PONG");
    assert_eq!(c.read_reply(), "+PONG");
    assert_eq!(c.read_reply(), "-ERR Protocol error: expected '$', got '*'");
    assert!(c.closed());
}

#[test]
fn random_garbage_never_takes_the_server_down() {
    let srv = TestServer::start(1, RespLimits::default());
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"*$%~>_#,(=!+-:\r\n0123456789-PINGECHO \"'\\x";
    for _ in 0..200 {
        let mut c = srv.client();
        c.s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let len = (next() % 300) as usize;
        let input: Vec<u8> = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        let _ = c.s.write_all(&input);
        // End of input: the server answers what is complete and closes.
        let _ = c.s.shutdown(std::net::Shutdown::Write);
        // Whatever it answered, reading must not panic the test client either.
        while let Ok(Some(_)) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.try_read_reply())) {}
    }
    assert_eq!(srv.client().cmd(&["PING"]), "+PONG");
}

#[test]
fn a_client_that_never_reads_is_cut_off() {
    let limits = RespLimits { max_reply_buffer_bytes: 64 * 1024, ..RespLimits::default() };
    let srv = TestServer::start(1, limits);
    let addr = srv.addr;
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let cmd = Client::encode(&[b"BIG", b"100000"]);
        let start = Instant::now();
        let mut sent = 0usize;
        // Pipeline forever, never read: the server must cut us off.
        while start.elapsed() < Duration::from_secs(20) {
            match s.write_all(&cmd) {
                Ok(()) => sent += 1,
                Err(_) => return (true, sent),
            }
        }
        (false, sent)
    });
    let (cut, sent) = writer.join().unwrap();
    assert!(cut, "the writer was never cut off (sent {sent} commands)");
    let s = srv.stop().total();
    assert_eq!(s.cut_off_output, 1, "{s:?}");
    // What it got through: bounded by kernel buffers plus our limit, not by what it sent.
    assert!(s.bytes_written < 200 * 1024 * 1024, "{s:?}");
}

#[test]
fn connections_per_core() {
    let limits = RespLimits { max_connections_per_core: 2, ..RespLimits::default() };
    let srv = TestServer::start(1, limits);
    let mut a = srv.client();
    let mut b = srv.client();
    assert_eq!(a.cmd(&["PING"]), "+PONG");
    assert_eq!(b.cmd(&["PING"]), "+PONG");
    let mut c = srv.client();
    assert_eq!(c.read_reply(), "-ERR max number of clients reached");
    assert!(c.closed());
    drop(a);
    // The slot frees once the server sees the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = srv.client();
        d.send(b"PING\r\n");
        if d.read_reply() == "+PONG" {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(srv.stop().total().connections_rejected >= 1);
}

#[test]
fn idle_and_request_timeouts() {
    let limits =
        RespLimits { idle_timeout: Duration::from_millis(300), request_timeout: Duration::from_millis(300), ..RespLimits::default() };
    let srv = TestServer::start(1, limits);
    let mut idle = srv.client();
    assert_eq!(idle.cmd(&["PING"]), "+PONG");
    let mut slow = srv.client();
    slow.send(b"*2\r\n$4\r\nECHO\r\n$10\r\nabc");
    let t = Instant::now();
    assert!(idle.closed());
    assert!(slow.closed());
    assert!(t.elapsed() < Duration::from_secs(5));
    let s = srv.stop().total();
    assert_eq!(s.timeout_idle, 1);
    assert_eq!(s.timeout_request, 1);
}

#[test]
fn core_in_flight_limit_answers_overloaded() {
    let limits = RespLimits { max_in_flight_per_core: 2, ..RespLimits::default() };
    let srv = TestServer::start(1, limits);
    let mut c = srv.client();
    let mut batch = Vec::new();
    for tag in ["a", "b", "c", "d"] {
        batch.extend_from_slice(&Client::encode(&[b"DELAY", b"100", tag.as_bytes()]));
    }
    c.send(&batch);
    assert_eq!(c.read_reply(), "\"a\"");
    assert_eq!(c.read_reply(), "\"b\"");
    assert_eq!(c.read_reply(), "-OVERLOADED too many commands in flight on this core, retry later");
    assert_eq!(c.read_reply(), "-OVERLOADED too many commands in flight on this core, retry later");
    assert_eq!(c.cmd(&["DELAY", "1", "e"]), "\"e\"");
    assert_eq!(srv.stop().total().err_overloaded, 2);
}

#[test]
fn bad_limits_are_refused() {
    let bad = RespLimits { max_request_bytes: 10, ..RespLimits::default() };
    assert!(bad.validate().is_err());
    assert!(RespLimits { idle_timeout: Duration::ZERO, ..RespLimits::default() }.validate().is_err());
    assert!(RespLimits::default().validate().is_ok());
}
