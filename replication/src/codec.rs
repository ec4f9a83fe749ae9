//! Binary encoding of the Raft types that cross a wire or land in the log:
//! log ids, votes, memberships, entries and the Raft RPCs.
//!
//! Little-endian fixed-width integers, `u32` length prefixes. Decoding never
//! panics and never allocates more than the input could hold: every length
//! and count is checked against the bytes that remain before anything is
//! reserved (each element takes at least one byte). Unknown tags are errors.
//! The format is versioned by the peer frame header (`net::peer::VERSION`)
//! and, in the log, by the storage frame.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::vote::RaftLeaderId;

use crate::types::{
    log_id, term_of, Entry, EntryPayload, LogId, Membership, NodeId, NodeInfo, Record, SnapshotMeta, StoredMembership, Vote, C,
};

/// Longest string field (addresses, error texts).
pub const MAX_STRING: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated input reading {0}")]
    Truncated(&'static str),
    #[error("unknown tag {tag} for {what}")]
    BadTag { what: &'static str, tag: u8 },
    #[error("{what} too long: {len}")]
    TooLong { what: &'static str, len: usize },
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Appends encoded values to a buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer { buf: Vec::new() }
    }
    pub fn with_capacity(n: usize) -> Writer {
        Writer { buf: Vec::with_capacity(n) }
    }
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
}

/// Reads encoded values from a slice.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.buf.len()))
        }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::BadTag { what, tag }),
        }
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    pub fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    pub fn str(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(what)?;
        if b.len() > MAX_STRING {
            return Err(DecodeError::TooLong { what, len: b.len() });
        }
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid(what))
    }
    /// A element count, bounded by the bytes left (`min_size` bytes per element).
    pub fn count(&mut self, what: &'static str, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min_size.max(1)) > self.buf.len() {
            return Err(DecodeError::TooLong { what, len: n });
        }
        Ok(n)
    }
}

// ---- log ids, votes, nodes, memberships ----

pub fn put_log_id(w: &mut Writer, id: &LogId) {
    w.u64(term_of(id));
    w.u64(id.index);
}

pub fn get_log_id(r: &mut Reader<'_>) -> Result<LogId, DecodeError> {
    let term = r.u64("log id term")?;
    let index = r.u64("log id index")?;
    Ok(log_id(term, index))
}

pub fn put_opt_log_id(w: &mut Writer, id: &Option<LogId>) {
    match id {
        None => w.u8(0),
        Some(id) => {
            w.u8(1);
            put_log_id(w, id);
        }
    }
}

pub fn get_opt_log_id(r: &mut Reader<'_>) -> Result<Option<LogId>, DecodeError> {
    Ok(if r.bool("optional log id")? { Some(get_log_id(r)?) } else { None })
}

pub fn put_vote(w: &mut Writer, v: &Vote) {
    w.u64(v.leader_id.term);
    w.u64(v.leader_id.voted_for);
    w.bool(v.committed);
}

pub fn get_vote(r: &mut Reader<'_>) -> Result<Vote, DecodeError> {
    let term = r.u64("vote term")?;
    let node = r.u64("vote node")?;
    let committed = r.bool("vote committed")?;
    Ok(Vote { leader_id: openraft::impls::leader_id_std::LeaderId::new(term, node), committed })
}

/// A vote as stored by the log (`save_vote`).
pub fn encode_vote(v: &Vote) -> Vec<u8> {
    let mut w = Writer::with_capacity(17);
    put_vote(&mut w, v);
    w.buf
}

pub fn decode_vote(b: &[u8]) -> Result<Vote, DecodeError> {
    let mut r = Reader::new(b);
    let v = get_vote(&mut r)?;
    r.finish()?;
    Ok(v)
}

pub fn put_node(w: &mut Writer, n: &NodeInfo) {
    w.str(&n.peer_addr);
    w.str(&n.http_addr);
    w.str(&n.resp_addr);
}

pub fn get_node(r: &mut Reader<'_>) -> Result<NodeInfo, DecodeError> {
    Ok(NodeInfo { peer_addr: r.str("peer addr")?, http_addr: r.str("http addr")?, resp_addr: r.str("resp addr")? })
}

pub fn put_membership(w: &mut Writer, m: &Membership) {
    let configs = m.get_joint_config();
    w.u32(configs.len() as u32);
    for c in configs {
        w.u32(c.len() as u32);
        for id in c {
            w.u64(*id);
        }
    }
    let nodes: Vec<_> = m.nodes().collect();
    w.u32(nodes.len() as u32);
    for (id, n) in nodes {
        w.u64(*id);
        put_node(w, n);
    }
}

