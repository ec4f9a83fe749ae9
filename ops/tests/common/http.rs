//! A std-only HTTP/1.1 test client: one-shot requests (`Connection: close`)
//! and a keep-alive connection. Every read is bounded by [`READ_TIMEOUT`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Resp;

/// Generous: a cold expectation on a loaded 2-core CI machine.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect, refusing the loopback self-connect: a client whose ephemeral
/// port happens to equal a stopped server's port connects to itself (TCP
/// simultaneous open) and would read back its own request.
pub fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    if s.local_addr()? == s.peer_addr()? {
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "self-connect to a closed port"));
    }
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(READ_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// The bytes of one request head (plus an empty body for POST).
pub fn encode(method: &str, path: &str, headers: &[(&str, &str)], close: bool) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    if close {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Sends raw bytes, reads one response to the end of the connection.
pub fn try_raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Resp> {
    let mut s = connect(addr)?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    // A reset after the whole answer (we did not read everything the server
    // wanted to discard) still leaves a complete response in `buf`.
    let read = s.read_to_end(&mut buf);
    match parse(&buf) {
        Some(r) => Ok(r),
        None => Err(read.err().unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no complete response"))),
    }
}

/// Like [`try_raw`], panicking on any I/O error.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Resp {
    try_raw(addr, request).unwrap_or_else(|e| panic!("request to {addr}: {e}"))
}

pub fn try_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    try_raw(addr, encode(method, path, headers, true).as_bytes())
}

/// One request on its own connection; panics on I/O errors.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    raw(addr, encode(method, path, headers, true).as_bytes())
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[])
}

/// A whole response in `buf` (head, and the body up to Content-Length), or None.
pub fn parse(buf: &[u8]) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some((_, v)) = headers.iter().find(|(k, _)| k == "content-length") {
        let len: usize = v.parse().ok()?;
        if body.len() < len {
            return None;
        }
        body.truncate(len);
    }
    Some(Resp { status, headers, body })
}

/// One keep-alive connection: requests one after another, each answer read
/// by its Content-Length. Any error leaves the connection unusable (drop it).
pub struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        Ok(Conn { stream: BufReader::new(connect(addr)?) })
    }

    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
        self.stream.get_mut().write_all(encode(method, path, headers, false).as_bytes())?;
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before an answer"));
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed in the head"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len = match headers.iter().find(|(k, _)| k == "content-length") {
            None => 0,
            Some((_, v)) => v.parse().map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad content-length"))?,
        };
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        Ok(Resp { status, headers, body })
    }
}
