//! The data dir, format 2:
//!
//! ```text
//! <data-dir>/
//!   lock          flock of the whole dir (cmd_serve takes it before binding)
//!   MAPLE_DATA    format, partitions P, logs L, created, node id: written once
//!   log-<l>/      one multi-group write-ahead log per l < L (L = --cores at
//!                 creation); partition p's group lives in log p % L
//!   state/        the state store (one sled Db, a tree per partition)
//!   core-<n>.migrated/   a format-1 dir's cores, after their migration
//! ```
//!
//! [`prepare`] reads `MAPLE_DATA` (refusing a `--partitions` that disagrees
//! with it: the key → partition map is never changed silently), creates it
//! for a new dir, or migrates a format-1 dir (`core-<n>/{wal,state}`, see
//! `migrate`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::config::{Config, DEFAULT_PARTITIONS};

pub const META_FILE: &str = "MAPLE_DATA";
/// The data dir format this build writes.
pub const FORMAT: u32 = 2;

/// What `MAPLE_DATA` records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataMeta {
    pub format: u32,
    pub partitions: u32,
    pub logs: u32,
    /// RFC 3339, UTC.
    pub created: String,
    pub node_id: u64,
    /// The cluster's nodes as `ID=HOST:PORT` (peer addresses) when the dir
    /// was created; absent (older dirs, one-node clusters): just this node.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Replicas per partition; absent: 1.
    #[serde(default = "one")]
    pub replicas: u32,
}

fn one() -> u32 {
    1
}

impl DataMeta {
    pub fn new(partitions: u32, logs: u32, node_id: u64) -> DataMeta {
        DataMeta {
            format: FORMAT,
            partitions,
            logs,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            node_id,
            peers: Vec::new(),
            replicas: 1,
        }
    }

    /// [`DataMeta::new`] for a node of `cluster`.
    pub fn for_cluster(partitions: u32, logs: u32, cluster: &crate::config::ClusterConfig) -> DataMeta {
        DataMeta {
            peers: cluster.peers.iter().map(|(id, a)| format!("{id}={a}")).collect(),
            replicas: cluster.replicas as u32,
            ..DataMeta::new(partitions, logs, cluster.node_id)
        }
    }

    /// The node ids of the cluster the dir was created in.
    pub fn node_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.peers.iter().filter_map(|e| e.split_once('=').and_then(|(id, _)| id.trim().parse().ok())).collect();
        if ids.is_empty() {
            ids.push(self.node_id);
        }
        ids.sort_unstable();
        ids
    }

    fn text(&self) -> String {
        format!(
            "# maple-engine data directory. Written once when the directory was created; never edit it:\n\
             # the partition count decides which partition (and so which log and which\n\
             # state tree) holds each key.\n\
             format = {}\npartitions = {}\nlogs = {}\ncreated = \"{}\"\nnode_id = {}\nreplicas = {}\npeers = [{}]\n",
            self.format,
            self.partitions,
            self.logs,
            self.created,
            self.node_id,
            self.replicas,
            self.peers.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", ")
        )
    }

    /// The partitions whose group lives in log `l`.
    pub fn partitions_of_log(&self, l: u32) -> Vec<u32> {
        (0..self.partitions).filter(|p| p % self.logs == l).collect()
    }
}

pub fn log_dir(data_dir: &Path, l: u32) -> PathBuf {
    data_dir.join(format!("log-{l}"))
}

pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("state")
}

/// The format-1 core directories (`core-<n>`, not yet migrated), by number.
pub fn v1_cores(data_dir: &Path) -> anyhow::Result<Vec<u32>> {
    let mut cores = Vec::new();
    for e in std::fs::read_dir(data_dir).with_context(|| format!("reading the data dir {}", data_dir.display()))? {
        let e = e.with_context(|| format!("reading the data dir {}", data_dir.display()))?;
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_prefix("core-")).and_then(|n| n.parse::<u32>().ok()) else { continue };
        if e.path().is_dir() {
            cores.push(n);
        }
    }
    cores.sort_unstable();
    Ok(cores)
}

pub fn read_meta(data_dir: &Path) -> anyhow::Result<Option<DataMeta>> {
    let path = data_dir.join(META_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let meta: DataMeta = toml::from_str(&text).with_context(|| format!("{} is not a maple-engine data dir file", path.display()))?;
    anyhow::ensure!(
        meta.format == FORMAT,
        "{} says format {}; this build reads format {FORMAT} (and migrates format 1, which has no such file)",
        path.display(),
        meta.format
    );
    anyhow::ensure!(
        (1..=replication::MAX_PARTITIONS).contains(&meta.partitions) && meta.logs >= 1 && meta.logs <= 1024,
        "{}: partitions {} / logs {} out of range",
        path.display(),
        meta.partitions,
        meta.logs
    );
    Ok(Some(meta))
}

/// Write `MAPLE_DATA` (temp file, fsync, rename, fsync of the dir).
pub fn write_meta(data_dir: &Path, meta: &DataMeta) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = data_dir.join(format!("{META_FILE}.tmp"));
    let path = data_dir.join(META_FILE);
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(meta.text().as_bytes()).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    sync_dir(data_dir)
}

pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing the directory {}", dir.display()))
}

