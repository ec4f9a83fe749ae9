//! The local `maple serve` processes of the crash loop: spawned with fixed
//! ports (a restart comes back on the same ones), each with its data dir
//! and log file, killed with SIGKILL, stopped with SIGTERM, and never left
//! behind: dropping the [`LocalCluster`] kills what still runs, and each
//! child gets SIGKILL from the kernel if this process dies first.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::client::call_once;
use super::map::ClusterMap;

/// Every poll of a node (readiness, the map) is bounded by this.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// `MAPLE_*` variables a node inherits from this process: only the network
/// driver choice. The rest (an API key, a config file, peers) would change
/// what the nodes are.
const KEPT_ENV: [&str; 1] = ["MAPLE_NET_DRIVER"];

/// Where node `id` lives.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u64,
    pub http: SocketAddr,
    pub peer: SocketAddr,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// How the nodes are started.
pub struct ClusterSetup<'a> {
    pub exe: &'a Path,
    pub root: &'a Path,
    pub nodes: u16,
    pub base_port: u16,
    pub cores: u16,
    pub jwt_secret: &'a str,
}

pub struct LocalCluster {
    exe: PathBuf,
    cores: u16,
    secret: String,
    peers: String,
    specs: Vec<NodeSpec>,
    /// Index = id - 1; `None` while the node is down.
    children: Vec<Option<Child>>,
    interrupted: Arc<AtomicBool>,
}

impl LocalCluster {
    /// Node i (1-based) listens for HTTP on base-port + i - 1 and for its
    /// peers on base-port + 100 + i - 1 (as `maple dev-cluster`), keeps its
    /// data in `root/node-<i>` and its output in `root/node-<i>.log`. Fails
    /// if one of the ports is taken now.
    pub fn new(s: &ClusterSetup, interrupted: Arc<AtomicBool>) -> anyhow::Result<LocalCluster> {
        let host = [127, 0, 0, 1];
        let specs: Vec<NodeSpec> = (1..=s.nodes)
            .map(|i| NodeSpec {
                id: i as u64,
                http: SocketAddr::from((host, s.base_port + i - 1)),
                peer: SocketAddr::from((host, s.base_port + 100 + i - 1)),
                dir: s.root.join(format!("node-{i}")),
                log: s.root.join(format!("node-{i}.log")),
            })
            .collect();
        for n in &specs {
            for addr in [n.http, n.peer] {
                TcpListener::bind(addr)
                    .with_context(|| format!("port {} (node {}) is not free; pick another --base-port", addr.port(), n.id))?;
            }
        }
        let peers = specs.iter().map(|n| format!("{}={}", n.id, n.peer)).collect::<Vec<_>>().join(",");
        Ok(LocalCluster {
            exe: s.exe.to_path_buf(),
            cores: s.cores,
            secret: s.jwt_secret.to_owned(),
            peers,
            children: specs.iter().map(|_| None).collect(),
            specs,
            interrupted,
        })
    }

    pub fn specs(&self) -> &[NodeSpec] {
        &self.specs
    }

    pub fn ids(&self) -> Vec<u64> {
        self.specs.iter().map(|n| n.id).collect()
    }

    fn spec(&self, id: u64) -> &NodeSpec {
        &self.specs[id as usize - 1]
    }

    fn check_interrupted(&self) -> anyhow::Result<()> {
        if self.interrupted.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        Ok(())
    }

