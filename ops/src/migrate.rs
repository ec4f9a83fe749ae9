//! Migration of a format-1 data dir (`core-<n>/{wal,state}`, no
//! `MAPLE_DATA`) into format 2, at the first start of this build.
//!
//! For each old core: read it strictly (`storage::v1`: damage followed by
//! valid records is refused, naming the file and offset), rebuild its state
//! at the end of its log (the store's rows, then the log's records after the
//! store's checkpoint, applied by the partition state machine with the
//! store's rule), and place every row in the new partition of its
//! character: like relations, stored expectations and idempotency bindings
//! (from keyed records still in the old log). Format-1 idempotency answers
//! (`idem/` rows) are dropped: they do not say which character the key was
//! used for, so they cannot be placed (a retry of such a key after the
//! migration is a new toggle); the count is logged.
//!
//! Crash-safe order (a marker file says a migration is under way):
//! 0. read every old core (a refusal changes nothing);
//! 1. write `MIGRATING` (fsynced);
//! 2. build `log-<l>/` and `state/` (each partition seeded: durable);
//! 3. write `MAPLE_DATA` — from here the dir is format 2;
//! 4. rename each `core-<n>` to `core-<n>.migrated` (never deleted), fsync the dir;
//! 5. remove `MIGRATING`.
//!
//! A crash before 3: the next start finds `MIGRATING` and no `MAPLE_DATA`,
//! removes the partial `log-*` / `state` (only because the marker proves
//! this build made them) and migrates again. A crash after 3: `MAPLE_DATA`
//! is there; the start finishes 4 and 5 ([`finish`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use engine::partition::{rows, Limits, Record, Restorer};
use replication::{seed_partition, NodeInfo, SlotMap};
use storage::store::{KvWrite, SnapshotRow, Store, StoreOptions};

use crate::cmd_serve::MAX_ENTRY_BYTES;
use crate::config::{Config, DEFAULT_PARTITIONS};
use crate::datadir::{self, DataMeta};

pub const MARKER: &str = "MIGRATING";

/// A migration was interrupted here (its marker is present).
pub fn interrupted(dir: &Path) -> bool {
    dir.join(MARKER).exists()
}

