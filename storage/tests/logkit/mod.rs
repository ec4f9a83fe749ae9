//! Helpers for the v2 log and store tests.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::executor::block_on;
use storage::log::{GroupLog, Log, LogId, LogOptions, LogRecovery, WalSync};
use storage::{Entry, StorageError};

/// Deterministic payload of entry `index` of `group` (length varies).
pub fn payload(group: u32, index: u64) -> Vec<u8> {
    let len = 8 + ((index * 7 + group as u64 * 13) % 90) as usize;
    (0..len).map(|k| (index as usize * 31 + k * 7 + group as usize * 101) as u8).collect()
}

pub fn small_opts() -> LogOptions {
    LogOptions {
        segment_bytes: 8 * 1024,
        max_entry_bytes: 1024,
        max_vote_bytes: 128,
        max_write_bytes: 2048,
        max_pending: 256,
        sync: WalSync::Fsync,
        preallocate: true,
        group_cache_bytes: 4096,
    }
}

pub fn open(dir: &Path) -> (Log, LogRecovery) {
    Log::open(dir, small_opts()).unwrap()
}

/// Like `open`, retrying `Locked` for up to 10 s (a child that just died may
/// still share the lock's descriptor with a sibling being spawned).
pub fn open_after_owner_exit(dir: &Path, opts: LogOptions) -> Result<(Log, LogRecovery), StorageError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Log::open(dir, opts.clone()) {
            Err(StorageError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other,
        }
    }
}

pub fn entries(group: u32, term: u64, from: u64, n: u64) -> Vec<Entry> {
    (from..from + n).map(|i| Entry::new(term, i, payload(group, i))).collect()
}

/// Append `n` entries of term 1 from `from`, wait until durable.
pub fn append_n(g: &GroupLog, from: u64, n: u64) -> u64 {
    block_on(g.append(entries(g.id(), 1, from, n)).unwrap()).unwrap()
}

pub fn id(term: u64, index: u64) -> LogId {
    LogId::new(term, index)
}

/// Every file of a directory tree with its bytes (to prove a refused open changed nothing).
pub fn snapshot_dir(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Segment files of a log directory, ascending.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "log")).collect();
    v.sort();
    v
}

/// Check group `g` holds exactly entries `from..=to` with their payloads (term 1).
pub fn check_entries(g: &GroupLog, from: u64, to: u64) {
    let got = g.read(from..=to).unwrap();
    assert_eq!(got.len() as u64, to + 1 - from, "group {}: entries {from}..={to}", g.id());
    for (k, e) in got.iter().enumerate() {
        assert_eq!(e.index, from + k as u64);
        assert_eq!(e.payload, payload(g.id(), e.index), "group {} entry {}", g.id(), e.index);
    }
}

/// Poll `cond` for up to 10 s (work the syncer does right after a completion).
pub fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition not reached in 10 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// One frame of a v2 segment, parsed independently of the crate.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub offset: u64,
    pub len: u64,
    pub kind: u8,
    /// `(group, index)` of an entry record.
    pub entry: Option<(u32, u64)>,
}

/// The frames of a segment file, from its header to the first zero header.
pub fn frames(path: &Path) -> Vec<Frame> {
    let b = std::fs::read(path).unwrap();
    let mut at = 32usize;
    let mut out = Vec::new();
    while at + 8 <= b.len() && b[at..at + 8].iter().any(|&x| x != 0) {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let body = &b[at + 8..at + 8 + len];
        let entry = (body[0] == 1)
            .then(|| (u32::from_le_bytes(body[1..5].try_into().unwrap()), u64::from_le_bytes(body[13..21].try_into().unwrap())));
        out.push(Frame { offset: at as u64, len: (8 + len) as u64, kind: body[0], entry });
        at += 8 + len;
    }
    out
}

/// Re-seal the frame at `offset` of segment `seq` after its body was edited.
pub fn reseal(path: &Path, seq: u64, offset: u64) {
    let mut b = std::fs::read(path).unwrap();
    let at = offset as usize;
    let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(&b[at + 8..at + 8 + len as usize]);
    b[at + 4..at + 8].copy_from_slice(&h.finalize().to_le_bytes());
    std::fs::write(path, b).unwrap();
}

