//! The v2 state store: per-partition apply, checkpoints per log, replay up
//! to a given (committed) index, snapshots, and refusals of damaged state.
mod logkit;
use logkit::*;

use std::fs;
use std::time::Duration;

use futures::executor::block_on;
use storage::log::{Log, LogId, LogOptions};
use storage::store::{ApplierOptions, KvWrite, LogApplier, SnapshotRow, Store, StoreOptions};
use storage::{Entry, StorageError};

const GROUPS: [u32; 4] = [0, 1, 2, 3];

fn wait_applied(p: &storage::store::Partition, index: u64) {
    wait_until(|| p.applied().is_some_and(|a| a.index >= index));
}

#[test]
fn applier_applies_checkpoints_purges_and_a_restart_replays_the_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let (log_dir, state_dir) = (dir.path().join("log-0"), dir.path().join("state"));
    let (log, store, parts) = open_node(&log_dir, &state_dir, small_opts(), &GROUPS).unwrap();
    for p in &parts {
        assert_eq!(store.replay(p, None, &mut writes_of).unwrap(), 0);
    }
    let opts = ApplierOptions { checkpoint_every_entries: u64::MAX, checkpoint_every: Duration::from_secs(3600), ..Default::default() };
    let applier = LogApplier::spawn(store.clone(), 0, writes_of, opts).unwrap();
    for p in &parts {
        let last = append_n(p.group(), 0, 120);
        applier.notify_committed(p.id(), last);
    }
    for p in &parts {
        wait_applied(p, 119);
        check_state(p, 0, 119, "applied");
    }
    let report = block_on(applier.checkpoint().unwrap()).unwrap();
    assert!(report.written);
    assert_eq!(report.groups, GROUPS.iter().map(|&g| (g, Some(id(1, 119)))).collect::<Vec<_>>());
    for p in &parts {
        assert_eq!(p.checkpointed(), Some(id(1, 119)));
        assert_eq!(p.group().last_purged(), Some(id(1, 119)), "purged up to the checkpoint");
        assert_eq!(p.pending_tombstones(), 0, "tombstones covered by the checkpoint are compacted");
    }
    wait_until(|| log.stats().first_seq > 1);
    // Committed but not checkpointed.
    for p in &parts {
        applier.notify_committed(p.id(), append_n(p.group(), 120, 30));
    }
    for p in &parts {
        wait_applied(p, 149);
    }
    assert_eq!(store.checkpoint_stats(0).checkpoints, 1);
    drop(applier);
    drop(parts);
    drop(store);
    drop(log);

    let (_log, store, parts) = open_node(&log_dir, &state_dir, small_opts(), &GROUPS).unwrap();
    for p in &parts {
        assert_eq!(p.checkpointed(), Some(id(1, 119)));
        let last = p.group().last_index();
        assert_eq!(store.replay(p, last, &mut writes_of).unwrap(), 30, "only the suffix after the checkpoint");
        check_state(p, 0, 149, "after restart");
    }
}

/// Under Raft an uncommitted tail can be replaced at the same index; replay
/// stops at the committed index, so the replacement is applied correctly.
#[test]
fn replay_stops_at_committed_and_a_replaced_tail_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (log_dir, state_dir) = (dir.path().join("log"), dir.path().join("state"));
    {
        let (_log, store, parts) = open_node(&log_dir, &state_dir, small_opts(), &[5]).unwrap();
        let p = &parts[0];
        store.replay(p, None, &mut writes_of).unwrap();
        append_n(p.group(), 0, 20);
        block_on(p.group().save_committed(Some(id(1, 14))).unwrap()).unwrap();
        let upto = p.group().read_committed().map(|c| c.index);
        store.apply_committed_for_test(p, upto);
        store.checkpoint(0).unwrap();
    }
    let (_log, store, parts) = open_node(&log_dir, &state_dir, small_opts(), &[5]).unwrap();
    let p = &parts[0];
    let committed = p.group().read_committed().map(|c| c.index);
    assert_eq!(store.replay(p, committed, &mut writes_of).unwrap(), 0);
    assert_eq!(p.applied(), Some(id(1, 14)));
    // A new leader replaces 15..=19 with term 2 entries that write other values.
    let new: Vec<Entry> = (15..18).map(|i| Entry::new(2, i, vec![])).collect();
    block_on(p.group().append(new).unwrap()).unwrap();
    let mut rule = |_g: u32, e: &Entry| -> Result<Vec<KvWrite>, StorageError> {
        if e.term == 2 {
            Ok(vec![KvWrite::Put { key: b"last".to_vec(), value: b"term2".to_vec() }])
        } else {
            writes_of(0, e)
        }
    };
    store.replay(p, Some(17), &mut rule).unwrap();
    assert_eq!(p.get(b"last").unwrap(), Some((17, b"term2".to_vec())), "the replacing entry is applied, not skipped");
}

