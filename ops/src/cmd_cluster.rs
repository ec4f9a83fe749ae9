//! `maple cluster status [--target URL] [--json]`: the cluster as one node
//! sees it (its `GET /admin/cluster`), as a table; and `maple dev-cluster`:
//! N local nodes in one command, in the foreground.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: ClusterCmd,
}

#[derive(clap::Subcommand)]
pub enum ClusterCmd {
    /// Nodes, partitions, leaders, terms, commit/applied index and lag per replica, as the target node sees them.
    Status(StatusArgs),
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The node to ask (its HTTP address).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Print the JSON of `GET /admin/cluster` instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        ClusterCmd::Status(a) => status(a),
    }
}

/// Largest answer read from a node.
const MAX_ANSWER: u64 = 16 << 20;

/// `GET path` of `host:port` (an `http://` prefix is allowed), bounded in
/// time and size: (status, body).
pub fn http_get(target: &str, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let hostport = target.strip_prefix("http://").unwrap_or(target).trim_end_matches('/');
    anyhow::ensure!(!target.starts_with("https://"), "--target: https is not supported (the node speaks plain HTTP)");
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("resolving {hostport:?} (expected http://HOST:PORT)"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{hostport:?} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").with_context(|| format!("writing to {addr}"))?;
    let mut buf = Vec::new();
    s.take(MAX_ANSWER).read_to_end(&mut buf).with_context(|| format!("reading the answer of {addr}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("{addr} sent no complete HTTP answer"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("{addr} sent a bad status line: {:?}", head.lines().next().unwrap_or("")))?;
    Ok((status, body.to_owned()))
}

fn status(a: StatusArgs) -> anyhow::Result<()> {
    let (code, body) = http_get(&a.target, "/admin/cluster", Duration::from_secs(5))?;
    anyhow::ensure!(code == 200, "{} answered {code} to GET /admin/cluster: {body}", a.target);
    let v: serde_json::Value = serde_json::from_str(&body).with_context(|| format!("{} sent no JSON", a.target))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render_status(&v));
    Ok(())
}

fn opt(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) if s.is_empty() => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table of `maple cluster status`.
pub fn render_status(v: &serde_json::Value) -> String {
    let mut out = format!("as seen by node {}; replication factor {}\n\nnodes:\n", v["node"], v["replication_factor"]);
    out.push_str(&format!("  {:<4} {:<22} {:<22} {:<5}\n", "id", "http", "peer", "cores"));
    for n in v["nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!("  {:<4} {:<22} {:<22} {:<5}\n", opt(&n["id"]), opt(&n["http"]), opt(&n["peer"]), opt(&n["cores"])));
    }
    out.push_str("\npartitions:\n");
    out.push_str(&format!(
        "  {:<4} {:<12} {:<7} {:<10} {:<10} {:<6} {:<9} {:<10} {:<8} {}\n",
        "part", "slots", "leader", "replicas", "here", "term", "last_log", "committed", "applied", "lag (replica:entries)"
    ));
    for p in v["partitions"].as_array().into_iter().flatten() {
        let slots = format!("{}-{}", p["slots"][0], p["slots"][1]);
        let replicas: Vec<String> = p["replicas"].as_array().into_iter().flatten().map(|r| r.to_string()).collect();
        let h = &p["here"];
        let lag: Vec<String> = h["lag"].as_object().into_iter().flatten().map(|(n, l)| format!("{n}:{}", opt(l))).collect();
        out.push_str(&format!(
            "  {:<4} {:<12} {:<7} {:<10} {:<10} {:<6} {:<9} {:<10} {:<8} {}\n",
            opt(&p["partition"]),
            slots,
            opt(&p["leader"]),
            replicas.join(","),
            if h.is_null() { "-".to_owned() } else { opt(&h["state"]) },
            opt(&h["term"]),
            opt(&h["last_log"]),
            opt(&h["committed"]),
            opt(&h["applied"]),
            if lag.is_empty() { "-".to_owned() } else { lag.join(" ") },
        ));
    }
    out
}

// ---- maple dev-cluster ----

#[derive(clap::Args)]
pub struct DevArgs {
    /// Nodes to start (ids 1..=N).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Node i listens for HTTP on base-port + i - 1, for its peers on
    /// base-port + 100 + i - 1 and for RESP on base-port + 200 + i - 1.
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// Node i keeps its data in DIR/node-<i> and its log in DIR/node-<i>.log.
    #[arg(long, default_value = "maple-dev-cluster")]
    pub data_dir: PathBuf,
    /// `--cores` of every node.
    #[arg(long, default_value_t = 1)]
    pub cores: u16,
}

struct Node {
    id: u16,
    http: String,
    peer: String,
    resp: String,
    child: Child,
    log: PathBuf,
}

/// Start the nodes, print one line per node once all are ready, stay in
/// the foreground; SIGINT / SIGTERM stops every node gracefully (SIGTERM,
/// then a bounded wait) and exits 0 when they all exited 0.
pub fn dev_cluster(a: DevArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=9).contains(&a.nodes), "--nodes must be in 1..=9");
    anyhow::ensure!((1..=64).contains(&a.cores), "--cores must be in 1..=64");
    anyhow::ensure!(a.base_port >= 1024 && a.base_port as u32 + 200 + a.nodes as u32 <= 65535, "--base-port must be in 1024..=65000");
    std::fs::create_dir_all(&a.data_dir).with_context(|| format!("creating {}", a.data_dir.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("installing signal handlers")?;
    let flag = stop.clone();
    std::thread::Builder::new().name("dev-cluster-signals".into()).spawn(move || {
        for _ in signals.forever() {
            flag.store(true, Ordering::Release);
        }
    })?;
    let exe = std::env::current_exe().context("finding the maple binary")?;
    let host = "127.0.0.1";
    let peers = (1..=a.nodes).map(|i| format!("{i}={host}:{}", a.base_port + 100 + i - 1)).collect::<Vec<_>>().join(",");
    let mut nodes: Vec<Node> = Vec::new();
    for i in 1..=a.nodes {
        let (http, peer) = (format!("{host}:{}", a.base_port + i - 1), format!("{host}:{}", a.base_port + 100 + i - 1));
        let resp = format!("{host}:{}", a.base_port + 200 + i - 1);
        let dir = a.data_dir.join(format!("node-{i}"));
        let log = a.data_dir.join(format!("node-{i}.log"));
        let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&exe);
        cmd.args(["serve", "--listen", &http, "--resp-listen", &resp, "--node-id", &i.to_string(), "--peers", &peers])
            .args(["--cores", &a.cores.to_string()])
            .arg("--data-dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // Own process group: a terminal's Ctrl-C reaches only this command,
        // which then stops each node once (a second signal would cut a drain short).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut nodes);
                return Err(e).context(format!("starting node {i}"));
            }
        };
        nodes.push(Node { id: i, http, peer, resp, child, log });
    }
    if let Err(e) = wait_all_ready(&mut nodes, &stop) {
        stop_all(&mut nodes);
        return Err(e);
    }
    for n in &nodes {
        println!("node {} http={} peer={} resp={} pid={}", n.id, n.http, n.peer, n.resp, n.child.id());
    }
    eprintln!(
        "maple dev-cluster: {} nodes ready (logs: {}/node-<id>.log; `maple cluster status --target http://{}`); Ctrl-C stops them",
        nodes.len(),
        a.data_dir.display(),
        nodes[0].http
    );
    let mut told = vec![false; nodes.len()];
    while !stop.load(Ordering::Acquire) {
        for (k, n) in nodes.iter_mut().enumerate() {
            if let (false, Ok(Some(status))) = (told[k], n.child.try_wait()) {
                tracing::warn!(node = n.id, %status, "maple dev-cluster: node {} exited ({status}); see {}", n.id, n.log.display());
                told[k] = true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("maple dev-cluster: stopping {} nodes", nodes.len());
    let clean = stop_all(&mut nodes);
    anyhow::ensure!(clean, "a node did not exit cleanly; see the logs in {}", a.data_dir.display());
    Ok(())
}

/// Poll every node's `/health/ready` until 200 (bounded); a node that exits
/// or a signal ends the wait with an error.
fn wait_all_ready(nodes: &mut [Node], stop: &AtomicBool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    for n in nodes.iter_mut() {
        loop {
            if let Ok((200, _)) = http_get(&n.http, "/health/ready", Duration::from_secs(2)) {
                break;
            }
            if let Ok(Some(status)) = n.child.try_wait() {
                anyhow::bail!("node {} exited ({status}) before it was ready; its log: {}", n.id, n.log.display());
            }
            anyhow::ensure!(!stop.load(Ordering::Acquire), "stopped before every node was ready");
            anyhow::ensure!(Instant::now() < deadline, "node {} not ready after 120 s; its log: {}", n.id, n.log.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// SIGTERM every running node, wait (bounded, then SIGKILL); true when
/// every node exited 0.
fn stop_all(nodes: &mut [Node]) -> bool {
    for n in nodes.iter_mut() {
        if let Ok(None) = n.child.try_wait() {
            // SAFETY: kill(2) on a child's pid we spawned and have not reaped.
            unsafe { libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM) };
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut clean = true;
    for n in nodes.iter_mut() {
        let status = loop {
            match n.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = n.child.kill();
                    break n.child.wait().ok();
                }
            }
        };
        let ok = status.is_some_and(|s| s.success());
        if !ok {
            tracing::warn!(node = n.id, ?status, "maple dev-cluster: node {} did not exit cleanly ({status:?})", n.id);
        }
        clean &= ok;
    }
    clean
}
