//! `maple bench run <workload>` and `maple bench compare`: flags, the
//! overload probe, writing the results directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::http::Target;
use crate::jwt;
use crate::report::Report;
use crate::run::{run, utc_timestamp, RunConfig};
use crate::schedule::Pacing;
use crate::workload::{run_tag, OverloadBase, Workload, WorkloadKind, WorkloadParams};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: BenchCmd,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCmd {
    /// Drive a running server with a named workload and report throughput,
    /// latency percentiles and errors (text, JSON, SVG under --out).
    Run(Box<RunArgs>),
    /// Side by side on this machine: nginx / wrk / redis-server vs our
    /// generator and node (installs them with apt-get; runs bench/compare.sh).
    Compare(CompareArgs),
    /// The machine's raw fdatasync rate in a directory (4 KiB write +
    /// fdatasync, one writer, pre-allocated file).
    FsyncRate(FsyncArgs),
    /// Recompute `<dir>/summary.md` from `<dir>/runs.tsv` (compare.sh calls it).
    #[command(hide = true)]
    Summarize { dir: PathBuf },
    /// Print an HS256 JWT as the node accepts it (HTTP `Authorization:
    /// Bearer`, RESP `AUTH`), e.g. `redis-cli -p 6380 AUTH $(maple bench token)`.
    Token(TokenArgs),
    /// Start a local cluster, kill -9 the leader of the most partitions
    /// under keyed like load, restart it, N rounds: failover time per kill
    /// (p50/p99/max), and every acknowledged toggle checked on every node.
    CrashLoop(crate::crash_loop::CrashLoopArgs),
    /// Print a node's write counters from its /metrics: `<fdatasyncs> <ok toggles>`
    /// (compare.sh reads them around redis-benchmark runs).
    #[command(hide = true)]
    WriteCounters {
        /// The node's HTTP address.
        #[arg(long)]
        target: String,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct TokenArgs {
    /// The token's subject (the user).
    #[arg(long, default_value = "bench-user-0")]
    pub user: String,
    /// HS256 secret (the node's MAPLE_JWT_SECRET).
    #[arg(long, env = "MAPLE_JWT_SECRET", default_value = jwt::DEV_SECRET, hide_env_values = true)]
    pub secret: String,
    /// Lifetime.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: Duration,
}

#[derive(clap::Args, Debug, Clone)]
pub struct FsyncArgs {
    /// Directory to probe (use the node's --data-dir: same filesystem).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// seed-v4 | cold | likes | mixed | overload | resp-likes | resp-expect
    #[arg(value_enum)]
    pub workload: WorkloadKind,
    /// Server to drive: http://host:port (default http://127.0.0.1:8080),
    /// or for resp-* the node's RESP listener, redis://host:port (default
    /// redis://127.0.0.1:6380).
    #[arg(long, env = "MAPLE_BENCH_TARGET")]
    pub target: Option<String>,
    /// Several servers, comma separated (wins over --target): lanes are
    /// dealt round-robin over them (lane l -> target l mod n), e.g. every
    /// node of a cluster. For resp-* they are the lanes' first nodes.
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// resp-*: commands in flight per connection, sent back to back
    /// (redis-benchmark's -P). 1 = no pipelining.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// resp-*: `HELLO 3` on every connection (RESP3 replies).
    #[arg(long)]
    pub resp3: bool,
    /// resp-*: do not fetch CLUSTER SLOTS nor route by key slot; every
    /// command goes to its lane's target, a -MOVED is followed for that
    /// command only (like redis-cli -c).
    #[arg(long)]
    pub no_slot_map: bool,
    /// HTTP address(es) whose /metrics are read before and after a write
    /// workload, for fdatasyncs per acknowledged toggle (default: the
    /// targets of an HTTP workload; none for resp-*).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// Load-generator threads, one monoio runtime each (leave the server its cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Connections (closed loop) or lanes/users (open loop). Default per
    /// workload: seed-v4 100, cold 16, likes 64, mixed 200, overload 1024
    /// (open loop: more lanes than the server admits, so its 503s can show),
    /// resp-likes 64, resp-expect 50.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Measured phase, e.g. 10s, 500ms, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Warm-up before measuring (not recorded). Default: seed-v4 3s, others 1s.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Open loop at this many requests/s in total (latency from intended send time).
    /// Without it: closed loop, except mixed (think time) and overload.
    #[arg(long)]
    pub rate: Option<f64>,
    /// mixed: think time range between a user's requests.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub think_min: Duration,
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub think_max: Duration,
    /// seed-v4 / overload of seed-v4: characters to rotate over, comma
    /// separated (default 아델,강은호,진격캐넌 as the original's wrk test).
    #[arg(long, value_delimiter = ',')]
    pub names: Vec<String>,
    /// overload: what it sends at 3x capacity: cold (new characters, the
    /// path the server sheds with 503 OVERLOADED) or seed-v4.
    #[arg(long, value_enum, default_value = "cold")]
    pub base: OverloadBase,
    /// Do not hold the run against the workload's targets (baseline runs
    /// against nginx in the side-by-side compare).
    #[arg(long)]
    pub no_goals: bool,
    /// likes: distinct users (each with its own JWT).
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// likes: distinct characters.
    #[arg(long, default_value_t = 1_000)]
    pub characters: usize,
    /// HS256 secret for the tokens of likes / mixed.
    #[arg(long, env = "MAPLE_JWT_SECRET", default_value = jwt::DEV_SECRET, hide_env_values = true)]
    pub jwt_secret: String,
    /// overload: known capacity in req/s; without it a closed-loop probe measures it.
    #[arg(long)]
    pub capacity: Option<f64>,
    /// overload: offered rate = factor x capacity.
    #[arg(long, default_value_t = 3.0)]
    pub overload_factor: f64,
    /// overload: length of the capacity probe.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub probe: Duration,
    /// Per-request timeout (counted as an error).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Open loop: after the end, how long late requests may still go out
    /// before the rest are counted as unsent errors.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Results directory; each run writes report.txt, report.json,
    /// latency.svg into <out>/<name>/.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Sub-directory name under --out (default <UTC timestamp>-<workload>).
    #[arg(long)]
    pub name: Option<String>,
    /// Do not write files, only print.
    #[arg(long)]
    pub no_save: bool,
    /// Print the JSON report instead of the text one.
    #[arg(long)]
    pub json: bool,
    /// Seed of the request mix and think times (runs repeat with the same seed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// I/O driver of the bench threads: epoll, or auto (io_uring if available).
    #[arg(long, value_enum, default_value = "epoll")]
    pub driver: crate::run::Driver,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// A node already running (durable). Without it the script starts its
    /// own: `maple serve --cores 1` durable, and one with `--wal-sync off`.
    #[arg(long)]
    pub target: Option<String>,
    /// The `maple` binary that serves (default: this binary if it is
    /// `maple`, else `maple` next to it).
    #[arg(long)]
    pub serve_bin: Option<PathBuf>,
    /// Length of each measured run.
    #[arg(long, default_value = "8s")]
    pub duration: String,
    /// Alternating rounds per pair.
    #[arg(long, default_value_t = 7)]
    pub rounds: u32,
    /// Do not pin servers and clients to cores with taskset.
    #[arg(long)]
    pub no_pin: bool,
    /// Core of the servers (nginx, redis, our nodes) when pinning.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// Core of the clients (wrk, redis-benchmark, our generator).
    #[arg(long, default_value_t = 1)]
    pub client_cpu: usize,
    /// Niceness of every server and client the compare starts (the same for
    /// all; negative needs root and puts them ahead of other processes on a
    /// shared machine). 0 leaves scheduling alone.
    #[arg(long, default_value_t = -10, allow_negative_numbers = true)]
    pub nice: i32,
    /// Skip the one-off cold and overload runs at the end.
    #[arg(long)]
    pub skip_oneoff: bool,
    /// Skip the perf profiles of the node (seed-v4 and likes, one extra run each).
    #[arg(long)]
    pub no_profile: bool,
    /// Where results and RESULTS.md-ready text go.
    #[arg(long, default_value = "results/compare")]
    pub out: PathBuf,
    /// Do not apt-get install (nginx, redis-server, wrk must be present).
    #[arg(long)]
    pub skip_install: bool,
    /// Only the parts that need no node (nginx vs wrk vs our generator, redis).
    #[arg(long)]
    pub without_node: bool,
    /// The node's RESP port (`maple serve --resp-listen`), for the
    /// redis-benchmark side by side (LIKE.TOGGLE vs INCR, EXPECT.GET vs GET).
    /// Those rows are skipped, with a note, when nothing answers there.
    #[arg(long, default_value_t = crate::resp::DEFAULT_PORT)]
    pub resp_port: u16,
}

/// `10s`, `250ms`, `2m`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration `{s}`"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        "us" => v / 1e6,
        _ => return Err(format!("bad duration unit in `{s}` (use us, ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 7.0).contains(&secs) {
        return Err(format!("duration `{s}` out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run_cli(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        BenchCmd::Run(a) => run_workload(&a).map(|_| ()),
        BenchCmd::Compare(a) => compare(&a),
        BenchCmd::FsyncRate(a) => {
            let r = crate::fsync::measure(&a.dir, a.duration).with_context(|| format!("fsync probe in {}", a.dir.display()))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{}", r.to_text());
            }
            Ok(())
        }
        BenchCmd::CrashLoop(a) => crate::crash_loop::run(&a),
        BenchCmd::Summarize { dir } => {
            print!("{}", crate::summary::summarize_dir(&dir)?);
            Ok(())
        }
        BenchCmd::Token(t) => {
            let now = jwt::unix_now();
            println!("{}", jwt::sign_hs256(t.secret.as_bytes(), &t.user, now, now + t.ttl.as_secs()));
            Ok(())
        }
        BenchCmd::WriteCounters { target } => {
            let t = Target::parse(&target)?;
            let body = crate::scrape::fetch_metrics(t.addr, &t.host).with_context(|| format!("GET {target}/metrics"))?;
            let c = crate::scrape::WriteCounters::parse(&body).context("no maple_wal_fsyncs_total in /metrics")?;
            println!("{} {}", c.fsyncs, c.toggles_ok);
            Ok(())
        }
    }
}

fn default_connections(kind: WorkloadKind) -> usize {
    match kind {
        WorkloadKind::SeedV4 => 100,
        WorkloadKind::Cold => 16,
        WorkloadKind::Likes => 64,
        WorkloadKind::Mixed => 200,
        WorkloadKind::Overload => 1024,
        WorkloadKind::RespLikes => 64,
        WorkloadKind::RespExpect => 50,
    }
}

/// The targets of a run: --targets, else --target, else the workload's default.
pub fn targets_for(a: &RunArgs) -> anyhow::Result<Vec<Target>> {
    let given: Vec<String> = if !a.targets.is_empty() {
        a.targets.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
    } else {
        vec![a.target.clone().unwrap_or_else(|| {
            if a.workload.is_resp() {
                format!("redis://127.0.0.1:{}", crate::resp::DEFAULT_PORT)
            } else {
                "http://127.0.0.1:8080".into()
            }
        })]
    };
    if given.is_empty() || given.len() > 1000 {
        bail!("--targets: 1 to 1000 addresses");
    }
    let parse = |t: &String| -> anyhow::Result<Target> {
        if a.workload.is_resp() {
            crate::resp::parse_target(t)
                .with_context(|| format!("{} speaks RESP: give the node's --resp-listen address (redis://host:port)", a.workload.name()))
        } else {
            Ok(Target::parse(t)?)
        }
    };
    given.iter().map(parse).collect()
}

/// Builds the run configuration for `a` (pacing chosen per workload).
pub fn config_for(a: &RunArgs) -> anyhow::Result<RunConfig> {
    let targets = targets_for(a)?;
    let connections = a.connections.unwrap_or(default_connections(a.workload));
    if a.pipeline == 0 || a.pipeline > crate::resp::MAX_PIPELINE {
        bail!("--pipeline must be in 1..=1024");
    }
    if a.pipeline > 1 && !a.workload.is_resp() {
        bail!("--pipeline is for the resp-* workloads (HTTP lanes send one request at a time)");
    }
    if a.users == 0 || a.characters == 0 {
        bail!("--users and --characters must be > 0");
    }
    if a.users > 1_000_000 || a.characters > 1_000_000 {
        bail!("--users and --characters are limited to 1000000 (tokens are pre-signed in memory)");
    }
    let mut params = WorkloadParams::new(&a.jwt_secret, a.users, a.characters, run_tag(jwt::unix_now()), connections.max(1));
    params.overload_base = a.base;
    if !a.names.is_empty() {
        if a.names.iter().any(|n| n.trim().is_empty()) || a.names.len() > 1000 {
            bail!("--names: 1 to 1000 non-empty names");
        }
        params.seed_names = a.names.iter().map(|n| n.trim().to_string()).collect();
    }
    let pacing = match (a.rate, a.workload) {
        (Some(rate), _) => Pacing::FixedRate { rate },
        (None, WorkloadKind::Mixed) => Pacing::ThinkTime { min: a.think_min, max: a.think_max },
        _ => Pacing::Closed,
    };
    let warmup = a.warmup.unwrap_or(match a.workload {
        WorkloadKind::SeedV4 => Duration::from_secs(3),
        _ => Duration::from_secs(1),
    });
    let hosts: Vec<String> = targets.iter().map(|t| t.host.clone()).collect();
    Ok(RunConfig {
        workload: Workload::with_hosts(a.workload, &params, &hosts),
        targets,
        pacing,
        threads: a.threads,
        connections,
        warmup,
        duration: a.duration,
        timeout: a.timeout,
        drain: a.drain,
        seed: a.seed,
        driver: a.driver,
        resp: crate::resp::RespOptions { pipeline: a.pipeline, resp3: a.resp3, slot_map: !a.no_slot_map },
    })
}

/// Where a write workload's /metrics are read: --metrics, else the
/// targets of an HTTP workload.
fn metrics_targets(a: &RunArgs, cfg: &RunConfig) -> anyhow::Result<Vec<Target>> {
    if !a.metrics.is_empty() {
        return a.metrics.iter().map(|m| Ok(Target::parse(m)?)).collect();
    }
    Ok(if a.workload.is_resp() { Vec::new() } else { cfg.targets.clone() })
}

/// The write counters of every node in `targets`, summed; `None` if one
/// has none (not a node, or unreachable).
fn scrape_all(targets: &[Target]) -> Option<crate::scrape::WriteCounters> {
    let mut sum = crate::scrape::WriteCounters { fsyncs: 0.0, toggles_ok: 0.0 };
    for t in targets {
        let c = crate::scrape::WriteCounters::scrape(t.addr, &t.host)?;
        sum.fsyncs += c.fsyncs;
        sum.toggles_ok += c.toggles_ok;
    }
    (!targets.is_empty()).then_some(sum)
}

/// Runs one workload (with the capacity probe first for overload), prints
/// the report and writes the results directory.
pub fn run_workload(a: &RunArgs) -> anyhow::Result<Report> {
    let mut cfg = config_for(a)?;
    // Write workloads: fdatasyncs per acknowledged write from the nodes'
    // /metrics around the run (absent for servers without them).
    let metrics = if a.workload.writes() { metrics_targets(a, &cfg)? } else { Vec::new() };
    let before = scrape_all(&metrics);
    let mut report = match a.workload {
        WorkloadKind::Overload => run_overload(a, &mut cfg)?,
        _ => run(&cfg)?,
    };
    if let Some(before) = before {
        if let Some(after) = scrape_all(&metrics) {
            let cost = crate::scrape::sync_cost(before, after);
            report.derive("run_wal_fsyncs", cost.fsyncs);
            report.derive("run_toggles_ok", cost.toggles_ok);
            if let Some(per) = cost.toggles_per_fsync {
                report.derive("toggles_per_fsync", per);
            }
        }
    }
    let secs = report.duration_s;
    match a.workload {
        WorkloadKind::Cold => report.derive("characters_per_s", report.ok_per_s),
        WorkloadKind::Likes | WorkloadKind::RespLikes => {
            report.derive("acknowledged_writes", report.ok as f64);
            report.derive("acknowledged_writes_per_s", report.ok as f64 / secs);
        }
        WorkloadKind::Mixed => {
            let likes = report.routes.get("like").map(|r| r.ok).unwrap_or(0);
            report.derive("acknowledged_likes", likes as f64);
            if let Pacing::ThinkTime { min, max } = cfg.pacing {
                let mean = (min + max).as_secs_f64() / 2.0;
                report.derive("offered_req_per_s", cfg.connections as f64 / mean);
            }
        }
        _ => {}
    }
    if !a.no_goals {
        report.goals = crate::goals::for_run(a.workload, &report);
    }
    let text = report.to_text();
    if a.json {
        println!("{}", report.to_json());
    } else {
        print!("{text}");
    }
    if !a.no_save {
        let name = a.name.clone().unwrap_or_else(|| {
            let ts = utc_timestamp(std::time::SystemTime::now()).replace(['-', ':'], "");
            format!("{ts}-{}", a.workload.name())
        });
        let dir = a.out.join(name);
        save(&dir, &report, &text)?;
        eprintln!("results: {}", dir.display());
    }
    Ok(report)
}

fn run_overload(a: &RunArgs, cfg: &mut RunConfig) -> anyhow::Result<Report> {
    if !(a.overload_factor > 0.0 && a.overload_factor <= 100.0) {
        bail!("--overload-factor must be in (0, 100]");
    }
    let mut probe_p99_ms = None;
    let capacity = match a.capacity {
        Some(c) if c > 0.0 => c,
        Some(_) => bail!("--capacity must be > 0"),
        None => {
            let mut probe = cfg.clone();
            probe.pacing = Pacing::Closed;
            // As many lanes as the base workload runs with on its own.
            let base_lanes = match a.base {
                OverloadBase::Cold => default_connections(WorkloadKind::Cold),
                OverloadBase::SeedV4 => default_connections(WorkloadKind::SeedV4),
            };
            probe.connections = probe.connections.min(base_lanes).max(probe.threads);
            probe.duration = a.probe;
            let r = run(&probe)?;
            eprintln!("capacity probe (closed loop, {} conn): {:.1} ok/s; {}", probe.connections, r.ok_per_s, r.first_line);
            if r.ok_per_s <= 0.0 {
                bail!("the capacity probe got no successful response; pass --capacity");
            }
            probe_p99_ms = Some(r.ok_latency_us.p99 as f64 / 1000.0);
            r.ok_per_s
        }
    };
    let offered = capacity * a.overload_factor;
    cfg.pacing = Pacing::FixedRate { rate: offered };
    let mut report = run(cfg)?;
    let s503 = report.statuses.get("503").copied().unwrap_or(0);
    report.derive("capacity_req_per_s", capacity);
    if let Some(p99) = probe_p99_ms {
        report.derive("capacity_p99_ms", p99);
    }
    report.derive("offered_req_per_s", offered);
    // All 503s; `shed_share` is the OVERLOADED ones (load shed on purpose).
    report.derive("share_503", if report.requests == 0 { 0.0 } else { s503 as f64 / report.requests as f64 });
    report.derive("shed_share", report.shed_share);
    report.derive("accepted_per_s", report.ok_per_s);
    report.derive("accepted_p99_ms", report.ok_latency_us.p99 as f64 / 1000.0);
    report.derive("accepted_p999_ms", report.ok_latency_us.p999 as f64 / 1000.0);
    report.derive("accepted_max_ms", report.ok_latency_us.max as f64 / 1000.0);
    if report.shed > 0 {
        report.derive("shed_p99_ms", report.shed_latency_us.p99 as f64 / 1000.0);
    }
    Ok(report)
}

/// Writes report.txt, report.json and latency.svg into `dir`.
pub fn save(dir: &Path, report: &Report, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(dir.join("report.txt"), text)?;
    std::fs::write(dir.join("report.json"), report.to_json())?;
    let svg = crate::plot::render_svg(report)?;
    std::fs::write(dir.join("latency.svg"), svg)?;
    Ok(())
}

/// The side-by-side script, embedded so `maple bench compare` works from
/// any directory; it calls back into this binary for our runs.
const COMPARE_SH: &str = include_str!("../compare.sh");

fn compare(a: &CompareArgs) -> anyhow::Result<()> {
    let duration = parse_duration(&a.duration).map_err(anyhow::Error::msg)?;
    if let Some(t) = &a.target {
        Target::parse(t)?;
    }
    if a.rounds == 0 || a.rounds > 100 {
        bail!("--rounds must be in 1..=100");
    }
    let exe = std::env::current_exe().context("locate the maple binary")?;
    let serve_bin = a.serve_bin.clone().or_else(|| serve_bin_next_to(&exe));
    std::fs::create_dir_all(&a.out)?;
    let script = a.out.join("compare.sh");
    std::fs::write(&script, COMPARE_SH)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pin = !a.no_pin && a.server_cpu != a.client_cpu && a.server_cpu.max(a.client_cpu) < cores;
    if !a.no_pin && !pin {
        eprintln!("compare: not pinning (needs two distinct cores below {cores})");
    }
    let status = std::process::Command::new("bash")
        .arg(&script)
        .env("MAPLE_BIN", &exe)
        .env("SERVE_BIN", serve_bin.as_deref().unwrap_or(Path::new("")))
        .env("TARGET", a.target.as_deref().unwrap_or(""))
        .env("DURATION", format!("{}ms", duration.as_millis()))
        .env("DURATION_S", duration.as_secs_f64().ceil().max(1.0).to_string())
        .env("ROUNDS", a.rounds.to_string())
        .env("OUT", &a.out)
        .env("SKIP_INSTALL", if a.skip_install { "1" } else { "0" })
        .env("WITHOUT_NODE", if a.without_node { "1" } else { "0" })
        .env("RESP_PORT", a.resp_port.to_string())
        .env("SKIP_ONEOFF", if a.skip_oneoff { "1" } else { "0" })
        .env("PROFILE", if a.no_profile { "0" } else { "1" })
        .env("PIN", if pin { "1" } else { "0" })
        .env("NICE", a.nice.clamp(-20, 19).to_string())
        .env("SERVER_CPU", a.server_cpu.to_string())
        .env("CLIENT_CPU", a.client_cpu.to_string())
        .status()
        .context("run bash")?;
    if !status.success() {
        bail!("compare.sh failed ({status})");
    }
    Ok(())
}

/// The `maple` binary that can `serve`: this one, or `maple` beside a
/// standalone `maple-bench`.
pub(crate) fn serve_bin_next_to(exe: &Path) -> Option<PathBuf> {
    let name = exe.file_name()?.to_str()?;
    if name == "maple" {
        return Some(exe.to_path_buf());
    }
    let sibling = exe.parent()?.join("maple");
    sibling.is_file().then_some(sibling)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags as `maple` mounts them (`maple bench run ...`): clap's
    /// own consistency checks pass and the defaults come out as documented.
    #[test]
    fn command_line_parses() {
        use clap::{CommandFactory, Parser};
        #[derive(clap::Parser)]
        struct Maple {
            #[command(subcommand)]
            cmd: Top,
        }
        #[derive(clap::Subcommand)]
        enum Top {
            Bench(Args),
        }
        Maple::command().debug_assert();
        let m = Maple::try_parse_from(["maple", "bench", "run", "seed-v4", "--duration", "2s"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        assert_eq!(r.workload, WorkloadKind::SeedV4);
        assert_eq!(r.duration, Duration::from_secs(2));
        assert_eq!(r.threads, 1);
        let cfg = config_for(&r).unwrap();
        assert_eq!(cfg.connections, 100);
        assert_eq!(cfg.pacing, Pacing::Closed);
        let m = Maple::try_parse_from(["maple", "bench", "run", "mixed"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        assert!(matches!(config_for(&r).unwrap().pacing, Pacing::ThinkTime { .. }));
        assert!(Maple::try_parse_from(["maple", "bench", "run", "nope"]).is_err());
        assert!(Maple::try_parse_from(["maple", "bench", "compare", "--rounds", "3"]).is_ok());
        let m = Maple::try_parse_from(["maple", "bench", "compare", "--nice", "-5", "--no-pin"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Compare(c) }) = m.cmd else { panic!("compare expected") };
        assert_eq!((c.nice, c.no_pin, c.rounds, c.duration.as_str(), c.target), (-5, true, 7, "8s", None));
        let m = Maple::try_parse_from(["maple", "bench", "run", "seed-v4", "--names", "아델"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        assert_eq!(config_for(&r).unwrap().workload.params()["characters"], "아델");
        let m = Maple::try_parse_from(["maple", "bench", "run", "overload"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        assert_eq!(r.base, OverloadBase::Cold);
        assert_eq!(config_for(&r).unwrap().workload.params()["overload_of"], "cold");
        let m = Maple::try_parse_from(["maple", "bench", "run", "resp-likes", "--pipeline", "16", "--resp3"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        let cfg = config_for(&r).unwrap();
        assert_eq!((cfg.connections, cfg.resp.pipeline, cfg.resp.resp3, cfg.resp.slot_map), (64, 16, true, true));
        assert_eq!(cfg.targets[0].addr.port(), 6380, "resp-* default to the node's RESP port");
        let m = Maple::try_parse_from(["maple", "bench", "run", "resp-expect", "--target", "http://127.0.0.1:8080"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        let e = config_for(&r).err().unwrap();
        assert!(format!("{e:#}").contains("redis://host:port"), "{e:#}");
        let m = Maple::try_parse_from(["maple", "bench", "run", "seed-v4", "--pipeline", "4"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        assert!(config_for(&r).is_err(), "HTTP lanes do not pipeline");
        let m = Maple::try_parse_from(["maple", "bench", "run", "likes", "--targets", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Run(r) }) = m.cmd else { panic!("run expected") };
        let cfg = config_for(&r).unwrap();
        assert_eq!(cfg.targets.iter().map(|t| t.addr.port()).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(cfg.workload.target_count(), 3);
        let m = Maple::try_parse_from(["maple", "bench", "compare", "--resp-port", "7379"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::Compare(c) }) = m.cmd else { panic!("compare expected") };
        assert_eq!(c.resp_port, 7379);
        assert!(Maple::try_parse_from(["maple", "bench", "token", "--user", "u1"]).is_ok());
        assert!(Maple::try_parse_from(["maple", "bench", "fsync-rate", "--dir", "/tmp", "--duration", "1s"]).is_ok());
        assert!(Maple::try_parse_from(["maple", "bench", "summarize", "/tmp/x"]).is_ok());
        let m = Maple::try_parse_from(["maple", "bench", "crash-loop", "--rounds", "2", "--loaders", "0"]).unwrap();
        let Top::Bench(Args { cmd: BenchCmd::CrashLoop(c) }) = m.cmd else { panic!("crash-loop expected") };
        assert_eq!((c.rounds, c.nodes, c.cores, c.loaders, c.base_port), (2, 3, 1, 0, 7500));
        assert_eq!((c.recover_timeout, c.data_dir, c.out), (Duration::from_secs(30), None, None));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999h").is_err());
    }
}
