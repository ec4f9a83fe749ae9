//! Where a slot is served, as the RESP side sees it: the small trait the
//! `CLUSTER` commands and the `-MOVED` / `-TRYAGAIN` answers read.
//!
//! A single node implements it with [`LocalTopology`]: every partition is
//! here, slot ranges from [`replication::SlotMap`], one node (this one,
//! with its RESP address), a partition without a ready leader answers
//! `-TRYAGAIN`. A cluster implements it from its cluster map (per partition:
//! slot range, leader node id, replicas; per node: advertised addresses).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use replication::{GroupStats, Route as ClusterRoute, SlotMap};

/// A node id (the cluster's; 1 for a single node).
pub type NodeId = u64;

/// Where a command for a slot goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Served by this node.
    Local,
    /// Served by another node: `-MOVED slot host:port` (its RESP address).
    /// A single node never answers it; the cluster's map does.
    Moved(String),
    /// Its partition has no leader right now: `-TRYAGAIN`.
    TryAgain,
}

/// One node of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub id: NodeId,
    /// Advertised RESP address (`host:port`); an unspecified IP
    /// (`0.0.0.0`, `[::]`) is answered with the address the asking client
    /// reached this node at.
    pub resp_addr: String,
    /// Advertised HTTP address, for operators (`CLUSTER NODES` hostname field).
    pub http_addr: String,
}

/// One partition of the map: a contiguous slot range and its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    pub partition: u32,
    pub first_slot: u16,
    pub last_slot: u16,
    /// `None` while the partition has no leader.
    pub leader: Option<NodeId>,
    /// The other members of the partition's group.
    pub replicas: Vec<NodeId>,
}

/// The whole map at one moment (for `CLUSTER SLOTS|SHARDS|NODES|INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// This node.
    pub me: NodeId,
    /// The map's version (Redis' config epoch).
    pub epoch: u64,
    pub nodes: Vec<NodeView>,
    /// Ordered by first slot; together they cover 0..=16383.
    pub shards: Vec<ShardView>,
}

impl ClusterView {
    pub fn node(&self, id: NodeId) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// What the RESP side needs to know about placement. `Send + Sync`: one
/// instance serves every core.
pub trait Topology: Send + Sync {
    /// Where a command for `slot` is served. Called once per keyed command:
    /// keep it cheap (no allocation on the local path).
    fn locate(&self, slot: u16) -> Location;
    /// The map, for the `CLUSTER` commands.
    fn view(&self) -> ClusterView;
    /// `cluster` in `HELLO` / `INFO` when a cluster client should use the
    /// `CLUSTER` commands (always: a single node is a one-node cluster).
    fn mode(&self) -> &'static str {
        "cluster"
    }
}

/// A single node: every partition is here; a partition is led once its
/// group is ready on this node.
pub struct LocalTopology {
    me: NodeId,
    slots: SlotMap,
    /// Index = partition.
    groups: Vec<Arc<GroupStats>>,
    resp_addr: SocketAddr,
    http_addr: SocketAddr,
    /// Raised each time the set of led partitions changes (as Redis' epoch would).
    epoch: AtomicU64,
}

impl LocalTopology {
    pub fn new(me: NodeId, slots: SlotMap, groups: Vec<Arc<GroupStats>>, resp_addr: SocketAddr, http_addr: SocketAddr) -> LocalTopology {
        LocalTopology { me, slots, groups, resp_addr, http_addr, epoch: AtomicU64::new(1) }
    }

    fn ready(&self, partition: u32) -> bool {
        self.groups.get(partition as usize).is_some_and(|g| g.is_ready())
    }
}

impl Topology for LocalTopology {
    fn locate(&self, slot: u16) -> Location {
        if self.ready(self.slots.partition_of(slot)) {
            Location::Local
        } else {
            Location::TryAgain
        }
    }

    fn view(&self) -> ClusterView {
        let shards: Vec<ShardView> = (0..self.slots.partitions())
            .map(|p| {
                let (first_slot, last_slot) = self.slots.slot_range(p);
                ShardView { partition: p, first_slot, last_slot, leader: self.ready(p).then_some(self.me), replicas: Vec::new() }
            })
            .collect();
        ClusterView {
            me: self.me,
            epoch: self.epoch.load(Ordering::Relaxed),
            nodes: vec![NodeView { id: self.me, resp_addr: self.resp_addr.to_string(), http_addr: self.http_addr.to_string() }],
            shards,
        }
    }
}

