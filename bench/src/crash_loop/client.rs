//! A blocking HTTP/1.1 client for the crash loop: one keep-alive connection
//! per (caller, node), bodies read whole (the like answers and the cluster
//! map are small JSON), every connect, read and write bounded in time.
//!
//! The load generator's monoio client ([`crate::http`]) discards bodies;
//! the crash loop needs them (`liked`, `likeCount`, leaders) and a handful
//! of requests in flight, so plain threads and std sockets do.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response head and body accepted (the node's answers here are
/// well under a few KiB; `/admin/cluster` of 1024 partitions is ~200 KiB).
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One response.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// A non-empty `Retry-After` header was present.
    pub retry_after: bool,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The `code` of a node's JSON error body, or "-".
    pub fn code(&self) -> String {
        self.json().and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned)).unwrap_or_else(|| "-".into())
    }

    /// The body as text, cut to 200 bytes (for error messages).
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(200).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Refused, unreachable, or not accepted within the connect timeout.
    #[error("connect: {0}")]
    Connect(io::Error),
    /// Reset, closed before a whole answer, a failed write.
    #[error("connection: {0}")]
    Io(io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed answer: {0}")]
    Protocol(String),
}

/// A keep-alive connection to one node, opened on first use and reopened
/// after any error.
pub struct NodeConn {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
}

impl NodeConn {
    pub fn new(addr: SocketAddr, timeout: Duration) -> NodeConn {
        NodeConn { addr, timeout, stream: None }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drop the connection (the next call connects anew).
    pub fn reset(&mut self) {
        self.stream = None;
    }

    /// One request (`POST` carries an empty body). A connection reused from
    /// an earlier call that fails before any answer (the node closed an idle
    /// connection, or was restarted since) is retried once on a fresh one:
    /// callers only send reads and keyed toggles, for which a second send is
    /// harmless. A timeout is never retried here.
    pub fn call(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Result<Answer, CallError> {
        let request = encode(method, path, &self.addr.to_string(), headers);
        if let Some(stream) = self.stream.take() {
            match exchange(stream, &request, self.timeout) {
                Ok((answer, keep)) => {
                    self.stream = keep;
                    return Ok(answer);
                }
                Err(e @ (CallError::Timeout(_) | CallError::Protocol(_))) => return Err(e),
                Err(_) => {} // stale: once more on a new connection
            }
        }
        let stream = connect(self.addr, self.timeout)?;
        let (answer, keep) = exchange(BufReader::new(stream), &request, self.timeout)?;
        self.stream = keep;
        Ok(answer)
    }
}

/// One request on a connection of its own.
pub fn call_once(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<Answer, CallError> {
    NodeConn::new(addr, timeout).call(method, path, headers)
}

/// Connect, refusing a loopback self-connect: a client whose ephemeral port
/// equals a dead node's port connects to itself (TCP simultaneous open).
fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, CallError> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(timeout)).map_err(CallError::Connect)?;
    let io = CallError::Connect;
    if s.local_addr().map_err(io)? == s.peer_addr().map_err(io)? {
        return Err(CallError::Connect(io::Error::new(io::ErrorKind::ConnectionRefused, "self-connect to a closed port")));
    }
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    s.set_nodelay(true).map_err(io)?;
    Ok(s)
}

fn encode(method: &str, path: &str, host: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

fn io_error(e: io::Error, timeout: Duration) -> CallError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => CallError::Timeout(timeout),
        _ => CallError::Io(e),
    }
}

/// Writes the request, reads one answer; hands the connection back when
/// it may carry another request.
fn exchange(
    mut stream: BufReader<TcpStream>,
    request: &[u8],
    timeout: Duration,
) -> Result<(Answer, Option<BufReader<TcpStream>>), CallError> {
    stream.get_mut().write_all(request).map_err(|e| io_error(e, timeout))?;
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = (&mut stream).take((MAX_HEAD_BYTES - before) as u64).read_until(b'\n', &mut head).map_err(|e| io_error(e, timeout))?;
        if n == 0 {
            return Err(if head.is_empty() {
                CallError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before an answer"))
            } else {
                CallError::Protocol("closed inside the head".into())
            });
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        if head.len() >= MAX_HEAD_BYTES {
            return Err(CallError::Protocol("head too large".into()));
        }
    }
    let h = crate::http::parse_head(&head)
        .map_err(|e| CallError::Protocol(e.to_string()))?
        .ok_or_else(|| CallError::Protocol("incomplete head".into()))?;
    if h.chunked {
        return Err(CallError::Protocol("chunked answer (the node sends Content-Length)".into()));
    }
    let (body, keep_alive) = match h.content_length {
        Some(n) if n as usize > MAX_BODY_BYTES => return Err(CallError::Protocol(format!("body of {n} bytes"))),
        Some(n) => {
            let mut body = vec![0; n as usize];
            stream.read_exact(&mut body).map_err(|e| io_error(e, timeout))?;
            (body, h.keep_alive)
        }
        None => {
            let mut body = Vec::new();
            (&mut stream).take(MAX_BODY_BYTES as u64).read_to_end(&mut body).map_err(|e| io_error(e, timeout))?;
            (body, false)
        }
    };
    let answer = Answer { status: h.status, retry_after: h.retry_after, body };
    Ok((answer, keep_alive.then_some(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A keep-alive answer, then a server that closed the idle connection:
    /// the second call reconnects by itself.
    #[test]
    fn reused_connection_closed_by_the_server_is_retried_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                assert!(buf[..n].ends_with(b"\r\n\r\n"));
                let body = br#"{"liked":true,"likeCount":1}"#;
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(body).unwrap();
                // Drop: the keep-alive connection closes while idle.
            }
        });
        let mut c = NodeConn::new(addr, Duration::from_secs(5));
        let a = c.call("POST", "/x", &[("Idempotency-Key", "k")]).unwrap();
        assert_eq!((a.status, a.json().unwrap()["likeCount"].as_u64()), (200, Some(1)));
        std::thread::sleep(Duration::from_millis(50));
        let b = c.call("GET", "/x", &[]).unwrap();
        assert_eq!(b.status, 200);
        server.join().unwrap();
    }

    #[test]
    fn a_503_with_retry_after_and_its_code() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            let body = br#"{"status":503,"code":"PARTITION_UNAVAILABLE","message":"no leader"}"#;
            let head = format!("HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n", body.len());
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(body).unwrap();
        });
        let a = call_once(addr, "GET", "/", &[], Duration::from_secs(5)).unwrap();
        assert_eq!((a.status, a.retry_after, a.code().as_str()), (503, true, "PARTITION_UNAVAILABLE"));
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(matches!(call_once(addr, "GET", "/", &[], Duration::from_secs(1)), Err(CallError::Connect(_))));
    }

    #[test]
    fn a_silent_server_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(800));
            drop(s);
        });
        let r = call_once(addr, "GET", "/", &[], Duration::from_millis(200));
        assert!(matches!(r, Err(CallError::Timeout(_))), "{r:?}");
        let _ = hold.join();
    }
}
