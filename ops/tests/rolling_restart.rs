//! Rolling restart under load (issue 5): clients toggle likes (JWT users ×
//! characters, one `Idempotency-Key` per toggle) and read expectations
//! without pause while the node is stopped with SIGTERM and started again
//! on the same data dir and port, three times.
//!
//! What a client may see, and what it may not (the drain window, README
//! "Graceful shutdown"): from the SIGTERM until the process has exited, a
//! request either gets its full answer (200, or 503 + Retry-After) or is
//! never read: its connection is closed or refused without an answer, and
//! the client retries it (with the same key). While no process listens,
//! connecting is refused; the client retries. Outside that window (the node
//! up, ready and not signalled) any 5xx or dropped connection is a failure.
//!
//! Asserted: every acknowledged toggle answered the state the client's own
//! model predicts (`liked` flips each time: nothing lost, nothing applied
//! twice), the final like state of every (user, character) and every
//! count equal the acknowledged net likes, expectation answers never change
//! across restarts, every exit after SIGTERM is code 0 and every restart
//! replays nothing (the final checkpoint covered the log). No timing asserts:
//! phases advance on progress (acknowledged toggles), bounded by generous
//! deadlines.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::http::Conn;
use common::maple::{DataDir, Launch, EXIT_TIMEOUT};
use common::{enc, like_answer, metric, wait_for, Resp, Rng};

const SECRET: &str = "rolling-restart-secret";
const USERS: usize = 24;
const CHARS: usize = 6;
/// Like clients; client `t` owns the users `u % LIKE_CLIENTS == t`, so each
/// (user, character) is toggled by one thread, one request at a time.
const LIKE_CLIENTS: usize = 4;
const RESTARTS: usize = 3;
/// Acknowledged toggles between two restarts (and after the last one).
const TOGGLES_PER_LIFE: usize = 150;
/// Expectation answers between two restarts.
const READS_PER_LIFE: usize = 4;
/// No progress at all for this long is a hang.
const STALL: Duration = Duration::from_secs(120);
/// The Evan fixture's highest preset, as the original computes it (derived/README.md).
const EVAN_TOTAL: f64 = 3_325_625_981_940.0;

/// `CHARS` names, Korean and Latin, half of them owned by each of the 2
/// cores (so likes are served inline and forwarded across cores).
fn characters() -> Vec<String> {
    let slots = replication::SlotMap::new(16, 2);
    let mut per_core = [Vec::new(), Vec::new()];
    for i in 0.. {
        let name = if i % 2 == 0 { format!("롤링{i}") } else { format!("Rolling{i}") };
        let (_, _, core) = slots.locate(&name).expect("a valid name");
        if per_core[core].len() < CHARS / 2 {
            per_core[core].push(name);
        }
        if per_core.iter().all(|names| names.len() == CHARS / 2) {
            break;
        }
    }
    per_core.concat()
}

fn bearer(user: usize) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
    format!("Bearer {}", net::jwt::sign(SECRET.as_bytes(), &format!("roller{user}"), exp))
}

/// Where the node's life cycle is, as the clients see it. Processes are
/// numbered 0, 1, ... in start order; a connection belongs to the process
/// `current` named when it was opened (the next one is spawned only after
/// the previous one exited, so it cannot be anyone else).
#[derive(Default)]
struct Lifecycle {
    /// The process that is (or is about to be) listening.
    current: AtomicUsize,
    /// How many processes have been sent SIGTERM (set before the signal).
    terminated: AtomicUsize,
    /// How many processes answered `/health/ready` 200 (set after).
    ready: AtomicUsize,
    acks: AtomicUsize,
    reads: AtomicUsize,
    /// Keyed toggles retried against a later process than the one that answered them.
    retried_after_restart: AtomicUsize,
    stop: AtomicBool,
}

impl Lifecycle {
    /// Whether process `p` may, right now, drop a connection or answer 5xx:
    /// only once it was told to stop, or before it was ready.
    fn in_window(&self, p: usize) -> bool {
        self.terminated.load(Ordering::SeqCst) > p || self.ready.load(Ordering::SeqCst) <= p
    }
}

