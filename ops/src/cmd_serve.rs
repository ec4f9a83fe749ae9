//! `maple serve`: one node — HTTP API on every core, per-core shards,
//! upstream (Nexon, a separate simulator, or the in-process simulator).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use engine::partition::Limits;
use replication::{open_partitions, OpenedLog, PartitionStart, SlotMap};
use storage::log::{Log, LogOptions};
use storage::store::{Store, StoreOptions, WriterOptions};

use crate::cmd_token::DEV_JWT_SECRET;
use crate::config::{Config, ServeFlags, UpstreamTarget};
use crate::datadir::{self, DataMeta};
use crate::http::{CoreService, LogState, NodeShared, NodeStorage};
use crate::logging;
use crate::metrics::NodeMetrics;
use crate::sim::{Fixtures, Simulator};

/// Largest log entry the node writes (an expectation record plus headers);
/// a segment must hold one, so segments are at least twice this.
pub const MAX_ENTRY_BYTES: usize = 2 << 20;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: ServeFlags,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::resolve(&args.flags)?;
    for w in &cfg.warnings {
        tracing::warn!("maple serve: config: {w}");
    }
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    // The data dir first, the port second: a second node on the same data
    // dir (a restart that did not wait for the old process) waits here
    // holding no port, so every connection goes to the running node. Held
    // until the process exits (after the final checkpoint).
    let data_dir_lock = lock_data_dir(&cfg.data_dir, data_dir_lock_wait(&cfg))?;
    // The format file (created, read, or written by a format-1 migration)
    // before anything else touches the dir.
    let meta = datadir::prepare(&cfg)?;
    let limits = net::Limits {
        max_header_bytes: cfg.max_header_bytes,
        max_body_bytes: cfg.max_body_bytes,
        max_in_flight_per_core: cfg.max_in_flight,
        max_connections_per_core: cfg.max_connections,
        ..net::Limits::default()
    };
    // Refuses a port another process listens on ("port N is in use by
    // another process"), then binds one SO_REUSEPORT listener per core.
    let server = net::BoundServer::bind(net::ServerConfig { addr: cfg.listen, cores: cfg.cores, limits })
        .with_context(|| format!("binding {}", cfg.listen))?;
    // The RESP listener, on every core too, with the same refusal of a busy port.
    let resp_server = match cfg.resp_listen {
        None => None,
        Some(addr) => {
            let limits = net::resp::RespLimits {
                max_in_flight_per_core: cfg.max_in_flight,
                max_connections_per_core: cfg.max_connections,
                ..net::resp::RespLimits::default()
            };
            let bound = net::resp::RespServer::bind(net::resp::RespConfig { addr, cores: cfg.cores, limits })
                .with_context(|| format!("binding the RESP listener {addr} (--resp-listen; `off` disables it)"))?;
            Some(bound)
        }
    };
    let sim = match &cfg.upstream {
        UpstreamTarget::InProcess { fixtures_dir, latency, failure_rate } => {
            let fixtures = Fixtures::open(fixtures_dir.as_deref()).context("loading the in-process upstream simulator's fixtures")?;
            Some(Simulator::new(fixtures, *latency, *failure_rate).context("starting the in-process upstream simulator")?)
        }
        UpstreamTarget::Http { .. } => None,
    };
    let shutdown = net::Shutdown::new();
    install_signal_handlers(&shutdown, cfg.drain).context("installing signal handlers")?;
    let upstream = match &cfg.upstream {
        UpstreamTarget::InProcess { fixtures_dir: Some(dir), .. } => format!("in-process simulator (fixtures {})", dir.display()),
        UpstreamTarget::InProcess { fixtures_dir: None, .. } => "in-process simulator (embedded fixtures)".to_owned(),
        UpstreamTarget::Http { base_url, api_key } => {
            format!("{base_url} ({})", if api_key.is_some() { "with API key" } else { "no API key" })
        }
    };
    // Recover every log and the store before serving and before the
    // "listening" line scripts wait for: no request is answered (so
    // /health/ready is not UP) until every partition has recovered (and its
    // group has a leader: see readiness).
    if cfg.wal_sync == storage::WalSync::Off {
        tracing::warn!(
            "maple serve: WARNING --wal-sync off: the write-ahead log is NEVER fdatasynced. Acknowledged likes and \
             writes can be LOST on power loss or kernel crash. Benchmark mode only; never run it in production."
        );
    }
    log_memory_plan(&cfg, &meta);
    let slots = SlotMap::new(meta.partitions, cfg.cores);
    let placement = replication::Placement::new(&cfg.cluster.node_ids(), meta.partitions, cfg.cluster.replicas)
        .map_err(|e| anyhow::anyhow!("placement: {e}"))?;
    let hosted = placement.hosted_on(cfg.cluster.node_id);
    let (storage, starts) = open_storage(&cfg, &meta, &hosted)?;
    let resp_addr = resp_server.as_ref().map(|rs| rs.local_addr());
    let cluster = crate::cluster::NodeCluster::new(&cfg, meta.partitions, server.local_addr(), resp_addr, storage.groups.clone())?;
    if cluster.is_cluster() {
        tracing::info!(
            node = cluster.me,
            "maple serve: node {} of the cluster {:?}, peer protocol on {}, {} replicas per partition, {} of {} partitions \
             hosted here",
            cluster.me,
            placement.nodes(),
            cluster.peer_addr.map_or_else(|| "-".to_owned(), |a| a.to_string()),
            placement.rf(),
            hosted.len(),
            meta.partitions
        );
    }
    // Tests and scripts read this line for the bound port (`--listen 127.0.0.1:0`).
    tracing::info!(
        "maple serve: listening on {} ({} cores), upstream {upstream}, {} partitions",
        server.local_addr(),
        cfg.cores,
        meta.partitions
    );
    let http_addr = server.local_addr();
    let resp = resp_server.map(|rs| {
        // A one-node cluster serves every slot; a node of a cluster answers
        // `-MOVED` for the slots other nodes lead (their RESP address is on
        // their card).
        let topology: Arc<dyn crate::resp::Topology> = if cluster.is_cluster() {
            let v = &cluster.view;
            Arc::new(crate::resp::topology::ClusterTopology::new(replication::ClusterView {
                me: v.me,
                placement: v.placement.clone(),
                slots: v.slots,
                directory: v.directory.clone(),
                stats: v.stats.clone(),
            }))
        } else {
            Arc::new(crate::resp::topology::LocalTopology::new(cluster.me, slots, storage.groups.clone(), rs.local_addr(), http_addr))
        };
        Arc::new(crate::resp::RespShared::new(rs, topology, meta.partitions))
    });
    match &resp {
        Some(r) => tracing::info!("maple serve: resp listening on {} ({} cores)", r.addr, cfg.cores),
        None => tracing::info!("maple serve: RESP off (--resp-listen off)"),
    }
    let jwt_secret = match &cfg.jwt_secret {
        Some(secret) => secret.clone(),
        None => {
            tracing::warn!("maple serve: WARNING no --jwt-secret / MAPLE_JWT_SECRET: using the dev secret {DEV_JWT_SECRET:?}");
            DEV_JWT_SECRET.to_owned()
        }
    };
    let drain = cfg.drain;
    let metrics = Arc::new(NodeMetrics::new());
    let mut shared =
        NodeShared::new(cfg, slots, metrics, Some(server.stats()), shutdown.clone(), sim, storage, starts, jwt_secret, cluster);
    if let Some(resp) = resp {
        shared = shared.with_resp(resp);
    }
    let shared = Arc::new(shared);
    let stop_shed_log = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shed_log =
        logging::spawn_shed_summary(Arc::new(NodeShedCounters { shared: shared.clone() }), stop_shed_log.clone(), logging::SUMMARY_EVERY)
            .context("starting the load-shed summary")?;
    let serving = shared.clone();
    let stats = server.run(move |core| CoreService::new(core, serving.clone()), shutdown.clone(), drain).context("serving")?;
    let total = stats.total();
    let drained_in = DRAIN_STARTED.get().map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
    tracing::info!(requests = total.requests, "maple serve: stopped after {} requests (drain took {drained_in:.0} ms)", total.requests);
    stop_shed_log.store(true, std::sync::atomic::Ordering::Release);
    let _ = shed_log.join();
    // Drained, groups stopped: make every partition's state durable, so the
    // next start replays nothing.
    shared.storage.final_checkpoint()?;
    // The data dir lock is released by the exit itself, with every other
    // handle of the process (a log's own lock, held by a writer thread until
    // it ends): a waiting successor never gets the dir while a log of it is
    // still held here.
    std::mem::forget(data_dir_lock);
    Ok(())
}

