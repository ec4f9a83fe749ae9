//! Torn and corrupt tails: cut the last segment at every byte offset of its
//! last records, flip bits inside records; recovery must keep every whole
//! record before the damage, drop the rest, never panic, and accept appends.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const N: u64 = 40;
const TAIL_RECORDS: u64 = 3;

/// Build a log of N entries in one segment; return (dir, segment path,
/// byte offset of each record start + end).
fn build() -> (tempfile::TempDir, PathBuf, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = storage::Wal::open(dir.path(), storage::WalOptions { segment_bytes: 64 * 1024, ..small_opts() }).unwrap();
    append_n(&wal, 1, N);
    drop(wal);
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bounds = vec![32u64];
    for i in 1..=N {
        bounds.push(bounds.last().unwrap() + 24 + payload(i).len() as u64);
    }
    (dir, seg, bounds)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "wal")).collect();
    v.sort();
    v
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

/// Reopen and check exactly `whole` entries survive and the log accepts more.
fn check_recovers(dir: &Path, whole: u64, what: &str) {
    let (wal, rec) = open(dir);
    assert_eq!(wal.last_index(), whole, "{what}: {rec:?}");
    if whole > 0 {
        let got = wal.read(1..=whole).unwrap();
        assert!(got.iter().all(|e| e.payload == payload(e.index)), "{what}");
    }
    append_n(&wal, whole + 1, 2);
    drop(wal);
    let (wal, rec) = open(dir);
    assert_eq!(wal.last_index(), whole + 2, "{what}: after re-append");
    assert_eq!(rec.dropped_tail_bytes, 0, "{what}: repaired tail must stay clean");
}

#[test]
fn cut_at_every_byte_of_the_last_records() {
    let (dir, seg, bounds) = build();
    let name = seg.file_name().unwrap().to_owned();
    let start = bounds[(N - TAIL_RECORDS) as usize];
    let end = bounds[N as usize];
    for cut in start..=end {
        // Two shapes of a torn write: the file really ends at `cut`
        // (growing files), or zeros follow (pre-allocated segments).
        for zeroed in [false, true] {
            let copy = copy_dir(dir.path());
            let f = fs::OpenOptions::new().write(true).open(copy.path().join(&name)).unwrap();
            if zeroed {
                f.write_all_at(&vec![0u8; (end - cut) as usize], cut).unwrap();
            } else {
                f.set_len(cut).unwrap();
            }
            let whole = bounds.iter().rposition(|&b| b <= cut).unwrap() as u64;
            let (_, rec) = open(copy.path());
            let torn_bytes = cut - bounds[whole as usize];
            // The first byte of every record (its length) is non-zero, so any
            // partial record counts as dropped bytes; a cut on a boundary none.
            assert_eq!(rec.dropped_tail_bytes > 0, torn_bytes > 0, "cut {cut}");
            check_recovers(copy.path(), whole, &format!("cut at {cut} zeroed={zeroed}"));
        }
    }
}

#[test]
fn bit_flips_inside_records_drop_from_the_damaged_record_on() {
    let (dir, seg, bounds) = build();
    let name = seg.file_name().unwrap().to_owned();
    let start = bounds[(N - TAIL_RECORDS - 2) as usize];
    let end = bounds[N as usize];
    for at in start..end {
        for bit in [0u8, 3, 7] {
            let copy = copy_dir(dir.path());
            let f = fs::OpenOptions::new().read(true).write(true).open(copy.path().join(&name)).unwrap();
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ (1 << bit)], at).unwrap();
            // Record k (1-based) occupies [bounds[k-1], bounds[k]).
            let damaged = bounds.iter().rposition(|&b| b <= at).unwrap() as u64 + 1;
            let (_, rec) = open(copy.path());
            assert!(rec.torn.is_some() && rec.dropped_tail_bytes > 0, "flip at {at}");
            check_recovers(copy.path(), damaged - 1, &format!("flip at {at} bit {bit}"));
        }
    }
}

#[test]
fn damage_in_an_earlier_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path());
    append_n(&wal, 1, 200);
    drop(wal);
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 3);
    // Corrupt the first record of the second segment.
    let f = fs::OpenOptions::new().read(true).write(true).open(&segs[1]).unwrap();
    f.write_all_at(&[0xff], 40).unwrap();
    let base: u64 = segs[1].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let (_, rec) = open(dir.path());
    assert_eq!(rec.dropped_segments, segs.len() - 2);
    assert!(rec.dropped_tail_bytes > 0);
    check_recovers(dir.path(), base - 1, "earlier segment damaged");
}

#[test]
fn garbage_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path());
    append_n(&wal, 1, 5);
    drop(wal);
    let seg = segment_files(dir.path()).pop().unwrap();
    // Bad segment header: the segment is dropped, the log starts empty.
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(b"NOTAWAL!", 0).unwrap();
    let (wal, rec) = open(dir.path());
    assert!(rec.torn.is_some());
    assert_eq!(wal.last_index(), 0);
    drop(wal);
    // Corrupt vote file: a typed error, not a panic.
    fs::write(dir.path().join("vote"), b"xx").unwrap();
    assert!(matches!(storage::Wal::open(dir.path(), small_opts()), Err(storage::StorageError::Corrupt { .. })));
}
