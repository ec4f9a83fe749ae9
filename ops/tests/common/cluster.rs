//! A 3-node cluster of real `maple serve` processes on 127.0.0.1: peer
//! ports picked free, HTTP ports read from each node's "listening" line,
//! readiness polled on every node, the leader of a partition read from
//! `GET /admin/cluster`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::http::try_request;
use super::maple::{DataDir, Launch, Maple, START_TIMEOUT};

pub const SECRET: &str = "cluster-test-secret";

pub struct Cluster {
    pub dirs: Vec<DataDir>,
    pub peers: String,
    /// Index i = node id i + 1; None once stopped.
    pub nodes: Vec<Option<Maple>>,
    /// The HTTP address of each node (kept for restarts).
    pub addrs: Vec<SocketAddr>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// Start `n` nodes (ids 1..=n) and wait until every one is ready.
    pub fn start(tag: &str, n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_with_env(tag, n, extra, &[])
    }

    /// [`Cluster::start`] with these environment variables on every node.
    pub fn start_with_env(tag: &str, n: usize, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let peers = ports.iter().enumerate().map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1)).collect::<Vec<_>>().join(",");
        let dirs: Vec<DataDir> = (0..n).map(|i| DataDir::new(&format!("{tag}-n{}", i + 1))).collect();
        let mut c = Cluster {
            dirs,
            peers,
            nodes: Vec::new(),
            addrs: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let mut nodes: Vec<Maple> = (1..=n as u64).map(|id| c.launch(id, None).spawn()).collect();
        for m in &mut nodes {
            m.wait_listening(START_TIMEOUT);
        }
        for m in &mut nodes {
            m.wait_ready(START_TIMEOUT);
        }
        c.addrs = nodes.iter().map(|m| m.addr).collect();
        c.nodes = nodes.into_iter().map(Some).collect();
        c
    }

    fn launch(&self, id: u64, addr: Option<SocketAddr>) -> Launch {
        let dir: &Path = self.dirs[id as usize - 1].path();
        let mut l = Launch::serve(dir)
            .arg("--cores", "2")
            .arg("--node-id", &id.to_string())
            .arg("--peers", &self.peers)
            .env("MAPLE_JWT_SECRET", SECRET);
        for a in &self.extra {
            l = l.args(&[a.as_str()]);
        }
        for (k, v) in &self.env {
            l = l.env(k, v);
        }
        if let Some(a) = addr {
            l = l.listen(a);
        }
        l
    }

    /// Restart node `id` on its data dir and HTTP port; wait until ready.
    pub fn restart(&mut self, id: u64) {
        let m = self.launch(id, Some(self.addrs[id as usize - 1])).start();
        self.nodes[id as usize - 1] = Some(m);
    }

    pub fn node(&mut self, id: u64) -> &mut Maple {
        self.nodes[id as usize - 1].as_mut().expect("node running")
    }

    pub fn addr(&self, id: u64) -> SocketAddr {
        self.addrs[id as usize - 1]
    }

    /// The ids of the running nodes.
    pub fn alive(&self) -> Vec<u64> {
        self.nodes.iter().enumerate().filter(|(_, m)| m.is_some()).map(|(i, _)| i as u64 + 1).collect()
    }

    pub fn take(&mut self, id: u64) -> Maple {
        self.nodes[id as usize - 1].take().expect("node running")
    }

    /// `GET /admin/cluster` of node `id`.
    pub fn status(&self, id: u64) -> serde_json::Value {
        let r = try_request(self.addr(id), "GET", "/admin/cluster", &[]).expect("admin/cluster");
        assert_eq!(r.status, 200);
        r.json()
    }

    /// The leader node `id` knows for each partition (None: none).
    pub fn leaders(&self, id: u64) -> Vec<Option<u64>> {
        let s = self.status(id);
        s["partitions"].as_array().unwrap().iter().map(|p| p["leader"].as_u64()).collect()
    }

    /// Wait (bounded) until every running node knows a leader of every
    /// partition among the running nodes, and they agree.
    pub fn wait_leaders(&self, within: Duration) -> Vec<u64> {
        let deadline = Instant::now() + within;
        let alive = self.alive();
        loop {
            let views: Vec<Vec<Option<u64>>> = alive.iter().map(|id| self.leaders(*id)).collect();
            let first = &views[0];
            if first.iter().all(|l| l.is_some_and(|l| alive.contains(&l))) && views.iter().all(|v| v == first) {
                return first.iter().map(|l| l.unwrap()).collect();
            }
            assert!(Instant::now() < deadline, "no agreed leaders after {within:?}: {views:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Send until the answer is not a 503 (only 503 + Retry-After with a JSON
/// body may come first: an election or a leadership move), bounded.
/// Use with reads, or with keyed toggles (a retried key toggles at most once).
pub fn send_until_served(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> super::Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = super::http::Conn::open(addr).and_then(|mut c| c.send(method, path, headers)) {
            if r.status != 503 {
                return r;
            }
            assert!(r.header("retry-after").is_some(), "a 503 carries Retry-After");
            assert!(r.json()["code"].is_string(), "a 503 has a JSON error body");
        }
        assert!(Instant::now() < deadline, "{method} {path} at {addr}: still 503 after 60 s");
        std::thread::sleep(Duration::from_millis(25));
    }
}
