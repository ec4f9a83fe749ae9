//! The node's HTTP service: typed routes → owner-runtime calls
//! (`engine::owner`), error mapping, health and metrics. The shard itself —
//! caches, single-flight, likes, the cross-core inbox — is `engine::owner`;
//! the partitions' Raft groups are `replication`; this module only wires
//! them to requests (see ARCHITECTURE.md for the data paths).

pub mod error;
pub mod peer;
pub mod route;
pub mod service;
pub mod trace;

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use engine::owner::{GroupError, Groups, Msg, PartitionId};
use engine::partition::Partition;
use engine::shard::SlotVersions;
use futures::future::LocalBoxFuture;
use replication::{CoreGroups, GroupStats, PartitionStart, SlotMap};
use storage::log::{Log, LogRecovery};
use storage::store::{BatchWriter, Store};

use crate::cluster::NodeCluster;
use crate::config::Config;
use crate::metrics::NodeMetrics;
use crate::sim::Simulator;
pub use service::CoreService;

/// One write-ahead log of the node and what its recovery found.
pub struct LogState {
    pub log_no: u32,
    pub log: Log,
    pub writer: BatchWriter,
    pub recovery: LogRecovery,
    pub recovered_in: Duration,
    /// Committed entries replayed into the store at start (all its partitions).
    pub replayed: u64,
}

/// The node's storage: its logs, its store, its partitions' numbers.
pub struct NodeStorage {
    pub store: Store,
    pub logs: Vec<LogState>,
    /// Index = partition.
    pub groups: Vec<Arc<GroupStats>>,
}

impl NodeStorage {
    /// Why the node cannot serve writes, if it cannot: a log is poisoned or
    /// a writer stopped (both until a restart). Names the log, not files
    /// (the storage's own log line has the path and the error).
    pub fn down(&self) -> Option<String> {
        self.logs.iter().find_map(|l| {
            if l.log.poisoned().is_some() {
                Some(format!("storage: write-ahead log {} failed; restart needed", l.log_no))
            } else {
                l.writer.failure().map(|_| format!("storage: state store of log {} stopped applying; restart needed", l.log_no))
            }
        })
    }

    /// Apply what the groups handed to the writers, checkpoint every log.
    /// Blocking; at shutdown, once the cores are done.
    pub fn final_checkpoint(&self) -> anyhow::Result<()> {
        for l in &self.logs {
            let report = futures::executor::block_on(l.writer.checkpoint())
                .map_err(|e| anyhow::anyhow!("final checkpoint of log {}: {e}", l.log_no))?;
            let newest = report.groups.iter().filter_map(|(_, a)| a.map(|a| a.index)).max();
            tracing::info!(
                log = l.log_no,
                partitions = report.groups.len(),
                "maple serve: log {} final checkpoint ({} partitions, newest applied index {newest:?})",
                l.log_no,
                report.groups.len()
            );
        }
        Ok(())
    }
}

/// Read-only state every core shares (`Send + Sync`).
pub struct NodeShared {
    pub cfg: Config,
    pub slots: SlotMap,
    pub versions: SlotVersions,
    pub metrics: Arc<NodeMetrics>,
    pub server_stats: Option<net::ServerStats>,
    pub shutdown: net::Shutdown,
    pub sim: Option<Arc<Simulator>>,
    /// Every core's inbox (index = core).
    pub inboxes: Vec<flume::Sender<Msg>>,
    receivers: Mutex<Vec<Option<flume::Receiver<Msg>>>>,
    /// The recovered partitions of each core, taken once by that core.
    starts: Mutex<Vec<Option<Vec<PartitionStart>>>>,
    pub storage: NodeStorage,
    /// HS256 secret of user tokens.
    pub jwt_secret: String,
    /// The RESP listener and its node-wide state (`None`: `--resp-listen off`).
    pub resp: Option<Arc<crate::resp::RespShared>>,
    /// The node's place in the cluster (routes, map, peer listener).
    pub cluster: NodeCluster,
}