/// A node of a cluster: the cluster's map ([`replication::ClusterView`]:
/// placement, the node cards learnt over the peer protocol, the leaders
/// this node's groups know). A slot whose partition this node leads is
/// served here; one led elsewhere answers `-MOVED` with the leader's RESP
/// address (from its card); no known leader, or a leader without a RESP
/// listener, answers `-TRYAGAIN`.
pub struct ClusterTopology {
    view: replication::ClusterView,
}

impl ClusterTopology {
    pub fn new(view: replication::ClusterView) -> ClusterTopology {
        ClusterTopology { view }
    }
}

impl Topology for ClusterTopology {
    fn locate(&self, slot: u16) -> Location {
        let p = self.view.slots.partition_of(slot);
        match self.view.route(p) {
            ClusterRoute::Local if self.view.stats.get(p as usize).is_some_and(|g| g.is_ready()) => Location::Local,
            ClusterRoute::Local | ClusterRoute::NoLeader => Location::TryAgain,
            ClusterRoute::Remote(node) => match self.view.directory.get(node) {
                Some(card) if !card.resp_addr.is_empty() => Location::Moved(card.resp_addr),
                _ => Location::TryAgain,
            },
        }
    }

    fn view(&self) -> ClusterView {
        let map = self.view.map();
        let nodes =
            map.nodes.iter().map(|c| NodeView { id: c.id, resp_addr: c.resp_addr.clone(), http_addr: c.http_addr.clone() }).collect();
        let shards = map
            .partitions
            .iter()
            .map(|pv| ShardView {
                partition: pv.partition,
                first_slot: pv.slots.0,
                last_slot: pv.slots.1,
                leader: pv.leader,
                replicas: pv.replicas.iter().copied().filter(|r| Some(*r) != pv.leader).collect(),
            })
            .collect();
        // The epoch moves with every election: the sum of the partitions' terms.
        let epoch = map.partitions.iter().map(|pv| pv.term).sum::<u64>().max(1);
        ClusterView { me: map.me, epoch, nodes, shards }
    }
}

/// `host:port` with an unspecified host (`0.0.0.0`, `::`) replaced by `local`'s IP.
pub fn advertised(addr: &str, local: Option<SocketAddr>) -> (String, u16) {
    let parsed: Option<SocketAddr> = addr.parse().ok();
    match (parsed, local) {
        (Some(a), Some(l)) if a.ip().is_unspecified() => (l.ip().to_string(), a.port()),
        (Some(a), _) => (a.ip().to_string(), a.port()),
        (None, _) => match addr.rsplit_once(':') {
            Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']').to_string(), p.parse().unwrap_or(0)),
            None => (addr.to_string(), 0),
        },
    }
}

/// A Redis-style node name (40 hex characters) for a node id.
pub fn node_name(id: NodeId) -> String {
    format!("{id:040x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ready: bool) -> Arc<GroupStats> {
        let g = GroupStats::default();
        g.ready.store(ready as u64, Ordering::Release);
        Arc::new(g)
    }

    #[test]
    fn local_topology_covers_every_slot_and_tries_again_without_a_leader() {
        let groups = vec![stats(true), stats(false), stats(true), stats(true)];
        let t = LocalTopology::new(1, SlotMap::new(4, 2), groups, "0.0.0.0:6380".parse().unwrap(), "0.0.0.0:8080".parse().unwrap());
        let v = t.view();
        assert_eq!(v.shards.len(), 4);
        assert_eq!((v.shards[0].first_slot, v.shards[3].last_slot), (0, 16383));
        for w in v.shards.windows(2) {
            assert_eq!(w[0].last_slot + 1, w[1].first_slot, "contiguous");
        }
        assert_eq!(v.shards[1].leader, None);
        assert_eq!(v.shards[0].leader, Some(1));
        assert_eq!(t.locate(0), Location::Local);
        assert_eq!(t.locate(v.shards[1].first_slot), Location::TryAgain);
        assert_eq!(t.locate(v.shards[1].last_slot), Location::TryAgain);
        assert_eq!(t.locate(16383), Location::Local);
    }

    #[test]
    fn unspecified_addresses_are_answered_with_the_local_one() {
        let local = Some("127.0.0.1:6380".parse().unwrap());
        assert_eq!(advertised("0.0.0.0:6380", local), ("127.0.0.1".into(), 6380));
        assert_eq!(advertised("10.1.2.3:7000", local), ("10.1.2.3".into(), 7000));
        assert_eq!(advertised("[::1]:7000", None), ("::1".into(), 7000));
        assert_eq!(advertised("node-2:7000", local), ("node-2".into(), 7000));
        assert_eq!(node_name(1).len(), 40);
    }
}
