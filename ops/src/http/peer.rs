//! The peer protocol on a core: the listener (core 0 accepts and hands
//! each connection to the core its hello names), the handler (Raft
//! messages to the core's groups, the node-card exchange, requests
//! forwarded by other nodes), and the forwarding of a request to the
//! leader of its partition.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::owner::Place;
use engine::partition::{IdempotencyKey, UserId};
use futures::future::LocalBoxFuture;
use net::peer::{
    accept_loop, handoff_loop, Forward, Frame, Hello, PeerHandler, KIND_ERROR, KIND_FORWARD, KIND_FORWARD_REPLY, KIND_INFO, KIND_REPLY,
};
use net::{Request, Response};
use replication::{MsgKind, NodeCard, NodeId, Route as ClusterRoute};

use super::error::error_json;
use super::route::{route, Name, Route};
use super::service::CoreInner;
use super::trace;
use crate::cluster::{FwdReply, FwdRequest};
use crate::logging::Throttle;

/// Longest wait for a forwarded request's answer (a like waits for its
/// quorum, an expectation may wait for the upstream).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// At most one "forward to the leader failed" line per target node per
/// this period on a core: a dead peer under load would otherwise log one
/// per request. 5 s, not the 10 s of other summaries: a failover takes
/// ~2 s, so lines that keep coming mean the node stays unreachable.
pub const FORWARD_FAILURE_LOG_EVERY: Duration = Duration::from_secs(5);

/// The forward-failure lines of a core, throttled per target node (the
/// nodes are few and fixed: the map stays small).
#[derive(Debug, Default)]
pub struct ForwardFailureLog {
    per_node: HashMap<NodeId, Throttle>,
}

impl ForwardFailureLog {
    /// `Some(n)`: log this failure of a forward to `node`, mentioning the
    /// `n` failures to it not logged since its previous line.
    pub fn allow(&mut self, node: NodeId, now: Instant) -> Option<u64> {
        self.per_node.entry(node).or_insert_with(|| Throttle::new(FORWARD_FAILURE_LOG_EVERY)).allow(now)
    }
}

/// 503 + Retry-After: the partition has no leader right now.
pub fn no_leader(p: u32) -> Response {
    error_json(503, "PARTITION_UNAVAILABLE", &format!("partition {p} has no leader right now (an election is in progress); retry"))
}

/// Start the peer listener's part on this core (a one-node cluster has none).
pub fn serve_peers(inner: &Rc<CoreInner>) {
    let cluster = &inner.shared.cluster;
    if !cluster.is_cluster() {
        return;
    }
    let handler: Rc<dyn PeerHandler> = Rc::new(NodePeer { inner: inner.clone() });
    let (limits, switch) = (cluster.limits.clone(), cluster.switch.clone());
    if inner.core == 0 {
        if let Some((listener, handoffs)) = cluster.take_listener() {
            match monoio::net::TcpListener::from_std(listener) {
                Ok(l) => {
                    monoio::spawn(accept_loop(l, 0, handler.clone(), Some(handoffs), limits.clone(), switch.clone()));
                }
                Err(e) => tracing::error!(error = %e, "the peer listener could not join core 0's runtime; no peer traffic"),
            }
        }
    }
    if let Some(rx) = cluster.take_handoffs(inner.core) {
        monoio::spawn(handoff_loop(rx, handler, limits, switch));
    }
}

struct NodePeer {
    inner: Rc<CoreInner>,
}

