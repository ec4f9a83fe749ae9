//! A node cut off from the other two (the test hook `POST
//! /admin/test/peer-cut`, `MAPLE_TEST_HOOKS=1`: its peer traffic dropped both
//! ways) cannot acknowledge a write of the partition it led: it answers 503
//! (bounded, never a hang, never a 200), while the other two elect a new
//! leader and serve it. Healed, it rejoins; the toggle it did not
//! acknowledge was never applied, and a key first sent through the cut node
//! toggles exactly once.

use std::time::Duration;

mod common;
use common::cluster::{send_until_served, Cluster, SECRET};
use common::http::Conn;
use common::{enc, Resp};

fn token(user: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    net::jwt::sign(SECRET.as_bytes(), user, now + 3600)
}

fn like(r: &Resp) -> (bool, u64) {
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    (v["liked"].as_bool().unwrap(), v["likeCount"].as_u64().unwrap())
}

fn post(addr: std::net::SocketAddr, path: &str) -> Resp {
    Conn::open(addr).unwrap().send("POST", path, &[]).unwrap()
}

#[test]
fn a_node_cut_off_cannot_acknowledge_a_write_and_rejoins() {
    let c = Cluster::start_with_env("cl-cut", 3, &[], &[("MAPLE_TEST_HOOKS", "1")]);
    // Leadership settles on the preferred replicas (moved every 2 s).
    std::thread::sleep(Duration::from_secs(3));
    let leaders = c.wait_leaders(Duration::from_secs(60));
    let character = "cutchar";
    let user = "cut-user";
    let slots = replication::SlotMap::new(16, 1);
    let p = slots.partition_of(replication::slot_of(character)) as usize;
    let x = leaders[p];
    let y = (1..=3).find(|id| *id != x).unwrap();
    let auth = format!("Bearer {}", token(user));
    let path = format!("/api/v2/characters/{}/like", enc(character));
    let status = format!("/api/v2/characters/{}/like/status", enc(character));
    let first = send_until_served(c.addr(y), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "cut-0")]);
    assert_eq!(like(&first), (true, 1));

    assert_eq!(post(c.addr(x), "/admin/test/peer-cut?on=0&x=1").status, 400, "bad query");
    assert_eq!(post(c.addr(x), "/admin/test/peer-cut?on=1").status, 200);
    // Through the cut node: 503, never 200 — a plain toggle (a local write
    // of the partition it led: no quorum, the write times out "unknown"),
    // a keyed toggle (its reservation goes to the user's partition) and a
    // linearizable read (no quorum confirms the leadership).
    let mut conn = Conn::open(c.addr(x)).unwrap();
    let plain = conn.send("POST", &path, &[("Authorization", &auth)]).unwrap();
    let keyed = conn.send("POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "cut-1")]).unwrap();
    let read = conn.send("GET", &status, &[("Authorization", &auth)]).unwrap();
    for (what, r) in [("plain toggle", &plain), ("keyed toggle", &keyed), ("status", &read)] {
        assert_eq!(r.status, 503, "a cut-off node answered a {what}: {:?}", String::from_utf8_lossy(&r.body));
        assert!(r.header("retry-after").is_some(), "{what}");
    }
    // The other two elect a leader among themselves and take the same key once.
    let r = send_until_served(c.addr(y), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "cut-1")]);
    assert_eq!(like(&r), (false, 0));

    assert_eq!(post(c.addr(x), "/admin/test/peer-cut?on=0").status, 200);
    let after = c.wait_leaders(Duration::from_secs(60));
    assert_eq!(after.len(), 16);
    for id in 1..=3 {
        let again = send_until_served(c.addr(id), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "cut-1")]);
        assert_eq!(like(&again), (false, 0), "the key's first answer through node {id}");
        let s = send_until_served(c.addr(id), "GET", &status, &[("Authorization", &auth)]);
        assert_eq!(like(&s), (false, 0), "node {id}");
    }
}
