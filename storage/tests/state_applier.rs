//! The background applier: applies committed entries, checkpoints, purges
//! the log, and a restart replays only the suffix after the checkpoint.
mod common;
use common::*;
use std::sync::Arc;
use std::time::Duration;

use storage::{Applier, ApplierOptions, KvWrite, StateStore};

fn wait_applied(store: &StateStore, index: u64) {
    for _ in 0..2000 {
        if store.applied_index() >= index {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("applier stuck at {} (want {index})", store.applied_index());
}

#[test]
fn applier_applies_checkpoints_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(&dir.path().join("wal"));
    let store = Arc::new(StateStore::open(&dir.path().join("state")).unwrap());
    let opts = ApplierOptions { checkpoint_every_entries: 1_000_000, checkpoint_every: Duration::from_secs(3600), purge_log: true };
    let applier = Applier::spawn(store.clone(), wal.clone(), writes_of, opts.clone(), 0).unwrap();
    let last = append_n(&wal, 1, 300);
    applier.notify_committed(last);
    wait_applied(&store, 300);
    assert_eq!(applier.stats().apply_lag, 0);
    let c = futures::executor::block_on(applier.checkpoint().unwrap()).unwrap();
    assert_eq!(c, 300);
    assert_eq!(wal.first_index(), 301, "segments before the checkpoint are purged");
    assert!(applier.stats().checkpoint_age.is_some());
    // Entries committed but not yet checkpointed.
    let last = append_n(&wal, 301, 50);
    applier.notify_committed(last);
    wait_applied(&store, 350);
    drop(applier);
    drop(store);
    drop(wal);

    let (wal, _) = open(&dir.path().join("wal"));
    let store = StateStore::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.checkpoint_index(), 300);
    let replayed = store.replay(&wal, wal.last_index(), &mut writes_of).unwrap();
    assert_eq!(replayed, 50);
    let (idx, _) = store.get(b"last").unwrap().unwrap();
    assert_eq!(idx, 350);
    // sled flushed these writes when it was dropped cleanly, so the replay
    // finds every key already at its entry's index and skips it.
    assert_eq!(store.stats(350).writes_skipped, 100);
}

#[test]
fn older_entries_never_overwrite_newer_keys_and_deletes_are_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let put = |k: &str, v: &str| KvWrite::Put { key: k.into(), value: v.into() };
    assert_eq!(store.apply(1, &[put("a", "1"), put("b", "1")]).unwrap().written, 2);
    assert!(matches!(store.apply(1, &[put("a", "x")]), Err(storage::StorageError::InvalidArgument(_))));
    assert_eq!(store.apply(2, &[KvWrite::Delete { key: b"a".to_vec() }]).unwrap().written, 1);
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(store.get(b"b").unwrap(), Some((1, b"1".to_vec())));
    assert_eq!(store.scan_prefix(b"", 10).unwrap(), vec![(b"b".to_vec(), b"1".to_vec())]);
    drop(store);
    // Reopen without a checkpoint: applied index falls back to 0 and an
    // old entry replayed again must not resurrect "a".
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.applied_index(), 0);
    let r = store.apply(1, &[put("a", "1"), put("b", "1")]).unwrap();
    assert_eq!((r.written, r.skipped), (0, 2));
    assert_eq!(store.get(b"a").unwrap(), None);
}
