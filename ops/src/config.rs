//! `maple serve` configuration: flags > `MAPLE_*` environment > TOML file
//! (`--config`) > defaults. Every field is documented in `maple serve --help`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

/// Command-line flags and their environment variables. All optional here so
/// that a value given in the TOML file is only overridden by one given
/// explicitly.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ServeFlags {
    /// TOML config file (keys: the long flag names with '_' for '-', e.g. `listen`, `cache_equipment_mb`).
    #[arg(long, env = "MAPLE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address: `IP:port`, `[IPv6]:port`, `:port` (all IPv4 interfaces) or `host:port`
    /// (resolved once at start; the first IPv4 address wins) [default: 0.0.0.0:8080].
    #[arg(long, env = "MAPLE_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// RESP (Redis protocol) listen address, in the same forms as --listen, or `off` for none. Every core accepts
    /// (SO_REUSEPORT); the node prints `resp listening on ADDR` [default: 0.0.0.0:6380].
    #[arg(long, env = "MAPLE_RESP_LISTEN", value_parser = parse_resp_listen)]
    pub resp_listen: Option<RespListen>,
    /// Cores (threads, each with its own runtime and shard) [default: available parallelism].
    #[arg(long, env = "MAPLE_CORES")]
    pub cores: Option<usize>,
    /// Data directory [default: ./data].
    #[arg(long, env = "MAPLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Partitions of a NEW data dir (1..=1024): key slots are split into this many contiguous ranges, each one Raft
    /// group. Recorded in the data dir at creation and never changed: a later start with another value refuses
    /// (--cores can change freely) [default: 16 for a new data dir, else the data dir's].
    #[arg(long, env = "MAPLE_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Nexon Open API key. With a key the default upstream is https://open.api.nexon.com;
    /// without one (and without --upstream-url) the simulator runs in-process.
    #[arg(long, env = "MAPLE_NEXON_API_KEY", hide_env_values = true)]
    pub nexon_api_key: Option<String>,
    /// Upstream base URL, e.g. http://127.0.0.1:9090 for a separate `maple upstream-sim`.
    #[arg(long, env = "MAPLE_UPSTREAM_URL")]
    pub upstream_url: Option<String>,
    /// Upstream request timeout, ms [default: 3000].
    #[arg(long, env = "MAPLE_UPSTREAM_TIMEOUT_MS")]
    pub upstream_timeout_ms: Option<u64>,
    /// Fixture directory of the in-process simulator (evan_equip.json, mechanic_equip.json,
    /// basic_character_info.json) [default: the fixtures compiled into the binary].
    #[arg(long, env = "MAPLE_SIM_DATA_DIR")]
    pub sim_data_dir: Option<PathBuf>,
    /// In-process simulator: added latency per upstream call, ms [default: 0].
    #[arg(long, env = "MAPLE_SIM_LATENCY_MS")]
    pub sim_latency_ms: Option<u64>,
    /// In-process simulator: share of upstream calls that fail with 503, 0.0..=1.0 [default: 0].
    #[arg(long, env = "MAPLE_SIM_FAILURE_RATE")]
    pub sim_failure_rate: Option<f64>,
    /// Memory budget of the whole node, MiB (256..=1048576): 128 MiB + 40 % kept for the process itself, the rest split
    /// across the caches, the like book and the state store's page cache (see the README). The per-cache flags below
    /// win when given [default: 25 % of the machine's memory (MemTotal), at least 256, at most 2048].
    #[arg(long, env = "MAPLE_MEMORY_MB")]
    pub memory_mb: Option<usize>,
    /// Equipment cache per core, MiB: upstream JSON as fetched; compressed to gzip on the equipment route's first read
    /// [default: 27 % of --memory-mb after its reserve, split over the cores].
    #[arg(long, env = "MAPLE_CACHE_EQUIPMENT_MB")]
    pub cache_equipment_mb: Option<usize>,
    /// Rendered expectation cache per core, MiB [default: 18 % of --memory-mb after its reserve, split over the cores].
    #[arg(long, env = "MAPLE_CACHE_EXPECTATION_MB")]
    pub cache_expectation_mb: Option<usize>,
    /// Per-core read copies of other cores' hot responses, MiB [default: 7 % of --memory-mb after its reserve, split over the cores].
    #[arg(long, env = "MAPLE_CACHE_READ_COPY_MB")]
    pub cache_read_copy_mb: Option<usize>,
    /// Age until a cached value is refetched, s [default: 300].
    #[arg(long, env = "MAPLE_CACHE_TTL_SECS")]
    pub cache_ttl_secs: Option<u64>,
    /// Age until a cached value may no longer be served stale when upstream fails, s [default: 86400].
    #[arg(long, env = "MAPLE_CACHE_STALE_SECS")]
    pub cache_stale_secs: Option<u64>,
    /// Max request head (line + headers), bytes; over → 431 [default: 16384].
    #[arg(long, env = "MAPLE_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Max request body, bytes; over → 413 [default: 1048576].
    #[arg(long, env = "MAPLE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Max requests inside the service per core; over → 503 [default: 4096].
    #[arg(long, env = "MAPLE_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Cold-path admission: a new cold computation (upstream fetch + compute) whose estimated
    /// wait on its owner core is longer than this is answered 503 OVERLOADED at once, ms (1..=60000) [default: 100].
    #[arg(long, env = "MAPLE_MAX_QUEUE_MS")]
    pub max_queue_ms: Option<u64>,
    /// Max open connections per core [default: 10000].
    #[arg(long, env = "MAPLE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Graceful-shutdown budget after SIGTERM, s [default: 10].
    #[arg(long, env = "MAPLE_DRAIN_SECS")]
    pub drain_secs: Option<u64>,
    /// HS256 secret for user tokens (likes) [default: the dev secret `maple-dev-secret`, logged as a warning].
    #[arg(long, env = "MAPLE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Write-ahead log segment size per core, MiB (pre-allocated on disk; 4..=4095) [default: 64].
    #[arg(long, env = "MAPLE_WAL_SEGMENT_MB")]
    pub wal_segment_mb: Option<u64>,
    /// Write-ahead log sync: `fsync` (fdatasync before every acknowledgement, group commit) or `off`
    /// (benchmark only: same write path without fdatasync; acknowledged writes can be lost on power loss) [default: fsync].
    #[arg(long, env = "MAPLE_WAL_SYNC")]
    pub wal_sync: Option<String>,
    /// Stored (written-behind) expectations kept on disk by the whole node; the oldest beyond are
    /// evicted through the log, as are those older than cache_stale_secs [default: 50000].
    #[arg(long, env = "MAPLE_STORE_EXPECTATIONS_MAX")]
    pub store_expectations_max: Option<usize>,
    /// How long a like toggle's Idempotency-Key answers retries with its first answer, also across
    /// restarts, s [default: 86400].
    #[arg(long, env = "MAPLE_IDEMPOTENCY_TTL_SECS")]
    pub idempotency_ttl_secs: Option<u64>,
    /// How often the periodic jobs (expectation eviction, idempotency expiry) run on each partition this node
    /// leads, ms (10..=3600000) [default: 30000].
    #[arg(long, env = "MAPLE_JOBS_EVERY_MS")]
    pub jobs_every_ms: Option<u64>,
    /// Upstream circuit breaker: how long it stays open before it lets probe calls through, s (1..=3600) [default: 30].
    #[arg(long, env = "MAPLE_BREAKER_OPEN_SECS")]
    pub breaker_open_secs: Option<u64>,
    /// This node's id in the cluster (1..=2^63). Recorded in a new data dir; a later start with another id refuses
    /// [default: 1].
    #[arg(long, env = "MAPLE_NODE_ID")]
    pub node_id: Option<u64>,
    /// Every node of the cluster as `ID=HOST:PORT` (its peer protocol address), comma-separated, this node included,
    /// e.g. `1=10.0.0.1:7100,2=10.0.0.2:7100,3=10.0.0.3:7100`. Without it the node is a one-node cluster (each
    /// partition a one-member Raft group) on the same code path [default: none].
    #[arg(long, env = "MAPLE_PEERS")]
    pub peers: Option<String>,
    /// Peer protocol listen address [default: this node's own --peers entry].
    #[arg(long, env = "MAPLE_PEER_LISTEN", value_parser = parse_listen)]
    pub peer_listen: Option<SocketAddr>,
    /// Replicas of each partition (1..=nodes), each on another node [default: min(3, nodes)].
    #[arg(long, env = "MAPLE_REPLICAS")]
    pub replicas: Option<usize>,
}

