//! The per-log checkpoint file: `state/checkpoint-<log:04>`.
//!
//! `magic "MAPLCKP2" | version u32 | count u32 | log_last_seq u64 |
//! count × (group u32 | generation u64 | has_applied u8 | term u64 | index u64 | row_high u64) |
//! crc32 u32` (little endian; the checksum covers every byte before it).
//! Replaced atomically (temp, fsync, rename, fsync dir). `log_last_seq` is
//! the log's newest segment when the checkpoint was taken: a log that later
//! has fewer segments lost some. `generation` names the partition's sled
//! trees (a snapshot install loads a new generation and switches to it with
//! this file). `row_high` is one more than the highest entry index any row
//! of the partition may carry (0: none): replay needs no read before a write
//! for entries above it and above the log's end.

use std::collections::BTreeMap;

use crate::log::{GroupId, LogId};

pub(crate) const MAGIC: &[u8; 8] = b"MAPLCKP2";
const VERSION: u32 = 2;
const HEADER: usize = 8 + 4 + 4 + 8;
const PER_GROUP: usize = 4 + 8 + 1 + 16 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CkptEntry {
    pub gen: u64,
    pub applied: Option<LogId>,
    /// One more than the highest index a row may carry (0: no row).
    pub row_high: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CkptFile {
    pub log_last_seq: u64,
    pub groups: BTreeMap<GroupId, CkptEntry>,
}

pub(crate) fn file_name(log_no: u32) -> String {
    format!("checkpoint-{log_no:04}")
}

/// The log number of a checkpoint file name.
pub(crate) fn parse_file_name(name: &str) -> Option<u32> {
    let n = name.strip_prefix("checkpoint-")?;
    if n.len() != 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

pub(crate) fn encode(f: &CkptFile) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + f.groups.len() * PER_GROUP + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(f.groups.len() as u32).to_le_bytes());
    out.extend_from_slice(&f.log_last_seq.to_le_bytes());
    for (g, e) in &f.groups {
        out.extend_from_slice(&g.to_le_bytes());
        out.extend_from_slice(&e.gen.to_le_bytes());
        out.push(e.applied.is_some() as u8);
        let a = e.applied.unwrap_or(LogId { term: 0, index: 0 });
        out.extend_from_slice(&a.term.to_le_bytes());
        out.extend_from_slice(&a.index.to_le_bytes());
        out.extend_from_slice(&e.row_high.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode(b: &[u8]) -> Result<CkptFile, &'static str> {
    if b.len() < HEADER + 4 {
        return Err("checkpoint file too short");
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checkpoint checksum mismatch");
    }
    if &body[0..8] != MAGIC {
        return Err("bad checkpoint magic");
    }
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    if u32_at(8) != VERSION {
        return Err("unsupported checkpoint version");
    }
    let count = u32_at(12) as usize;
    if body.len() != HEADER + count * PER_GROUP {
        return Err("checkpoint length does not match its group count");
    }
    let mut f = CkptFile { log_last_seq: u64_at(16), groups: BTreeMap::new() };
    for k in 0..count {
        let at = HEADER + k * PER_GROUP;
        let g = u32_at(at);
        let gen = u64_at(at + 4);
        let applied = match body[at + 12] {
            0 => None,
            1 => Some(LogId { term: u64_at(at + 13), index: u64_at(at + 21) }),
            _ => return Err("bad applied flag"),
        };
        let row_high = u64_at(at + 29);
        if f.groups.insert(g, CkptEntry { gen, applied, row_high }).is_some() {
            return Err("a group listed twice");
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let mut f = CkptFile { log_last_seq: 9, groups: BTreeMap::new() };
        f.groups.insert(3, CkptEntry { gen: 2, applied: Some(LogId { term: 4, index: 0 }), row_high: 9 });
        f.groups.insert(7, CkptEntry { gen: 0, applied: None, row_high: 0 });
        let b = encode(&f);
        assert_eq!(decode(&b), Ok(f));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(decode(&c).is_err(), "byte {i}");
        }
        for cut in 0..b.len() {
            assert!(decode(&b[..cut]).is_err());
        }
        assert_eq!(parse_file_name(&file_name(12)), Some(12));
        assert_eq!(parse_file_name("checkpoint-12"), None);
        assert_eq!(parse_file_name("checkpoint-0012.tmp"), None);
    }
}