/// The data dir's format file, created or migrated when needed (the dir is
/// locked by the caller).
pub fn prepare(cfg: &Config) -> anyhow::Result<DataMeta> {
    let dir = &cfg.data_dir;
    let v1 = v1_cores(dir)?;
    let meta = match read_meta(dir)? {
        Some(meta) => {
            if !v1.is_empty() {
                // A migration wrote MAPLE_DATA and stopped before renaming
                // every old core dir: finish it.
                crate::migrate::finish(dir, &v1)?;
            }
            meta
        }
        None if !v1.is_empty() => crate::migrate::migrate(cfg, &v1)?,
        None => {
            let leftovers = leftovers(dir)?;
            anyhow::ensure!(
                leftovers.is_empty() || crate::migrate::interrupted(dir),
                "the data dir {} holds {} but no {META_FILE}: it was not created by this build, or its {META_FILE} was \
                 lost. Refusing to start (nothing was changed); restore {META_FILE}, or move those away",
                dir.display(),
                leftovers.join(", ")
            );
            crate::migrate::clear_interrupted(dir)?;
            let meta = DataMeta::for_cluster(cfg.partitions.unwrap_or(DEFAULT_PARTITIONS), cfg.cores as u32, &cfg.cluster);
            write_meta(dir, &meta)?;
            tracing::info!(
                data_dir = %dir.display(),
                partitions = meta.partitions,
                logs = meta.logs,
                "maple serve: new data dir {} (format {FORMAT}): {} partitions over {} logs",
                dir.display(),
                meta.partitions,
                meta.logs
            );
            meta
        }
    };
    anyhow::ensure!(
        meta.node_id == cfg.cluster.node_id,
        "the data dir {} belongs to node {} and this start says --node-id {}: a node's Raft state (votes, logs) is \
         only valid under its own id. Start with --node-id {}, or use a new data dir",
        dir.display(),
        meta.node_id,
        cfg.cluster.node_id,
        meta.node_id
    );
    let (was, now) = (meta.node_ids(), cfg.cluster.node_ids());
    anyhow::ensure!(
        was == now && meta.replicas as usize == cfg.cluster.replicas,
        "the data dir {} was created in a cluster of nodes {was:?} with {} replicas per partition, and this start says \
         nodes {now:?} (--peers) with {} replicas: the node set and the replica count decide which nodes hold every \
         partition, so they never change silently. Start with the same --peers / --replicas, or use a new data dir",
        dir.display(),
        meta.replicas,
        cfg.cluster.replicas
    );
    if let Some(p) = cfg.partitions {
        anyhow::ensure!(
            p == meta.partitions,
            "the data dir {} was created with {} partitions and --partitions says {p}: the partition count decides where \
             every key's data lives, so it never changes. Start without --partitions (or with --partitions {}), or use \
             a new data dir",
            dir.display(),
            meta.partitions,
            meta.partitions
        );
    }
    Ok(meta)
}

/// Format-2 names present without `MAPLE_DATA`.
fn leftovers(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading the data dir {}", dir.display()))? {
        let name = e.with_context(|| format!("reading the data dir {}", dir.display()))?.file_name().to_string_lossy().to_string();
        if name == "state" || name.starts_with("log-") {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_file_round_trips_and_maps_partitions_to_logs() {
        let dir = tempfile_dir("meta");
        assert_eq!(read_meta(&dir).unwrap(), None);
        let meta = DataMeta::new(16, 3, 1);
        write_meta(&dir, &meta).unwrap();
        assert_eq!(read_meta(&dir).unwrap(), Some(meta.clone()));
        assert_eq!(meta.partitions_of_log(1), vec![1, 4, 7, 10, 13]);
        std::fs::write(dir.join(META_FILE), "format = 3\npartitions = 16\nlogs = 1\ncreated = \"x\"\nnode_id = 1\n").unwrap();
        assert!(read_meta(&dir).unwrap_err().to_string().contains("format 3"));
        std::fs::write(dir.join(META_FILE), "format = 2\npartitions = 16\n").unwrap();
        assert!(read_meta(&dir).is_err(), "a file missing keys is refused");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_start_with_another_node_id_refuses() {
        let dir = tempfile_dir("nodeid");
        let flags = |id: u64| crate::config::ServeFlags { data_dir: Some(dir.clone()), node_id: Some(id), ..Default::default() };
        let cfg = Config::resolve(&flags(2)).unwrap();
        assert_eq!(prepare(&cfg).unwrap().node_id, 2, "recorded at creation");
        assert_eq!(read_meta(&dir).unwrap().unwrap().node_id, 2);
        let err = prepare(&Config::resolve(&flags(3)).unwrap()).unwrap_err().to_string();
        assert!(err.contains("belongs to node 2") && err.contains("--node-id 3"), "{err}");
        assert!(prepare(&cfg).is_ok(), "the same id starts");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_start_with_another_node_set_refuses() {
        let dir = tempfile_dir("peers");
        let flags = |peers: &str| crate::config::ServeFlags {
            data_dir: Some(dir.clone()),
            node_id: Some(1),
            peers: Some(peers.into()),
            ..Default::default()
        };
        let three = "1=127.0.0.1:7100,2=127.0.0.1:7101,3=127.0.0.1:7102";
        let meta = prepare(&Config::resolve(&flags(three)).unwrap()).unwrap();
        assert_eq!((meta.node_ids(), meta.replicas), (vec![1, 2, 3], 3));
        assert_eq!(read_meta(&dir).unwrap().unwrap(), meta, "recorded");
        assert!(prepare(&Config::resolve(&flags("1=127.0.0.1:8100,2=h:8101,3=h:8102")).unwrap()).is_ok(), "addresses may move");
        let err = prepare(&Config::resolve(&flags("1=127.0.0.1:7100,2=127.0.0.1:7101")).unwrap()).unwrap_err().to_string();
        assert!(err.contains("nodes [1, 2, 3]") && err.contains("nodes [1, 2]"), "{err}");
        let single = crate::config::ServeFlags { data_dir: Some(dir.clone()), ..Default::default() };
        assert!(prepare(&Config::resolve(&single).unwrap()).is_err(), "a one-node start on a cluster dir");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("maple-datadir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
