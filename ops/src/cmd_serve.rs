//! `maple serve`: one node — HTTP API on every core, per-core shards,
//! upstream (Nexon, a separate simulator, or the in-process simulator).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use engine::likes::LikeBook;

use crate::cmd_token::DEV_JWT_SECRET;
use crate::config::{Config, ServeFlags, UpstreamTarget};
use crate::metrics::NodeMetrics;
use crate::node::durable::{self, CoreStorage, DurableOptions};
use crate::node::{CoreService, NodeShared};
use crate::sim::{Fixtures, Simulator};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: ServeFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::resolve(&args.flags)?;
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let sim = match &cfg.upstream {
        UpstreamTarget::InProcess { fixtures_dir, latency, failure_rate } => {
            let fixtures = Fixtures::open(fixtures_dir.as_deref()).context("loading the in-process upstream simulator's fixtures")?;
            Some(Simulator::new(fixtures, *latency, *failure_rate).context("starting the in-process upstream simulator")?)
        }
        UpstreamTarget::Http { .. } => None,
    };
    let limits = net::Limits {
        max_header_bytes: cfg.max_header_bytes,
        max_body_bytes: cfg.max_body_bytes,
        max_in_flight_per_core: cfg.max_in_flight,
        max_connections_per_core: cfg.max_connections,
        ..net::Limits::default()
    };
    let server = net::BoundServer::bind(net::ServerConfig { addr: cfg.listen, cores: cfg.cores, limits })
        .with_context(|| format!("binding {}", cfg.listen))?;
    let shutdown = net::Shutdown::new();
    shutdown.install_signal_handlers().context("installing signal handlers")?;
    let upstream = match &cfg.upstream {
        UpstreamTarget::InProcess { fixtures_dir: Some(dir), .. } => format!("in-process simulator (fixtures {})", dir.display()),
        UpstreamTarget::InProcess { fixtures_dir: None, .. } => "in-process simulator (embedded fixtures)".to_owned(),
        UpstreamTarget::Http { base_url, api_key } => {
            format!("{base_url} ({})", if api_key.is_some() { "with API key" } else { "no API key" })
        }
    };
    // Recover every core's log and store before serving and before the
    // "listening" line scripts wait for: no request is answered (so
    // /health/ready is not UP) until every core has recovered.
    if cfg.wal_sync == storage::WalSync::Off {
        eprintln!(
            "maple serve: WARNING --wal-sync off: the write-ahead log is NEVER fdatasynced. Acknowledged likes and \
             writes can be LOST on power loss or kernel crash. Benchmark mode only; never run it in production."
        );
    }
    let recovered = recover_cores(&cfg.data_dir, cfg.cores, &durable_options(&cfg), data_dir_lock_wait(&cfg))?;
    // Tests and scripts read this line for the bound port (`--listen 127.0.0.1:0`).
    eprintln!("maple serve: listening on {} ({} cores), upstream {upstream}", server.local_addr(), cfg.cores);
    let jwt_secret = match &cfg.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            eprintln!("maple serve: WARNING no --jwt-secret / MAPLE_JWT_SECRET: using the dev secret {DEV_JWT_SECRET:?}");
            DEV_JWT_SECRET.to_owned()
        }
    };
    let drain = cfg.drain;
    let metrics = Arc::new(NodeMetrics::new());
    let shared = Arc::new(NodeShared::new(cfg, metrics, Some(server.stats()), shutdown.clone(), sim, recovered, jwt_secret));
    let serving = shared.clone();
    let stats = server
        .run(
            move |core| {
                // On the core's thread: its evictor appends to its log.
                durable::spawn_evictor(serving.storage[core].clone());
                CoreService::new(core, serving.clone())
            },
            shutdown,
            drain,
        )
        .context("serving")?;
    let total = stats.total();
    eprintln!("maple serve: stopped after {} requests", total.requests);
    // Drained: make every core's state durable so the next start replays nothing.
    for s in &shared.storage {
        let index = s.final_checkpoint().with_context(|| format!("final checkpoint of core {}", s.core))?;
        eprintln!("maple serve: core {} final checkpoint at log index {index}", s.core);
    }
    Ok(())
}

/// Per-core storage options from the config.
fn durable_options(cfg: &Config) -> DurableOptions {
    DurableOptions {
        idempotency_ttl: cfg.idempotency_ttl,
        // Keys spread evenly over the cores: each keeps its share.
        expectations_max: cfg.store_expectations_max.div_ceil(cfg.cores),
        expectation_stale: cfg.cache_stale,
        ..DurableOptions::new(durable::wal_options(cfg.wal_segment_bytes, cfg.wal_sync))
    }
}

/// Recover each core's storage on its own thread (they are independent).
fn recover_cores(
    data_dir: &Path,
    cores: usize,
    opts: &DurableOptions,
    lock_wait: Duration,
) -> anyhow::Result<Vec<(CoreStorage, LikeBook)>> {
    let handles: Vec<_> = (0..cores)
        .map(|core| {
            let dir = data_dir.to_path_buf();
            let opts = opts.clone();
            std::thread::spawn(move || recover_waiting_for_lock(&dir, core, &opts, lock_wait))
        })
        .collect();
    let mut out = Vec::with_capacity(cores);
    for (core, h) in handles.into_iter().enumerate() {
        let (storage, book) = h
            .join()
            .map_err(|_| anyhow::anyhow!("recovery of core {core} panicked"))?
            .with_context(|| format!("recovering {}", durable::core_dir(data_dir, core).display()))?;
        eprintln!(
            "maple serve: core {core} recovered in {:.1} ms: replayed {} log entries, dropped {} torn tail bytes, {} like relations",
            storage.recovery.as_secs_f64() * 1e3,
            storage.replayed,
            storage.dropped_tail_bytes,
            book.relations()
        );
        out.push((storage, book));
    }
    Ok(out)
}

/// How long a start waits for the data dir's locks: a previous instance
/// with the same settings (a rolling restart that did not wait for its
/// exit) drains for at most `drain_secs`, then writes its final checkpoint.
fn data_dir_lock_wait(cfg: &Config) -> Duration {
    cfg.drain + Duration::from_secs(30)
}

/// Recover one core; while another process holds the core's log or store
/// lock, retry for up to `lock_wait` instead of failing. A failed attempt
/// holds nothing (the log's drop joins its syncer and releases the lock).
fn recover_waiting_for_lock(
    data_dir: &Path,
    core: usize,
    opts: &DurableOptions,
    lock_wait: Duration,
) -> anyhow::Result<(CoreStorage, LikeBook)> {
    let started = Instant::now();
    let mut told = false;
    loop {
        match durable::recover(data_dir, core, opts) {
            Err(e) if is_locked(&e) => {
                let waited = started.elapsed();
                if waited >= lock_wait {
                    return Err(anyhow::Error::new(e).context(format!(
                        "still locked after waiting {} s: is another `maple serve` running on {}?",
                        waited.as_secs(),
                        data_dir.display()
                    )));
                }
                if !told {
                    eprintln!(
                        "maple serve: core {core}: waiting for the data dir lock of {} (held by another process, e.g. the \
                         previous instance still draining), at most {} s",
                        durable::core_dir(data_dir, core).display(),
                        lock_wait.as_secs()
                    );
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other.map_err(anyhow::Error::new),
        }
    }
}

/// The log's own lock, or sled's (sled reports it as a plain I/O error).
fn is_locked(e: &storage::StorageError) -> bool {
    match e {
        storage::StorageError::Locked(_) => true,
        storage::StorageError::Sled(e) => e.to_string().contains("could not acquire lock"),
        _ => false,
    }
}
