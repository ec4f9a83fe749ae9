//! `maple bench crash-loop`: kill -9 the leader of busy partitions of a
//! local cluster under keyed like load, again and again, and check that
//! nothing acknowledged is lost or applied twice.
//!
//! It starts N `maple serve` nodes itself ([`nodes`]), runs loader threads
//! whose model of every (user, character) pair is exact ([`load`]), and per
//! round: kills (SIGKILL) the node leading the most partitions, times how
//! long until a keyed probe toggle on a character of a partition it led is
//! acknowledged through a surviving node (polled every 10 ms), waits until
//! the survivors agree on new leaders, restarts the node on the same data
//! dir and ports, waits until it is ready (caught up) and leadership has
//! settled back, and reads the probe through every node. At the end every
//! node must answer the exact modelled state and count of every pair
//! ([`report`]).

mod client;
pub mod load;
pub mod map;
mod nodes;
pub mod report;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::cli::parse_duration;
use client::NodeConn;
use load::{answer_disagrees, toggle_until_acked, LikeState, Liveness, LoadSetup, LoaderResult, LoaderSpec, Loaders, Tally};
use map::ClusterMap;
use nodes::{ClusterSetup, LocalCluster};
use report::{CrashLoopReport, RoundRecord};

/// Bounds of the steps that are not failovers (a loaded 2-core machine
/// starts three nodes in seconds; these only stop a hang).
const START_TIMEOUT: Duration = Duration::from_secs(120);
const RESTART_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Acknowledged toggles per loader before the first kill: the load is on.
const WARMUP_TOGGLES_PER_LOADER: u64 = 5;

#[derive(clap::Args, Debug, Clone)]
pub struct CrashLoopArgs {
    /// Kills (rounds), each followed by a restart of the killed node.
    #[arg(long, default_value_t = 20)]
    pub rounds: u32,
    /// Local nodes (ids 1..=N); at least 3, so a kill leaves every partition a quorum.
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// `--cores` of every node.
    #[arg(long, default_value_t = 1)]
    pub cores: u16,
    /// Node i keeps its data in DIR/node-<i> and its output in
    /// DIR/node-<i>.log. Default: a fresh directory under the system temp
    /// dir, removed when the run passes (kept, and named, when it fails).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Node i listens for HTTP on base-port + i - 1 and for its peers on
    /// base-port + 100 + i - 1 (RESP off); a restart reuses them.
    #[arg(long, default_value_t = 7500)]
    pub base_port: u16,
    /// Loader threads, each one (user, character) pair toggling with a
    /// new Idempotency-Key per toggle, two loaders per character; 0 = the
    /// probe alone.
    #[arg(long, default_value_t = 4)]
    pub loaders: usize,
    /// Write report.json and report.txt into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A round fails when the probe is not acknowledged, or the survivors
    /// do not agree on leaders, within this long after the kill.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub recover_timeout: Duration,
    /// Longest wait for one HTTP answer (the node's own forward bound is 15 s).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The `maple` binary to run as the nodes (default: this binary if it
    /// is `maple`, else `maple` next to it).
    #[arg(long)]
    pub maple_bin: Option<PathBuf>,
}

impl CrashLoopArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!((1..=1000).contains(&self.rounds), "--rounds must be in 1..=1000");
        anyhow::ensure!((3..=9).contains(&self.nodes), "--nodes must be in 3..=9 (a kill must leave every partition a quorum)");
        anyhow::ensure!((1..=64).contains(&self.cores), "--cores must be in 1..=64");
        anyhow::ensure!(self.loaders <= 64, "--loaders must be at most 64");
        anyhow::ensure!(
            self.base_port >= 1024 && self.base_port as u32 + 100 + self.nodes as u32 <= 65535,
            "--base-port must be in 1024..=65400"
        );
        anyhow::ensure!(
            (Duration::from_secs(1)..=Duration::from_secs(600)).contains(&self.recover_timeout),
            "--recover-timeout must be in 1s..=10m"
        );
        anyhow::ensure!((Duration::from_millis(100)..=Duration::from_secs(120)).contains(&self.timeout), "--timeout must be in 100ms..=2m");
        Ok(())
    }
}