trait TestHelpers {
    fn apply_committed_for_test(&self, p: &storage::store::Partition, upto: Option<u64>);
}

impl TestHelpers for Store {
    fn apply_committed_for_test(&self, p: &storage::store::Partition, upto: Option<u64>) {
        let from = p.applied().map_or(p.group().first_index(), |a| a.index + 1);
        for e in p.group().read(from..=upto.unwrap()).unwrap() {
            p.apply(LogId::new(e.term, e.index), &writes_of(p.id(), &e).unwrap()).unwrap();
        }
    }
}

#[test]
fn partitions_are_isolated_and_keep_the_idempotent_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), small_opts(), &[1, 2]).unwrap();
    let put = |k: &str, v: &str| KvWrite::Put { key: k.into(), value: v.into() };
    let (a, b) = (&parts[0], &parts[1]);
    a.apply(id(1, 0), &[put("k", "a0")]).unwrap();
    b.apply(id(1, 0), &[put("k", "b0"), put("only-b", "x")]).unwrap();
    assert_eq!(a.get(b"k").unwrap(), Some((0, b"a0".to_vec())));
    assert_eq!(b.get(b"k").unwrap(), Some((0, b"b0".to_vec())));
    assert_eq!(a.get(b"only-b").unwrap(), None);
    assert!(matches!(a.apply(id(1, 0), &[put("k", "x")]), Err(StorageError::InvalidArgument(_))));
    a.apply(id(1, 1), &[KvWrite::Delete { key: b"k".to_vec() }]).unwrap();
    a.apply(id(1, 2), &[put("z", "2")]).unwrap();
    assert_eq!((a.get(b"k").unwrap(), a.pending_tombstones()), (None, 1));
    store.checkpoint(0).unwrap();
    assert_eq!((a.stored_keys(), a.pending_tombstones()), (1, 0), "the tombstone is compacted");
    drop(parts);
    drop(store);
    drop(_log);
    // Reopen without replay bookkeeping: old entries never overwrite newer keys.
    let (_log, _store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), small_opts(), &[1, 2]).unwrap();
    let b = &parts[1];
    assert_eq!(b.applied(), Some(id(1, 0)));
    b.apply(id(1, 1), &[put("k", "b1")]).unwrap();
    assert_eq!(b.get(b"k").unwrap(), Some((1, b"b1".to_vec())));
    let mut seen = Vec::new();
    b.visit_prefix(b"", false, |v| {
        seen.push(v.key.to_vec());
        true
    })
    .unwrap();
    assert_eq!(seen, vec![b"k".to_vec(), b"only-b".to_vec()]);
    assert_eq!(b.forget(&[b"only-b".to_vec()]).unwrap(), 1);
    assert_eq!(b.scan_prefix(b"", 10).unwrap(), vec![(b"k".to_vec(), b"b1".to_vec())]);
}

#[test]
fn snapshot_in_chunks_and_install_durably() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), small_opts(), &[1, 2]).unwrap();
    let (src, dst) = (&parts[0], &parts[1]);
    for i in 0..300u64 {
        src.apply(id(2, i), &writes_of(1, &Entry::new(2, i, vec![])).unwrap()).unwrap();
    }
    for i in 300..600u64 {
        src.apply(id(2, i), &[KvWrite::Put { key: format!("bulk-{i:04}").into_bytes(), value: vec![i as u8; 200] }]).unwrap();
    }
    let mut snap = src.snapshot();
    let applied = snap.applied().unwrap();
    let mut rows: Vec<SnapshotRow> = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = snap.next_chunk(1024).unwrap() {
        assert!(!chunk.is_empty());
        chunks += 1;
        rows.extend(chunk);
    }
    assert!(chunks > 1, "bounded chunks");
    assert!(rows.windows(2).all(|w| w[0].key < w[1].key), "ordered");
    assert!(rows.iter().any(|r| r.value.is_none()), "tombstones included");
    drop(snap);
    // The destination had its own data, all replaced.
    dst.apply(id(1, 0), &[KvWrite::Put { key: b"old".to_vec(), value: b"x".to_vec() }]).unwrap();
    store.install_snapshot(dst, applied, rows.clone().into_iter().map(Ok)).unwrap();
    assert_eq!(dst.applied(), Some(applied));
    assert_eq!(dst.checkpointed(), Some(applied), "durable before it returns");
    assert_eq!(dst.get(b"old").unwrap(), None);
    // The install's checkpoint covers every row, so its tombstones are compacted.
    let live: Vec<SnapshotRow> = rows.iter().filter(|r| r.value.is_some()).cloned().collect();
    let back: Vec<SnapshotRow> = dst.snapshot().map(|r| r.unwrap()).collect();
    assert_eq!(back, live);
    assert_eq!(dst.pending_tombstones(), 0);
    assert!(matches!(store.install_snapshot(dst, id(1, 0), std::iter::empty()), Err(StorageError::InvalidArgument(_))), "older snapshot");
    drop(parts);
    drop(store);
    drop(_log);
    let (_log, store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), small_opts(), &[1, 2]).unwrap();
    let dst = &parts[1];
    assert_eq!(dst.applied(), Some(applied));
    let back: Vec<SnapshotRow> = dst.snapshot().map(|r| r.unwrap()).collect();
    assert_eq!(back, live, "the installed generation survives a restart");
    assert_eq!(store.checkpoint_stats(0).checkpoints, 0, "nothing new to checkpoint yet");
}

