//! A minimal HTTP/1.1 client for load generation, on monoio TCP.
//!
//! One [`Conn`] = one keep-alive connection with one request in flight. The
//! request bytes are written from a caller-owned buffer that comes back after
//! the write, and the response is parsed in place in a read buffer owned by
//! the connection, so a request costs no allocation. Bodies are counted and
//! discarded, never stored: the bench needs the status, the size and whether
//! the framing was right, not the content. The one exception: a small 503
//! body is read to tell load shedding (`OVERLOADED`) from other failures
//! ([`is_overload_body`]).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

/// Largest response head (status line + headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest trailer section accepted after a chunked body.
const MAX_TRAILER_BYTES: usize = 8 * 1024;
/// Read buffer size; big enough for a head, bodies stream through it.
const READ_BUF_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 48;
/// Largest 503 body read to classify it (the node's and the server's error
/// bodies are ~100-200 bytes); a bigger one is not a shed.
const MAX_CLASSIFIED_BODY: u64 = 4096;

/// Whether a 503 body says the server shed load on purpose: maple's JSON
/// error with `"code": "OVERLOADED"` (cold-path admission, a full cross-core
/// queue), or the HTTP server's own refusals at its in-flight or connection
/// limit (`{"error": "server overloaded, retry later" | "too many
/// connections", "status": 503}`, which carry no code). Anything else — a
/// failed log (`STORAGE_UNAVAILABLE`), an open upstream breaker, a draining
/// node, a body that is not JSON — is an error, `Retry-After` or not.
pub fn is_overload_body(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return false };
    match (v.get("code").and_then(|c| c.as_str()), v.get("error").and_then(|e| e.as_str())) {
        (Some(code), _) => code == "OVERLOADED",
        (None, Some(error)) => error.starts_with("server overloaded") || error == "too many connections",
        (None, None) => false,
    }
}

/// Where the load goes: a socket address plus the `Host` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target `{0}`: unsupported scheme (http:// for the HTTP workloads, redis:// for the resp-* ones)")]
    Scheme(String),
    #[error("target `{0}`: cannot resolve: {1}")]
    Resolve(String, io::Error),
    #[error("target `{0}`: resolves to no address")]
    NoAddress(String),
}

impl Target {
    /// Parses `http://host:port`, `host:port` or `host` (port 80); a path
    /// after the authority is ignored (workloads choose the paths).
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        let rest = if let Some(r) = s.strip_prefix("http://") {
            r
        } else if s.contains("://") {
            return Err(TargetError::Scheme(s.to_string()));
        } else {
            s
        };
        let authority = rest.split('/').next().unwrap_or("");
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Target::resolve(s, &with_port, authority)
    }

    /// Resolves `host:port` (`given` is the text the user wrote, for errors).
    pub fn resolve(given: &str, with_port: &str, host: &str) -> Result<Target, TargetError> {
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| TargetError::Resolve(given.to_string(), e))?
            .next()
            .ok_or_else(|| TargetError::NoAddress(given.to_string()))?;
        Ok(Target { addr, host: host.to_string() })
    }

    /// Parses a comma-separated list (`--targets`), each as [`Target::parse`].
    pub fn parse_list(s: &str) -> Result<Vec<Target>, TargetError> {
        s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Target::parse).collect()
    }
}

