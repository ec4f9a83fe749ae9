//! Format-1 segment files, as the migration's reader (`v1`) scans and
//! reads them.
//!
//! A segment is `<base index:020>.wal`: a 32-byte header, then records back
//! to back, then zeros up to the pre-allocated size. New segments are built
//! under a temporary name and renamed into place only once their header is
//! durable, so a segment with a valid name always has a valid header.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, StorageError};
use crate::frame::{self, Decoded, FRAME_HEADER, SEGMENT_HEADER};
pub use crate::spare::nonzero_extent;
use crate::Entry;

pub const SEGMENT_SUFFIX: &str = ".wal";

pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

/// Base indices of the segment files in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("read dir {}", dir.display()))? {
        let entry = entry.ctx(|| format!("read dir {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<u64>() {
                    bases.push(base);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// A live segment as the read path sees it.
#[derive(Debug)]
pub struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Byte offset of entry `base + i`.
    pub offsets: Vec<u32>,
    /// End of the last record; the next record is written here.
    pub write_offset: u64,
}

impl Segment {
    /// Index of the last entry in this segment, `base - 1` when empty.
    pub fn last_index(&self) -> u64 {
        self.base + self.offsets.len() as u64 - 1
    }

    pub fn contains(&self, index: u64) -> bool {
        index >= self.base && index <= self.last_index()
    }
}

/// Largest byte span one pread of [`Segment::read_entries`] covers (a
/// bigger single entry is still read whole).
const READ_SPAN: u64 = 1 << 20;

impl Segment {
    /// End offset (exclusive) of the frame of `index`.
    fn frame_end(&self, index: u64) -> u64 {
        self.offsets.get((index + 1 - self.base) as usize).map_or(self.write_offset, |&o| o as u64)
    }

    /// Append entries `from..=to` (all in this segment) to `out`, reading
    /// runs of adjacent frames with one pread each instead of two per entry.
    pub fn read_entries(&self, from: u64, to: u64, max_payload: usize, out: &mut Vec<Entry>) -> Result<(), StorageError> {
        debug_assert!(self.contains(from) && self.contains(to) && from <= to);
        let mut i = from;
        while i <= to {
            let start = self.offsets[(i - self.base) as usize] as u64;
            let mut j = i;
            while j < to && self.frame_end(j + 1) - start <= READ_SPAN {
                j += 1;
            }
            let end = self.frame_end(j);
            if end < start || end - start > (j - i + 1) * (FRAME_HEADER + max_payload) as u64 {
                return Err(corrupt(&self.path, start, "frame offsets out of order"));
            }
            let mut buf = vec![0u8; (end - start) as usize];
            self.file.read_exact_at(&mut buf, start).ctx(|| format!("read {} at {start}", self.path.display()))?;
            let mut pos = 0usize;
            for k in i..=j {
                let off = self.offsets[(k - self.base) as usize] as u64;
                let flen = (self.frame_end(k) - off) as usize;
                let frame = buf.get(pos..pos + flen).ok_or_else(|| corrupt(&self.path, off, "frame past the read span"))?;
                match frame::decode_frame(frame, k, max_payload) {
                    Decoded::Record { entry, frame_len } if frame_len == flen => out.push(entry),
                    Decoded::Record { .. } => return Err(corrupt(&self.path, off, "frame length differs from its offsets")),
                    Decoded::End => return Err(corrupt(&self.path, off, "zeros where a record was written")),
                    Decoded::Invalid(why) => return Err(corrupt(&self.path, off, why)),
                }
                pos += flen;
            }
            i = j + 1;
        }
        Ok(())
    }
}

fn corrupt(path: &Path, off: u64, why: &str) -> StorageError {
    StorageError::Corrupt { what: format!("{} at offset {off}", path.display()), detail: why.to_string() }
}

/// Result of scanning one segment at recovery.
pub struct Scan {
    pub segment: Segment,
    /// Set when the scan stopped at bytes that are not a whole record.
    pub torn: Option<Torn>,
    /// Bytes past the last whole record that held data (0 for a clean end).
    pub dropped_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    pub segment_base: u64,
    pub offset: u64,
    pub reason: &'static str,
}

/// Read a whole segment and collect its whole records. Stops at the first
/// record that is torn, fails its checksum or is out of sequence.
/// `expected_first` is the index the first record must have (`None`: the
/// base from the header). Returns `Ok(None)` if the header itself is bad.
pub fn scan(path: &Path, name_base: u64, max_payload: usize) -> Result<Result<Scan, &'static str>, StorageError> {
    let file = OpenOptions::new().read(true).write(true).open(path).ctx(|| format!("open {}", path.display()))?;
    let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
    let base = match frame::decode_segment_header(&bytes) {
        Ok(b) if b == name_base => b,
        Ok(_) => return Ok(Err("segment header base differs from its name")),
        Err(why) => return Ok(Err(why)),
    };
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER;
    let mut torn = None;
    loop {
        let expected = base + offsets.len() as u64;
        match frame::decode_frame(&bytes[at..], expected, max_payload) {
            Decoded::Record { frame_len, .. } => {
                offsets.push(u32::try_from(at).expect("segment larger than 4 GiB"));
                at += frame_len;
            }
            Decoded::End => break,
            Decoded::Invalid(reason) => {
                torn = Some(Torn { segment_base: base, offset: at as u64, reason });
                break;
            }
        }
    }
    let dropped_bytes = nonzero_extent(&bytes[at..]) as u64;
    Ok(Ok(Scan {
        segment: Segment { base, path: path.to_path_buf(), file: Arc::new(file), offsets, write_offset: at as u64 },
        torn,
        dropped_bytes,
    }))
}
