//! End-to-end tests of durable likes: the real `maple serve` binary (started
//! with the shared launcher in tests/common), a std-only HTTP/1.1 client
//! (keep-alive), SIGKILL crashes and SIGTERM stops on the same data
//! directory. No timing asserts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::http::Conn;
use common::maple::{DataDir, Launch, Maple};
use common::{enc, metric_sum, Resp, Rng};

const SECRET: &str = "likes-test-secret";

/// A node on `data_dir` with this file's JWT secret (launcher: tests/common/maple.rs).
fn start(data_dir: &Path, cores: &str) -> Maple {
    start_with(data_dir, cores, &[])
}

fn start_with(data_dir: &Path, cores: &str, extra: &[&str]) -> Maple {
    Launch::serve(data_dir).arg("--cores", cores).args(extra).env("MAPLE_JWT_SECRET", SECRET).start()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(user: &str) -> String {
    net::jwt::sign(SECRET.as_bytes(), user, now() + 3600)
}

impl Resp {
    /// `(liked, likeCount)` of a 200 like answer.
    fn like(&self) -> (bool, u64) {
        assert_eq!(self.status, 200, "{:?}", String::from_utf8_lossy(&self.body));
        let v = self.json();
        (v["liked"].as_bool().unwrap(), v["likeCount"].as_u64().unwrap())
    }
}

fn like_path(character: &str) -> String {
    format!("/api/v2/characters/{}/like", enc(character))
}

fn status_path(character: &str) -> String {
    format!("/api/v2/characters/{}/like/status", enc(character))
}

fn toggle(c: &mut Conn, user: &str, character: &str) -> Resp {
    let auth = format!("Bearer {}", token(user));
    c.send("POST", &like_path(character), &[("Authorization", &auth)]).unwrap()
}

fn status(c: &mut Conn, user: &str, character: &str) -> Resp {
    let auth = format!("Bearer {}", token(user));
    c.send("GET", &status_path(character), &[("Authorization", &auth)]).unwrap()
}

#[test]
fn auth_toggle_status_idempotency_and_korean_names() {
    let dir = DataDir::new("likes");
    let node = start(dir.path(), "2");
    let mut c = Conn::open(node.addr).unwrap();

    // 401 without a token, with a bad one, a wrong secret and an expired one.
    let wrong_secret = format!("Bearer {}", net::jwt::sign(b"other-secret", "alice", now() + 3600));
    let expired = format!("Bearer {}", net::jwt::sign(SECRET.as_bytes(), "alice", now() - 10));
    for headers in [
        vec![],
        vec![("Authorization", "Bearer not.a.jwt")],
        vec![("Authorization", "Basic abc")],
        vec![("Authorization", wrong_secret.as_str())],
        vec![("Authorization", expired.as_str())],
    ] {
        let r = c.send("POST", &like_path("Hero"), &headers).unwrap();
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.json()["code"], "UNAUTHORIZED");
        assert_eq!(r.json()["status"], 401);
        let r = c.send("GET", &status_path("Hero"), &headers).unwrap();
        assert_eq!(r.status, 401);
    }

    // Toggle on, off, on; status follows; counts per character.
    assert_eq!(status(&mut c, "alice", "Hero").like(), (false, 0));
    assert_eq!(toggle(&mut c, "alice", "Hero").like(), (true, 1));
    assert_eq!(toggle(&mut c, "bob", "hero").like(), (true, 2), "names are case-insensitive");
    assert_eq!(status(&mut c, "carol", "HERO").like(), (false, 2));
    assert_eq!(toggle(&mut c, "alice", "Hero").like(), (false, 1));
    assert_eq!(toggle(&mut c, "bob", "Hero").like(), (false, 0));
    assert_eq!(status(&mut c, "bob", "Hero").like(), (false, 0), "counts never go negative");

    // Korean names, each on its owner core (2 cores: some forwarded).
    for (i, name) in ["아델", "강은호", "진격캐넌", "오지환"].iter().enumerate() {
        for u in 0..=i {
            assert_eq!(toggle(&mut c, &format!("k{u}"), name).like(), (true, u as u64 + 1));
        }
        assert_eq!(status(&mut c, "k0", name).like(), (true, i as u64 + 1));
    }

    // Idempotency-Key: a retry returns the first answer and changes nothing.
    let auth = format!("Bearer {}", token("dave"));
    let keyed = [("Authorization", auth.as_str()), ("Idempotency-Key", "req-1")];
    let first = c.send("POST", &like_path("아델"), &keyed).unwrap().like();
    assert_eq!(first, (true, 2));
    assert_eq!(c.send("POST", &like_path("아델"), &keyed).unwrap().like(), first);
    assert_eq!(status(&mut c, "dave", "아델").like(), (true, 2));
    let other_key = [("Authorization", auth.as_str()), ("Idempotency-Key", "req-2")];
    assert_eq!(c.send("POST", &like_path("아델"), &other_key).unwrap().like(), (false, 1));
    let long = "k".repeat(200);
    let r = c.send("POST", &like_path("아델"), &[("Authorization", auth.as_str()), ("Idempotency-Key", &long)]).unwrap();
    assert_eq!(r.status, 400);

    // Bad names and methods are typed errors.
    let r = c.send("POST", "/api/v2/characters/%FF/like", &[("Authorization", auth.as_str())]).unwrap();
    assert_eq!(r.status, 400);
    let r = c.send("GET", &like_path("Hero"), &[("Authorization", auth.as_str())]).unwrap();
    assert_eq!(r.status, 405);

    // The token minted by `maple token` is accepted.
    let out = Command::new(env!("CARGO_BIN_EXE_maple")).args(["token", "--user", "erin"]).env("MAPLE_JWT_SECRET", SECRET).output().unwrap();
    assert!(out.status.success());
    let minted = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());
    let r = c.send("POST", &like_path("Hero"), &[("Authorization", minted.as_str())]).unwrap();
    assert_eq!(r.like(), (true, 1));

    // Metrics: toggles counted, the log synced.
    let m = String::from_utf8(c.send("GET", "/metrics", &[]).unwrap().body).unwrap();
    for name in [
        "maple_likes_toggles_total{",
        "maple_wal_fsyncs_total{",
        "maple_wal_fsync_seconds_count{",
        "maple_state_apply_lag{",
        "maple_recovery_seconds{",
        "maple_wal_backpressure_total{",
        "maple_wal_entries_per_fsync{",
        "maple_wal_log_bytes{",
        "maple_wal_sync_enabled{",
        "maple_state_tombstones_compacted_total{",
        "maple_state_rows_expired_total{",
    ] {
        assert!(m.contains(name), "{name} missing in\n{m}");
    }
    assert!(metric_sum(&m, "maple_wal_fsyncs_total") > 0.0);
    let resp = c.send("GET", "/health/ready", &[]).unwrap();
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-type").is_some());
}

