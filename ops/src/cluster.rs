//! The node's place in the cluster, shared by every core: its id, the
//! placement of the partitions' replicas, the cluster map (who leads what,
//! as this node knows it), the peer listener and its per-core handoffs, and
//! the codec of requests forwarded to a partition's leader.
//!
//! A node without `--peers` is a one-node cluster on the same code path:
//! one replica per partition, no peer listener, the `NoPeers` transport,
//! every route local.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use net::peer::{DropSwitch, Handoff, PeerLimits};
use replication::codec::{DecodeError, Reader, Writer};
use replication::peer::PeerBook;
use replication::{ClusterView, Directory, GroupStats, NodeCard, NodeId, NodeInfo, Placement, SlotMap};

use crate::config::Config;

/// What every core knows about the cluster (`Send + Sync`).
pub struct NodeCluster {
    pub me: NodeId,
    /// Placement, directory and the groups' stats: routes and the map.
    pub view: ClusterView,
    /// Peer addresses (None: a one-node cluster).
    pub book: Option<PeerBook>,
    /// Every node as a group member (the bootstrapper's membership).
    pub members: BTreeMap<NodeId, NodeInfo>,
    pub peer_addr: Option<SocketAddr>,
    pub limits: PeerLimits,
    /// Test switch: cuts this node off its peers (`POST /admin/test/peer-cut`,
    /// only with `MAPLE_TEST_HOOKS=1` in the node's environment).
    pub switch: DropSwitch,
    pub test_hooks: bool,
    listener: Mutex<Option<std::net::TcpListener>>,
    handoff_tx: Vec<flume::Sender<Handoff>>,
    handoff_rx: Mutex<Vec<Option<flume::Receiver<Handoff>>>>,
    /// Requests this node forwarded, by result ([`FORWARD_RESULTS`]), and
    /// requests other nodes forwarded here.
    pub forwards: [AtomicU64; 3],
    pub forwards_in: AtomicU64,
}

/// The results a forward is counted under: answered by the leader (any
/// status), no leader known / "not the leader" twice (503), or the peer
/// did not answer (503).
pub const FORWARD_RESULTS: [&str; 3] = ["answered", "no_leader", "failed"];

