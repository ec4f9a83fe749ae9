//! A small counter state machine for tests (and the lead's wiring tests):
//! a record is `key` or `key=+N`; the answer is the key's new value as
//! decimal text. Its state lives in an `Rc` so a test can look at it after
//! the group (or the whole node) is gone.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use bytes::Bytes;

use crate::state_machine::{AppliedState, CommittedRecord, PartitionMachine, SnapshotJob};
use crate::types::SnapshotChunks;

#[derive(Debug, Default, Clone)]
pub struct KvState {
    pub counters: BTreeMap<String, i64>,
    pub applied: Option<AppliedState>,
    /// Every record applied, in order: (index, record). Cleared by install.
    pub history: Vec<(u64, Bytes)>,
    pub installs: usize,
}

/// The counter machine; clones share state.
#[derive(Clone, Default)]
pub struct KvMachine {
    pub state: Rc<RefCell<KvState>>,
}

impl KvMachine {
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    pub fn get(&self, key: &str) -> i64 {
        self.state.borrow().counters.get(key).copied().unwrap_or(0)
    }

    fn apply_one(counters: &mut BTreeMap<String, i64>, rec: &[u8]) -> Bytes {
        let text = String::from_utf8_lossy(rec);
        let (key, delta) = match text.split_once("=+") {
            Some((k, n)) => (k.to_string(), n.parse::<i64>().unwrap_or(0)),
            None => (text.to_string(), 1),
        };
        let v = counters.entry(key).or_insert(0);
        *v += delta;
        Bytes::from(v.to_string())
    }
}

impl PartitionMachine for KvMachine {
    async fn apply(&mut self, records: Vec<CommittedRecord>, state: &AppliedState) -> io::Result<Vec<Bytes>> {
        let mut s = self.state.borrow_mut();
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(Self::apply_one(&mut s.counters, &r.record));
            s.history.push((r.index, r.record));
        }
        s.applied = Some(state.clone());
        Ok(out)
    }

    fn applied_state(&mut self) -> io::Result<Option<AppliedState>> {
        Ok(self.state.borrow().applied.clone())
    }

    fn snapshot(&mut self) -> io::Result<SnapshotJob> {
        let view = self.state.borrow().counters.clone();
        Ok(Box::new(move || {
            // one line per counter, chunked at 64 KiB of lines
            let mut chunks = Vec::new();
            let mut cur = Vec::new();
            for (k, v) in view {
                cur.extend_from_slice(format!("{k}\t{v}\n").as_bytes());
                if cur.len() >= 64 << 10 {
                    chunks.push(Bytes::from(std::mem::take(&mut cur)));
                }
            }
            if !cur.is_empty() {
                chunks.push(Bytes::from(cur));
            }
            Ok(chunks)
        }))
    }

    async fn install(&mut self, state: &AppliedState, snapshot: SnapshotChunks) -> io::Result<()> {
        let mut counters = BTreeMap::new();
        for chunk in &snapshot.chunks {
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let line = std::str::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "snapshot line"))?;
                let (k, v) = line.split_once('\t').ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "snapshot line"))?;
                let v = v.parse::<i64>().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "snapshot value"))?;
                counters.insert(k.to_string(), v);
            }
        }
        let mut s = self.state.borrow_mut();
        s.counters = counters;
        s.applied = Some(state.clone());
        s.history.clear();
        s.installs += 1;
        Ok(())
    }
}

/// Run openraft's log-storage conformance suite against a [`GroupLog`]
/// backend (`make` builds a fresh, empty one per test case), with the
/// counter machine as the state machine. Panics with the failing case.
pub fn run_log_suite<L, F>(make: F)
where
    L: crate::log_store::GroupLog,
    F: Fn() -> L + Send + Sync + 'static,
{
    use openraft::testing::log::{StoreBuilder, Suite};

    use crate::log_store::{LogStore, PurgeFloor};
    use crate::state_machine::StateMachine;
    use crate::types::C;

    struct Builder<F>(F);

    impl<L, F> StoreBuilder<C, LogStore<L>, StateMachine<KvMachine>, ()> for Builder<F>
    where
        L: crate::log_store::GroupLog,
        F: Fn() -> L + Send + Sync + 'static,
    {
        async fn build(&self) -> Result<((), LogStore<L>, StateMachine<KvMachine>), openraft::StorageError<C>> {
            Ok(((), LogStore::new((self.0)(), PurgeFloor::unlimited()), StateMachine::new(KvMachine::new())))
        }
    }

    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("monoio runtime");
    rt.block_on(async move {
        Suite::test_all(Builder(make)).await.expect("openraft log-storage suite");
    });
}

// ---------------------------------------------------------------------------
// In-memory router: nodes on threads of their own, messages over channels.
// ---------------------------------------------------------------------------

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::LocalBoxFuture;

use crate::host::Host;
use crate::network::{MsgKind, Transport, TransportError};
use crate::types::{GroupId, NodeId};

/// One message through the in-memory router.
pub struct MemMsg {
    pub from: NodeId,
    pub group: GroupId,
    pub kind: MsgKind,
    pub body: Bytes,
    pub reply: futures::channel::oneshot::Sender<Result<Bytes, String>>,
}