pub fn get_membership(r: &mut Reader<'_>) -> Result<Membership, DecodeError> {
    let nconf = r.count("membership configs", 4)?;
    let mut configs = Vec::with_capacity(nconf);
    for _ in 0..nconf {
        let n = r.count("membership config", 8)?;
        let mut set = BTreeSet::new();
        for _ in 0..n {
            set.insert(r.u64("member id")?);
        }
        configs.push(set);
    }
    let nnodes = r.count("membership nodes", 20)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..nnodes {
        let id = r.u64("node id")?;
        nodes.insert(id, get_node(r)?);
    }
    Membership::new(configs, nodes).map_err(|_| DecodeError::Invalid("membership"))
}

pub fn put_stored_membership(w: &mut Writer, m: &StoredMembership) {
    put_opt_log_id(w, m.log_id());
    put_membership(w, m.membership());
}

pub fn get_stored_membership(r: &mut Reader<'_>) -> Result<StoredMembership, DecodeError> {
    let id = get_opt_log_id(r)?;
    let m = get_membership(r)?;
    Ok(StoredMembership::new(id, m))
}

pub fn put_snapshot_meta(w: &mut Writer, m: &SnapshotMeta) {
    put_opt_log_id(w, &m.last_log_id);
    put_stored_membership(w, &m.last_membership);
}

pub fn get_snapshot_meta(r: &mut Reader<'_>) -> Result<SnapshotMeta, DecodeError> {
    let last_log_id = get_opt_log_id(r)?;
    let last_membership = get_stored_membership(r)?;
    Ok(SnapshotMeta { last_log_id, last_membership })
}

// ---- entries ----

const PAYLOAD_BLANK: u8 = 0;
const PAYLOAD_NORMAL: u8 = 1;
const PAYLOAD_MEMBERSHIP: u8 = 2;

pub fn put_payload(w: &mut Writer, p: &EntryPayload) {
    match p {
        EntryPayload::Blank => w.u8(PAYLOAD_BLANK),
        EntryPayload::Normal(rec) => {
            w.u8(PAYLOAD_NORMAL);
            w.bytes(&rec.0);
        }
        EntryPayload::Membership(m) => {
            w.u8(PAYLOAD_MEMBERSHIP);
            put_membership(w, m);
        }
    }
}

pub fn get_payload(r: &mut Reader<'_>) -> Result<EntryPayload, DecodeError> {
    match r.u8("payload tag")? {
        PAYLOAD_BLANK => Ok(EntryPayload::Blank),
        PAYLOAD_NORMAL => Ok(EntryPayload::Normal(Record(Bytes::copy_from_slice(r.bytes("record")?)))),
        PAYLOAD_MEMBERSHIP => Ok(EntryPayload::Membership(get_membership(r)?)),
        tag => Err(DecodeError::BadTag { what: "payload", tag }),
    }
}

/// The payload bytes the log stores for one entry (its term and index are
/// stored by the log frame itself).
pub fn encode_payload(p: &EntryPayload) -> Vec<u8> {
    let mut w = Writer::with_capacity(match p {
        EntryPayload::Normal(r) => r.0.len() + 5,
        _ => 64,
    });
    put_payload(&mut w, p);
    w.buf
}

pub fn decode_payload(b: &[u8]) -> Result<EntryPayload, DecodeError> {
    let mut r = Reader::new(b);
    let p = get_payload(&mut r)?;
    r.finish()?;
    Ok(p)
}

pub fn put_entry(w: &mut Writer, e: &Entry) {
    put_log_id(w, &e.log_id);
    put_payload(w, &e.payload);
}

pub fn get_entry(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    let log_id = get_log_id(r)?;
    let payload = get_payload(r)?;
    Ok(Entry { log_id, payload })
}

// ---- RPCs ----

pub fn put_append_request(w: &mut Writer, rq: &AppendEntriesRequest<C>) {
    put_vote(w, &rq.vote);
    put_opt_log_id(w, &rq.prev_log_id);
    put_opt_log_id(w, &rq.leader_commit);
    w.u32(rq.entries.len() as u32);
    for e in &rq.entries {
        put_entry(w, e);
    }
}