const USERS: usize = 40;
const CHARS: usize = 10;
const CLIENTS: usize = 4;

fn character(c: usize) -> String {
    if c.is_multiple_of(2) {
        format!("캐릭터{c}")
    } else {
        format!("Char{c}")
    }
}

/// What one client thread saw: the last acknowledged `liked` per (user,
/// character) it touched, and the pair whose toggle was in flight at the kill.
#[derive(Default)]
struct Seen {
    acked: HashMap<(usize, usize), bool>,
    in_flight: Option<(usize, usize)>,
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_like() {
    let dir = DataDir::new("likes");
    let mut rng = Rng(now() ^ 0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64);
    // Model: the state every (user, character) is known to be in.
    let mut model: HashMap<(usize, usize), bool> = HashMap::new();
    for round in 0..3 {
        let mut node = start(dir.path(), "2");
        check_against_model(node.addr, &model, &HashMap::new(), round);
        let kill_after = 200 + rng.below(400) as usize;
        let acks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (acks, stop, addr) = (acks.clone(), stop.clone(), node.addr);
                let seed = rng.next() | 1;
                std::thread::spawn(move || client_loop(t, addr, seed, &acks, &stop))
            })
            .collect();
        while acks.load(Ordering::Relaxed) < kill_after {
            std::thread::sleep(Duration::from_millis(2));
        }
        node.crash(); // SIGKILL
        stop.store(true, Ordering::Relaxed);
        let mut uncertain = HashMap::new();
        for t in threads {
            let seen = t.join().unwrap();
            for (pair, liked) in seen.acked {
                model.insert(pair, liked);
            }
            if let Some(pair) = seen.in_flight {
                uncertain.insert(pair, ());
            }
        }
        drop(node);
        // Restart on the same data dir: every acknowledged like is there.
        let node = start(dir.path(), "2");
        let observed = check_against_model(node.addr, &model, &uncertain, round);
        // The in-flight toggles resolved one way or the other: adopt what is there.
        model = observed;
        let log = node.log();
        assert!(log.contains("recovered"), "{log}");
    }
}

