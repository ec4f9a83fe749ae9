//! The write-behind path of the v2 store: batched apply (same outcome as
//! entry-by-entry apply, fresh or replayed, with evictions) and the
//! per-log writer thread (queue, barrier, checkpoints reported, restart
//! from the checkpoint).
mod logkit;
use logkit::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::executor::block_on;
use proptest::prelude::*;
use storage::log::LogId;
use storage::store::{BatchWriter, KvWrite, Partition, WriterOptions};

fn rows(p: &Partition) -> Vec<(Vec<u8>, u64, Option<Vec<u8>>)> {
    p.snapshot().map(|r| r.unwrap()).map(|r| (r.key, r.index, r.value)).collect()
}

fn write_strategy() -> impl Strategy<Value = KvWrite> {
    let key = (0u8..6).prop_map(|k| vec![b'k', k]);
    prop_oneof![
        (key.clone(), any::<u8>()).prop_map(|(key, v)| KvWrite::Put { key, value: vec![v] }),
        key.clone().prop_map(|key| KvWrite::Delete { key }),
        (key, 0u64..40).prop_map(|(key, written_by)| KvWrite::Evict { key, written_by }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// `apply_batch` of any run of entries (any split into batches, a
    /// replay of an applied prefix included) leaves the rows entry-by-entry
    /// `apply` leaves.
    #[test]
    fn batched_apply_equals_apply_one_by_one(
        writes in prop::collection::vec(prop::collection::vec(write_strategy(), 0..4), 1..40),
        cut in any::<prop::sample::Index>(),
        replay_from in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (log, store, parts) = open_node(&dir.path().join("log-0"), &dir.path().join("state"), small_opts(), &[0, 1]).unwrap();
        let (one, many) = (&parts[0], &parts[1]);
        for p in &parts {
            store.replay(p, None, &mut writes_of).unwrap();
        }
        let entries: Vec<(LogId, Vec<KvWrite>)> = writes.iter().enumerate().map(|(i, w)| (id(1, i as u64 + 1), w.clone())).collect();
        for (lid, w) in &entries {
            one.apply(*lid, w).unwrap();
        }
        let k = cut.index(entries.len() + 1);
        many.apply_batch(&entries[..k]).unwrap();
        many.apply_batch(&entries[k..]).unwrap();
        prop_assert_eq!(rows(one), rows(many));
        prop_assert_eq!(many.applied(), Some(id(1, entries.len() as u64)));
        drop((log, store, parts));
        // After a restart with nothing checkpointed, the whole log is replayed
        // onto a store that may hold any of it: a batch from any point converges.
        let (_log, store, parts) = open_node(&dir.path().join("log-0"), &dir.path().join("state"), small_opts(), &[0, 1]).unwrap();
        for p in &parts {
            store.replay(p, None, &mut writes_of).unwrap();
        }
        for (lid, w) in &entries {
            parts[0].apply(*lid, w).unwrap();
        }
        let r = replay_from.index(entries.len());
        parts[1].apply_batch(&entries[..r]).unwrap();
        parts[1].apply_batch(&entries[r..]).unwrap();
        prop_assert_eq!(rows(&parts[0]), rows(&parts[1]));
    }
}

#[test]
fn batches_refuse_entries_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, store, parts) = open_node(&dir.path().join("log-0"), &dir.path().join("state"), small_opts(), &[0]).unwrap();
    store.replay(&parts[0], None, &mut writes_of).unwrap();
    let put = |k: &str| vec![KvWrite::Put { key: k.as_bytes().to_vec(), value: vec![1] }];
    parts[0].apply_batch(&[(id(1, 1), put("a")), (id(1, 2), put("b"))]).unwrap();
    assert!(parts[0].apply_batch(&[(id(1, 2), put("c"))]).is_err(), "at or below the applied index");
    assert!(parts[0].apply_batch(&[(id(1, 4), put("c")), (id(1, 3), put("d"))]).is_err(), "decreasing inside a batch");
    assert_eq!(parts[0].get(b"c").unwrap(), None, "a refused batch writes nothing");
    assert_eq!(parts[0].applied(), Some(id(1, 2)));
}

/// The writer applies what it is pushed (several partitions, interleaved),
/// a barrier waits for it, a checkpoint is reported to the callback with
/// each partition's applied log id, and a restart opens each partition at
/// its checkpoint with the rows it had then.
#[test]
fn writer_applies_in_batches_checkpoints_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (log_dir, state_dir) = (dir.path().join("log-0"), dir.path().join("state"));
    let (log, store, parts) = open_node(&log_dir, &state_dir, small_opts(), &[0, 1, 2]).unwrap();
    for p in &parts {
        store.replay(p, None, &mut writes_of).unwrap();
    }
    type Reports = Arc<Mutex<Vec<Vec<(u32, Option<LogId>)>>>>;
    let reports: Reports = Arc::default();
    let seen = reports.clone();
    let opts = WriterOptions { queue: 4, checkpoint_every_entries: u64::MAX, checkpoint_every: Duration::from_secs(3600) };
    let writer = BatchWriter::spawn(store.clone(), 0, opts, Box::new(move |r| seen.lock().unwrap().push(r.groups.clone()))).unwrap();
    let entry = |i: u64| {
        let e = storage::Entry::new(1, i, Vec::new());
        (id(1, i), writes_of(0, &e).unwrap())
    };
    for chunk in 0..20u64 {
        for p in &parts {
            // Each push: 5 entries; the queue (4) fills, so pushes wait.
            writer.apply_blocking(p, (chunk * 5..chunk * 5 + 5).map(entry).collect()).unwrap();
        }
    }
    block_on(writer.barrier()).unwrap();
    for p in &parts {
        check_state(p, 0, 99, "written behind");
    }
    let report = block_on(writer.checkpoint()).unwrap();
    assert!(report.written);
    assert_eq!(reports.lock().unwrap().last().unwrap(), &vec![(0, Some(id(1, 99))), (1, Some(id(1, 99))), (2, Some(id(1, 99)))]);
    // Applied after the checkpoint: not durable, gone after the restart (the
    // log would replay it).
    writer.apply_blocking(&parts[0], (100..110).map(entry).collect()).unwrap();
    block_on(writer.barrier()).unwrap();
    assert_eq!(parts[0].applied(), Some(id(1, 109)));
    assert_eq!(writer.failure(), None);
    drop(writer);
    drop((parts, store, log));
    let (_log, store, parts) = open_node(&log_dir, &state_dir, small_opts(), &[0, 1, 2]).unwrap();
    for p in &parts {
        assert_eq!(p.applied(), Some(id(1, 99)), "partition {} opens at its checkpoint", p.id());
    }
    assert_eq!(store.checkpointed_logs(), vec![0]);
}