pub fn get_append_request(r: &mut Reader<'_>) -> Result<AppendEntriesRequest<C>, DecodeError> {
    let vote = get_vote(r)?;
    let prev_log_id = get_opt_log_id(r)?;
    let leader_commit = get_opt_log_id(r)?;
    let n = r.count("entries", 17)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(get_entry(r)?);
    }
    Ok(AppendEntriesRequest { vote, prev_log_id, entries, leader_commit })
}

pub fn put_append_response(w: &mut Writer, rs: &AppendEntriesResponse<C>) {
    match rs {
        AppendEntriesResponse::Success => w.u8(0),
        AppendEntriesResponse::PartialSuccess(id) => {
            w.u8(1);
            put_opt_log_id(w, id);
        }
        AppendEntriesResponse::Conflict => w.u8(2),
        AppendEntriesResponse::HigherVote(v) => {
            w.u8(3);
            put_vote(w, v);
        }
    }
}

pub fn get_append_response(r: &mut Reader<'_>) -> Result<AppendEntriesResponse<C>, DecodeError> {
    match r.u8("append response tag")? {
        0 => Ok(AppendEntriesResponse::Success),
        1 => Ok(AppendEntriesResponse::PartialSuccess(get_opt_log_id(r)?)),
        2 => Ok(AppendEntriesResponse::Conflict),
        3 => Ok(AppendEntriesResponse::HigherVote(get_vote(r)?)),
        tag => Err(DecodeError::BadTag { what: "append response", tag }),
    }
}

pub fn put_vote_request(w: &mut Writer, rq: &VoteRequest<C>) {
    put_vote(w, &rq.vote);
    put_opt_log_id(w, &rq.last_log_id);
    w.bool(rq.leadership_transfer);
}

pub fn get_vote_request(r: &mut Reader<'_>) -> Result<VoteRequest<C>, DecodeError> {
    let vote = get_vote(r)?;
    let last_log_id = get_opt_log_id(r)?;
    let leadership_transfer = r.bool("leadership transfer")?;
    Ok(VoteRequest { vote, last_log_id, leadership_transfer })
}

pub fn put_vote_response(w: &mut Writer, rs: &VoteResponse<C>) {
    put_vote(w, &rs.vote);
    w.bool(rs.vote_granted);
    put_opt_log_id(w, &rs.last_log_id);
}

pub fn get_vote_response(r: &mut Reader<'_>) -> Result<VoteResponse<C>, DecodeError> {
    let vote = get_vote(r)?;
    let granted = r.bool("vote granted")?;
    let last_log_id = get_opt_log_id(r)?;
    Ok(VoteResponse::new(vote, last_log_id, granted))
}

pub fn put_transfer_request(w: &mut Writer, rq: &TransferLeaderRequest<C>) {
    put_vote(w, rq.from_leader());
    w.u64(*rq.to_node_id());
    put_opt_log_id(w, &rq.last_log_id().copied());
}

pub fn get_transfer_request(r: &mut Reader<'_>) -> Result<TransferLeaderRequest<C>, DecodeError> {
    let from = get_vote(r)?;
    let to: NodeId = r.u64("transfer target")?;
    let last = get_opt_log_id(r)?;
    Ok(TransferLeaderRequest::new(from, to, last))
}

pub fn put_transfer_response(w: &mut Writer, rs: &TransferLeaderResponse<C>) {
    match rs {
        Ok(()) => w.u8(0),
        Err(TransferLeaderError::VoteChanged { expected, actual }) => {
            w.u8(1);
            put_vote(w, expected);
            put_vote(w, actual);
        }
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
            w.u8(2);
            put_opt_log_id(w, expected);
            put_opt_log_id(w, actual);
        }
    }
}

pub fn get_transfer_response(r: &mut Reader<'_>) -> Result<TransferLeaderResponse<C>, DecodeError> {
    match r.u8("transfer response tag")? {
        0 => Ok(Ok(())),
        1 => Ok(Err(TransferLeaderError::VoteChanged { expected: get_vote(r)?, actual: get_vote(r)? })),
        2 => Ok(Err(TransferLeaderError::LogNotFlushed { expected: get_opt_log_id(r)?, actual: get_opt_log_id(r)? })),
        tag => Err(DecodeError::BadTag { what: "transfer response", tag }),
    }
}

pub fn put_snapshot_response(w: &mut Writer, rs: &SnapshotResponse<C>) {
    put_vote(w, &rs.vote);
}