/// Each client owns the users `u % CLIENTS == t`, so its toggles of one pair
/// are sequential and "the last acknowledged answer" is well defined.
fn client_loop(t: usize, addr: SocketAddr, seed: u64, acks: &AtomicUsize, stop: &AtomicBool) -> Seen {
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let tokens: Vec<String> = (0..USERS).map(|u| format!("Bearer {}", token(&format!("user{u}")))).collect();
    let Ok(mut conn) = Conn::open(addr) else { return seen };
    while !stop.load(Ordering::Relaxed) {
        let u = (rng.below((USERS / CLIENTS) as u64) as usize) * CLIENTS + t;
        let c = rng.below(CHARS as u64) as usize;
        seen.in_flight = Some((u, c));
        match conn.send("POST", &like_path(&character(c)), &[("Authorization", &tokens[u])]) {
            Ok(r) if r.status == 200 => {
                let (liked, count) = r.like();
                assert!(count <= USERS as u64 && (count >= 1 || !liked), "impossible answer {liked} {count}");
                seen.acked.insert((u, c), liked);
                seen.in_flight = None;
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) if r.status == 503 => {
                // Refused (backpressure): not applied; still "maybe" if the
                // server died right after. Retry.
                seen.in_flight = None;
            }
            Ok(r) => panic!("unexpected {} {:?}", r.status, String::from_utf8_lossy(&r.body)),
            Err(_) => break, // the server was killed; in_flight stays set
        }
    }
    seen
}

/// Reads every (user, character) status; asserts it equals the model except
/// for `uncertain` pairs, and that each count equals its likers. Returns
/// the observed state.
fn check_against_model(
    addr: SocketAddr,
    model: &HashMap<(usize, usize), bool>,
    uncertain: &HashMap<(usize, usize), ()>,
    round: usize,
) -> HashMap<(usize, usize), bool> {
    let mut conn = Conn::open(addr).unwrap();
    let mut observed = HashMap::new();
    for c in 0..CHARS {
        let mut likers = 0;
        let mut counts = Vec::new();
        for u in 0..USERS {
            let (liked, count) = status(&mut conn, &format!("user{u}"), &character(c)).like();
            let expected = model.get(&(u, c)).copied().unwrap_or(false);
            if !uncertain.contains_key(&(u, c)) {
                assert_eq!(liked, expected, "round {round}: user{u} on {} lost an acknowledged like state", character(c));
            }
            likers += liked as u64;
            counts.push(count);
            observed.insert((u, c), liked);
        }
        assert!(counts.iter().all(|&n| n == likers), "round {round}: {} count {counts:?} != {likers} likers", character(c));
    }
    observed
}

