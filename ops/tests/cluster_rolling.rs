//! Rolling restart of a 3-node cluster under like + expectation load
//! (issue 11; blockers P0-6, P1-10, P1-16, P1-17): each node in turn gets
//! SIGTERM (its leaderships are transferred, it drains, exits 0), is
//! started again on its data dir and ports, catches up, and takes its
//! preferred leaderships back; clients keep sending to all three nodes.
//!
//! What a client may see (the drain window, README "Graceful shutdown",
//! widened to the cluster): from the SIGTERM of node k until k is back,
//! ready, and every partition led by its preferred replica again (a
//! "restart window"), any node may answer 503 + Retry-After (an election,
//! a leadership move, a forward to the stopping node); only node k may
//! close a connection unanswered or refuse one. Outside every restart
//! window any 5xx or dropped connection is a failure; inside, any 5xx
//! other than 503 + Retry-After is one too. Retries keep their
//! `Idempotency-Key`, and go to the next node.
//!
//! Asserted: every acknowledged toggle answered the state the client's own
//! model predicts (nothing lost, nothing applied twice), a keyed toggle
//! sent again (to another node, and after each restart) gets its first
//! answer, expectation totals never change, every exit is code 0 after
//! handing leadership over, and at the end every node answers the exact
//! acknowledged state and count of every (user, character). No timing
//! asserts: phases advance on progress, bounded by generous deadlines.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::cluster::{Cluster, SECRET};
use common::http::Conn;
use common::{enc, like_answer, wait_for, Resp, Rng};

const NODES: usize = 3;
const PARTITIONS: u32 = 16;
const USERS: usize = 12;
const CHARS: usize = 6;
/// Like clients; client `t` owns the users `u % LIKE_CLIENTS == t`, so each
/// (user, character) is toggled by one thread, one request at a time.
const LIKE_CLIENTS: usize = 3;
/// Acknowledged toggles before the first restart, between two restarts and after the last.
const TOGGLES_PER_PHASE: usize = 60;
const READS_PER_PHASE: usize = 4;
/// No progress at all for this long is a hang.
const STALL: Duration = Duration::from_secs(120);
/// The Evan fixture's highest preset, as the original computes it (derived/README.md).
const EVAN_TOTAL: f64 = 3_325_625_981_940.0;

/// The node a partition's leadership returns to: the nodes' own placement
/// (node ids 1..=NODES, RF = NODES).
fn preferred_leader(p: usize) -> u64 {
    let ids: Vec<u64> = (1..=NODES as u64).collect();
    replication::Placement::new(&ids, PARTITIONS, NODES).expect("a valid placement").preferred_leader(p as u32)
}

/// `CHARS` names whose partitions prefer each node in turn (so every node
/// leads some of them, and each restart moves some).
fn characters() -> Vec<String> {
    let slots = replication::SlotMap::new(PARTITIONS, 2);
    let mut per_node: Vec<Vec<String>> = vec![Vec::new(); NODES];
    for i in 0.. {
        let name = if i % 2 == 0 { format!("클러스터{i}") } else { format!("Roll{i}") };
        let (_, slot, _) = slots.locate(&name).expect("a valid name");
        let node = preferred_leader(slots.partition_of(slot) as usize) as usize - 1;
        if per_node[node].len() < CHARS / NODES {
            per_node[node].push(name);
        }
        if per_node.iter().all(|names| names.len() == CHARS / NODES) {
            break;
        }
    }
    per_node.concat()
}

fn bearer(user: usize) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    format!("Bearer {}", net::jwt::sign(SECRET.as_bytes(), &format!("roller{user}"), exp))
}

/// One node's life cycle as the clients see it (processes numbered in
/// start order; a connection belongs to the process current when it was
/// opened: the next is spawned only after the previous one exited).
#[derive(Default)]
struct NodeLife {
    current: AtomicUsize,
    /// Processes sent SIGTERM (set before the signal).
    terminated: AtomicUsize,
    /// Processes that answered ready (set after; the first is ready at the start).
    ready: AtomicUsize,
}

impl NodeLife {
    /// Whether process `p` of this node may drop or refuse a connection.
    fn in_window(&self, p: usize) -> bool {
        self.terminated.load(Ordering::SeqCst) > p || self.ready.load(Ordering::SeqCst) <= p
    }
}

#[derive(Default)]
struct Lifecycle {
    nodes: [NodeLife; NODES],
    /// Restart windows opened (before a SIGTERM) and closed (once balanced again).
    opened: AtomicUsize,
    closed: AtomicUsize,
    acks: AtomicUsize,
    reads: AtomicUsize,
    stop: AtomicBool,
}