/// What the bench keeps of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseMeta {
    pub status: u16,
    /// Head + body bytes as they came over the wire (chunk framing included).
    pub wire_bytes: u64,
    /// `Content-Encoding: gzip` was present.
    pub gzip: bool,
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// A `Retry-After` header was present.
    pub retry_after: bool,
    /// A 503 whose body says load was shed on purpose ([`is_overload_body`]).
    pub overload: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("i/o: {0}")]
    Io(io::Error),
    #[error("connection closed before the response was complete")]
    Closed,
    #[error("malformed response: {0}")]
    Protocol(&'static str),
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    /// Received bytes; `rbuf[pos..]` is not consumed yet.
    rbuf: Vec<u8>,
    pos: usize,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect_addr(addr).await.map_err(ClientError::Connect)?;
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        Ok(Conn { stream, rbuf: Vec::with_capacity(READ_BUF_BYTES), pos: 0 })
    }

    /// Writes one complete request and reads its response. The request
    /// buffer is handed back for reuse whatever the outcome.
    pub async fn send(&mut self, req: Vec<u8>) -> (Result<ResponseMeta, ClientError>, Vec<u8>) {
        let (res, req) = self.stream.write_all(req).await;
        if let Err(e) = res {
            return (Err(ClientError::Io(e)), req);
        }
        (self.read_response().await, req)
    }

    /// Reads more bytes after `rbuf.len()`; `Ok(0)` means the peer closed.
    async fn fill(&mut self) -> Result<usize, ClientError> {
        if self.pos == self.rbuf.len() {
            self.rbuf.clear();
            self.pos = 0;
        } else if self.rbuf.capacity() - self.rbuf.len() < 4096 && self.pos > 0 {
            // Compact: move the unconsumed tail to the front.
            self.rbuf.copy_within(self.pos.., 0);
            self.rbuf.truncate(self.rbuf.len() - self.pos);
            self.pos = 0;
        }
        let buf = std::mem::take(&mut self.rbuf);
        let len = buf.len();
        let cap = buf.capacity();
        assert!(len < cap, "read buffer full: a head larger than the buffer must be rejected first");
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.rbuf = slice.into_inner();
        res.map_err(ClientError::Io)
    }

    async fn read_response(&mut self) -> Result<ResponseMeta, ClientError> {
        let mut wire = 0u64;
        let head = loop {
            match parse_head(&self.rbuf[self.pos..])? {
                Some(h) if (100..200).contains(&h.status) && h.status != 101 => {
                    // Interim response (100 Continue ...): skip it.
                    self.pos += h.len;
                    wire += h.len as u64;
                }
                Some(h) => break h,
                None => {
                    if self.rbuf.len() - self.pos >= MAX_HEAD_BYTES {
                        return Err(ClientError::Protocol("response head too large"));
                    }
                    if self.fill().await? == 0 {
                        return Err(ClientError::Closed);
                    }
                }
            }
        };
        self.pos += head.len;
        wire += head.len as u64;
        let bodyless = head.status == 204 || head.status == 304;
        let mut keep_alive = head.keep_alive;
        let mut overload = false;
        if bodyless {
            // No body whatever the headers say.
        } else if let (503, false, Some(n)) = (head.status, head.chunked, head.content_length.filter(|n| *n <= MAX_CLASSIFIED_BODY)) {
            let body = self.read_exact(n as usize).await?;
            overload = is_overload_body(&body);
            wire += n;
        } else if head.chunked {
            wire += self.skip_chunked().await?;
        } else if let Some(n) = head.content_length {
            wire += self.skip_exact(n).await?;
        } else {
            // Delimited by close: read to EOF, the connection is spent.
            keep_alive = false;
            wire += self.skip_to_eof().await?;
        }
        Ok(ResponseMeta { status: head.status, wire_bytes: wire, gzip: head.gzip, keep_alive, retry_after: head.retry_after, overload })
    }

    /// The next `n` body bytes, copied (small bodies only).
    async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let avail = &self.rbuf[self.pos..];
            let take = avail.len().min(n - out.len());
            out.extend_from_slice(&avail[..take]);
            self.pos += take;
            if out.len() < n && self.fill().await? == 0 {
                return Err(ClientError::Closed);
            }
        }
        Ok(out)
    }

    async fn skip_exact(&mut self, mut remaining: u64) -> Result<u64, ClientError> {
        let total = remaining;
        loop {
            let avail = (self.rbuf.len() - self.pos) as u64;
            let take = avail.min(remaining);
            self.pos += take as usize;
            remaining -= take;
            if remaining == 0 {
                return Ok(total);
            }
            if self.fill().await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    async fn skip_chunked(&mut self) -> Result<u64, ClientError> {
        let mut dec = ChunkedDecoder::default();
        let mut wire = 0u64;
        loop {
            let (used, done) = dec.feed(&self.rbuf[self.pos..])?;
            self.pos += used;
            wire += used as u64;
            if done {
                return Ok(wire);
            }
            if self.fill().await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    async fn skip_to_eof(&mut self) -> Result<u64, ClientError> {
        let mut wire = (self.rbuf.len() - self.pos) as u64;
        self.pos = self.rbuf.len();
        loop {
            let n = self.fill().await?;
            if n == 0 {
                return Ok(wire);
            }
            wire += n as u64;
            self.pos = self.rbuf.len();
        }
    }
}

/// The parts of a response head the client acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head, final CRLF included.
    pub len: usize,
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub keep_alive: bool,
    pub gzip: bool,
    pub retry_after: bool,
}

/// Parses a response head; `Ok(None)` = incomplete, read more.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ClientError::Protocol("too many headers")),
        Err(_) => return Err(ClientError::Protocol("bad status line or header")),
    };
    let status = resp.code.ok_or(ClientError::Protocol("no status code"))?;
    // HTTP/1.1 defaults to keep-alive, HTTP/1.0 to close.
    let mut keep_alive = resp.version == Some(1);
    let mut content_length = None;
    let mut chunked = false;
    let mut gzip = false;
    let mut retry_after = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(ClientError::Protocol("bad Content-Length"))?;
            if content_length.is_some_and(|old| old != v) {
                return Err(ClientError::Protocol("conflicting Content-Length"));
            }
            content_length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding; anything else we cannot frame.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            } else {
                return Err(ClientError::Protocol("unsupported Transfer-Encoding"));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-encoding") {
            gzip = h.value.trim_ascii().eq_ignore_ascii_case(b"gzip");
        } else if h.name.eq_ignore_ascii_case("retry-after") {
            retry_after = !h.value.trim_ascii().is_empty();
        }
    }
    Ok(Some(Head { status, len, content_length, chunked, keep_alive, gzip, retry_after }))
}

