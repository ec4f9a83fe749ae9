//! A 3-node cluster of real processes on 127.0.0.1 (tests/common/cluster.rs):
//! like toggles sent round-robin through every node — non-leaders forward
//! to the partition's leader — and every node answers the same counts,
//! equal to the acknowledged net likes. Keyed toggles answer once across
//! nodes. `GET /admin/cluster` shows one agreed leader per partition.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::cluster::{Cluster, SECRET};
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

#[test]
fn like_toggles_through_every_node_agree_and_keys_answer_once() {
    let c = Cluster::start("cl-likes", 3, &[]);
    let leaders = c.wait_leaders(Duration::from_secs(60));
    assert_eq!(leaders.len(), 16, "16 partitions by default");
    let status = c.status(2);
    assert_eq!(status["replication_factor"], 3);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 3);
    let p0 = &status["partitions"][0];
    assert_eq!(p0["replicas"].as_array().unwrap().len(), 3, "{p0}");
    assert!(p0["here"]["applied"].as_u64().is_some(), "{p0}");

    let mut conns: Vec<Conn> = (1..=3).map(|id| Conn::open(c.addr(id)).unwrap()).collect();
    let users: Vec<String> = (0..9).map(|i| format!("user-{i}")).collect();
    let characters = ["alpha", "beta", "gamma", "아델"];
    let mut liked: HashMap<(String, &str), bool> = HashMap::new();
    let mut forwarded = 0;
    let mut n = 0usize;
    for round in 0..3 {
        for u in &users {
            for (ci, ch) in characters.iter().enumerate() {
                // Skip some pairs in some rounds: counts end up mixed.
                if (round + ci) % 4 == 3 {
                    continue;
                }
                let node = n % 3;
                n += 1;
                let auth = format!("Bearer {}", token(u));
                let r = conns[node].send("POST", &format!("/api/v2/characters/{}/like", enc(ch)), &[("Authorization", &auth)]).unwrap();
                forwarded += r.header("x-maple-node").is_some() as usize;
                let e = liked.entry((u.clone(), ch)).or_insert(false);
                *e = !*e;
                assert_eq!(like(&r).0, *e, "toggle {n} of {u} on {ch} through node {}", node + 1);
            }
        }
    }
    assert!(forwarded > 0, "some toggles went through a non-leader and were forwarded");
    for ch in characters {
        let expected = users.iter().filter(|u| liked[&((*u).clone(), ch)]).count() as u64;
        for (node, conn) in conns.iter_mut().enumerate() {
            for u in &users {
                let auth = format!("Bearer {}", token(u));
                let r = conn.send("GET", &format!("/api/v2/characters/{}/like/status", enc(ch)), &[("Authorization", &auth)]).unwrap();
                assert_eq!(like(&r), (liked[&(u.clone(), ch)], expected), "{u} on {ch} through node {}", node + 1);
            }
        }
    }

    // One Idempotency-Key through three nodes: one toggle, the same answer.
    let auth = format!("Bearer {}", token("keyed-user"));
    let path = format!("/api/v2/characters/{}/like", enc("delta"));
    let first = like(&conns[1].send("POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "key-1")]).unwrap());
    assert_eq!(first, (true, 1));
    for conn in conns.iter_mut() {
        let again = like(&conn.send("POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "key-1")]).unwrap());
        assert_eq!(again, first, "a retried key answers its first answer on every node");
    }
    let r = conns[2].send("POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "key-2")]).unwrap();
    assert_eq!(like(&r), (false, 0), "a new key toggles");
}