/// Runs the crash loop, prints the report (stdout; progress on stderr),
/// writes it under `--out`; an error unless every check passed.
pub fn run(a: &CrashLoopArgs) -> anyhow::Result<()> {
    a.validate()?;
    let exe = match &a.maple_bin {
        Some(p) => p.clone(),
        None => {
            let me = std::env::current_exe().context("locate this binary")?;
            crate::cli::serve_bin_next_to(&me).context("no `maple` binary here to run the nodes; pass --maple-bin")?
        }
    };
    let (tag, secret) = run_identity();
    let (root, temporary) = match &a.data_dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("maple-crash-loop-{tag}")), true),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
    // Ctrl-C / SIGTERM: every wait checks this flag, then the nodes are killed.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone()).context("install signal handlers")?;
    }
    let started = Instant::now();
    let mut report = CrashLoopReport {
        rounds_requested: a.rounds,
        nodes: a.nodes,
        cores: a.cores,
        loaders: a.loaders,
        data_dir: root.display().to_string(),
        ..Default::default()
    };
    let setup = ClusterSetup { exe: &exe, root: &root, nodes: a.nodes, base_port: a.base_port, cores: a.cores, jwt_secret: &secret };
    let mut cluster = LocalCluster::new(&setup, interrupted.clone())?;
    if let Err(e) = drive(a, &mut cluster, &tag, &secret, &interrupted, &mut report) {
        report.failures.push(format!("{e:#}"));
    }
    report.finish();
    if report.ok {
        eprintln!("crash-loop: stopping the nodes (SIGTERM)");
        if let Err(e) = cluster.stop_gracefully(STOP_TIMEOUT) {
            report.failures.push(format!("{e:#}"));
        }
    } else {
        cluster.kill_all();
    }
    report.duration_s = started.elapsed().as_secs_f64();
    report.finish();
    let text = report.to_text();
    print!("{text}");
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
        std::fs::write(out.join("report.json"), report.to_json())?;
        std::fs::write(out.join("report.txt"), &text)?;
        eprintln!("crash-loop: report in {}", out.display());
    }
    if report.ok && temporary {
        let _ = std::fs::remove_dir_all(&root);
    } else if !report.ok {
        eprintln!("crash-loop: data dirs and node logs kept in {}", root.display());
    }
    if !report.ok {
        bail!("crash-loop failed: {}", text.lines().next().unwrap_or(""));
    }
    Ok(())
}

/// A short tag making this run's names and keys its own (a reused data
/// dir keeps older likes), and the nodes' JWT secret.
fn run_identity() -> (String, String) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seed = format!("{nanos}-{}", std::process::id());
    let tag: String = hex(&Sha256::digest(seed.as_bytes()))[..8].to_owned();
    let secret = hex(&Sha256::digest(format!("crash-loop-secret-{seed}").as_bytes()));
    (tag, secret)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bearer(secret: &str, user: &str) -> String {
    let now = crate::jwt::unix_now();
    format!("Bearer {}", crate::jwt::sign_hs256(secret.as_bytes(), user, now, now + 7 * 86_400))
}

