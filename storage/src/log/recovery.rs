//! Opening a v2 log: strict recovery.
//!
//! Recovery runs in two phases. The first only reads: it checks the
//! manifest, every listed segment, every record and every group's index
//! sequence, and decides what (if anything) to repair. Any damage other than
//! a torn tail makes it return a typed error naming the file and byte
//! offset — before a single byte on disk was changed. Only then does the
//! second phase repair what the rules allow:
//!
//! - temporary files (`*.tmp`: spares, a half-written manifest) are removed;
//! - a segment older than the manifest's `first_seq` is a leftover of a
//!   segment collection that crashed after the manifest update: removed;
//! - a segment newer than `last_seq` comes from a roll that crashed before
//!   the manifest listed it, and holds no records (checked): removed;
//! - a damaged LAST record of the LAST segment with nothing valid after it
//!   (scanned byte by byte) is a torn write: the bytes from it on are zeroed
//!   and fdatasynced.
//!
//! Everything else is refused: damage followed by a valid record, a bad
//! segment header or magic, any damage in a closed segment, a listed
//! segment missing (first, middle or newest), a manifest with a bad
//! checksum or missing while segments exist, a group whose indexes have a
//! gap or go back, a group state record that disagrees with the records
//! before it (a truncated or swapped middle segment), and live entries that
//! no remaining segment holds.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::format::{self, Decoded, Record, FRAME_HEADER, SEGMENT_HEADER};
use super::group::Loc;
use super::meta::{Meta, Runs};
use super::{GroupId, LogOptions, LogRecovery, TornTail, MANIFEST};
use crate::error::{IoContext, StorageError};
use crate::fsutil;
use crate::spare::{self, nonzero_extent};

/// One group as replayed from the records.
#[derive(Default, Debug)]
pub(crate) struct RecGroup {
    pub meta: Meta,
    /// Terms and locations of the live entries `known_from ..`.
    pub known: VecDeque<(u64, Loc)>,
    /// Live entries before this index were written in segments that are
    /// gone; they must all be purged or truncated by the end of the replay.
    pub known_from: u64,
    pub runs: Runs,
}

impl RecGroup {
    fn from_meta(meta: Meta) -> RecGroup {
        let known_from = meta.last_live().map_or(meta.first, |l| l + 1);
        RecGroup { meta, known: VecDeque::new(), known_from, runs: Runs::default() }
    }

    fn known_term(&self, index: u64) -> Option<u64> {
        let k = index.checked_sub(self.known_from)?;
        self.known.get(usize::try_from(k).ok()?).map(|&(t, _)| t)
    }

    /// Make `known`/`known_from` match the live range after a truncation or purge.
    fn trim(&mut self) {
        match self.meta.last_live() {
            None => {
                self.known.clear();
                self.known_from = self.meta.first;
            }
            Some(ll) => {
                while !self.known.is_empty() && self.known_from + self.known.len() as u64 > ll + 1 {
                    self.known.pop_back();
                }
                if self.known.is_empty() && self.known_from > ll + 1 {
                    self.known_from = ll + 1;
                }
                while !self.known.is_empty() && self.known_from < self.meta.first {
                    self.known.pop_front();
                    self.known_from += 1;
                }
                self.known_from = self.known_from.max(self.meta.first);
            }
        }
        self.runs.normalize(&self.meta);
    }
}

pub(crate) struct RecSegment {
    pub seq: u64,
    pub path: PathBuf,
    pub file: File,
    /// End of the last whole record.
    pub write_offset: u64,
    pub capacity: u64,
}

pub(crate) struct Recovered {
    pub first_seq: u64,
    /// The live segments, ascending; the last one is the active one.
    pub segments: Vec<RecSegment>,
    pub groups: BTreeMap<GroupId, RecGroup>,
    /// Whether the active segment already holds its GroupState record.
    pub active_has_state: bool,
    pub report: LogRecovery,
}

