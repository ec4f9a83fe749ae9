//! The cluster as one node sees it (`GET /admin/cluster`), and names that
//! land in a chosen partition.
//!
//! A name's partition is computed as the node does: slot = CRC16/XMODEM of
//! the normalised name mod 16384 (no hash tags), partition = the range of
//! `/admin/cluster` holding the slot. The names made here are lowercase
//! ASCII, already normalised.

use crate::resp::cluster::{crc16, SLOTS};

/// One partition of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub first_slot: u16,
    pub last_slot: u16,
    /// Preferred leader first.
    pub replicas: Vec<u64>,
    /// The leader this node knows, if any.
    pub leader: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMap {
    pub partitions: Vec<PartitionInfo>,
}

impl ClusterMap {
    /// From the JSON of `GET /admin/cluster`.
    pub fn parse(v: &serde_json::Value) -> Result<ClusterMap, String> {
        let parts = v.get("partitions").and_then(|p| p.as_array()).ok_or("no `partitions` array")?;
        let mut partitions = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let slot = |k: usize| p["slots"].get(k).and_then(|s| s.as_u64()).and_then(|s| u16::try_from(s).ok());
            let (Some(first_slot), Some(last_slot)) = (slot(0), slot(1)) else {
                return Err(format!("partition {i}: no `slots` [first, last]"));
            };
            let replicas =
                p["replicas"].as_array().ok_or(format!("partition {i}: no `replicas`"))?.iter().filter_map(|r| r.as_u64()).collect();
            partitions.push(PartitionInfo { first_slot, last_slot, replicas, leader: p["leader"].as_u64() });
        }
        if partitions.is_empty() {
            return Err("no partitions".into());
        }
        Ok(ClusterMap { partitions })
    }

    pub fn leaders(&self) -> Vec<Option<u64>> {
        self.partitions.iter().map(|p| p.leader).collect()
    }

    /// Every partition has a leader among `up` (node ids).
    pub fn led_by_any_of(&self, up: &[u64]) -> bool {
        self.partitions.iter().all(|p| p.leader.is_some_and(|l| up.contains(&l)))
    }

    /// Every partition is led by its preferred replica (where the cluster
    /// settles after a start, a failover or a restart).
    pub fn balanced(&self) -> bool {
        self.partitions.iter().all(|p| p.leader.is_some() && p.leader == p.replicas.first().copied())
    }

    /// The partitions `node` leads.
    pub fn led_by(&self, node: u64) -> Vec<usize> {
        (0..self.partitions.len()).filter(|p| self.partitions[*p].leader == Some(node)).collect()
    }

    /// The node leading the most partitions; ties go to the node killed
    /// fewest times so far (`kills[id - 1]`), then to the lowest id.
    pub fn busiest(&self, kills: &[u64]) -> Option<u64> {
        let mut ids: Vec<u64> = self.partitions.iter().filter_map(|p| p.leader).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().max_by_key(|id| {
            let killed = kills.get(*id as usize - 1).copied().unwrap_or(0);
            (self.led_by(*id).len(), std::cmp::Reverse(killed), std::cmp::Reverse(*id))
        })
    }

    /// The partition holding `slot`.
    pub fn partition_of_slot(&self, slot: u16) -> Option<usize> {
        self.partitions.iter().position(|p| (p.first_slot..=p.last_slot).contains(&slot))
    }

    /// The partition of a normalised name.
    pub fn partition_of(&self, name: &str) -> Option<usize> {
        self.partition_of_slot(crc16(name.as_bytes()) % SLOTS as u16)
    }

    /// `prefix` + the first number that puts the name in `partition`.
    pub fn name_in(&self, prefix: &str, partition: usize) -> Option<String> {
        // With P partitions about P tries; the bound only stops a map whose
        // ranges miss some slots.
        (0..1_000_000u32).map(|k| format!("{prefix}{k}")).find(|n| self.partition_of(n) == Some(partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 partitions over nodes 1..=3, as placement lays them out.
    fn map(leaders: [Option<u64>; 4]) -> ClusterMap {
        let v = serde_json::json!({
            "partitions": (0..4).map(|p| serde_json::json!({
                "partition": p,
                "slots": [p * 4096, p * 4096 + 4095],
                "replicas": [p % 3 + 1, (p + 1) % 3 + 1, (p + 2) % 3 + 1],
                "leader": leaders[p as usize],
            })).collect::<Vec<_>>(),
        });
        ClusterMap::parse(&v).unwrap()
    }

    #[test]
    fn leaders_balance_and_the_busiest_node() {
        let m = map([Some(1), Some(2), Some(3), Some(1)]);
        assert!(m.balanced());
        assert_eq!(m.led_by(1), [0, 3]);
        assert_eq!(m.busiest(&[0, 0, 0]), Some(1));
        let tie = map([Some(1), Some(2), Some(2), Some(1)]);
        assert!(!tie.balanced());
        assert_eq!(tie.busiest(&[0, 0, 0]), Some(1), "tie: lowest id");
        assert_eq!(tie.busiest(&[3, 1, 0]), Some(2), "tie: the node killed fewer times");
        let gap = map([Some(1), None, Some(3), Some(1)]);
        assert!(!gap.led_by_any_of(&[1, 2, 3]));
        assert!(m.led_by_any_of(&[1, 2, 3]));
        assert!(!m.led_by_any_of(&[2, 3]), "node 1 is not up");
    }

    #[test]
    fn names_land_where_asked() {
        let m = map([Some(1); 4]);
        for p in 0..4 {
            let n = m.name_in("clx", p).unwrap();
            assert_eq!(m.partition_of(&n), Some(p), "{n}");
        }
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(m.partition_of_slot(4096), Some(1));
        assert!(ClusterMap::parse(&serde_json::json!({"partitions": []})).is_err());
        assert!(ClusterMap::parse(&serde_json::json!({})).is_err());
    }
}