/// Start the nodes, run the load and the rounds, check every pair.
fn drive(
    a: &CrashLoopArgs,
    cluster: &mut LocalCluster,
    tag: &str,
    secret: &str,
    interrupted: &Arc<AtomicBool>,
    report: &mut CrashLoopReport,
) -> anyhow::Result<()> {
    let ids = cluster.ids();
    eprintln!("crash-loop: starting {} nodes (data and logs in {})", ids.len(), report.data_dir);
    for id in &ids {
        cluster.spawn(*id)?;
    }
    for id in &ids {
        cluster.wait_ready(*id, START_TIMEOUT)?;
    }
    let mut map = cluster.wait_agreed(&ids, START_TIMEOUT, |_| true)?;
    // The lowest id initialises every group, so it leads them all at first;
    // the first round should find the layout later rounds find (bounded, soft).
    match cluster.wait_agreed(&ids, a.recover_timeout, ClusterMap::balanced) {
        Ok(balanced) => map = balanced,
        Err(e) => {
            anyhow::ensure!(!interrupted.load(Ordering::Relaxed), "interrupted");
            eprintln!("crash-loop: leadership not on the preferred replicas after the start: {e:#}");
        }
    }
    report.partitions = map.partitions.len();
    let probe_characters: Vec<String> = (0..map.partitions.len())
        .map(|p| map.name_in(&format!("cl{tag}p{p}n"), p))
        .collect::<Option<_>>()
        .context("no probe name found for some partition")?;
    let specs = loader_specs(&map, tag, secret, a.loaders)?;

    let tally = Arc::new(Tally::default());
    let nodes = Arc::new(Liveness::new(cluster.specs().iter().map(|n| n.http).collect()));
    let load = LoadSetup {
        nodes: nodes.clone(),
        tally: tally.clone(),
        abort: interrupted.clone(),
        tag: tag.to_owned(),
        request_timeout: a.timeout,
        ack_within: a.recover_timeout * 2,
    };
    let loaders = Loaders::start(specs, &load)?;
    let mut rounds = Rounds {
        cluster,
        nodes: &nodes,
        tally: &tally,
        interrupted,
        tag,
        recover_timeout: a.recover_timeout,
        probe_auth: bearer(secret, &format!("cl{tag}-probe")),
        probe_conns: cluster_conns(&nodes, a.timeout),
        probe_characters,
        probe_liked: HashMap::new(),
        kills: vec![0; ids.len()],
        read_mismatches: 0,
    };
    let result = rounds.warm_up(a.loaders).and_then(|()| {
        for round in 1..=a.rounds {
            let record = rounds.one(round);
            let failure = record.failure.clone();
            report.rounds.push(record);
            if let Some(why) = failure {
                bail!("round {round}: {why}");
            }
        }
        Ok(())
    });
    if result.is_err() {
        interrupted.store(true, Ordering::Relaxed); // the loaders give up at once
    }
    eprintln!("crash-loop: stopping the loaders");
    let results = loaders.stop();
    report.loader_toggles = results.iter().map(|r| r.acked).sum();
    report.probe_toggles = rounds.probe_liked.values().map(|(_, n)| *n).sum();
    let check = result.and_then(|()| rounds.final_check(&results, &mut report.final_pairs_checked));
    report.read_mismatches = rounds.read_mismatches;
    report.wrong_answers = tally.wrong_answers();
    report.unavailable_503 = tally.unavailable();
    report.killed_node_connection_errors = tally.killed_node_errors();
    report.error_count = tally.error_count();
    report.errors = tally.errors();
    check
}

/// Loader i is user `cl<tag>-u<i>` on character `i mod C` (C = ⌈loaders/2⌉,
/// so most characters have two likers); the characters sit in partitions
/// spread evenly over the map, hence over the leaders.
fn loader_specs(map: &ClusterMap, tag: &str, secret: &str, loaders: usize) -> anyhow::Result<Vec<LoaderSpec>> {
    let characters = loaders.div_ceil(2);
    let partitions = map.partitions.len();
    let names: Vec<String> = (0..characters)
        .map(|j| map.name_in(&format!("cl{tag}c{j}n"), j * partitions / characters.max(1)))
        .collect::<Option<_>>()
        .context("no character name found for some partition")?;
    Ok((0..loaders)
        .map(|i| {
            let user = format!("cl{tag}-u{i}");
            let j = i % characters;
            LoaderSpec {
                auth: bearer(secret, &user),
                user,
                character: names[j].clone(),
                users_on_character: (0..loaders).filter(|k| k % characters == j).count() as u64,
            }
        })
        .collect())
}

fn cluster_conns(nodes: &Liveness, timeout: Duration) -> Vec<NodeConn> {
    (0..nodes.len()).map(|n| NodeConn::new(nodes.addr(n), timeout)).collect()
}

/// The state the rounds share: the cluster, the probe's model, the kills.
struct Rounds<'a> {
    cluster: &'a mut LocalCluster,
    nodes: &'a Liveness,
    tally: &'a Tally,
    interrupted: &'a AtomicBool,
    tag: &'a str,
    recover_timeout: Duration,
    probe_auth: String,
    probe_conns: Vec<NodeConn>,
    /// One per partition: the probe user's character there.
    probe_characters: Vec<String>,
    /// Partition → (liked, toggles acknowledged) of the probe user.
    probe_liked: HashMap<usize, (bool, u64)>,
    /// Index = node id - 1.
    kills: Vec<u64>,
    read_mismatches: u64,
}