struct Replay<'a> {
    dir: &'a Path,
    groups: BTreeMap<GroupId, RecGroup>,
    records: u64,
}

fn damaged(path: &Path, offset: usize, detail: impl Into<String>) -> StorageError {
    StorageError::damaged(path, offset as u64, detail)
}

/// Where a record is: its segment, file and frame.
struct Pos<'a> {
    seq: u64,
    path: &'a Path,
    at: usize,
    frame_len: usize,
    /// The first record of its segment / of the first live segment.
    first_rec: bool,
    first_seg: bool,
}

impl Replay<'_> {
    fn apply(&mut self, pos: &Pos<'_>, rec: &Record<'_>) -> Result<(), StorageError> {
        let Pos { seq, path, at, frame_len, first_rec, first_seg } = *pos;
        self.records += 1;
        if let Record::State(groups) = rec {
            if !first_rec {
                return Err(damaged(path, at, "a group state record inside a segment (it is only ever the first record)"));
            }
            if first_seg {
                self.groups = groups.iter().map(|(g, m)| (*g, RecGroup::from_meta(m.clone()))).collect();
                return Ok(());
            }
            let ours: Vec<(GroupId, &Meta)> = self.groups.iter().filter(|(_, r)| !r.meta.is_empty()).map(|(g, r)| (*g, &r.meta)).collect();
            let theirs: Vec<(GroupId, &Meta)> = groups.iter().map(|(g, m)| (*g, m)).collect();
            if ours != theirs {
                let diff = theirs
                    .iter()
                    .find(|(g, m)| self.groups.get(g).map(|r| &r.meta) != Some(*m))
                    .map(|(g, _)| *g)
                    .or_else(|| ours.iter().find(|(g, _)| !groups.iter().any(|(h, _)| h == g)).map(|(g, _)| *g));
                return Err(damaged(
                    path,
                    at,
                    format!(
                        "the group state at the head of this segment disagrees with the records before it (group {}): an earlier segment was truncated, replaced or lost records",
                        diff.map_or("?".to_string(), |g| g.to_string())
                    ),
                ));
            }
            return Ok(());
        }
        if first_rec {
            return Err(damaged(path, at, "the segment does not start with a group state record"));
        }
        let loc = Loc { seq, offset: at as u32, len: frame_len as u32 };
        match *rec {
            Record::State(_) => unreachable!("handled above"),
            Record::Entry { group, id, .. } => {
                let g = self.groups.entry(group).or_default();
                match g.meta.last {
                    None => {
                        g.known.clear();
                        g.known_from = id.index;
                    }
                    Some(l) => {
                        if id.index != l.index.wrapping_add(1) {
                            return Err(damaged(
                                path,
                                at,
                                format!(
                                    "group {group}: entry {} does not follow the group's last index {} (a gap in the log)",
                                    id.index, l.index
                                ),
                            ));
                        }
                        if id.term < l.term {
                            return Err(damaged(
                                path,
                                at,
                                format!("group {group}: entry {} has term {} below the previous term {}", id.index, id.term, l.term),
                            ));
                        }
                    }
                }
                if id.index == u64::MAX || g.known_from + g.known.len() as u64 != id.index {
                    return Err(damaged(path, at, format!("group {group}: entry {} is out of sequence", id.index)));
                }
                g.known.push_back((id.term, loc));
                g.meta.append_entry(id);
                g.runs.on_entry(seq, id.index);
            }
            Record::Truncate { group, last } => {
                let g = self.groups.entry(group).or_default();
                match last {
                    None if g.meta.purged.is_some() => {
                        return Err(damaged(path, at, format!("group {group}: truncation below the purge point")));
                    }
                    Some(l) if Some(l) != g.meta.purged => {
                        let live = g.meta.last_live().is_some_and(|ll| l.index >= g.meta.first && l.index <= ll);
                        if !live {
                            return Err(damaged(path, at, format!("group {group}: truncation to {l:?}, which is not a live entry")));
                        }
                        if g.known_term(l.index).is_some_and(|t| t != l.term) {
                            return Err(damaged(path, at, format!("group {group}: truncation to {l:?}, but that entry has another term")));
                        }
                    }
                    _ => {}
                }
                g.meta.truncate(last);
                g.trim();
            }
            Record::Purge { group, upto } => {
                let g = self.groups.entry(group).or_default();
                if g.meta.purged.is_some_and(|p| upto.index < p.index) {
                    return Err(damaged(path, at, format!("group {group}: purge point moves back to {}", upto.index)));
                }
                if g.known_term(upto.index).is_some_and(|t| t != upto.term) {
                    return Err(damaged(path, at, format!("group {group}: purge up to {upto:?}, but that entry has another term")));
                }
                g.meta.purge(upto);
                g.trim();
            }
            Record::Vote { group, vote } => self.groups.entry(group).or_default().meta.vote = Some(vote.to_vec()),
            Record::Committed { group, committed } => self.groups.entry(group).or_default().meta.committed = committed,
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), StorageError> {
        for (g, r) in &self.groups {
            if let Some(ll) = r.meta.last_live() {
                if r.known_from > r.meta.first {
                    return Err(StorageError::Missing {
                        path: self.dir.to_path_buf(),
                        detail: format!(
                            "group {g}: live entries {}..={} are in no remaining segment (a segment was lost, or the manifest was replaced)",
                            r.meta.first,
                            r.known_from - 1
                        ),
                    });
                }
                debug_assert_eq!(r.known.len() as u64, ll + 1 - r.known_from);
            }
        }
        Ok(())
    }
}

