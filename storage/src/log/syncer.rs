//! The single writer of a v2 log: group commit across every group.
//!
//! One round = take everything queued (up to a bound) → encode each
//! operation's records into one buffer (rolling to a new segment when the
//! active one is full) → `pwrite` → ONE fdatasync for all of it → publish
//! the new locations and durable points to the groups → complete the
//! waiters → collect segments no group needs any more.
//!
//! Ordering rules that recovery relies on:
//! - a roll first makes the old segment durable, then installs the next
//!   file (header durable, renamed, directory synced), then lists it in
//!   the manifest, and only then writes its first record (the GroupState):
//!   so records of segment N+1 exist only when segment N is whole, and an
//!   unlisted newer segment never holds records;
//! - collection runs after the round's fdatasync (the purge or truncation
//!   that freed the segments is durable), updates the manifest's
//!   `first_seq` first and unlinks the files after, oldest first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::format::{self, Record, SEGMENT_HEADER};
use super::group::{GroupCell, Loc};
use super::meta::{Meta, Runs};
use super::queue::{Op, Request};
use super::{GroupId, LogId, SegFile, Shared, MANIFEST};
use crate::completion::Reply;
use crate::error::{IoContext, StorageError};
use crate::failpoint::{self, FailPoint};
use crate::fsutil;
use crate::spare::SparePrep;

/// Requests taken from the queue for one round.
const MAX_REQUESTS_PER_ROUND: usize = 4096;

/// Replace the manifest atomically: `MANIFEST.tmp`, fsync, rename, fsync dir.
pub(crate) fn write_manifest(dir: &Path, first_seq: u64, last_seq: u64, fsync: bool) -> Result<(), StorageError> {
    let bytes = format::encode_manifest(first_seq, last_seq);
    if let Err(e) = fsutil::write_temp(dir, MANIFEST, &bytes, fsync) {
        let _ = std::fs::remove_file(dir.join(format!("{MANIFEST}.tmp")));
        return Err(e);
    }
    failpoint::hit(FailPoint::ManifestTemp);
    fsutil::publish_temp(dir, MANIFEST, fsync)
}

/// A group as the records written so far define it.
pub(crate) struct Written {
    pub meta: Meta,
    pub runs: Runs,
    pub cell: Arc<GroupCell>,
    /// The last operation of the group written.
    pub op: u64,
}

pub(crate) struct Active {
    pub seq: u64,
    pub file: Arc<File>,
    pub path: PathBuf,
    /// End of what is written to the file (the buffer goes here).
    pub write_offset: u64,
    pub capacity: u64,
}

enum Ack {
    Append(Reply<u64>, u64),
    Unit(Reply<()>),
}

pub(crate) struct Syncer {
    pub shared: Arc<Shared>,
    pub groups: BTreeMap<GroupId, Written>,
    pub active: Active,
    pub first_seq: u64,
    /// Bytes of records in each closed live segment.
    pub closed_bytes: BTreeMap<u64, u64>,
    pub active_has_state: bool,
    pub spare: SparePrep,
    buf: Vec<u8>,
    dirty: bool,
    acks: Vec<Ack>,
    publish: BTreeMap<GroupId, Vec<(u64, u64, Loc)>>,
    touched: BTreeSet<GroupId>,
    entries_in_round: u64,
    gc_due: bool,
    purged_in_round: bool,
    poisoned: Option<String>,
}

