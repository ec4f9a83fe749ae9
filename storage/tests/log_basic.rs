//! The v2 multi-group log on a healthy disk: the group API, group commit
//! across groups, segment collection, bounded waits.
mod logkit;
use logkit::*;

use std::time::{Duration, Instant};

use futures::executor::block_on;
use storage::log::{Log, LogOptions, WalSync};
use storage::{Entry, StorageError};

#[test]
fn groups_append_read_and_reopen_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (log, rec) = open(dir.path());
    assert_eq!((rec.first_seq, rec.last_seq, rec.groups), (1, 1, 0));
    let groups: Vec<_> = (0..4).map(|g| log.group(g).unwrap()).collect();
    for round in 0..30u64 {
        for g in &groups {
            // Index 0 is a real index: every group starts there.
            append_n(g, round * 5, 5);
        }
    }
    for g in &groups {
        assert_eq!(g.last_log_id(), Some(id(1, 149)));
        assert_eq!((g.first_index(), g.durable_index(), g.last_purged()), (0, Some(149), None));
        check_entries(g, 0, 149);
    }
    let st = log.stats();
    assert!(st.segments > 5, "small segments must roll: {st:?}");
    assert_eq!(st.appended_entries, 600);
    drop(groups);
    drop(log);
    let (log, rec) = open(dir.path());
    assert_eq!((rec.groups, rec.live_entries, rec.torn_tail), (4, 600, None));
    for g in 0..4 {
        let g = log.group(g).unwrap();
        assert_eq!(g.last_log_id(), Some(id(1, 149)));
        check_entries(&g, 0, 149);
        append_n(&g, 150, 1);
    }
}

#[test]
fn entries_are_readable_as_soon_as_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let g = log.group(7).unwrap();
    let fut = g.append(entries(7, 1, 0, 3)).unwrap();
    // Before the future resolved: readable, and the log id is visible.
    assert_eq!(g.read(0..=2).unwrap(), entries(7, 1, 0, 3));
    assert_eq!(g.last_log_id(), Some(id(1, 2)));
    assert_eq!(block_on(fut).unwrap(), 2);
    assert_eq!(g.durable_index(), Some(2));
}

#[test]
fn read_clamps_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let g = log.group(1).unwrap();
    assert!(g.read(0..100).unwrap().is_empty());
    append_n(&g, 10, 20);
    assert_eq!(g.read(0..).unwrap().len(), 20, "clamped to first..=last");
    assert_eq!(g.read(25..1000).unwrap().len(), 5, "a range past the end returns what is there");
    assert!(g.read(30..40).unwrap().is_empty());
    assert_eq!(g.read(12..14).unwrap().iter().map(|e| e.index).collect::<Vec<_>>(), vec![12, 13]);
    let capped = g.read_capped(10..30, 1).unwrap();
    assert_eq!(capped.len(), 1, "at least one entry, then the cap");
    let some = g.read_capped(10..30, 3 * 60).unwrap();
    assert!(some.len() > 1 && some.len() < 20 && some.iter().map(|e| e.payload.len()).sum::<usize>() >= 180);
}

#[test]
fn a_conflicting_append_replaces_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let g = log.group(3).unwrap();
    append_n(&g, 0, 10);
    // Term 2 replaces 6..=9 from index 6.
    let replaced: Vec<Entry> = (6..8).map(|i| Entry::new(2, i, format!("t2-{i}").into_bytes())).collect();
    block_on(g.append(replaced.clone()).unwrap()).unwrap();
    assert_eq!(g.last_log_id(), Some(id(2, 7)));
    assert_eq!(&g.read(6..).unwrap(), &replaced);
    check_entries(&g, 0, 5);
    // Terms never go back, indexes never skip, purged entries stay purged.
    assert!(matches!(g.append(vec![Entry::new(1, 8, b"x".to_vec())]), Err(StorageError::TermRegression { .. })));
    assert!(matches!(g.append(vec![Entry::new(2, 10, b"x".to_vec())]), Err(StorageError::NonContiguous { expected: 8, got: 10 })));
    block_on(g.purge_upto(id(1, 3)).unwrap()).unwrap();
    assert!(matches!(g.append(vec![Entry::new(3, 2, b"x".to_vec())]), Err(StorageError::InvalidArgument(_))));
    drop(g);
    drop(log);
    let (log, _) = open(dir.path());
    let g = log.group(3).unwrap();
    assert_eq!((g.first_index(), g.last_log_id(), g.last_purged()), (4, Some(id(2, 7)), Some(id(1, 3))));
    assert_eq!(&g.read(6..).unwrap(), &replaced);
    // Replace everything after the purge point.
    block_on(g.append(vec![Entry::new(5, 4, b"five".to_vec())]).unwrap()).unwrap();
    assert_eq!((g.first_index(), g.last_log_id()), (4, Some(id(5, 4))));
}

