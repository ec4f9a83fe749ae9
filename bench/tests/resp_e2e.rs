//! End to end over RESP: the real generator (lanes, pipelining, cluster
//! routing, report) against RESP servers built here from net's RESP layer,
//! answering LIKE.TOGGLE / EXPECT.GET / AUTH / CLUSTER SLOTS / MOVED the
//! simplest way. Asserts counts, error classes and redirects, never speed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bench::report::Report;
use bench::resp::cluster::key_slot;
use bench::resp::RespOptions;
use bench::schedule::Pacing;
use bench::workload::{Workload, WorkloadKind, WorkloadParams};
use bench::{run, RunConfig};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use net::resp::{Authenticated, Command, CommandSpec, ConnState, Flags, Reply, RespConfig, RespLimits, RespServer, RespService};
use net::Shutdown;
use sha2::Sha256;

const SECRET: &str = "resp-test-secret";

/// What one test node does, and what it saw.
#[derive(Default)]
struct Node {
    /// Slots this node serves; `None` = all (a standalone server).
    owns: Option<Range<u16>>,
    /// The cluster's map: (slots, RESP address). Empty = no cluster
    /// support (`CLUSTER SLOTS` is an error).
    map: Mutex<Vec<(Range<u16>, SocketAddr)>>,
    /// Answer `-TRYAGAIN` to every other LIKE.TOGGLE of a character
    /// (the first, third ...).
    flaky: bool,
    tries: Mutex<HashMap<Vec<u8>, u64>>,
    /// `CLUSTER SLOTS` answers an error even with a map (MOVED still works).
    no_cluster_slots: bool,
    toggles: AtomicU64,
    misrouted: AtomicU64,
    auths: AtomicU64,
    tryagains: AtomicU64,
    gets: AtomicU64,
    cluster_slots: AtomicU64,
    calls: AtomicU64,
    /// (user, character) → liked.
    likes: Mutex<HashMap<(String, Vec<u8>), bool>>,
}

struct Svc(Arc<Node>);

impl Svc {
    /// `-MOVED` to the owner when this node does not own `key`'s slot.
    fn moved(&self, key: &[u8]) -> Option<Reply> {
        let owns = self.0.owns.as_ref()?;
        let slot = key_slot(key);
        if owns.contains(&slot) {
            return None;
        }
        self.0.misrouted.fetch_add(1, Ordering::Relaxed);
        let map = self.0.map.lock().unwrap();
        let owner = map.iter().find(|(r, _)| r.contains(&slot)).map(|(_, a)| *a)?;
        Some(Reply::error(format!("MOVED {slot} {owner}")))
    }
}

impl RespService for Svc {
    fn commands(&self) -> Vec<CommandSpec> {
        vec![
            CommandSpec::new("like.toggle", -2).key_at(1).flags(Flags::WRITE | Flags::AUTH),
            CommandSpec::new("expect.get", -2).key_at(1).flags(Flags::READONLY),
            CommandSpec::new("cluster", -2).flags(Flags::READONLY),
        ]
    }

    async fn call(&self, conn: &ConnState, cmd: Command) -> Reply {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        match cmd.name() {
            "like.toggle" => {
                let key = cmd.args()[0].clone();
                if let Some(m) = self.moved(&key) {
                    return m;
                }
                let tries = {
                    let mut t = self.0.tries.lock().unwrap();
                    let n = t.entry(key.to_vec()).or_insert(0);
                    *n += 1;
                    *n
                };
                if self.0.flaky && tries % 2 == 1 {
                    self.0.tryagains.fetch_add(1, Ordering::Relaxed);
                    return Reply::error("TRYAGAIN partition has no leader yet");
                }
                let user = conn.user().unwrap_or("?").to_string();
                let mut likes = self.0.likes.lock().unwrap();
                let liked = likes.entry((user, key.to_vec())).or_insert(false);
                *liked = !*liked;
                self.0.toggles.fetch_add(1, Ordering::Relaxed);
                Reply::map([("liked", Reply::Bool(*liked)), ("likeCount", Reply::Int(1))])
            }
            "expect.get" => {
                let key = cmd.args()[0].clone();
                if key.as_ref() == b"loop" {
                    // Always somewhere else: a redirect loop the client must give up on.
                    return Reply::error(format!("MOVED {} {}", key_slot(&key), conn.local().unwrap()));
                }
                if let Some(m) = self.moved(&key) {
                    return m;
                }
                self.0.gets.fetch_add(1, Ordering::Relaxed);
                match key.as_ref() {
                    b"shed" => Reply::error("OVERLOADED too many commands in flight, retry later"),
                    b"busy" => Reply::error("BUSY write-ahead log is full"),
                    b"broken" => Reply::error("STORAGE write-ahead log failed"),
                    b"missing" => Reply::Null,
                    _ => Reply::Bulk(Bytes::from(vec![0x1f; 17_000])),
                }
            }
            "cluster" if cmd.args()[0].eq_ignore_ascii_case(b"slots") => {
                self.0.cluster_slots.fetch_add(1, Ordering::Relaxed);
                let map = self.0.map.lock().unwrap();
                if map.is_empty() || self.0.no_cluster_slots {
                    return Reply::error("ERR This instance has cluster support disabled");
                }
                Reply::Array(
                    map.iter()
                        .map(|(r, a)| {
                            let node = Reply::Array(vec![Reply::bulk_str(a.ip().to_string()), Reply::Int(a.port() as i64)]);
                            Reply::Array(vec![Reply::Int(r.start as i64), Reply::Int(r.end as i64 - 1), node])
                        })
                        .collect(),
                )
            }
            _ => Reply::err("unknown subcommand"),
        }
    }