#[derive(Default)]
struct RouterInner {
    nodes: HashMap<NodeId, flume::Sender<MemMsg>>,
    cut: HashSet<NodeId>,
}

/// Routes messages between node threads of one test process. Clones share
/// the routing table. `cut(node, true)` drops every message to or from it.
#[derive(Clone, Default)]
pub struct MemRouter {
    inner: Arc<Mutex<RouterInner>>,
}

impl MemRouter {
    pub fn new() -> MemRouter {
        MemRouter::default()
    }

    /// Register `node`; its thread serves the returned receiver.
    pub fn register(&self, node: NodeId) -> flume::Receiver<MemMsg> {
        let (tx, rx) = flume::bounded(4096);
        self.inner.lock().unwrap().nodes.insert(node, tx);
        rx
    }

    pub fn cut(&self, node: NodeId, cut: bool) {
        let mut inner = self.inner.lock().unwrap();
        if cut {
            inner.cut.insert(node);
        } else {
            inner.cut.remove(&node);
        }
    }

    pub fn transport(&self, from: NodeId) -> std::rc::Rc<dyn Transport> {
        std::rc::Rc::new(MemTransport { router: self.clone(), from })
    }

    /// Serve `rx` on the current core: every message to `host.handle`.
    pub async fn serve<M: PartitionMachine>(rx: flume::Receiver<MemMsg>, host: std::rc::Rc<Host<M>>) {
        while let Ok(msg) = rx.recv_async().await {
            let host = host.clone();
            monoio::spawn(async move {
                let res = host.handle(msg.group, msg.kind, msg.body).await;
                let _ = msg.reply.send(res);
            });
        }
    }
}

struct MemTransport {
    router: MemRouter,
    from: NodeId,
}

impl Transport for MemTransport {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: MsgKind,
        body: Bytes,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<Bytes, TransportError>> {
        let tx = {
            let inner = self.router.inner.lock().unwrap();
            if inner.cut.contains(&self.from) || inner.cut.contains(&target) {
                None
            } else {
                inner.nodes.get(&target).cloned()
            }
        };
        let from = self.from;
        Box::pin(async move {
            let tx = tx.ok_or_else(|| TransportError::Unreachable(target, "cut or unknown".into()))?;
            let (reply, rx) = futures::channel::oneshot::channel();
            tx.try_send(MemMsg { from, group, kind, body, reply }).map_err(|e| TransportError::Unreachable(target, e.to_string()))?;
            match monoio::time::timeout(timeout, rx).await {
                Err(_) => Err(TransportError::Timeout(target, timeout)),
                Ok(Err(_)) => Err(TransportError::Unreachable(target, "node gone".into())),
                Ok(Ok(Err(e))) => Err(TransportError::Remote(target, e)),
                Ok(Ok(Ok(b))) => Ok(b),
            }
        })
    }
}

// ---------------------------------------------------------------------------
// A durable MemLog: records also go to a file, fdatasync'd by a syncer
// thread that batches every waiter of one sync (group commit).
// ---------------------------------------------------------------------------

use crate::log_store::{Durability, DurableFuture, LogRecord};

type SyncReq = (Vec<u8>, futures::channel::oneshot::Sender<io::Result<()>>);

/// Appends framed records to one file; each append resolves after the
/// fdatasync that covers it. Counts syncs.
pub struct SyncedFile {
    tx: flume::Sender<SyncReq>,
    pub syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl SyncedFile {
    pub fn create(path: &std::path::Path) -> io::Result<SyncedFile> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = flume::bounded::<SyncReq>(8192);
        let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = syncs.clone();
        std::thread::Builder::new().name("test-log-sync".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter().take(4095));
                let mut res = Ok(());
                for (bytes, _) in &batch {
                    if let Err(e) = file.write_all(bytes) {
                        res = Err(e);
                        break;
                    }
                }
                if res.is_ok() {
                    res = file.sync_data();
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for (_, done) in batch {
                    let _ = done.send(res.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string())));
                }
            }
        })?;
        Ok(SyncedFile { tx, syncs })
    }

    fn submit(&self, bytes: Vec<u8>) -> io::Result<DurableFuture> {
        let (done, rx) = futures::channel::oneshot::channel();
        self.tx.try_send((bytes, done)).map_err(|e| io::Error::new(io::ErrorKind::WouldBlock, e.to_string()))?;
        Ok(Box::pin(async move { rx.await.map_err(|_| io::Error::other("syncer gone"))? }))
    }
}

impl Durability for SyncedFile {
    fn append(&mut self, records: &[LogRecord]) -> io::Result<DurableFuture> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.payload.len() + 24).sum());
        for r in records {
            buf.extend_from_slice(&r.term.to_le_bytes());
            buf.extend_from_slice(&r.index.to_le_bytes());
            buf.extend_from_slice(&(r.payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&r.payload);
        }
        self.submit(buf)
    }

    fn truncate_after(&mut self, index: Option<u64>) -> io::Result<DurableFuture> {
        let mut buf = vec![0xff; 8];
        buf.extend_from_slice(&index.map_or(u64::MAX, |i| i).to_le_bytes());
        self.submit(buf)
    }
}