/// A client's connection, reopened on demand, tagged with its process.
struct Client {
    addr: SocketAddr,
    life: Arc<Lifecycle>,
    conn: Option<(Conn, usize)>,
    /// Everything this client saw that it must not have.
    failures: Vec<String>,
    statuses: HashMap<u16, usize>,
    /// Requests answered 503 or dropped inside the drain window (retried).
    retried_in_window: usize,
    /// The process that gave the last answer of [`Client::call`].
    answered_by: usize,
}

impl Client {
    fn new(addr: SocketAddr, life: Arc<Lifecycle>) -> Client {
        Client { addr, life, conn: None, failures: Vec::new(), statuses: HashMap::new(), retried_in_window: 0, answered_by: 0 }
    }

    fn fail(&mut self, what: String) {
        if self.failures.len() < 50 {
            self.failures.push(what);
        }
    }

    /// Send until the request gets a non-5xx answer, retrying (the same
    /// request: same idempotency key) what the drain window allows. `None`
    /// when the test is stopping or a failure was recorded.
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
            let (mut conn, p) = match self.conn.take() {
                Some(c) => c,
                None => {
                    let p = self.life.current.load(Ordering::SeqCst);
                    match Conn::open(self.addr) {
                        Ok(c) => (c, p),
                        Err(e) => {
                            if !self.life.in_window(p) {
                                self.fail(format!("connect to process {p} (up, not stopping): {e}"));
                                return None;
                            }
                            std::thread::sleep(Duration::from_millis(10)); // nobody listens: back off
                            continue;
                        }
                    }
                }
            };
            match conn.send(method, path, headers) {
                Ok(r) => {
                    *self.statuses.entry(r.status).or_default() += 1;
                    let keep = r.header("connection") != Some("close");
                    if r.status >= 500 {
                        if r.status == 503 && self.life.in_window(p) {
                            self.retried_in_window += 1;
                            std::thread::sleep(Duration::from_millis(10));
                            continue; // the connection closes with the drain
                        }
                        let window = if self.life.in_window(p) { "inside" } else { "outside" };
                        self.fail(format!(
                            "{method} {path}: {} {window} the drain window of process {p}: {:?}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        ));
                        return None;
                    }
                    if keep {
                        self.conn = Some((conn, p));
                    }
                    self.answered_by = p;
                    return Some(r);
                }
                Err(e) => {
                    if !self.life.in_window(p) {
                        self.fail(format!("{method} {path}: connection to process {p} (up, not stopping) failed: {e}"));
                        return None;
                    }
                    // Dropped unanswered by the drain: not applied; retry.
                    self.retried_in_window += 1;
                }
            }
        }
    }
}

/// What one like client knows at the end: the state of every pair it owns.
struct LikeReport {
    model: HashMap<(usize, usize), bool>,
    failures: Vec<String>,
    statuses: HashMap<u16, usize>,
    retried_in_window: usize,
}