impl NodeShared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Config,
        slots: SlotMap,
        metrics: Arc<NodeMetrics>,
        server_stats: Option<net::ServerStats>,
        shutdown: net::Shutdown,
        sim: Option<Arc<Simulator>>,
        storage: NodeStorage,
        starts: Vec<PartitionStart>,
        jwt_secret: String,
        cluster: NodeCluster,
    ) -> NodeShared {
        let inboxes = engine::owner::Inboxes::new(cfg.cores);
        let mut per_core: Vec<Vec<PartitionStart>> = (0..cfg.cores).map(|_| Vec::new()).collect();
        for s in starts {
            per_core[slots.core_of(s.recovered.group)].push(s);
        }
        NodeShared {
            cluster,
            slots,
            versions: SlotVersions::new(replication::SLOT_COUNT as usize),
            metrics,
            server_stats,
            shutdown,
            sim,
            inboxes: inboxes.senders,
            receivers: Mutex::new(inboxes.receivers.into_iter().map(Some).collect()),
            starts: Mutex::new(per_core.into_iter().map(Some).collect()),
            storage,
            jwt_secret,
            resp: None,
            cfg,
        }
    }

    /// Serve RESP too (before the node is shared with the cores).
    pub fn with_resp(mut self, resp: Arc<crate::resp::RespShared>) -> NodeShared {
        self.resp = Some(resp);
        self
    }

    /// Partitions hosted here that cannot serve yet: no ready leader here,
    /// and not a follower of a known leader with everything committed applied.
    pub fn not_ready(&self) -> Vec<PartitionId> {
        let (me, view) = (self.cluster.me, &self.cluster.view);
        let groups = &self.storage.groups;
        groups.iter().enumerate().filter(|(p, g)| view.hosts(*p as u32) && !g.is_serving(me)).map(|(p, _)| p as PartitionId).collect()
    }

    /// Core `core`'s inbox and partitions (once; later calls get nothing).
    fn take_core(&self, core: usize) -> (Option<flume::Receiver<Msg>>, Vec<PartitionStart>) {
        let rx = self.receivers.lock().unwrap_or_else(|p| p.into_inner()).get_mut(core).and_then(Option::take);
        let parts = self.starts.lock().unwrap_or_else(|p| p.into_inner()).get_mut(core).and_then(Option::take).unwrap_or_default();
        (rx, parts)
    }
}

/// The core's groups once they have started (the owner runtime is built
/// before: until then every partition is "starting").
#[derive(Default)]
pub struct LazyGroups {
    inner: OnceCell<Rc<CoreGroups>>,
    /// Why the groups could not start, if they could not.
    failed: RefCell<Option<String>>,
}

impl LazyGroups {
    pub fn get(&self) -> Option<&Rc<CoreGroups>> {
        self.inner.get()
    }

    fn starting(&self, p: PartitionId) -> GroupError {
        match &*self.failed.borrow() {
            Some(why) => GroupError::Stopped { partition: p, why: why.clone() },
            None => GroupError::Unavailable { partition: p, why: "starting".into() },
        }
    }
}

impl Groups for LazyGroups {
    fn machine(&self, p: PartitionId) -> Option<Rc<RefCell<Partition>>> {
        self.inner.get()?.machine(p)
    }

    fn store(&self, p: PartitionId) -> Option<storage::store::Partition> {
        self.inner.get()?.store(p)
    }

    fn write(&self, p: PartitionId, record: Vec<u8>) -> LocalBoxFuture<'static, Result<Bytes, GroupError>> {
        match self.inner.get() {
            Some(g) => g.write(p, record),
            None => {
                let e = self.starting(p);
                Box::pin(std::future::ready(Err(e)))
            }
        }
    }

    fn read_index(&self, p: PartitionId) -> LocalBoxFuture<'static, Result<(), GroupError>> {
        match self.inner.get() {
            Some(g) => g.read_index(p),
            None => {
                let e = self.starting(p);
                Box::pin(std::future::ready(Err(e)))
            }
        }
    }

    fn ready(&self, p: PartitionId) -> Result<(), GroupError> {
        match self.inner.get() {
            Some(g) => g.ready(p),
            None => Err(self.starting(p)),
        }
    }
}
