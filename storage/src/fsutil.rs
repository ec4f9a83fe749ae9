//! Small durable-filesystem helpers: directory fsync and atomic file replace.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, StorageError};

/// fsync a directory so that creates, renames and unlinks inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    let d = File::open(dir).ctx(|| format!("open dir {}", dir.display()))?;
    d.sync_all().ctx(|| format!("fsync dir {}", dir.display()))
}

/// First half of an atomic write (apart so a caller can put a crash point
/// between the halves): write `dir/name.tmp`, fsync it when asked.
pub fn write_temp(dir: &Path, name: &str, bytes: &[u8], fsync: bool) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes).ctx(|| format!("write {}", tmp.display()))?;
    if fsync {
        f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
    }
    Ok(())
}

/// Second half of an atomic write: rename `dir/name.tmp` over `dir/name`,
/// fsync the directory when asked.
pub fn publish_temp(dir: &Path, name: &str, fsync: bool) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    fs::rename(&tmp, &dst).ctx(|| format!("rename {} -> {}", tmp.display(), dst.display()))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Take an exclusive advisory lock on `dir/LOCK` for as long as the returned
/// file stays open: two writers on one log would interleave records.
pub fn lock_dir(dir: &Path) -> Result<File, StorageError> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join("LOCK");
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(&path).ctx(|| format!("open {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock {
            return Err(StorageError::Locked(dir.display().to_string()));
        }
        return Err(StorageError::io(format!("flock {}", path.display()), err));
    }
    Ok(f)
}

/// Read a whole file, `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(format!("read {}", path.display()), e)),
    }
}

/// Remove a file; a file that is already gone is not an error.
pub fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(format!("remove {}", path.display()), e)),
    }
}

/// fdatasync every regular file under `dir` (recursively), then fsync every
/// directory, deepest first. Files that vanish while we walk (sled renames
/// its snapshots in the background) are skipped: whatever replaced them is
/// covered by the directory fsync and the next checkpoint.
pub fn sync_tree(dir: &Path) -> Result<u64, StorageError> {
    let mut synced = 0u64;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StorageError::io(format!("read dir {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.ctx(|| format!("read dir {}", dir.display()))?;
        let path = entry.path();
        let ft = match entry.file_type() {
            Ok(ft) => ft,
            Err(_) => continue,
        };
        if ft.is_dir() {
            synced += sync_tree(&path)?;
        } else if ft.is_file() {
            match File::open(&path) {
                Ok(f) => {
                    f.sync_data().ctx(|| format!("fdatasync {}", path.display()))?;
                    synced += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(format!("open {}", path.display()), e)),
            }
        }
    }
    sync_dir(dir)?;
    Ok(synced)
}