    /// Start node `id` (its log is appended to) and return at once.
    pub fn spawn(&mut self, id: u64) -> anyhow::Result<()> {
        let n = self.spec(id).clone();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(&n.log).with_context(|| format!("open {}", n.log.display()))?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(["serve", "--listen", &n.http.to_string(), "--resp-listen", "off", "--node-id", &id.to_string()])
            .args(["--peers", &self.peers, "--cores", &self.cores.to_string()])
            .arg("--data-dir")
            .arg(&n.dir);
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("MAPLE_") && !KEPT_ENV.contains(&name.as_ref()) {
                cmd.env_remove(&key);
            }
        }
        cmd.env("MAPLE_JWT_SECRET", &self.secret).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        // Own process group: a terminal's Ctrl-C reaches only this command,
        // which then ends the nodes itself.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // SAFETY: prctl(2) is async-signal-safe; it only sets the signal the
        // child gets when the thread that spawned it (this one) dies.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("start node {id} ({})", self.exe.display()))?;
        self.children[id as usize - 1] = Some(child);
        Ok(())
    }

    /// An error if node `id` exited on its own.
    fn check_running(&mut self, id: u64) -> anyhow::Result<()> {
        let log = self.spec(id).log.clone();
        match self.children[id as usize - 1].as_mut() {
            None => bail!("node {id} is not running"),
            Some(c) => {
                if let Some(status) = c.try_wait()? {
                    self.children[id as usize - 1] = None;
                    bail!("node {id} exited ({status}); its log: {}", log.display());
                }
            }
        }
        Ok(())
    }

    /// Poll `/health/ready` of node `id` until 200; how long it took.
    pub fn wait_ready(&mut self, id: u64, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let addr = self.spec(id).http;
        loop {
            self.check_running(id)?;
            self.check_interrupted()?;
            if let Ok(a) = call_once(addr, "GET", "/health/ready", &[], POLL_TIMEOUT) {
                if a.status == 200 {
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > within {
                bail!("node {id} not ready after {within:?}; its log: {}", self.spec(id).log.display());
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }

    /// SIGKILL node `id` and reap it; the instant just before the signal.
    pub fn kill9(&mut self, id: u64) -> anyhow::Result<Instant> {
        let mut child = self.children[id as usize - 1].take().with_context(|| format!("node {id} is not running"))?;
        let at = Instant::now();
        child.kill().with_context(|| format!("SIGKILL node {id}"))?;
        child.wait().with_context(|| format!("reap node {id}"))?;
        Ok(at)
    }

    /// The map as node `id` sees it.
    pub fn map(&self, id: u64) -> anyhow::Result<ClusterMap> {
        let a = call_once(self.spec(id).http, "GET", "/admin/cluster", &[], POLL_TIMEOUT)?;
        if a.status != 200 {
            bail!("node {id}: GET /admin/cluster answered {}", a.status);
        }
        let v = a.json().with_context(|| format!("node {id}: /admin/cluster is not JSON"))?;
        ClusterMap::parse(&v).map_err(|e| anyhow::anyhow!("node {id}: /admin/cluster: {e}"))
    }

    /// Wait until every node of `up` knows a leader among `up` for every
    /// partition and they all agree; `also` may ask more of the agreed map
    /// (e.g. [`ClusterMap::balanced`]).
    pub fn wait_agreed(&mut self, up: &[u64], within: Duration, also: impl Fn(&ClusterMap) -> bool) -> anyhow::Result<ClusterMap> {
        anyhow::ensure!(!up.is_empty(), "no node is up");
        let start = Instant::now();
        loop {
            for id in up {
                self.check_running(*id)?;
            }
            self.check_interrupted()?;
            let maps: Result<Vec<ClusterMap>, _> = up.iter().map(|id| self.map(*id)).collect();
            let last = match maps {
                Ok(maps) => {
                    let first = &maps[0];
                    if first.led_by_any_of(up) && maps.iter().all(|m| m.leaders() == first.leaders()) && also(first) {
                        return Ok(first.clone());
                    }
                    format!("leaders per node: {:?}", maps.iter().map(|m| m.leaders()).collect::<Vec<_>>())
                }
                Err(e) => format!("{e:#}"),
            };
            if start.elapsed() > within {
                bail!("nodes {up:?} did not agree on leaders within {within:?}; last: {last}");
            }
            std::thread::sleep(POLL_PAUSE.max(Duration::from_millis(50)));
        }
    }

    /// SIGTERM every running node, wait for each (bounded, then SIGKILL);
    /// an error names the nodes that did not exit 0.
    pub fn stop_gracefully(&mut self, within: Duration) -> anyhow::Result<()> {
        for c in self.children.iter().flatten() {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + within;
        let mut unclean = Vec::new();
        for (i, slot) in self.children.iter_mut().enumerate() {
            let Some(mut c) = slot.take() else { continue };
            let status = loop {
                match c.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_PAUSE),
                    _ => {
                        let _ = c.kill();
                        break c.wait().ok();
                    }
                }
            };
            if !status.is_some_and(|s| s.success()) {
                unclean.push(format!("node {} ({status:?}; log {})", i + 1, self.specs[i].log.display()));
            }
        }
        if !unclean.is_empty() {
            bail!("did not exit 0 after SIGTERM: {}", unclean.join(", "));
        }
        Ok(())
    }

    /// SIGKILL whatever still runs (a failed or interrupted run).
    pub fn kill_all(&mut self) {
        for mut c in self.children.iter_mut().filter_map(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
