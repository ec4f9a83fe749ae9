//! On-disk encoding of the v2 log: segment header, record frames, manifest.
//!
//! Segment `<seq:020>.log`: a 32-byte header
//! `magic "MAPLLOG2" | version u32 | reserved u32 | seq u64 | crc32 u32 | 0 u32`
//! (the checksum covers bytes 0..24), then record frames back to back, then
//! zeros up to the pre-allocated size.
//!
//! Frame: `len u32 | crc32 u32 | body[len]`, little endian. The checksum
//! covers the segment's `seq`, `len` and the body, so a torn header, a torn
//! body, a flipped bit and a frame copied from another segment all fail it.
//! An all-zero frame header marks the clean end of the written part (a body
//! is never empty: its first byte is the record kind).
//!
//! Bodies, by kind (first byte):
//! - 1 Entry     `group u32 | term u64 | index u64 | payload`
//! - 2 Vote      `group u32 | vote bytes`
//! - 3 Committed `group u32 | some u8 | term u64 | index u64`
//! - 4 Purge     `group u32 | term u64 | index u64` (last purged log id)
//! - 5 Truncate  `group u32 | some u8 | term u64 | index u64` (the group's
//!   last log id after the truncation; none = no entry and no purge left)
//! - 6 GroupState `count u32 | count × (group u32 | first u64 | flags u8 |
//!   last | purged | committed (term u64 | index u64 each) | vote_len u32 | vote)`;
//!   flags bit 0..3: last, purged, committed, vote present. Always the first
//!   record of a segment: every group's metadata as of the segment's start.
//!
//! Manifest `MANIFEST` (32 bytes, replaced atomically):
//! `magic "MAPLMANI" | version u32 | crc32 u32 | first_seq u64 | last_seq u64`,
//! the checksum covering every other byte.

use super::meta::Meta;
use super::{GroupId, LogId};

pub(crate) const SEGMENT_HEADER: usize = 32;
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"MAPLLOG2";
pub(crate) const FORMAT_VERSION: u32 = 2;
pub(crate) const FRAME_HEADER: usize = 8;
pub(crate) const MANIFEST_LEN: usize = 32;
pub(crate) const MANIFEST_MAGIC: &[u8; 8] = b"MAPLMANI";
pub(crate) const SEGMENT_SUFFIX: &str = ".log";
/// Body bytes of an entry record besides its payload.
pub(crate) const ENTRY_OVERHEAD: usize = 1 + 4 + 8 + 8;
/// Body bytes of one group in a GroupState record besides its vote.
pub(crate) const STATE_PER_GROUP: usize = 4 + 8 + 1 + 3 * 16 + 4;

const KIND_ENTRY: u8 = 1;
const KIND_VOTE: u8 = 2;
const KIND_COMMITTED: u8 = 3;
const KIND_PURGE: u8 = 4;
const KIND_TRUNCATE: u8 = 5;
const KIND_STATE: u8 = 6;

pub(crate) fn segment_name(seq: u64) -> String {
    format!("{seq:020}{SEGMENT_SUFFIX}")
}

/// The sequence number of a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(crate) fn encode_segment_header(seq: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The sequence number in a segment header, or why it is not one.
pub(crate) fn decode_segment_header(h: &[u8]) -> Result<u64, &'static str> {
    if h.len() < SEGMENT_HEADER {
        return Err("file shorter than a segment header");
    }
    if &h[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic");
    }
    if crc32fast::hash(&h[0..24]) != u32_at(h, 24) {
        return Err("segment header checksum mismatch");
    }
    if u32_at(h, 8) != FORMAT_VERSION {
        return Err("unsupported segment format version");
    }
    Ok(u64_at(h, 16))
}

pub(crate) fn encode_manifest(first_seq: u64, last_seq: u64) -> [u8; MANIFEST_LEN] {
    let mut m = [0u8; MANIFEST_LEN];
    m[0..8].copy_from_slice(MANIFEST_MAGIC);
    m[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    m[16..24].copy_from_slice(&first_seq.to_le_bytes());
    m[24..32].copy_from_slice(&last_seq.to_le_bytes());
    let crc = manifest_crc(&m);
    m[12..16].copy_from_slice(&crc.to_le_bytes());
    m
}

fn manifest_crc(m: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&m[0..12]);
    h.update(&m[16..32]);
    h.finalize()
}

