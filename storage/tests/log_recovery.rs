//! Strict recovery of the v2 log, on real files: write entries, stop,
//! damage with the exact operation, reopen. Only a damaged last record of
//! the last segment with nothing valid after it is cut; everything else is
//! refused with the file and byte offset, and every byte stays as it was.
mod logkit;
use logkit::*;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use storage::log::Log;
use storage::StorageError;

const GROUPS: u32 = 3;
const PER_GROUP: u64 = 150;

fn damaged_at(err: &StorageError) -> (String, u64) {
    match err {
        StorageError::Damaged { path, offset, .. } => (path.file_name().unwrap().to_string_lossy().into_owned(), *offset),
        other => panic!("expected Damaged, got {other}"),
    }
}

/// The entries each group should have after the log kept exactly `frames`
/// (whole records, in order, over all segments).
fn expected_last(frames: &[Frame]) -> Vec<Option<u64>> {
    let mut last = vec![None; GROUPS as usize];
    for f in frames {
        if let Some((g, i)) = f.entry {
            last[g as usize] = Some(i);
        }
    }
    last
}

fn all_frames(dir: &Path) -> Vec<Vec<Frame>> {
    segments(dir).iter().map(|p| frames(p)).collect()
}

fn check_recovered(dir: &Path, last: &[Option<u64>], what: &str) {
    let (log, _) = open(dir);
    for g in 0..GROUPS {
        let gl = log.group(g).unwrap();
        assert_eq!(gl.last_index(), last[g as usize], "{what}: group {g}");
        if let Some(l) = last[g as usize] {
            check_entries(&gl, 0, l);
        }
    }
    // The repaired log takes appends and reopens clean.
    let g0 = log.group(0).unwrap();
    let next = last[0].map_or(0, |l| l + 1);
    append_n(&g0, next, 3);
    drop(g0);
    drop(log);
    let (log, rec) = open(dir);
    assert_eq!(rec.torn_tail, None, "{what}: the repaired tail must stay clean");
    assert_eq!(log.group(0).unwrap().last_index(), Some(next + 2), "{what}");
}

#[test]
fn cut_at_every_byte_of_the_last_records_recovers_every_whole_record() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    assert!(segs.len() >= 3, "needs several segments");
    let fr = all_frames(src.path());
    let last_seg = fr.last().unwrap();
    assert!(last_seg.len() >= 4);
    let name = segs.last().unwrap().file_name().unwrap().to_owned();
    let earlier: Vec<Frame> = fr[..fr.len() - 1].iter().flatten().copied().collect();
    let start = last_seg[last_seg.len() - 3].offset;
    let end = last_seg.last().map(|f| f.offset + f.len).unwrap();
    for cut in start..=end {
        for zeroed in [false, true] {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(src.path(), copy.path());
            let f = fs::OpenOptions::new().write(true).open(copy.path().join(&name)).unwrap();
            if zeroed {
                f.write_all_at(&vec![0u8; (end - cut) as usize], cut).unwrap();
            } else {
                f.set_len(cut).unwrap();
            }
            drop(f);
            let whole: Vec<Frame> = earlier.iter().chain(last_seg.iter().filter(|f| f.offset + f.len <= cut)).copied().collect();
            let on_boundary = last_seg.iter().any(|f| f.offset + f.len == cut) || cut == start;
            let (log, rec) = open(copy.path());
            assert_eq!(rec.torn_tail.is_some(), !on_boundary, "cut {cut} zeroed={zeroed}: {rec:?}");
            drop(log);
            check_recovered(copy.path(), &expected_last(&whole), &format!("cut at {cut} zeroed={zeroed}"));
        }
    }
}

#[test]
fn a_flipped_last_record_is_a_torn_tail() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    let fr = all_frames(src.path());
    let last = *fr.last().unwrap().last().unwrap();
    for at in last.offset..last.offset + last.len {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(src.path(), copy.path());
        flip(&copy.path().join(segs.last().unwrap().file_name().unwrap()), at);
        let whole: Vec<Frame> = fr.iter().flatten().copied().filter(|f| f.offset != last.offset || f.len != last.len).collect();
        let (log, rec) = open(copy.path());
        let torn = rec.torn_tail.expect("torn tail reported");
        assert_eq!(torn.offset, last.offset, "flip at {at}");
        drop(log);
        check_recovered(copy.path(), &expected_last(&whole[..whole.len()]), &format!("flip at {at}"));
    }
}

