//! A 3-node cluster of real processes on 127.0.0.1 (tests/common/cluster.rs):
//! like toggles sent round-robin through every node — non-leaders forward
//! to the partition's leader — and every node answers the same counts,
//! equal to the acknowledged net likes. Keyed toggles answer once across
//! nodes. `GET /admin/cluster` shows one agreed leader per partition.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::cluster::{send_until_served, Cluster, SECRET};
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

    // Every request is retried on 503 (a leadership move to the preferred
    // replica may happen meanwhile); toggles carry a key, so a retry toggles once.
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
                let key = format!("t-{n}");
                let path = format!("/api/v2/characters/{}/like", enc(ch));
                let r = send_until_served(c.addr(node as u64 + 1), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", &key)]);
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
        for node in 1..=3 {
            for u in &users {
                let auth = format!("Bearer {}", token(u));
                let path = format!("/api/v2/characters/{}/like/status", enc(ch));
                let r = send_until_served(c.addr(node), "GET", &path, &[("Authorization", &auth)]);
                assert_eq!(like(&r), (liked[&(u.clone(), ch)], expected), "{u} on {ch} through node {node}");
            }
        }
    }

    // One Idempotency-Key through three nodes: one toggle, the same answer.
    let auth = format!("Bearer {}", token("keyed-user"));
    let path = format!("/api/v2/characters/{}/like", enc("delta"));
    let first = like(&send_until_served(c.addr(2), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "key-1")]));
    assert_eq!(first, (true, 1));
    for node in 1..=3 {
        let again = like(&send_until_served(c.addr(node), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "key-1")]));
        assert_eq!(again, first, "a retried key answers its first answer on every node");
    }
    let r = send_until_served(c.addr(3), "POST", &path, &[("Authorization", &auth), ("Idempotency-Key", "key-2")]);
    assert_eq!(like(&r), (false, 0), "a new key toggles");

    // The cluster's metrics: node id, leaders per partition, forwards both ways.
    let forwarded_out: f64 = (1..=3).map(|id| common::metric(c.addr(id), "maple_forwards_total{result=\"answered\"}")).sum();
    let served_in: f64 = (1..=3).map(|id| common::metric(c.addr(id), "maple_forwards_served_total")).sum();
    assert!(forwarded_out > 0.0 && served_in >= forwarded_out, "{forwarded_out} forwarded, {served_in} served");
    assert_eq!(common::metric(c.addr(2), "maple_cluster_node_id"), 2.0);
    assert!(common::metric(c.addr(1), "maple_raft_leader_node{partition=\"0\"}") >= 1.0);
}

#[test]
fn a_hundred_concurrent_misses_over_three_nodes_make_one_upstream_call() {
    // One simulator for all three nodes; its latency keeps the first fetch
    // in flight while the others arrive (at the leader, forwarded or not).
    let sim = common::maple::Launch::upstream_sim(&["--latency-ms", "400"]).start();
    let url = format!("http://{}", sim.addr);
    let c = Cluster::start("cl-flight", 3, &["--upstream-url", &url]);
    c.wait_leaders(Duration::from_secs(60));
    let path = format!("/api/v4/characters/{}/expectation", enc("동시요청"));
    let threads: Vec<_> = (0..100u64)
        .map(|i| {
            let (addr, path) = (c.addr(i % 3 + 1), path.clone());
            std::thread::spawn(move || send_until_served(addr, "GET", &path, &[]))
        })
        .collect();
    let answers: Vec<Resp> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|r| r.status == 200), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(answers.windows(2).all(|w| w[0].body == w[1].body), "everyone got the same rendering");
    let stats = common::http::get(sim.addr, "/sim/stats").json();
    assert_eq!(stats["id"], 1, "one id lookup across the cluster: {stats}");
    assert_eq!(stats["equipment"], 1, "one equipment fetch across the cluster: {stats}");
}
