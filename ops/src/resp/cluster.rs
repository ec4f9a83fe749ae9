//! `CLUSTER SHARDS|SLOTS|NODES|KEYSLOT|INFO|MYID|HELP` answered from a
//! [`ClusterView`], shaped as Redis Cluster answers them: one shard per
//! partition (its leader is the shard's master, its other members replicas).

use std::net::SocketAddr;

use bytes::Bytes;
use net::resp::Reply;

use super::topology::{advertised, node_name, ClusterView, NodeId, NodeView};

/// The cluster bus port Redis would print (`port + 10000`); we have no bus,
/// clients only display it.
fn bus_port(port: u16) -> u16 {
    port.wrapping_add(10000)
}

fn addr_of(view: &ClusterView, id: NodeId, local: Option<SocketAddr>) -> (String, u16) {
    match view.node(id) {
        Some(n) => advertised(&n.resp_addr, local),
        None => (String::new(), 0),
    }
}

/// `CLUSTER SLOTS`: `[first, last, [ip, port, id], replicas...]` per partition
/// with a leader (a leaderless partition is left out, as Redis leaves out
/// unassigned slots).
pub fn slots(view: &ClusterView, local: Option<SocketAddr>) -> Reply {
    let node = |id: NodeId| {
        let (ip, port) = addr_of(view, id, local);
        Reply::Array(vec![Reply::bulk_str(ip), Reply::Int(port as i64), Reply::bulk_str(node_name(id))])
    };
    Reply::Array(
        view.shards
            .iter()
            .filter_map(|s| {
                let leader = s.leader?;
                let mut entry = vec![Reply::Int(s.first_slot as i64), Reply::Int(s.last_slot as i64), node(leader)];
                entry.extend(s.replicas.iter().filter(|r| **r != leader).map(|r| node(*r)));
                Some(Reply::Array(entry))
            })
            .collect(),
    )
}

/// `CLUSTER SHARDS`: one map per partition: `slots` and `nodes` (id, port,
/// ip, endpoint, hostname, role, replication-offset, health).
pub fn shards(view: &ClusterView, local: Option<SocketAddr>) -> Reply {
    let node = |n: &NodeView, role: &'static str, online: bool| {
        let (ip, port) = advertised(&n.resp_addr, local);
        Reply::map([
            ("id", Reply::bulk_str(node_name(n.id))),
            ("port", Reply::Int(port as i64)),
            ("ip", Reply::bulk_str(ip.clone())),
            ("endpoint", Reply::bulk_str(ip)),
            ("hostname", Reply::bulk_str(n.http_addr.clone())),
            ("role", Reply::bulk_str(role)),
            ("replication-offset", Reply::Int(0)),
            ("health", Reply::bulk_str(if online { "online" } else { "loading" })),
        ])
    };
    Reply::Array(
        view.shards
            .iter()
            .map(|s| {
                let mut nodes = Vec::new();
                if let Some(n) = s.leader.and_then(|l| view.node(l)) {
                    nodes.push(node(n, "master", true));
                }
                for r in s.replicas.iter().filter(|r| Some(**r) != s.leader) {
                    if let Some(n) = view.node(*r) {
                        nodes.push(node(n, "replica", s.leader.is_some()));
                    }
                }
                Reply::map([
                    ("slots", Reply::Array(vec![Reply::Int(s.first_slot as i64), Reply::Int(s.last_slot as i64)])),
                    ("nodes", Reply::Array(nodes)),
                ])
            })
            .collect(),
    )
}