/// Remove what an interrupted migration left (only when its marker says so).
pub fn clear_interrupted(dir: &Path) -> anyhow::Result<()> {
    if !interrupted(dir) {
        return Ok(());
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name == "state" || name.starts_with("log-") {
            tracing::warn!(path = %e.path().display(), "removing what an interrupted migration left");
            std::fs::remove_dir_all(e.path()).with_context(|| format!("removing {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// The rows of one old core at the end of its log: key → (index, value).
type Rows = BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>;

/// The store's rule on an in-memory image (as `storage`'s key-value rules).
fn apply_writes(rows: &mut Rows, index: u64, writes: &[KvWrite]) {
    for w in writes {
        match w {
            KvWrite::Put { key, value } => {
                if rows.get(key).is_none_or(|(i, _)| *i < index) {
                    rows.insert(key.clone(), (index, Some(value.clone())));
                }
            }
            KvWrite::Delete { key } => {
                if rows.get(key).is_none_or(|(i, _)| *i < index) {
                    rows.insert(key.clone(), (index, None));
                }
            }
            KvWrite::Evict { key, written_by } => {
                if rows.get(key).is_some_and(|(i, v)| v.is_some() && *i <= *written_by && *i < index) {
                    rows.insert(key.clone(), (index, None));
                }
            }
        }
    }
}

/// What one old core held, counted.
#[derive(Debug, Default)]
struct Counts {
    relations: usize,
    expectations: usize,
    bindings: usize,
    answers_dropped: usize,
    replayed: usize,
}

/// Read core `n` and fold its rows into `parts` (partition → rows).
fn fold_core(dir: &Path, n: u32, slots: &SlotMap, parts: &mut BTreeMap<u32, Vec<SnapshotRow>>, c: &mut Counts) -> anyhow::Result<()> {
    let core_dir = dir.join(format!("core-{n}"));
    let v1 =
        storage::v1::read_core(&core_dir, MAX_ENTRY_BYTES).with_context(|| format!("reading the format-1 core {}", core_dir.display()))?;
    if let Some((path, offset)) = &v1.torn_tail {
        tracing::info!(path = %path.display(), offset, "format-1 log: a torn last record (never acknowledged) is left out");
    }
    let mut restorer = Restorer::new(Limits::default());
    let mut image: Rows = BTreeMap::new();
    for (key, index, value) in v1.rows {
        if let Some(v) = &value {
            restorer
                .row(&key, index, v)
                .with_context(|| format!("{}: store row {:?}", core_dir.display(), String::from_utf8_lossy(&key)))?;
        }
        image.insert(key, (index, value));
    }
    let mut machine = restorer.finish(v1.checkpoint);
    for e in &v1.entries {
        let record =
            Record::decode(&e.payload).with_context(|| format!("{}: log entry {} is not a record", core_dir.display(), e.index))?;
        let applied = machine.apply(e.index, &record);
        apply_writes(&mut image, e.index, &applied.writes);
        c.replayed += 1;
    }
    for (key, (_, value)) in image {
        let Some(value) = value else { continue };
        let character = if let Some(rest) = key.strip_prefix(rows::RELATION_PREFIX) {
            c.relations += 1;
            rest.split(|b| *b == 0).next().map(|c| String::from_utf8_lossy(c).to_string())
        } else if let Some(rest) = key.strip_prefix(rows::EXPECTATION_META_PREFIX) {
            Some(String::from_utf8_lossy(rest).to_string())
        } else if let Some(rest) = key.strip_prefix(rows::EXPECTATION_PREFIX) {
            c.expectations += 1;
            Some(String::from_utf8_lossy(rest).to_string())
        } else if key.starts_with(rows::KEY_PREFIX) {
            c.bindings += 1;
            rows::decode_key_row(&value).ok().map(|r| r.character)
        } else {
            // `idem/`: format-1 idempotency answers (no character: dropped).
            c.answers_dropped += 1;
            None
        };
        let Some(character) = character else { continue };
        let p = slots.partition_of(replication::slot_of(&character));
        parts.entry(p).or_default().push(SnapshotRow { key, index: 1, value: Some(value) });
    }
    Ok(())
}

/// Migrate the format-1 dir of `cfg.data_dir` (its cores: `cores`).
pub fn migrate(cfg: &Config, cores: &[u32]) -> anyhow::Result<DataMeta> {
    let dir = &cfg.data_dir;
    let started = std::time::Instant::now();
    clear_interrupted(dir)?;
    let meta = DataMeta::for_cluster(cfg.partitions.unwrap_or(DEFAULT_PARTITIONS), cfg.cores as u32, &cfg.cluster);
    tracing::info!(
        data_dir = %dir.display(),
        cores = cores.len(),
        partitions = meta.partitions,
        "maple serve: migrating the format-1 data dir {} ({} cores) into {} partitions over {} logs",
        dir.display(),
        cores.len(),
        meta.partitions,
        meta.logs
    );
    let slots = SlotMap::new(meta.partitions, meta.logs as usize);
    let mut parts: BTreeMap<u32, Vec<SnapshotRow>> = BTreeMap::new();
    let mut counts = Counts::default();
    // Read everything first: a refusal leaves the dir as it was.
    for &n in cores {
        fold_core(dir, n, &slots, &mut parts, &mut counts)?;
    }
    std::fs::write(dir.join(MARKER), b"a format-1 migration is under way\n")
        .with_context(|| format!("writing {}", dir.join(MARKER).display()))?;
    datadir::sync_dir(dir)?;
    seed(cfg, &meta, parts)?;
    datadir::write_meta(dir, &meta)?;
    finish(dir, cores)?;
    tracing::info!(
        relations = counts.relations,
        expectations = counts.expectations,
        bindings = counts.bindings,
        answers_dropped = counts.answers_dropped,
        "maple serve: migration done in {:.1} s: {} like relations, {} stored expectations, {} idempotency bindings; {} \
         log entries replayed; {} format-1 idempotency answers dropped (they do not name their character: a retry of \
         such a key is a new toggle); the old dirs are kept as core-<n>.migrated",
        started.elapsed().as_secs_f64(),
        counts.relations,
        counts.expectations,
        counts.bindings,
        counts.replayed,
        counts.answers_dropped
    );
    Ok(meta)
}

/// Build the format-2 logs and store with every partition seeded.
fn seed(cfg: &Config, meta: &DataMeta, mut parts: BTreeMap<u32, Vec<SnapshotRow>>) -> anyhow::Result<()> {
    let dir = &cfg.data_dir;
    let state = datadir::state_dir(dir);
    let store = Store::open(&state, StoreOptions { cache_bytes: 64 << 20, sync: cfg.wal_sync })
        .with_context(|| format!("creating the state store {}", state.display()))?;
    let members =
        BTreeMap::from([(1u64, NodeInfo { peer_addr: String::new(), http_addr: cfg.listen.to_string(), resp_addr: String::new() })]);
    let mut logs = HashMap::new();
    for l in 0..meta.logs {
        let path = datadir::log_dir(dir, l);
        let opts = storage::log::LogOptions {
            segment_bytes: cfg.wal_segment_bytes,
            max_entry_bytes: MAX_ENTRY_BYTES,
            max_vote_bytes: 256,
            sync: cfg.wal_sync,
            ..Default::default()
        };
        let (log, _) = storage::log::Log::open(&path, opts).with_context(|| format!("creating {}", path.display()))?;
        store.attach_log(l, log.clone())?;
        logs.insert(l, log);
    }
    for p in 0..meta.partitions {
        let rows = parts.remove(&p).unwrap_or_default();
        if rows.is_empty() {
            continue; // a fresh group: bootstrapped at start like any new one
        }
        seed_partition(&store, p % meta.logs, p, rows, members.clone()).with_context(|| format!("seeding partition {p}"))?;
    }
    Ok(())
}

/// Rename the old core dirs (never delete them), then drop the marker.
pub fn finish(dir: &Path, cores: &[u32]) -> anyhow::Result<()> {
    for n in cores {
        let from = dir.join(format!("core-{n}"));
        let to = dir.join(format!("core-{n}.migrated"));
        std::fs::rename(&from, &to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    }
    datadir::sync_dir(dir)?;
    let marker = dir.join(MARKER);
    if marker.exists() {
        std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
        datadir::sync_dir(dir)?;
    }
    Ok(())
}