#[test]
fn sigterm_checkpoints_and_the_restart_replays_nothing() {
    let dir = DataDir::new("likes");
    let mut node = start(dir.path(), "2");
    let mut c = Conn::open(node.addr).unwrap();
    for u in 0..5 {
        for ch in ["아델", "Hero", "Zed"] {
            toggle(&mut c, &format!("u{u}"), ch).like();
        }
    }
    toggle(&mut c, "u0", "Zed").like(); // u0 un-likes Zed
    drop(c);
    node.stop_gracefully();
    drop(node);

    let node = start(dir.path(), "2");
    let mut c = Conn::open(node.addr).unwrap();
    assert_eq!(status_of(&mut c, "u3", "아델"), (true, 5));
    assert_eq!(status_of(&mut c, "u4", "hero"), (true, 5));
    assert_eq!(status_of(&mut c, "u0", "Zed"), (false, 4));
    let recovered = node.log_lines(" recovered in ");
    assert_eq!(recovered.len(), 2, "one line per log (2 logs: the dir was created with 2 cores): {recovered:?}");
    assert!(recovered.iter().all(|l| l.contains("replayed 0 log entries")), "{recovered:?}");
    let m = String::from_utf8(c.send("GET", "/metrics", &[]).unwrap().body).unwrap();
    assert_eq!(metric_sum(&m, "maple_recovery_replayed_entries{"), 0.0, "{m}");
    assert_eq!(metric_sum(&m, "maple_recovery_dropped_tail_bytes{"), 0.0, "{m}");
}

fn status_of(c: &mut Conn, user: &str, character: &str) -> (bool, u64) {
    status(c, user, character).like()
}

