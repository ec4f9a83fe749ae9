//! Crash tests with real processes. The test binary re-executes itself as a
//! child (`crash_child`, selected by env vars) that writes to the log; the
//! parent SIGKILLs it at a random moment, or the child aborts itself at a
//! named fail point, and the parent checks the recovered state.
mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::Rng;
use storage::{FailPoint, StateStore};

const CHILD_MODE: &str = "STORAGE_CRASH_CHILD";
const CHILD_DIR: &str = "STORAGE_CRASH_DIR";
const CHILD_ROUND: &str = "STORAGE_CRASH_ROUND";

fn child_command(mode: &str, dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, mode)
        .env(CHILD_DIR, dir)
        .env_remove(storage::failpoint::CRASH_ENV);
    c
}

/// Child side. Without the env var this is an (empty) ordinary test.
#[test]
fn crash_child() {
    let Ok(mode) = std::env::var(CHILD_MODE) else { return };
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    match mode.as_str() {
        "writer" => writer_child(&dir),
        "checkpoint" => checkpoint_child(&dir),
        m => panic!("unknown child mode {m}"),
    }
}

/// Append forever with 16 appends in flight; print `ack <index>` for each
/// append whose future resolved (i.e. durable).
fn writer_child(dir: &Path) {
    let (wal, _) = open_after_owner_exit(dir);
    let mut next = wal.last_index() + 1;
    let mut out = std::io::stdout().lock();
    let mut inflight = std::collections::VecDeque::new();
    loop {
        while inflight.len() < 16 {
            let n = 1 + next % 4;
            let entries = (next..next + n).map(|i| storage::Entry::new(1, i, payload(i))).collect();
            inflight.push_back(wal.append(entries).unwrap());
            next += n;
        }
        let last = futures::executor::block_on(inflight.pop_front().unwrap()).unwrap();
        writeln!(out, "ack {last}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut max_acked = 0u64;
    for round in 0..6 {
        let mut child = child_command("writer", dir.path()).stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = rng.gen_range(20..400);
        let mut seen = 0;
        while seen < kill_after {
            let line = lines.next().expect("child exited early").unwrap();
            if let Some(n) = line.strip_prefix("ack ") {
                max_acked = max_acked.max(n.parse().unwrap());
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
                               // Acks already in the pipe were acknowledged before the kill.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ack ") {
                max_acked = max_acked.max(n.parse().unwrap());
            }
        }
        let _ = child.wait();
        let (wal, rec) = open_after_owner_exit(dir.path());
        assert!(wal.last_index() >= max_acked, "round {round}: acked {max_acked}, recovered {rec:?}");
        let all = wal.read(1..=wal.last_index()).unwrap();
        assert!(all.iter().all(|e| e.payload == payload(e.index)), "round {round}");
    }
    assert!(max_acked > 100);
}

/// Phase 1 (no fail point): 200 entries applied + checkpoint + purge, then
/// 100 more applied without a checkpoint. Phase 2 (fail point armed by the
/// parent): reopen, replay, 100 more entries, apply, checkpoint + purge:
/// the process aborts at the armed step.
fn checkpoint_child(dir: &Path) {
    let round: u32 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let (wal, _) = open_after_owner_exit(&dir.join("wal"));
    let store = StateStore::open(&dir.join("state")).unwrap();
    store.replay(&wal, wal.last_index(), &mut writes_of).unwrap();
    let apply_upto = |to: u64| {
        for e in wal.read(store.applied_index() + 1..=to).unwrap() {
            store.apply(e.index, &writes_of(&e).unwrap()).unwrap();
        }
    };
    let checkpoint = || {
        let c = store.checkpoint().unwrap();
        futures::executor::block_on(wal.purge_upto(c).unwrap()).unwrap();
    };
    if round == 0 {
        apply_upto(append_n(&wal, 1, 200));
        checkpoint();
        apply_upto(append_n(&wal, 201, 100));
    } else {
        apply_upto(append_n(&wal, wal.last_index() + 1, 100));
        checkpoint();
    }
}

/// Expected state after applying entries 1..=last with `writes_of`.
fn check_state(store: &StateStore, last: u64, what: &str) {
    for j in 0..7u64 {
        let newest = (1..=last).rev().find(|i| i % 7 == j).unwrap();
        let (idx, v) = store.get(format!("key-{j}").as_bytes()).unwrap().unwrap();
        assert_eq!((idx, u64::from_le_bytes(v.try_into().unwrap())), (newest, newest), "{what}: key-{j}");
    }
    for j in 0..5u64 {
        let newest = (1..=last).rev().find(|i| i % 5 == j).unwrap();
        let got = store.get(format!("gone-{j}").as_bytes()).unwrap();
        let want = (newest % 2 == 0).then(|| (newest, newest.to_le_bytes().to_vec()));
        assert_eq!(got, want, "{what}: gone-{j} (deleted by odd entries)");
    }
    let (idx, _) = store.get(b"last").unwrap().unwrap();
    assert_eq!(idx, last, "{what}: last");
}

#[test]
fn crash_at_each_checkpoint_step_loses_nothing_and_applies_nothing_twice() {
    for point in FailPoint::ALL {
        let dir = tempfile::tempdir().unwrap();
        let run = |round: u32, fail: Option<FailPoint>| {
            let mut c = child_command("checkpoint", dir.path());
            c.env(CHILD_ROUND, round.to_string()).stdout(Stdio::null()).stderr(Stdio::null());
            if let Some(f) = fail {
                c.env(storage::failpoint::CRASH_ENV, f.name());
            }
            c.status().unwrap()
        };
        assert!(run(0, None).success(), "{}: setup run failed", point.name());
        let status = run(1, Some(point));
        assert!(!status.success(), "{}: child should have aborted", point.name());

        let (wal, _) = open_after_owner_exit(&dir.path().join("wal"));
        // Every appended entry survived (all were acknowledged before the
        // crash). Mid-apply fires already while round 1 replays 201..=300,
        // before it appends anything: a crash during recovery itself.
        let last = if point == FailPoint::MidApply { 300 } else { 400 };
        assert_eq!(wal.last_index(), last, "{}", point.name());
        let store = Arc::new(StateStore::open(&dir.path().join("state")).unwrap());
        let checkpoint = store.checkpoint_index();
        assert!(checkpoint >= 200, "{}: phase-1 checkpoint lost", point.name());
        assert!(wal.first_index() <= checkpoint + 1, "{}: log purged past the checkpoint", point.name());
        let calls = Arc::new(AtomicU64::new(0));
        let c2 = calls.clone();
        let mut counting = move |e: &storage::Entry| {
            c2.fetch_add(1, Ordering::Relaxed);
            writes_of(e)
        };
        let replayed = store.replay(&wal, wal.last_index(), &mut counting).unwrap();
        // Replay starts right after the durable checkpoint: entries at or
        // below it are never applied again.
        assert_eq!(replayed, last - checkpoint, "{}", point.name());
        assert_eq!(calls.load(Ordering::Relaxed), replayed);
        check_state(&store, last, point.name());
        // A second restart replays the same suffix and changes nothing.
        drop(store);
        let store = StateStore::open(&dir.path().join("state")).unwrap();
        store.replay(&wal, wal.last_index(), &mut writes_of).unwrap();
        check_state(&store, last, point.name());
    }
}