/// Incremental decoder of a chunked body that only counts: it validates the
/// framing and reports how many bytes it consumed, without copying data.
#[derive(Debug, Default, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size; `ext` once a `;` extension started.
    #[default]
    SizeStart,
    Size {
        value: u64,
        ext: bool,
    },
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

impl ChunkedDecoder {
    /// Consumes from `buf`; returns (bytes used, body complete). Once complete
    /// it uses nothing more, so pipelined bytes after the body stay in place.
    pub fn feed(&mut self, buf: &[u8]) -> Result<(usize, bool), ClientError> {
        use ChunkState::*;
        let bad = |what| Err(ClientError::Protocol(what));
        let mut i = 0;
        while i < buf.len() {
            if self.state == Done {
                break;
            }
            if let Data { remaining } = self.state {
                let take = remaining.min((buf.len() - i) as u64);
                i += take as usize;
                let left = remaining - take;
                self.state = if left == 0 { DataCr } else { Data { remaining: left } };
                continue;
            }
            let b = buf[i];
            i += 1;
            self.state = match self.state {
                SizeStart => match hex(b) {
                    Some(d) => Size { value: d, ext: false },
                    None => return bad("chunk size expected"),
                },
                Size { value, ext: false } => match (b, hex(b)) {
                    (_, Some(d)) => {
                        if value >> 60 != 0 {
                            return bad("chunk size overflow");
                        }
                        Size { value: value * 16 + d, ext: false }
                    }
                    (b';', _) | (b' ', _) | (b'\t', _) => Size { value, ext: true },
                    (b'\r', _) => SizeLf { value },
                    _ => return bad("bad chunk size"),
                },
                Size { value, ext: true } => match b {
                    b'\r' => SizeLf { value },
                    b'\n' => return bad("bare LF in chunk size line"),
                    _ => Size { value, ext: true },
                },
                SizeLf { value } => match b {
                    b'\n' if value == 0 => TrailerLineStart,
                    b'\n' => Data { remaining: value },
                    _ => return bad("CRLF expected after chunk size"),
                },
                DataCr => match b {
                    b'\r' => DataLf,
                    _ => return bad("CRLF expected after chunk data"),
                },
                DataLf => match b {
                    b'\n' => SizeStart,
                    _ => return bad("CRLF expected after chunk data"),
                },
                TrailerLineStart => match b {
                    b'\r' => FinalLf,
                    _ => self.trailer(TrailerLine)?,
                },
                TrailerLine => match b {
                    b'\r' => TrailerLf,
                    _ => self.trailer(TrailerLine)?,
                },
                TrailerLf => match b {
                    b'\n' => TrailerLineStart,
                    _ => return bad("CRLF expected in trailer"),
                },
                FinalLf => match b {
                    b'\n' => Done,
                    _ => return bad("CRLF expected at end of chunked body"),
                },
                Data { .. } | Done => unreachable!("handled above"),
            };
        }
        Ok((i, self.state == Done))
    }

