//! Crash tests of the v2 log with real processes. The test binary
//! re-executes itself as a child (`log_crash_child`, selected by env vars)
//! that appends to several groups and purges them; the parent SIGKILLs it
//! at a random moment, or the child aborts itself at a named fail point
//! (mid-roll, mid-purge, mid-manifest-update, mid-collection), and the
//! parent checks that the log reopens with every acknowledged entry.
mod logkit;
use logkit::*;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use futures::executor::block_on;
use rand::Rng;
use storage::log::{GroupLog, LogOptions};
use storage::{Entry, FailPoint};

const CHILD_MODE: &str = "STORAGE_LOG_CRASH_CHILD";
const CHILD_DIR: &str = "STORAGE_LOG_CRASH_DIR";
const GROUPS: u32 = 4;

fn child_command(mode: &str, dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["log_crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_MODE, mode)
        .env(CHILD_DIR, dir)
        .env_remove(storage::failpoint::CRASH_ENV);
    c
}

fn crash_opts() -> LogOptions {
    LogOptions { segment_bytes: 4096, ..small_opts() }
}

/// Child side. Without the env var this is an (empty) ordinary test.
#[test]
fn log_crash_child() {
    let Ok(mode) = std::env::var(CHILD_MODE) else { return };
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    match mode.as_str() {
        "writer" => writer_child(&dir, u64::MAX),
        "script" => writer_child(&dir, 400),
        m => panic!("unknown child mode {m}"),
    }
}

/// Append to every group with several appends in flight per group; every
/// 16th round purge each group a little behind its end. Prints `ack g i`
/// once entries up to `i` of group `g` are durable and `purged g i` once a
/// purge is. Runs `rounds` rounds (then exits normally).
fn writer_child(dir: &Path, rounds: u64) {
    let (log, _) = open_after_owner_exit(dir, crash_opts()).unwrap();
    let groups: Vec<GroupLog> = (0..GROUPS).map(|g| log.group(g).unwrap()).collect();
    let mut next: Vec<u64> = groups.iter().map(|g| g.last_index().map_or(0, |l| l + 1)).collect();
    let mut out = std::io::stdout().lock();
    let mut inflight = std::collections::VecDeque::new();
    for round in 0..rounds {
        for (k, g) in groups.iter().enumerate() {
            let n = 1 + (next[k] + round) % 3;
            let es: Vec<Entry> = (next[k]..next[k] + n).map(|i| Entry::new(1, i, payload(g.id(), i))).collect();
            inflight.push_back((g.id(), g.append(es).unwrap()));
            next[k] += n;
        }
        while inflight.len() > 3 * GROUPS as usize {
            let (g, f) = inflight.pop_front().unwrap();
            let last = block_on(f).unwrap();
            writeln!(out, "ack {g} {last}").unwrap();
        }
        if round % 16 == 15 {
            for g in &groups {
                let Some(upto) = g.durable_index().and_then(|d| d.checked_sub(12)) else { continue };
                if g.last_purged().is_some_and(|p| p.index >= upto) || upto < g.first_index() {
                    continue;
                }
                block_on(g.purge_upto(id(1, upto)).unwrap()).unwrap();
                writeln!(out, "purged {} {upto}", g.id()).unwrap();
            }
        }
        out.flush().unwrap();
    }
    for (g, f) in inflight {
        let last = block_on(f).unwrap();
        writeln!(out, "ack {g} {last}").unwrap();
    }
    writeln!(out, "done").unwrap();
}

#[derive(Default, Debug)]
struct Acked {
    last: BTreeMap<u32, u64>,
    purged: BTreeMap<u32, u64>,
    done: bool,
}

impl Acked {
    fn line(&mut self, line: &str) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["ack", g, i] => {
                let e = self.last.entry(g.parse().unwrap()).or_default();
                *e = (*e).max(i.parse().unwrap());
            }
            ["purged", g, i] => {
                let e = self.purged.entry(g.parse().unwrap()).or_default();
                *e = (*e).max(i.parse().unwrap());
            }
            ["done"] => self.done = true,
            _ => {}
        }
    }
}

