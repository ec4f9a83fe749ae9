//! HTTP/1.1 client for the upstream (Nexon Open API): one per core (!Send),
//! plain TCP or TLS (rustls + ring, webpki roots), a bounded keep-alive pool,
//! a whole-request timeout, Content-Length / chunked / until-close bodies,
//! every buffer bounded. Bodies are returned as received (a gzip body stays
//! gzip; the caller reads `Content-Encoding`).

mod stream;
mod url;

use crate::chunked::{ChunkedDecoder, ChunkedError};
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stream::Conn;
pub use url::BaseUrl;

/// Longest response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_RESPONSE_HEADERS: usize = 96;
const READ_CHUNK: usize = 32 * 1024;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host[:port][/prefix]` or `https://...`; request paths are appended.
    pub base_url: String,
    /// Bound on one whole `get` (connect, TLS, write, full body).
    pub timeout: Duration,
    /// Response bodies above this → [`ClientError::BodyTooLarge`].
    pub max_body_bytes: usize,
    /// Idle keep-alive connections kept for reuse.
    pub max_idle_per_host: usize,
    /// Sent with every request (e.g. `x-nxopen-api-key`).
    pub default_headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    /// Lower-cased names, values as received.
    pub headers: Vec<(String, Bytes)>,
    pub body: Bytes,
}

impl ClientResponse {
    /// First header with this lower-case name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_ref())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid base url: {0}")]
    InvalidUrl(String),
    #[error("invalid request header or path (control characters)")]
    InvalidRequest,
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("tls: {0}")]
    Tls(io::Error),
    #[error("i/o: {0}")]
    Io(io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("response head larger than the limit")]
    HeadTooLarge,
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("connection closed before the response was complete")]
    Closed,
}

pub struct HttpClient {
    cfg: ClientConfig,
    base: BaseUrl,
    /// Pre-built request head lines shared by every request: Host + default headers.
    fixed_headers: Vec<u8>,
    tls: Option<monoio_rustls::TlsConnector>,
    /// Resolved once (DNS is blocking in std; do not repeat it per request).
    addrs: RefCell<Vec<SocketAddr>>,
    /// Idle keep-alive connections, most recent last. Never above `max_idle_per_host`.
    idle: RefCell<Vec<Conn>>,
}

