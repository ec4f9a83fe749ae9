//! Raft over the TCP peer protocol (`net::peer`): a [`Transport`] keeping
//! one connection per (node, core) — shared by every group of this core —
//! and the [`PeerHandler`] answering Raft messages and forwards on a core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use net::peer::{
    DropSwitch, Forward, Frame, Hello, PeerClient, PeerError, PeerHandler, PeerLimits, KIND_ERROR, KIND_FORWARD, KIND_FORWARD_REPLY,
    KIND_INFO, KIND_REPLY,
};

use crate::cluster::NodeCard;
use crate::host::Host;
use crate::network::{MsgKind, Transport, TransportError};
use crate::state_machine::PartitionMachine;
use crate::types::{GroupId, NodeId};

/// Where peers are and how many cores each has (partition p lives on core
/// `p % cores` of every node).
/// Core counts learnt at run time (the hello exchange) win over `cores`.
#[derive(Debug, Clone)]
pub struct PeerBook {
    pub addrs: HashMap<NodeId, SocketAddr>,
    pub cores: HashMap<NodeId, u16>,
    pub directory: Option<std::sync::Arc<crate::cluster::Directory>>,
}

impl PeerBook {
    pub fn core_for(&self, node: NodeId, group: GroupId) -> u16 {
        let learnt = self.directory.as_ref().and_then(|d| d.cores(node));
        let cores = learnt.or_else(|| self.cores.get(&node).copied()).unwrap_or(1).max(1);
        (group % cores as u32) as u16
    }
}

/// The TCP transport of one core.
pub struct TcpTransport {
    me: Hello,
    book: PeerBook,
    limits: PeerLimits,
    switch: DropSwitch,
    conns: RefCell<HashMap<(NodeId, u16), PeerClient>>,
}

fn transport_err(target: NodeId, e: PeerError) -> TransportError {
    match e {
        PeerError::Timeout(d) => TransportError::Timeout(target, d),
        PeerError::Remote(s) => TransportError::Remote(target, s),
        other => TransportError::Unreachable(target, other.to_string()),
    }
}

impl TcpTransport {
    pub fn new(node: NodeId, core: u16, book: PeerBook, limits: PeerLimits, switch: DropSwitch) -> Rc<TcpTransport> {
        Rc::new(TcpTransport { me: Hello { node, core, target_core: 0 }, book, limits, switch, conns: RefCell::new(HashMap::new()) })
    }

    /// The connection to (node, core), (re)connecting when needed.
    pub async fn client(&self, node: NodeId, core: u16) -> Result<PeerClient, TransportError> {
        if let Some(c) = self.conns.borrow().get(&(node, core)) {
            if c.is_alive() {
                return Ok(c.clone());
            }
        }
        let addr = *self.book.addrs.get(&node).ok_or_else(|| TransportError::Unreachable(node, "no address".into()))?;
        let hello = Hello { target_core: core, ..self.me };
        let c = PeerClient::connect(addr, hello, self.limits.clone(), self.switch.clone()).await.map_err(|e| transport_err(node, e))?;
        self.conns.borrow_mut().insert((node, core), c.clone());
        Ok(c)
    }

    /// Learn `node`'s card (its core count, addresses) through the hello
    /// exchange ([`KIND_INFO`], to its core 0) unless known: partition p's
    /// group lives on core `p % cores` there. A no-op without a directory.
    pub async fn learn(&self, node: NodeId) -> Result<(), TransportError> {
        let Some(dir) = &self.book.directory else { return Ok(()) };
        if dir.cores(node).is_some() {
            return Ok(());
        }
        let mine = dir.get(self.me.node).map(|c| c.encode()).unwrap_or_default();
        let reply = self.request(node, 0, KIND_INFO, mine, Duration::from_secs(2)).await?;
        let card = NodeCard::decode(&reply).map_err(|e| TransportError::Remote(node, format!("bad node card: {e}")))?;
        if card.id != node {
            return Err(TransportError::Remote(node, format!("the node at its address says it is node {}", card.id)));
        }
        if dir.learn(card.clone()) {
            tracing::info!(node, cores = card.cores, http = %card.http_addr, "learnt the card of node {node}");
        }
        Ok(())
    }

    /// Forward a client request to `node`'s `core` and wait for its answer.
    pub async fn forward(&self, node: NodeId, core: u16, fwd: Forward, timeout: Duration) -> Result<Bytes, TransportError> {
        let c = self.client(node, core).await?;
        let f = c.request(KIND_FORWARD, 0, fwd.encode(), timeout).await.map_err(|e| transport_err(node, e))?;
        Ok(f.body)
    }

    pub fn book(&self) -> &PeerBook {
        &self.book
    }

    /// One request of another kind (e.g. the hello exchange) to (node, core).
    pub async fn request(&self, node: NodeId, core: u16, kind: u8, body: Bytes, timeout: Duration) -> Result<Bytes, TransportError> {
        let c = self.client(node, core).await?;
        let f = c.request(kind, 0, body, timeout).await.map_err(|e| transport_err(node, e))?;
        Ok(f.body)
    }

    pub fn drop_switch(&self) -> &DropSwitch {
        &self.switch
    }
}

impl Transport for Rc<TcpTransport> {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: MsgKind,
        body: Bytes,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<Bytes, TransportError>> {
        let this = self.clone();
        Box::pin(async move {
            this.learn(target).await?;
            let core = this.book.core_for(target, group);
            let c = this.client(target, core).await?;
            let f = c.request(kind as u8, group, body, timeout).await.map_err(|e| transport_err(target, e))?;
            Ok(f.body)
        })
    }
}

/// Answers a forwarded client request on the owner: `Ok(answer)` is sent
/// back as the forward reply, `Err(text)` as a peer error.
pub type ForwardFn = Rc<dyn Fn(Hello, Forward) -> LocalBoxFuture<'static, Result<Bytes, String>>>;

/// The peer handler of one core: Raft messages to the core's [`Host`],
/// forwards to the node's handler.
pub struct RaftPeerHandler<M: PartitionMachine> {
    pub host: Rc<Host<M>>,
    pub forward: Option<ForwardFn>,
}

impl<M: PartitionMachine> PeerHandler for RaftPeerHandler<M> {
    fn handle(&self, from: Hello, frame: Frame) -> LocalBoxFuture<'static, Frame> {
        let host = self.host.clone();
        let forward = self.forward.clone();
        Box::pin(async move {
            let err = |text: String| Frame::new(KIND_ERROR, 0, frame.group, Bytes::from(text));
            if frame.kind == KIND_FORWARD {
                let Some(fwd_fn) = forward else { return err("this node takes no forwards".into()) };
                return match Forward::decode(&frame.body) {
                    Ok(fwd) => match fwd_fn(from, fwd).await {
                        Ok(b) => Frame::new(KIND_FORWARD_REPLY, 0, frame.group, b),
                        Err(e) => err(e),
                    },
                    Err(e) => err(e.to_string()),
                };
            }
            let Some(kind) = MsgKind::from_u8(frame.kind) else { return err(format!("unknown frame kind {}", frame.kind)) };
            match host.handle(frame.group, kind, frame.body).await {
                Ok(b) => Frame::new(KIND_REPLY, 0, frame.group, b),
                Err(e) => {
                    tracing::debug!(from = from.node, group = frame.group, ?kind, error = %e, "peer raft message refused");
                    err(e)
                }
            }
        })
    }
}
