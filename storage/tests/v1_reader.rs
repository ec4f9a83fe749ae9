//! The format-1 reader the migration uses, on the format-1 data dirs the
//! build before storage v2 wrote (ops/tests/data, see its
//! make_v1_fixture.sh): strict where v1's own recovery was lenient (damage
//! followed by valid records is refused, not cut), a torn last record is
//! left out, the store's rows and the entries after its checkpoint are
//! returned.

use std::path::{Path, PathBuf};

use storage::StorageError;

fn fixture_core(mode: &str, core: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../ops/tests/data/v1-{mode}/data/core-{core}"))
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

/// Frame offsets of a format-1 segment: `len: u32 | crc | index u64 | term u64 | payload`
/// after a 32-byte header.
fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 32;
    while at + 24 <= bytes.len() && bytes[at..at + 24] != [0u8; 24] {
        out.push(at);
        at += 24 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    out
}

#[test]
fn reads_rows_and_the_entries_after_the_checkpoint() {
    // SIGTERM: checkpointed and purged, the state is in the store.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_core("sigterm", 0), dir.path());
    let core = storage::v1::read_core(dir.path(), 2 << 20).unwrap();
    assert!(core.checkpoint > 0 && core.entries.is_empty(), "checkpoint {} entries {}", core.checkpoint, core.entries.len());
    assert!(core.rows.iter().any(|(k, _, v)| k.starts_with(b"like/u/") && v.is_some()));
    // SIGKILL: never checkpointed, everything is in the log.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_core("sigkill", 0), dir.path());
    let core = storage::v1::read_core(dir.path(), 2 << 20).unwrap();
    assert_eq!(core.checkpoint, 0);
    let indexes: Vec<u64> = core.entries.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (1..=indexes.len() as u64).collect::<Vec<_>>(), "dense from 1");
    assert!(core.torn_tail.is_none());
}

#[test]
fn damage_followed_by_valid_records_is_refused_and_a_torn_last_record_is_not() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_core("sigkill", 1), dir.path());
    let seg = dir.path().join("wal/00000000000000000001.wal");
    let bytes = std::fs::read(&seg).unwrap();
    let f = frames(&bytes);
    let n = f.len();
    assert!(n > 4);
    // Four bytes flipped in a record in the middle.
    let mut damaged = bytes.clone();
    let mid = f[n / 2] + 30;
    for b in &mut damaged[mid..mid + 4] {
        *b ^= 0xa5;
    }
    std::fs::write(&seg, &damaged).unwrap();
    match storage::v1::read_core(dir.path(), 2 << 20) {
        Err(StorageError::Damaged { path, offset, detail }) => {
            assert_eq!((path, offset), (seg.clone(), f[n / 2] as u64));
            assert!(detail.contains("valid records follow"), "{detail}");
        }
        other => panic!("damage in the middle must be refused: {other:?}"),
    }
    // The last record cut in half: a torn tail, read without it.
    let end = bytes.len();
    std::fs::write(&seg, &bytes[..(f[n - 1] + end) / 2]).unwrap();
    let core = storage::v1::read_core(dir.path(), 2 << 20).unwrap();
    assert_eq!(core.entries.len(), n - 1);
    assert_eq!(core.torn_tail, Some((seg, f[n - 1] as u64)));
}
