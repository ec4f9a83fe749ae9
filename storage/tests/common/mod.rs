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
        fsync: true,
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

/// The state-machine rule used by the crash tests: entry i writes
/// `key-{i % 7}` = i and `last` = i.
pub fn writes_of(e: &Entry) -> Result<Vec<KvWrite>, StorageError> {
    let v = e.index.to_le_bytes().to_vec();
    Ok(vec![
        KvWrite::Put { key: format!("key-{}", e.index % 7).into_bytes(), value: v.clone() },
        KvWrite::Put { key: b"last".to_vec(), value: v },
    ])
}
