//! Migration of format-1 data dirs (`core-<n>/{wal,state}`, no
//! `MAPLE_DATA`) into format 2. (Stage 3 of branch node2: not implemented
//! at this commit; a format-1 dir is refused with a clear message.)

use std::path::Path;

use crate::config::Config;
use crate::datadir::DataMeta;

pub const MARKER: &str = "MIGRATING";

pub fn migrate(cfg: &Config, cores: &[u32]) -> anyhow::Result<DataMeta> {
    anyhow::bail!("the data dir {} is format 1 ({} core dirs); this build cannot migrate it yet", cfg.data_dir.display(), cores.len())
}

/// Rename the old core dirs a finished migration left behind.
pub fn finish(dir: &Path, cores: &[u32]) -> anyhow::Result<()> {
    anyhow::bail!("the data dir {} holds MAPLE_DATA and format-1 core dirs {cores:?}", dir.display())
}

/// A migration was interrupted here (its marker is present).
pub fn interrupted(dir: &Path) -> bool {
    dir.join(MARKER).exists()
}

/// Remove what an interrupted migration left (only when its marker says so).
pub fn clear_interrupted(_dir: &Path) -> anyhow::Result<()> {
    Ok(())
}
