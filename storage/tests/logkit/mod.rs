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