impl Syncer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<Shared>,
        groups: BTreeMap<GroupId, Written>,
        active: Active,
        first_seq: u64,
        closed_bytes: BTreeMap<u64, u64>,
        active_has_state: bool,
        spare: SparePrep,
    ) -> Syncer {
        let cap = shared.opts.max_write_bytes + format::entry_frame_len(shared.opts.max_entry_bytes);
        Syncer {
            shared,
            groups,
            active,
            first_seq,
            closed_bytes,
            active_has_state,
            spare,
            buf: Vec::with_capacity(cap.min(8 << 20)),
            dirty: false,
            acks: Vec::new(),
            publish: BTreeMap::new(),
            touched: BTreeSet::new(),
            entries_in_round: 0,
            gc_due: true,
            purged_in_round: false,
            poisoned: None,
        }
    }

    pub fn run(mut self) {
        if !self.active_has_state {
            // A fresh log, or a crash right after a roll: the active segment
            // starts with the group state before anything else.
            let r = self.emit_state().and_then(|_| self.commit());
            if let Err(e) = r {
                self.poison(e);
            }
        }
        self.update_gc_info();
        let mut batch = Vec::with_capacity(64);
        let shared = self.shared.clone();
        while shared.queue.take(MAX_REQUESTS_PER_ROUND, &mut batch) {
            for req in batch.drain(..) {
                self.handle(req);
            }
            self.commit_or_poison();
            if self.poisoned.is_none() {
                if let Err(e) = self.collect() {
                    self.poison(e);
                }
            }
        }
        self.commit_or_poison();
        self.spare.discard();
    }

    fn written(&mut self, cell: &Arc<GroupCell>) -> &mut Written {
        self.groups.entry(cell.id).or_insert_with(|| Written { meta: Meta::default(), runs: Runs::default(), cell: cell.clone(), op: 0 })
    }

    fn handle(&mut self, req: Request) {
        let Request { group: cell, op_seq, op } = req;
        if let Some(why) = &self.poisoned {
            let err = StorageError::Poisoned(why.clone());
            match op {
                Op::Append { done, .. } => drop(done.send(Err(err))),
                Op::Truncate { done, .. } | Op::Purge { done, .. } | Op::Vote { done, .. } | Op::Committed { done, .. } => {
                    drop(done.send(Err(err)))
                }
            }
            return;
        }
        let gid = cell.id;
        self.written(&cell);
        let (result, ack) = match op {
            Op::Append { plan, entries, done } => {
                let last = entries.last().map_or(0, |e| e.index);
                let r = (|| {
                    if let Some(t) = plan.truncate {
                        self.emit(&Record::Truncate { group: gid, last: t })?;
                        let w = self.written(&cell);
                        w.meta.truncate(t);
                        w.runs.normalize(&w.meta);
                        self.gc_due = true;
                    }
                    for e in &entries {
                        let id = LogId { term: e.term, index: e.index };
                        let loc = self.emit(&Record::Entry { group: gid, id, payload: &e.payload })?;
                        let w = self.written(&cell);
                        w.meta.append_entry(id);
                        w.runs.on_entry(loc.seq, e.index);
                        self.publish.entry(gid).or_default().push((op_seq, e.index, loc));
                        self.entries_in_round += 1;
                    }
                    Ok(())
                })();
                (r, Ack::Append(done, last))
            }
            Op::Truncate { last, done } => {
                let r = self.emit(&Record::Truncate { group: gid, last }).map(|_| {
                    let w = self.written(&cell);
                    w.meta.truncate(last);
                    w.runs.normalize(&w.meta);
                    self.gc_due = true;
                });
                (r, Ack::Unit(done))
            }
            Op::Purge { upto, done } => {
                let r = self.emit(&Record::Purge { group: gid, upto }).map(|_| {
                    let w = self.written(&cell);
                    w.meta.purge(upto);
                    w.runs.normalize(&w.meta);
                    self.gc_due = true;
                    self.purged_in_round = true;
                });
                (r, Ack::Unit(done))
            }
            Op::Vote { vote, done } => {
                let r = self.emit(&Record::Vote { group: gid, vote: &vote }).map(|_| self.written(&cell).meta.vote = Some(vote.clone()));
                (r, Ack::Unit(done))
            }
            Op::Committed { committed, done } => {
                let r = self.emit(&Record::Committed { group: gid, committed }).map(|_| self.written(&cell).meta.committed = committed);
                (r, Ack::Unit(done))
            }
        };
        match result {
            Ok(()) => {
                self.written(&cell).op = op_seq;
                self.touched.insert(gid);
                self.acks.push(ack);
            }
            Err(e) => {
                let why = StorageError::Poisoned(e.to_string());
                self.poison(e);
                match ack {
                    Ack::Append(done, _) => drop(done.send(Err(why))),
                    Ack::Unit(done) => drop(done.send(Err(why))),
                }
            }
        }
    }

    /// Buffer one record in the active segment (rolling first if it does
    /// not fit); returns where it will be.
    fn emit(&mut self, rec: &Record<'_>) -> Result<Loc, StorageError> {
        let mut start = self.buf.len();
        format::encode(self.active.seq, rec, &mut self.buf);
        let mut len = self.buf.len() - start;
        if self.active.write_offset + self.buf.len() as u64 > self.active.capacity {
            self.buf.truncate(start);
            self.roll()?;
            start = self.buf.len();
            format::encode(self.active.seq, rec, &mut self.buf);
            len = self.buf.len() - start;
            if self.active.write_offset + self.buf.len() as u64 > self.active.capacity {
                self.buf.truncate(start);
                return Err(StorageError::InvalidArgument(format!("a record of {len} bytes does not fit in an empty segment")));
            }
        }
        let loc = Loc { seq: self.active.seq, offset: (self.active.write_offset + start as u64) as u32, len: len as u32 };
        if self.buf.len() >= self.shared.opts.max_write_bytes {
            self.write_buffer()?;
        }
        Ok(loc)
    }

    /// The GroupState record that starts every segment.
    fn emit_state(&mut self) -> Result<(), StorageError> {
        let groups: Vec<(GroupId, Meta)> =
            self.groups.iter().filter(|(_, w)| !w.meta.is_empty()).map(|(g, w)| (*g, w.meta.clone())).collect();
        let start = self.buf.len();
        format::encode(self.active.seq, &Record::State(groups), &mut self.buf);
        if self.active.write_offset + self.buf.len() as u64 > self.active.capacity {
            let len = self.buf.len() - start;
            self.buf.truncate(start);
            return Err(StorageError::InvalidArgument(format!(
                "the group state ({len} bytes) does not fit in a segment: too many groups or votes for segment_bytes"
            )));
        }
        self.active_has_state = true;
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let a = &self.active;
        a.file.write_all_at(&self.buf, a.write_offset).ctx(|| format!("write {} at {}", a.path.display(), a.write_offset))?;
        self.active.write_offset += self.buf.len() as u64;
        self.shared.metrics.counters.appended_bytes.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            if self.shared.opts.fsyncs() {
                let path = &self.active.path;
                self.shared.metrics.fdatasync(&self.active.file, || format!("fdatasync {}", path.display()))?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// Close the active segment and start the next one.
    fn roll(&mut self) -> Result<(), StorageError> {
        self.write_buffer()?;
        // Segment N must be whole before any record goes into N+1.
        self.sync_active()?;
        let dir = self.shared.dir.clone();
        let fsync = self.shared.opts.fsyncs();
        let seq = self.active.seq + 1;
        let path = dir.join(format::segment_name(seq));
        let spare = self.spare.take()?;
        let (file, capacity) = spare.install_as(&dir, &format::encode_segment_header(seq), &path, fsync)?;
        failpoint::hit(FailPoint::LogRollAfterInstall);
        write_manifest(&dir, self.first_seq, seq, fsync)?;
        failpoint::hit(FailPoint::LogRollAfterManifest);
        let file = Arc::new(file);
        self.shared
            .segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq, Arc::new(SegFile { file: file.clone(), path: path.clone() }));
        let old = std::mem::replace(&mut self.active, Active { seq, file, path, write_offset: SEGMENT_HEADER as u64, capacity });
        self.closed_bytes.insert(old.seq, old.write_offset);
        self.shared.metrics.counters.segments_created.fetch_add(1, Ordering::Relaxed);
        self.gc_due = true;
        self.emit_state()
    }

    /// Write, fdatasync once, publish, complete the waiters.
    fn commit(&mut self) -> Result<(), StorageError> {
        self.write_buffer()?;
        self.sync_active()?;
        let budget = self.shared.opts.group_cache_bytes;
        for gid in std::mem::take(&mut self.touched) {
            let w = &self.groups[&gid];
            let mut g = w.cell.lock();
            for (op, index, loc) in self.publish.remove(&gid).unwrap_or_default() {
                g.publish(op, index, loc);
            }
            g.synced_op = g.synced_op.max(w.op);
            g.trim_cache(budget);
        }
        if self.entries_in_round > 0 {
            self.shared.metrics.counters.appended_entries.fetch_add(self.entries_in_round, Ordering::Relaxed);
            self.shared.metrics.record_round(self.entries_in_round);
            self.entries_in_round = 0;
        }
        for ack in self.acks.drain(..) {
            match ack {
                Ack::Append(done, last) => drop(done.send(Ok(last))),
                Ack::Unit(done) => drop(done.send(Ok(()))),
            }
        }
        if std::mem::take(&mut self.purged_in_round) {
            failpoint::hit(FailPoint::LogPurgeDurable);
        }
        self.update_bytes();
        Ok(())
    }

    fn commit_or_poison(&mut self) {
        if self.poisoned.is_none() {
            if let Err(e) = self.commit() {
                self.poison(e);
            }
        }
    }

    /// Delete the oldest segments once no group has a live entry in them.
    fn collect(&mut self) -> Result<(), StorageError> {
        if !std::mem::take(&mut self.gc_due) {
            return Ok(());
        }
        let active = self.active.seq;
        let keep_from = self.groups.values().filter_map(|w| w.runs.oldest()).min().unwrap_or(active).min(active);
        if keep_from > self.first_seq {
            let dir = self.shared.dir.clone();
            let fsync = self.shared.opts.fsyncs();
            write_manifest(&dir, keep_from, active, fsync)?;
            failpoint::hit(FailPoint::LogGcAfterManifest);
            let doomed: Vec<(u64, PathBuf)> = {
                let mut segs = self.shared.segments.write().unwrap_or_else(|p| p.into_inner());
                let seqs: Vec<u64> = segs.range(..keep_from).map(|(s, _)| *s).collect();
                seqs.into_iter().filter_map(|s| segs.remove(&s).map(|f| (s, f.path.clone()))).collect()
            };
            for (i, (seq, path)) in doomed.iter().enumerate() {
                fsutil::remove_if_exists(path)?;
                self.closed_bytes.remove(seq);
                if i == 0 && doomed.len() > 1 {
                    failpoint::hit(FailPoint::LogGcMidUnlink);
                }
            }
            if fsync {
                fsutil::sync_dir(&dir)?;
            }
            self.shared.metrics.counters.segments_deleted.fetch_add(doomed.len() as u64, Ordering::Relaxed);
            self.first_seq = keep_from;
        }
        self.update_gc_info();
        Ok(())
    }

    fn update_bytes(&self) {
        let mut gc = self.shared.gc.lock().unwrap_or_else(|p| p.into_inner());
        gc.log_bytes = self.closed_bytes.values().sum::<u64>() + self.active.write_offset;
        gc.segments = self.closed_bytes.len() + 1;
        gc.first_seq = self.first_seq;
        gc.last_seq = self.active.seq;
    }

    fn update_gc_info(&self) {
        let pinning: Vec<GroupId> = if self.first_seq < self.active.seq {
            self.groups.iter().filter(|(_, w)| w.runs.oldest() == Some(self.first_seq)).map(|(g, _)| *g).collect()
        } else {
            Vec::new()
        };
        self.update_bytes();
        self.shared.gc.lock().unwrap_or_else(|p| p.into_inner()).pinning = pinning;
    }

    fn poison(&mut self, e: StorageError) {
        let why = e.to_string();
        tracing::error!(error = %why, dir = %self.shared.dir.display(), "write-ahead log poisoned");
        // Published before any waiter learns of the failure.
        *self.shared.poisoned.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        for ack in self.acks.drain(..) {
            let err = StorageError::Poisoned(why.clone());
            match ack {
                Ack::Append(done, _) => drop(done.send(Err(err))),
                Ack::Unit(done) => drop(done.send(Err(err))),
            }
        }
        self.buf.clear();
        self.publish.clear();
        self.touched.clear();
        self.poisoned = Some(why);
    }
}
