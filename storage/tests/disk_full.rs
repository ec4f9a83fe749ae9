//! A full disk, on a real small tmpfs: writing until ENOSPC must lose
//! nothing acknowledged, and once space is freed the log and the store must
//! recover; a first start on a disk too small for one segment must fail
//! cleanly and leave no `spare-*.tmp` behind.
//!
//! Mounting needs CAP_SYS_ADMIN (root); without it these tests print why
//! and pass without running (the same code paths are covered by the
//! crash tests' fail points, which stop at the same steps).
mod logkit;
use logkit::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use futures::executor::block_on;
use storage::log::{Log, LogOptions};
use storage::store::Store;
use storage::{Entry, StorageError};

struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("disk_full: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): test skipped");
            return None;
        }
        Some(Tmpfs(dir.path().to_path_buf(), dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn opts() -> LogOptions {
    LogOptions { segment_bytes: 128 * 1024, max_entry_bytes: 8 * 1024, ..small_opts() }
}

#[test]
fn freeing_space_after_a_full_disk_lets_recovery_succeed() {
    let Some(fs) = Tmpfs::mount("3m") else { return };
    let (log_dir, state_dir) = (fs.path().join("log-0"), fs.path().join("state"));
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 512 * 1024]).unwrap();
    let groups = [0u32, 1];
    let mut acked = [None::<u64>; 2];
    let mut failure = None;
    {
        let (log, store, parts) = open_node(&log_dir, &state_dir, opts(), &groups).unwrap();
        'fill: for round in 0..100_000u64 {
            for (k, p) in parts.iter().enumerate() {
                let i = round;
                let r = p.group().append(vec![Entry::new(1, i, vec![k as u8; 2000])]).and_then(block_on);
                match r {
                    Ok(last) => acked[k] = Some(last),
                    Err(e) => {
                        failure = Some(e);
                        break 'fill;
                    }
                }
                let applied = p.apply(id(1, i), &writes_of(p.id(), &Entry::new(1, i, vec![])).unwrap());
                if let Err(e) = applied {
                    failure = Some(e);
                    break 'fill;
                }
            }
            if round % 50 == 49 {
                if let Err(e) = store.checkpoint_and_purge(0) {
                    failure = Some(e);
                    break 'fill;
                }
            }
        }
        let failure = failure.as_ref().expect("the disk filled up");
        eprintln!("disk full after {acked:?}: {failure}");
        drop((log, store, parts));
    }
    // Free space, restart: everything acknowledged is there.
    std::fs::remove_file(&ballast).unwrap();
    let (log, store, parts) =
        open_node(&log_dir, &state_dir, opts(), &groups).unwrap_or_else(|e| panic!("recovery after freeing space: {e}"));
    for (k, p) in parts.iter().enumerate() {
        let last = p.group().last_index();
        assert!(last >= acked[k], "group {k}: acked {:?}, recovered {last:?}", acked[k]);
        store.replay(p, last, &mut writes_of).unwrap();
        if let Some(l) = last {
            let first = p.group().first_index();
            let es = p.group().read(first..=l).unwrap();
            assert!(es.iter().all(|e| e.payload == vec![k as u8; 2000]));
            check_state(p, 0, l, "after recovery");
            // And the log takes appends again.
            block_on(p.group().append(vec![Entry::new(1, l + 1, vec![9])]).unwrap()).unwrap();
        }
    }
    store.checkpoint_and_purge(0).unwrap();
    assert!(log.poisoned().is_none());
}

/// The log itself fills the disk (its next segment cannot be allocated):
/// it refuses further writes, and after space is freed it reopens with
/// every acknowledged entry and takes appends again.
#[test]
fn a_log_that_fills_the_disk_recovers_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount("2m") else { return };
    let dir = fs.path().join("log-0");
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 256 * 1024]).unwrap();
    let mut acked = None;
    {
        let (log, _) = Log::open(&dir, opts()).unwrap();
        let g = log.group(3).unwrap();
        for i in 0..100_000u64 {
            match g.append(vec![Entry::new(1, i, payload(3, i))]).and_then(block_on) {
                Ok(l) => acked = Some(l),
                Err(e) => {
                    eprintln!("log full after {acked:?}: {e}");
                    assert!(log.poisoned().is_some() || matches!(e, StorageError::Io { .. }), "{e}");
                    break;
                }
            }
        }
        assert!(g.append(vec![Entry::new(1, acked.unwrap() + 1, vec![1])]).is_err(), "a poisoned log refuses writes");
    }
    std::fs::remove_file(&ballast).unwrap();
    let (log, _) = Log::open(&dir, opts()).unwrap_or_else(|e| panic!("recovery after freeing space: {e}"));
    let g = log.group(3).unwrap();
    let last = g.last_index().unwrap();
    assert!(last >= acked.unwrap());
    check_entries(&g, 0, last);
    append_n(&g, last + 1, 10);
    let left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().filter(|n| n.ends_with(".tmp")).count() <= 1, "only the next spare may be in preparation: {left:?}");
}

#[test]
fn a_first_start_on_a_tiny_disk_fails_cleanly() {
    let Some(fs) = Tmpfs::mount("64k") else { return };
    let dir = fs.path().join("log-0");
    let err = Log::open(&dir, LogOptions { segment_bytes: 1 << 20, ..small_opts() }).err().expect("a 1 MiB segment does not fit 64 KiB");
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
    let left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.iter().all(|n| n == "LOCK"), "left behind: {left:?}");
    // With room again, the same directory starts.
    drop(fs);
    let Some(fs) = Tmpfs::mount("8m") else { return };
    let (log, _) = Log::open(&fs.path().join("log-0"), LogOptions { segment_bytes: 1 << 20, ..small_opts() }).unwrap();
    append_n(&log.group(0).unwrap(), 0, 3);
    let _ = Store::open(&fs.path().join("state"), store_opts()).unwrap();
}