/// The `[cluster]` section of the TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    node_id: Option<u64>,
    /// `["1=10.0.0.1:7100", ...]`
    peers: Option<Vec<String>>,
    peer_listen: Option<String>,
    replicas: Option<usize>,
}

/// The node's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub node_id: u64,
    /// Every node's peer address (`HOST:PORT` as given), this one included;
    /// empty for a one-node cluster.
    pub peers: std::collections::BTreeMap<u64, String>,
    /// Where this node's peer listener binds (None: a one-node cluster).
    pub peer_listen: Option<SocketAddr>,
    /// Replicas per partition.
    pub replicas: usize,
}

impl ClusterConfig {
    /// The node ids of the cluster (just this one without --peers).
    pub fn node_ids(&self) -> Vec<u64> {
        if self.peers.is_empty() {
            vec![self.node_id]
        } else {
            self.peers.keys().copied().collect()
        }
    }

    fn resolve(flags: &ServeFlags, file: ClusterFile) -> anyhow::Result<ClusterConfig> {
        let node_id = flags.node_id.or(file.node_id).unwrap_or(1);
        anyhow::ensure!((1..=i64::MAX as u64).contains(&node_id), "node_id must be >= 1, got {node_id}");
        let entries: Vec<String> = match (&flags.peers, file.peers) {
            (Some(list), _) => list.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect(),
            (None, Some(list)) => list,
            (None, None) => Vec::new(),
        };
        let peers = parse_peers(&entries)?;
        if peers.is_empty() {
            let replicas = flags.replicas.or(file.replicas).unwrap_or(1);
            anyhow::ensure!(replicas == 1, "replicas {replicas} needs --peers: a one-node cluster has 1 replica per partition");
            let listen = match (flags.peer_listen, &file.peer_listen) {
                (Some(a), _) => Some(a),
                (None, Some(t)) => Some(parse_listen(t).map_err(|e| anyhow::anyhow!("config file: peer_listen: {e}"))?),
                (None, None) => None,
            };
            anyhow::ensure!(listen.is_none(), "peer_listen needs --peers (a one-node cluster has no peers)");
            return Ok(ClusterConfig { node_id, peers, peer_listen: None, replicas: 1 });
        }
        let own = peers.get(&node_id).ok_or_else(|| {
            anyhow::anyhow!("--peers lists nodes {:?} but not this node's id {node_id} (--node-id)", peers.keys().collect::<Vec<_>>())
        })?;
        let peer_listen = match (flags.peer_listen, &file.peer_listen) {
            (Some(a), _) => a,
            (None, Some(t)) => parse_listen(t).map_err(|e| anyhow::anyhow!("config file: peer_listen: {e}"))?,
            (None, None) => parse_listen(own).map_err(|e| anyhow::anyhow!("--peers entry of node {node_id}: {e}"))?,
        };
        let replicas = flags.replicas.or(file.replicas).unwrap_or_else(|| replication::default_rf(peers.len()));
        anyhow::ensure!(
            (1..=peers.len()).contains(&replicas),
            "replicas must be in 1..={} (the nodes in --peers), got {replicas}",
            peers.len()
        );
        Ok(ClusterConfig { node_id, peers, peer_listen: Some(peer_listen), replicas })
    }
}