/// Damage inside any record followed by a valid record: refused, with the
/// damaged record's offset, nothing changed — in the last segment too.
#[test]
fn damage_followed_by_a_valid_record_is_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    let fr = all_frames(src.path());
    for (s, seg_frames) in fr.iter().enumerate() {
        let name = segs[s].file_name().unwrap().to_string_lossy().into_owned();
        for (k, f) in seg_frames.iter().enumerate() {
            let is_very_last = s == fr.len() - 1 && k == seg_frames.len() - 1;
            if is_very_last {
                continue;
            }
            // Every byte of the first record of the last segment after its
            // group state, one byte in the middle of every other record.
            let bytes: Vec<u64> =
                if s == fr.len() - 1 && k == 1 { (f.offset..f.offset + f.len).collect() } else { vec![f.offset + f.len / 2] };
            for at in bytes {
                let copy = tempfile::tempdir().unwrap();
                copy_dir(src.path(), copy.path());
                flip(&copy.path().join(&name), at);
                let err = assert_refused(copy.path(), &format!("{name} byte {at}"));
                assert_eq!(damaged_at(&err), (name.clone(), f.offset), "{name} byte {at}: {err}");
            }
        }
    }
}

#[test]
fn zeros_in_the_middle_of_the_last_segment_are_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let seg = segments(src.path()).pop().unwrap();
    let fr = frames(&seg);
    let victim = fr[fr.len() / 2];
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(&vec![0u8; victim.len as usize], victim.offset).unwrap();
    let err = assert_refused(src.path(), "zeroed record");
    assert_eq!(damaged_at(&err).1, victim.offset, "{err}");
    assert!(err.to_string().contains("valid record follows"), "{err}");
}

#[test]
fn a_flipped_segment_header_is_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    for (i, seg) in segments(src.path()).iter().enumerate() {
        for at in [0u64, 7, 9, 17, 25] {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(src.path(), copy.path());
            let p = copy.path().join(seg.file_name().unwrap());
            flip(&p, at);
            let err = assert_refused(copy.path(), &format!("segment {i} header byte {at}"));
            let (_, off) = damaged_at(&err);
            assert!(off == 0 || off == 16, "{err}");
        }
    }
}

#[test]
fn missing_segments_are_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    let n = segs.len();
    for (which, i) in [("first", 0), ("middle", n / 2), ("newest", n - 1)] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(src.path(), copy.path());
        fs::remove_file(copy.path().join(segs[i].file_name().unwrap())).unwrap();
        let err = assert_refused(copy.path(), which);
        assert!(matches!(&err, StorageError::Missing { path, .. } if path.ends_with(segs[i].file_name().unwrap())), "{which}: {err}");
    }
    // Every segment gone, the manifest left: refused, not a fresh log.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(src.path(), copy.path());
    for s in &segs {
        fs::remove_file(copy.path().join(s.file_name().unwrap())).unwrap();
    }
    assert!(matches!(assert_refused(copy.path(), "all segments"), StorageError::Missing { .. }));
}

#[test]
fn a_truncated_middle_segment_is_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    let mid = &segs[segs.len() / 2];
    let fr = frames(mid);
    let last = fr.last().unwrap();
    // Mid-record, and exactly at a record boundary (records lost silently
    // unless the next segment's group state is checked).
    for (how, len) in [("mid-record", last.offset + last.len / 2), ("boundary", last.offset)] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(src.path(), copy.path());
        let p = copy.path().join(mid.file_name().unwrap());
        fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len).unwrap();
        let err = assert_refused(copy.path(), how);
        assert!(matches!(err, StorageError::Damaged { .. }), "{how}: {err}");
    }
}

/// A record that is whole and checksummed but breaks a group's index
/// sequence (here: rewritten to skip an index, resealed) is refused.
#[test]
fn a_gap_in_a_groups_indexes_is_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    let seq = |p: &Path| p.file_stem().unwrap().to_str().unwrap().parse::<u64>().unwrap();
    for victim in [&segs[1], segs.last().unwrap()] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(src.path(), copy.path());
        let p = copy.path().join(victim.file_name().unwrap());
        let f = *frames(&p).iter().find(|f| f.entry.is_some()).unwrap();
        let (_, index) = f.entry.unwrap();
        let fh = fs::OpenOptions::new().write(true).open(&p).unwrap();
        fh.write_all_at(&(index + 1).to_le_bytes(), f.offset + 8 + 13).unwrap();
        drop(fh);
        reseal(&p, seq(&p), f.offset);
        let err = assert_refused(copy.path(), "index gap");
        let (name, off) = damaged_at(&err);
        assert_eq!((name.as_str(), off), (victim.file_name().unwrap().to_str().unwrap(), f.offset), "{err}");
        assert!(err.to_string().contains("gap"), "{err}");
    }
}