pub fn get_snapshot_response(r: &mut Reader<'_>) -> Result<SnapshotResponse<C>, DecodeError> {
    Ok(SnapshotResponse::new(get_vote(r)?))
}

/// Leader id of a vote, for tests and status.
pub fn vote_leader(v: &Vote) -> (u64, NodeId) {
    (v.leader_id.term(), v.leader_id.voted_for)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u64) -> NodeInfo {
        NodeInfo { peer_addr: format!("127.0.0.1:{}", 7000 + i), http_addr: format!("h{i}"), resp_addr: String::new() }
    }

    fn membership() -> Membership {
        let mut nodes = BTreeMap::new();
        for i in 1..=3 {
            nodes.insert(i, node(i));
        }
        nodes.insert(4, node(4)); // a learner
        Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap()
    }

    #[test]
    fn entries_round_trip() {
        let entries = vec![
            Entry { log_id: log_id(0, 0), payload: EntryPayload::Membership(membership()) },
            Entry { log_id: log_id(1, 1), payload: EntryPayload::Blank },
            Entry { log_id: log_id(1, 2), payload: EntryPayload::Normal(Record(Bytes::from_static(b"hello"))) },
        ];
        let vote = Vote::new_committed(3, 2);
        let rq = AppendEntriesRequest::<C> { vote, prev_log_id: None, entries: entries.clone(), leader_commit: Some(log_id(1, 1)) };
        let mut w = Writer::new();
        put_append_request(&mut w, &rq);
        let mut r = Reader::new(&w.buf);
        let back = get_append_request(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back.vote, rq.vote);
        assert_eq!(back.entries, entries);
        assert_eq!(back.leader_commit, rq.leader_commit);
        assert_eq!(back.prev_log_id, None);
        for e in &entries {
            assert_eq!(decode_payload(&encode_payload(&e.payload)).unwrap(), e.payload);
        }
        assert_eq!(decode_vote(&encode_vote(&vote)).unwrap(), vote);
        assert_eq!(decode_vote(&encode_vote(&Vote::new(5, 1))).unwrap(), Vote::new(5, 1));
    }

    #[test]
    fn default_membership_round_trips() {
        let m = StoredMembership::default();
        let mut w = Writer::new();
        put_stored_membership(&mut w, &m);
        assert_eq!(get_stored_membership(&mut Reader::new(&w.buf)).unwrap(), m);
    }

    #[test]
    fn responses_round_trip() {
        let v = Vote::new(7, 3);
        for rs in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(log_id(2, 9))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(v),
        ] {
            let mut w = Writer::new();
            put_append_response(&mut w, &rs);
            assert_eq!(get_append_response(&mut Reader::new(&w.buf)).unwrap(), rs);
        }
        let vr = VoteResponse::<C>::new(v, Some(log_id(1, 4)), true);
        let mut w = Writer::new();
        put_vote_response(&mut w, &vr);
        assert_eq!(get_vote_response(&mut Reader::new(&w.buf)).unwrap(), vr);
        let tr = TransferLeaderRequest::<C>::new(v, 2, Some(log_id(7, 10)));
        let mut w = Writer::new();
        put_transfer_request(&mut w, &tr);
        assert_eq!(get_transfer_request(&mut Reader::new(&w.buf)).unwrap(), tr);
        for rs in [Ok(()), Err(TransferLeaderError::LogNotFlushed { expected: Some(log_id(1, 1)), actual: None })] {
            let mut w = Writer::new();
            put_transfer_response(&mut w, &rs);
            assert_eq!(get_transfer_response(&mut Reader::new(&w.buf)).unwrap(), rs);
        }
    }

    #[test]
    fn truncated_and_hostile_inputs_are_errors() {
        let mut w = Writer::new();
        put_membership(&mut w, &membership());
        for cut in 0..w.buf.len() {
            assert!(get_membership(&mut Reader::new(&w.buf[..cut])).is_err(), "cut at {cut}");
        }
        // a count far larger than the input: rejected before any allocation
        let mut w = Writer::new();
        w.u32(u32::MAX);
        assert!(matches!(get_membership(&mut Reader::new(&w.buf)), Err(DecodeError::TooLong { .. })));
        assert!(matches!(decode_payload(&[9]), Err(DecodeError::BadTag { .. })));
        assert!(matches!(decode_vote(&[0; 18]), Err(DecodeError::Trailing(1))));
        assert!(matches!(decode_vote(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]), Err(DecodeError::BadTag { .. })));
    }
}
