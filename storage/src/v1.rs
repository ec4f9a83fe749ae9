//! Read-only reader of a format-1 core directory (`core-<n>/{wal,state}`,
//! written by the builds before storage v2), for the migration into format 2.
//!
//! Format 1: `wal/` holds segments `<base:020>.wal` (a 32-byte header with
//! magic `MAPLWAL\0`, then frames `len | crc32 | index | term | payload`,
//! then zeros), a `purged` mark (the last index purged, 12 bytes with a
//! crc32); `state/` holds a sled Db (tree `kv`: key → `index BE | tag |
//! value`, tag 1 = tombstone) and a `checkpoint` file (the last index whose
//! writes are durable in sled, same 12-byte encoding).
//!
//! Strict, like v2's recovery (v1's own `Wal::open` was lenient: it cut the
//! log at the first bad record, dropping everything after it): only a
//! damaged LAST record of the LAST segment with nothing valid after it is a
//! torn tail (it was never acknowledged); damage followed by any valid
//! record, a bad segment header, a gap between segments, or entries after
//! the checkpoint that no segment holds is refused with
//! [`StorageError::Damaged`] / [`StorageError::Missing`] naming the file and
//! offset. Nothing is written to the log directory.

use std::path::{Path, PathBuf};

use crate::error::{IoContext, StorageError};
use crate::frame::{self, Decoded, SEGMENT_HEADER};
use crate::kv::decode_raw;
use crate::segment::{self, Segment};
use crate::{fsutil, Entry};

/// What a format-1 core holds.
#[derive(Debug, Default)]
pub struct V1Core {
    /// Last index whose writes the store holds durably.
    pub checkpoint: u64,
    /// Last index purged from the log.
    pub purged: u64,
    /// Every row of the store: key, index of the entry that wrote it, value
    /// (`None`: a tombstone).
    pub rows: Vec<(Vec<u8>, u64, Option<Vec<u8>>)>,
    /// The log's entries after the checkpoint, in index order.
    pub entries: Vec<Entry>,
    /// A torn last record that was cut from the read (never acknowledged).
    pub torn_tail: Option<(PathBuf, u64)>,
}

fn decode_u64_file(path: &Path) -> Result<u64, StorageError> {
    match fsutil::read_optional(path)? {
        None => Ok(0),
        Some(b) if b.len() == 12 && crc32fast::hash(&b[..8]).to_le_bytes() == b[8..12] => {
            Ok(u64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
        }
        Some(_) => Err(StorageError::damaged(path, 0, "bad length or checksum")),
    }
}

/// Whether any valid frame starts at or after `from` in `bytes` (any index:
/// damage is refused whatever follows it).
fn valid_frame_after(bytes: &[u8], from: usize, max_payload: usize) -> bool {
    (from..bytes.len().saturating_sub(frame::FRAME_HEADER)).any(|at| {
        let b = &bytes[at..];
        let index = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
        matches!(frame::decode_frame(b, index, max_payload), Decoded::Record { .. })
    })
}

/// Read a format-1 core directory (see the module docs).
pub fn read_core(dir: &Path, max_entry_bytes: usize) -> Result<V1Core, StorageError> {
    let wal = dir.join("wal");
    let state = dir.join("state");
    let checkpoint = decode_u64_file(&state.join("checkpoint"))?;
    let purged = decode_u64_file(&wal.join("purged"))?;
    let bases = segment::list_segments(&wal)?;
    let mut segs: Vec<Segment> = Vec::new();
    let mut torn_tail = None;
    for (i, &base) in bases.iter().enumerate() {
        let path = segment::segment_path(&wal, base);
        let last = i + 1 == bases.len();
        let scan = match segment::scan(&path, base, max_entry_bytes)? {
            Ok(scan) => scan,
            Err(why) => return Err(StorageError::damaged(&path, 0, why)),
        };
        if let Some(prev) = segs.last() {
            if base != prev.last_index() + 1 {
                return Err(StorageError::Missing {
                    path: path.clone(),
                    detail: format!("segment starts at index {base}, the previous one ends at {}", prev.last_index()),
                });
            }
        }
        if scan.torn.is_some() || scan.dropped_bytes > 0 {
            let offset = scan.segment.write_offset;
            let why = scan.torn.as_ref().map_or("data after the end of the records", |t| t.reason);
            let bytes = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
            if !last {
                return Err(StorageError::damaged(&path, offset, format!("{why} in a segment that is not the last")));
            }
            if valid_frame_after(&bytes, (offset as usize).max(SEGMENT_HEADER) + 1, max_entry_bytes) {
                return Err(StorageError::damaged(&path, offset, format!("{why}, and valid records follow it")));
            }
            torn_tail = Some((path.clone(), offset));
        }
        segs.push(scan.segment);
    }
    let mut entries = Vec::new();
    if let (Some(first), Some(last)) = (segs.first(), segs.last()) {
        let from = checkpoint + 1;
        let to = last.last_index();
        if from <= to && first.base > from.max(purged + 1) {
            return Err(StorageError::Missing {
                path: first.path.clone(),
                detail: format!("the store's checkpoint is at {checkpoint} but the log starts at {}", first.base),
            });
        }
        for s in &segs {
            let lo = s.base.max(from);
            if !s.offsets.is_empty() && lo <= s.last_index() {
                s.read_entries(lo, s.last_index(), max_entry_bytes, &mut entries)?;
            }
        }
    }
    let sled_dir = state.join("sled");
    let db = sled::Config::new().path(&sled_dir).open().map_err(|e| StorageError::state_store(&sled_dir, e))?;
    let kv = db.open_tree("kv").map_err(|e| StorageError::state_store(&sled_dir, e))?;
    let mut rows = Vec::with_capacity(kv.len());
    for item in kv.iter() {
        let (k, raw) = item.map_err(|e| StorageError::state_store(&sled_dir, e))?;
        let (index, value) = decode_raw(&raw)?;
        rows.push((k.to_vec(), index, value.map(<[u8]>::to_vec)));
    }
    Ok(V1Core { checkpoint, purged, rows, entries, torn_tail })
}
