//! The cluster map every core (and the RESP service) reads: per node its id
//! and advertised addresses, per partition its slot range, replicas and
//! current leader. `Send + Sync`: built from atomics ([`GroupStats`]) and a
//! small directory of node cards learnt from the peer hello exchange.
//!
//! - [`NodeCard`]: what a node advertises about itself (id, cores, peer /
//!   HTTP / RESP addresses). Sent in the hello exchange (`KIND_INFO`) right
//!   after a peer connection is made, in both directions.
//! - [`Directory`]: the cards known to this node (its own, from its config,
//!   and the peers', as learnt).
//! - [`ClusterView`]: directory + placement + the node's group stats →
//!   [`ClusterMap`] snapshots.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use crate::codec::{DecodeError, Reader, Writer};
use crate::machine::GroupStats;
use crate::placement::Placement;
use crate::slot::SlotMap;
use crate::types::{GroupId, NodeId};

/// What a node advertises about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeCard {
    pub id: NodeId,
    /// Its `--cores`: partition p is served by its core `p % cores`.
    pub cores: u16,
    pub peer_addr: String,
    pub http_addr: String,
    /// Empty when the node has no RESP listener.
    pub resp_addr: String,
}

const CARD_VERSION: u8 = 1;

impl NodeCard {
    pub fn encode(&self) -> bytes::Bytes {
        let mut w = Writer::with_capacity(64);
        w.u8(CARD_VERSION);
        w.u64(self.id);
        w.u32(self.cores as u32);
        w.str(&self.peer_addr);
        w.str(&self.http_addr);
        w.str(&self.resp_addr);
        w.into_bytes()
    }

    pub fn decode(b: &[u8]) -> Result<NodeCard, DecodeError> {
        let mut r = Reader::new(b);
        let v = r.u8("card version")?;
        if v != CARD_VERSION {
            return Err(DecodeError::BadTag { what: "card version", tag: v });
        }
        let id = r.u64("card id")?;
        let cores = r.u32("card cores")?;
        if cores == 0 || cores > u16::MAX as u32 {
            return Err(DecodeError::Invalid("card cores"));
        }
        let card = NodeCard {
            id,
            cores: cores as u16,
            peer_addr: r.str("peer addr")?,
            http_addr: r.str("http addr")?,
            resp_addr: r.str("resp addr")?,
        };
        r.finish()?;
        Ok(card)
    }
}

/// The node cards known here (id → card). Cheap reads from any thread.
#[derive(Debug, Default)]
pub struct Directory {
    cards: RwLock<BTreeMap<NodeId, NodeCard>>,
}

impl Directory {
    pub fn new(cards: impl IntoIterator<Item = NodeCard>) -> Directory {
        Directory { cards: RwLock::new(cards.into_iter().map(|c| (c.id, c)).collect()) }
    }

    /// Record a card; true when it changed what was known.
    pub fn learn(&self, card: NodeCard) -> bool {
        let mut cards = self.cards.write().unwrap_or_else(|p| p.into_inner());
        if cards.get(&card.id) == Some(&card) {
            return false;
        }
        cards.insert(card.id, card);
        true
    }

    pub fn get(&self, id: NodeId) -> Option<NodeCard> {
        self.cards.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// The node's cores, once its card arrived (a card from the config has 0).
    pub fn cores(&self, id: NodeId) -> Option<u16> {
        self.get(id).map(|c| c.cores).filter(|c| *c > 0)
    }

    pub fn all(&self) -> Vec<NodeCard> {
        self.cards.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

/// One partition in a [`ClusterMap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub partition: GroupId,
    /// First and last slot, inclusive.
    pub slots: (u16, u16),
    /// Known leader (None during an election, or when this node does not
    /// host the partition and has not learnt it).
    pub leader: Option<NodeId>,
    /// Replicas, preferred leader first.
    pub replicas: Vec<NodeId>,
    pub term: u64,
}

/// A snapshot of the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMap {
    pub me: NodeId,
    pub nodes: Vec<NodeCard>,
    pub partitions: Vec<PartitionView>,
}

impl ClusterMap {
    pub fn node(&self, id: NodeId) -> Option<&NodeCard> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// Where a partition's requests go from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This node leads it (or it is a one-node cluster): serve here.
    Local,
    /// Forward to this node.
    Remote(NodeId),
    /// Hosted here, no leader known (election in progress).
    NoLeader,
}

/// Directory + placement + this node's group stats (index = partition).
pub struct ClusterView {
    pub me: NodeId,
    pub placement: Placement,
    pub slots: SlotMap,
    pub directory: Arc<Directory>,
    pub stats: Vec<Arc<GroupStats>>,
}

impl ClusterView {
    /// One node, one member per group: everything is local.
    pub fn single(&self) -> bool {
        self.placement.nodes().len() == 1
    }

