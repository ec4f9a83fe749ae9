//! `Service::drain` at the end of a graceful shutdown: called once per core,
//! after the connections are done, on the live runtime, so background work
//! completed by another thread (a log's syncer, say) finishes there.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use net::{BoundServer, Limits, Request, Response, ServerConfig, Service, Shutdown};

#[derive(Default)]
struct Counts {
    drains: AtomicUsize,
    background_done: AtomicUsize,
    /// Background tasks still pending when `drain` returned (must stay 0).
    pending_at_drain_end: AtomicUsize,
}

struct Background {
    counts: Arc<Counts>,
    pending: Rc<Cell<usize>>,
}

impl Service for Background {
    /// Answers at once; leaves behind a task that another OS thread
    /// completes 200 ms later (like a write waiting for an fsync).
    async fn call(&self, _req: Request) -> Response {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let _ = tx.send(());
        });
        self.pending.set(self.pending.get() + 1);
        let (pending, counts) = (self.pending.clone(), self.counts.clone());
        monoio::spawn(async move {
            let _ = rx.await;
            pending.set(pending.get() - 1);
            counts.background_done.fetch_add(1, Ordering::SeqCst);
        });
        Response::new(200).body("ok")
    }

    async fn drain(&self) {
        self.counts.drains.fetch_add(1, Ordering::SeqCst);
        while self.pending.get() > 0 {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        self.counts.pending_at_drain_end.fetch_add(self.pending.get(), Ordering::SeqCst);
    }
}

#[test]
fn drain_runs_once_per_core_after_the_connections_and_before_the_runtime_ends() {
    let cores = 2;
    let cfg = ServerConfig { addr: "127.0.0.1:0".parse().unwrap(), cores, limits: Limits::default() };
    let bound = BoundServer::bind(cfg).expect("bind");
    let addr = bound.local_addr();
    let counts = Arc::new(Counts::default());
    let shutdown = Shutdown::new();
    let (sd, c) = (shutdown.clone(), counts.clone());
    let server = std::thread::spawn(move || {
        bound.run(move |_core| Background { counts: c.clone(), pending: Rc::new(Cell::new(0)) }, sd, Duration::from_secs(10))
    });
    let requests = 8;
    for _ in 0..requests {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
    }
    // Every answer is out; the background tasks are still waiting.
    assert_eq!(counts.drains.load(Ordering::SeqCst), 0, "not before the shutdown");
    shutdown.trigger();
    server.join().unwrap().expect("clean stop");
    assert_eq!(counts.drains.load(Ordering::SeqCst), cores, "once per core");
    assert_eq!(counts.background_done.load(Ordering::SeqCst), requests, "every background task finished on its runtime");
    assert_eq!(counts.pending_at_drain_end.load(Ordering::SeqCst), 0);
}
