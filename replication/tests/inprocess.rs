//! 3 replicas of one group over the in-memory router, each node a thread
//! with its own monoio runtime.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use replication::testkit::MemRouter;
use replication::WriteError;

fn mem_wiring(router: &MemRouter) -> Wiring {
    let router = router.clone();
    Box::new(move |id| {
        let rx = router.register(id);
        let transport = router.transport(id);
        let serve: Serve = Box::new(move |host| {
            monoio::spawn(MemRouter::serve(rx, host));
        });
        (transport, serve)
    })
}

fn cluster(router: &MemRouter) -> Vec<TestNode> {
    let nodes: Vec<TestNode> = (1..=3).map(|id| TestNode::spawn(id, mem_wiring(router), NodeOptions { durable_dir: None })).collect();
    let members: BTreeMap<_, _> = (1..=3).map(|id| (id, node_info(id, &format!("mem:{id}")))).collect();
    assert_eq!(nodes[0].bootstrap(members.clone()), Ok(true));
    // idempotent: a second bootstrap (a restart) changes nothing
    assert_eq!(nodes[0].bootstrap(members), Ok(false));
    nodes
}

fn by_id(nodes: &[TestNode], id: u64) -> &TestNode {
    nodes.iter().find(|n| n.id == id).unwrap()
}

#[test]
fn writes_survive_leader_kill_with_no_acknowledged_loss() {
    let router = MemRouter::new();
    let mut nodes = cluster(&router);
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let leader = wait_leader(&refs, Duration::from_secs(10)).expect("a leader");

    // a follower refuses writes and names the leader
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    match follower.write("x").recv_timeout(Duration::from_secs(5)).unwrap() {
        Err(WriteError::NotLeader { leader: Some((id, info)), .. }) => {
            assert_eq!(id, leader);
            assert_eq!(info.peer_addr, format!("mem:{leader}"));
        }
        other => panic!("expected NotLeader, got {other:?}"),
    }

    let acked_before = write_many(by_id(&nodes, leader), "likes", 300, 32);
    assert_eq!(acked_before, 300);

    // kill the leader: its runtime ends mid-flight (some writes in progress)
    let inflight: Vec<_> = (0..20).map(|_| by_id(&nodes, leader).write("likes")).collect();
    let killed_at = Instant::now();
    let idx = nodes.iter().position(|n| n.id == leader).unwrap();
    let mut dead = nodes.remove(idx);
    dead.kill();
    let acked_inflight = inflight.into_iter().filter(|r| matches!(r.recv_timeout(Duration::from_secs(1)), Ok(Ok(_)))).count();

    let refs: Vec<&TestNode> = nodes.iter().collect();
    let new_leader = wait_leader(&refs, Duration::from_secs(10)).expect("a new leader");
    let elected_in = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    eprintln!("in-process: new leader {new_leader} elected {elected_in:?} after the kill");

    let acked_after = write_many(by_id(&nodes, new_leader), "likes", 300, 32);
    assert_eq!(acked_after, 300);

    let last = by_id(&nodes, new_leader).status().unwrap().committed.unwrap();
    assert!(wait_applied(&refs, last, Duration::from_secs(10)));
    let acked = (acked_before + acked_inflight + acked_after) as i64;
    for n in &nodes {
        let d = n.dump();
        assert_history_clean(&d);
        let v = d.counters.get("likes").copied().unwrap_or(0);
        // every acknowledged write is there; unacknowledged in-flight ones may or may not be
        assert!(v >= acked && v <= acked + 20 - acked_inflight as i64, "node {}: {v} vs acked {acked}", n.id);
    }
    let a = nodes[0].dump();
    let b = nodes[1].dump();
    assert_eq!(a.counters, b.counters, "replicas agree");
}

#[test]
fn a_cut_off_leaders_uncommitted_tail_is_replaced_and_never_applied() {
    let router = MemRouter::new();
    let nodes = cluster(&router);
    let refs: Vec<&TestNode> = nodes.iter().collect();
    let old = wait_leader(&refs, Duration::from_secs(10)).expect("a leader");
    assert_eq!(write_many(by_id(&nodes, old), "base", 50, 10), 50);
    let committed = by_id(&nodes, old).status().unwrap().committed.unwrap();
    assert!(wait_applied(&refs, committed, Duration::from_secs(5)));

    // cut the leader off: its new entries reach its own log only
    router.cut(old, true);
    let zombies: Vec<_> = (0..10).map(|i| by_id(&nodes, old).write(&format!("zombie{i}"))).collect();
    std::thread::sleep(Duration::from_millis(100));
    let old_last = by_id(&nodes, old).status().unwrap().last_log_index.unwrap();
    assert!(old_last > committed, "the cut leader appended an uncommitted tail ({old_last} > {committed})");

    // the other two elect a leader and commit different entries at those indices
    let rest: Vec<&TestNode> = nodes.iter().filter(|n| n.id != old).collect();
    let new = wait_leader(&rest, Duration::from_secs(10)).expect("a new leader among the two");
    assert_eq!(write_many(by_id(&nodes, new), "fresh", 30, 10), 30);
    let new_committed = by_id(&nodes, new).status().unwrap().committed.unwrap();
    assert!(new_committed >= old_last, "the new leader's log covers the replaced indices");

    // a cut-off node cannot acknowledge a write
    for z in &zombies {
        assert!(!matches!(z.try_recv(), Ok(Ok(_))), "a cut-off leader acknowledged a write");
    }

    // heal: the old leader steps down, truncates its tail, takes the new entries
    router.cut(old, false);
    assert!(wait_applied(&refs, new_committed, Duration::from_secs(10)), "old leader catches up");
    for z in zombies {
        if let Ok(Ok(v)) = z.recv_timeout(Duration::from_secs(10)) {
            panic!("zombie write acknowledged: {v}");
        }
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(wait_leader(&refs, Duration::from_secs(10)).is_some());
    let dumps: Vec<_> = nodes.iter().map(|n| n.dump()).collect();
    for d in &dumps {
        assert_history_clean(d);
        assert!(d.counters.keys().all(|k| !k.starts_with("zombie")), "an uncommitted entry was applied: {:?}", d.counters);
        assert_eq!(d.counters.get("base"), Some(&50));
        assert_eq!(d.counters.get("fresh"), Some(&30));
    }
    assert_eq!(dumps[0].counters, dumps[1].counters);
    assert_eq!(dumps[1].counters, dumps[2].counters);
}