impl HttpClient {
    /// TLS trusts the webpki (Mozilla) roots.
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(cfg, roots)
    }

    /// TLS trusts exactly `roots` (tests, private CAs).
    pub fn with_roots(cfg: ClientConfig, roots: rustls::RootCertStore) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(io::Error::other(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::with_tls_config(cfg, Arc::new(tls))
    }

    pub fn with_tls_config(cfg: ClientConfig, tls: Arc<rustls::ClientConfig>) -> Result<Self, ClientError> {
        let base = BaseUrl::parse(&cfg.base_url)?;
        let mut fixed_headers = Vec::new();
        fixed_headers.extend_from_slice(b"host: ");
        fixed_headers.extend_from_slice(base.host_header().as_bytes());
        fixed_headers.extend_from_slice(b"\r\n");
        for (n, v) in &cfg.default_headers {
            push_header(&mut fixed_headers, n, v)?;
        }
        let tls = base.https.then(|| monoio_rustls::TlsConnector::from(tls));
        Ok(HttpClient { cfg, base, fixed_headers, tls, addrs: RefCell::new(Vec::new()), idle: RefCell::new(Vec::new()) })
    }

    pub fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    /// Idle pooled connections right now.
    pub fn idle_connections(&self) -> usize {
        self.idle.borrow().len()
    }

    /// `GET {base}{path_and_query}`. A pooled connection that turns out
    /// closed by the server is retried once on a fresh connection (GET is
    /// idempotent). The whole call is bounded by `timeout`.
    pub async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<ClientResponse, ClientError> {
        let request = self.build_request(path_and_query, headers)?;
        let work = async {
            let pooled = self.idle.borrow_mut().pop();
            if let Some(conn) = pooled {
                match self.exchange(conn, &request).await {
                    Err(Attempt::Stale) => {} // fall through to a fresh connection
                    Err(Attempt::Failed(e)) => return Err(e),
                    Ok(r) => return Ok(r),
                }
            }
            let conn = self.connect().await?;
            match self.exchange(conn, &request).await {
                Ok(r) => Ok(r),
                Err(Attempt::Stale) => Err(ClientError::Closed),
                Err(Attempt::Failed(e)) => Err(e),
            }
        };
        match monoio::time::timeout(self.cfg.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(self.cfg.timeout)),
        }
    }

    fn build_request(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<Vec<u8>, ClientError> {
        if !path_and_query.starts_with('/') || path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(ClientError::InvalidRequest);
        }
        let mut req = Vec::with_capacity(64 + path_and_query.len() + self.fixed_headers.len());
        req.extend_from_slice(b"GET ");
        req.extend_from_slice(self.base.path_prefix.as_bytes());
        req.extend_from_slice(path_and_query.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\n");
        req.extend_from_slice(&self.fixed_headers);
        for (n, v) in headers {
            push_header(&mut req, n, v)?;
        }
        req.extend_from_slice(b"\r\n");
        Ok(req)
    }

    async fn connect(&self) -> Result<Conn, ClientError> {
        if self.addrs.borrow().is_empty() {
            let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(self.base.host.as_str(), self.base.port))
                .map_err(ClientError::Connect)?
                .collect();
            *self.addrs.borrow_mut() = resolved;
        }
        let addrs = self.addrs.borrow().clone();
        let mut last_err = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
        for addr in addrs {
            match monoio::net::TcpStream::connect_addr(addr).await {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return match &self.tls {
                        None => Ok(Conn::Plain(tcp)),
                        Some(tls) => {
                            let name = rustls::pki_types::ServerName::try_from(self.base.host.clone())
                                .map_err(|_| ClientError::InvalidUrl(self.base.host.clone()))?;
                            let s = tls.connect(name, tcp).await.map_err(|e| ClientError::Tls(e.into()))?;
                            Ok(Conn::Tls(Box::new(s)))
                        }
                    };
                }
                Err(e) => last_err = e,
            }
        }
        // Addresses may have changed (DNS): resolve again next time.
        self.addrs.borrow_mut().clear();
        Err(ClientError::Connect(last_err))
    }

    /// Write the request, read one response; on success the connection
    /// goes back to the pool if the response allows reuse.
    async fn exchange(&self, mut conn: Conn, request: &[u8]) -> Result<ClientResponse, Attempt> {
        if let Err(e) = conn.write_all(request.to_vec()).await {
            return Err(if conn.is_reused() { Attempt::Stale } else { Attempt::Failed(ClientError::Io(e)) });
        }
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let head = read_head(&mut conn, &mut buf).await?;
        let head_bytes = buf.split_to(head.len).freeze();
        let max = self.cfg.max_body_bytes;
        let (body, reusable) = match head.framing {
            Framing::Empty => (Bytes::new(), true),
            Framing::Length(n) => read_length_body(&mut conn, &mut buf, n, max).await?,
            Framing::Chunked => read_chunked_body(&mut conn, &mut buf, max).await?,
            Framing::UntilClose => read_body_until_close(&mut conn, &mut buf, max).await?,
        };
        if reusable && head.keep_alive {
            self.keep_idle(conn);
        }
        let headers = head.headers.into_iter().map(|(n, r)| (n, head_bytes.slice(r))).collect();
        Ok(ClientResponse { status: head.status, headers, body })
    }

    /// Back into the pool for the next request (if there is room).
    fn keep_idle(&self, mut conn: Conn) {
        conn.mark_reused();
        let mut idle = self.idle.borrow_mut();
        if idle.len() < self.cfg.max_idle_per_host {
            idle.push(conn);
        }
    }
}

/// Read until a final response head is complete, skipping interim (1xx)
/// ones. A reused connection closed before any byte came is `Stale`.
async fn read_head(conn: &mut Conn, buf: &mut BytesMut) -> Result<ResponseHead, Attempt> {
    loop {
        match parse_response_head(buf)? {
            Some(h) if (100..200).contains(&h.status) => {
                // Interim response (e.g. 100 Continue): skip it.
                let _ = buf.split_to(h.len);
                continue;
            }
            Some(h) => return Ok(h),
            None => {}
        }
        match conn.read_into(buf, READ_CHUNK).await {
            Ok(0) if buf.is_empty() && conn.is_reused() => return Err(Attempt::Stale),
            Ok(0) => return Err(Attempt::Failed(ClientError::Closed)),
            Ok(_) => {}
            Err(e) if buf.is_empty() && conn.is_reused() => {
                let _ = e;
                return Err(Attempt::Stale);
            }
            Err(e) => return Err(Attempt::Failed(ClientError::Io(e))),
        }
    }
}

/// One more read of a body; a close before its end is `Closed`.
async fn read_body_more(conn: &mut Conn, buf: &mut BytesMut, want: usize) -> Result<(), Attempt> {
    match conn.read_into(buf, want).await {
        Ok(0) => Err(Attempt::Failed(ClientError::Closed)),
        Ok(_) => Ok(()),
        Err(e) => Err(Attempt::Failed(ClientError::Io(e))),
    }
}

/// A `Content-Length: n` body (`n` ≤ `max`); reusable unless bytes
/// followed it.
async fn read_length_body(conn: &mut Conn, buf: &mut BytesMut, n: usize, max: usize) -> Result<(Bytes, bool), Attempt> {
    if n > max {
        return Err(Attempt::Failed(ClientError::BodyTooLarge(max)));
    }
    buf.reserve(n.saturating_sub(buf.len()));
    while buf.len() < n {
        let want = (n - buf.len()).max(READ_CHUNK);
        read_body_more(conn, buf, want).await?;
    }
    // Extra bytes after the body: the server misbehaves; do not reuse.
    let clean = buf.len() == n;
    Ok((buf.split_to(n).freeze(), clean))
}

