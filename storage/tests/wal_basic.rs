//! Behaviour of the log API on a healthy disk.
mod common;
use common::*;
use futures::executor::block_on;
use storage::{Entry, StorageError, Wal, WalOptions, WalSync};

#[test]
fn append_read_reopen_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, rec) = open(dir.path());
    assert_eq!((rec.first_index, rec.last_index, rec.dropped_tail_bytes), (1, 0, 0));
    assert_eq!(append_n(&wal, 1, 300), 300);
    assert_eq!(wal.durable_index(), 300);
    let st = wal.stats();
    assert!(st.segments > 3, "small segments must roll: {}", st.segments);
    assert_eq!(st.appended_entries, 300);
    let got = wal.read(1..=300).unwrap();
    assert!(got.iter().enumerate().all(|(k, e)| e.index == k as u64 + 1 && e.payload == payload(e.index)));
    drop(wal);
    let (wal, rec) = open(dir.path());
    assert_eq!((rec.entries_replayed, rec.last_index, rec.dropped_tail_bytes), (300, 300, 0));
    assert_eq!(wal.read(150..=152).unwrap()[1].payload, payload(151));
    assert_eq!(append_n(&wal, 301, 1), 301);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path());
    assert!(matches!(Wal::open(dir.path(), small_opts()), Err(StorageError::Locked(_))));
    drop(wal);
    let (wal, _) = open(dir.path());
    assert_eq!(wal.last_index(), 0);
}

#[test]
fn rejects_bad_appends_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path());
    append_n(&wal, 1, 3);
    let gap = block_on(wal.append(vec![Entry::new(1, 9, b"x".to_vec())]).unwrap());
    assert!(matches!(gap, Err(StorageError::NonContiguous { expected: 4, got: 9 })));
    let term = block_on(wal.append(vec![Entry::new(0, 4, b"x".to_vec())]).unwrap());
    assert!(matches!(term, Err(StorageError::TermRegression { .. })));
    let big = wal.append(vec![Entry::new(1, 4, vec![0u8; 4096])]);
    assert!(matches!(big, Err(StorageError::EntryTooLarge { .. })));
    assert!(matches!(wal.read(0..=2), Err(StorageError::OutOfRange { .. })));
    assert!(matches!(wal.read(2..=4), Err(StorageError::OutOfRange { .. })));
    #[allow(clippy::reversed_empty_ranges)]
    let empty = wal.read(3..=2).unwrap();
    assert!(empty.is_empty());
    // The log is still usable after rejected requests.
    assert_eq!(append_n(&wal, 4, 1), 4);
}

#[test]
fn many_concurrent_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions { max_pending: 10_000, ..WalOptions::default() }).unwrap();
    // Queue 2000 single-entry appends before awaiting any: they must be
    // made durable by far fewer fsyncs than appends (group commit).
    let futs: Vec<_> = (1..=2000u64).map(|i| wal.append(vec![Entry::new(1, i, payload(i))]).unwrap()).collect();
    let acks: Vec<u64> = futs.into_iter().map(|f| block_on(f).unwrap()).collect();
    assert_eq!(acks, (1..=2000).collect::<Vec<_>>());
    let st = wal.stats();
    assert!(st.fsyncs < 2000 / 2, "fsyncs {} for 2000 appends", st.fsyncs);
    assert!(st.entries_per_fsync.max() > 1);
}

#[test]
fn full_queue_answers_backpressure_immediately() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions { max_pending: 2, ..WalOptions::default() }).unwrap();
    let mut futs = Vec::new();
    let mut rejected = 0;
    for i in 1..=200u64 {
        match wal.append(vec![Entry::new(1, i, payload(i))]) {
            Ok(f) => futs.push(f),
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                rejected += 1;
                break;
            }
        }
    }
    assert_eq!(rejected, 1, "a queue of 2 must fill under 200 instant appends");
    for f in futs {
        block_on(f).unwrap();
    }
    assert!(wal.stats().backpressure_rejections >= 1);
}

#[test]
fn truncate_purge_and_vote_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path());
    append_n(&wal, 1, 200);
    block_on(wal.truncate_after(150).unwrap()).unwrap();
    assert_eq!(wal.last_index(), 150);
    assert!(wal.read(151..=151).is_err());
    append_n(&wal, 151, 10);
    block_on(wal.purge_upto(100).unwrap()).unwrap();
    assert_eq!(wal.first_index(), 101);
    assert!(wal.stats().segments_deleted > 0);
    block_on(wal.save_vote(b"term=3;voted_for=2").unwrap()).unwrap();
    drop(wal);
    let (wal, rec) = open(dir.path());
    assert_eq!((wal.first_index(), wal.last_index(), rec.dropped_tail_bytes), (101, 160, 0));
    assert_eq!(wal.read_vote().as_deref(), Some(&b"term=3;voted_for=2"[..]));
    assert_eq!(wal.read(160..=160).unwrap()[0].payload, payload(160));
    // Purge beyond the end (snapshot newer than the log): log restarts after it.
    block_on(wal.purge_upto(500).unwrap()).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (501, 500));
    append_n(&wal, 501, 2);
    drop(wal);
    let (wal, _) = open(dir.path());
    assert_eq!((wal.first_index(), wal.last_index()), (501, 502));
}

/// `--wal-sync off`: the same write path without fdatasync. Nothing is
/// synced (the counter stays 0), every round is still counted, and what was
/// written is read back after a reopen (a clean close leaves it in the page
/// cache / on disk; only a power loss could lose it).
#[test]
fn sync_off_never_fsyncs_and_entries_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions { sync: WalSync::Off, ..small_opts() };
    let (wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    assert_eq!(wal.sync_mode(), WalSync::Off);
    // Enough to roll several small segments (segment creation is unsynced too).
    let pending: Vec<_> = (1..=200u64).map(|i| wal.append(vec![Entry::new(1, i, payload(i))]).unwrap()).collect();
    for p in pending {
        block_on(p).unwrap();
    }
    let st = wal.stats();
    assert_eq!(st.fsyncs, 0, "no fdatasync in off mode");
    assert_eq!(st.fsync_latency_us.len(), 0);
    assert!(st.sync_rounds > 0 && st.sync_rounds <= 200);
    assert_eq!((st.appended_entries, st.durable_index), (200, 200));
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!((rec.last_index, rec.dropped_tail_bytes), (200, 0));
    let back = wal.read(1..=200).unwrap();
    assert!(back.iter().all(|e| e.payload == payload(e.index)));
    assert_eq!("off".parse::<WalSync>().unwrap(), WalSync::Off);
    assert_eq!(" FSYNC ".parse::<WalSync>().unwrap(), WalSync::Fsync);
    assert!(matches!("none".parse::<WalSync>(), Err(StorageError::InvalidArgument(_))));
}
