//! kill -9 under RESP like load (issue 12): clients toggle likes over the
//! node's RESP listener, pipelined; the node is SIGKILLed at a random
//! point; after the restart every acknowledged toggle is there (read over
//! RESP and over HTTP). The pattern of likes.rs's HTTP crash test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::http::Conn;
use common::maple::{DataDir, Launch, Maple};
use common::resp::{RespConn, Value};
use common::{enc, Rng};

const SECRET: &str = "resp-crash-secret";
const USERS: usize = 24;
const CHARS: usize = 8;
const CLIENTS: usize = 4;

fn start(data_dir: &Path) -> Maple {
    Launch::serve(data_dir).arg("--cores", "2").env("MAPLE_JWT_SECRET", SECRET).start()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(user: &str) -> String {
    net::jwt::sign(SECRET.as_bytes(), user, now() + 3600)
}

fn character(c: usize) -> String {
    if c.is_multiple_of(2) {
        format!("캐릭터{c}")
    } else {
        format!("Char{c}")
    }
}

/// What one client saw: the last acknowledged `liked` per (user, character)
/// it touched, and the pair whose toggle was in flight at the kill.
#[derive(Default)]
struct Seen {
    acked: HashMap<(usize, usize), bool>,
    in_flight: Option<(usize, usize)>,
}

#[test]
fn sigkill_under_resp_like_load_loses_no_acknowledged_toggle() {
    let dir = DataDir::new("resp-crash");
    let seed = now() ^ 0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64;
    eprintln!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut model: HashMap<(usize, usize), bool> = HashMap::new();
    for round in 0..3 {
        let mut node = start(dir.path());
        check(&node, &model, &HashMap::new(), round);
        let kill_after = 150 + rng.below(300) as usize;
        let acks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (acks, stop, addr) = (acks.clone(), stop.clone(), node.resp_addr());
                let seed = rng.next() | 1;
                std::thread::spawn(move || client_loop(t, addr, seed, &acks, &stop))
            })
            .collect();
        while acks.load(Ordering::Relaxed) < kill_after && !threads.iter().all(|t| t.is_finished()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(acks.load(Ordering::Relaxed) >= kill_after, "round {round}: the clients stopped before the kill");
        node.crash(); // SIGKILL
        stop.store(true, Ordering::Relaxed);
        let mut uncertain = HashMap::new();
        for t in threads {
            let seen = t.join().unwrap();
            model.extend(seen.acked);
            if let Some(pair) = seen.in_flight {
                uncertain.insert(pair, ());
            }
        }
        drop(node);
        let node = start(dir.path());
        model = check(&node, &model, &uncertain, round);
        assert!(node.log().contains("recovered"));
    }
}

/// Each client owns the users `u % CLIENTS == t` (its toggles of one pair
/// are sequential). Each toggle is pipelined behind the `AUTH` of its user:
/// both written at once, both answers read.
fn client_loop(t: usize, addr: SocketAddr, seed: u64, acks: &AtomicUsize, stop: &AtomicBool) -> Seen {
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let tokens: Vec<String> = (0..USERS).map(|u| token(&format!("user{u}"))).collect();
    let Ok(mut conn) = RespConn::open(addr) else { return seen };
    while !stop.load(Ordering::Relaxed) {
        let u = (rng.below((USERS / CLIENTS) as u64) as usize) * CLIENTS + t;
        let c = rng.below(CHARS as u64) as usize;
        seen.in_flight = Some((u, c));
        let name = character(c);
        if conn.send(&["AUTH", &format!("user{u}"), &tokens[u]]).and_then(|_| conn.send(&["LIKE.TOGGLE", &name])).is_err() {
            break;
        }
        match conn.read() {
            Ok(Value::Simple(ok)) if ok == "OK" => {}
            Ok(other) => panic!("AUTH: {other:?}"),
            Err(_) => break,
        }
        match conn.read() {
            Ok(Value::Array(v)) if v.len() == 2 => {
                let (liked, count) = (v[0].int() == 1, v[1].int() as u64);
                assert!(count <= USERS as u64 && (count >= 1 || !liked), "impossible answer {liked} {count}");
                seen.acked.insert((u, c), liked);
                seen.in_flight = None;
                acks.fetch_add(1, Ordering::Relaxed);
            }
            // Refused (backpressure): not applied. Retry.
            Ok(Value::Error(e)) if e.starts_with("BUSY ") || e.starts_with("OVERLOADED ") || e.starts_with("TRYAGAIN ") => {
                seen.in_flight = None;
            }
            Ok(other) => panic!("LIKE.TOGGLE: {other:?}"),
            Err(_) => break, // killed: in_flight stays set
        }
    }
    seen
}

/// Every (user, character) status equals the model except `uncertain`
/// pairs, every count equals its likers; half the pairs are read over
/// RESP, half over HTTP. Returns the observed state.
fn check(
    node: &Maple,
    model: &HashMap<(usize, usize), bool>,
    uncertain: &HashMap<(usize, usize), ()>,
    round: usize,
) -> HashMap<(usize, usize), bool> {
    let mut http = Conn::open(node.addr).unwrap();
    let mut resp = RespConn::open(node.resp_addr()).unwrap();
    let mut observed = HashMap::new();
    for c in 0..CHARS {
        let name = character(c);
        let mut likers = 0;
        let mut counts = Vec::new();
        for u in 0..USERS {
            let user = format!("user{u}");
            let (liked, count) = if (u + c) % 2 == 0 {
                assert_eq!(resp.call(&["AUTH", &token(&user)]), Value::Simple("OK".into()));
                resp.call(&["LIKE.STATUS", &name]).like()
            } else {
                let auth = format!("Bearer {}", token(&user));
                let r = http.send("GET", &format!("/api/v2/characters/{}/like/status", enc(&name)), &[("Authorization", &auth)]).unwrap();
                assert_eq!(r.status, 200);
                let v = r.json();
                (v["liked"].as_bool().unwrap(), v["likeCount"].as_u64().unwrap())
            };
            let expected = model.get(&(u, c)).copied().unwrap_or(false);
            if !uncertain.contains_key(&(u, c)) {
                assert_eq!(liked, expected, "round {round}: {user} on {name} lost an acknowledged toggle");
            }
            likers += liked as u64;
            counts.push(count);
            observed.insert((u, c), liked);
        }
        assert!(counts.iter().all(|&n| n == likers), "round {round}: {name} count {counts:?} != {likers} likers");
        assert_eq!(resp.call(&["LIKE.COUNT", &name]), Value::Int(likers as i64));
    }
    observed
}