#[test]
fn truncate_purge_vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let a = log.group(1).unwrap();
    let b = log.group(2).unwrap();
    append_n(&a, 0, 100);
    append_n(&b, 0, 100);
    block_on(a.truncate_after(Some(80)).unwrap()).unwrap();
    assert_eq!(a.last_log_id(), Some(id(1, 80)));
    assert!(a.read(81..).unwrap().is_empty());
    block_on(a.purge_upto(id(1, 40)).unwrap()).unwrap();
    assert!(matches!(a.purge_upto(id(7, 50)), Err(StorageError::InvalidArgument(_))), "term must match the entry");
    block_on(b.truncate_after(None).unwrap()).unwrap();
    assert_eq!((b.last_log_id(), b.first_index()), (None, 0));
    block_on(a.save_vote(b"term=3;node=2").unwrap()).unwrap();
    block_on(a.save_committed(Some(id(1, 70))).unwrap()).unwrap();
    block_on(b.save_committed(None).unwrap()).unwrap();
    drop((a, b));
    drop(log);
    let (log, _) = open(dir.path());
    let a = log.group(1).unwrap();
    let b = log.group(2).unwrap();
    assert_eq!((a.first_index(), a.last_log_id(), a.last_purged()), (41, Some(id(1, 80)), Some(id(1, 40))));
    check_entries(&a, 41, 80);
    assert_eq!(a.read_vote().as_deref(), Some(&b"term=3;node=2"[..]));
    assert_eq!((a.read_committed(), b.read_committed()), (Some(id(1, 70)), None));
    assert_eq!(b.last_log_id(), None);
    // A truncated-to-nothing group starts again anywhere (index 0 included).
    append_n(&b, 0, 3);
    // Purge past the end (a snapshot newer than the log): the log continues after it.
    block_on(a.purge_upto(id(4, 500)).unwrap()).unwrap();
    assert_eq!((a.first_index(), a.last_log_id(), a.read(..).unwrap().len()), (501, Some(id(4, 500)), 0));
    assert!(matches!(a.append(vec![Entry::new(3, 501, b"x".to_vec())]), Err(StorageError::TermRegression { .. })));
    block_on(a.append(vec![Entry::new(4, 501, b"x".to_vec())]).unwrap()).unwrap();
    drop((a, b));
    drop(log);
    let (log, _) = open(dir.path());
    let a = log.group(1).unwrap();
    assert_eq!((a.first_index(), a.last_log_id(), a.last_purged()), (501, Some(id(4, 501)), Some(id(4, 500))));
    assert_eq!(log.group(2).unwrap().read(..).unwrap(), entries(2, 1, 0, 3));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    assert!(matches!(Log::open(dir.path(), small_opts()), Err(StorageError::Locked(_))));
    drop(log);
    open(dir.path());
}

/// One fdatasync covers every group's entries queued with it.
#[test]
fn many_groups_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions { max_pending: 10_000, ..LogOptions::default() }).unwrap();
    let groups: Vec<_> = (0..16).map(|g| log.group(g).unwrap()).collect();
    let mut futs = Vec::new();
    for i in 0..100u64 {
        for g in &groups {
            futs.push(g.append(vec![Entry::new(1, i, payload(g.id(), i))]).unwrap());
        }
    }
    for f in futs {
        block_on(f).unwrap();
    }
    let st = log.stats();
    assert_eq!(st.appended_entries, 1600);
    assert!(st.fsyncs < 1600 / 4, "fsyncs {} for 1600 appends over 16 groups", st.fsyncs);
    assert!(st.entries_per_fsync.max() > 16);
    for g in &groups {
        assert_eq!(g.durable_index(), Some(99));
    }
}

#[test]
fn full_queue_backpressure_and_bounded_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), LogOptions { max_pending: 2, ..LogOptions::default() }).unwrap();
    let g = log.group(0).unwrap();
    let mut futs = Vec::new();
    let mut next = 0u64;
    let mut refused = false;
    for _ in 0..500 {
        match g.append(vec![Entry::new(1, next, payload(0, next))]) {
            Ok(f) => {
                futs.push(f);
                next += 1;
            }
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "a queue of 2 must fill under instant appends");
    // The bounded wait queues it once the syncer makes room.
    let waited = g.append_within(vec![Entry::new(1, next, payload(0, next))], Instant::now() + Duration::from_secs(10));
    assert_eq!(block_on(waited).unwrap(), next);
    for f in futs {
        block_on(f).unwrap();
    }
    assert!(log.stats().backpressure_rejections >= 1);
    check_entries(&g, 0, next);
    // Control operations are admitted beyond the appends' bound.
    block_on(g.save_vote(b"v").unwrap()).unwrap();
}