/// `(first_seq, last_seq)` of a manifest, or why it is not one.
pub(crate) fn decode_manifest(m: &[u8]) -> Result<(u64, u64), &'static str> {
    if m.len() != MANIFEST_LEN {
        return Err("manifest has the wrong length");
    }
    if &m[0..8] != MANIFEST_MAGIC {
        return Err("bad manifest magic");
    }
    if manifest_crc(m) != u32_at(m, 12) {
        return Err("manifest checksum mismatch");
    }
    if u32_at(m, 8) != FORMAT_VERSION {
        return Err("unsupported manifest format version");
    }
    let (first, last) = (u64_at(m, 16), u64_at(m, 24));
    if first == 0 || first > last {
        return Err("manifest range is empty");
    }
    Ok((first, last))
}

/// One decoded record; borrowed payloads point into the segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Entry { group: GroupId, id: LogId, payload: &'a [u8] },
    Vote { group: GroupId, vote: &'a [u8] },
    Committed { group: GroupId, committed: Option<LogId> },
    Purge { group: GroupId, upto: LogId },
    Truncate { group: GroupId, last: Option<LogId> },
    State(Vec<(GroupId, Meta)>),
}

/// Frame length of an entry with `payload` bytes.
pub(crate) fn entry_frame_len(payload: usize) -> usize {
    FRAME_HEADER + ENTRY_OVERHEAD + payload
}

/// Frame length of a GroupState record of these groups.
pub(crate) fn state_frame_len<'a>(groups: impl Iterator<Item = &'a Meta>) -> usize {
    FRAME_HEADER + 1 + 4 + groups.map(|m| STATE_PER_GROUP + m.vote.as_ref().map_or(0, |v| v.len())).sum::<usize>()
}