    fn trailer(&mut self, next: ChunkState) -> Result<ChunkState, ClientError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ClientError::Protocol("trailer too large"));
        }
        Ok(next)
    }
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some((b - b'0') as u64),
        b'a'..=b'f' => Some((b - b'a' + 10) as u64),
        b'A'..=b'F' => Some((b - b'A' + 10) as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"4\r\nWiki\r\n6;name=v\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";

    #[test]
    fn chunked_whole_buffer_stops_at_end_of_body() {
        let mut d = ChunkedDecoder::default();
        let (used, done) = d.feed(BODY).unwrap();
        assert!(done);
        assert_eq!(&BODY[used..], b"NEXT");
    }

    #[test]
    fn chunked_split_at_every_byte_gives_same_result() {
        let body_len = BODY.len() - 4;
        for split in 0..=body_len {
            let mut d = ChunkedDecoder::default();
            let (a, done_a) = d.feed(&BODY[..split]).unwrap();
            assert_eq!(a, split, "everything before the end is consumed");
            if split == body_len {
                assert!(done_a);
                continue;
            }
            assert!(!done_a, "split {split}");
            let (b, done_b) = d.feed(&BODY[split..]).unwrap();
            assert!(done_b);
            assert_eq!(split + b, body_len);
        }
    }

    #[test]
    fn chunked_one_byte_at_a_time() {
        let mut d = ChunkedDecoder::default();
        let body_len = BODY.len() - 4;
        for (i, byte) in BODY[..body_len].iter().enumerate() {
            let (used, done) = d.feed(std::slice::from_ref(byte)).unwrap();
            assert_eq!(used, 1);
            assert_eq!(done, i == body_len - 1);
        }
    }

    #[test]
    fn chunked_rejects_bad_framing() {
        for bad in [&b"zz\r\n"[..], b"4\r\nWikiXX", b"4\nWiki\r\n", b"ffffffffffffffffff\r\n"] {
            assert!(ChunkedDecoder::default().feed(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn head_fields() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Encoding: gzip\r\n\r\nbody";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!((h.status, h.content_length, h.chunked, h.keep_alive, h.gzip), (200, Some(12), false, true, true));
        assert_eq!(h.len, raw.len() - b"body".len());
        let h = parse_head(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.status, h.chunked, h.keep_alive, h.retry_after), (503, true, false, false));
        let h = parse_head(b"HTTP/1.1 503 Busy\r\nretry-after: 1\r\nContent-Length: 0\r\n\r\n").unwrap().unwrap();
        assert!(h.retry_after);
        assert!(!h.gzip);
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").is_err());
    }

    /// Only admission / server overload refusals are sheds; a failed log's
    /// 503 (with Retry-After too) is not.
    #[test]
    fn overload_bodies_are_told_from_other_503s() {
        let node_shed = br#"{"status":503,"code":"OVERLOADED","message":"estimated wait 120 ms on its core (limit 100 ms); retry later"}"#;
        assert!(is_overload_body(node_shed));
        assert!(is_overload_body(br#"{"error":"server overloaded, retry later","status":503}"#));
        assert!(is_overload_body(br#"{"error":"too many connections","status":503}"#));
        let storage =
            br#"{"status":503,"code":"STORAGE_UNAVAILABLE","message":"storage: write-ahead log of core 1 failed; restart needed"}"#;
        assert!(!is_overload_body(storage));
        assert!(!is_overload_body(br#"{"status":503,"code":"STORAGE_BUSY","message":"write-ahead log is full"}"#));
        assert!(!is_overload_body(br#"{"status":503,"code":"UPSTREAM_CIRCUIT_OPEN","message":"x"}"#));
        assert!(!is_overload_body(br#"{"status":"DRAINING"}"#));
        assert!(!is_overload_body(b"{}"));
        assert!(!is_overload_body(b"Service Unavailable"));
        assert!(!is_overload_body(br#"{"code":"OVERLOADED""#), "truncated JSON");
    }

    #[test]
    fn target_forms() {
        let t = Target::parse("http://127.0.0.1:8080/ignored").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(Target::parse("127.0.0.1").unwrap().addr.port(), 80);
        assert!(matches!(Target::parse("https://x"), Err(TargetError::Scheme(_))));
    }
}