fn like_client(t: usize, addr: SocketAddr, life: Arc<Lifecycle>, seed: u64) -> LikeReport {
    let mut rng = Rng(seed);
    let mut client = Client::new(addr, life.clone());
    let mut model: HashMap<(usize, usize), bool> = HashMap::new();
    let mine: Vec<usize> = (0..USERS).filter(|u| u % LIKE_CLIENTS == t).collect();
    let tokens: HashMap<usize, String> = mine.iter().map(|&u| (u, bearer(u))).collect();
    let names = characters();
    let mut seq = 0u64;
    // The last acknowledged toggle: (path, user, key, liked, answering process).
    let mut last: Option<(String, usize, String, bool, usize)> = None;
    // The last toggle an earlier process acknowledged, once a later one answers.
    let mut replay: Option<(String, usize, String, bool, usize)> = None;
    while !life.stop.load(Ordering::SeqCst) && client.failures.is_empty() {
        if let Some((path, u, key, liked, _)) = replay.take() {
            // A retry of a toggle answered just before a restart (its answer
            // lost, say): the first answer again, no second toggle.
            let headers = [("Authorization", tokens[&u].as_str()), ("Idempotency-Key", key.as_str())];
            let Some(r) = client.call("POST", &path, &headers) else { break };
            if like_answer(&r).map(|a| a.0) != Some(liked) {
                client.fail(format!(
                    "retry of {key} after a restart: {:?} (status {}), first answer liked={liked}",
                    like_answer(&r),
                    r.status
                ));
            }
            life.retried_after_restart.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let u = mine[rng.below(mine.len() as u64) as usize];
        let c = rng.below(CHARS as u64) as usize;
        let known = model.get(&(u, c)).copied().unwrap_or(false);
        seq += 1;
        if seq.is_multiple_of(7) {
            // Read-your-writes: the status of a pair only this thread toggles.
            let Some(r) =
                client.call("GET", &format!("/api/v2/characters/{}/like/status", enc(&names[c])), &[("Authorization", &tokens[&u])])
            else {
                break;
            };
            match like_answer(&r) {
                Some((liked, _)) if liked == known => {}
                other => client.fail(format!(
                    "status of roller{u} on {}: {other:?} (status {}), acknowledged state liked={known}",
                    names[c], r.status
                )),
            }
            continue;
        }
        let key = format!("rr-{t}-{seq}");
        let path = format!("/api/v2/characters/{}/like", enc(&names[c]));
        let headers = [("Authorization", tokens[&u].as_str()), ("Idempotency-Key", key.as_str())];
        let Some(r) = client.call("POST", &path, &headers) else { break };
        match like_answer(&r) {
            Some((liked, count)) if liked != known && count <= USERS as u64 && (count >= 1 || !liked) => {
                model.insert((u, c), liked);
                let this = (path.clone(), u, key.clone(), liked, client.answered_by);
                if let Some(prev) = last.replace(this) {
                    if prev.4 < client.answered_by {
                        replay = Some(prev);
                    }
                }
                life.acks.fetch_add(1, Ordering::SeqCst);
            }
            other => {
                client.fail(format!(
                    "toggle {key} of roller{u} on {}: {other:?} (status {}), acknowledged state before liked={known}",
                    names[c], r.status
                ));
                break;
            }
        }
        if seq.is_multiple_of(10) {
            // A duplicate delivery of the same request: the first answer, no second toggle.
            let Some(r) = client.call("POST", &path, &headers) else { break };
            if like_answer(&r).map(|a| a.0) != Some(!known) {
                client.fail(format!("replay of {key}: {:?} (status {}), first answer liked={}", like_answer(&r), r.status, !known));
            }
        }
    }
    LikeReport { model, failures: client.failures, statuses: client.statuses, retried_in_window: client.retried_in_window }
}

struct ReadReport {
    failures: Vec<String>,
    statuses: HashMap<u16, usize>,
    retried_in_window: usize,
    answers: usize,
}

/// Expectation reads of a few characters: every answer of one name carries
/// the same total, before and after each restart (computed, then served from
/// memory or, after a restart, from the store).
fn read_client(addr: SocketAddr, life: Arc<Lifecycle>) -> ReadReport {
    let names = ["evan", "mechanic", "아델", "강은호"];
    let mut totals: HashMap<&str, f64> = HashMap::from([("evan", EVAN_TOTAL)]);
    let mut client = Client::new(addr, life.clone());
    let mut answers = 0;
    let mut i = 0;
    while !life.stop.load(Ordering::SeqCst) && client.failures.is_empty() {
        let name = names[i % names.len()];
        let path = if i % 3 == 2 {
            format!("/api/v4/characters/{}/expectation/preset/1", enc(name))
        } else {
            format!("/api/v4/characters/{}/expectation", enc(name))
        };
        i += 1;
        let Some(r) = client.call("GET", &path, &[]) else { break };
        if r.status != 200 {
            client.fail(format!("GET {path}: {} {:?}", r.status, String::from_utf8_lossy(&r.body)));
            break;
        }
        answers += 1;
        life.reads.fetch_add(1, Ordering::SeqCst);
        if path.contains("/preset/") {
            continue;
        }
        let total = serde_json::from_slice::<serde_json::Value>(&r.body).ok().and_then(|v| v["totalExpectedCost"].as_f64());
        match (total, totals.get(name)) {
            (Some(t), Some(&known)) if t == known => {}
            (Some(t), None) => {
                totals.insert(name, t);
            }
            (t, known) => client.fail(format!("{name}: totalExpectedCost {t:?}, earlier {known:?} (x-cache {:?})", r.header("x-cache"))),
        }
    }
    ReadReport { failures: client.failures, statuses: client.statuses, retried_in_window: client.retried_in_window, answers }
}

/// What every client saw, summed.
#[derive(Default)]
struct Outcome {
    model: HashMap<(usize, usize), bool>,
    failures: Vec<String>,
    statuses: HashMap<u16, usize>,
    retried_in_window: usize,
    answers: usize,
}

fn join_clients(
    life: &Lifecycle,
    likers: Vec<std::thread::JoinHandle<LikeReport>>,
    reader: std::thread::JoinHandle<ReadReport>,
) -> Outcome {
    life.stop.store(true, Ordering::SeqCst);
    let mut out = Outcome::default();
    for h in likers {
        let r = h.join().expect("like client panicked");
        out.model.extend(r.model);
        out.failures.extend(r.failures);
        out.retried_in_window += r.retried_in_window;
        for (s, n) in r.statuses {
            *out.statuses.entry(s).or_default() += n;
        }
    }
    let r = reader.join().expect("read client panicked");
    out.failures.extend(r.failures);
    out.retried_in_window += r.retried_in_window;
    out.answers = r.answers;
    for (s, n) in r.statuses {
        *out.statuses.entry(s).or_default() += n;
    }
    out
}

#[test]
fn rolling_restart_under_load_loses_nothing_and_5xx_only_while_draining() {
    let dir = DataDir::new("rolling-restart");
    let launch = Launch::serve(dir.path()).args(&["--cores", "2", "--drain-secs", "30"]).env("MAPLE_JWT_SECRET", SECRET);
    let mut node = launch.start();
    let addr = node.addr;
    let launch = launch.listen(addr); // every restart on the same port
    let life = Arc::new(Lifecycle::default());
    life.ready.store(1, Ordering::SeqCst);

    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 ^ u64::from(std::process::id());
    eprintln!("rolling restart: seed {seed}, port {}", addr.port());
    let likers: Vec<_> = (0..LIKE_CLIENTS)
        .map(|t| {
            let life = life.clone();
            std::thread::spawn(move || like_client(t, addr, life, (seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1))
        })
        .collect();
    let reader = {
        let life = life.clone();
        std::thread::spawn(move || read_client(addr, life))
    };
    let done = || likers.iter().any(|h| h.is_finished()) || reader.is_finished();

    let mut progress = Ok(());
    for p in 0..RESTARTS {
        progress = wait_for(&life.acks, (p + 1) * TOGGLES_PER_LIFE, "acknowledged toggles", STALL, done)
            .and_then(|_| wait_for(&life.reads, (p + 1) * READS_PER_LIFE, "expectation answers", STALL, done));
        if progress.is_err() {
            break;
        }
        // Stop process p under load.
        life.terminated.store(p + 1, Ordering::SeqCst);
        node.stop_gracefully();
        let checkpoints = node.log_lines("final checkpoint");
        assert_eq!(checkpoints.len(), 2, "one final checkpoint per core (log follows)");
        // Start process p + 1 on the same data dir and port.
        life.current.store(p + 1, Ordering::SeqCst);
        node = launch.start();
        life.ready.store(p + 2, Ordering::SeqCst);
        assert_eq!(node.addr, addr);
        let recovered = node.log_lines(" recovered in ");
        assert_eq!(recovered.len(), 2, "(log follows)");
        assert!(recovered.iter().all(|l| l.contains("replayed 0 log entries")), "a graceful stop leaves nothing to replay (log follows)");
    }
    if progress.is_ok() {
        progress = wait_for(&life.acks, (RESTARTS + 1) * TOGGLES_PER_LIFE, "acknowledged toggles", STALL, done);
    }
    let out = join_clients(&life, likers, reader);
    assert!(out.failures.is_empty(), "{} failures:\n{}", out.failures.len(), out.failures.join("\n"));
    progress.unwrap();
    assert!(out.answers >= RESTARTS * READS_PER_LIFE);
    let retried_after_restart = life.retried_after_restart.load(Ordering::SeqCst);
    assert!(retried_after_restart >= LIKE_CLIENTS, "every like client retried a toggle across a restart");
    eprintln!(
        "rolling restart: statuses {:?}, {} requests retried inside a drain window, {retried_after_restart} keyed toggles retried after a restart",
        out.statuses, out.retried_in_window
    );
    let model = out.model;

    // Every acknowledged toggle is there, and every count is its likers.
    let mut conn = Conn::open(addr).unwrap();
    let tokens: Vec<String> = (0..USERS).map(bearer).collect();
    let names = characters();
    for (c, name) in names.iter().enumerate() {
        let path = format!("/api/v2/characters/{}/like/status", enc(name));
        let likers = (0..USERS).filter(|&u| model.get(&(u, c)) == Some(&true)).count() as u64;
        for (u, token) in tokens.iter().enumerate() {
            let r = conn.send("GET", &path, &[("Authorization", token)]).unwrap();
            let expected = model.get(&(u, c)).copied().unwrap_or(false);
            assert_eq!(like_answer(&r), Some((expected, likers)), "roller{u} on {name}");
        }
    }
    drop(conn);
    node.stop_gracefully();
}

#[test]
fn a_restart_before_the_old_process_exits_waits_for_the_data_dir() {
    let dir = DataDir::new("restart-overlap");
    // Upstream calls take 2.5 s each: a cold expectation (two or more calls)
    // keeps the old process draining long after the new one has started.
    let launch = Launch::serve(dir.path())
        .args(&["--cores", "2", "--drain-secs", "30", "--sim-latency-ms", "2500", "--upstream-timeout-ms", "20000"])
        .env("MAPLE_JWT_SECRET", SECRET);
    let mut old = launch.start();
    let addr = old.addr;
    let mut conn = Conn::open(addr).unwrap();
    let auth = bearer(0);
    let like = format!("/api/v2/characters/{}/like", enc("겹침"));
    let first = conn.send("POST", &like, &[("Authorization", &auth), ("Idempotency-Key", "overlap-1")]).unwrap();
    assert_eq!(like_answer(&first), Some((true, 1)));
    let slow = std::thread::spawn(move || common::http::try_request(addr, "GET", "/api/v4/characters/slowpoke/expectation", &[]));
    // The slow request is inside the node once the in-flight gauge counts
    // it besides the /metrics request asking.
    let started = Instant::now();
    while metric(addr, "maple_requests_in_flight") < 2.0 {
        assert!(started.elapsed() < STALL, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(conn);
    old.sigterm();
    // Start the new process at once: it waits for the old one's lock on the
    // data dir (holding no port) instead of failing, then binds the port.
    let mut new = launch.clone().listen(addr).start();
    let slow = slow.join().unwrap().expect("the in-flight request is answered during the drain");
    assert_eq!(slow.status, 200, "{:?}", String::from_utf8_lossy(&slow.body));
    assert_eq!(old.wait_exit(EXIT_TIMEOUT).code(), Some(0), "{}", old.log());
    assert!(!new.log_lines("waiting for the data dir lock").is_empty(), "the new process waited:\n{}", new.log());
    let mut conn = Conn::open(addr).unwrap();
    let status = conn.send("GET", &format!("{like}/status"), &[("Authorization", &auth)]).unwrap();
    assert_eq!(like_answer(&status), Some((true, 1)), "the like made before the restart");
    drop(conn);
    new.stop_gracefully();
}
