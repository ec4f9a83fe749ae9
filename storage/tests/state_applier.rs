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
    let opts = ApplierOptions {
        checkpoint_every_entries: 1_000_000,
        checkpoint_every: Duration::from_secs(3600),
        purge_log: true,
        ..ApplierOptions::default()
    };
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
    assert_eq!(store.stats(350).writes_skipped, 150);
}

#[test]
fn checkpoints_compact_the_tombstones_they_cover() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let put = |k: &str| KvWrite::Put { key: k.into(), value: b"v".to_vec() };
    let del = |k: &str| KvWrite::Delete { key: k.as_bytes().to_vec() };
    store.apply(1, &[put("a"), put("b")]).unwrap();
    store.apply(2, &[del("a"), del("never-written")]).unwrap();
    store.apply(3, &[del("b")]).unwrap();
    store.apply(4, &[put("b")]).unwrap(); // b's tombstone replaced by a value
    assert_eq!((store.stored_keys(), store.pending_tombstones()), (3, 3));
    assert_eq!(store.checkpoint().unwrap(), 4);
    // a and never-written are gone for good; b's row is dropped, its value kept.
    assert_eq!((store.stored_keys(), store.pending_tombstones()), (1, 0));
    assert_eq!(store.stats(4).tombstones_compacted, 2);
    assert_eq!(store.get(b"b").unwrap(), Some((4, b"v".to_vec())));
    // A tombstone above the checkpoint stays until the next one covers it.
    store.apply(5, &[del("b")]).unwrap();
    store.apply(6, &[put("c")]).unwrap();
    assert_eq!(store.pending_tombstones(), 1);
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    assert_eq!(store.checkpoint_index(), 4);
    assert_eq!(store.pending_tombstones(), 1, "index rows are state too");
    assert_eq!(store.checkpoint().unwrap(), 4, "nothing applied since the reopen");
    store.apply(5, &[del("b")]).unwrap(); // the replay of entry 5
    assert_eq!(store.checkpoint().unwrap(), 5);
    assert_eq!((store.get(b"b").unwrap(), store.pending_tombstones()), (None, 0));
}

#[test]
fn evict_removes_only_the_value_it_was_decided_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let put = |k: &str, v: &str| KvWrite::Put { key: k.into(), value: v.into() };
    let evict = |k: &str, by: u64| KvWrite::Evict { key: k.as_bytes().to_vec(), written_by: by };
    store.apply(1, &[put("old", "1"), put("fresh", "1")]).unwrap();
    store.apply(2, &[put("fresh", "2")]).unwrap(); // rewritten after the eviction was decided
    let r = store.apply(3, &[evict("old", 1), evict("fresh", 1), evict("absent", 1)]).unwrap();
    assert_eq!((r.written, r.skipped), (1, 2));
    assert_eq!(store.get(b"old").unwrap(), None);
    assert_eq!(store.get(b"fresh").unwrap(), Some((2, b"2".to_vec())));
    assert_eq!(store.pending_tombstones(), 1, "no tombstone for an absent key");
    // Replayed over a state that already has it: nothing changes.
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    store.apply(1, &[put("old", "1"), put("fresh", "1")]).unwrap();
    store.apply(2, &[put("fresh", "2")]).unwrap();
    store.apply(3, &[evict("old", 1), evict("fresh", 1)]).unwrap();
    assert_eq!(store.get(b"old").unwrap(), None);
    assert_eq!(store.get(b"fresh").unwrap(), Some((2, b"2".to_vec())));
}

#[test]
fn visit_and_forget() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let put = |k: &str| KvWrite::Put { key: k.into(), value: k.into() };
    store.apply(1, &[put("t/1"), put("t/2"), put("t/3"), put("u/1")]).unwrap();
    store.apply(2, &[KvWrite::Delete { key: b"t/2".to_vec() }]).unwrap();
    let mut seen = Vec::new();
    store
        .visit_prefix(b"t/", true, |v| {
            seen.push((v.key.to_vec(), v.index, v.value.to_vec()));
            true
        })
        .unwrap();
    assert_eq!(seen, vec![(b"t/3".to_vec(), 1, b"t/3".to_vec()), (b"t/1".to_vec(), 1, b"t/1".to_vec())], "live only, reversed");
    let mut first = None;
    store
        .visit_prefix(b"t/", false, |v| {
            first = Some(v.key.to_vec());
            false
        })
        .unwrap();
    assert_eq!(first.as_deref(), Some(&b"t/1"[..]));
    assert_eq!(store.forget(&[b"t/1".to_vec(), b"nope".to_vec()]).unwrap(), 1);
    assert_eq!(store.get(b"t/1").unwrap(), None);
    assert_eq!(store.stats(2).forgotten, 1);
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

/// The applier calls `ApplyEntry::maintain` after a checkpoint (and on its
/// own every `maintain_every`), on its thread, with the store.
#[test]
fn maintain_runs_after_checkpoints() {
    use std::sync::atomic::{AtomicU64, Ordering};
    struct Counting(Arc<AtomicU64>);
    impl storage::ApplyEntry for Counting {
        fn writes(&mut self, e: &storage::Entry) -> Result<Vec<KvWrite>, storage::StorageError> {
            writes_of(e)
        }
        fn maintain(&mut self, store: &StateStore) -> Result<(), storage::StorageError> {
            // What a sweep sees: everything applied up to the checkpoint.
            assert!(store.applied_index() >= 10);
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(&dir.path().join("wal"));
    let store = Arc::new(StateStore::open(&dir.path().join("state")).unwrap());
    let calls = Arc::new(AtomicU64::new(0));
    let opts = ApplierOptions { maintain_every: Duration::from_secs(3600), ..ApplierOptions::default() };
    let applier = Applier::spawn(store.clone(), wal.clone(), Counting(calls.clone()), opts, 0).unwrap();
    applier.notify_committed(append_n(&wal, 1, 10));
    assert_eq!(futures::executor::block_on(applier.checkpoint().unwrap()).unwrap(), 10);
    for _ in 0..2000 {
        if calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one checkpoint, one sweep (the periodic one is an hour away)");
}