impl PeerHandler for NodePeer {
    fn handle(&self, from: Hello, frame: Frame) -> LocalBoxFuture<'static, Frame> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let group = frame.group;
            let err = |text: String| Frame::new(KIND_ERROR, 0, group, Bytes::from(text));
            match frame.kind {
                KIND_INFO => {
                    let directory = &inner.shared.cluster.view.directory;
                    match NodeCard::decode(&frame.body) {
                        Ok(card) if card.id == from.node => {
                            if directory.learn(card.clone()) {
                                tracing::info!(node = card.id, cores = card.cores, http = %card.http_addr, "learnt the card of node {}", card.id);
                            }
                        }
                        Ok(card) => tracing::warn!(node = from.node, claims = card.id, "a peer sent the card of another node; ignored"),
                        Err(e) => tracing::warn!(node = from.node, error = %e, "a peer sent an undecodable node card; ignored"),
                    }
                    match directory.get(inner.shared.cluster.me) {
                        Some(mine) => Frame::new(KIND_REPLY, 0, group, mine.encode()),
                        None => err("no card".into()),
                    }
                }
                KIND_FORWARD => match Forward::decode(&frame.body) {
                    Ok(fwd) => {
                        let reply = inner.serve_forward(from.node, fwd).await;
                        Frame::new(KIND_FORWARD_REPLY, 0, group, reply.encode())
                    }
                    Err(e) => err(format!("bad forward: {e}")),
                },
                kind => {
                    let Some(kind) = MsgKind::from_u8(kind) else { return err(format!("unknown frame kind {kind}")) };
                    let Some(host) = inner.groups.get().map(|g| g.host().clone()) else {
                        return err("this node's groups are starting".into());
                    };
                    match host.handle(group, kind, frame.body).await {
                        Ok(b) => Frame::new(KIND_REPLY, 0, group, b),
                        Err(e) => {
                            tracing::debug!(from = from.node, group, ?kind, error = %e, "peer raft message refused");
                            err(e)
                        }
                    }
                }
            }
        })
    }
}

impl CoreInner {
    /// True when requests of partition `p` are served here.
    pub(crate) fn leads(&self, p: u32) -> bool {
        self.shared.cluster.view.route(p) == ClusterRoute::Local
    }

    /// Forward a client request to `node` (the leader of `p` as this node
    /// knows it) and relay its answer; a "not the leader" answer is
    /// retried once at the leader it names. The forward and the request
    /// carry the client's valid `traceparent`, else a fresh one.
    pub(crate) async fn forward(&self, req: &Request, p: u32, node: NodeId) -> Response {
        let tp = trace::traceparent_of(req);
        let req = trace::with_traceparent(req, &tp);
        match self.ask(p, node, FwdRequest::Http(req).encode(), &tp).await {
            Ok(r) | Err(r) => r,
        }
    }

    /// The reservation step of a keyed toggle at the leader of the user's
    /// partition `home`; `Some(answer)` when it refused (relay it).
    /// `traceparent`: the request's (see [`trace::traceparent_of`]).
    pub(crate) async fn reserve_remote(
        &self,
        user: &UserId,
        raw_key: &[u8],
        character: &engine::owner::Key,
        home: u32,
        traceparent: &str,
    ) -> Option<Response> {
        let node = match self.shared.cluster.view.route(home) {
            ClusterRoute::Remote(n) => n,
            ClusterRoute::NoLeader => return Some(no_leader(home)),
            ClusterRoute::Local => return Some(no_leader(home)),
        };
        let body = FwdRequest::Reserve {
            user: user.as_str().to_owned(),
            key: raw_key.to_vec(),
            name: character.key.clone(),
            display: character.display.clone(),
        }
        .encode();
        match self.ask(home, node, body, traceparent).await {
            Ok(r) if r.status == 200 => None,
            Ok(r) | Err(r) => Some(r),
        }
    }

    /// Send `body` to `node` for partition `p`: `Ok(answer)`, or `Err(503)`
    /// when no leader answered.
    async fn ask(&self, p: u32, node: NodeId, body: Bytes, traceparent: &str) -> Result<Response, Response> {
        let Some(t) = &self.peers else {
            self.shared.cluster.count_forward(1);
            return Err(no_leader(p));
        };
        let mut target = node;
        for attempt in 0..2 {
            tracing::debug!(partition = p, node = target, attempt, traceparent = %traceparent, "forwarding a request to the leader");
            let fwd = Forward { traceparent: traceparent.to_owned(), request: body.clone() };
            let sent = async {
                t.learn(target).await?;
                t.forward(target, self.shared.cluster.core_on(target, p), fwd, FORWARD_TIMEOUT).await
            };
            let reply = match sent.await {
                Ok(b) => FwdReply::decode(&b).map_err(|e| format!("undecodable answer: {e}")),
                Err(e) => Err(e.to_string()),
            };
            match reply {
                Ok(FwdReply::Answer(resp)) => {
                    self.shared.cluster.count_forward(0);
                    return Ok(resp);
                }
                Ok(FwdReply::NotLeader(hint)) => {
                    tracing::debug!(partition = p, node = target, hint, traceparent = %traceparent, "forward: not the leader there");
                    let next = match self.shared.cluster.view.route(p) {
                        _ if hint != 0 && hint != target && hint != self.shared.cluster.me => Some(hint),
                        ClusterRoute::Remote(n) if n != target => Some(n),
                        _ => None,
                    };
                    match next {
                        Some(n) if attempt == 0 => target = n,
                        _ => {
                            self.shared.cluster.count_forward(1);
                            return Err(no_leader(p));
                        }
                    }
                }
                Err(e) => {
                    // A stale map (the leader died or moved): once more at the leader known now.
                    if let (0, ClusterRoute::Remote(n)) = (attempt, self.shared.cluster.view.route(p)) {
                        if n != target {
                            target = n;
                            continue;
                        }
                    }
                    self.shared.cluster.count_forward(2);
                    if let Some(suppressed) = self.forward_failure_log.borrow_mut().allow(target, Instant::now()) {
                        tracing::warn!(
                            partition = p,
                            node = target,
                            error = %e,
                            traceparent = %traceparent,
                            suppressed,
                            "forward to the leader failed: {e} ({suppressed} more failed forwards to node {target} not logged \
                             since the previous line)"
                        );
                    }
                    return Err(error_json(
                        503,
                        "PARTITION_UNAVAILABLE",
                        &format!("partition {p}: its leader, node {target}, did not answer ({e}); retry"),
                    ));
                }
            }
        }
        Err(no_leader(p))
    }