    async fn authenticate(&self, _conn: &ConnState, _user: Option<&[u8]>, token: &[u8]) -> Result<Authenticated, Reply> {
        self.0.auths.fetch_add(1, Ordering::Relaxed);
        match verify(token) {
            Some(sub) => Ok(Authenticated { user: sub, expires: None }),
            None => Err(Reply::error("WRONGPASS invalid token")),
        }
    }
}

/// The `sub` of a valid HS256 token signed with [`SECRET`].
fn verify(token: &[u8]) -> Option<String> {
    let token = std::str::from_utf8(token).ok()?;
    let (signed, sig) = token.rsplit_once('.')?;
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).ok()?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(signed.split('.').nth(1)?).ok()?).ok()?;
    Some(claims["sub"].as_str()?.to_string())
}

struct Server {
    addr: SocketAddr,
    node: Arc<Node>,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind() -> RespServer {
    RespServer::bind(RespConfig { addr: "127.0.0.1:0".parse().unwrap(), cores: 1, limits: RespLimits::default() }).expect("bind")
}

fn serve(bound: RespServer, node: Node) -> Server {
    let addr = bound.local_addr();
    let node = Arc::new(node);
    let shutdown = Shutdown::new();
    let (n, sd) = (Arc::clone(&node), shutdown.clone());
    let thread = std::thread::spawn(move || {
        bound.run(move |_core| Svc(Arc::clone(&n)), sd, Duration::from_secs(2)).expect("server run");
    });
    Server { addr, node, shutdown, thread: Some(thread) }
}

/// Nodes owning `ranges` of the slots, each able to name the others.
fn cluster(ranges: &[Range<u16>], no_cluster_slots: bool) -> Vec<Server> {
    let bound: Vec<RespServer> = ranges.iter().map(|_| bind()).collect();
    let map: Vec<(Range<u16>, SocketAddr)> = ranges.iter().cloned().zip(bound.iter().map(|b| b.local_addr())).collect();
    bound
        .into_iter()
        .zip(ranges.iter().cloned())
        .map(|(b, owns)| {
            let node = Node { owns: Some(owns), no_cluster_slots, ..Node::default() };
            *node.map.lock().unwrap() = map.clone();
            serve(b, node)
        })
        .collect()
}

const THIRDS: [Range<u16>; 3] = [0..5461, 5461..10923, 10923..16384];

fn config(addrs: &[SocketAddr], kind: WorkloadKind, connections: usize, names: &[&str], resp: RespOptions) -> RunConfig {
    let hosts: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut params = WorkloadParams::new(SECRET, 40, 60, "rsp".into(), connections);
    if !names.is_empty() {
        params.seed_names = names.iter().map(|n| n.to_string()).collect();
    }
    RunConfig {
        workload: Workload::with_hosts(kind, &params, &hosts),
        targets: addrs.iter().map(|a| bench::resp::parse_target(&format!("redis://{a}")).unwrap()).collect(),
        pacing: Pacing::Closed,
        threads: 2,
        connections,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(800),
        timeout: Duration::from_secs(5),
        drain: Duration::from_secs(2),
        seed: 7,
        driver: bench::run::Driver::Epoll,
        resp,
    }
}

fn resp_counts(r: &Report) -> bench::report::RespCounts {
    r.resp.clone().expect("a RESP run reports its RESP counters")
}

#[test]
fn likes_authenticate_per_connection_pipelined_and_not() {
    for pipeline in [1, 16] {
        let s = serve(bind(), Node::default());
        let resp = RespOptions { pipeline, ..RespOptions::default() };
        let report = run(&config(&[s.addr], WorkloadKind::RespLikes, 4, &[], resp)).unwrap();
        assert!(report.ok > 50, "pipeline {pipeline}: {}", report.ok);
        assert_eq!(report.errors_total, 0, "pipeline {pipeline}: {:?}", report.errors);
        assert_eq!(report.ok, report.requests);
        assert!(report.first_line.starts_with("OK:"), "{}", report.first_line);
        assert_eq!(report.routes["LIKE.TOGGLE"].ok, report.ok);
        // Every toggle the report counts was authenticated and applied
        // (the server also saw the warm-up's).
        assert!(s.node.toggles.load(Ordering::Relaxed) >= report.ok);
        let c = resp_counts(&report);
        assert_eq!(s.node.auths.load(Ordering::Relaxed), c.connections_opened, "one AUTH per connection");
        assert_eq!(c.connections_opened, 4, "no reconnects");
        assert_eq!((c.redirects, c.tryagain_retries), (0, 0));
        assert_eq!(c.slot_map_unavailable, 2, "one CLUSTER SLOTS per thread, refused by a standalone server");
        // Each connection is one user: 4 distinct users toggled.
        let users: std::collections::HashSet<String> = s.node.likes.lock().unwrap().keys().map(|(u, _)| u.clone()).collect();
        assert_eq!(users.len(), 4, "{users:?}");
        assert_eq!(report.meta.params["pipeline"], pipeline.to_string());
        let text = report.to_text();
        assert!(text.contains("\nresp        0 MOVED followed, 0 TRYAGAIN retried"), "{text}");
        assert!(!text.contains("\nstatuses"), "no HTTP statuses in a RESP report");
        let goals = bench::goals::for_run(WorkloadKind::RespLikes, &report);
        assert_eq!(goals.len(), if pipeline == 1 { 3 } else { 2 }, "p99 held only without pipelining");
        assert!(goals.last().unwrap().met, "no errors, no sheds");
    }
}

#[test]
fn wrong_token_is_an_auth_error_per_command() {
    let s = serve(bind(), Node::default());
    let mut cfg = config(&[s.addr], WorkloadKind::RespLikes, 2, &[], RespOptions::default());
    let params = WorkloadParams::new("not-the-secret", 40, 60, "rsp".into(), 2);
    cfg.workload = Workload::with_hosts(WorkloadKind::RespLikes, &params, &[s.addr.to_string()]);
    cfg.duration = Duration::from_millis(300);
    let report = run(&cfg).unwrap();
    assert_eq!(s.node.toggles.load(Ordering::Relaxed), 0);
    assert!(report.requests > 0);
    assert_eq!(report.errors["resp_wrongpass"], report.requests, "{:?}", report.errors);
    assert!(report.first_line.starts_with("ERRORS: "), "{}", report.first_line);
}

/// Error replies are errors by code, -OVERLOADED / -BUSY are sheds, a null
/// is an error; RESP3 (HELLO 3) with pipelining; 17 KB bulk replies.
#[test]
fn expect_gets_classify_replies() {
    let s = serve(bind(), Node::default());
    let names = ["아델", "shed", "busy", "broken", "missing", "강은호"];
    let resp = RespOptions { pipeline: 8, resp3: true, ..RespOptions::default() };
    let report = run(&config(&[s.addr], WorkloadKind::RespExpect, 3, &names, resp)).unwrap();
    let n = report.requests;
    assert!(n > 60, "{n}");
    // Every command is ok, shed or an error; each name a sixth of them (rotation).
    assert_eq!(report.ok + report.shed + report.errors_total, n);
    let sixth = |x: u64| x.abs_diff(n / 6) <= 5;
    assert!(sixth(report.errors["resp_storage"]), "{:?} of {n}", report.errors);
    assert!(sixth(report.errors["resp_null"]), "{:?}", report.errors);
    assert!(sixth(report.shed / 2), "{} shed of {n}", report.shed);
    assert!(sixth(report.ok / 2));
    assert_eq!(report.ok_latency_us.count, report.ok);
    assert_eq!(report.shed_latency_us.count, report.shed);
    assert!(report.bytes >= report.ok * 17_000, "bulk replies counted on the wire");
    assert!(report.first_line.starts_with("ERRORS: "), "{}", report.first_line);
    assert!(report.first_line.contains("shed with -OVERLOADED/-BUSY"), "{}", report.first_line);
    assert!(report.to_text().contains("(-OVERLOADED/-BUSY answers)"));

    // Only sheds: the first line says SHED.
    let report = run(&config(&[s.addr], WorkloadKind::RespExpect, 2, &["아델", "shed"], RespOptions::default())).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert!(report.first_line.starts_with("SHED: "), "{}", report.first_line);
}

/// A cluster-aware run (slot map from CLUSTER SLOTS) sends each command to
/// its owner: no MOVED; without the map every other command is redirected
/// and followed; either way every command succeeds on its owner.
#[test]
fn cluster_routing_and_moved() {
    let nodes = cluster(&THIRDS, false);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|s| s.addr).collect();
    let report = run(&config(&addrs, WorkloadKind::RespLikes, 6, &[], RespOptions { pipeline: 4, ..RespOptions::default() })).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    let c = resp_counts(&report);
    assert_eq!(c.redirects, 0, "routed by the slot map");
    assert_eq!(c.slot_map_refreshes, 2, "one CLUSTER SLOTS per thread");
    assert_eq!(nodes.iter().map(|n| n.node.misrouted.load(Ordering::Relaxed)).sum::<u64>(), 0);
    for n in &nodes {
        assert!(n.node.toggles.load(Ordering::Relaxed) > 0, "every node owns some of the 60 characters");
    }
    // AUTH on every node a lane talks to: 6 lanes x 3 nodes.
    assert_eq!(c.connections_opened, 18);

