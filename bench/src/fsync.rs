//! The machine's raw fdatasync rate, measured on the directory the node
//! logs into, so durable writes/s can be read against it in the same run:
//! writes/s ÷ raw syncs/s = how many writes each sync must carry.
//!
//! The probe does what the log does at its cheapest: overwrite 4 KiB blocks
//! of a pre-allocated (zero-filled) file, one fdatasync per block, one
//! writer. Pre-allocation matters: growing a file also syncs its size
//! (measured ~40 % fewer syncs/s, see CRATE_NOTES.md).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Bytes written before each sync (one log page).
pub const BLOCK_BYTES: usize = 4096;
/// The probe file: 16 MiB, cycled through.
const FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct FsyncRate {
    pub dir: PathBuf,
    pub block_bytes: usize,
    pub syncs: u64,
    pub seconds: f64,
    pub syncs_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl FsyncRate {
    pub fn to_text(&self) -> String {
        format!(
            "fdatasync  {:.0} syncs/s ({} x {} B write + fdatasync in {:.2} s, one writer, pre-allocated file in {}); \
             sync latency p50 {} us, p99 {} us, max {} us",
            self.syncs_per_s,
            self.syncs,
            self.block_bytes,
            self.seconds,
            self.dir.display(),
            self.p50_us,
            self.p99_us,
            self.max_us
        )
    }
}

/// Removes the probe file however the probe ends.
struct ProbeFile(PathBuf);

impl Drop for ProbeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Measures for `duration` (bounded to 1 h) in `dir`.
pub fn measure(dir: &Path, duration: Duration) -> std::io::Result<FsyncRate> {
    if duration.is_zero() || duration > Duration::from_secs(3600) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "duration must be in (0, 1h]"));
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".maple-bench-fsync-{}", std::process::id()));
    let guard = ProbeFile(path.clone());
    let mut f: File = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&guard.0)?;
    // Pre-allocate with real zeros (not a sparse file) and make that durable.
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..FILE_BYTES / zeros.len() as u64 {
        f.write_all(&zeros)?;
    }
    f.sync_all()?;
    let block = [0xA5u8; BLOCK_BYTES];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
    let blocks = FILE_BYTES / BLOCK_BYTES as u64;
    let start = Instant::now();
    let mut syncs = 0u64;
    while start.elapsed() < duration {
        f.seek(SeekFrom::Start((syncs % blocks) * BLOCK_BYTES as u64))?;
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        hist.saturating_record((t.elapsed().as_micros() as u64).max(1));
        syncs += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(f);
    drop(guard);
    Ok(FsyncRate {
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        block_bytes: BLOCK_BYTES,
        syncs,
        seconds,
        syncs_per_s: syncs as f64 / seconds,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_syncs_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let r = measure(dir.path(), Duration::from_millis(150)).unwrap();
        assert!(r.syncs > 0);
        assert!(r.syncs_per_s > 0.0 && r.p50_us <= r.max_us);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "probe file removed");
        assert!(r.to_text().starts_with("fdatasync  "));
        assert!(measure(dir.path(), Duration::ZERO).is_err());
    }
}