/// Options of the node's logs.
fn log_options(cfg: &Config) -> LogOptions {
    LogOptions {
        segment_bytes: cfg.wal_segment_bytes,
        max_entry_bytes: MAX_ENTRY_BYTES,
        // A vote is ~20 bytes; a small bound keeps room for many groups in
        // every segment's group-state record.
        max_vote_bytes: 256,
        sync: cfg.wal_sync,
        // Recent entries kept in memory per group for replication reads
        // (unwritten ones always are); a single node reads none.
        group_cache_bytes: 256 << 10,
        ..LogOptions::default()
    }
}

/// The bounds of one partition: its share of the memory budget's like
/// relations and idempotency keys.
fn partition_limits(cfg: &Config, partitions: u32) -> Limits {
    let share = |per_core: usize| (per_core * cfg.cores).div_ceil(partitions as usize).max(1);
    Limits {
        max_relations: share(cfg.memory.like_relations_per_core),
        max_idempotency_keys: share(cfg.memory.idempotency_keys_per_core),
        ..Limits::default()
    }
}

/// Open every log (each recovers strictly, refusing damage before anything
/// on disk changes), then the store, then each log's partitions on a
/// thread of its own (restore from the store, replay of the committed
/// entries).
fn open_storage(cfg: &Config, meta: &DataMeta, hosted: &[u32]) -> anyhow::Result<(NodeStorage, Vec<PartitionStart>)> {
    let opening: Vec<_> = (0..meta.logs)
        .map(|l| {
            let (dir, opts) = (datadir::log_dir(&cfg.data_dir, l), log_options(cfg));
            std::thread::spawn(move || {
                let started = Instant::now();
                Log::open(&dir, opts).map(|(log, rec)| (log, rec, started)).with_context(|| format!("recovering {}", dir.display()))
            })
        })
        .collect();
    let mut opened_logs = Vec::with_capacity(opening.len());
    for (l, h) in opening.into_iter().enumerate() {
        opened_logs.push(h.join().map_err(|_| anyhow::anyhow!("recovery of log {l} panicked"))??);
    }
    let state = datadir::state_dir(&cfg.data_dir);
    let store_opts = StoreOptions { cache_bytes: (cfg.memory.store_cache_bytes_per_core * cfg.cores) as u64, sync: cfg.wal_sync };
    let store = Store::open(&state, store_opts).with_context(|| format!("opening the state store {}", state.display()))?;
    let limits = partition_limits(cfg, meta.partitions);
    let handles: Vec<_> = opened_logs
        .into_iter()
        .enumerate()
        .map(|(l, (log, rec, started))| {
            let l = l as u32;
            let (dir, store, limits) = (datadir::log_dir(&cfg.data_dir, l), store.clone(), limits.clone());
            let groups: Vec<u32> = meta.partitions_of_log(l).into_iter().filter(|p| hosted.contains(p)).collect();
            std::thread::spawn(move || {
                let opened = open_partitions(log, rec, l, &store, &groups, limits, WriterOptions::default())
                    .with_context(|| format!("recovering the partitions of {}", dir.display()));
                opened.map(|o| (o, started.elapsed()))
            })
        })
        .collect();
    let mut logs = Vec::with_capacity(handles.len());
    let mut starts = Vec::new();
    for (l, h) in handles.into_iter().enumerate() {
        let (opened, took) = h.join().map_err(|_| anyhow::anyhow!("recovery of log {l} panicked"))??;
        let OpenedLog { log_no, log, recovery, writer, partitions } = opened;
        let replayed: u64 = partitions.iter().map(|p| p.recovered.replayed).sum();
        let relations: usize = partitions.iter().map(|p| p.recovered.machine.relation_count()).sum();
        let torn = recovery.torn_tail.as_ref().map_or(0, |t| t.bytes);
        tracing::info!(
            log = log_no,
            replayed,
            dropped_tail_bytes = torn,
            "maple serve: log {log_no} recovered in {:.1} ms: replayed {replayed} log entries, dropped {torn} torn tail bytes, \
             {relations} like relations in {} partitions",
            took.as_secs_f64() * 1e3,
            partitions.len()
        );
        logs.push(LogState { log_no, log, writer, recovery, recovered_in: took, replayed });
        starts.extend(partitions);
    }
    // Index = partition; a partition not hosted here keeps empty stats.
    let mut groups: Vec<Arc<replication::GroupStats>> = (0..meta.partitions).map(|_| Arc::default()).collect();
    for s in &starts {
        groups[s.recovered.group as usize] = s.stats.clone();
    }
    Ok((NodeStorage { store, logs, groups }, starts))
}

