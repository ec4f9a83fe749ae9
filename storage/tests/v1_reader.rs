//! The format-1 reader the migration uses: strict where v1's own recovery
//! was lenient (damage followed by valid records is refused, not cut), a
//! torn last record is left out, the store's rows and the entries after its
//! checkpoint are returned.
mod common;
use common::*;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use storage::{Entry, StateStore, StorageError};

fn write_core(dir: &std::path::Path, n: u64, checkpoint_at: u64) {
    let (wal, _) = open(&dir.join("wal"));
    let store = StateStore::open(&dir.join("state")).unwrap();
    append_n(&wal, 1, n);
    store.replay(&wal, checkpoint_at, &mut |e: &Entry| writes_of(e)).unwrap();
    store.checkpoint().unwrap();
}

fn segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs.remove(0)
}

#[test]
fn reads_rows_and_the_entries_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write_core(dir.path(), 30, 20);
    let core = storage::v1::read_core(dir.path(), 1024).unwrap();
    assert_eq!(core.checkpoint, 20);
    assert_eq!(core.entries.iter().map(|e| e.index).collect::<Vec<_>>(), (21..=30).collect::<Vec<_>>());
    assert!(core.rows.iter().any(|(k, i, v)| k == b"last" && *i == 20 && v.is_some()));
    assert!(core.torn_tail.is_none());
}

#[test]
fn damage_followed_by_valid_records_is_refused_and_a_torn_last_record_is_not() {
    let dir = tempfile::tempdir().unwrap();
    write_core(dir.path(), 30, 10);
    let seg = segment(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    let end = bytes.len() - bytes.iter().rev().take_while(|b| **b == 0).count();
    // Flip 4 bytes in a record in the middle.
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    let mid = 32 + (end - 32) / 2;
    f.write_all_at(&[0xde, 0xad, 0xbe, 0xef], mid as u64).unwrap();
    match storage::v1::read_core(dir.path(), 1024) {
        Err(StorageError::Damaged { path, detail, .. }) => assert!(path == seg && detail.contains("valid records follow"), "{detail}"),
        other => panic!("damage in the middle must be refused: {other:?}"),
    }
    f.write_all_at(&bytes[mid..mid + 4], mid as u64).unwrap();
    // Cut the last record in half: a torn tail, read without it.
    f.write_all_at(&[0u8; 20], (end - 20) as u64).unwrap();
    let core = storage::v1::read_core(dir.path(), 1024).unwrap();
    assert_eq!(core.entries.last().map(|e| e.index), Some(29));
    assert!(core.torn_tail.is_some());
}