impl NodeCluster {
    /// Resolve the peers, bind the peer listener (before any core serves:
    /// a port in use is a start error), build the map.
    pub fn new(
        cfg: &Config,
        partitions: u32,
        http_addr: SocketAddr,
        resp_addr: Option<SocketAddr>,
        stats: Vec<Arc<GroupStats>>,
    ) -> anyhow::Result<NodeCluster> {
        let c = &cfg.cluster;
        let me = c.node_id;
        let placement = Placement::new(&c.node_ids(), partitions, c.replicas).map_err(|e| anyhow::anyhow!("placement: {e}"))?;
        let mut addrs = std::collections::HashMap::new();
        for (id, a) in &c.peers {
            let addr = a
                .to_socket_addrs()
                .with_context(|| format!("resolving the peer address {a:?} of node {id} (--peers)"))?
                .next()
                .ok_or_else(|| anyhow::anyhow!("the peer address {a:?} of node {id} resolves to nothing"))?;
            addrs.insert(*id, addr);
        }
        let listener = match c.peer_listen {
            None => None,
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr).with_context(|| {
                    format!("binding the peer listener {addr} (--peer-listen / this node's --peers entry): is the port in use?")
                })?;
                l.set_nonblocking(true).context("peer listener: non-blocking mode")?;
                Some(l)
            }
        };
        let peer_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let card = NodeCard {
            id: me,
            cores: cfg.cores as u16,
            peer_addr: c.peers.get(&me).cloned().unwrap_or_default(),
            http_addr: http_addr.to_string(),
            resp_addr: resp_addr.map(|a| a.to_string()).unwrap_or_default(),
        };
        let directory = Arc::new(Directory::new([card]));
        for (id, a) in &c.peers {
            if *id != me {
                directory.learn(NodeCard { id: *id, cores: 0, peer_addr: a.clone(), ..Default::default() });
            }
        }
        let members = placement
            .nodes()
            .iter()
            .map(|id| {
                let http = if *id == me { http_addr.to_string() } else { String::new() };
                (*id, NodeInfo { peer_addr: c.peers.get(id).cloned().unwrap_or_default(), http_addr: http, resp_addr: String::new() })
            })
            .collect();
        let book = (!c.peers.is_empty()).then(|| PeerBook { addrs, cores: Default::default(), directory: Some(directory.clone()) });
        let (tx, rx): (Vec<_>, Vec<_>) = (0..cfg.cores).map(|_| flume::bounded::<Handoff>(256)).unzip();
        let view = ClusterView { me, placement, slots: SlotMap::new(partitions, cfg.cores), directory, stats };
        Ok(NodeCluster {
            me,
            view,
            book,
            members,
            peer_addr,
            limits: PeerLimits::default(),
            switch: DropSwitch::new(),
            test_hooks: std::env::var("MAPLE_TEST_HOOKS").is_ok_and(|v| v == "1"),
            listener: Mutex::new(listener),
            handoff_tx: tx,
            handoff_rx: Mutex::new(rx.into_iter().map(Some).collect()),
            forwards: Default::default(),
            forwards_in: AtomicU64::new(0),
        })
    }

    /// More than one node.
    pub fn is_cluster(&self) -> bool {
        self.book.is_some()
    }

    /// The peer listener (core 0, once) and the handoff senders to every core.
    pub fn take_listener(&self) -> Option<(std::net::TcpListener, Vec<flume::Sender<Handoff>>)> {
        let l = self.listener.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        Some((l, self.handoff_tx.clone()))
    }

    /// The receiving end of `core`'s handoffs (once).
    pub fn take_handoffs(&self, core: usize) -> Option<flume::Receiver<Handoff>> {
        self.handoff_rx.lock().unwrap_or_else(|p| p.into_inner()).get_mut(core).and_then(Option::take)
    }

    /// The core of `node` hosting partition `p` (0 until its card is known:
    /// that core hands the request on inside the node).
    pub fn core_on(&self, node: NodeId, p: u32) -> u16 {
        self.view.directory.cores(node).map_or(0, |c| (p % c as u32) as u16)
    }
}

impl NodeCluster {
    pub fn count_forward(&self, result: usize) {
        self.forwards[result].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `GET /admin/cluster`: the nodes as this node knows them, and per
    /// partition its slots, replicas, the leader this node knows, and this
    /// node's replica (state, term, last log / committed / applied index;
    /// on the leader, each replica's lag behind the committed index).
    pub fn status_json(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let v = &self.view;
        let nodes: Vec<_> = v
            .directory
            .all()
            .into_iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "http": c.http_addr,
                    "peer": c.peer_addr,
                    "cores": (c.cores > 0).then_some(c.cores),
                    "me": c.id == self.me,
                })
            })
            .collect();
        let idx = |x: u64| x.checked_sub(1);
        let partitions: Vec<_> = (0..v.placement.partitions())
            .map(|p| {
                let mut j = serde_json::json!({
                    "partition": p,
                    "slots": [v.slots.slot_range(p).0, v.slots.slot_range(p).1],
                    "replicas": v.placement.replicas(p),
                    "leader": v.map_leader(p),
                });
                if let (true, Some(s)) = (v.hosts(p), v.stats.get(p as usize)) {
                    let committed = idx(s.committed.load(Relaxed));
                    let matched = s.matched.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let lag: serde_json::Map<String, serde_json::Value> = matched
                        .iter()
                        .map(|(n, m)| {
                            // Entries committed that the replica is not known to hold.
                            let lag = match (committed, m) {
                                (Some(c), Some(m)) => Some(c.saturating_sub(*m)),
                                (Some(c), None) => Some(c + 1),
                                (None, _) => None,
                            };
                            (n.to_string(), serde_json::json!(lag))
                        })
                        .collect();
                    let state = *s.state.lock().unwrap_or_else(|e| e.into_inner());
                    j["here"] = serde_json::json!({
                        "state": if state.is_empty() { "starting" } else { state },
                        "term": s.term.load(Relaxed),
                        "last_log": idx(s.last_log.load(Relaxed)),
                        "committed": committed,
                        "applied": s.applied_index(),
                        "lag": lag,
                    });
                }
                j
            })
            .collect();
        serde_json::json!({
            "node": self.me,
            "replication_factor": v.placement.rf(),
            "nodes": nodes,
            "partitions": partitions,
        })
    }
}

