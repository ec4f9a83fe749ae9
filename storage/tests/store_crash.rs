//! Crash tests of the v2 store with real processes: the child aborts at
//! each step of a checkpoint (+ log purge and segment collection), in the
//! middle of an apply and of a snapshot install; the parent checks that
//! nothing acknowledged is lost and nothing is applied twice.
mod logkit;
use logkit::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use storage::log::LogOptions;
use storage::store::SnapshotRow;
use storage::FailPoint;

const CHILD_MODE: &str = "STORAGE_STORE_CRASH_CHILD";
const CHILD_DIR: &str = "STORAGE_STORE_CRASH_DIR";
const CHILD_ROUND: &str = "STORAGE_STORE_CRASH_ROUND";
const GROUPS: [u32; 3] = [0, 1, 2];

fn opts() -> LogOptions {
    LogOptions { segment_bytes: 4096, ..small_opts() }
}

/// Child side. Without the env var this is an (empty) ordinary test.
#[test]
fn store_crash_child() {
    let Ok(mode) = std::env::var(CHILD_MODE) else { return };
    assert_eq!(mode, "checkpoint");
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let round: u32 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    checkpoint_child(&dir, round);
}

/// Round 0: 200 entries per group applied + checkpoint + purge, then 100
/// more applied without a checkpoint. Round 1 (fail point armed): reopen,
/// replay, 100 more per group, apply, checkpoint + purge, then install a
/// snapshot into group 2 — the process aborts at the armed step.
fn checkpoint_child(dir: &Path, round: u32) {
    let (_log, store, parts) = open_node(&dir.join("log"), &dir.join("state"), opts(), &GROUPS).unwrap();
    for p in &parts {
        store.replay(p, p.group().last_index(), &mut writes_of).unwrap();
    }
    let apply_upto = |p: &storage::store::Partition, to: u64| {
        let from = p.applied().map_or(0, |a| a.index + 1);
        for e in p.group().read(from..=to).unwrap() {
            p.apply(id(e.term, e.index), &writes_of(p.id(), &e).unwrap()).unwrap();
        }
    };
    if round == 0 {
        for p in &parts {
            apply_upto(p, append_n(p.group(), 0, 200));
        }
        store.checkpoint_and_purge(0).unwrap();
        for p in &parts {
            apply_upto(p, append_n(p.group(), 200, 100));
        }
    } else {
        for p in &parts {
            let next = p.group().last_index().unwrap() + 1;
            apply_upto(p, append_n(p.group(), next, 100));
        }
        store.checkpoint_and_purge(0).unwrap();
        // Give collection a moment to run (its fail points fire on the syncer).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let p = &parts[2];
        let rows = vec![SnapshotRow { key: b"last".to_vec(), index: 9999, value: Some(vec![1]) }];
        store.install_snapshot(p, id(9, 9999), rows.into_iter().map(Ok)).unwrap();
    }
}

#[test]
fn crash_at_each_store_step_loses_nothing_and_applies_nothing_twice() {
    for point in FailPoint::STORE {
        let dir = tempfile::tempdir().unwrap();
        let run = |round: u32, fail: Option<FailPoint>| {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args(["store_crash_child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_MODE, "checkpoint")
                .env(CHILD_DIR, dir.path())
                .env(CHILD_ROUND, round.to_string())
                .env_remove(storage::failpoint::CRASH_ENV)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(f) = fail {
                c.env(storage::failpoint::CRASH_ENV, f.name());
            }
            c.status().unwrap()
        };
        assert!(run(0, None).success(), "{}: setup run failed", point.name());
        let status = run(1, Some(point));
        assert!(!status.success(), "{}: child should have aborted", point.name());

        let (_log, store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), opts(), &GROUPS)
            .unwrap_or_else(|e| panic!("{}: reopen refused: {e}", point.name()));
        // Every appended entry survived (each was acknowledged before the
        // crash). Mid-apply fires already while round 1 replays 200..=299.
        let last = if point == FailPoint::MidApply { 299 } else { 399 };
        for p in &parts {
            assert_eq!(p.group().last_index(), Some(last), "{}: group {}", point.name(), p.id());
            let checkpoint = p.checkpointed().expect("round 0 checkpointed").index;
            assert!(checkpoint >= 199, "{}: phase-0 checkpoint lost", point.name());
            assert!(p.group().first_index() <= checkpoint + 1, "{}: log purged past the checkpoint", point.name());
            let calls = Arc::new(AtomicU64::new(0));
            let c2 = calls.clone();
            let mut counting = move |g: u32, e: &storage::Entry| {
                c2.fetch_add(1, Ordering::Relaxed);
                writes_of(g, e)
            };
            let replayed = store.replay(p, p.group().last_index(), &mut counting).unwrap();
            // Replay starts right after the durable checkpoint.
            assert_eq!(replayed, last - checkpoint, "{}: group {}", point.name(), p.id());
            assert_eq!(calls.load(Ordering::Relaxed), replayed);
            check_state(p, 0, last, point.name());
        }
        // A second restart replays the same suffix and changes nothing.
        drop(parts);
        drop(store);
        drop(_log);
        let (_log, store, parts) = open_node(&dir.path().join("log"), &dir.path().join("state"), opts(), &GROUPS).unwrap();
        for p in &parts {
            store.replay(p, p.group().last_index(), &mut writes_of).unwrap();
            check_state(p, 0, last, &format!("{} (second restart)", point.name()));
        }
    }
}
