//! Migration of format-1 data dirs, through the binary, on the dirs checked
//! in under tests/data (written by the build before storage v2: see
//! tests/data/make_v1_fixture.sh), one stopped by SIGTERM (state in the
//! store, log purged) and one by SIGKILL (the log's tail holds records the
//! store may lack). Every like status and every stored expectation answers
//! as that build answered; the old dirs are kept, renamed; a second start
//! does not migrate again; damage in an old log is refused, nothing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

mod common;
use common::enc;
use common::http::{get, request};
use common::maple::{DataDir, Launch, Maple, EXIT_TIMEOUT};

const SECRET: &str = "fixture-secret";

fn fixture(mode: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(format!("v1-{mode}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

fn start(data: &Path) -> Maple {
    // Stored expectations of the fixture are old: a TTL and a stale age
    // longer than their age keep them served from the store, not refetched
    // or evicted.
    Launch::serve(data)
        .args(&["--cores", "2", "--cache-ttl-secs", "1000000000", "--cache-stale-secs", "1000000000"])
        .env("MAPLE_JWT_SECRET", SECRET)
        .start()
}

fn bearer(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    format!("Bearer {}", net::jwt::sign(SECRET.as_bytes(), user, now + 3600))
}

/// Every answer of expected.json, from this node.
fn check_answers(node: &Maple, expected: &serde_json::Value, what: &str) {
    for l in expected["likes"].as_array().unwrap() {
        let (user, ch) = (l["user"].as_str().unwrap(), l["character"].as_str().unwrap());
        let auth = bearer(user);
        let r = request(node.addr, "GET", &format!("/api/v2/characters/{}/like/status", enc(ch)), &[("authorization", &auth)]);
        assert_eq!(r.status, 200, "{what}: {user} {ch}");
        assert_eq!(r.json(), l["answer"], "{what}: {user} on {ch}");
    }
    for e in expected["expectations"].as_array().unwrap() {
        let ch = e["character"].as_str().unwrap();
        let r = get(node.addr, &format!("/api/v4/characters/{}/expectation", enc(ch)));
        assert_eq!(r.status, 200, "{what}: {ch}");
        assert_eq!(r.header("etag"), e["etag"].as_str(), "{what}: {ch}: the stored document, not a new computation");
    }
    let sim = get(node.addr, "/sim/stats").json();
    assert_eq!(sim["equipment"], 0, "{what}: no upstream call, every expectation came from the store: {sim}");
}

fn migrate_and_check(mode: &str) {
    let dir = DataDir::new(&format!("migrate-{mode}"));
    copy_dir(&fixture(mode).join("data"), dir.path());
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture(mode).join("expected.json")).unwrap()).unwrap();
    let mut node = start(dir.path());
    assert_eq!(node.log_lines("migrating the format-1 data dir").len(), 1, "{}", node.log());
    let done = node.log_lines("migration done");
    assert_eq!(done.len(), 1, "{}", node.log());
    check_answers(&node, &expected, mode);
    for n in 0..2 {
        assert!(dir.path().join(format!("core-{n}.migrated/wal")).is_dir(), "the old dir is kept, renamed");
        assert!(!dir.path().join(format!("core-{n}")).exists());
    }
    let meta = std::fs::read_to_string(dir.path().join("MAPLE_DATA")).unwrap();
    assert!(meta.contains("format = 2") && meta.contains("partitions = 16") && meta.contains("logs = 2"), "{meta}");
    assert!(!dir.path().join("MIGRATING").exists());
    node.stop_gracefully();
    drop(node);
    let node = start(dir.path());
    assert!(node.log_lines("migrating the format-1").is_empty(), "migrated once: {}", node.log());
    check_answers(&node, &expected, &format!("{mode}, restarted"));
}

#[test]
fn a_format_1_dir_stopped_by_sigterm_migrates_with_every_answer() {
    migrate_and_check("sigterm");
}

/// The SIGKILL fixture never checkpointed: everything is in its log, and
/// its keyed toggles (Idempotency-Key) replay into bindings: a retry after
/// the migration still gets the first answer.
#[test]
fn a_format_1_dir_killed_mid_run_migrates_with_every_answer_and_its_keys() {
    migrate_and_check("sigkill");
    let dir = DataDir::new("migrate-sigkill-keys");
    copy_dir(&fixture("sigkill").join("data"), dir.path());
    let node = start(dir.path());
    let like = |user: &str, ch: &str, key: &str| {
        let auth = bearer(user);
        request(node.addr, "POST", &format!("/api/v2/characters/{}/like", enc(ch)), &[("authorization", &auth), ("idempotency-key", key)])
    };
    // gina liked evan with key k-2: the retry is answered, nothing toggles.
    let before = request(node.addr, "GET", "/api/v2/characters/evan/like/status", &[("authorization", &bearer("gina"))]).json();
    let retry = like("gina", "evan", "k-2");
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json()["liked"], true);
    let after = request(node.addr, "GET", "/api/v2/characters/evan/like/status", &[("authorization", &bearer("gina"))]).json();
    assert_eq!(before, after, "the retry toggled nothing");
}

/// Damage in the middle of an old log (4 bytes flipped in a record with
/// records after it): the start refuses, naming the file and the offset,
/// and no byte of the data dir changes.
#[test]
fn damage_in_a_format_1_log_is_refused_and_nothing_changes() {
    let dir = DataDir::new("migrate-damaged");
    copy_dir(&fixture("sigkill").join("data"), dir.path());
    let seg = dir.path().join("core-0/wal/00000000000000000001.wal");
    let mut bytes = std::fs::read(&seg).unwrap();
    // The records' offsets: `len: u32 | crc | index | term | payload` after a 32-byte header.
    let mut frames = Vec::new();
    let mut at = 32;
    while at + 24 <= bytes.len() && bytes[at..at + 24] != [0u8; 24] {
        frames.push(at);
        at += 24 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    assert!(frames.len() > 10, "the fixture's log has records: {}", frames.len());
    // 4 bytes inside a record in the middle (its payload), records after it.
    let mid = frames[frames.len() / 2] + 26;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0xa5;
    }
    std::fs::write(&seg, &bytes).unwrap();
    let before = snapshot(dir.path());
    let mut node = Launch::serve(dir.path()).arg("--cores", "2").spawn();
    let status = node.wait_exit(EXIT_TIMEOUT);
    assert!(!status.success());
    let log = node.log();
    assert!(log.contains("core-0/wal/00000000000000000001.wal") && log.contains("at byte"), "names the file and offset: {log}");
    let mut after = snapshot(dir.path());
    // The data dir lock is the only addition.
    after.remove(&dir.path().join("lock"));
    let before: BTreeMap<_, _> = before.into_iter().filter(|(p, _)| !p.ends_with("lock")).collect();
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "no file added or removed: {log}");
    assert!(after == before, "no byte changed");
}