/// `ID=HOST:PORT` entries → id → address; ids unique and >= 1, every
/// address with a numeric port.
pub fn parse_peers(entries: &[String]) -> anyhow::Result<std::collections::BTreeMap<u64, String>> {
    let mut peers = std::collections::BTreeMap::new();
    for e in entries {
        let (id, addr) = e.split_once('=').ok_or_else(|| anyhow::anyhow!("peer entry {e:?}: expected ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| anyhow::anyhow!("peer entry {e:?}: the id {id:?} is not a number"))?;
        anyhow::ensure!(id >= 1, "peer entry {e:?}: ids start at 1");
        let addr = addr.trim();
        let port = addr.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
        anyhow::ensure!(
            matches!(port, Some((h, Ok(p))) if !h.is_empty() && p != 0),
            "peer entry {e:?}: the address needs a host and a port (HOST:PORT, port 1..=65535)"
        );
        anyhow::ensure!(peers.insert(id, addr.to_owned()).is_none(), "peer entry {e:?}: node id {id} listed twice");
    }
    Ok(peers)
}

/// The TOML file: same names as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    resp_listen: Option<String>,
    cores: Option<usize>,
    data_dir: Option<PathBuf>,
    partitions: Option<u32>,
    nexon_api_key: Option<String>,
    upstream_url: Option<String>,
    upstream_timeout_ms: Option<u64>,
    sim_data_dir: Option<PathBuf>,
    sim_latency_ms: Option<u64>,
    sim_failure_rate: Option<f64>,
    memory_mb: Option<usize>,
    cache_equipment_mb: Option<usize>,
    cache_expectation_mb: Option<usize>,
    cache_read_copy_mb: Option<usize>,
    cache_ttl_secs: Option<u64>,
    cache_stale_secs: Option<u64>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    max_in_flight: Option<usize>,
    max_queue_ms: Option<u64>,
    max_connections: Option<usize>,
    drain_secs: Option<u64>,
    jwt_secret: Option<String>,
    wal_segment_mb: Option<u64>,
    wal_sync: Option<String>,
    store_expectations_max: Option<usize>,
    idempotency_ttl_secs: Option<u64>,
    jobs_every_ms: Option<u64>,
    breaker_open_secs: Option<u64>,
    cluster: Option<ClusterFile>,
}

pub const NEXON_URL: &str = "https://open.api.nexon.com";

/// Where upstream calls go.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamTarget {
    /// An HTTP(S) upstream (Nexon or a separate simulator).
    Http { base_url: String, api_key: Option<String> },
    /// The simulator, called in-process (no key, no URL given); its
    /// fixtures from `fixtures_dir`, else the ones compiled in.
    InProcess { fixtures_dir: Option<PathBuf>, latency: Duration, failure_rate: f64 },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The RESP listener's address; `None` = `--resp-listen off`.
    pub resp_listen: Option<SocketAddr>,
    pub cores: usize,
    pub data_dir: PathBuf,
    /// `--partitions` if given (a new data dir gets it, default
    /// [`DEFAULT_PARTITIONS`]; an existing one must agree with it).
    pub partitions: Option<u32>,
    pub upstream: UpstreamTarget,
    pub upstream_timeout: Duration,
    pub cache_equipment_bytes: usize,
    pub cache_expectation_bytes: usize,
    pub cache_read_copy_bytes: usize,
    pub cache_ttl: Duration,
    pub cache_stale: Duration,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    /// Longest estimated wait of a new cold computation before it is shed (503).
    pub max_queue: Duration,
    pub max_connections: usize,
    pub drain: Duration,
    /// HS256 secret of the user tokens of the like routes (`None`: the dev secret, with a warning).
    pub jwt_secret: Option<String>,
    /// Size of each core's pre-allocated log segment files.
    pub wal_segment_bytes: u64,
    /// fdatasync before acknowledging (`Fsync`), or never (`Off`, benchmarks).
    pub wal_sync: storage::WalSync,
    /// Stored expectations kept by the node (each core keeps its share).
    pub store_expectations_max: usize,
    /// Lifetime of a remembered Idempotency-Key answer.
    pub idempotency_ttl: Duration,
    /// Period of the periodic jobs on each partition led here.
    pub jobs_every: Duration,
    /// How long the upstream breaker stays open before probing.
    pub breaker_open: Duration,
    /// The memory budget and how it is split (per core where it says so).
    pub memory: MemoryPlan,
    /// Node id, peers, replicas.
    pub cluster: ClusterConfig,
    /// Things worth a warning at start (logged by `serve`, not here).
    pub warnings: Vec<String>,
}

const MIB: usize = 1024 * 1024;

/// Partitions of a new data dir when `--partitions` is not given.
pub const DEFAULT_PARTITIONS: u32 = 16;

/// Default budget: this share of the machine's memory ...
const DEFAULT_MEMORY_PERCENT: u64 = 25;
/// ... but at most this (MiB): a bigger cache buys little once the hot set
/// fits, and the node usually shares the machine.
const DEFAULT_MEMORY_MAX_MB: u64 = 2048;
/// Without /proc/meminfo (not Linux): assume this budget (MiB).
const FALLBACK_MEMORY_MB: u64 = 512;
/// Resident bytes of one like relation: in the like book (character → user
/// set: the user's string, the hash-set slot at its load factor) and its
/// row in the state store; measured ~240 B with the bench's likes workload.
pub const BYTES_PER_RELATION: usize = 256;
/// Resident bytes of one remembered idempotency answer (user, key, result,
/// the order queue entry).
pub const BYTES_PER_IDEMPOTENCY_KEY: usize = 384;

