//! Rough server throughput on this machine: N blocking client threads on
//! keep-alive connections against a 1-core server answering a tiny body.
//! A tool, not a test: `cargo bench -p net --bench throughput`
//! (env: CONNS=8 SECS=3 DEPTH=1 CORES=1; DEPTH>1 pipelines requests).

use net::{BoundServer, Limits, Request, Response, ServerConfig, Service, Shutdown};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Hello;

impl Service for Hello {
    async fn call(&self, _req: Request) -> Response {
        Response::new(200).header("content-type", "text/plain").body("hello world")
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let conns = env("CONNS", 8);
    let secs = env("SECS", 3);
    let depth = env("DEPTH", 1).max(1);
    let cores = env("CORES", 1);
    let cfg = ServerConfig { addr: "127.0.0.1:0".parse().unwrap(), cores, limits: Limits::default() };
    let server = BoundServer::bind(cfg).expect("bind");
    let addr = server.local_addr();
    let shutdown = Shutdown::new();
    let sd = shutdown.clone();
    let srv = std::thread::spawn(move || server.run(|_| Hello, sd, Duration::from_secs(1)));

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let req = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n".repeat(depth);
    let clients: Vec<_> = (0..conns)
        .map(|_| {
            let (stop, done, req) = (stop.clone(), done.clone(), req.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 64 * 1024];
                let mut pending = 0usize; // response bytes still expected
                let mut one = 0usize; // size of one response, learnt from the first
                while !stop.load(Ordering::Relaxed) {
                    s.write_all(&req).unwrap();
                    if one == 0 {
                        let n = s.read(&mut buf).unwrap();
                        let text = std::str::from_utf8(&buf[..n]).unwrap();
                        let end = text.find("\r\n\r\n").unwrap() + 4;
                        one = end + 11;
                        pending = one * depth - n;
                    } else {
                        pending += one * depth;
                    }
                    while pending > 0 {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "server closed");
                        pending -= n.min(pending);
                    }
                    done.fetch_add(depth as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs as u64));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    shutdown.trigger();
    let stats = srv.join().unwrap().unwrap();
    let n = done.load(Ordering::Relaxed);
    println!(
        "server cores={cores} conns={conns} depth={depth}: {n} requests in {elapsed:.2}s = {:.0} req/s (server counted {})",
        n as f64 / elapsed,
        stats.total().requests
    );
}