/// A chunked body of at most `max` bytes; reusable unless bytes followed it.
async fn read_chunked_body(conn: &mut Conn, buf: &mut BytesMut, max: usize) -> Result<(Bytes, bool), Attempt> {
    let mut dec = ChunkedDecoder::new(max);
    loop {
        match dec.decode(buf) {
            Ok(true) => break,
            Ok(false) => {}
            Err(ChunkedError::TooLarge) => return Err(Attempt::Failed(ClientError::BodyTooLarge(max))),
            Err(ChunkedError::Malformed) => return Err(Attempt::Failed(ClientError::Malformed("bad chunked body"))),
        }
        read_body_more(conn, buf, READ_CHUNK).await?;
    }
    let clean = buf.is_empty();
    Ok((dec.into_body(), clean))
}

/// A body delimited by the server closing (at most `max` bytes); the
/// connection is spent.
async fn read_body_until_close(conn: &mut Conn, buf: &mut BytesMut, max: usize) -> Result<(Bytes, bool), Attempt> {
    loop {
        if buf.len() > max {
            return Err(Attempt::Failed(ClientError::BodyTooLarge(max)));
        }
        match conn.read_into(buf, READ_CHUNK).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(Attempt::Failed(ClientError::Io(e))),
        }
    }
    Ok((buf.split().freeze(), false))
}

/// Outcome of one attempt on one connection.
enum Attempt {
    /// A reused connection was closed by the server before answering: retry fresh.
    Stale,
    Failed(ClientError),
}

impl From<ClientError> for Attempt {
    fn from(e: ClientError) -> Self {
        Attempt::Failed(e)
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) -> Result<(), ClientError> {
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    let value_ok = value.bytes().all(|b| b == b'\t' || (b >= b' ' && b != 0x7f));
    if !name_ok || !value_ok {
        return Err(ClientError::InvalidRequest);
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

struct ResponseHead {
    status: u16,
    len: usize,
    headers: Vec<(String, std::ops::Range<usize>)>,
    framing: Framing,
    keep_alive: bool,
}

fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_RESPONSE_HEAD { Err(ClientError::HeadTooLarge) } else { Ok(None) };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ClientError::HeadTooLarge),
        Err(_) => return Err(ClientError::Malformed("bad response head")),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(ClientError::HeadTooLarge);
    }
    let status = resp.code.ok_or(ClientError::Malformed("no status"))?;
    let version = resp.version.unwrap_or(1);
    let base = buf.as_ptr() as usize;
    let mut out = Vec::with_capacity(resp.headers.len());
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive_token = false;
    for h in resp.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let start = h.value.as_ptr() as usize - base;
        match name.as_str() {
            "content-length" => {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or(ClientError::Malformed("bad content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(ClientError::Malformed("conflicting content-length"));
                }
                length = Some(n);
            }
            "transfer-encoding" => {
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
                if String::from_utf8_lossy(last).trim().eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
            "connection" => {
                for tok in String::from_utf8_lossy(h.value).split(',') {
                    match tok.trim().to_ascii_lowercase().as_str() {
                        "close" => close = true,
                        "keep-alive" => keep_alive_token = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        out.push((name, start..start + h.value.len()));
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else if chunked {
        // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
        Framing::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        }
    } else {
        Framing::UntilClose
    };
    let keep_alive = !close && (version == 1 || keep_alive_token);
    Ok(Some(ResponseHead { status, len, headers: out, framing, keep_alive }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_head_framing() {
        let h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap().unwrap();
        assert_eq!((h.status, h.framing, h.keep_alive), (200, Framing::Length(3), true));
        let h = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_response_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = parse_response_head(b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, false));
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-").unwrap().is_none());
        assert!(matches!(parse_response_head(b"HTTP/1.1 2x0 OK\r\n\r\n"), Err(ClientError::Malformed(_))));
    }

    #[test]
    fn request_injection_is_refused() {
        let c = HttpClient::new(ClientConfig {
            base_url: "http://127.0.0.1:1/api".into(),
            timeout: Duration::from_secs(1),
            max_body_bytes: 10,
            max_idle_per_host: 1,
            default_headers: vec![("x-nxopen-api-key".into(), "k".into())],
        })
        .unwrap();
        assert!(matches!(c.build_request("/a b", &[]), Err(ClientError::InvalidRequest)));
        assert!(matches!(c.build_request("/a", &[("x", "1\r\nEvil: 1")]), Err(ClientError::InvalidRequest)));
        let req = String::from_utf8(c.build_request("/x?q=1", &[("accept", "*/*")]).unwrap()).unwrap();
        assert_eq!(req, "GET /api/x?q=1 HTTP/1.1\r\nhost: 127.0.0.1:1\r\nx-nxopen-api-key: k\r\naccept: */*\r\n\r\n");
    }
}
