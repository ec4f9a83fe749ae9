//! Test nodes: each a thread with its own monoio runtime hosting group 0
//! (counter machine), driven from the test thread by commands. "Kill" ends
//! the runtime without shutting the group down (as kill -9 would).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use replication::host::{default_config, GroupStatus, Host, HostLimits, WriteError};
use replication::log_store::{MemLog, PurgeFloor};
use replication::testkit::{KvMachine, SyncedFile};
use replication::{NodeId, NodeInfo, Transport};

pub const GROUP: u32 = 0;

pub type Serve = Box<dyn FnOnce(Rc<Host<KvMachine>>)>;
pub type Wiring = Box<dyn FnOnce(NodeId) -> (Rc<dyn Transport>, Serve) + Send>;

pub struct Dump {
    pub counters: BTreeMap<String, i64>,
    pub history: Vec<(u64, Bytes)>,
    pub applied: Option<u64>,
}

pub enum Cmd {
    Write { record: String, reply: flume::Sender<Result<String, WriteError>> },
    Status { reply: flume::Sender<Vec<GroupStatus>> },
    Dump { reply: flume::Sender<Dump> },
    Bench { writers: usize, dur: Duration, reply: flume::Sender<(u64, u64)> },
    Bootstrap { members: BTreeMap<NodeId, NodeInfo>, reply: flume::Sender<Result<bool, String>> },
    Kill,
    Stop { reply: flume::Sender<()> },
}

pub struct TestNode {
    pub id: NodeId,
    pub tx: flume::Sender<Cmd>,
    pub join: Option<JoinHandle<()>>,
    pub syncs: Arc<AtomicU64>,
}

pub struct NodeOptions {
    /// fdatasync'd log file in this dir (else purely in memory).
    pub durable_dir: Option<PathBuf>,
}

impl TestNode {
    pub fn spawn(id: NodeId, wiring: Wiring, opts: NodeOptions) -> TestNode {
        let (tx, rx) = flume::unbounded::<Cmd>();
        let syncs = Arc::new(AtomicU64::new(0));
        let syncs2 = syncs.clone();
        let join = std::thread::Builder::new()
            .name(format!("node-{id}"))
            .spawn(move || {
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().expect("runtime");
                rt.block_on(node_main(id, wiring, opts, rx, syncs2));
                // the runtime (and every task of the group) is dropped here
            })
            .expect("spawn node");
        TestNode { id, tx, join: Some(join), syncs }
    }

    pub fn write(&self, record: &str) -> flume::Receiver<Result<String, WriteError>> {
        let (reply, rx) = flume::bounded(1);
        let _ = self.tx.send(Cmd::Write { record: record.to_string(), reply });
        rx
    }

    pub fn status(&self) -> Option<GroupStatus> {
        let (reply, rx) = flume::bounded(1);
        self.tx.send(Cmd::Status { reply }).ok()?;
        rx.recv_timeout(Duration::from_secs(5)).ok()?.into_iter().next()
    }