/// How `--memory-mb` is split. First a reserve for what no flag bounds:
/// 128 MiB + 40 % of the budget (code and an idle node's heap, ~60-80 MB
/// resident; thread stacks, connection buffers, documents being computed,
/// sled's own buffers beyond its page cache, and the allocator's retained
/// free pages, which measured 150-250 MB above the caches under a
/// cold-character load on a 512 MiB budget; with 30 % the memory test's node
/// peaked at 527 MB once the partitions ran as Raft groups). The rest is split: 27 % the
/// equipment cache, 18 % the expectation cache, 7 % the read copies, 20 %
/// the state store's page cache (sled; one store per core), 28 % the like
/// book (relations, and a quarter of it the idempotency answers). Every
/// per-core part is its share divided by the cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    pub total_bytes: usize,
    /// Where the total came from (for the start-up line).
    pub source: String,
    /// Kept for what no flag bounds.
    pub reserve_bytes: usize,
    pub equipment_bytes_per_core: usize,
    pub expectation_bytes_per_core: usize,
    pub read_copy_bytes_per_core: usize,
    /// sled's `cache_capacity` of each core's state store.
    pub store_cache_bytes_per_core: usize,
    pub like_relations_per_core: usize,
    pub idempotency_keys_per_core: usize,
}

/// Smallest `--memory-mb`: below it the reserve leaves nothing to split.
pub const MIN_MEMORY_MB: usize = 256;

impl MemoryPlan {
    /// Split `total_mb` over `cores`; `explicit` per-core cache sizes (bytes)
    /// replace their share.
    pub fn split(total_mb: usize, source: String, cores: usize, explicit: [Option<usize>; 3]) -> MemoryPlan {
        let total = total_mb * MIB;
        let reserve = (128 * MIB + total / 100 * 40).min(total);
        let rest = total - reserve;
        let share = |percent: usize| rest / 100 * percent / cores;
        let like_bytes = share(28);
        let [equipment, expectation, read_copy] = explicit;
        MemoryPlan {
            total_bytes: total,
            source,
            reserve_bytes: reserve,
            equipment_bytes_per_core: equipment.unwrap_or_else(|| share(27)),
            expectation_bytes_per_core: expectation.unwrap_or_else(|| share(18)),
            read_copy_bytes_per_core: read_copy.unwrap_or_else(|| share(7)),
            store_cache_bytes_per_core: share(20).max(4 * MIB),
            like_relations_per_core: (like_bytes / 4 * 3 / BYTES_PER_RELATION).max(10_000),
            idempotency_keys_per_core: (like_bytes / 4 / BYTES_PER_IDEMPOTENCY_KEY).max(1_000),
        }
    }

    /// Bytes the bounded parts may hold in all (per-core parts times cores).
    pub fn bounded_bytes(&self, cores: usize) -> usize {
        let per_core = self.equipment_bytes_per_core
            + self.expectation_bytes_per_core
            + self.read_copy_bytes_per_core
            + self.store_cache_bytes_per_core
            + self.like_relations_per_core * BYTES_PER_RELATION
            + self.idempotency_keys_per_core * BYTES_PER_IDEMPOTENCY_KEY;
        per_core * cores
    }
}

/// MemTotal of `/proc/meminfo`, bytes.
pub fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&text)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        _ => None,
    }
}

/// The default budget (MiB) for a machine with `mem_total` bytes, and why.
fn default_memory_mb(mem_total: Option<u64>) -> (usize, String) {
    match mem_total {
        Some(bytes) => {
            let mb = (bytes / MIB as u64 * DEFAULT_MEMORY_PERCENT / 100).clamp(MIN_MEMORY_MB as u64, DEFAULT_MEMORY_MAX_MB);
            (
                mb as usize,
                format!("default: {DEFAULT_MEMORY_PERCENT} % of MemTotal {} MiB, at most {DEFAULT_MEMORY_MAX_MB}", bytes / MIB as u64),
            )
        }
        None => (FALLBACK_MEMORY_MB as usize, "default: /proc/meminfo unreadable".to_string()),
    }
}

