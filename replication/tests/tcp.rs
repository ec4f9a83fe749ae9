//! 3 "nodes" on 127.0.0.1, each a thread with its own monoio runtime,
//! talking the real peer protocol over TCP.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use net::peer::{accept_loop, DropSwitch, PeerLimits};
use replication::peer::{PeerBook, RaftPeerHandler, TcpTransport};
use replication::{NodeId, Transport};

struct Cluster {
    nodes: Vec<TestNode>,
    switches: HashMap<NodeId, DropSwitch>,
    _dir: Option<tempfile::TempDir>,
}

fn tcp_cluster(durable: bool) -> Cluster {
    let listeners: Vec<(NodeId, std::net::TcpListener)> =
        (1..=3).map(|id| (id, std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))).collect();
    let book = PeerBook {
        addrs: listeners.iter().map(|(id, l)| (*id, l.local_addr().unwrap())).collect(),
        cores: (1..=3).map(|id| (id, 1)).collect(),
        directory: None,
    };
    let dir = durable.then(|| tempfile::tempdir().unwrap());
    let mut switches = HashMap::new();
    let mut nodes = Vec::new();
    for (id, listener) in listeners {
        let switch = DropSwitch::new();
        switches.insert(id, switch.clone());
        let book = book.clone();
        let wiring: Wiring = Box::new(move |id| {
            let t = TcpTransport::new(id, 0, book, PeerLimits::default(), switch.clone());
            let transport: Rc<dyn Transport> = Rc::new(t);
            let serve: Serve = Box::new(move |host| {
                listener.set_nonblocking(true).unwrap();
                let l = monoio::net::TcpListener::from_std(listener).expect("listener");
                let handler = Rc::new(RaftPeerHandler { host, forward: None });
                monoio::spawn(accept_loop(l, 0, handler, None, PeerLimits::default(), switch));
            });
            (transport, serve)
        });
        nodes.push(TestNode::spawn(id, wiring, NodeOptions { durable_dir: dir.as_ref().map(|d| d.path().to_path_buf()) }));
    }
    let members: BTreeMap<_, _> = book.addrs.iter().map(|(id, a)| (*id, node_info(*id, &a.to_string()))).collect();
    assert_eq!(nodes[0].bootstrap(members), Ok(true));
    Cluster { nodes, switches, _dir: dir }
}

fn by_id(nodes: &[TestNode], id: u64) -> &TestNode {
    nodes.iter().find(|n| n.id == id).unwrap()
}

#[test]
fn tcp_leader_kill_elects_a_new_leader_and_loses_nothing() {
    let mut c = tcp_cluster(false);
    let refs: Vec<&TestNode> = c.nodes.iter().collect();
    let leader = wait_leader(&refs, Duration::from_secs(10)).expect("a leader");
    assert_eq!(write_many(by_id(&c.nodes, leader), "likes", 500, 64), 500);

    let idx = c.nodes.iter().position(|n| n.id == leader).unwrap();
    let mut dead = c.nodes.remove(idx);
    let killed = Instant::now();
    dead.kill();
    let refs: Vec<&TestNode> = c.nodes.iter().collect();
    let new_leader = wait_leader(&refs, Duration::from_secs(10)).expect("a new leader");
    let elected_in = killed.elapsed();
    eprintln!("tcp: leader {leader} killed; node {new_leader} leads after {elected_in:?}");
    assert_ne!(new_leader, leader);
    assert!(elected_in < Duration::from_secs(5), "re-election took {elected_in:?}");

    assert_eq!(write_many(by_id(&c.nodes, new_leader), "likes", 500, 64), 500);
    let last = by_id(&c.nodes, new_leader).status().unwrap().committed.unwrap();
    assert!(wait_applied(&refs, last, Duration::from_secs(10)));
    for n in &c.nodes {
        let d = n.dump();
        assert_history_clean(&d);
        assert_eq!(d.counters.get("likes"), Some(&1000), "node {}", n.id);
    }
}