    let nodes = cluster(&THIRDS, false);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|s| s.addr).collect();
    let resp = RespOptions { pipeline: 4, slot_map: false, ..RespOptions::default() };
    let report = run(&config(&addrs, WorkloadKind::RespLikes, 6, &[], resp)).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert_eq!(report.ok, report.requests);
    let c = resp_counts(&report);
    assert_eq!(c.slot_map_refreshes + c.slot_map_unavailable, 0, "no CLUSTER SLOTS asked");
    // About 2 of 3 commands land on a node that does not own them.
    let share = c.redirects as f64 / report.requests as f64;
    assert!((0.5..0.8).contains(&share), "{} redirects of {}", c.redirects, report.requests);
    assert!(report.to_text().contains(&format!("\nresp        {} MOVED followed", c.redirects)));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["resp"]["redirects"], c.redirects);
    assert_eq!(json["meta"]["protocol"], "resp");
}

/// A node without CLUSTER SLOTS still redirects: the client learns the
/// slots from the MOVED answers, so redirects stop once each slot is known.
#[test]
fn moved_answers_teach_the_slot_map() {
    let nodes = cluster(&[0..8192, 8192..16384], true);
    let mut cfg = config(&[nodes[0].addr], WorkloadKind::RespLikes, 2, &[], RespOptions::default());
    cfg.threads = 1;
    let report = run(&cfg).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    let c = resp_counts(&report);
    assert_eq!(c.slot_map_refreshes, 0);
    assert!(c.slot_map_unavailable >= 1);
    // 60 characters: at most one MOVED per slot (the warm-up learns most).
    assert!(c.redirects <= 60, "{}", c.redirects);
    assert!(report.requests > 10 * c.redirects.max(1), "{} requests", report.requests);
}

