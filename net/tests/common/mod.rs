//! Test harness: a real server on 127.0.0.1 (free port) in a background
//! thread, and a tiny blocking HTTP reader for assertions.
#![allow(dead_code)]

use net::{BoundServer, Limits, Request, Response, ServerConfig, ServerStats, Service, Shutdown};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// Routes: `/hello`, `/echo` (body back + method/query/path/host), `/slow?ms=N`, `/panic`, `/big?n=N`.
pub struct TestService {
    pub core: usize,
}

impl Service for TestService {
    async fn call(&self, req: Request) -> Response {
        match req.path.as_str() {
            "/hello" => Response::new(200).header("content-type", "text/plain").body("hello"),
            "/echo" => Response::new(200)
                .header("x-method", req.method.clone())
                .header("x-query", req.query.clone())
                .header("x-core", self.core.to_string())
                .header("x-path", req.path.clone())
                .header("x-host", String::from_utf8_lossy(req.header("host").unwrap_or(b"-")).into_owned())
                .body(req.body.clone()),
            "/slow" => {
                let ms: u64 = req.query.strip_prefix("ms=").and_then(|v| v.parse().ok()).unwrap_or(300);
                monoio::time::sleep(Duration::from_millis(ms)).await;
                Response::new(200).body("slow done")
            }
            "/big" => {
                let n: usize = req.query.strip_prefix("n=").and_then(|v| v.parse().ok()).unwrap_or(1000);
                Response::new(200).body(vec![b'x'; n])
            }
            "/panic" => panic!("test service panic"),
            _ => Response::json(404, r#"{"error":"not found","status":404}"#),
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub stats: ServerStats,
    pub thread: Option<JoinHandle<std::io::Result<ServerStats>>>,
}

impl TestServer {
    pub fn start(cores: usize, limits: Limits) -> TestServer {
        Self::start_with_drain(cores, limits, Duration::from_secs(5))
    }

    pub fn start_with_drain(cores: usize, limits: Limits, drain: Duration) -> TestServer {
        let cfg = ServerConfig { addr: "127.0.0.1:0".parse().unwrap(), cores, limits };
        let bound = BoundServer::bind(cfg).expect("bind");
        let addr = bound.local_addr();
        let stats = bound.stats();
        let shutdown = Shutdown::new();
        let sd = shutdown.clone();
        let thread = std::thread::spawn(move || bound.run(|core| TestService { core }, sd, drain));
        TestServer { addr, shutdown, stats, thread: Some(thread) }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Trigger shutdown and wait for `run` to return.
    pub fn stop(mut self) -> ServerStats {
        self.shutdown.trigger();
        self.thread.take().unwrap().join().expect("server thread").expect("server result")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shutdown.trigger();
            let _ = t.join();
        }
    }
}

pub fn test_limits() -> Limits {
    Limits {
        max_header_bytes: 1024,
        max_headers: 16,
        max_body_bytes: 4096,
        max_in_flight_per_core: 64,
        max_connections_per_core: 64,
        header_read_timeout: Duration::from_millis(400),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        pipeline_depth: 8,
    }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// Reads one Content-Length-framed response; `pending` holds bytes already
/// read past the previous response.
pub fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>) -> std::io::Result<RawResponse> {
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(pending).expect("valid response head") {
            let status = resp.code.unwrap();
            let headers: Vec<(String, String)> =
                resp.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
            let cl: usize = headers.iter().find(|(n, _)| n == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
            while pending.len() < len + cl {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                pending.extend_from_slice(&chunk[..n]);
            }
            let body = pending[len..len + cl].to_vec();
            pending.drain(..len + cl);
            return Ok(RawResponse { status, headers, body });
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

pub fn request(s: &mut TcpStream, raw: &[u8]) -> RawResponse {
    s.write_all(raw).unwrap();
    read_response(s, &mut Vec::new()).expect("response")
}

/// True when the server closed the connection (EOF or reset) within the read timeout.
pub fn is_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}