/// Reopen and check every acknowledged entry is there and whole.
fn verify(dir: &Path, acked: &Acked, what: &str) {
    let (log, rec) = open_after_owner_exit(dir, crash_opts()).unwrap_or_else(|e| panic!("{what}: reopen refused: {e}"));
    for g in 0..GROUPS {
        let gl = log.group(g).unwrap();
        if let Some(&a) = acked.last.get(&g) {
            assert!(gl.last_index().is_some_and(|l| l >= a), "{what}: group {g} acked {a}, recovered {:?} ({rec:?})", gl.last_index());
        }
        if let Some(&p) = acked.purged.get(&g) {
            assert!(gl.last_purged().is_some_and(|l| l.index >= p), "{what}: group {g} purge {p} acked, recovered {:?}", gl.last_purged());
        }
        if let Some(last) = gl.last_index() {
            let first = gl.first_index();
            if first <= last {
                check_entries(&gl, first, last);
            }
        }
    }
    assert_eq!(log.stats().segments, segments(dir).len(), "{what}: stray segment files");
}

#[test]
fn sigkill_never_loses_an_acknowledged_append_or_purge() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked = Acked::default();
    for round in 0..6 {
        let mut child = child_command("writer", dir.path()).stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let kill_after = rng.gen_range(50..1500);
        let mut seen = 0;
        while seen < kill_after {
            let line = lines.next().expect("child exited early").unwrap();
            acked.line(&line);
            seen += 1;
        }
        child.kill().unwrap(); // SIGKILL
                               // Acks already in the pipe were acknowledged before the kill.
        for line in lines.map_while(Result::ok) {
            acked.line(&line);
        }
        let _ = child.wait();
        verify(dir.path(), &acked, &format!("round {round}"));
    }
    assert!(acked.last.values().all(|&a| a > 100), "{acked:?}");
    assert!(!acked.purged.is_empty());
}

fn run_script(dir: &Path, fail: Option<FailPoint>, acked: &mut Acked) -> std::process::ExitStatus {
    let mut c = child_command("script", dir);
    c.stdout(Stdio::piped()).stderr(Stdio::null());
    if let Some(f) = fail {
        c.env(storage::failpoint::CRASH_ENV, f.name());
    }
    let mut child = c.spawn().unwrap();
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        acked.line(&line);
    }
    child.wait().unwrap()
}

/// Abort at each crash point of rolls, purges, manifest updates and
/// segment collection: the log reopens with every acknowledged entry and
/// purge, then keeps working.
#[test]
fn crash_at_each_log_step_loses_nothing() {
    for point in FailPoint::LOG {
        let dir = tempfile::tempdir().unwrap();
        let mut acked = Acked::default();
        assert!(run_script(dir.path(), None, &mut acked).success(), "{}: setup run failed", point.name());
        assert!(acked.done);
        acked.done = false;
        let status = run_script(dir.path(), Some(point), &mut acked);
        assert!(!status.success() && !acked.done, "{}: the child should have aborted at the fail point", point.name());
        verify(dir.path(), &acked, point.name());
        // And it keeps going: another full run, another clean reopen.
        assert!(run_script(dir.path(), None, &mut acked).success(), "{}: run after the crash failed", point.name());
        verify(dir.path(), &acked, &format!("{} (after)", point.name()));
    }
}

/// A first start that dies before its manifest is written leaves a
/// segment without records and no manifest: the next start begins afresh.
#[test]
fn a_crash_while_creating_the_log_is_recovered() {
    for point in [FailPoint::LogRollAfterInstall, FailPoint::ManifestTemp] {
        let dir = tempfile::tempdir().unwrap();
        let mut acked = Acked::default();
        let status = run_script(dir.path(), Some(point), &mut acked);
        assert!(!status.success() && acked.last.is_empty(), "{}", point.name());
        assert!(!dir.path().join("MANIFEST").exists());
        let (log, rec) = open(dir.path());
        assert!(!rec.removed_files.is_empty(), "{rec:?}");
        append_n(&log.group(0).unwrap(), 0, 5);
    }
}