#[test]
fn the_applier_installs_snapshots_between_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), small_opts(), &[4]).unwrap();
    let p = &parts[0];
    let applier = LogApplier::spawn(store.clone(), 0, writes_of, ApplierOptions { purge_log: false, ..Default::default() }).unwrap();
    applier.notify_committed(4, append_n(p.group(), 0, 10));
    wait_applied(p, 9);
    let rows = vec![SnapshotRow { key: b"last".to_vec(), index: 500, value: Some(500u64.to_le_bytes().to_vec()) }];
    block_on(p.group().purge_upto(id(3, 500)).unwrap()).unwrap();
    block_on(applier.install_snapshot(4, id(3, 500), rows).unwrap()).unwrap();
    assert_eq!(p.applied(), Some(id(3, 500)));
    // Entries after the snapshot apply on top of it.
    block_on(p.group().append(vec![Entry::new(3, 501, vec![])]).unwrap()).unwrap();
    applier.notify_committed(4, 501);
    wait_applied(p, 501);
    assert_eq!(p.get(b"last").unwrap(), Some((501, 501u64.to_le_bytes().to_vec())));
    assert_eq!(p.stats().snapshots_installed, 1);
}

// ---- refusals ----

fn checkpointed_node(dir: &std::path::Path) {
    let (_log, store, parts) = open_node(&dir.join("log"), &dir.join("state"), small_opts(), &GROUPS).unwrap();
    for p in &parts {
        store.replay(p, None, &mut writes_of).unwrap();
        append_n(p.group(), 0, 200);
        store.apply_committed_for_test(p, Some(199));
    }
    store.checkpoint_and_purge(0).unwrap();
    for p in &parts {
        append_n(p.group(), 200, 10);
    }
}

#[test]
fn garbage_in_sled_files_is_a_one_line_error_naming_the_path() {
    let src = tempfile::tempdir().unwrap();
    checkpointed_node(src.path());
    let sled = src.path().join("state/sled");
    let files: Vec<_> = fs::read_dir(&sled).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    assert!(files.iter().any(|p| p.ends_with("db")) && files.iter().any(|p| p.ends_with("conf")));
    for victim in ["conf", "db"] {
        for how in ["garbage", "zeros", "truncate"] {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(src.path(), copy.path());
            let f = copy.path().join("state/sled").join(victim);
            let len = fs::metadata(&f).unwrap().len() as usize;
            match how {
                "garbage" => fs::write(&f, (0..len).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>()).unwrap(),
                "zeros" => fs::write(&f, vec![0u8; len]).unwrap(),
                _ => fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(len as u64 / 3).unwrap(),
            }
            let err = match open_node(&copy.path().join("log"), &copy.path().join("state"), small_opts(), &GROUPS) {
                Ok(_) => panic!("{victim} {how}: damaged sled opened"),
                Err(e) => e,
            };
            let msg = err.to_string();
            assert!(matches!(err, StorageError::StateStore { .. }), "{victim} {how}: {msg}");
            assert!(!msg.contains('\n') && msg.contains(&copy.path().join("state/sled").display().to_string()), "{victim} {how}: {msg}");
        }
    }
}

