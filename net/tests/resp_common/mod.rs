//! RESP test harness: a test service, a server on 127.0.0.1 (free port) in
//! a background thread, and a blocking raw-socket client whose replies are
//! decoded by `redis-protocol` (an independent decoder of what we write).
#![allow(dead_code)]

use bytes::Bytes;
use net::resp::{Authenticated, Command, CommandSpec, ConnState, Flags, Reply, RespConfig, RespLimits, RespServer, RespService, RespStats};
use net::Shutdown;
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Commands: `INCR.LOCAL key` (per-core counter), `DELAY ms tag`
/// (CONCURRENT: sleeps, answers tag), `MAXCONC` (most DELAYs seen at once),
/// `WHOAMI` (AUTH), `BIG n` (n bytes), `SHAPES` (one of each reply type),
/// `SHAPES [nobig]` (one of each reply type), `BOOM` (panics), `FAIL` (service error).
pub struct TestService {
    pub core: usize,
    counters: std::cell::RefCell<std::collections::HashMap<Vec<u8>, i64>>,
    running: Cell<usize>,
    max_running: Cell<usize>,
}

impl TestService {
    pub fn new(core: usize) -> Self {
        TestService { core, counters: Default::default(), running: Cell::new(0), max_running: Cell::new(0) }
    }
}

pub const TOKEN: &str = "secret-token";

impl RespService for TestService {
    fn commands(&self) -> Vec<CommandSpec> {
        vec![
            CommandSpec::new("incr.local", 2).key_at(1).flags(Flags::WRITE | Flags::FAST).doc(
                "generic",
                "Increments a per-core counter.",
                "key",
            ),
            CommandSpec::new("delay", 3).flags(Flags::CONCURRENT | Flags::READONLY).doc("generic", "Sleeps ms, answers tag.", "ms tag"),
            CommandSpec::new("maxconc", 1).flags(Flags::READONLY),
            CommandSpec::new("whoami", 1).flags(Flags::AUTH | Flags::READONLY),
            CommandSpec::new("big", 2).flags(Flags::READONLY),
            CommandSpec::new("shapes", -1).flags(Flags::READONLY),
            CommandSpec::new("boom", 1),
            CommandSpec::new("fail", 1),
        ]
    }