#[test]
fn a_bad_or_missing_manifest_is_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    for at in [0u64, 9, 13, 17, 25] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(src.path(), copy.path());
        flip(&copy.path().join("MANIFEST"), at);
        let err = assert_refused(copy.path(), "manifest flip");
        assert_eq!(damaged_at(&err), ("MANIFEST".to_string(), 0));
    }
    let copy = tempfile::tempdir().unwrap();
    copy_dir(src.path(), copy.path());
    fs::remove_file(copy.path().join("MANIFEST")).unwrap();
    assert!(matches!(assert_refused(copy.path(), "no manifest"), StorageError::Missing { .. }));
}

/// An older manifest (listing fewer segments than exist with data) is
/// refused: the newer segment holds records.
#[test]
fn an_old_manifest_is_refused() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    let m = fs::read(src.path().join("MANIFEST")).unwrap();
    let last = u64::from_le_bytes(m[24..32].try_into().unwrap());
    assert_eq!(last as usize, segs.len());
    let mut old = m.clone();
    old[24..32].copy_from_slice(&(last - 1).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&old[0..12]);
    h.update(&old[16..32]);
    old[12..16].copy_from_slice(&h.finalize().to_le_bytes());
    fs::write(src.path().join("MANIFEST"), &old).unwrap();
    let err = assert_refused(src.path(), "old manifest");
    assert!(err.to_string().contains("holds data"), "{err}");
}

/// Leftovers of interrupted rolls and collections are removed: an unlisted
/// newer segment with only its header, an unlisted older segment, temp files.
#[test]
fn leftovers_of_interrupted_rolls_and_collections_are_removed() {
    let src = build_log(GROUPS, PER_GROUP, small_opts());
    let segs = segments(src.path());
    let n = segs.len() as u64;
    // A roll that crashed before the manifest listed its segment.
    let newer = src.path().join(format!("{:020}.log", n + 1));
    let mut h = vec![0u8; 8192];
    h[0..8].copy_from_slice(b"MAPLLOG2");
    h[8..12].copy_from_slice(&2u32.to_le_bytes());
    h[16..24].copy_from_slice(&(n + 1).to_le_bytes());
    let crc = crc32fast::hash(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    fs::write(&newer, &h).unwrap();
    fs::write(src.path().join("spare-1-1.tmp"), vec![0u8; 100]).unwrap();
    fs::write(src.path().join("MANIFEST.tmp"), b"half").unwrap();
    let (log, rec) = open(src.path());
    assert_eq!(rec.removed_files.len(), 3, "{rec:?}");
    assert!(!newer.exists());
    assert_eq!(log.group(1).unwrap().last_index(), Some(PER_GROUP - 1));
    // Collect the first segments, then put an old one back (a collection
    // that crashed after the manifest update).
    let first = fs::read(&segs[0]).unwrap();
    for g in 0..GROUPS {
        let gl = log.group(g).unwrap();
        futures::executor::block_on(gl.purge_upto(id(1, PER_GROUP / 2)).unwrap()).unwrap();
    }
    wait_until(|| log.stats().first_seq > 1);
    drop(log);
    assert!(!segs[0].exists());
    fs::write(&segs[0], &first).unwrap();
    let (log, rec) = open(src.path());
    assert_eq!(rec.removed_files, vec![segs[0].clone()]);
    check_entries(&log.group(2).unwrap(), PER_GROUP / 2 + 1, PER_GROUP - 1);
}

/// A segment swapped for another log's segment of the same sequence number
/// (valid header and frames) is caught by the group state check.
#[test]
fn a_segment_from_another_log_is_refused() {
    let a = build_log(GROUPS, PER_GROUP, small_opts());
    let b = tempfile::tempdir().unwrap();
    {
        let (log, _) = Log::open(b.path(), small_opts()).unwrap();
        for g in 0..GROUPS {
            append_n(&log.group(g).unwrap(), 0, PER_GROUP + 7);
        }
    }
    let segs = segments(a.path());
    let mid = segs[segs.len() / 2].file_name().unwrap();
    fs::copy(b.path().join(mid), a.path().join(mid)).unwrap();
    let err = assert_refused(a.path(), "foreign segment");
    assert!(matches!(err, StorageError::Damaged { .. }), "{err}");
}
