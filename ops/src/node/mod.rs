//! The node: routes, per-core owner shards, cross-core forwarding, read
//! copies of hot responses, health and metrics.
//!
//! Data path (ARCHITECTURE.md): name → slot → owner core. Owner is this core
//! → [`owner::Owner`] inline. Owner is another core → one [`OwnerMsg`] on
//! that core's bounded flume channel, reply on a oneshot. No locks, no
//! shared maps; the only shared mutable state is per-slot atomic versions.
//!
//! Durability ([`durable`], [`likes`]): each core owns one write-ahead log +
//! sled state store under `<data-dir>/core-<n>/`, recovered before the node
//! serves. Like toggles of a character run on its owner core and are
//! answered only once their log record is fdatasynced; fresh expectations
//! are written behind to the same log (not awaited) and served from the
//! store after a restart (`X-Cache: STORE`).

pub mod admission;
pub mod durable;
pub mod error;
pub mod likes;
pub mod owner;
pub mod render;
pub mod route;
pub mod service;

use std::sync::{Arc, Mutex};

use engine::likes::{LikeBook, LikeResult};

use engine::shard::SlotVersions;
use replication::SlotMap;

use crate::config::Config;
use crate::metrics::NodeMetrics;
use crate::sim::Simulator;
pub use service::CoreService;

/// Capacity of each core's inbound cross-core queue; full → 503.
pub const CROSS_CORE_QUEUE: usize = 4096;

/// A request for a key another core owns.
pub struct OwnerMsg {
    pub op: owner::Op,
    pub name: route::Name,
    pub reply: futures::channel::oneshot::Sender<Result<owner::Served, error::NodeError>>,
}

/// A like request for a character another core owns.
pub struct LikeMsg {
    pub user: String,
    pub character: String,
    pub op: likes::LikeOp,
    pub reply: futures::channel::oneshot::Sender<Result<LikeResult, likes::LikeFail>>,
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
    pub to_core: Vec<flume::Sender<OwnerMsg>>,
    pub inbox: Vec<flume::Receiver<OwnerMsg>>,
    pub like_to_core: Vec<flume::Sender<LikeMsg>>,
    pub like_inbox: Vec<flume::Receiver<LikeMsg>>,
    /// Each core's recovered log + store (index = core).
    pub storage: Vec<Arc<durable::CoreStorage>>,
    /// Each core's recovered like book, taken once by that core at start
    /// (the lock is never touched on a request path).
    pub books: Vec<Mutex<Option<LikeBook>>>,
    /// HS256 secret of user tokens.
    pub jwt_secret: String,
}

impl NodeShared {
    pub fn new(
        cfg: Config,
        metrics: Arc<NodeMetrics>,
        server_stats: Option<net::ServerStats>,
        shutdown: net::Shutdown,
        sim: Option<Arc<Simulator>>,
        recovered: Vec<(durable::CoreStorage, LikeBook)>,
        jwt_secret: String,
    ) -> NodeShared {
        assert_eq!(recovered.len(), cfg.cores, "one recovered storage per core");
        let (to_core, inbox) = (0..cfg.cores).map(|_| flume::bounded(CROSS_CORE_QUEUE)).unzip();
        let (like_to_core, like_inbox) = (0..cfg.cores).map(|_| flume::bounded(CROSS_CORE_QUEUE)).unzip();
        let (storage, books) = recovered.into_iter().map(|(s, b)| (Arc::new(s), Mutex::new(Some(b)))).unzip();
        NodeShared {
            slots: SlotMap::new(16, cfg.cores),
            versions: SlotVersions::new(replication::SLOT_COUNT as usize),
            cfg,
            metrics,
            server_stats,
            shutdown,
            sim,
            to_core,
            inbox,
            like_to_core,
            like_inbox,
            storage,
            books,
            jwt_secret,
        }
    }
}