    async fn call(&self, _conn: &ConnState, cmd: Command) -> Reply {
        match cmd.name() {
            "incr.local" => {
                let mut m = self.counters.borrow_mut();
                let v = m.entry(cmd.args()[0].to_vec()).or_insert(0);
                *v += 1;
                Reply::Int(*v)
            }
            "delay" => {
                let ms: u64 = std::str::from_utf8(&cmd.args()[0]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                self.running.set(self.running.get() + 1);
                self.max_running.set(self.max_running.get().max(self.running.get()));
                monoio::time::sleep(Duration::from_millis(ms)).await;
                self.running.set(self.running.get() - 1);
                Reply::Bulk(cmd.args()[1].clone())
            }
            "maxconc" => Reply::Int(self.max_running.replace(0) as i64),
            "whoami" => Reply::bulk_str(_conn.user().unwrap_or("?").to_owned()),
            "big" => {
                let n: usize = std::str::from_utf8(&cmd.args()[0]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                Reply::Bulk(Bytes::from(vec![b'x'; n.min(16 << 20)]))
            }
            "shapes" if cmd.argc() > 1 => Reply::map([
                // Without a big number: redis-cli 7.0 cannot print one ("Unknown reply type: 13").
                ("bool", Reply::Bool(true)),
                ("double", Reply::Double(2.5)),
                ("null", Reply::Null),
                ("set", Reply::Set(vec![Reply::Int(1)])),
                ("verbatim", Reply::Verbatim { format: *b"txt", text: Bytes::from_static(b"hi") }),
            ]),
            "shapes" => Reply::map([
                ("bool", Reply::Bool(true)),
                ("double", Reply::Double(2.5)),
                ("null", Reply::Null),
                ("set", Reply::Set(vec![Reply::Int(1)])),
                ("nested", Reply::map([("n", Reply::Int(-1))])),
                ("verbatim", Reply::Verbatim { format: *b"txt", text: Bytes::from_static(b"hi") }),
                ("big", Reply::BigNumber("123456789012345678901234567890".into())),
            ]),
            "boom" => panic!("test service panic"),
            "fail" => Reply::error("STORAGE the disk is on fire"),
            other => Reply::err(format_args!("unexpected {other}")),
        }
    }

    async fn authenticate(&self, _conn: &ConnState, user: Option<&[u8]>, token: &[u8]) -> Result<Authenticated, Reply> {
        let user_ok = user.is_none_or(|u| u == b"alice" || u == b"default");
        match token {
            t if t == TOKEN.as_bytes() && user_ok => Ok(Authenticated { user: "alice".into(), expires: None }),
            b"expired-token" => Ok(Authenticated { user: "bob".into(), expires: Some(SystemTime::now() - Duration::from_secs(1)) }),
            _ => Err(Reply::error("WRONGPASS invalid username-password pair or user is disabled.")),
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub stats: RespStats,
    thread: Option<JoinHandle<std::io::Result<RespStats>>>,
}

impl TestServer {
    pub fn start(cores: usize, limits: RespLimits) -> TestServer {
        let bound = RespServer::bind(RespConfig { addr: "127.0.0.1:0".parse().unwrap(), cores, limits }).expect("bind");
        let addr = bound.local_addr();
        let stats = bound.stats();
        let shutdown = Shutdown::new();
        let sd = shutdown.clone();
        let thread = std::thread::spawn(move || bound.run(TestService::new, sd, Duration::from_secs(5)));
        TestServer { addr, shutdown, stats, thread: Some(thread) }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn stop(mut self) -> RespStats {
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

/// Blocking client speaking raw bytes; replies are rendered as text:
/// `+PONG`, `-ERR ...`, `:1`, `"bulk"`, `nil`, `[a, b]`, `{k: v}` (keys
/// sorted), `~[..]` set, `#t`, `,2.5`, `(123`, `=txt:hi`.
pub struct Client {
    pub s: TcpStream,
    buf: Vec<u8>,
    pub resp3: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client { s, buf: Vec::new(), resp3: false }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).expect("write");
    }

    pub fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    pub fn cmd(&mut self, args: &[&str]) -> String {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&Self::encode(&raw));
        // HELLO answers in the protocol it asks for (errors read the same in both).
        let before = self.resp3;
        if args[0].eq_ignore_ascii_case("hello") && args.len() > 1 {
            self.resp3 = args[1] == "3";
        }
        if args[0].eq_ignore_ascii_case("reset") {
            self.resp3 = false;
        }
        let r = self.read_reply();
        if r.starts_with('-') {
            self.resp3 = before;
        }
        r
    }

    /// Read one whole reply (panics on timeout or close).
    pub fn read_reply(&mut self) -> String {
        self.try_read_reply().expect("connection closed before a reply")
    }

    /// One reply, or None if the server closed first.
    pub fn try_read_reply(&mut self) -> Option<String> {
        loop {
            if !self.buf.is_empty() {
                let decoded = if self.resp3 {
                    redis_protocol::resp3::decode::complete::decode(&self.buf).map(|o| o.map(|(f, n)| (render3(&f), n)))
                } else {
                    redis_protocol::resp2::decode::decode(&self.buf).map(|o| o.map(|(f, n)| (render2(&f), n)))
                };
                match decoded {
                    Ok(Some((text, n))) => {
                        self.buf.drain(..n);
                        return Some(text);
                    }
                    Ok(None) => {}
                    Err(e) => panic!("server sent an undecodable reply: {e:?}: {:?}", String::from_utf8_lossy(&self.buf)),
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// True if the server closes the connection (EOF or reset) within the read timeout.
    pub fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn render2(f: &redis_protocol::resp2::types::OwnedFrame) -> String {
    use redis_protocol::resp2::types::OwnedFrame as F;
    match f {
        F::SimpleString(s) => format!("+{}", text(s)),
        F::Error(e) => format!("-{e}"),
        F::Integer(i) => format!(":{i}"),
        F::BulkString(b) => format!("{:?}", text(b)),
        F::Array(a) => format!("[{}]", a.iter().map(render2).collect::<Vec<_>>().join(", ")),
        F::Null => "nil".into(),
    }
}

pub fn render3(f: &redis_protocol::resp3::types::OwnedFrame) -> String {
    use redis_protocol::resp3::types::OwnedFrame as F;
    match f {
        F::BlobString { data, .. } => format!("{:?}", text(data)),
        F::SimpleString { data, .. } => format!("+{}", text(data)),
        F::SimpleError { data, .. } => format!("-{data}"),
        F::BlobError { data, .. } => format!("!{}", text(data)),
        F::Number { data, .. } => format!(":{data}"),
        F::Null => "nil".into(),
        F::Boolean { data, .. } => if *data { "#t" } else { "#f" }.into(),
        F::Double { data, .. } => format!(",{data}"),
        F::BigNumber { data, .. } => format!("({}", text(data)),
        F::VerbatimString { data, format, .. } => format!("={format:?}:{}", text(data)),
        F::Array { data, .. } => format!("[{}]", data.iter().map(render3).collect::<Vec<_>>().join(", ")),
        F::Set { data, .. } => {
            let mut v: Vec<String> = data.iter().map(render3).collect();
            v.sort();
            format!("~[{}]", v.join(", "))
        }
        F::Map { data, .. } => {
            let mut v: Vec<String> = data.iter().map(|(k, v)| format!("{}: {}", render3(k), render3(v))).collect();
            v.sort();
            format!("{{{}}}", v.join(", "))
        }
        other => format!("?{other:?}"),
    }
}