#[test]
fn fresh_expectation_is_written_behind_and_served_from_the_store_after_a_crash() {
    let dir = DataDir::new("likes");
    let mut node = start(dir.path(), "2");
    let mut c = Conn::open(node.addr).unwrap();
    let path = "/api/v4/characters/evan/expectation";
    let first = c.send("GET", path, &[]).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let preset = c.send("GET", &format!("{path}/preset/2"), &[]).unwrap();
    // The write-behind is not awaited by the GET; wait until it is durable
    // (a kill before that may lose it: it is a cache).
    let mut tries = 0;
    loop {
        let m = String::from_utf8(c.send("GET", "/metrics", &[]).unwrap().body).unwrap();
        let durable: f64 = m
            .lines()
            .filter(|l| l.starts_with("maple_expectation_write_behind_total{") && l.contains("result=\"durable\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        if durable >= 1.0 {
            break;
        }
        tries += 1;
        assert!(tries < 500, "write-behind never applied:\n{m}");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    node.crash(); // SIGKILL: no final checkpoint
    drop(node);

    let node = start(dir.path(), "2");
    let mut c = Conn::open(node.addr).unwrap();
    let again = c.send("GET", path, &[]).unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-cache"), Some("STORE"), "served from the store, not upstream");
    assert_eq!(again.header("etag"), first.header("etag"), "same document, same ETag");
    assert!(again.body == first.body);
    let p2 = c.send("GET", &format!("{path}/preset/2"), &[]).unwrap();
    assert_eq!(p2.status, 200);
    assert!(p2.body == preset.body, "presets are stored too");
    assert_eq!(c.send("GET", path, &[]).unwrap().header("x-cache"), Some("HIT"), "back in memory");
    let sim = c.send("GET", "/sim/stats", &[]).unwrap().json();
    assert_eq!(sim["total"], 0, "no upstream call after the restart: {sim}");
}

#[test]
fn a_keyed_toggle_retried_after_a_crash_gets_the_first_answer() {
    let dir = DataDir::new("likes");
    let mut node = start(dir.path(), "1");
    let mut c = Conn::open(node.addr).unwrap();
    let auth = format!("Bearer {}", token("retrier"));
    let keyed = [("Authorization", auth.as_str()), ("Idempotency-Key", "click-1")];
    toggle(&mut c, "other", "아델").like();
    assert_eq!(c.send("POST", &like_path("아델"), &keyed).unwrap().like(), (true, 2));
    node.crash(); // SIGKILL: the client never knows if its answer arrived
    drop(node);
    let node = start(dir.path(), "1");
    let mut c = Conn::open(node.addr).unwrap();
    assert_eq!(c.send("POST", &like_path("아델"), &keyed).unwrap().like(), (true, 2), "the retry is not a second toggle");
    assert_eq!(status(&mut c, "retrier", "아델").like(), (true, 2));
}

/// `--wal-sync off` (benchmark mode): same answers, a loud warning at start,
/// no fdatasync at all, and the written likes are still there after a clean
/// restart.
#[test]
fn wal_sync_off_warns_never_fsyncs_and_still_serves_likes() {
    let dir = DataDir::new("likes");
    let mut node = start_with(dir.path(), "1", &["--wal-sync", "off"]);
    let mut c = Conn::open(node.addr).unwrap();
    assert_eq!(toggle(&mut c, "a", "Hero").like(), (true, 1));
    assert_eq!(toggle(&mut c, "b", "Hero").like(), (true, 2));
    let m = String::from_utf8(c.send("GET", "/metrics", &[]).unwrap().body).unwrap();
    assert_eq!(metric_sum(&m, "maple_wal_fsyncs_total{"), 0.0, "{m}");
    assert_eq!(metric_sum(&m, "maple_wal_sync_enabled{"), 0.0, "{m}");
    assert!(!node.log_lines("WARNING --wal-sync off").is_empty(), "{}", node.log());
    drop(c);
    node.stop_gracefully();
    drop(node);
    let node = start(dir.path(), "1");
    let mut c = Conn::open(node.addr).unwrap();
    assert_eq!(status(&mut c, "b", "hero").like(), (true, 2));
    let m = String::from_utf8(c.send("GET", "/metrics", &[]).unwrap().body).unwrap();
    assert_eq!(metric_sum(&m, "maple_wal_sync_enabled{"), 1.0, "the default is fsync: {m}");
}

/// A keyed toggle, then a clean stop (SIGTERM: drain, final checkpoint,
/// the log is purged), then a restart that replays nothing: the retry with
/// the same key still gets the first answer and toggles nothing — the
/// answer now lives in the state store, not only in the log.
#[test]
fn a_keyed_toggle_retried_after_a_clean_restart_gets_the_first_answer() {
    let dir = DataDir::new("likes");
    let mut node = start(dir.path(), "2");
    let mut c = Conn::open(node.addr).unwrap();
    let auth = format!("Bearer {}", token("deployer"));
    let keyed = [("Authorization", auth.as_str()), ("Idempotency-Key", "click-after-deploy")];
    toggle(&mut c, "other", "진격캐넌").like();
    assert_eq!(c.send("POST", &like_path("진격캐넌"), &keyed).unwrap().like(), (true, 2));
    drop(c);
    node.stop_gracefully();
    drop(node);

    let node = start(dir.path(), "2");
    let recovered = node.log_lines(" recovered in ");
    assert!(recovered.iter().all(|l| l.contains("replayed 0 log entries")), "{recovered:?}");
    let mut c = Conn::open(node.addr).unwrap();
    assert_eq!(c.send("POST", &like_path("진격캐넌"), &keyed).unwrap().like(), (true, 2), "the retry is not a second toggle");
    assert_eq!(status(&mut c, "deployer", "진격캐넌").like(), (true, 2), "likeCount unchanged");
    // A new key is a new toggle.
    let fresh = [("Authorization", auth.as_str()), ("Idempotency-Key", "click-2")];
    assert_eq!(c.send("POST", &like_path("진격캐넌"), &fresh).unwrap().like(), (false, 1));
}

/// Characters on core `core` (of 2) of a new data dir (16 partitions), with their partitions.
fn on_core(core: usize, n: usize, tag: &str) -> Vec<(String, u32)> {
    let slots = replication::SlotMap::new(16, 2);
    (0..)
        .map(|i| format!("{tag}{i}"))
        .filter_map(|name| {
            let (key, slot, c) = slots.locate(&name).ok()?;
            (c == core).then(|| (key, slots.partition_of(slot)))
        })
        .take(n)
        .collect()
}

/// Issue 9: an Idempotency-Key identifies one request. The same (user,
/// key) on another character is 422 IDEMPOTENCY_KEY_REUSED with a clear
/// message — for a character on the other core, on the same core, and in
/// the same partition — and toggles nothing; a retry of the first request
/// still gets its first answer.
#[test]
fn an_idempotency_key_reused_for_another_character_is_422_on_every_core() {
    let dir = DataDir::new("likes");
    let node = start(dir.path(), "2");
    let mut c = Conn::open(node.addr).unwrap();
    let core0 = on_core(0, 40, "k0-");
    let core1 = on_core(1, 40, "k1-");
    let first = &core0[0];
    let same_core = core0.iter().find(|(_, p)| *p != first.1).expect("another partition on core 0");
    let same_partition = core0.iter().skip(1).find(|(_, p)| *p == first.1).expect("another character of the partition");
    let other_core = &core1[0];
    for user in ["ken", "김철수", "user-with-a-long-name-0123456789"] {
        let auth = format!("Bearer {}", token(user));
        let keyed = |key: &str| [("Authorization", auth.clone()), ("Idempotency-Key", key.to_string())];
        let send = |c: &mut Conn, ch: &str, key: &str| {
            let h = keyed(key);
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.send("POST", &like_path(ch), &h).unwrap()
        };
        let answer = send(&mut c, &first.0, "req-1").like();
        assert_eq!(answer, (true, 1), "{user}");
        assert_eq!(send(&mut c, &first.0, "req-1").like(), answer, "{user}: a retry gets the first answer");
        for (other, what) in [(&other_core.0, "other core"), (&same_core.0, "same core"), (&same_partition.0, "same partition")] {
            let r = send(&mut c, other, "req-1");
            assert_eq!(r.status, 422, "{user} {what}: {:?}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            assert_eq!(v["code"], "IDEMPOTENCY_KEY_REUSED", "{user} {what}");
            let msg = v["message"].as_str().unwrap();
            assert!(
                msg.contains("req-1") && msg.contains(first.0.as_str()),
                "{user} {what}: the message names the key and its character: {msg}"
            );
            assert_eq!(status(&mut c, user, other).like(), (false, 0), "{user} {what}: nothing toggled");
        }
        // The first request's retry is still answered, nothing changed.
        assert_eq!(send(&mut c, &first.0, "req-1").like(), answer);
        assert_eq!(status(&mut c, user, &first.0).like(), (true, 1));
        // A new key is a new request.
        assert_eq!(send(&mut c, &first.0, "req-2").like(), (false, 0), "{user}");
    }
}

/// Issue 9: like 10 characters on a --cores 2 node, stop, start with
/// --cores 1: all 10 are liked; like 10 more, stop, start with --cores 2:
/// all 20 are liked. The partition count of the data dir decides where a
/// key lives, not the core count.
#[test]
fn changing_cores_keeps_every_acknowledged_like() {
    let dir = DataDir::new("likes");
    let chars: Vec<String> = (0..20).map(|i| if i % 2 == 0 { format!("코어{i}") } else { format!("Cores{i}") }).collect();
    let check = |node: &Maple, upto: usize, cores: &str| {
        let mut c = Conn::open(node.addr).unwrap();
        for ch in &chars[..upto] {
            assert_eq!(status(&mut c, "mover", ch).like(), (true, 1), "{ch} after a start with --cores {cores}");
        }
        for ch in &chars[upto..] {
            assert_eq!(status(&mut c, "mover", ch).like(), (false, 0), "{ch}");
        }
    };
    let mut node = start(dir.path(), "2");
    {
        let mut c = Conn::open(node.addr).unwrap();
        for ch in &chars[..10] {
            assert_eq!(toggle(&mut c, "mover", ch).like(), (true, 1));
        }
    }
    node.stop_gracefully();
    drop(node);
    let mut node = start(dir.path(), "1");
    check(&node, 10, "1");
    {
        let mut c = Conn::open(node.addr).unwrap();
        for ch in &chars[10..] {
            assert_eq!(toggle(&mut c, "mover", ch).like(), (true, 1));
        }
    }
    node.crash(); // and a kill -9 this time: the log replays into the same partitions
    drop(node);
    let node = start(dir.path(), "2");
    check(&node, 20, "2");
    // The data dir keeps its partition count: another one is refused.
    drop(node);
    let mut other = start_with_expecting_failure(dir.path(), &["--partitions", "8"]);
    let status = other.wait_exit(common::maple::EXIT_TIMEOUT);
    assert!(!status.success());
    assert!(other.log().contains("was created with 16 partitions and --partitions says 8"), "{}", other.log());
}

fn start_with_expecting_failure(data_dir: &Path, extra: &[&str]) -> Maple {
    Launch::serve(data_dir).arg("--cores", "1").args(extra).env("MAPLE_JWT_SECRET", SECRET).spawn()
}