impl Config {
    pub fn resolve(flags: &ServeFlags) -> anyhow::Result<Config> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Config::merge(flags, file)
    }

    fn merge(f: &ServeFlags, file: FileConfig) -> anyhow::Result<Config> {
        macro_rules! pick {
            ($field:ident, $default:expr) => {
                f.$field.clone().or(file.$field).unwrap_or_else(|| $default)
            };
        }
        let cores = pick!(cores, std::thread::available_parallelism().map_or(1, |n| n.get()));
        anyhow::ensure!((1..=1024).contains(&cores), "cores must be in 1..=1024, got {cores}");
        let api_key = f.nexon_api_key.clone().or(file.nexon_api_key).filter(|k| !k.trim().is_empty());
        let url = f.upstream_url.clone().or(file.upstream_url);
        let upstream = match (url, api_key) {
            (Some(base_url), api_key) => UpstreamTarget::Http { base_url: trim_url(&base_url)?, api_key },
            (None, Some(key)) => UpstreamTarget::Http { base_url: NEXON_URL.into(), api_key: Some(key) },
            (None, None) => {
                let failure_rate = pick!(sim_failure_rate, 0.0);
                anyhow::ensure!((0.0..=1.0).contains(&failure_rate), "sim_failure_rate must be in 0..=1");
                UpstreamTarget::InProcess {
                    fixtures_dir: f.sim_data_dir.clone().or(file.sim_data_dir),
                    latency: Duration::from_millis(pick!(sim_latency_ms, 0)),
                    failure_rate,
                }
            }
        };
        let (memory_mb, source) = match f.memory_mb.or(file.memory_mb) {
            Some(mb) => (mb, "--memory-mb".to_string()),
            None => default_memory_mb(machine_memory_bytes()),
        };
        anyhow::ensure!((MIN_MEMORY_MB..=1 << 20).contains(&memory_mb), "memory_mb must be in {MIN_MEMORY_MB}..=1048576, got {memory_mb}");
        let explicit = [
            f.cache_equipment_mb.or(file.cache_equipment_mb).map(|mb| mb * MIB),
            f.cache_expectation_mb.or(file.cache_expectation_mb).map(|mb| mb * MIB),
            f.cache_read_copy_mb.or(file.cache_read_copy_mb).map(|mb| mb * MIB),
        ];
        let memory = MemoryPlan::split(memory_mb, source, cores, explicit);
        let mut warnings = Vec::new();
        if let Ok(cpus) = std::thread::available_parallelism() {
            if cores > cpus.get() {
                warnings.push(format!(
                    "--cores {cores} is more than the {} CPUs this process may use: cores share CPUs and a cold storm on one slows the others",
                    cpus.get()
                ));
            }
        }
        if let Some(machine) = machine_memory_bytes().filter(|m| (memory_mb * MIB) as u64 > *m) {
            warnings.push(format!("--memory-mb {memory_mb} is more than the machine's memory ({} MiB)", machine / MIB as u64));
        }
        if memory.bounded_bytes(cores) + memory.reserve_bytes > memory.total_bytes {
            warnings.push(format!(
                "the per-core cache flags, the rest of the budget and its reserve add up to {} MiB, over --memory-mb {}",
                (memory.bounded_bytes(cores) + memory.reserve_bytes) / MIB,
                memory_mb
            ));
        }
        let cluster = ClusterConfig::resolve(f, file.cluster.unwrap_or_default())?;
        let cfg = Config {
            listen: match (f.listen, &file.listen) {
                (Some(addr), _) => addr,
                (None, Some(text)) => parse_listen(text).map_err(|e| anyhow::anyhow!("config file: {e}"))?,
                (None, None) => "0.0.0.0:8080".parse().expect("valid literal"),
            },
            resp_listen: match (&f.resp_listen, &file.resp_listen) {
                (Some(r), _) => r.addr(),
                (None, Some(text)) => parse_resp_listen(text).map_err(|e| anyhow::anyhow!("config file: resp_listen: {e}"))?.addr(),
                (None, None) => Some(DEFAULT_RESP_LISTEN.parse().expect("valid literal")),
            },
            cores,
            data_dir: pick!(data_dir, PathBuf::from("./data")),
            partitions: f.partitions.or(file.partitions),
            upstream,
            upstream_timeout: Duration::from_millis(pick!(upstream_timeout_ms, 3000)),
            cache_equipment_bytes: memory.equipment_bytes_per_core,
            cache_expectation_bytes: memory.expectation_bytes_per_core,
            cache_read_copy_bytes: memory.read_copy_bytes_per_core,
            cache_ttl: Duration::from_secs(pick!(cache_ttl_secs, 300)),
            cache_stale: Duration::from_secs(pick!(cache_stale_secs, 86_400)),
            max_header_bytes: pick!(max_header_bytes, 16 * 1024),
            max_body_bytes: pick!(max_body_bytes, MIB),
            max_in_flight: pick!(max_in_flight, 4096),
            // 100 ms: cold work is runnable CPU queued on its core ahead of
            // everything else there (hits too), so this is also about the delay
            // a cold storm adds to that core's other requests; at 2-3 ms per
            // character it still allows 30-50 computations per core in progress
            // (measured: accepted p99 0.44 s at 3x capacity, 0.78 s at 200 ms).
            max_queue: Duration::from_millis(pick!(max_queue_ms, 100)),
            max_connections: pick!(max_connections, 10_000),
            drain: Duration::from_secs(pick!(drain_secs, 10)),
            jwt_secret: f.jwt_secret.clone().or(file.jwt_secret),
            wal_segment_bytes: pick!(wal_segment_mb, 64) * MIB as u64,
            wal_sync: match f.wal_sync.clone().or(file.wal_sync) {
                Some(mode) => mode.parse()?,
                None => storage::WalSync::Fsync,
            },
            store_expectations_max: pick!(store_expectations_max, 50_000),
            idempotency_ttl: Duration::from_secs(pick!(idempotency_ttl_secs, 86_400)),
            jobs_every: Duration::from_millis(pick!(jobs_every_ms, 30_000)),
            breaker_open: Duration::from_secs(pick!(breaker_open_secs, 30)),
            memory,
            cluster,
            warnings,
        };
        anyhow::ensure!((1..=3600).contains(&cfg.breaker_open.as_secs()), "breaker_open_secs must be in 1..=3600");
        if let Some(p) = cfg.partitions {
            anyhow::ensure!(
                (1..=replication::MAX_PARTITIONS).contains(&p),
                "partitions must be in 1..={}, got {p}",
                replication::MAX_PARTITIONS
            );
        }
        anyhow::ensure!((4 * MIB as u64..4096 * MIB as u64).contains(&cfg.wal_segment_bytes), "wal_segment_mb must be in 4..=4095");
        anyhow::ensure!(cfg.store_expectations_max >= 1, "store_expectations_max must be >= 1");
        anyhow::ensure!(!cfg.idempotency_ttl.is_zero(), "idempotency_ttl_secs must be > 0");
        anyhow::ensure!((10..=3_600_000).contains(&cfg.jobs_every.as_millis()), "jobs_every_ms must be in 10..=3600000");
        anyhow::ensure!(cfg.cache_stale >= cfg.cache_ttl, "cache_stale_secs must be >= cache_ttl_secs");
        anyhow::ensure!(!cfg.upstream_timeout.is_zero(), "upstream_timeout_ms must be > 0");
        anyhow::ensure!(cfg.max_in_flight > 0 && cfg.max_connections > 0, "limits must be > 0");
        anyhow::ensure!((1..=60_000).contains(&cfg.max_queue.as_millis()), "max_queue_ms must be in 1..=60000");
        Ok(cfg)
    }
}