/// Largest body a record can have anywhere but at a segment's head (where
/// only the group state record sits): bounds the scan past damage.
fn max_scan_body(opts: &LogOptions) -> usize {
    (opts.max_entry_bytes + format::ENTRY_OVERHEAD).max(opts.max_vote_bytes + 5)
}

/// The offset of the first valid frame at or after `from`, if any.
fn find_valid_frame(bytes: &[u8], from: usize, seq: u64, max_body: usize) -> Option<usize> {
    let end = nonzero_extent(bytes);
    (from..end).find(|&off| {
        let b = &bytes[off..];
        if b.len() < FRAME_HEADER + 1 || b[..FRAME_HEADER].iter().all(|&x| x == 0) {
            return false;
        }
        let len = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
        // Cheap filters before the checksum: length bounds and the kind's size.
        let plausible = len >= 1
            && len <= max_body
            && len <= b.len() - FRAME_HEADER
            && match b[FRAME_HEADER] {
                1 => len >= format::ENTRY_OVERHEAD,
                2 => len >= 5,
                3 | 5 => len == 22,
                4 => len == 21,
                _ => false,
            };
        plausible && format::is_valid_frame(b, seq, max_body)
    })
}

struct Listing {
    segments: BTreeMap<u64, PathBuf>,
    temps: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing, StorageError> {
    let mut l = Listing { segments: BTreeMap::new(), temps: Vec::new() };
    for entry in fs::read_dir(dir).ctx(|| format!("read dir {}", dir.display()))? {
        let entry = entry.ctx(|| format!("read dir {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = format::parse_segment_name(name) {
            l.segments.insert(seq, entry.path());
        } else if spare::is_temp_name(name) {
            l.temps.push(entry.path());
        }
    }
    Ok(l)
}

/// Recover the log in `dir` (which the caller has locked).
pub(crate) fn recover(dir: &Path, opts: &LogOptions) -> Result<Recovered, StorageError> {
    let started = Instant::now();
    let listing = list(dir)?;
    let manifest_path = dir.join(MANIFEST);
    let Some(mbytes) = fsutil::read_optional(&manifest_path)? else {
        // No manifest: a new directory, or a first start that crashed
        // before its manifest was written — then the only segment holds no
        // record (checked). Segments with records and no manifest: refused.
        let mut leftovers = listing.temps;
        for (&seq, path) in &listing.segments {
            let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
            let empty = seq == 1 && bytes.len() >= SEGMENT_HEADER && nonzero_extent(&bytes[SEGMENT_HEADER..]) == 0;
            if !empty || format::decode_segment_header(&bytes) != Ok(1) {
                return Err(StorageError::Missing {
                    path: manifest_path,
                    detail: format!("{} segment files (e.g. {}) exist without it", listing.segments.len(), path.display()),
                });
            }
            leftovers.push(path.clone());
        }
        return create_fresh(dir, opts, leftovers, started);
    };
    let (first, last) = format::decode_manifest(&mbytes).map_err(|why| StorageError::damaged(&manifest_path, 0, why))?;

    // ---- phase 1: read and check everything, change nothing ----
    let mut remove: Vec<PathBuf> = listing.temps.clone();
    for (&seq, path) in &listing.segments {
        if seq < first {
            remove.push(path.clone());
        } else if seq > last {
            let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
            match format::decode_segment_header(&bytes) {
                Ok(s) if s == seq => {}
                Ok(s) => return Err(damaged(path, 16, format!("unlisted segment's header names sequence {s}"))),
                Err(why) => return Err(damaged(path, 0, format!("unlisted segment newer than the manifest's last ({last}): {why}"))),
            }
            if let Some(p) = bytes[SEGMENT_HEADER..].iter().position(|&b| b != 0) {
                return Err(damaged(
                    path,
                    SEGMENT_HEADER + p,
                    format!("segment newer than the manifest's last ({last}) holds data (the manifest may be an old copy)"),
                ));
            }
            remove.push(path.clone());
        }
    }
    for seq in first..=last {
        if !listing.segments.contains_key(&seq) {
            return Err(StorageError::Missing {
                path: dir.join(format::segment_name(seq)),
                detail: format!("the manifest lists segments {first}..={last}"),
            });
        }
    }
    let max_body = max_scan_body(opts);
    let mut replay = Replay { dir, groups: BTreeMap::new(), records: 0 };
    let mut segments = Vec::new();
    let mut cut: Option<(PathBuf, usize, usize)> = None;
    let mut active_has_state = false;
    for seq in first..=last {
        let path = &listing.segments[&seq];
        let is_last = seq == last;
        let bytes = fs::read(path).ctx(|| format!("read {}", path.display()))?;
        match format::decode_segment_header(&bytes) {
            Ok(s) if s == seq => {}
            Ok(s) => return Err(damaged(path, 16, format!("segment header names sequence {s}, its file name {seq}"))),
            Err(why) => return Err(damaged(path, 0, why)),
        }
        let mut at = SEGMENT_HEADER;
        let mut records = 0u64;
        loop {
            match format::decode(&bytes[at..], seq, bytes.len() - at) {
                Decoded::Record { rec, frame_len } => {
                    let pos = Pos { seq, path, at, frame_len, first_rec: records == 0, first_seg: seq == first };
                    replay.apply(&pos, &rec)?;
                    records += 1;
                    at += frame_len;
                }
                Decoded::End => {
                    let extent = nonzero_extent(&bytes);
                    if extent > at {
                        if let Some(v) = find_valid_frame(&bytes, at + 1, seq, max_body) {
                            return Err(damaged(
                                path,
                                at,
                                format!("zeros where a record should be, and a valid record follows at byte {v}"),
                            ));
                        }
                        if !is_last {
                            return Err(damaged(path, at, "damaged bytes after the last record of a closed segment"));
                        }
                        cut = Some((path.clone(), at, extent));
                    }
                    break;
                }
                Decoded::Invalid(why) => {
                    if let Some(v) = find_valid_frame(&bytes, at + 1, seq, max_body) {
                        return Err(damaged(path, at, format!("{why}, and a valid record follows at byte {v}: not a torn tail")));
                    }
                    if !is_last {
                        return Err(damaged(
                            path,
                            at,
                            format!("{why} in a closed segment (only the last record of the last segment may be torn)"),
                        ));
                    }
                    cut = Some((path.clone(), at, nonzero_extent(&bytes).max(at + 1)));
                    break;
                }
            }
        }
        if records == 0 && !is_last {
            return Err(damaged(path, SEGMENT_HEADER, "a closed segment without its group state record"));
        }
        if records == 0 && seq == first && seq != 1 {
            return Err(damaged(
                path,
                SEGMENT_HEADER,
                "the only segment has no group state record, but older segments were already collected",
            ));
        }
        if is_last {
            active_has_state = records > 0;
        }
        let file = OpenOptions::new().read(true).write(true).open(path).ctx(|| format!("open {}", path.display()))?;
        segments.push(RecSegment { seq, path: path.clone(), file, write_offset: at as u64, capacity: bytes.len() as u64 });
    }
    replay.finish()?;

    // ---- phase 2: the repairs the rules allow ----
    let mut report = LogRecovery { first_seq: first, last_seq: last, ..LogRecovery::default() };
    if let Some((path, at, extent)) = cut {
        let seg = segments.last().expect("the cut is in the last segment");
        let cap = (extent as u64).min(seg.capacity);
        spare::zero_range(&seg.file, &path, at as u64, cap)?;
        seg.file.sync_data().ctx(|| format!("fdatasync {}", path.display()))?;
        tracing::warn!(path = %path.display(), offset = at, bytes = extent - at, "write-ahead log: cut a torn last record");
        report.torn_tail = Some(TornTail { path, offset: at as u64, bytes: (extent - at) as u64 });
    }
    let mut removed_segment = false;
    for p in &remove {
        fsutil::remove_if_exists(p)?;
        removed_segment |= p.extension().is_some_and(|e| e == "log");
        tracing::info!(path = %p.display(), "write-ahead log: removed a leftover file");
    }
    if removed_segment && opts.fsyncs() {
        fsutil::sync_dir(dir)?;
    }
    report.removed_files = remove;
    report.segments = segments.len();
    report.records = replay.records;
    report.groups = replay.groups.values().filter(|g| !g.meta.is_empty()).count();
    report.live_entries = replay.groups.values().map(|g| g.meta.live()).sum();
    report.duration = started.elapsed();
    Ok(Recovered { first_seq: first, segments, groups: replay.groups, active_has_state, report })
}

/// An empty directory: segment 1 and a manifest listing it.
fn create_fresh(dir: &Path, opts: &LogOptions, temps: Vec<PathBuf>, started: Instant) -> Result<Recovered, StorageError> {
    for p in &temps {
        fsutil::remove_if_exists(p)?;
    }
    let path = dir.join(format::segment_name(1));
    let spare = spare::prepare_spare(dir, opts.segment_bytes, opts.preallocate, opts.fsyncs())?;
    let (file, capacity) = spare.install_as(dir, &format::encode_segment_header(1), &path, opts.fsyncs())?;
    crate::failpoint::hit(crate::failpoint::FailPoint::LogRollAfterInstall);
    if let Err(e) = super::syncer::write_manifest(dir, 1, 1, opts.fsyncs()) {
        // Leave nothing behind a failed first start (a full disk).
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    let report =
        LogRecovery { first_seq: 1, last_seq: 1, segments: 1, removed_files: temps, duration: started.elapsed(), ..Default::default() };
    let seg = RecSegment { seq: 1, path, file, write_offset: SEGMENT_HEADER as u64, capacity };
    Ok(Recovered { first_seq: 1, segments: vec![seg], groups: BTreeMap::new(), active_has_state: false, report })
}