    pub fn hosts(&self, p: GroupId) -> bool {
        self.placement.replicas(p).contains(&self.me)
    }

    /// The leader this node knows for `p`.
    pub fn leader(&self, p: GroupId) -> Option<NodeId> {
        let id = self.stats.get(p as usize)?.leader_id.load(Ordering::Acquire);
        (id != 0).then_some(id)
    }

    /// The leader the cluster map shows for `p` (this node in a one-node cluster).
    pub fn map_leader(&self, p: GroupId) -> Option<NodeId> {
        if self.single() {
            Some(self.me)
        } else {
            self.leader(p)
        }
    }

    pub fn route(&self, p: GroupId) -> Route {
        if self.single() {
            return Route::Local;
        }
        match self.leader(p) {
            Some(l) if l == self.me => Route::Local,
            Some(l) => Route::Remote(l),
            None if self.hosts(p) => Route::NoLeader,
            // Not a replica here: ask the preferred leader (it answers with
            // the real leader when it is not).
            None => Route::Remote(self.placement.preferred_leader(p)),
        }
    }

    pub fn map(&self) -> ClusterMap {
        let partitions = (0..self.placement.partitions())
            .map(|p| PartitionView {
                partition: p,
                slots: self.slots.slot_range(p),
                leader: self.map_leader(p),
                replicas: self.placement.replicas(p),
                term: self.stats.get(p as usize).map_or(0, |s| s.term.load(Ordering::Relaxed)),
            })
            .collect();
        ClusterMap { me: self.me, nodes: self.directory.all(), partitions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_round_trip_and_bad_cards_are_errors() {
        let c =
            NodeCard { id: 7, cores: 2, peer_addr: "10.0.0.1:7100".into(), http_addr: "10.0.0.1:8080".into(), resp_addr: String::new() };
        assert_eq!(NodeCard::decode(&c.encode()).unwrap(), c);
        let mut b = c.encode().to_vec();
        b[0] = 9;
        assert!(NodeCard::decode(&b).is_err());
        assert!(NodeCard::decode(&c.encode()[..10]).is_err());
        let zero = NodeCard { cores: 0, ..c.clone() };
        assert!(NodeCard::decode(&zero.encode()).is_err());
        let d = Directory::new([NodeCard { id: 7, ..Default::default() }]);
        assert_eq!(d.cores(7), None, "a card from the config knows no cores");
        assert!(d.learn(c.clone()));
        assert!(!d.learn(c));
        assert_eq!(d.cores(7), Some(2));
    }

    #[test]
    fn routes_follow_the_known_leader() {
        let placement = Placement::new(&[1, 2, 3], 4, 3).unwrap();
        let stats: Vec<Arc<GroupStats>> = (0..4).map(|_| Arc::new(GroupStats::default())).collect();
        let view = ClusterView { me: 2, placement, slots: SlotMap::new(4, 1), directory: Arc::new(Directory::default()), stats };
        assert_eq!(view.route(0), Route::NoLeader);
        view.stats[0].leader_id.store(2, Ordering::Release);
        view.stats[1].leader_id.store(3, Ordering::Release);
        assert_eq!(view.route(0), Route::Local);
        assert_eq!(view.route(1), Route::Remote(3));
        let m = view.map();
        assert_eq!(m.partitions[1].leader, Some(3));
        assert_eq!(m.partitions[3].slots, (12288, 16383));
        let single = ClusterView {
            me: 1,
            placement: Placement::new(&[1], 4, 1).unwrap(),
            slots: SlotMap::new(4, 1),
            directory: Arc::new(Directory::default()),
            stats: vec![],
        };
        assert_eq!(single.route(3), Route::Local);
    }
}
