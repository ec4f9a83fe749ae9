//! RFC 9112 conformance of the request parser over real sockets (issue 9):
//! body framing that request smuggling relies on, chunked-body syntax,
//! request-target forms and the `Host` rules. Every rejection is a 4xx/5xx
//! JSON answer followed by a close, and comes at once (no timeout wait).

mod common;

use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// Sends `raw` on a fresh connection and expects `status` with a JSON body
/// and a close, within 2 s (well under the idle timeout of 3 s: a parser
/// that waits for more input instead of rejecting fails here).
fn expect_rejected(srv: &TestServer, raw: &[u8], status: u16) {
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let started = Instant::now();
    s.write_all(raw).unwrap();
    let r = read_response(&mut s, &mut Vec::new())
        .unwrap_or_else(|e| panic!("no answer to {:?} after {:?}: {e}", String::from_utf8_lossy(raw), started.elapsed()));
    assert_eq!(r.status, status, "{:?} -> {:?}", String::from_utf8_lossy(raw), String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], status);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(is_closed(&mut s), "connection left open after {status}");
}

fn expect_ok(srv: &TestServer, raw: &[u8]) -> RawResponse {
    let mut s = srv.connect();
    let r = request(&mut s, raw);
    assert_eq!(r.status, 200, "{:?} -> {:?}", String::from_utf8_lossy(raw), String::from_utf8_lossy(&r.body));
    r
}

#[test]
fn content_length_must_be_digits_only() {
    let srv = TestServer::start(1, test_limits());
    for bad in ["+5", "-5", "0x5", "5 5", "5,5", "5.0", "", "99999999999999999999999"] {
        let raw = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {bad}\r\n\r\nhello");
        expect_rejected(&srv, raw.as_bytes(), 400);
    }
    let r = expect_ok(&srv, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 05\r\n\r\nhello");
    assert_eq!(r.body, b"hello");
    // The same length twice is one length (RFC 9110 8.6); two different ones are smuggling.
    let r = expect_ok(&srv, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.body, b"hello");
}

#[test]
fn transfer_encoding_lists_and_repeated_headers_are_one_list() {
    let srv = TestServer::start(1, test_limits());
    let body = "5\r\nhello\r\n0\r\n\r\n";
    // chunked twice, whether in one header or two: 400 (RFC 9112 6.1, 6.3).
    for te in [
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked,chunked",
    ] {
        expect_rejected(&srv, format!("POST /echo HTTP/1.1\r\nHost: t\r\n{te}\r\n\r\n{body}").as_bytes(), 400);
    }
    // chunked not the final coding: the length cannot be determined → 400.
    for te in [
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: chunked, gzip",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
        "Transfer-Encoding: ",
    ] {
        expect_rejected(&srv, format!("POST /echo HTTP/1.1\r\nHost: t\r\n{te}\r\n\r\n{body}").as_bytes(), 400);
    }
    // Framed correctly, but with a coding we do not implement → 501.
    for te in ["Transfer-Encoding: gzip, chunked", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"] {
        expect_rejected(&srv, format!("POST /echo HTTP/1.1\r\nHost: t\r\n{te}\r\n\r\n{body}").as_bytes(), 501);
    }
    // Transfer-Encoding in an HTTP/1.0 request: faulty framing.
    expect_rejected(&srv, format!("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes(), 400);
    // Plain chunked (any case) still works.
    let r = expect_ok(&srv, format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n{body}").as_bytes());
    assert_eq!(r.body, b"hello");
}

#[test]
fn chunk_size_line_syntax_is_strict() {
    let srv = TestServer::start(1, test_limits());
    for body in [
        " 5\r\nhello\r\n0\r\n\r\n",
        "\t5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        "5\rX\nhello\r\n0\r\n\r\n",
    ] {
        expect_rejected(&srv, format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes(), 400);
    }
    // Extensions (with bad whitespace before `;`) are allowed and ignored.
    for body in ["5;name=value\r\nhello\r\n0\r\n\r\n", "5 ;a=\"q s\"\r\nhello\r\n0\r\n\r\n"] {
        let r = expect_ok(&srv, format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes());
        assert_eq!(r.body, b"hello");
    }
}

#[test]
fn malformed_trailers_are_400_and_field_lines_pass() {
    let srv = TestServer::start(1, test_limits());
    for trailer in ["not a field\r\n", ": no name\r\n", "X-T 1\r\n", " X-Folded: 1\r\n", "X T: 1\r\n", "X-T\x01: 1\r\n"] {
        let raw = format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n{trailer}\r\n");
        expect_rejected(&srv, raw.as_bytes(), 400);
    }
    let raw = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\nX-Empty:\r\n\r\n";
    assert_eq!(expect_ok(&srv, raw.as_bytes()).body, b"hello");
}

#[test]
fn lf_only_chunked_body_is_400_at_once() {
    let srv = TestServer::start(1, test_limits());
    // Each of: size line, data end, last-chunk line, trailer end with a bare LF.
    for body in
        ["5\nhello\n0\n\n", "5\r\nhello\n0\r\n\r\n", "5\r\nhello\r\n0\n\n", "5\r\nhello\r\n0\r\n\n", "5\r\nhello\r\n0\r\nX: 1\n\r\n"]
    {
        expect_rejected(&srv, format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes(), 400);
    }
}

#[test]
fn absolute_form_targets_are_served_with_the_targets_host() {
    let srv = TestServer::start(1, test_limits());
    let r = expect_ok(&srv, b"GET http://example.com:8080/echo?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(r.header("x-path"), Some("/echo"));
    assert_eq!(r.header("x-query"), Some("q=1"));
    assert_eq!(r.header("x-host"), Some("example.com:8080"), "RFC 9112 3.2.2: the target's authority replaces Host");
    let r = expect_ok(&srv, b"GET HTTPS://Example.com/echo HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!((r.header("x-path"), r.header("x-query")), (Some("/echo"), Some("")));
    // An empty path is "/" (here: not a route of the test service, but not a 400).
    let mut s = srv.connect();
    assert_eq!(request(&mut s, b"GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n").status, 404);
    // Not http(s), no host, user info, or not a URI at all: 400.
    for target in ["ftp://example.com/echo", "http:///echo", "http://user@example.com/echo", "http:/echo", "example.com/echo"] {
        expect_rejected(&srv, format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes(), 400);
    }
}

#[test]
fn host_header_must_be_present_once_on_http11() {
    let srv = TestServer::start(1, test_limits());
    expect_rejected(&srv, b"GET /hello HTTP/1.1\r\n\r\n", 400);
    expect_rejected(&srv, b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    expect_rejected(&srv, b"GET /hello HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    expect_rejected(&srv, b"GET /hello HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    for bad in ["a b", "a/b", "user@a", "a\"b"] {
        expect_rejected(&srv, format!("GET /hello HTTP/1.1\r\nHost: {bad}\r\n\r\n").as_bytes(), 400);
    }
    // Absolute form: the Host header is still required on HTTP/1.1.
    expect_rejected(&srv, b"GET http://example.com/hello HTTP/1.1\r\n\r\n", 400);
    for good in ["example.com", "example.com:8080", "127.0.0.1:1", "[::1]:8080", ""] {
        let r = expect_ok(&srv, format!("GET /echo HTTP/1.1\r\nHost: {good}\r\n\r\n").as_bytes());
        assert_eq!(r.header("x-host"), Some(good));
    }
    // HTTP/1.0 may omit it.
    let mut s = srv.connect();
    assert_eq!(request(&mut s, b"GET /hello HTTP/1.0\r\n\r\n").status, 200);
    assert_eq!(srv.stop().total().err_malformed, 9);
}