impl Lifecycle {
    /// Whether a restart window overlapped a request sent when `closed` windows had closed.
    fn window_since(&self, closed_at_send: usize) -> bool {
        self.opened.load(Ordering::SeqCst) > closed_at_send
    }
}

/// A client of all three nodes: one connection per node, reopened on
/// demand, requests spread round robin.
struct Client {
    addrs: Vec<SocketAddr>,
    life: Arc<Lifecycle>,
    conns: Vec<Option<(Conn, usize)>>,
    next: usize,
    failures: Vec<String>,
    statuses: HashMap<u16, usize>,
    /// Requests answered 503 or dropped inside a restart window (retried).
    retried_in_window: usize,
}

impl Client {
    fn new(addrs: Vec<SocketAddr>, life: Arc<Lifecycle>, first: usize) -> Client {
        let conns = addrs.iter().map(|_| None).collect();
        Client { addrs, life, conns, next: first, failures: Vec::new(), statuses: HashMap::new(), retried_in_window: 0 }
    }

    fn fail(&mut self, what: String) {
        if self.failures.len() < 50 {
            self.failures.push(what);
        }
    }

    /// Send to the next node until the request gets a non-5xx answer,
    /// retrying (the same request, at the next node) what a restart window
    /// allows. `None` when the test is stopping or a failure was recorded.
    fn call(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<Resp> {
        let started = Instant::now();
        loop {
            if self.life.stop.load(Ordering::SeqCst) {
                return None;
            }
            if started.elapsed() > STALL {
                self.fail(format!("{method} {path}: no answer within {STALL:?}"));
                return None;
            }
            let n = self.next % self.addrs.len();
            self.next += 1;
            let closed_at_send = self.life.closed.load(Ordering::SeqCst);
            let node = &self.life.nodes[n];
            let (mut conn, p) = match self.conns[n].take() {
                Some(c) => c,
                None => {
                    let p = node.current.load(Ordering::SeqCst);
                    match Conn::open(self.addrs[n]) {
                        Ok(c) => (c, p),
                        Err(e) => {
                            if !node.in_window(p) {
                                self.fail(format!("connect to node {} process {p} (up, not stopping): {e}", n + 1));
                                return None;
                            }
                            continue; // nobody listens there: the next node
                        }
                    }
                }
            };
            match conn.send(method, path, headers) {
                Ok(r) => {
                    *self.statuses.entry(r.status).or_default() += 1;
                    if r.status >= 500 {
                        let window = self.life.window_since(closed_at_send);
                        if r.status == 503 && r.header("retry-after").is_some() && window {
                            self.retried_in_window += 1;
                            std::thread::sleep(Duration::from_millis(10));
                            continue; // the connection may close with a drain: reopened next time
                        }
                        let when = if window { "inside" } else { "outside" };
                        self.fail(format!(
                            "{method} {path} at node {}: {} {when} a restart window: {:?}",
                            n + 1,
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        ));
                        return None;
                    }
                    if r.header("connection") != Some("close") {
                        self.conns[n] = Some((conn, p));
                    }
                    return Some(r);
                }
                Err(e) => {
                    if !node.in_window(p) {
                        self.fail(format!("{method} {path}: connection to node {} process {p} (up, not stopping) failed: {e}", n + 1));
                        return None;
                    }
                    // Dropped unanswered by the drain: not applied; retry elsewhere.
                    self.retried_in_window += 1;
                }
            }
        }
    }
}

struct Report {
    model: HashMap<(usize, usize), bool>,
    failures: Vec<String>,
    statuses: HashMap<u16, usize>,
    retried_in_window: usize,
    /// Keyed toggles sent again (another node, or after a restart) that got their first answer.
    replays: usize,
}

fn like_client(t: usize, addrs: Vec<SocketAddr>, life: Arc<Lifecycle>, seed: u64) -> Report {
    let mut rng = Rng(seed);
    let mut client = Client::new(addrs, life.clone(), t);
    let mut model: HashMap<(usize, usize), bool> = HashMap::new();
    let mine: Vec<usize> = (0..USERS).filter(|u| u % LIKE_CLIENTS == t).collect();
    let tokens: HashMap<usize, String> = mine.iter().map(|&u| (u, bearer(u))).collect();
    let names = characters();
    let mut seq = 0u64;
    let mut replays = 0;
    // The last acknowledged toggle (path, user, key, liked) and the windows
    // closed when it was answered: after a restart it is sent again.
    let mut last: Option<(String, usize, String, bool, usize)> = None;
    while !life.stop.load(Ordering::SeqCst) && client.failures.is_empty() {
        seq += 1;
        let replay_due = last.as_ref().is_some_and(|l| l.4 < life.closed.load(Ordering::SeqCst));
        if replay_due || seq.is_multiple_of(10) {
            // The same request delivered again (to the next node; across a
            // restart when due): its first answer, no second toggle.
            let Some((path, u, key, liked, _)) = last.take() else { continue };
            let headers = [("Authorization", tokens[&u].as_str()), ("Idempotency-Key", key.as_str())];
            let Some(r) = client.call("POST", &path, &headers) else { break };
            if like_answer(&r).map(|a| a.0) != Some(liked) {
                client.fail(format!("{key} sent again: {:?} (status {}), first answer liked={liked}", like_answer(&r), r.status));
            }
            replays += 1;
            continue;
        }
        let u = mine[rng.below(mine.len() as u64) as usize];
        let c = rng.below(CHARS as u64) as usize;
        let known = model.get(&(u, c)).copied().unwrap_or(false);
        if seq.is_multiple_of(7) {
            // Read-your-writes through any node: a pair only this thread toggles.
            let path = format!("/api/v2/characters/{}/like/status", enc(&names[c]));
            let Some(r) = client.call("GET", &path, &[("Authorization", &tokens[&u])]) else { break };
            match like_answer(&r) {
                Some((liked, _)) if liked == known => {}
                other => client.fail(format!("status of roller{u} on {}: {other:?}, acknowledged liked={known}", names[c])),
            }
            continue;
        }
        let key = format!("cr-{t}-{seq}");
        let path = format!("/api/v2/characters/{}/like", enc(&names[c]));
        let headers = [("Authorization", tokens[&u].as_str()), ("Idempotency-Key", key.as_str())];
        let Some(r) = client.call("POST", &path, &headers) else { break };
        match like_answer(&r) {
            Some((liked, count)) if liked != known && count <= USERS as u64 && (count >= 1 || !liked) => {
                model.insert((u, c), liked);
                last = Some((path, u, key, liked, life.closed.load(Ordering::SeqCst)));
                life.acks.fetch_add(1, Ordering::SeqCst);
            }
            other => {
                client.fail(format!(
                    "toggle {key} of roller{u} on {}: {other:?} (status {}), acknowledged before liked={known}",
                    names[c], r.status
                ));
                break;
            }
        }
    }
    Report { model, failures: client.failures, statuses: client.statuses, retried_in_window: client.retried_in_window, replays }
}

/// Expectation reads through every node: one name always has one total.
fn read_client(addrs: Vec<SocketAddr>, life: Arc<Lifecycle>) -> Report {
    let names = ["evan", "mechanic", "아델", "강은호"];
    let mut totals: HashMap<&str, f64> = HashMap::from([("evan", EVAN_TOTAL)]);
    let mut client = Client::new(addrs, life.clone(), 0);
    let mut i = 0;
    while !life.stop.load(Ordering::SeqCst) && client.failures.is_empty() {
        let name = names[i % names.len()];
        i += 1;
        let path = format!("/api/v4/characters/{}/expectation", enc(name));
        let Some(r) = client.call("GET", &path, &[]) else { break };
        let total = serde_json::from_slice::<serde_json::Value>(&r.body).ok().and_then(|v| v["totalExpectedCost"].as_f64());
        match (r.status, total, totals.get(name)) {
            (200, Some(t), Some(&known)) if t == known => {}
            (200, Some(t), None) => {
                totals.insert(name, t);
            }
            (status, t, known) => {
                client.fail(format!("GET {path}: {status}, totalExpectedCost {t:?}, earlier {known:?}"));
                break;
            }
        }
        life.reads.fetch_add(1, Ordering::SeqCst);
    }
    Report {
        model: HashMap::new(),
        failures: client.failures,
        statuses: client.statuses,
        retried_in_window: client.retried_in_window,
        replays: 0,
    }
}

/// Wait until every running node sees every partition led by its preferred replica.
fn wait_balanced(c: &Cluster) {
    let deadline = Instant::now() + STALL;
    let preferred: Vec<u64> = (0..PARTITIONS as usize).map(preferred_leader).collect();
    loop {
        let views: Vec<Vec<Option<u64>>> = c.alive().iter().map(|id| c.leaders(*id)).collect();
        if views.iter().all(|v| v.iter().copied().eq(preferred.iter().map(|l| Some(*l)))) {
            return;
        }
        assert!(Instant::now() < deadline, "leaders not back on their preferred replicas: {views:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rolling_restart_of_three_nodes_under_load_loses_nothing() {
    let mut c = Cluster::start("cl-rolling", NODES, &["--partitions", &PARTITIONS.to_string(), "--drain-secs", "30"]);
    wait_balanced(&c);
    let addrs: Vec<SocketAddr> = (1..=NODES as u64).map(|id| c.addr(id)).collect();
    let life = Arc::new(Lifecycle::default());
    for n in &life.nodes {
        n.ready.store(1, Ordering::SeqCst);
    }
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 ^ u64::from(std::process::id());
    eprintln!("cluster rolling restart: seed {seed}, nodes {addrs:?}");
    let likers: Vec<_> = (0..LIKE_CLIENTS)
        .map(|t| {
            let (life, addrs) = (life.clone(), addrs.clone());
            std::thread::spawn(move || like_client(t, addrs, life, (seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1))
        })
        .collect();
    let reader = {
        let (life, addrs) = (life.clone(), addrs.clone());
        std::thread::spawn(move || read_client(addrs, life))
    };
    let done = || likers.iter().any(|h| h.is_finished()) || reader.is_finished();

    let mut progress = Ok(());
    for (k, id) in (1..=NODES as u64).enumerate() {
        progress = wait_for(&life.acks, (k + 1) * TOGGLES_PER_PHASE, "acknowledged toggles", STALL, done)
            .and_then(|_| wait_for(&life.reads, (k + 1) * READS_PER_PHASE, "expectation answers", STALL, done));
        if progress.is_err() {
            break;
        }
        let node = &life.nodes[id as usize - 1];
        life.opened.fetch_add(1, Ordering::SeqCst);
        node.terminated.fetch_add(1, Ordering::SeqCst);
        let mut old = c.take(id);
        old.stop_gracefully();
        assert!(!old.log_lines("transferred the leadership of").is_empty(), "node {id} handed its leaderships over (log follows)");
        drop(old);
        node.current.fetch_add(1, Ordering::SeqCst);
        c.restart(id);
        node.ready.fetch_add(1, Ordering::SeqCst);
        wait_balanced(&c);
        life.closed.fetch_add(1, Ordering::SeqCst);
    }
    if progress.is_ok() {
        progress = wait_for(&life.acks, (NODES + 1) * TOGGLES_PER_PHASE, "acknowledged toggles", STALL, done);
    }
    life.stop.store(true, Ordering::SeqCst);
    let mut reports: Vec<Report> = likers.into_iter().map(|h| h.join().expect("like client panicked")).collect();
    reports.push(reader.join().expect("read client panicked"));
    let failures: Vec<&String> = reports.iter().flat_map(|r| &r.failures).collect();
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"));
    progress.unwrap();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for (s, n) in reports.iter().flat_map(|r| &r.statuses) {
        *statuses.entry(*s).or_default() += n;
    }
    let replays: usize = reports.iter().map(|r| r.replays).sum();
    let retried: usize = reports.iter().map(|r| r.retried_in_window).sum();
    eprintln!(
        "cluster rolling restart: statuses {statuses:?}, {retried} retried inside restart windows, {replays} keyed toggles sent again"
    );
    assert!(replays >= LIKE_CLIENTS * NODES, "every like client sent keyed toggles again, across restarts too");
    let model: HashMap<(usize, usize), bool> = reports.into_iter().flat_map(|r| r.model).collect();

    // Every node answers every acknowledged toggle, and every count is its likers.
    let tokens: Vec<String> = (0..USERS).map(bearer).collect();
    for id in 1..=NODES as u64 {
        let mut conn = Conn::open(c.addr(id)).unwrap();
        for (ch, name) in characters().iter().enumerate() {
            let path = format!("/api/v2/characters/{}/like/status", enc(name));
            let likers = (0..USERS).filter(|&u| model.get(&(u, ch)) == Some(&true)).count() as u64;
            for (u, token) in tokens.iter().enumerate() {
                let r = conn.send("GET", &path, &[("Authorization", token)]).unwrap();
                let expected = model.get(&(u, ch)).copied().unwrap_or(false);
                assert_eq!(like_answer(&r), Some((expected, likers)), "roller{u} on {name} through node {id}");
            }
        }
    }
    for id in 1..=NODES as u64 {
        c.node(id).stop_gracefully();
    }
}