impl Rounds<'_> {
    /// Until every loader had a few toggles acknowledged (bounded).
    fn warm_up(&mut self, loaders: usize) -> anyhow::Result<()> {
        let want = loaders as u64 * WARMUP_TOGGLES_PER_LOADER;
        let start = Instant::now();
        while self.tally.acked() < want {
            anyhow::ensure!(!self.interrupted.load(Ordering::Relaxed), "interrupted");
            anyhow::ensure!(self.tally.error_count() == 0, "errors before the first kill");
            if start.elapsed() > self.recover_timeout {
                bail!("only {} of {want} toggles acknowledged within {:?} before the first kill", self.tally.acked(), self.recover_timeout);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn one(&mut self, round: u32) -> RoundRecord {
        let mut rec = RoundRecord { round, ..Default::default() };
        let acked_before = self.tally.acked();
        if let Err(e) = self.steps(&mut rec) {
            rec.recovered = false;
            rec.failure = Some(format!("{e:#}"));
            eprintln!("crash-loop: round {round} FAILED: {e:#}");
        }
        rec.toggles_acked = self.tally.acked() - acked_before;
        if rec.recovered {
            eprintln!(
                "crash-loop: round {round}: killed node {} (leader of {} partitions); probe acknowledged after {:.0} ms via node {}, \
                 leaders agreed after {:.0} ms; restarted, ready in {:.0} ms; {} loader toggles acknowledged",
                rec.victim,
                rec.victim_led_partitions,
                rec.failover_ms.unwrap_or(0.0),
                rec.probe_answered_by.unwrap_or(0),
                rec.leaders_ms.unwrap_or(0.0),
                rec.restart_ready_ms.unwrap_or(0.0),
                rec.toggles_acked
            );
        }
        rec
    }

    fn steps(&mut self, rec: &mut RoundRecord) -> anyhow::Result<()> {
        let all = self.cluster.ids();
        let map = self.cluster.wait_agreed(&all, self.recover_timeout, |_| true)?;
        let victim = map.busiest(&self.kills).context("no node leads a partition")?;
        let led = map.led_by(victim);
        let partition = led[(rec.round as usize - 1) % led.len()];
        let character = self.probe_characters[partition].clone();
        rec.victim = victim;
        rec.victim_led_partitions = led.len();
        rec.probe_partition = partition;
        rec.probe_character = character.clone();

        // Loaders stop picking it before it dies; what they had in flight to it may fail.
        self.nodes.mark_killed(victim as usize - 1);
        self.kills[victim as usize - 1] += 1;
        let killed_at = self.cluster.kill9(victim)?;
        let key = format!("{}-probe-{}", self.tag, rec.round);
        let acked = toggle_until_acked(
            self.nodes,
            &mut self.probe_conns,
            &self.probe_auth,
            &character,
            &key,
            rec.round as usize,
            self.recover_timeout,
            self.tally,
            self.interrupted,
        )
        .map_err(|e| anyhow::anyhow!("no recovery: {e}"))?;
        rec.failover_ms = Some(killed_at.elapsed().as_secs_f64() * 1000.0);
        rec.probe_attempts = acked.attempts;
        rec.probe_answered_by = Some(acked.node);
        let model = self.probe_liked.entry(partition).or_insert((false, 0));
        model.0 = !model.0;
        model.1 += 1;
        let liked = model.0;
        if let Some(why) = answer_disagrees(acked.state, liked, 1) {
            self.tally.wrong_answer(format!("probe toggle {key} on {character}: {why}"));
        }

        let survivors: Vec<u64> = all.iter().copied().filter(|id| *id != victim).collect();
        let left = self.recover_timeout.saturating_sub(killed_at.elapsed());
        self.cluster.wait_agreed(&survivors, left, |_| true).context("no recovery")?;
        rec.leaders_ms = Some(killed_at.elapsed().as_secs_f64() * 1000.0);

        self.cluster.spawn(victim)?;
        rec.restart_ready_ms = Some(self.cluster.wait_ready(victim, RESTART_TIMEOUT)?.as_secs_f64() * 1000.0);
        self.nodes.mark_up(victim as usize - 1);
        self.cluster.wait_agreed(&all, self.recover_timeout, |_| true)?;
        rec.recovered = true;

        // Leadership settles back on the preferred replicas (every 2 s a
        // leader hands a caught-up preferred replica its partitions), so
        // each round starts from the same layout. Not a failure if it lags.
        let settling = Instant::now();
        match self.cluster.wait_agreed(&all, self.recover_timeout, ClusterMap::balanced) {
            Ok(_) => rec.rebalance_ms = Some(settling.elapsed().as_secs_f64() * 1000.0),
            Err(e) => {
                anyhow::ensure!(!self.interrupted.load(Ordering::Relaxed), "interrupted");
                eprintln!("crash-loop: round {}: leadership not back on the preferred replicas: {e:#}", rec.round);
            }
        }

        // The probe's pair is touched by nothing else: exact through every node.
        let expected = LikeState { liked, count: liked as u64 };
        let auth = self.probe_auth.clone();
        for id in &all {
            let got = self.read_like(*id, &auth, &character)?;
            if got != expected {
                self.read_mismatches += 1;
                bail!("node {id} answers {got:?} for the probe on {character}, the model says {expected:?}");
            }
        }
        Ok(())
    }

    /// `GET .../like/status` through node `id` until it is not a 503 (bounded).
    fn read_like(&mut self, id: u64, auth: &str, character: &str) -> anyhow::Result<LikeState> {
        let path = format!("{}/status", load::like_path(character));
        let start = Instant::now();
        let conn = &mut self.probe_conns[id as usize - 1];
        loop {
            anyhow::ensure!(!self.interrupted.load(Ordering::Relaxed), "interrupted");
            match conn.call("GET", &path, &[("Authorization", auth)]) {
                Ok(a) if a.status == 200 => {
                    return a
                        .json()
                        .as_ref()
                        .and_then(LikeState::parse)
                        .with_context(|| format!("node {id}: like status {}", a.body_text()));
                }
                Ok(a) if a.status == 503 && a.retry_after => self.tally.count_unavailable(a.code()),
                Ok(a) => bail!("node {id}: GET {path} answered {} {}", a.status, a.body_text()),
                Err(e) => bail!("node {id}: GET {path}: {e}"),
            }
            if start.elapsed() > self.recover_timeout {
                bail!("node {id}: GET {path} still 503 after {:?}", self.recover_timeout);
            }
            std::thread::sleep(load::RETRY_PAUSE);
        }
    }

    /// Every node answers the modelled state and count of every pair.
    fn final_check(&mut self, loaders: &[LoaderResult], checked: &mut usize) -> anyhow::Result<()> {
        // Per character: the likers the model knows, or None if a pair there is unknown.
        let mut likers: HashMap<&str, Option<u64>> = HashMap::new();
        for r in loaders {
            let n = likers.entry(r.spec.character.as_str()).or_insert(Some(0));
            *n = match (*n, r.liked) {
                (Some(n), Some(liked)) => Some(n + liked as u64),
                _ => None,
            };
        }
        let unknown = loaders.iter().filter(|r| r.liked.is_none()).count();
        anyhow::ensure!(unknown == 0, "{unknown} loader pairs ended with a toggle never acknowledged; their state is unknown");
        let mut pairs: Vec<(String, String, LikeState)> = loaders
            .iter()
            .map(|r| {
                let liked = r.liked.unwrap_or(false);
                let count = likers[r.spec.character.as_str()].unwrap_or(0);
                (r.spec.auth.clone(), r.spec.character.clone(), LikeState { liked, count })
            })
            .collect();
        for (p, (liked, _)) in &self.probe_liked {
            pairs.push((self.probe_auth.clone(), self.probe_characters[*p].clone(), LikeState { liked: *liked, count: *liked as u64 }));
        }
        *checked = pairs.len();
        let mut wrong = Vec::new();
        for id in self.cluster.ids() {
            for (auth, character, expected) in &pairs {
                let got = self.read_like(id, auth, character)?;
                if got != *expected {
                    self.read_mismatches += 1;
                    wrong.push(format!("node {id} on {character}: {got:?}, model {expected:?}"));
                }
            }
        }
        if !wrong.is_empty() {
            let shown: Vec<&str> = wrong.iter().take(10).map(String::as_str).collect();
            bail!("{} reads at the end differ from the model: {}", wrong.len(), shown.join("; "));
        }
        eprintln!("crash-loop: every node answers the model for {} pairs", pairs.len());
        Ok(())
    }
}
