//! `maple dev-cluster --nodes 3` starts three real nodes, prints one line
//! per node once all are ready, `maple cluster status` shows every
//! partition with a leader, a like toggled through node 1 is seen through
//! node 3, and SIGINT stops every node gracefully (exit 0, no node left).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::http::Conn;
use common::maple::DataDir;

/// A base port whose HTTP (base..base+3), peer (base+100..base+103) and
/// RESP (base+200..base+203) ports are free now.
fn free_base() -> u16 {
    let seed = std::process::id() as u16;
    for k in 0..200u16 {
        let base = 20_000 + (seed.wrapping_add(k * 211) % 30_000);
        let ok = (0..3).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 200 + i)).is_ok()
        });
        if ok {
            return base;
        }
    }
    panic!("no free port range");
}

#[test]
fn dev_cluster_starts_three_nodes_status_shows_leaders_and_ctrl_c_stops_all() {
    let dir = DataDir::new("devcluster");
    let base = free_base();
    let mut child = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(["dev-cluster", "--nodes", "3", "--base-port", &base.to_string(), "--data-dir"])
        .arg(dir.path())
        .env_remove("MAPLE_JWT_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut nodes = Vec::new();
    while nodes.len() < 3 {
        let line = lines.next().expect("dev-cluster printed its node lines").unwrap();
        // node <id> http=<host:port> peer=<host:port> resp=<host:port> pid=<pid>
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!((f.len(), f[0]), (6, "node"), "{line}");
        let http = f[2].strip_prefix("http=").unwrap().to_owned();
        assert!(f[3].starts_with("peer=127.0.0.1:"), "{line}");
        let resp: std::net::SocketAddr = f[4].strip_prefix("resp=").unwrap().parse().unwrap();
        let pid: u32 = f[5].strip_prefix("pid=").unwrap().parse().unwrap();
        nodes.push((http, pid, resp));
    }
    assert_eq!(nodes[0].0, format!("127.0.0.1:{base}"));

    let out = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(["cluster", "status", "--target", &format!("http://{}", nodes[1].0), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node"], 2);
    let parts = v["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 16);
    let table = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(["cluster", "status", "--target", &format!("http://{}", nodes[0].0)])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table.contains("partitions:") && table.contains("leader"), "{table}");

    // The dev secret (no MAPLE_JWT_SECRET): a toggle through node 1, read through node 3.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let auth = format!("Bearer {}", net::jwt::sign(b"maple-dev-secret", "dev-user", now + 600));
    let mut c1 = Conn::open(nodes[0].0.parse().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c1.send("POST", "/api/v2/characters/alpha/like", &[("Authorization", &auth)]).unwrap();
        if r.status == 200 {
            assert_eq!(r.json()["liked"], true);
            break;
        }
        assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c3 = Conn::open(nodes[2].0.parse().unwrap()).unwrap();
    let r = c3.send("GET", "/api/v2/characters/alpha/like/status", &[("Authorization", &auth)]).unwrap();
    assert_eq!((r.status, r.json()["likeCount"].as_u64()), (200, Some(1)));
    // Every node's RESP port answers, and the count is the same over RESP
    // (at the leader of alpha's partition: the others answer -MOVED there).
    let mut count = None;
    for (_, _, resp) in &nodes {
        let mut c = common::resp::RespConn::open(*resp).unwrap();
        assert_eq!(c.call(&["PING"]), common::resp::Value::Simple("PONG".into()));
        match c.call(&["LIKE.COUNT", "alpha"]) {
            common::resp::Value::Int(n) => count = Some(n),
            common::resp::Value::Error(e) => assert!(e.starts_with("MOVED "), "{e}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(count, Some(1), "alpha's leader answered over RESP");

    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dev-cluster still running after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "dev-cluster exit: {status}");
    for (_, pid, _) in nodes {
        let alive = Command::new("kill").args(["-0", &pid.to_string()]).stderr(Stdio::null()).status().unwrap().success();
        assert!(!alive, "node pid {pid} still running");
    }
}