#[test]
fn tcp_a_node_cut_off_cannot_acknowledge_a_write() {
    let c = tcp_cluster(false);
    let refs: Vec<&TestNode> = c.nodes.iter().collect();
    let leader = wait_leader(&refs, Duration::from_secs(10)).expect("a leader");
    assert_eq!(write_many(by_id(&c.nodes, leader), "k", 20, 5), 20);

    c.switches[&leader].set(true);
    let pending: Vec<_> = (0..5).map(|_| by_id(&c.nodes, leader).write("cut")).collect();
    let rest: Vec<&TestNode> = c.nodes.iter().filter(|n| n.id != leader).collect();
    let new_leader = wait_leader(&rest, Duration::from_secs(10)).expect("the two others elect a leader");
    assert_ne!(new_leader, leader);
    assert_eq!(write_many(by_id(&c.nodes, new_leader), "k", 20, 5), 20);
    std::thread::sleep(Duration::from_millis(500));
    for p in &pending {
        assert!(!matches!(p.try_recv(), Ok(Ok(_))), "a cut-off node acknowledged a write");
    }

    c.switches[&leader].set(false);
    let last = by_id(&c.nodes, new_leader).status().unwrap().committed.unwrap();
    let refs: Vec<&TestNode> = c.nodes.iter().collect();
    assert!(wait_applied(&refs, last, Duration::from_secs(10)), "the healed node catches up");
    for p in pending {
        assert!(!matches!(p.recv_timeout(Duration::from_secs(5)), Ok(Ok(_))), "a write sent while cut off was acknowledged");
    }
    for n in &c.nodes {
        let d = n.dump();
        assert_eq!(d.counters.get("k"), Some(&40), "node {}", n.id);
        assert_eq!(d.counters.get("cut"), None, "node {}", n.id);
    }
}

/// Measurement (not a test of speed): `cargo test -p replication --release
/// --test tcp -- --ignored --nocapture`.
#[test]
#[ignore]
fn tcp_measure_durable_writes_and_failover() {
    let c = tcp_cluster(true);
    let refs: Vec<&TestNode> = c.nodes.iter().collect();
    let leader = wait_leader(&refs, Duration::from_secs(10)).expect("a leader");
    let l = by_id(&c.nodes, leader);
    let syncs0: Vec<u64> = c.nodes.iter().map(|n| n.syncs.load(std::sync::atomic::Ordering::Relaxed)).collect();
    let dur = Duration::from_secs(5);
    let (ok, err) = l.bench(64, dur);
    std::thread::sleep(Duration::from_millis(200));
    let syncs: Vec<u64> = c.nodes.iter().zip(&syncs0).map(|(n, s0)| n.syncs.load(std::sync::atomic::Ordering::Relaxed) - s0).collect();
    eprintln!(
        "durable 3-replica writes, 64 writers, {:?}: {ok} ok, {err} err → {:.0} writes/s; fdatasyncs per node {:?} ({:.0}/s)",
        dur,
        ok as f64 / dur.as_secs_f64(),
        syncs,
        syncs.iter().sum::<u64>() as f64 / 3.0 / dur.as_secs_f64()
    );
    drop(c);

    // failover: repeated kills of a fresh cluster's leader
    let mut times = Vec::new();
    for _ in 0..5 {
        let mut c = tcp_cluster(false);
        let refs: Vec<&TestNode> = c.nodes.iter().collect();
        let leader = wait_leader(&refs, Duration::from_secs(10)).expect("a leader");
        assert_eq!(write_many(by_id(&c.nodes, leader), "x", 50, 10), 50);
        let idx = c.nodes.iter().position(|n| n.id == leader).unwrap();
        let mut dead = c.nodes.remove(idx);
        let t = Instant::now();
        dead.kill();
        let refs: Vec<&TestNode> = c.nodes.iter().collect();
        let new = wait_leader(&refs, Duration::from_secs(10)).expect("new leader");
        // and a write is acknowledged again
        let ok = write_many(by_id(&c.nodes, new), "x", 1, 1);
        times.push(t.elapsed());
        assert_eq!(ok, 1);
    }
    times.sort();
    eprintln!("leader kill → write acknowledged again: {times:?}");
}