/// Default of `--resp-listen` (Redis Cluster's usual port + 1: 6379 stays free for a Redis).
pub const DEFAULT_RESP_LISTEN: &str = "0.0.0.0:6380";

/// `--resp-listen`: an address as `--listen` takes it, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespListen {
    Off,
    On(SocketAddr),
}

impl RespListen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            RespListen::Off => None,
            RespListen::On(a) => Some(a),
        }
    }
}

/// `--resp-listen`: `off` (any case) disables the RESP listener; anything
/// else goes through [`parse_listen`].
pub fn parse_resp_listen(s: &str) -> Result<RespListen, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(RespListen::Off);
    }
    parse_listen(s).map(RespListen::On)
}

/// `--listen`: `IP:port`, `[IPv6]:port`, `:port` (= `0.0.0.0:port`) or
/// `host:port` with a name (resolved now; the first IPv4 address, else the
/// first address). The port is numeric (0 = any free port).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        let hint = if s.parse::<u16>().is_ok() { format!(" (for every interface: `:{s}`)") } else { String::new() };
        return Err(format!("listen address {s:?} has no port: use IP:port, :port or host:port{hint}"));
    };
    let port: u16 = port.parse().map_err(|_| format!("listen address {s:?}: port {port:?} is not a number in 0..=65535"))?;
    if host.is_empty() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if host.contains(':') || host.starts_with('[') {
        return Err(format!("listen address {s:?}: an IPv6 address needs brackets, e.g. [::1]:{port}"));
    }
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("listen address {s:?}: cannot resolve {host:?}: {e}"))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(|| format!("listen address {s:?}: {host:?} resolves to no address"))
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
}