    /// A request another node forwarded here: served when this node leads
    /// the partition, else "not the leader" with the leader it knows.
    pub(crate) async fn serve_forward(&self, from: NodeId, fwd: Forward) -> FwdReply {
        let me = self.shared.cluster.me.to_string();
        self.shared.cluster.forwards_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let req = match FwdRequest::decode(&fwd.request) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(from, error = %e, "undecodable forwarded request");
                return FwdReply::Answer(error_json(400, "BAD_REQUEST", &format!("undecodable forwarded request: {e}")));
            }
        };
        let not_here = |p: u32| match self.shared.cluster.view.route(p) {
            ClusterRoute::Local => None,
            ClusterRoute::Remote(n) => Some(FwdReply::NotLeader(n)),
            ClusterRoute::NoLeader => Some(FwdReply::NotLeader(0)),
        };
        match req {
            FwdRequest::Http(req) => {
                let (name, op) = match route(&req.method, &req.path, &req.query) {
                    Ok(Route::Character(name, op)) => (name, op),
                    _ => return FwdReply::Answer(error_json(400, "BAD_REQUEST", "only character requests are forwarded")),
                };
                let p = self.shared.slots.partition_of(name.slot);
                if let Some(no) = not_here(p) {
                    return no;
                }
                tracing::debug!(from, partition = p, traceparent = %fwd.traceparent, "serving a forwarded request");
                FwdReply::Answer(self.character(&req, name, op, true).await.header("x-maple-node", me))
            }
            FwdRequest::Reserve { user, key, name, display } => {
                let user = match UserId::parse(&user) {
                    Ok(u) => u,
                    Err(e) => return FwdReply::Answer(error_json(400, "BAD_REQUEST", &e.to_string())),
                };
                let key = match IdempotencyKey::parse(&key) {
                    Ok(k) => k,
                    Err(e) => return FwdReply::Answer(error_json(400, "BAD_REQUEST", &e.to_string())),
                };
                let home = self.shared.slots.partition_of(replication::slot_of(user.as_str()));
                if let Some(no) = not_here(home) {
                    return no;
                }
                tracing::debug!(from, partition = home, traceparent = %fwd.traceparent, "serving a forwarded reservation");
                let slot = replication::slot_of(&name);
                let character = self.key(Name { display, key: name, slot });
                let place = Place { partition: home, core: self.shared.slots.core_of(home) };
                match self.shard.reserve(&user, &key, place, &character).await {
                    Ok(()) => FwdReply::Answer(Response::new(200)),
                    Err(e) => FwdReply::Answer(self.error(&e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_failures_log_once_per_period_per_target_node() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut log = ForwardFailureLog::default();
        assert_eq!(log.allow(2, at(0)), Some(0));
        assert_eq!(log.allow(3, at(0)), Some(0), "another node has its own line");
        for s in 1..5 {
            assert_eq!(log.allow(2, at(s)), None);
        }
        assert_eq!(log.allow(3, at(1)), None);
        assert_eq!(log.allow(2, at(5)), Some(4), "the next line counts the 4 not logged");
        assert_eq!(log.allow(3, at(5)), Some(1));
        assert_eq!(log.allow(2, at(6)), None);
    }
}
