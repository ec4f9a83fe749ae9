//! Issue 9's first item, through the binary: a stopped node's data dir with
//! recorded acknowledged likes (one log of several segments), damaged six
//! ways on a copy each. Five are refused — the node exits non-zero, its
//! error names the file (and the byte offset where there is one), and every
//! byte of the data dir is as it was after the damage — and a torn tail (a
//! partly written last record) is cut: the node serves, with every
//! acknowledged like.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

mod common;
use common::http::Conn;
use common::maple::{DataDir, Launch, Maple, EXIT_TIMEOUT};
use common::metric;

const SECRET: &str = "corruption-secret";
/// Toggles recorded: enough for the log to span 3+ segments of 4 MiB.
const TOGGLES: usize = 90_000;
const USERS: usize = 3000;
const CHARS: usize = 40;

fn bearer(user: usize) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    format!("Bearer {}", net::jwt::sign(SECRET.as_bytes(), &format!("u{user}"), now + 3600))
}

fn launch(dir: &Path) -> Launch {
    // One core, one log: every partition's records in the segments damaged below.
    Launch::serve(dir).args(&["--cores", "1", "--partitions", "4"]).env("MAPLE_JWT_SECRET", SECRET)
}

/// Toggle likes from 8 connections; the last acknowledged state of each
/// (user, character) pair (each pair belongs to one connection).
fn record(addr: SocketAddr) -> BTreeMap<(usize, usize), bool> {
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (acked, next) = (acked.clone(), next.clone());
            std::thread::spawn(move || {
                let mut c = Conn::open(addr).unwrap();
                let tokens: Vec<String> = (0..USERS).filter(|u| u % 8 == t).map(bearer).collect();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= TOGGLES {
                        return;
                    }
                    let u = (i / 8) % (USERS / 8);
                    let ch = (i * 7 + t) % CHARS;
                    let r = c.send("POST", &format!("/api/v2/characters/c{ch}/like"), &[("Authorization", &tokens[u])]).unwrap();
                    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
                    acked.lock().unwrap().insert((u * 8 + t, ch), r.json()["liked"].as_bool().unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else if !p.ends_with("lock") {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

/// The log's segments, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("log-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    segs
}

/// Frame offsets of a v2 segment: `len: u32 | crc: u32 | body` after a 32-byte header.
fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 32;
    while at + 8 <= bytes.len() && bytes[at..at + 8] != [0u8; 8] {
        out.push(at);
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    out
}

fn end_of_records(bytes: &[u8]) -> usize {
    let f = frames(bytes);
    let last = *f.last().unwrap();
    last + 8 + u32::from_le_bytes(bytes[last..last + 4].try_into().unwrap()) as usize
}

/// Start on a damaged copy: refused, naming `names` (and an offset when
/// `offset`), every byte as before.
fn assert_refused(dir: &Path, what: &str, names: &str, offset: bool) {
    let before = snapshot(dir);
    let mut node: Maple = launch(dir).spawn();
    let status = node.wait_exit(EXIT_TIMEOUT);
    let log = node.log();
    assert!(!status.success(), "{what}: the node must refuse to start: {log}");
    assert!(log.contains(names), "{what}: the error names {names}: {log}");
    if offset {
        assert!(log.contains("at byte"), "{what}: the error names the offset: {log}");
    }
    assert!(!log.contains("listening on"), "{what}: refused before serving: {log}");
    let after = snapshot(dir);
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "{what}: no file added or removed");
    assert!(after == before, "{what}: every byte unchanged");
}

#[test]
fn damaged_logs_are_refused_and_a_torn_tail_keeps_every_acknowledged_like() {
    let original = DataDir::new("corrupt-original");
    let mut node = launch(original.path()).start();
    let acked = record(node.addr);
    node.crash(); // SIGKILL: no checkpoint, every ack is only in the log
    drop(node);
    let segs = segments(original.path());
    assert!(segs.len() >= 3, "the log spans several segments: {segs:?}");
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().to_string();
    let case = |tag: &str| {
        let d = DataDir::new(&format!("corrupt-{tag}"));
        copy_dir(original.path(), d.path());
        d
    };
    let at = |d: &DataDir, p: &Path| d.path().join("log-0").join(p.file_name().unwrap());

    // 1. Four bytes flipped in a record in the middle of the oldest segment.
    let d = case("flip");
    let oldest = at(&d, &segs[0]);
    let mut bytes = std::fs::read(&oldest).unwrap();
    let f = frames(&bytes);
    let mid = f[f.len() / 2] + 10;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0x5a;
    }
    std::fs::write(&oldest, &bytes).unwrap();
    assert_refused(d.path(), "a flipped record mid-segment", &name(&segs[0]), true);

    // 2. The oldest segment truncated (a closed segment cut short).
    let d = case("truncate-oldest");
    let oldest = at(&d, &segs[0]);
    let bytes = std::fs::read(&oldest).unwrap();
    std::fs::write(&oldest, &bytes[..end_of_records(&bytes) / 2]).unwrap();
    assert_refused(d.path(), "a truncated oldest segment", &name(&segs[0]), true);

    // 3. A segment's magic flipped.
    let d = case("magic");
    let oldest = at(&d, &segs[0]);
    let mut bytes = std::fs::read(&oldest).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&oldest, &bytes).unwrap();
    assert_refused(d.path(), "a flipped segment magic", &name(&segs[0]), true);

    // 4. The newest segment deleted.
    let d = case("no-newest");
    let newest = segs.last().unwrap();
    std::fs::remove_file(at(&d, newest)).unwrap();
    assert_refused(d.path(), "the newest segment deleted", &name(newest), false);

    // 5. Every segment deleted.
    let d = case("no-segments");
    for s in &segs {
        std::fs::remove_file(at(&d, s)).unwrap();
    }
    assert_refused(d.path(), "every segment deleted", &name(&segs[0]), false);

    // 6. A torn tail: a record partly written after the last one of the
    //    newest segment (a write the crash interrupted: never acknowledged).
    let d = case("torn-tail");
    let newest = at(&d, segs.last().unwrap());
    let mut bytes = std::fs::read(&newest).unwrap();
    let end = end_of_records(&bytes);
    // A frame header announcing 200 bytes, then only 20 of them (their
    // checksum cannot match).
    let mut torn = Vec::new();
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[0xab; 20]);
    if bytes.len() < end + torn.len() {
        bytes.resize(end + torn.len(), 0);
    }
    bytes[end..end + torn.len()].copy_from_slice(&torn);
    std::fs::write(&newest, &bytes).unwrap();
    let node = launch(d.path()).start();
    let mut c = Conn::open(node.addr).unwrap();
    let mut likers: BTreeMap<usize, u64> = BTreeMap::new();
    for ((u, ch), liked) in &acked {
        let r = c.send("GET", &format!("/api/v2/characters/c{ch}/like/status"), &[("Authorization", &bearer(*u))]).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["liked"].as_bool(), Some(*liked), "u{u} on c{ch}: an acknowledged like state was lost");
        *likers.entry(*ch).or_default() += *liked as u64;
    }
    for (ch, n) in likers {
        let r = c.send("GET", &format!("/api/v2/characters/c{ch}/like/status"), &[("Authorization", &bearer(0))]).unwrap();
        assert_eq!(r.json()["likeCount"].as_u64(), Some(n), "c{ch}: the count is the acknowledged likers");
    }
    assert!(metric(node.addr, "maple_recovery_dropped_tail_bytes{") > 0.0, "the torn tail was cut: {}", node.log());
}