/// The start-up line that says how `--memory-mb` was split.
fn log_memory_plan(cfg: &Config, meta: &DataMeta) {
    let m = &cfg.memory;
    let limits = partition_limits(cfg, meta.partitions);
    let mib = |b: usize| b / (1024 * 1024);
    tracing::info!(
        memory_mb = mib(m.total_bytes),
        "maple serve: memory budget {} MiB ({}), {} MiB of it kept for the process (and the Raft groups' log caches); per core: \
         equipment cache {} MiB, expectation cache {} MiB, read copies {} MiB; state store cache {} MiB; per partition ({}): \
         {} like relations and {} idempotency keys",
        mib(m.total_bytes),
        m.source,
        mib(m.reserve_bytes),
        mib(m.equipment_bytes_per_core),
        mib(m.expectation_bytes_per_core),
        mib(m.read_copy_bytes_per_core),
        mib(m.store_cache_bytes_per_core * cfg.cores),
        meta.partitions,
        limits.max_relations,
        limits.max_idempotency_keys,
    );
}

/// What the node shed, for the summary line (admission counters of every
/// core, the server's in-flight and connection refusals).
struct NodeShedCounters {
    shared: Arc<NodeShared>,
}

impl logging::ShedCounters for NodeShedCounters {
    fn admission_shed(&self) -> u64 {
        (0..self.shared.cfg.cores).map(|c| self.shared.metrics.admission.shed_count(c)).sum()
    }
    fn in_flight_rejected(&self) -> u64 {
        self.shared.server_stats.as_ref().map_or(0, |s| s.per_core().iter().map(|c| c.err_overloaded).sum())
    }
    fn connections_rejected(&self) -> u64 {
        self.shared.server_stats.as_ref().map_or(0, |s| s.per_core().iter().map(|c| c.connections_rejected).sum())
    }
    fn cross_core_full(&self) -> u64 {
        (0..self.shared.cfg.cores).map(|c| self.shared.metrics.cross_core_count(c, "full")).sum()
    }
    fn log_backpressure(&self) -> u64 {
        self.shared.storage.logs.iter().map(|l| l.log.stats().backpressure_rejections).sum()
    }
}