/// A deadline that passes while the queue stays full answers Backpressure.
#[test]
fn bounded_wait_gives_up_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // Slow syncs (many tiny segments) keep a 1-slot queue full for a while.
    let (log, _) = Log::open(dir.path(), LogOptions { max_pending: 1, ..small_opts() }).unwrap();
    let g = log.group(0).unwrap();
    let mut next = 0u64;
    let mut futs = Vec::new();
    let mut saw_timeout = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) && !saw_timeout {
        match block_on(async {
            let f = g.append_within(vec![Entry::new(1, next, payload(0, next))], Instant::now());
            f.await
        }) {
            Ok(_) => next += 1,
            Err(e) => {
                assert!(matches!(e, StorageError::Backpressure { .. }), "{e}");
                saw_timeout = true;
            }
        }
        // Keep the queue busy with immediate appends.
        if let Ok(f) = g.append(vec![Entry::new(1, next, payload(0, next))]) {
            futs.push(f);
            next += 1;
        }
    }
    for f in futs {
        block_on(f).unwrap();
    }
    assert!(saw_timeout, "an already-passed deadline with a full queue must give up");
    check_entries(&g, 0, next - 1);
}

/// The oldest segment goes once no group has a live entry in it; the
/// groups that hold it are named.
#[test]
fn segments_are_collected_when_no_group_pins_them() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let a = log.group(1).unwrap();
    let b = log.group(2).unwrap();
    append_n(&b, 0, 5); // b pins the first segment
    for i in 0..40 {
        append_n(&a, i * 10, 10);
    }
    let st = log.stats();
    assert!(st.segments >= 4, "{st:?}");
    assert_eq!(st.first_seq, 1);
    assert_eq!(log.pinning_groups(), vec![1, 2]);
    block_on(a.purge_upto(id(1, 350)).unwrap()).unwrap();
    // a no longer pins the old segments but b still does.
    wait_until(|| log.pinning_groups() == vec![2]);
    assert_eq!(log.stats().first_seq, 1);
    block_on(b.purge_upto(id(1, 4)).unwrap()).unwrap();
    // Collection runs right after the round that made the purge durable.
    wait_until(|| log.stats().first_seq > 1);
    let st = log.stats();
    assert!(st.first_seq > 1 && st.segments_deleted > 0, "{st:?}");
    assert_eq!(segments(dir.path()).len(), st.segments);
    check_entries(&a, 351, 399);
    drop((a, b));
    drop(log);
    let (log, rec) = open(dir.path());
    assert_eq!(rec.first_seq, log.stats().first_seq);
    check_entries(&log.group(1).unwrap(), 351, 399);
    assert_eq!(log.group(2).unwrap().last_log_id(), Some(id(1, 4)));
}

#[test]
fn sync_off_never_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LogOptions { sync: WalSync::Off, ..small_opts() };
    let (log, _) = Log::open(dir.path(), opts.clone()).unwrap();
    let g = log.group(0).unwrap();
    append_n(&g, 0, 200);
    let st = log.stats();
    assert_eq!((st.fsyncs, st.appended_entries), (0, 200));
    drop(g);
    drop(log);
    let (log, _) = Log::open(dir.path(), opts).unwrap();
    check_entries(&log.group(0).unwrap(), 0, 199);
}

#[test]
fn bad_arguments_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = open(dir.path());
    let g = log.group(0).unwrap();
    assert!(matches!(g.append(vec![Entry::new(1, 0, vec![0u8; 4096])]), Err(StorageError::EntryTooLarge { .. })));
    assert!(matches!(g.save_vote(&[0u8; 4096]), Err(StorageError::EntryTooLarge { .. })));
    let gap = vec![Entry::new(1, 0, b"a".to_vec()), Entry::new(1, 2, b"b".to_vec())];
    assert!(matches!(g.append(gap), Err(StorageError::NonContiguous { expected: 1, got: 2 })));
    assert!(matches!(g.append(vec![]), Err(StorageError::InvalidArgument(_))));
    append_n(&g, 0, 3);
    assert_eq!(block_on(g.append(vec![]).unwrap()).unwrap(), 2);
    assert!(matches!(
        Log::open(&dir.path().join("x"), LogOptions { segment_bytes: 100, ..small_opts() }),
        Err(StorageError::InvalidArgument(_))
    ));
    // Too many groups for the segment's group state.
    let many: Result<Vec<_>, _> = (0..10_000).map(|i| log.group(i)).collect();
    assert!(matches!(many, Err(StorageError::InvalidArgument(_))));
}
