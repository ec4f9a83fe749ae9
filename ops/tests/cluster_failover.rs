//! Leadership moves in a 3-node cluster of real processes on 127.0.0.1:
//! - kill -9 of the node leading the partitions, under keyed like load
//!   through every node: new leaders are elected on the other two, every
//!   acknowledged toggle is present (each retried with its key until
//!   acknowledged, so the final state is exact), and the killed node
//!   catches up after its restart;
//! - SIGTERM of a leader: leadership is transferred, exit 0, the others
//!   go on answering; a restart rejoins.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::cluster::{send_until_served, Cluster, SECRET};
use common::http::Conn;
use common::{enc, Resp};

fn token(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    net::jwt::sign(SECRET.as_bytes(), user, now + 3600)
}

fn like(r: &Resp) -> (bool, u64) {
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    (v["liked"].as_bool().unwrap(), v["likeCount"].as_u64().unwrap())
}

/// The node leading most partitions.
fn busiest(leaders: &[u64]) -> u64 {
    let mut n: HashMap<u64, usize> = HashMap::new();
    for l in leaders {
        *n.entry(*l).or_default() += 1;
    }
    n.into_iter().max_by_key(|(id, k)| (*k, std::cmp::Reverse(*id))).unwrap().0
}

/// Send one keyed toggle until some node acknowledges it (the same key on
/// every retry: at most one toggle happens). Only 503 (with Retry-After)
/// or a refused / reset connection may precede the answer.
fn toggle_until_acked(targets: &Mutex<Vec<SocketAddr>>, user: &str, character: &str, key: &str, start: usize) -> (bool, u64) {
    let auth = format!("Bearer {}", token(user));
    let path = format!("/api/v2/characters/{}/like", enc(character));
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut attempt = start;
    loop {
        let addr = {
            let t = targets.lock().unwrap();
            t[attempt % t.len()]
        };
        attempt += 1;
        let sent = Conn::open(addr).and_then(|mut c| c.send("POST", &path, &[("Authorization", &auth), ("Idempotency-Key", key)]));
        match sent {
            Ok(r) if r.status == 200 => return like(&r),
            Ok(r) => {
                assert_eq!(r.status, 503, "only 503 while leadership moves: {:?}", String::from_utf8_lossy(&r.body));
                assert!(r.header("retry-after").is_some(), "503 carries Retry-After");
                assert!(r.json()["code"].is_string(), "503 has a JSON error body");
            }
            Err(_) => {} // the killed node: try the next one
        }
        assert!(Instant::now() < deadline, "toggle {key} of {user} never acknowledged");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_of_the_leader_under_like_load_loses_no_acknowledged_toggle() {
    let mut c = Cluster::start("cl-kill", 3, &[]);
    let leaders = c.wait_leaders(Duration::from_secs(60));
    let victim = busiest(&leaders);
    let targets = Arc::new(Mutex::new((1..=3).map(|id| c.addr(id)).collect::<Vec<_>>()));
    let acks = Arc::new(AtomicUsize::new(0));
    const TOGGLES: usize = 25;
    let characters = ["alpha", "beta", "gamma"];
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (targets, acks) = (targets.clone(), acks.clone());
            let user = format!("loader-{w}");
            let character = characters[w % 3];
            std::thread::spawn(move || {
                for i in 0..TOGGLES {
                    let (liked, _) = toggle_until_acked(&targets, &user, character, &format!("k-{w}-{i}"), w + i);
                    assert_eq!(liked, i % 2 == 0, "toggle {i} of {user}: every acknowledged toggle is applied exactly once");
                    acks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::Relaxed) < 30 {
        assert!(Instant::now() < until, "no load acknowledged before the kill");
        std::thread::sleep(Duration::from_millis(10));
    }
    let victim_addr = c.addr(victim);
    c.node(victim).crash();
    drop(c.take(victim));
    targets.lock().unwrap().retain(|a| *a != victim_addr);
    for w in workers {
        w.join().expect("a load worker failed");
    }
    let after = c.wait_leaders(Duration::from_secs(60));
    assert!(after.iter().all(|l| *l != victim), "new leaders on the other nodes: {after:?}");

    // Every node that runs answers the exact acknowledged state.
    let check = |c: &Cluster, ids: &[u64]| {
        for id in ids {
            for w in 0..6 {
                let user = format!("loader-{w}");
                let auth = format!("Bearer {}", token(&user));
                let path = format!("/api/v2/characters/{}/like/status", enc(characters[w % 3]));
                let r = send_until_served(c.addr(*id), "GET", &path, &[("Authorization", &auth)]);
                // TOGGLES is odd: every loader likes its character; 2 loaders per character.
                assert_eq!(like(&r), (true, 2), "{user} through node {id}");
            }
        }
    };
    let alive = c.alive();
    check(&c, &alive);
    c.restart(victim);
    c.wait_leaders(Duration::from_secs(60));
    check(&c, &[1, 2, 3]);
    for id in 1..=3 {
        c.node(id).stop_gracefully();
    }
}

#[test]
fn sigterm_transfers_leadership_and_exits_0_then_the_node_rejoins() {
    let mut c = Cluster::start("cl-term", 3, &[]);
    let leaders = c.wait_leaders(Duration::from_secs(60));
    let leader = busiest(&leaders);
    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let auth = format!("Bearer {}", token("term-user"));
    let path = format!("/api/v2/characters/{}/like", enc("omega"));
    let keyed = |key: &str| send_until_served(c.addr(others[0]), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", key)]);
    assert_eq!(like(&keyed("term-1")), (true, 1));

    let mut m = c.take(leader);
    m.stop_gracefully();
    assert!(!m.log_lines("transferred the leadership of").is_empty(), "the drain hands leadership over");
    let after = c.wait_leaders(Duration::from_secs(60));
    assert!(after.iter().all(|l| *l != leader), "{after:?}");
    drop(m);
    // The others serve on; only 503 + Retry-After while a map is stale.
    let r = send_until_served(c.addr(others[0]), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "term-2")]);
    assert_eq!(like(&r), (false, 0));
    c.restart(leader);
    c.wait_leaders(Duration::from_secs(60));
    let status = format!("/api/v2/characters/{}/like/status", enc("omega"));
    for id in 1..=3 {
        assert_eq!(like(&send_until_served(c.addr(id), "GET", &status, &[("Authorization", &auth)])), (false, 0), "node {id}");
    }
    for id in 1..=3 {
        c.node(id).stop_gracefully();
    }
}