/// When the first SIGTERM / SIGINT arrived (for the "drain took" line).
static DRAIN_STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// SIGTERM / SIGINT: log it and start the drain (at most `drain`); a
/// second signal during the drain exits at once (as `net::Shutdown` does).
fn install_signal_handlers(shutdown: &net::Shutdown, drain: Duration) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let shutdown = shutdown.clone();
    std::thread::Builder::new().name("maple-signals".into()).spawn(move || {
        for sig in signals.forever() {
            let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
            if shutdown.is_triggered() {
                tracing::warn!(signal = name, "maple serve: {name} received again during the drain: exiting at once");
                std::process::exit(128 + sig);
            }
            tracing::info!(
                signal = name,
                drain_budget_s = drain.as_secs(),
                "maple serve: {name} received: draining (readiness 503, in-flight requests finish, at most {} s)",
                drain.as_secs()
            );
            let _ = DRAIN_STARTED.set(Instant::now());
            shutdown.trigger();
        }
    })?;
    Ok(())
}

/// Take `<data-dir>/lock` (an exclusive flock, released when the process
/// exits, whatever the way): one node per data dir. While another process
/// holds it, retry for up to `wait` (the bounded wait of a restart that
/// overlaps the previous instance's drain), then fail. The file holds the
/// owner's pid, for the operator and for the waiting message.
fn lock_data_dir(data_dir: &Path, wait: Duration) -> anyhow::Result<File> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::io::AsRawFd;
    let path = data_dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the data dir lock {}", path.display()))?;
    let started = Instant::now();
    let mut told = false;
    loop {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock {
            tracing::error!(path = %path.display(), error = %err, "cannot lock the data dir");
            return Err(err).with_context(|| format!("locking the data dir {}", path.display()));
        }
        let mut holder = String::new();
        let _ = file.rewind().and_then(|_| Read::by_ref(&mut file).take(32).read_to_string(&mut holder));
        let holder = holder.trim();
        let waited = started.elapsed();
        if waited >= wait {
            tracing::error!(data_dir = %data_dir.display(), holder_pid = holder, waited_s = waited.as_secs(), "data dir still locked");
            anyhow::bail!(
                "the data dir {} is still locked by pid {holder} after waiting {} s: is another `maple serve` running on it?",
                data_dir.display(),
                waited.as_secs()
            );
        }
        if !told {
            tracing::warn!(data_dir = %data_dir.display(), holder_pid = holder, max_wait_s = wait.as_secs(), "waiting for the data dir lock");
            eprintln!(
                "maple serve: waiting for the data dir lock of {} (held by pid {holder}, e.g. the previous instance still \
                 draining), at most {} s; the port is not bound meanwhile",
                data_dir.display(),
                wait.as_secs()
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = format!("{}\n", std::process::id());
    let written = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(pid.as_bytes()));
    if let Err(e) = written {
        // The lock is what matters; the pid is a courtesy.
        tracing::warn!(path = %path.display(), error = %e, "could not write our pid into the data dir lock");
    }
    Ok(file)
}

/// How long a start waits for the data dir's locks: a previous instance
/// with the same settings (a rolling restart that did not wait for its
/// exit) drains for at most `drain_secs`, then writes its final checkpoint.
fn data_dir_lock_wait(cfg: &Config) -> Duration {
    cfg.drain + Duration::from_secs(30)
}
