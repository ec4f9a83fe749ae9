//! openraft's network over a byte-level [`Transport`]: every Raft RPC is
//! encoded with [`crate::codec`] and sent as `(target node, group, kind,
//! body)`; the transport (TCP peer connections, or the in-memory router in
//! tests) shares one connection per (node, core) pair across all groups.
//! Snapshots travel as a sequence of chunk messages, one per frame.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::OptionalSend;

use crate::codec::{self, DecodeError, Reader, Writer};
use crate::types::{GroupId, NodeId, NodeInfo, Snapshot, SnapshotChunks, SnapshotMeta, Vote, C};

/// What a message carries (the peer frame's kind byte for Raft traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgKind {
    Append = 1,
    Vote = 2,
    PreVote = 3,
    Transfer = 4,
    SnapshotChunk = 5,
    /// "Is this group running here?" (bootstrap waits for every replica).
    Ping = 6,
}

impl MsgKind {
    pub fn from_u8(b: u8) -> Option<MsgKind> {
        Some(match b {
            1 => MsgKind::Append,
            2 => MsgKind::Vote,
            3 => MsgKind::PreVote,
            4 => MsgKind::Transfer,
            5 => MsgKind::SnapshotChunk,
            6 => MsgKind::Ping,
            _ => return None,
        })
    }
}

/// Why a message got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("peer {0} unreachable: {1}")]
    Unreachable(NodeId, String),
    #[error("peer {0} did not answer within {1:?}")]
    Timeout(NodeId, Duration),
    /// The peer answered with an error (group not there, Raft stopped,
    /// undecodable request).
    #[error("peer {0} refused: {1}")]
    Remote(NodeId, String),
}

/// Delivers one request to `target` and returns its answer. Implementations
/// bound their queues and connections; `timeout` bounds the whole call.
pub trait Transport: 'static {
    fn call(
        &self,
        target: NodeId,
        group: GroupId,
        kind: MsgKind,
        body: Bytes,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<Bytes, TransportError>>;
}

// ---- snapshot chunk messages ----

/// One chunk of a snapshot transfer. The first (`seq == 0`) carries the
/// leader's vote, the snapshot meta and the chunk count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunkMsg {
    pub transfer_id: u64,
    pub seq: u32,
    pub total: u32,
    pub head: Option<(Vote, SnapshotMeta)>,
    pub data: Bytes,
}

pub fn encode_chunk(m: &SnapshotChunkMsg) -> Bytes {
    let mut w = Writer::with_capacity(m.data.len() + 256);
    w.u64(m.transfer_id);
    w.u32(m.seq);
    w.u32(m.total);
    match &m.head {
        None => w.u8(0),
        Some((vote, meta)) => {
            w.u8(1);
            codec::put_vote(&mut w, vote);
            codec::put_snapshot_meta(&mut w, meta);
        }
    }
    w.bytes(&m.data);
    w.into_bytes()
}

pub fn decode_chunk(b: &[u8]) -> Result<SnapshotChunkMsg, DecodeError> {
    let mut r = Reader::new(b);
    let transfer_id = r.u64("transfer id")?;
    let seq = r.u32("chunk seq")?;
    let total = r.u32("chunk total")?;
    let head = if r.bool("chunk head")? { Some((codec::get_vote(&mut r)?, codec::get_snapshot_meta(&mut r)?)) } else { None };
    let data = Bytes::copy_from_slice(r.bytes("chunk data")?);
    r.finish()?;
    if seq >= total.max(1) || (seq == 0) != head.is_some() {
        return Err(DecodeError::Invalid("snapshot chunk sequence"));
    }
    Ok(SnapshotChunkMsg { transfer_id, seq, total, head, data })
}

// ---- the openraft network ----

/// One per group: builds a client per target node.
pub struct GroupNetworkFactory {
    pub transport: Rc<dyn Transport>,
    pub group: GroupId,
}

impl RaftNetworkFactory<C> for GroupNetworkFactory {
    type Network = GroupNetwork;

    async fn new_client(&mut self, target: NodeId, _node: &NodeInfo) -> GroupNetwork {
        GroupNetwork { transport: self.transport.clone(), group: self.group, target }
    }
}

pub struct GroupNetwork {
    transport: Rc<dyn Transport>,
    group: GroupId,
    target: NodeId,
}