fn trim_url(url: &str) -> anyhow::Result<String> {
    let u = url.trim().trim_end_matches('/');
    anyhow::ensure!(u.starts_with("http://") || u.starts_with("https://"), "upstream_url must start with http:// or https://, got {u:?}");
    Ok(u.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let file: FileConfig =
            toml::from_str("listen = \"127.0.0.1:9000\"\ncores = 3\ncache_ttl_secs = 60\nupstream_url = \"http://127.0.0.1:7000/\"")
                .unwrap();
        let flags = ServeFlags { cores: Some(2), ..Default::default() };
        let cfg = Config::merge(&flags, file).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.cores, 2, "flag wins over file");
        assert_eq!(cfg.cache_ttl, Duration::from_secs(60));
        assert_eq!(cfg.drain, Duration::from_secs(10));
        assert_eq!(cfg.upstream, UpstreamTarget::Http { base_url: "http://127.0.0.1:7000".into(), api_key: None });
    }

    #[test]
    fn a_key_alone_selects_nexon_and_nothing_selects_the_simulator() {
        let flags = ServeFlags { nexon_api_key: Some("k".into()), ..Default::default() };
        let cfg = Config::merge(&flags, FileConfig::default()).unwrap();
        assert_eq!(cfg.upstream, UpstreamTarget::Http { base_url: NEXON_URL.into(), api_key: Some("k".into()) });
        let cfg = Config::merge(&ServeFlags::default(), FileConfig::default()).unwrap();
        let embedded = UpstreamTarget::InProcess { fixtures_dir: None, latency: Duration::ZERO, failure_rate: 0.0 };
        assert_eq!(cfg.upstream, embedded, "the simulator's fixtures default to the embedded ones");
        let file: FileConfig = toml::from_str("sim_data_dir = \"/srv/fixtures\"").unwrap();
        let cfg = Config::merge(&ServeFlags::default(), file).unwrap();
        assert!(matches!(cfg.upstream, UpstreamTarget::InProcess { fixtures_dir: Some(ref d), .. } if d == Path::new("/srv/fixtures")));
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(toml::from_str::<FileConfig>("no_such_key = 1").is_err());
        let bad_rate = ServeFlags { sim_failure_rate: Some(1.5), ..Default::default() };
        assert!(Config::merge(&bad_rate, FileConfig::default()).is_err());
        let bad_url = ServeFlags { upstream_url: Some("ftp://x".into()), ..Default::default() };
        assert!(Config::merge(&bad_url, FileConfig::default()).is_err());
        let zero = ServeFlags { cores: Some(0), ..Default::default() };
        assert!(Config::merge(&zero, FileConfig::default()).is_err());
        let tiny_wal = ServeFlags { wal_segment_mb: Some(1), ..Default::default() };
        assert!(Config::merge(&tiny_wal, FileConfig::default()).is_err());
        let bad_sync = ServeFlags { wal_sync: Some("sometimes".into()), ..Default::default() };
        assert!(Config::merge(&bad_sync, FileConfig::default()).is_err());
        for every in [0, 9, 3_600_001] {
            let bad_jobs = ServeFlags { jobs_every_ms: Some(every), ..Default::default() };
            assert!(Config::merge(&bad_jobs, FileConfig::default()).is_err(), "jobs_every_ms {every}");
        }
    }

    /// `maple.example.toml` at the repository root, through the real loader:
    /// it names every flag (active or as `#key = value`), no key the flags
    /// lack, parses as written to exactly the defaults, and parses with every
    /// `#key` line switched on.
    #[test]
    fn the_example_config_names_every_flag_and_parses() {
        use clap::Args;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../maple.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let flags: std::collections::BTreeSet<String> = ServeFlags::augment_args(clap::Command::new("serve"))
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|long| *long != "config")
            .map(|long| long.replace('-', "_"))
            .collect();
        let key_of = |line: &str| {
            let line = line.strip_prefix('#').unwrap_or(line);
            let (key, _) = line.split_once('=')?;
            let key = key.trim();
            (!key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then(|| key.to_owned())
        };
        let mut keys = std::collections::BTreeSet::new();
        for key in text.lines().filter_map(key_of) {
            assert!(keys.insert(key.clone()), "{key} twice in the example");
        }
        let missing: Vec<_> = flags.difference(&keys).collect();
        let unknown: Vec<_> = keys.difference(&flags).collect();
        assert!(missing.is_empty(), "flags without a key in maple.example.toml: {missing:?}");
        assert!(unknown.is_empty(), "keys in maple.example.toml that are no flag: {unknown:?}");

        let as_written = Config::resolve(&ServeFlags { config: Some(path.clone()), ..Default::default() }).unwrap();
        let defaults = Config::merge(&ServeFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(format!("{as_written:?}"), format!("{defaults:?}"), "the example's active values are the defaults");

        let all_on: String =
            text.lines().map(|l| if l.starts_with('#') && key_of(l).is_some() { &l[1..] } else { l }).collect::<Vec<_>>().join("\n");
        let file: FileConfig = toml::from_str(&all_on).unwrap();
        let cfg = Config::merge(&ServeFlags::default(), file).unwrap();
        assert!(matches!(cfg.upstream, UpstreamTarget::Http { .. }), "upstream_url switched on");
        assert!(cfg.jwt_secret.is_some());
    }

    /// An unknown key in a file passed to the loader is named in the error.
    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let dir = std::env::temp_dir().join(format!("maple-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:0\"\nsim_fixtures = \"x\"\n").unwrap();
        let err = format!("{:#}", Config::resolve(&ServeFlags { config: Some(path), ..Default::default() }).unwrap_err());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("sim_fixtures"), "{err}");
    }

    #[test]
    fn listen_takes_ip_port_colon_port_and_host_names() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(parse_listen("127.0.0.1:9000"), Ok(addr("127.0.0.1:9000")));
        assert_eq!(parse_listen("[::1]:9000"), Ok(addr("[::1]:9000")));
        assert_eq!(parse_listen(":8080"), Ok(addr("0.0.0.0:8080")));
        assert_eq!(parse_listen(" :0 "), Ok(addr("0.0.0.0:0")));
        assert_eq!(parse_listen("localhost:8080"), Ok(addr("127.0.0.1:8080")), "names resolve, IPv4 first");
        for (bad, says) in [
            ("8080", "no port"),
            ("localhost", "no port"),
            (":http", "not a number"),
            ("localhost:65536", "not a number"),
            ("::1:8080", "brackets"),
            ("", "no port"),
        ] {
            let err = parse_listen(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
        assert!(parse_listen("8080").unwrap_err().contains("`:8080`"), "a bare port gets a hint");
    }

    #[test]
    fn listen_from_flag_env_and_file_goes_through_the_same_parser() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            flags: ServeFlags,
        }
        let flags = Cli::try_parse_from(["maple", "--listen", ":9100"]).unwrap().flags;
        assert_eq!(flags.listen, Some("0.0.0.0:9100".parse().unwrap()));
        let err = Cli::try_parse_from(["maple", "--listen", "9100"]).err().unwrap().to_string();
        assert!(err.contains("has no port"), "{err}");
        let file: FileConfig = toml::from_str("listen = \"localhost:9200\"").unwrap();
        let cfg = Config::merge(&ServeFlags::default(), file).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9200".parse::<SocketAddr>().unwrap());
        let file: FileConfig = toml::from_str("listen = \"nowhere\"").unwrap();
        assert!(Config::merge(&ServeFlags::default(), file).unwrap_err().to_string().contains("no port"));
        let file: FileConfig = toml::from_str("listen = \"127.0.0.1:1\"").unwrap();
        let flags = ServeFlags { listen: Some("127.0.0.1:2".parse().unwrap()), ..Default::default() };
        assert_eq!(Config::merge(&flags, file).unwrap().listen.port(), 2, "flag wins over file");
    }

    #[test]
    fn resp_listen_defaults_to_6380_takes_listen_forms_and_off() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            flags: ServeFlags,
        }
        let cfg = Config::merge(&ServeFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(cfg.resp_listen, Some("0.0.0.0:6380".parse().unwrap()));
        let flags = Cli::try_parse_from(["maple", "--resp-listen", ":7000"]).unwrap().flags;
        assert_eq!(Config::merge(&flags, FileConfig::default()).unwrap().resp_listen, Some("0.0.0.0:7000".parse().unwrap()));
        let flags = Cli::try_parse_from(["maple", "--resp-listen", "OFF"]).unwrap().flags;
        assert_eq!(Config::merge(&flags, FileConfig::default()).unwrap().resp_listen, None);
        let err = Cli::try_parse_from(["maple", "--resp-listen", "6380"]).err().unwrap().to_string();
        assert!(err.contains("has no port"), "{err}");
        let file: FileConfig = toml::from_str("resp_listen = \"off\"").unwrap();
        assert_eq!(Config::merge(&ServeFlags::default(), file).unwrap().resp_listen, None);
        let file: FileConfig = toml::from_str("resp_listen = \"localhost:7001\"").unwrap();
        assert_eq!(Config::merge(&ServeFlags::default(), file).unwrap().resp_listen, Some("127.0.0.1:7001".parse().unwrap()));
        let file: FileConfig = toml::from_str("resp_listen = \"nowhere\"").unwrap();
        assert!(Config::merge(&ServeFlags::default(), file).unwrap_err().to_string().contains("resp_listen"));
        let file: FileConfig = toml::from_str("resp_listen = \"off\"").unwrap();
        let flags = ServeFlags { resp_listen: Some(RespListen::On("127.0.0.1:7002".parse().unwrap())), ..Default::default() };
        assert_eq!(Config::merge(&flags, file).unwrap().resp_listen.map(|a| a.port()), Some(7002), "flag wins over file");
    }

    #[test]
    fn cluster_flags_file_section_and_bad_peers() {
        let cfg = Config::merge(&ServeFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(cfg.cluster, ClusterConfig { node_id: 1, peers: Default::default(), peer_listen: None, replicas: 1 });
        assert_eq!(cfg.cluster.node_ids(), vec![1]);
        let flags = ServeFlags {
            node_id: Some(2),
            peers: Some("1=127.0.0.1:7101, 2=127.0.0.1:7102,3=localhost:7103".into()),
            ..Default::default()
        };
        let cfg = Config::merge(&flags, FileConfig::default()).unwrap();
        assert_eq!(cfg.cluster.node_ids(), vec![1, 2, 3]);
        assert_eq!(cfg.cluster.replicas, 3, "min(3, nodes)");
        assert_eq!(cfg.cluster.peer_listen, Some("127.0.0.1:7102".parse().unwrap()), "derived from the own entry");
        let file: FileConfig =
            toml::from_str("[cluster]\nnode_id = 3\npeers = [\"1=a:1\", \"3=b:2\"]\npeer_listen = \":9000\"\nreplicas = 1").unwrap();
        let cfg = Config::merge(&ServeFlags::default(), file).unwrap();
        assert_eq!((cfg.cluster.node_id, cfg.cluster.replicas), (3, 1));
        assert_eq!(cfg.cluster.peer_listen, Some("0.0.0.0:9000".parse().unwrap()));
        for (peers, id, says) in [
            ("1=a:1,2=b:2", 3, "not this node's id 3"),
            ("1=a:1,1=b:2", 1, "listed twice"),
            ("x=a:1", 1, "not a number"),
            ("1=a", 1, "HOST:PORT"),
            ("1:a:1", 1, "ID=HOST:PORT"),
            ("0=a:1", 1, "start at 1"),
        ] {
            let flags = ServeFlags { node_id: Some(id), peers: Some(peers.into()), ..Default::default() };
            let err = format!("{:#}", Config::merge(&flags, FileConfig::default()).unwrap_err());
            assert!(err.contains(says), "{peers}: {err}");
        }
        let flags = ServeFlags { peers: Some("1=a:1,2=b:2".into()), replicas: Some(3), ..Default::default() };
        assert!(Config::merge(&flags, FileConfig::default()).is_err(), "more replicas than nodes");
        let flags = ServeFlags { replicas: Some(2), ..Default::default() };
        assert!(Config::merge(&flags, FileConfig::default()).is_err(), "replicas without peers");
        let flags = ServeFlags { node_id: Some(0), ..Default::default() };
        assert!(Config::merge(&flags, FileConfig::default()).is_err());
        assert!(toml::from_str::<FileConfig>("[cluster]\nnode = 1").is_err(), "unknown key in [cluster]");
    }

    #[test]
    fn wal_sync_defaults_to_fsync_and_the_flag_beats_the_file() {
        let cfg = Config::merge(&ServeFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(cfg.wal_sync, storage::WalSync::Fsync);
        let file: FileConfig = toml::from_str("wal_sync = \"off\"").unwrap();
        assert_eq!(Config::merge(&ServeFlags::default(), file).unwrap().wal_sync, storage::WalSync::Off);
        let file: FileConfig = toml::from_str("wal_sync = \"off\"").unwrap();
        let flags = ServeFlags { wal_sync: Some("fsync".into()), ..Default::default() };
        assert_eq!(Config::merge(&flags, file).unwrap().wal_sync, storage::WalSync::Fsync);
    }

    #[test]
    fn the_memory_budget_is_split_and_explicit_cache_flags_win() {
        let flags = ServeFlags { memory_mb: Some(512), cores: Some(2), ..Default::default() };
        let cfg = Config::merge(&flags, FileConfig::default()).unwrap();
        let m = &cfg.memory;
        assert_eq!(m.total_bytes, 512 * MIB);
        assert_eq!(m.source, "--memory-mb");
        // Reserve 128 MiB + 40 %; 27 % of the rest over 2 cores.
        let rest = 512 * MIB - (128 * MIB + 512 * MIB / 100 * 40);
        assert_eq!(m.reserve_bytes, 512 * MIB - rest);
        assert_eq!(m.equipment_bytes_per_core, rest / 100 * 27 / 2);
        assert_eq!(cfg.cache_equipment_bytes, m.equipment_bytes_per_core);
        assert_eq!(m.store_cache_bytes_per_core, rest / 100 * 20 / 2);
        assert!(m.bounded_bytes(2) + m.reserve_bytes <= m.total_bytes, "the parts fit the budget");
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // A per-cache flag wins over its share, from the file too; over the budget: a warning.
        let file: FileConfig = toml::from_str("memory_mb = 256\ncache_expectation_mb = 300").unwrap();
        let cfg = Config::merge(&ServeFlags { cores: Some(1), ..Default::default() }, file).unwrap();
        assert_eq!(cfg.cache_expectation_bytes, 300 * MIB);
        assert_eq!(cfg.memory.total_bytes, 256 * MIB);
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        let tiny = ServeFlags { memory_mb: Some(100), ..Default::default() };
        assert!(Config::merge(&tiny, FileConfig::default()).is_err());
    }

    #[test]
    fn the_default_budget_is_a_quarter_of_the_machine_at_most_2_gib() {
        let meminfo = "MemTotal:        2048000 kB\nMemFree:          100 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(2_048_000 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(default_memory_mb(Some(2 << 30)).0, 512, "a 2 GiB machine: 512 MiB");
        assert_eq!(default_memory_mb(Some(64 << 30)).0, 2048, "capped");
        assert_eq!(default_memory_mb(Some(64 << 20)).0, MIN_MEMORY_MB, "never below the minimum");
        assert_eq!(default_memory_mb(None).0, FALLBACK_MEMORY_MB as usize);
        let cfg = Config::merge(&ServeFlags::default(), FileConfig::default()).unwrap();
        assert!(cfg.memory.source.starts_with("default"), "{}", cfg.memory.source);
    }
}