#[test]
fn tryagain_is_retried_and_redirect_loops_give_up() {
    let s = serve(bind(), Node { flaky: true, ..Node::default() });
    let report = run(&config(&[s.addr], WorkloadKind::RespLikes, 2, &[], RespOptions::default())).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    let c = resp_counts(&report);
    assert!(c.tryagain_retries > report.requests / 4, "{} retries for {}", c.tryagain_retries, report.requests);
    assert!(s.node.tryagains.load(Ordering::Relaxed) >= c.tryagain_retries);

    let s = serve(bind(), Node::default());
    let report = run(&config(&[s.addr], WorkloadKind::RespExpect, 2, &["loop", "아델"], RespOptions::default())).unwrap();
    let loops = report.errors["resp_moved"];
    assert!(loops.abs_diff(report.requests / 2) <= 2, "{loops} of {}", report.requests);
    assert_eq!(report.ok + loops, report.requests);
    assert_eq!(resp_counts(&report).redirects, loops * 4, "4 redirects followed, the 5th MOVED is the answer");
}

#[test]
fn a_dead_port_is_connect_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cfg = config(&[addr], WorkloadKind::RespExpect, 2, &[], RespOptions { pipeline: 4, ..RespOptions::default() });
    cfg.duration = Duration::from_millis(300);
    let report = run(&cfg).unwrap();
    assert_eq!(report.responses, 0);
    assert_eq!(report.errors["connect"], report.requests);
    assert!(report.first_line.starts_with("ERRORS: "));
}