/// A log of `groups` groups with `per_group` interleaved entries each
/// (index 0 first), small segments; returns the directory.
pub fn build_log(groups: u32, per_group: u64, opts: LogOptions) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    let gs: Vec<GroupLog> = (0..groups).map(|g| log.group(g).unwrap()).collect();
    for i in 0..per_group {
        let futs: Vec<_> = gs.iter().map(|g| g.append(vec![Entry::new(1, i, payload(g.id(), i))]).unwrap()).collect();
        for f in futs {
            block_on(f).unwrap();
        }
    }
    dir
}

pub fn flip(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
}

/// Open must be refused, and nothing in the directory may change.
pub fn assert_refused(dir: &Path, what: &str) -> StorageError {
    let before = snapshot_dir(dir);
    let err = match Log::open(dir, small_opts()) {
        Ok(_) => panic!("{what}: the damaged log was opened"),
        Err(e) => e,
    };
    assert!(err.is_damage(), "{what}: not a damage error: {err}");
    let after = snapshot_dir(dir);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "{what}: files changed");
    for (k, v) in &before {
        assert!(v == &after[k], "{what}: {} changed", k.display());
    }
    err
}

// ---- state store helpers ----
use storage::store::{KvWrite, Partition, Store, StoreOptions};

pub fn store_opts() -> StoreOptions {
    StoreOptions { cache_bytes: 8 << 20, ..StoreOptions::default() }
}

/// The state-machine rule of the store tests: entry i of group g writes
/// `key-{i % 7}` = i and `last` = i, and puts (i even) or deletes (i odd)
/// `gone-{i % 5}` — so tombstones are written and compacted.
pub fn writes_of(_g: u32, e: &Entry) -> Result<Vec<KvWrite>, StorageError> {
    let v = e.index.to_le_bytes().to_vec();
    let gone = format!("gone-{}", e.index % 5).into_bytes();
    Ok(vec![
        KvWrite::Put { key: format!("key-{}", e.index % 7).into_bytes(), value: v.clone() },
        if e.index.is_multiple_of(2) { KvWrite::Put { key: gone, value: v.clone() } } else { KvWrite::Delete { key: gone } },
        KvWrite::Put { key: b"last".to_vec(), value: v },
    ])
}

/// Expected state after applying entries `first..=last` with `writes_of`.
pub fn check_state(p: &Partition, first: u64, last: u64, what: &str) {
    for j in 0..7u64 {
        let newest = (first..=last).rev().find(|i| i % 7 == j);
        let got = p.get(format!("key-{j}").as_bytes()).unwrap();
        assert_eq!(got, newest.map(|n| (n, n.to_le_bytes().to_vec())), "{what}: partition {} key-{j}", p.id());
    }
    for j in 0..5u64 {
        let newest = (first..=last).rev().find(|i| i % 5 == j);
        let got = p.get(format!("gone-{j}").as_bytes()).unwrap();
        let want = newest.filter(|n| n % 2 == 0).map(|n| (n, n.to_le_bytes().to_vec()));
        assert_eq!(got, want, "{what}: partition {} gone-{j} (deleted by odd entries)", p.id());
    }
    let (idx, _) = p.get(b"last").unwrap().unwrap();
    assert_eq!(idx, last, "{what}: partition {} last", p.id());
}

/// Open log `log_dir` and store `state_dir`, attach the log as number 0,
/// open partitions `groups`.
pub fn open_node(
    log_dir: &Path,
    state_dir: &Path,
    log_opts: LogOptions,
    groups: &[u32],
) -> Result<(Log, Store, Vec<Partition>), StorageError> {
    let (log, _) = open_after_owner_exit(log_dir, log_opts)?;
    let store = Store::open(state_dir, store_opts())?;
    store.attach_log(0, log.clone())?;
    let parts = groups.iter().map(|&g| store.partition(0, g)).collect::<Result<Vec<_>, _>>()?;
    Ok((log, store, parts))
}