fn put_id(out: &mut Vec<u8>, id: Option<LogId>) {
    let id = id.unwrap_or(LogId { term: 0, index: 0 });
    out.extend_from_slice(&id.term.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
}

/// Append the frame of `rec` (for segment `seq`) to `out`.
pub(crate) fn encode(seq: u64, rec: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    match rec {
        Record::Entry { group, id, payload } => {
            out.push(KIND_ENTRY);
            out.extend_from_slice(&group.to_le_bytes());
            out.extend_from_slice(&id.term.to_le_bytes());
            out.extend_from_slice(&id.index.to_le_bytes());
            out.extend_from_slice(payload);
        }
        Record::Vote { group, vote } => {
            out.push(KIND_VOTE);
            out.extend_from_slice(&group.to_le_bytes());
            out.extend_from_slice(vote);
        }
        Record::Committed { group, committed } => {
            out.push(KIND_COMMITTED);
            out.extend_from_slice(&group.to_le_bytes());
            out.push(committed.is_some() as u8);
            put_id(out, *committed);
        }
        Record::Purge { group, upto } => {
            out.push(KIND_PURGE);
            out.extend_from_slice(&group.to_le_bytes());
            out.extend_from_slice(&upto.term.to_le_bytes());
            out.extend_from_slice(&upto.index.to_le_bytes());
        }
        Record::Truncate { group, last } => {
            out.push(KIND_TRUNCATE);
            out.extend_from_slice(&group.to_le_bytes());
            out.push(last.is_some() as u8);
            put_id(out, *last);
        }
        Record::State(groups) => {
            out.push(KIND_STATE);
            out.extend_from_slice(&(groups.len() as u32).to_le_bytes());
            for (g, m) in groups {
                out.extend_from_slice(&g.to_le_bytes());
                out.extend_from_slice(&m.first.to_le_bytes());
                let flags = m.last.is_some() as u8
                    | (m.purged.is_some() as u8) << 1
                    | (m.committed.is_some() as u8) << 2
                    | (m.vote.is_some() as u8) << 3;
                out.push(flags);
                put_id(out, m.last);
                put_id(out, m.purged);
                put_id(out, m.committed);
                let vote = m.vote.as_deref().unwrap_or(&[]);
                out.extend_from_slice(&(vote.len() as u32).to_le_bytes());
                out.extend_from_slice(vote);
            }
        }
    }
    let len = (out.len() - start - FRAME_HEADER) as u32;
    let crc = frame_crc(seq, len, &out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn frame_crc(seq: u64, len: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(body);
    h.finalize()
}

/// What the bytes at one position of a segment hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole, checksummed record of `frame_len` bytes.
    Record { rec: Record<'a>, frame_len: usize },
    /// An all-zero frame header (or only zeros left): nothing written here.
    End,
    /// Not a valid record: torn write, flipped bit or stale bytes.
    Invalid(&'static str),
}

/// Decode the frame at the start of `buf` (a segment `seq`'s bytes from
/// some offset on). `max_body` bounds the length field.
pub(crate) fn decode(buf: &[u8], seq: u64, max_body: usize) -> Decoded<'_> {
    if buf.len() < FRAME_HEADER {
        return if buf.iter().all(|&b| b == 0) { Decoded::End } else { Decoded::Invalid("truncated frame header") };
    }
    if buf[..FRAME_HEADER].iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let len = u32_at(buf, 0);
    let crc = u32_at(buf, 4);
    let n = len as usize;
    if n == 0 || n > max_body || n > buf.len() - FRAME_HEADER {
        return Decoded::Invalid("frame length out of bounds");
    }
    let body = &buf[FRAME_HEADER..FRAME_HEADER + n];
    if frame_crc(seq, len, body) != crc {
        return Decoded::Invalid("frame checksum mismatch");
    }
    match decode_body(body) {
        Some(rec) => Decoded::Record { rec, frame_len: FRAME_HEADER + n },
        None => Decoded::Invalid("malformed record body"),
    }
}

/// Whether a valid frame starts at `buf[0]` (used to scan past damage).
pub(crate) fn is_valid_frame(buf: &[u8], seq: u64, max_body: usize) -> bool {
    matches!(decode(buf, seq, max_body), Decoded::Record { .. })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }
    fn id(&mut self) -> Option<LogId> {
        Some(LogId { term: self.u64()?, index: self.u64()? })
    }
    fn opt_id(&mut self, present: bool) -> Option<Option<LogId>> {
        let id = self.id()?;
        if present {
            Some(Some(id))
        } else if id == (LogId { term: 0, index: 0 }) {
            Some(None)
        } else {
            None
        }
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
    fn done(&self) -> bool {
        self.at == self.b.len()
    }
}

fn flag(v: u8) -> Option<bool> {
    match v {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn decode_body(body: &[u8]) -> Option<Record<'_>> {
    let mut r = Reader { b: body, at: 0 };
    let rec = match r.u8()? {
        KIND_ENTRY => {
            let group = r.u32()?;
            let id = r.id()?;
            Record::Entry { group, id, payload: r.rest() }
        }
        KIND_VOTE => {
            let group = r.u32()?;
            Record::Vote { group, vote: r.rest() }
        }
        KIND_COMMITTED => {
            let group = r.u32()?;
            let some = flag(r.u8()?)?;
            Record::Committed { group, committed: r.opt_id(some)? }
        }
        KIND_PURGE => {
            let group = r.u32()?;
            Record::Purge { group, upto: r.id()? }
        }
        KIND_TRUNCATE => {
            let group = r.u32()?;
            let some = flag(r.u8()?)?;
            Record::Truncate { group, last: r.opt_id(some)? }
        }
        KIND_STATE => {
            let count = r.u32()? as usize;
            // Each group takes at least STATE_PER_GROUP bytes: bound the
            // allocation by what the body can hold.
            if count > body.len() / STATE_PER_GROUP {
                return None;
            }
            let mut groups = Vec::with_capacity(count);
            for _ in 0..count {
                let group = r.u32()?;
                let first = r.u64()?;
                let flags = r.u8()?;
                if flags & !0b1111 != 0 {
                    return None;
                }
                let last = r.opt_id(flags & 1 != 0)?;
                let purged = r.opt_id(flags & 2 != 0)?;
                let committed = r.opt_id(flags & 4 != 0)?;
                let vote_len = r.u32()? as usize;
                let vote = r.take(vote_len)?;
                let vote = if flags & 8 != 0 {
                    Some(vote.to_vec())
                } else if vote.is_empty() {
                    None
                } else {
                    return None;
                };
                if groups.last().is_some_and(|(g, _): &(GroupId, Meta)| *g >= group) {
                    return None; // groups are written in ascending order, once each
                }
                groups.push((group, Meta { first, last, purged, committed, vote }));
            }
            Record::State(groups)
        }
        _ => return None,
    };
    r.done().then_some(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(term: u64, index: u64) -> LogId {
        LogId { term, index }
    }

    fn samples() -> Vec<Record<'static>> {
        vec![
            Record::Entry { group: 3, id: id(2, 0), payload: b"first membership" },
            Record::Entry { group: 0, id: id(1, 7), payload: b"" },
            Record::Vote { group: 9, vote: b"term=3;node=2" },
            Record::Committed { group: 1, committed: Some(id(4, 0)) },
            Record::Committed { group: 1, committed: None },
            Record::Purge { group: 2, upto: id(1, 99) },
            Record::Truncate { group: 2, last: None },
            Record::Truncate { group: 2, last: Some(id(5, 10)) },
            Record::State(vec![
                (1, Meta { first: 0, last: Some(id(1, 5)), purged: None, committed: Some(id(1, 3)), vote: Some(b"v".to_vec()) }),
                (4, Meta { first: 11, last: Some(id(2, 10)), purged: Some(id(2, 10)), committed: None, vote: None }),
            ]),
            Record::State(vec![]),
        ]
    }

    #[test]
    fn every_record_roundtrips_and_every_bit_flip_is_caught() {
        for rec in samples() {
            let mut buf = Vec::new();
            encode(5, &rec, &mut buf);
            assert_eq!(decode(&buf, 5, 1 << 20), Decoded::Record { rec: rec.clone(), frame_len: buf.len() });
            // The same bytes in another segment are not a record of it.
            assert!(matches!(decode(&buf, 6, 1 << 20), Decoded::Invalid(_)));
            for bit in 0..buf.len() * 8 {
                let mut b = buf.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(!matches!(decode(&b, 5, 1 << 20), Decoded::Record { .. }), "{rec:?}: bit {bit} flip accepted");
            }
            for cut in 0..buf.len() {
                assert!(!matches!(decode(&buf[..cut], 5, 1 << 20), Decoded::Record { .. }), "{rec:?}: cut at {cut} accepted");
            }
        }
    }

    #[test]
    fn zeros_are_the_end_and_lengths_are_bounded() {
        assert_eq!(decode(&[0u8; 64], 1, 16), Decoded::End);
        assert_eq!(decode(&[0u8; 3], 1, 16), Decoded::End);
        let mut buf = Vec::new();
        encode(1, &Record::Vote { group: 1, vote: &[7u8; 100] }, &mut buf);
        assert_eq!(decode(&buf, 1, 50), Decoded::Invalid("frame length out of bounds"));
        let st = state_frame_len([Meta { vote: Some(vec![1, 2, 3]), ..Meta::default() }].iter());
        let mut buf = Vec::new();
        encode(1, &Record::State(vec![(0, Meta { vote: Some(vec![1, 2, 3]), ..Meta::default() })]), &mut buf);
        assert_eq!(buf.len(), st);
        assert_eq!(entry_frame_len(10), {
            let mut b = Vec::new();
            encode(1, &Record::Entry { group: 1, id: id(1, 1), payload: &[0; 10] }, &mut b);
            b.len()
        });
    }

    #[test]
    fn headers_and_manifest_roundtrip_and_reject_damage() {
        let h = encode_segment_header(42);
        assert_eq!(decode_segment_header(&h), Ok(42));
        for i in 0..28 {
            let mut b = h;
            b[i] ^= 0x10;
            assert!(decode_segment_header(&b).is_err(), "header byte {i}");
        }
        let m = encode_manifest(3, 9);
        assert_eq!(decode_manifest(&m), Ok((3, 9)));
        for i in 0..MANIFEST_LEN {
            let mut b = m;
            b[i] ^= 1;
            assert!(decode_manifest(&b).is_err(), "manifest byte {i}");
        }
        assert!(decode_manifest(&m[..31]).is_err());
        assert_eq!(parse_segment_name(&segment_name(17)), Some(17));
        assert_eq!(parse_segment_name("0000000000000000001.log"), None);
        assert_eq!(parse_segment_name("+0000000000000000001.log"), None);
    }
}
