//! Partition placement: which nodes hold each partition's replicas, and who
//! should lead it. Deterministic in (node ids, P, RF): every node computes
//! the same map with no coordination.
//!
//! Nodes are sorted by id; partition p's replicas are the RF consecutive
//! nodes starting at position `p mod N` (a ring), so replicas are on
//! different nodes, every node holds `P·RF/N` replicas (±1) and is the
//! preferred leader (first replica) of `P/N` (±1) partitions. The preferred
//! leader is a target, not a rule: after an election anyone may lead;
//! [`balance_leaders`] moves leadership back when the preferred node is up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use openraft::type_config::async_runtime::watch::WatchReceiver;

use crate::host::Host;
use crate::state_machine::PartitionMachine;
use crate::types::{GroupId, NodeId, NodeInfo};

/// Default replication factor: min(3, nodes).
pub fn default_rf(nodes: usize) -> usize {
    nodes.clamp(1, 3)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    nodes: Vec<NodeId>,
    partitions: u32,
    rf: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no nodes")]
    NoNodes,
    #[error("node id {0} listed twice")]
    Duplicate(NodeId),
    #[error("partitions must be >= 1")]
    NoPartitions,
    #[error("replication factor {rf} out of range 1..={nodes}")]
    BadRf { rf: usize, nodes: usize },
}

impl Placement {
    pub fn new(node_ids: &[NodeId], partitions: u32, rf: usize) -> Result<Placement, PlacementError> {
        let mut nodes = node_ids.to_vec();
        nodes.sort_unstable();
        if nodes.is_empty() {
            return Err(PlacementError::NoNodes);
        }
        if let Some(w) = nodes.windows(2).find(|w| w[0] == w[1]) {
            return Err(PlacementError::Duplicate(w[0]));
        }
        if partitions == 0 {
            return Err(PlacementError::NoPartitions);
        }
        if rf == 0 || rf > nodes.len() {
            return Err(PlacementError::BadRf { rf, nodes: nodes.len() });
        }
        Ok(Placement { nodes, partitions, rf })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    pub fn rf(&self) -> usize {
        self.rf
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Replicas of `partition`, preferred leader first.
    pub fn replicas(&self, partition: GroupId) -> Vec<NodeId> {
        let n = self.nodes.len();
        let start = partition as usize % n;
        (0..self.rf).map(|k| self.nodes[(start + k) % n]).collect()
    }

    pub fn preferred_leader(&self, partition: GroupId) -> NodeId {
        self.nodes[partition as usize % self.nodes.len()]
    }

    /// The partitions with a replica on `node`.
    pub fn hosted_on(&self, node: NodeId) -> Vec<GroupId> {
        (0..self.partitions).filter(|p| self.replicas(*p).contains(&node)).collect()
    }

    /// The replica that initialises a fresh group: its lowest node id.
    pub fn bootstrapper(&self, partition: GroupId) -> NodeId {
        self.replicas(partition).into_iter().min().expect("rf >= 1")
    }
}

/// Initialise every group of `host` for which this node is the
/// bootstrapper, once all of the group's replicas answer (each retried until
/// `wait` runs out). Idempotent: an initialised group is left alone (a
/// restart does nothing). Returns the groups initialised now.
pub async fn bootstrap_groups<M: PartitionMachine>(
    host: &Host<M>,
    placement: &Placement,
    nodes: &BTreeMap<NodeId, NodeInfo>,
    wait: Duration,
) -> Result<Vec<GroupId>, String> {
    let me = host.node_id();
    let deadline = Instant::now() + wait;
    let mut done = Vec::new();
    for g in host.groups() {
        if placement.bootstrapper(g) != me {
            continue;
        }
        // Initialised already (a restart): nothing to wait for.
        let initialised =
            host.raft(g).is_some_and(|r| r.metrics().borrow_watched().membership_config.membership().voter_ids().next().is_some());
        if initialised {
            continue;
        }
        let replicas = placement.replicas(g);
        for r in replicas.iter().copied().filter(|r| *r != me) {
            loop {
                match host.ping(r, g, Duration::from_millis(500)).await {
                    Ok(()) => break,
                    Err(e) if Instant::now() < deadline => {
                        tracing::debug!(group = g, replica = r, error = %e, "bootstrap: waiting for replica");
                        monoio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => {
                        tracing::error!(group = g, replica = r, error = %e, "bootstrap: replica never answered");
                        return Err(format!("group {g}: replica {r} did not answer: {e}"));
                    }
                }
            }
        }
        let mut members = BTreeMap::new();
        for r in replicas {
            let info = nodes.get(&r).cloned().ok_or_else(|| format!("no address for node {r}"))?;
            members.insert(r, info);
        }
        if host.bootstrap(g, members).await? {
            done.push(g);
        }
    }
    Ok(done)
}

/// Move leadership of the groups this node leads to their preferred leader
/// (when that is another node). Returns how many transfers were started.
pub async fn balance_leaders<M: PartitionMachine>(host: &Host<M>, placement: &Placement) -> usize {
    let me = host.node_id();
    let mut n = 0;
    for s in host.status() {
        let preferred = placement.preferred_leader(s.group);
        // Only to a preferred replica that holds everything committed (it
        // is up and caught up): a transfer to a lagging or dead node would
        // just stall the group until its election timeout.
        let caught_up = s.committed.is_some() && s.matched.get(&preferred).copied().flatten() >= s.committed;
        if s.leader == Some(me)
            && preferred != me
            && s.voters.contains(&preferred)
            && caught_up
            && host.transfer_leadership(s.group, Some(preferred)).await.is_some()
        {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_deterministic_spread_and_balanced() {
        let a = Placement::new(&[3, 1, 2], 16, 3).unwrap();
        let b = Placement::new(&[1, 2, 3], 16, 3).unwrap();
        assert_eq!(a, b, "order of the peer list does not matter");
        let mut leaders = BTreeMap::new();
        for p in 0..16 {
            let r = a.replicas(p);
            assert_eq!(r.len(), 3);
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3, "replicas on different nodes");
            *leaders.entry(a.preferred_leader(p)).or_insert(0) += 1;
            assert_eq!(a.bootstrapper(p), 1);
        }
        assert!(leaders.values().all(|&n| n == 5 || n == 6), "{leaders:?}");

        let five = Placement::new(&[10, 20, 30, 40, 50], 16, 3).unwrap();
        let mut held = BTreeMap::new();
        for p in 0..16 {
            for r in five.replicas(p) {
                *held.entry(r).or_insert(0) += 1;
            }
        }
        assert!(held.values().all(|&n| (9..=10).contains(&n)), "{held:?}");
        assert_eq!(five.hosted_on(10).len(), held[&10]);
    }

    #[test]
    fn rf_defaults_and_bad_input() {
        assert_eq!(default_rf(1), 1);
        assert_eq!(default_rf(2), 2);
        assert_eq!(default_rf(7), 3);
        assert_eq!(Placement::new(&[], 4, 1), Err(PlacementError::NoNodes));
        assert_eq!(Placement::new(&[1, 1], 4, 1), Err(PlacementError::Duplicate(1)));
        assert_eq!(Placement::new(&[1], 0, 1), Err(PlacementError::NoPartitions));
        assert_eq!(Placement::new(&[1, 2], 4, 3), Err(PlacementError::BadRf { rf: 3, nodes: 2 }));
        let one = Placement::new(&[7], 16, 1).unwrap();
        assert!((0..16).all(|p| one.replicas(p) == vec![7]));
    }
}