// ---- forwarded requests ----

/// Request headers a forward carries (the rest are not read by the service).
pub const FORWARDED_HEADERS: [&str; 6] =
    ["authorization", "idempotency-key", "accept-encoding", "if-none-match", "traceparent", "content-type"];

/// Response headers relayed back from the owner (static names, as
/// `net::Response` wants them).
const RELAYED_HEADERS: [&str; 11] = [
    "content-type",
    "content-encoding",
    "etag",
    "vary",
    "x-cache",
    "warning",
    "retry-after",
    "www-authenticate",
    "allow",
    "cache-control",
    "x-maple-node",
];

/// What a node asks a partition's leader.
#[derive(Debug, Clone)]
pub enum FwdRequest {
    /// A client HTTP request, to serve as if received there.
    Http(net::Request),
    /// The reservation step of a keyed like toggle, at the leader of the
    /// user's partition: bind `key` (the raw Idempotency-Key) to the
    /// character (`name`, normalised; `display` as asked).
    Reserve { user: String, key: Vec<u8>, name: String, display: String },
}

/// The leader's answer.
#[derive(Debug)]
pub enum FwdReply {
    Answer(net::Response),
    /// Not the leader there: its best guess of who is (0: none known).
    NotLeader(NodeId),
}

const MAX_FWD_HEADERS: usize = 64;

impl FwdRequest {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::with_capacity(256);
        match self {
            FwdRequest::Http(r) => {
                w.u8(1);
                w.str(&r.method);
                w.str(&r.path);
                w.str(&r.query);
                let kept: Vec<&(String, Bytes)> =
                    r.headers.iter().filter(|(n, _)| FORWARDED_HEADERS.iter().any(|f| n.eq_ignore_ascii_case(f))).collect();
                w.u32(kept.len() as u32);
                for (n, v) in kept {
                    w.str(&n.to_ascii_lowercase());
                    w.bytes(v);
                }
                w.bytes(&r.body);
            }
            FwdRequest::Reserve { user, key, name, display } => {
                w.u8(2);
                w.str(user);
                w.bytes(key);
                w.str(name);
                w.str(display);
            }
        }
        w.into_bytes()
    }

    pub fn decode(b: &[u8]) -> Result<FwdRequest, DecodeError> {
        let mut r = Reader::new(b);
        let req = match r.u8("forward kind")? {
            1 => {
                let (method, path, query) = (r.str("method")?, r.str("path")?, r.str("query")?);
                let n = r.u32("header count")? as usize;
                if n > MAX_FWD_HEADERS {
                    return Err(DecodeError::Invalid("too many forwarded headers"));
                }
                let mut headers = Vec::with_capacity(n);
                for _ in 0..n {
                    headers.push((r.str("header name")?, Bytes::copy_from_slice(r.bytes("header value")?)));
                }
                let body = Bytes::copy_from_slice(r.bytes("body")?);
                FwdRequest::Http(net::Request { method, path, query, headers, body })
            }
            2 => FwdRequest::Reserve {
                user: r.str("user")?,
                key: r.bytes("idempotency key")?.to_vec(),
                name: r.str("name")?,
                display: r.str("display")?,
            },
            t => return Err(DecodeError::BadTag { what: "forward kind", tag: t }),
        };
        r.finish()?;
        Ok(req)
    }
}

