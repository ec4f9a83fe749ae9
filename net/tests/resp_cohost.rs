//! RESP on the HTTP server's cores: the HTTP service factory (which runs on
//! each core's thread, inside its runtime) spawns that core's RESP listener
//! with a service sharing the core's `Rc` state; the HTTP `drain` waits for
//! the RESP side. This is the wiring the node uses.

mod resp_common;

use net::resp::{Command, CommandSpec, ConnState, Flags, Reply, RespConfig, RespCore, RespLimits, RespServer, RespService};
use net::{BoundServer, Limits, Request, Response, ServerConfig, Service, Shutdown};
use resp_common::Client;
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

/// The state one core owns, seen by both protocols.
struct CoreState {
    hits: Cell<i64>,
}

struct Http {
    state: Rc<CoreState>,
    resp: RefCell<Option<monoio::task::JoinHandle<std::io::Result<()>>>>,
}

impl Service for Http {
    async fn call(&self, _req: Request) -> Response {
        Response::new(200).body(self.state.hits.get().to_string())
    }

    async fn drain(&self) {
        let handle = self.resp.borrow_mut().take();
        if let Some(h) = handle {
            if let Err(e) = h.await {
                panic!("RESP core failed: {e}");
            }
        }
    }
}

struct Resp {
    state: Rc<CoreState>,
}

impl RespService for Resp {
    fn commands(&self) -> Vec<CommandSpec> {
        vec![CommandSpec::new("hit", 1).flags(Flags::WRITE | Flags::FAST)]
    }

    async fn call(&self, _conn: &ConnState, _cmd: Command) -> Reply {
        self.state.hits.set(self.state.hits.get() + 1);
        Reply::Int(self.state.hits.get())
    }
}

#[test]
fn resp_and_http_share_each_core() {
    let http = BoundServer::bind(ServerConfig { addr: "127.0.0.1:0".parse().unwrap(), cores: 1, limits: Limits::default() }).unwrap();
    let resp = RespServer::bind(RespConfig { addr: "127.0.0.1:0".parse().unwrap(), cores: 1, limits: RespLimits::default() }).unwrap();
    let (http_addr, resp_addr, resp_stats) = (http.local_addr(), resp.local_addr(), resp.stats());
    let cores: Mutex<Vec<Option<RespCore>>> = Mutex::new(resp.into_cores().into_iter().map(Some).collect());
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    let sd = shutdown.clone();
    let thread = std::thread::spawn(move || {
        http.run(
            move |core| {
                let state = Rc::new(CoreState { hits: Cell::new(0) });
                let resp_core = cores.lock().unwrap()[core].take().expect("one RESP core per HTTP core");
                let handle = monoio::spawn(resp_core.serve(Resp { state: state.clone() }, sd.clone(), Duration::from_secs(2)));
                Http { state, resp: RefCell::new(Some(handle)) }
            },
            shutdown.clone(),
            Duration::from_secs(2),
        )
    });
    let mut c = Client::connect(resp_addr);
    assert_eq!(c.cmd(&["HIT"]), ":1");
    assert_eq!(c.cmd(&["hit"]), ":2");
    let mut h = std::net::TcpStream::connect(http_addr).unwrap();
    h.write_all(b"GET /hits HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    h.read_to_string(&mut body).unwrap();
    assert!(body.ends_with("\r\n\r\n2"), "{body}");
    // Shutting the HTTP server down also drains and stops the RESP core.
    trigger.trigger();
    let http_stats = thread.join().expect("server thread").expect("server result");
    assert_eq!(http_stats.total().requests, 1);
    assert!(c.closed());
    assert_eq!(resp_stats.total().commands, 2);
    assert_eq!(resp_stats.total().connections_active, 0);
}
