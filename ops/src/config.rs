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
    /// Listen address [default: 0.0.0.0:8080].
    #[arg(long, env = "MAPLE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Cores (threads, each with its own runtime and shard) [default: available parallelism].
    #[arg(long, env = "MAPLE_CORES")]
    pub cores: Option<usize>,
    /// Data directory [default: ./data].
    #[arg(long, env = "MAPLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
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
    /// Equipment cache per core, MiB: upstream JSON as fetched; compressed to gzip on the equipment route's first read [default: 64].
    #[arg(long, env = "MAPLE_CACHE_EQUIPMENT_MB")]
    pub cache_equipment_mb: Option<usize>,
    /// Rendered expectation cache per core, MiB [default: 64].
    #[arg(long, env = "MAPLE_CACHE_EXPECTATION_MB")]
    pub cache_expectation_mb: Option<usize>,
    /// Per-core read copies of other cores' hot responses, MiB [default: 8].
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
}

/// The TOML file: same names as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    cores: Option<usize>,
    data_dir: Option<PathBuf>,
    nexon_api_key: Option<String>,
    upstream_url: Option<String>,
    upstream_timeout_ms: Option<u64>,
    sim_data_dir: Option<PathBuf>,
    sim_latency_ms: Option<u64>,
    sim_failure_rate: Option<f64>,
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
    pub cores: usize,
    pub data_dir: PathBuf,
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
}

const MIB: usize = 1024 * 1024;

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
        let cfg = Config {
            listen: pick!(listen, "0.0.0.0:8080".parse().expect("valid literal")),
            cores,
            data_dir: pick!(data_dir, PathBuf::from("./data")),
            upstream,
            upstream_timeout: Duration::from_millis(pick!(upstream_timeout_ms, 3000)),
            cache_equipment_bytes: pick!(cache_equipment_mb, 64) * MIB,
            cache_expectation_bytes: pick!(cache_expectation_mb, 64) * MIB,
            cache_read_copy_bytes: pick!(cache_read_copy_mb, 8) * MIB,
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
        };
        anyhow::ensure!((4 * MIB as u64..4096 * MIB as u64).contains(&cfg.wal_segment_bytes), "wal_segment_mb must be in 4..=4095");
        anyhow::ensure!(cfg.store_expectations_max >= 1, "store_expectations_max must be >= 1");
        anyhow::ensure!(!cfg.idempotency_ttl.is_zero(), "idempotency_ttl_secs must be > 0");
        anyhow::ensure!(cfg.cache_stale >= cfg.cache_ttl, "cache_stale_secs must be >= cache_ttl_secs");
        anyhow::ensure!(!cfg.upstream_timeout.is_zero(), "upstream_timeout_ms must be > 0");
        anyhow::ensure!(cfg.max_in_flight > 0 && cfg.max_connections > 0, "limits must be > 0");
        anyhow::ensure!((1..=60_000).contains(&cfg.max_queue.as_millis()), "max_queue_ms must be in 1..=60000");
        Ok(cfg)
    }
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
    fn wal_sync_defaults_to_fsync_and_the_flag_beats_the_file() {
        let cfg = Config::merge(&ServeFlags::default(), FileConfig::default()).unwrap();
        assert_eq!(cfg.wal_sync, storage::WalSync::Fsync);
        let file: FileConfig = toml::from_str("wal_sync = \"off\"").unwrap();
        assert_eq!(Config::merge(&ServeFlags::default(), file).unwrap().wal_sync, storage::WalSync::Off);
        let file: FileConfig = toml::from_str("wal_sync = \"off\"").unwrap();
        let flags = ServeFlags { wal_sync: Some("fsync".into()), ..Default::default() };
        assert_eq!(Config::merge(&flags, file).unwrap().wal_sync, storage::WalSync::Fsync);
    }
}