impl FwdReply {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::with_capacity(256);
        match self {
            FwdReply::Answer(resp) => {
                w.u8(1);
                w.u32(resp.status as u32);
                let kept: Vec<_> = resp.headers.iter().filter(|(n, _)| RELAYED_HEADERS.contains(n)).collect();
                w.u32(kept.len() as u32);
                for (n, v) in kept {
                    w.str(n);
                    w.str(v);
                }
                w.bytes(&resp.body);
            }
            FwdReply::NotLeader(hint) => {
                w.u8(2);
                w.u64(*hint);
            }
        }
        w.into_bytes()
    }

    pub fn decode(b: &[u8]) -> Result<FwdReply, DecodeError> {
        let mut r = Reader::new(b);
        let reply = match r.u8("forward reply kind")? {
            1 => {
                let status = r.u32("status")?;
                if !(100..=599).contains(&status) {
                    return Err(DecodeError::Invalid("status"));
                }
                let n = r.u32("header count")? as usize;
                if n > MAX_FWD_HEADERS {
                    return Err(DecodeError::Invalid("too many relayed headers"));
                }
                let mut resp = net::Response::new(status as u16);
                for _ in 0..n {
                    let (name, value) = (r.str("header name")?, r.str("header value")?);
                    // Unknown names are dropped: the relay speaks static names only.
                    if let Some(known) = RELAYED_HEADERS.iter().find(|h| **h == name) {
                        resp = resp.header(known, value);
                    }
                }
                resp.body = Bytes::copy_from_slice(r.bytes("body")?);
                FwdReply::Answer(resp)
            }
            2 => FwdReply::NotLeader(r.u64("leader hint")?),
            t => return Err(DecodeError::BadTag { what: "forward reply kind", tag: t }),
        };
        r.finish()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_round_trip_and_bad_bytes_are_errors() {
        let req = net::Request {
            method: "POST".into(),
            path: "/api/v2/characters/a/like".into(),
            query: "x=1".into(),
            headers: vec![
                ("Authorization".into(), Bytes::from_static(b"Bearer t")),
                ("x-other".into(), Bytes::from_static(b"dropped")),
                ("traceparent".into(), Bytes::from_static(b"00-1-2-01")),
            ],
            body: Bytes::from_static(b"{}"),
        };
        let FwdRequest::Http(back) = FwdRequest::decode(&FwdRequest::Http(req.clone()).encode()).unwrap() else { panic!() };
        assert_eq!(
            (back.method.as_str(), back.path.as_str(), back.query.as_str(), &back.body[..]),
            ("POST", req.path.as_str(), "x=1", &b"{}"[..])
        );
        assert_eq!(back.headers.len(), 2, "only the forwarded headers travel");
        assert_eq!(back.headers[0].0, "authorization");
        let res = FwdRequest::Reserve { user: "u".into(), key: b"k-1".to_vec(), name: "abc".into(), display: "ABC".into() };
        assert_eq!(FwdRequest::decode(&res.encode()).unwrap().encode(), res.encode());
        let resp = net::Response::json(503, "{}").header("retry-after", "1").header("x-unknown", "v");
        let FwdReply::Answer(r) = FwdReply::decode(&FwdReply::Answer(resp).encode()).unwrap() else { panic!() };
        assert_eq!(r.status, 503);
        assert!(r.headers.iter().any(|(n, v)| *n == "retry-after" && v == "1"));
        assert!(!r.headers.iter().any(|(n, _)| *n == "x-unknown"));
        assert!(matches!(FwdReply::decode(&FwdReply::NotLeader(3).encode()).unwrap(), FwdReply::NotLeader(3)));
        for bad in [&b""[..], &[9][..], &[1, 0][..], &[2, 1, 2][..]] {
            assert!(FwdRequest::decode(bad).is_err() && FwdReply::decode(bad).is_err(), "{bad:?}");
        }
        let mut w = Writer::new();
        w.u8(1);
        w.u32(200);
        w.u32(1_000_000);
        assert!(FwdReply::decode(&w.into_bytes()).is_err(), "header count is bounded");
    }
}