#[test]
fn a_damaged_checkpoint_file_is_refused() {
    let src = tempfile::tempdir().unwrap();
    checkpointed_node(src.path());
    let f = src.path().join("state/checkpoint-0000");
    let before = snapshot_dir(&src.path().join("state"));
    flip(&f, 20);
    let err = Store::open(&src.path().join("state"), store_opts()).err().expect("refused");
    assert!(matches!(&err, StorageError::Damaged { path, offset: 0, .. } if path == &f), "{err}");
    let mut after = snapshot_dir(&src.path().join("state"));
    after.remove(std::path::Path::new("checkpoint-0000"));
    let mut b2 = before.clone();
    b2.remove(std::path::Path::new("checkpoint-0000"));
    assert_eq!(b2.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
}

/// A checkpoint at 199 with the log then purged to 205 outside the store:
/// entries 200..=205 were never applied — refused, not skipped.
#[test]
fn a_gap_between_the_checkpoint_and_the_log_is_refused() {
    let src = tempfile::tempdir().unwrap();
    checkpointed_node(src.path());
    {
        let (log, _) = Log::open(&src.path().join("log"), small_opts()).unwrap();
        block_on(log.group(2).unwrap().purge_upto(id(1, 205)).unwrap()).unwrap();
    }
    let (_log, store, parts) = open_node(&src.path().join("log"), &src.path().join("state"), small_opts(), &GROUPS).unwrap();
    let p = &parts[2];
    let err = store.replay(p, p.group().last_index(), &mut writes_of).unwrap_err();
    assert!(matches!(err, StorageError::Missing { .. }) && err.to_string().contains("gone"), "{err}");
    // The other partitions are fine.
    store.replay(&parts[1], parts[1].group().last_index(), &mut writes_of).unwrap();
    check_state(&parts[1], 0, 209, "healthy partition");
}

/// The log replaced by an older copy: fewer segments than the checkpoint
/// saw, and entries the checkpoint covers are gone.
#[test]
fn a_log_older_than_the_checkpoint_is_refused() {
    let src = tempfile::tempdir().unwrap();
    let old_log = tempfile::tempdir().unwrap();
    {
        let (log, _) = Log::open(&src.path().join("log"), small_opts()).unwrap();
        append_n(&log.group(0).unwrap(), 0, 3);
    }
    copy_dir(&src.path().join("log"), old_log.path());
    checkpointed_node(src.path());
    fs::remove_dir_all(src.path().join("log")).unwrap();
    copy_dir(old_log.path(), &src.path().join("log"));
    let err = match open_node(&src.path().join("log"), &src.path().join("state"), small_opts(), &GROUPS) {
        Ok(_) => panic!("older log accepted"),
        Err(e) => e,
    };
    assert!(matches!(err, StorageError::Missing { .. }), "{err}");
    // An empty new log is refused as well.
    fs::remove_dir_all(src.path().join("log")).unwrap();
    let err = match open_node(&src.path().join("log"), &src.path().join("state"), small_opts(), &GROUPS) {
        Ok((_l, store, parts)) => store.replay(&parts[0], None, &mut writes_of).unwrap_err(),
        Err(e) => e,
    };
    assert!(matches!(err, StorageError::Missing { .. }), "{err}");
}

#[test]
fn store_options_and_misuse() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(&dir.path().join("log"), LogOptions::default()).unwrap();
    let store = Store::open(&dir.path().join("state"), StoreOptions { cache_bytes: 1 << 20, ..Default::default() }).unwrap();
    assert!(matches!(store.partition(0, 1), Err(StorageError::InvalidArgument(_))), "log not attached");
    store.attach_log(0, log.clone()).unwrap();
    assert!(matches!(store.attach_log(0, log.clone()), Err(StorageError::InvalidArgument(_))));
    let p = store.partition(0, 1).unwrap();
    let (log1, _) = Log::open(&dir.path().join("log1"), LogOptions::default()).unwrap();
    store.attach_log(1, log1).unwrap();
    assert!(matches!(store.partition(1, 1), Err(StorageError::InvalidArgument(_))), "a partition lives in one log");
    assert!(!store.checkpoint(0).unwrap().written || p.applied().is_some());
}

/// The applier runs `Apply::maintain` after each checkpoint (with the store
/// and its log number) and checkpoints by itself after enough entries.
#[test]
fn the_applier_maintains_and_checkpoints_periodically() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    struct Counting(Arc<AtomicU64>);
    impl storage::store::Apply for Counting {
        fn writes(&mut self, g: u32, e: &Entry) -> Result<Vec<KvWrite>, StorageError> {
            writes_of(g, e)
        }
        fn maintain(&mut self, store: &Store, log_no: u32) -> Result<(), StorageError> {
            assert_eq!(log_no, 0);
            assert!(store.partitions_of(0).iter().all(|p| p.checkpointed().is_some()));
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (_log, store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), small_opts(), &[0, 1]).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let opts = ApplierOptions { checkpoint_every_entries: 50, maintain_every: Duration::from_secs(3600), ..Default::default() };
    let applier = LogApplier::spawn(store.clone(), 0, Counting(calls.clone()), opts).unwrap();
    for p in &parts {
        applier.notify_committed(p.id(), append_n(p.group(), 0, 40));
    }
    // 80 entries applied >= 50: a checkpoint of its own, then a sweep.
    wait_until(|| store.checkpoint_stats(0).checkpoints >= 1);
    wait_until(|| calls.load(Ordering::SeqCst) >= 1);
    for p in &parts {
        assert_eq!(p.checkpointed(), Some(id(1, 39)));
        assert_eq!(p.group().last_purged(), Some(id(1, 39)));
        assert_eq!(p.stats().apply_lag, 0);
    }
    assert!(store.checkpoint_stats(0).age.is_some());
}