    pub fn dump(&self) -> Dump {
        let (reply, rx) = flume::bounded(1);
        self.tx.send(Cmd::Dump { reply }).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    pub fn bench(&self, writers: usize, dur: Duration) -> (u64, u64) {
        let (reply, rx) = flume::bounded(1);
        self.tx.send(Cmd::Bench { writers, dur, reply }).unwrap();
        rx.recv_timeout(dur + Duration::from_secs(30)).unwrap()
    }

    pub fn bootstrap(&self, members: BTreeMap<NodeId, NodeInfo>) -> Result<bool, String> {
        let (reply, rx) = flume::bounded(1);
        self.tx.send(Cmd::Bootstrap { members, reply }).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// kill -9: the runtime ends with the group still running.
    pub fn kill(&mut self) {
        let _ = self.tx.send(Cmd::Kill);
        if let Some(j) = self.join.take() {
            j.join().unwrap();
        }
    }

    pub fn stop(&mut self) {
        let (reply, rx) = flume::bounded(1);
        if self.tx.send(Cmd::Stop { reply }).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        if let Some(j) = self.join.take() {
            j.join().unwrap();
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.join.is_some() {
            self.stop();
        }
    }
}

async fn node_main(id: NodeId, wiring: Wiring, opts: NodeOptions, rx: flume::Receiver<Cmd>, syncs: Arc<AtomicU64>) {
    let (transport, serve) = wiring(id);
    let host: Rc<Host<KvMachine>> = Host::new(id, transport, default_config(), HostLimits::default()).expect("host");
    let log = match &opts.durable_dir {
        Some(dir) => {
            let f = SyncedFile::create(&dir.join(format!("node-{id}.log"))).expect("log file");
            let counter = f.syncs.clone();
            monoio::spawn(async move {
                loop {
                    monoio::time::sleep(Duration::from_millis(100)).await;
                    syncs.store(counter.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            });
            MemLog::with_durability(f)
        }
        None => MemLog::new(),
    };
    let machine = KvMachine::new();
    host.start_group(GROUP, log, PurgeFloor::unlimited(), machine.clone()).await.expect("start group");
    serve(host.clone());
    while let Ok(cmd) = rx.recv_async().await {
        match cmd {
            Cmd::Write { record, reply } => {
                let host = host.clone();
                monoio::spawn(async move {
                    let res = host.write(GROUP, Bytes::from(record)).await.map(|b| String::from_utf8_lossy(&b).to_string());
                    let _ = reply.send(res);
                });
            }
            Cmd::Status { reply } => {
                let _ = reply.send(host.status());
            }
            Cmd::Dump { reply } => {
                let s = machine.state.borrow();
                let _ = reply.send(Dump {
                    counters: s.counters.clone(),
                    history: s.history.clone(),
                    applied: s.applied.as_ref().and_then(|a| a.index()),
                });
            }
            Cmd::Bench { writers, dur, reply } => {
                let ok = Rc::new(std::cell::Cell::new(0u64));
                let err = Rc::new(std::cell::Cell::new(0u64));
                let end = Instant::now() + dur;
                let mut tasks = Vec::new();
                for w in 0..writers {
                    let (host, ok, err) = (host.clone(), ok.clone(), err.clone());
                    tasks.push(monoio::spawn(async move {
                        let rec = Bytes::from(format!("bench{}", w % 16));
                        while Instant::now() < end {
                            match host.write(GROUP, rec.clone()).await {
                                Ok(_) => ok.set(ok.get() + 1),
                                Err(_) => err.set(err.get() + 1),
                            }
                        }
                    }));
                }
                monoio::spawn(async move {
                    for t in tasks {
                        t.await;
                    }
                    let _ = reply.send((ok.get(), err.get()));
                });
            }
            Cmd::Bootstrap { members, reply } => {
                let _ = reply.send(host.bootstrap(GROUP, members).await);
            }
            Cmd::Kill => return,
            Cmd::Stop { reply } => {
                host.shutdown().await;
                let _ = reply.send(());
                return;
            }
        }
    }
}

pub fn node_info(id: NodeId, peer: &str) -> NodeInfo {
    NodeInfo { peer_addr: peer.to_string(), http_addr: format!("127.0.0.1:{}", 18000 + id), resp_addr: String::new() }
}

/// Wait until exactly one live node says it leads, every live node agrees,
/// and return its id.
pub fn wait_leader(nodes: &[&TestNode], within: Duration) -> Option<NodeId> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        let st: Vec<_> = nodes.iter().filter_map(|n| n.status()).collect();
        let leaders: Vec<_> = st.iter().filter(|s| s.state == "leader").map(|s| s.node).collect();
        if leaders.len() == 1 && st.len() == nodes.len() && st.iter().all(|s| s.leader == Some(leaders[0])) {
            return Some(leaders[0]);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Wait until every node has applied at least `index`.
pub fn wait_applied(nodes: &[&TestNode], index: u64, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if nodes.iter().all(|n| n.status().and_then(|s| s.applied).is_some_and(|a| a >= index)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Write `n` records `key` (each +1) through `leader`, sequentially in
/// batches of `conc` outstanding; returns how many were acknowledged.
pub fn write_many(leader: &TestNode, key: &str, n: usize, conc: usize) -> usize {
    let mut acked = 0;
    let mut pending = Vec::new();
    for _ in 0..n {
        pending.push(leader.write(key));
        if pending.len() >= conc {
            for p in pending.drain(..) {
                if matches!(p.recv_timeout(Duration::from_secs(10)), Ok(Ok(_))) {
                    acked += 1;
                }
            }
        }
    }
    for p in pending {
        if matches!(p.recv_timeout(Duration::from_secs(10)), Ok(Ok(_))) {
            acked += 1;
        }
    }
    acked
}

/// History sanity: indices strictly increasing (nothing applied twice).
pub fn assert_history_clean(d: &Dump) {
    for w in d.history.windows(2) {
        assert!(w[0].0 < w[1].0, "index {} applied after {}", w[1].0, w[0].0);
    }
}
