#![allow(dead_code)]
use std::path::Path;

use storage::{Entry, KvWrite, StorageError, Wal, WalOptions};

/// Deterministic payload for entry `i` (length varies with i).
pub fn payload(i: u64) -> Vec<u8> {
    let len = 16 + (i % 97) as usize;
    (0..len).map(|k| (i as usize * 31 + k * 7) as u8).collect()
}

pub fn small_opts() -> WalOptions {
    WalOptions {
        segment_bytes: 8 * 1024,
        max_entry_bytes: 1024,
        max_write_bytes: 2048,
        max_pending: 256,
        sync: storage::WalSync::Fsync,
        preallocate: true,
    }
}

pub fn append_n(wal: &Wal, from: u64, n: u64) -> u64 {
    let entries: Vec<Entry> = (from..from + n).map(|i| Entry::new(1, i, payload(i))).collect();
    futures::executor::block_on(wal.append(entries).unwrap()).unwrap()
}

pub fn open(dir: &Path) -> (Wal, storage::Recovery) {
    Wal::open(dir, small_opts()).unwrap()
}

/// `open` for the crash tests, where the previous owner of `dir` has just
/// ended. The test binary runs tests on several threads and each spawns
/// children: a child being spawned holds copies of the parent's descriptors
/// (the lock file's too) until its exec closes them, so for a moment after
/// the last owner is gone the flock may still be held. Retry `Locked` for a
/// bounded time; any other error, or a lock held for 10 s, fails the test.
pub fn open_after_owner_exit(dir: &Path) -> (Wal, storage::Recovery) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Wal::open(dir, small_opts()) {
            Err(StorageError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.unwrap(),
        }
    }
}

/// The state-machine rule used by the crash tests: entry i writes
/// `key-{i % 7}` = i and `last` = i, and puts (i even) or deletes (i odd)
/// `gone-{i % 5}` — so tombstones are written, and compacted by checkpoints.
pub fn writes_of(e: &Entry) -> Result<Vec<KvWrite>, StorageError> {
    let v = e.index.to_le_bytes().to_vec();
    let gone = format!("gone-{}", e.index % 5).into_bytes();
    Ok(vec![
        KvWrite::Put { key: format!("key-{}", e.index % 7).into_bytes(), value: v.clone() },
        if e.index.is_multiple_of(2) { KvWrite::Put { key: gone, value: v.clone() } } else { KvWrite::Delete { key: gone } },
        KvWrite::Put { key: b"last".to_vec(), value: v },
    ])
}