fn rpc_err(e: TransportError) -> RPCError<C> {
    match e {
        TransportError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

fn decode_err(target: NodeId, e: DecodeError) -> RPCError<C> {
    let e = TransportError::Remote(target, format!("undecodable answer: {e}"));
    tracing::warn!(error = %e, "raft rpc");
    RPCError::Network(NetworkError::new(&e))
}

impl GroupNetwork {
    async fn rpc<T>(
        &self,
        kind: MsgKind,
        body: Bytes,
        option: &RPCOption,
        decode: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
    ) -> Result<T, RPCError<C>> {
        let reply = self.transport.call(self.target, self.group, kind, body, option.hard_ttl()).await.map_err(rpc_err)?;
        let mut r = Reader::new(&reply);
        let v = decode(&mut r).map_err(|e| decode_err(self.target, e))?;
        r.finish().map_err(|e| decode_err(self.target, e))?;
        Ok(v)
    }
}

impl RaftNetworkV2<C> for GroupNetwork {
    type SnapshotData = SnapshotChunks;

    async fn append_entries(&mut self, rpc: AppendEntriesRequest<C>, option: RPCOption) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let mut w = Writer::new();
        codec::put_append_request(&mut w, &rpc);
        self.rpc(MsgKind::Append, w.into_bytes(), &option, codec::get_append_response).await
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let mut w = Writer::new();
        codec::put_vote_request(&mut w, &rpc);
        self.rpc(MsgKind::Vote, w.into_bytes(), &option, codec::get_vote_response).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let mut w = Writer::new();
        codec::put_vote_request(&mut w, &rpc);
        self.rpc(MsgKind::PreVote, w.into_bytes(), &option, codec::get_vote_response).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        let mut w = Writer::new();
        codec::put_transfer_request(&mut w, &req);
        self.rpc(MsgKind::Transfer, w.into_bytes(), &option, codec::get_transfer_response).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let mut cancel = Box::pin(cancel);
        let transfer_id = next_transfer_id();
        let chunks = &snapshot.snapshot.chunks;
        let total = chunks.len().max(1) as u32;
        let empty = Bytes::new();
        for seq in 0..total {
            if let Some(closed) = (&mut cancel).now_or_never() {
                return Err(StreamingError::Closed(closed));
            }
            let data = chunks.get(seq as usize).unwrap_or(&empty).clone();
            let head = (seq == 0).then(|| (vote, snapshot.meta.clone()));
            let msg = SnapshotChunkMsg { transfer_id, seq, total, head, data };
            let reply =
                self.transport.call(self.target, self.group, MsgKind::SnapshotChunk, encode_chunk(&msg), option.hard_ttl()).await.map_err(
                    |e| match rpc_err(e) {
                        RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                        RPCError::Network(n) => StreamingError::Network(n),
                        other => StreamingError::Network(NetworkError::new(&other)),
                    },
                )?;
            if seq + 1 == total {
                let mut r = Reader::new(&reply);
                let rs = codec::get_snapshot_response(&mut r).map_err(|e| match decode_err(self.target, e) {
                    RPCError::Network(n) => StreamingError::Network(n),
                    other => StreamingError::Network(NetworkError::new(&other)),
                })?;
                return Ok(rs);
            }
        }
        unreachable!("the last chunk returns")
    }
}

fn next_transfer_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let pid = std::process::id() as u64;
    (pid << 40) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The transport of a node with no peers (a one-member group): every call
/// fails at once. Single node runs the cluster's code path with it.
pub struct NoPeers;

impl Transport for NoPeers {
    fn call(
        &self,
        target: NodeId,
        _group: GroupId,
        _kind: MsgKind,
        _body: Bytes,
        _timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<Bytes, TransportError>> {
        Box::pin(std::future::ready(Err(TransportError::Unreachable(target, "this node has no peers".into()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::log_id;

    #[test]
    fn chunk_messages_round_trip_and_reject_bad_sequences() {
        let meta = SnapshotMeta { last_log_id: Some(log_id(3, 40)), last_membership: Default::default() };
        let first = SnapshotChunkMsg {
            transfer_id: 9,
            seq: 0,
            total: 2,
            head: Some((Vote::new_committed(3, 1), meta)),
            data: Bytes::from_static(b"abc"),
        };
        assert_eq!(decode_chunk(&encode_chunk(&first)).unwrap(), first);
        let second = SnapshotChunkMsg { transfer_id: 9, seq: 1, total: 2, head: None, data: Bytes::new() };
        assert_eq!(decode_chunk(&encode_chunk(&second)).unwrap(), second);
        let bad = SnapshotChunkMsg { seq: 2, ..second.clone() };
        assert!(decode_chunk(&encode_chunk(&bad)).is_err());
        let headless_first = SnapshotChunkMsg { seq: 0, ..second };
        assert!(decode_chunk(&encode_chunk(&headless_first)).is_err());
    }
}