/// Contiguous `(first, last)` ranges merged.
fn merged(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if last.1 as u32 + 1 >= a as u32 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `CLUSTER NODES`: one line per node. A node that leads any partition is
/// a `master` listing the slots it leads (merged); one that leads none is
/// a `slave` of the leader of its first partition.
pub fn nodes(view: &ClusterView, local: Option<SocketAddr>) -> Reply {
    let mut text = String::new();
    for n in &view.nodes {
        let (ip, port) = advertised(&n.resp_addr, local);
        let led: Vec<(u16, u16)> = view.shards.iter().filter(|s| s.leader == Some(n.id)).map(|s| (s.first_slot, s.last_slot)).collect();
        let myself = if n.id == view.me { "myself," } else { "" };
        let (role, master) = if !led.is_empty() {
            ("master", "-".to_string())
        } else {
            let follows = view.shards.iter().find(|s| s.replicas.contains(&n.id)).and_then(|s| s.leader);
            ("slave", follows.map_or("-".to_string(), node_name))
        };
        let ip_show = if ip.contains(':') { format!("[{ip}]") } else { ip };
        text.push_str(&format!(
            "{} {ip_show}:{port}@{},{} {myself}{role} {master} 0 0 {} connected",
            node_name(n.id),
            bus_port(port),
            n.http_addr,
            view.epoch
        ));
        for (a, b) in merged(led) {
            if a == b {
                text.push_str(&format!(" {a}"));
            } else {
                text.push_str(&format!(" {a}-{b}"));
            }
        }
        text.push('\n');
    }
    Reply::Verbatim { format: *b"txt", text: Bytes::from(text) }
}

/// `CLUSTER INFO`: Redis' fields (state `ok` when every slot has a leader),
/// plus `cluster_partitions`.
pub fn info(view: &ClusterView) -> Reply {
    let ok: u32 = view.shards.iter().filter(|s| s.leader.is_some()).map(|s| (s.last_slot - s.first_slot) as u32 + 1).sum();
    let assigned: u32 = view.shards.iter().map(|s| (s.last_slot - s.first_slot) as u32 + 1).sum();
    let masters = view.nodes.iter().filter(|n| view.shards.iter().any(|s| s.leader == Some(n.id))).count();
    let state = if ok == replication::SLOT_COUNT as u32 { "ok" } else { "fail" };
    let text = format!(
        "cluster_enabled:1\r\ncluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\ncluster_size:{masters}\r\n\
         cluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\ncluster_partitions:{}\r\n",
        assigned - ok,
        view.nodes.len(),
        view.epoch,
        view.epoch,
        view.shards.len()
    );
    Reply::Verbatim { format: *b"txt", text: Bytes::from(text) }
}

pub fn help() -> Reply {
    Reply::Array(
        [
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot of a character name (normalised first, as the node does).",
            "MYID",
            "    Return the node id.",
            "NODES",
            "    Return cluster configuration seen by node (one line per node).",
            "SHARDS",
            "    Return information about each partition: its slots and nodes.",
            "SLOTS",
            "    Return information about slots range mappings.",
        ]
        .into_iter()
        .map(Reply::simple)
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::topology::ShardView;

    fn view() -> ClusterView {
        ClusterView {
            me: 1,
            epoch: 3,
            nodes: vec![
                NodeView { id: 1, resp_addr: "0.0.0.0:6380".into(), http_addr: "0.0.0.0:8080".into() },
                NodeView { id: 2, resp_addr: "10.0.0.2:6380".into(), http_addr: "10.0.0.2:8080".into() },
            ],
            shards: vec![
                ShardView { partition: 0, first_slot: 0, last_slot: 8191, leader: Some(1), replicas: vec![1, 2] },
                ShardView { partition: 1, first_slot: 8192, last_slot: 16383, leader: None, replicas: vec![1, 2] },
            ],
        }
    }

    #[test]
    fn slots_lists_led_ranges_with_replicas_and_the_local_address() {
        let local = Some("127.0.0.1:6380".parse().unwrap());
        let Reply::Array(ranges) = slots(&view(), local) else { panic!() };
        assert_eq!(ranges.len(), 1, "the leaderless partition is left out");
        let Reply::Array(r) = &ranges[0] else { panic!() };
        assert_eq!(&r[..2], &[Reply::Int(0), Reply::Int(8191)]);
        assert_eq!(r[2], Reply::Array(vec![Reply::bulk_str("127.0.0.1"), Reply::Int(6380), Reply::bulk_str(node_name(1))]));
        assert_eq!(r[3], Reply::Array(vec![Reply::bulk_str("10.0.0.2"), Reply::Int(6380), Reply::bulk_str(node_name(2))]));
    }

    #[test]
    fn nodes_and_info_text() {
        let Reply::Verbatim { text, .. } = nodes(&view(), None) else { panic!() };
        let text = String::from_utf8(text.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("myself,master - 0 0 3 connected 0-8191"), "{text}");
        assert!(lines[1].contains(" slave ") && lines[1].starts_with(&node_name(2)), "{text}");
        let Reply::Verbatim { text, .. } = info(&view()) else { panic!() };
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains("cluster_state:fail\r\n") && text.contains("cluster_slots_ok:8192\r\n"), "{text}");
        assert!(text.contains("cluster_slots_fail:8192\r\n") && text.contains("cluster_known_nodes:2\r\n"), "{text}");
        assert_eq!(merged(vec![(5, 9), (0, 4), (11, 12)]), vec![(0, 9), (11, 12)]);
    }

    #[test]
    fn shards_name_master_and_replicas() {
        let Reply::Array(s) = shards(&view(), None) else { panic!() };
        assert_eq!(s.len(), 2);
        let Reply::Map(first) = &s[0] else { panic!() };
        let Reply::Array(nodes) = &first[1].1 else { panic!() };
        assert_eq!(nodes.len(), 2);
        let Reply::Map(master) = &nodes[0] else { panic!() };
        assert!(master.contains(&(Reply::bulk_str("role"), Reply::bulk_str("master"))));
    }
}
