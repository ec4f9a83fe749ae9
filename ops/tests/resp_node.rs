//! The node's RESP listener (issue 12), end to end: the real `maple serve`
//! binary with `--resp-listen 127.0.0.1:0`, a std-only RESP client
//! (tests/common/resp.rs), redis-cli (skipped, saying so, when it is not
//! installed; `.ci/run` installs redis-tools) and redis-rs (a real
//! cluster-aware client from the registry). No timing asserts.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::http::{get, Conn};
use common::maple::{DataDir, Launch, Maple};
use common::resp::{RespConn, Value};
use common::{enc, metric};

const SECRET: &str = "resp-test-secret";

/// A node on a data dir of its own; the process ends before the directory
/// is removed (field order).
struct Node {
    maple: Maple,
    _dir: DataDir,
}

impl std::ops::Deref for Node {
    type Target = Maple;
    fn deref(&self) -> &Maple {
        &self.maple
    }
}

fn serve(extra: &[&str]) -> Node {
    let dir = DataDir::new("resp-node");
    let maple = Launch::serve(dir.path()).args(extra).env("MAPLE_JWT_SECRET", SECRET).start();
    Node { maple, _dir: dir }
}

fn token(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    net::jwt::sign(SECRET.as_bytes(), user, now + 3600)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    out
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)])))
}

/// An authenticated RESP connection of `user`.
fn authed(node: &Maple, user: &str) -> RespConn {
    let mut c = RespConn::open(node.resp_addr()).unwrap();
    assert_eq!(c.call(&["AUTH", &token(user)]), Value::Simple("OK".into()));
    c
}

fn http_toggle(c: &mut Conn, user: &str, character: &str) -> (bool, u64) {
    let auth = format!("Bearer {}", token(user));
    let r = c.send("POST", &format!("/api/v2/characters/{}/like", enc(character)), &[("Authorization", &auth)]).unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    (v["liked"].as_bool().unwrap(), v["likeCount"].as_u64().unwrap())
}

fn http_status(c: &mut Conn, user: &str, character: &str) -> (bool, u64) {
    let auth = format!("Bearer {}", token(user));
    let r = c.send("GET", &format!("/api/v2/characters/{}/like/status", enc(character)), &[("Authorization", &auth)]).unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    (v["liked"].as_bool().unwrap(), v["likeCount"].as_u64().unwrap())
}

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIP: {tool} not installed (apt-get install -y redis-tools)");
    }
    found
}

/// redis-cli against the node; stdout (trimmed).
fn cli(node: &Maple, args: &[&str]) -> String {
    let port = node.resp_addr().port().to_string();
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "--no-auth-warning"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

#[test]
fn redis_cli_session() {
    if !have("redis-cli") {
        return;
    }
    let node = serve(&["--cores", "2"]);
    // The token as an operator mints it: `maple bench token` with the node's secret.
    let out = Command::new(env!("CARGO_BIN_EXE_maple"))
        .args(["bench", "token", "--user", "cli-user"])
        .env("MAPLE_JWT_SECRET", SECRET)
        .output()
        .expect("maple bench token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    assert_eq!(cli(&node, &["PING"]), "PONG");
    assert_eq!(cli(&node, &["LIKE.TOGGLE", "Hero"]), "NOAUTH Authentication required.");
    assert_eq!(cli(&node, &["-a", &tok, "LIKE.TOGGLE", "Hero"]), "1\n1");
    assert_eq!(cli(&node, &["-a", &tok, "LIKE.STATUS", "hero"]), "1\n1", "the name is normalised");
    assert_eq!(cli(&node, &["LIKE.COUNT", "HERO"]), "1", "no AUTH needed for a count");
    // AUTH then commands on one connection (redis-cli sends each stdin line).
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &node.resp_addr().port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(format!("AUTH {tok}\nLIKE.TOGGLE hero\nLIKE.STATUS Hero\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), "OK\n0\n0\n0\n0");

    let doc = cli(&node, &["EXPECT.GET", "evan"]);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    assert_eq!(v["userIgn"], "evan");
    assert_eq!(v["totalExpectedCost"].as_f64().unwrap(), 3_325_625_981_940.0);
    let info = cli(&node, &["INFO", "persistence"]);
    assert!(info.starts_with("# Persistence") && info.contains("wal_fsyncs:"), "{info}");
    assert_eq!(cli(&node, &["CLUSTER", "KEYSLOT", "Hero"]), cli(&node, &["CLUSTER", "KEYSLOT", "hero"]));
    assert!(cli(&node, &["NOPE"]).starts_with("ERR unknown command 'NOPE'"));
}

#[test]
fn likes_over_resp_and_http_are_one_state() {
    let node = serve(&["--cores", "2"]);
    let mut http = Conn::open(node.addr).unwrap();
    let mut ann = authed(&node, "ann");
    let mut bob = authed(&node, "bob");

    // RESP → HTTP.
    assert_eq!(ann.call(&["LIKE.TOGGLE", "Hero"]).like(), (true, 1));
    assert_eq!(http_status(&mut http, "ann", "hero"), (true, 1));
    // HTTP → RESP.
    assert_eq!(http_toggle(&mut http, "bob", "HERO"), (true, 2));
    assert_eq!(bob.call(&["LIKE.STATUS", "hero"]).like(), (true, 2));
    assert_eq!(ann.call(&["LIKE.COUNT", "Hero"]), Value::Int(2));
    // Korean names: composed and normalised as over HTTP.
    assert_eq!(ann.call(&["LIKE.TOGGLE", "아델"]).like(), (true, 1));
    assert_eq!(http_status(&mut http, "bob", "아델"), (false, 1));
    assert_eq!(http_toggle(&mut http, "bob", "아델"), (true, 2));
    assert_eq!(bob.call(&["LIKE.TOGGLE", "아델"]).like(), (false, 1));

    // An idempotency key: the retry gets the first answer and changes nothing.
    assert_eq!(ann.call(&["LIKE.TOGGLE", "zed", "IDEMPOTENCY", "k-1"]).like(), (true, 1));
    assert_eq!(ann.call(&["LIKE.TOGGLE", "zed", "idempotency", "k-1"]).like(), (true, 1));
    assert_eq!(http_status(&mut http, "ann", "zed"), (true, 1));
    let reused = ann.call(&["LIKE.TOGGLE", "other", "IDEMPOTENCY", "k-1"]);
    assert!(reused.err().starts_with("ERR ") && reused.err().ends_with("(IDEMPOTENCY_KEY_REUSED)"), "{reused:?}");

    // RESP3: the like answer is a map.
    let mut r3 = RespConn::open(node.resp_addr()).unwrap();
    let hello = r3.call(&["HELLO", "3", "AUTH", "cid", &token("cid")]);
    assert_eq!(hello.get("proto"), &Value::Int(3));
    assert_eq!(hello.get("mode").text(), "cluster");
    let m = r3.call(&["LIKE.TOGGLE", "hero"]);
    assert_eq!((m.get("liked"), m.get("likeCount")), (&Value::Bool(true), &Value::Int(3)));

    // Errors are RESP errors and keep the connection.
    let mut anon = RespConn::open(node.resp_addr()).unwrap();
    assert_eq!(anon.call(&["LIKE.TOGGLE", "hero"]).err(), "NOAUTH Authentication required.");
    assert!(anon.call(&["AUTH", "x.y.z"]).err().starts_with("WRONGPASS "));
    assert!(anon.call(&["AUTH", "mallory", &token("ann")]).err().contains("not the token's subject"));
    assert!(anon.call(&["LIKE.TOGGLE"]).err().starts_with("ERR wrong number of arguments"));
    assert!(anon.call(&["LIKE.NOPE", "x"]).err().starts_with("ERR unknown command"));
    assert!(ann.call(&["LIKE.TOGGLE", "hero", "BOGUS"]).err().starts_with("ERR syntax error at 'BOGUS'"));
    assert!(ann.call(&["LIKE.TOGGLE", ""]).err().starts_with("ERR "), "an empty name");
    assert!(ann.call(&["LIKE.TOGGLE", &"x".repeat(5000)]).err().starts_with("ERR "), "an over-long name");
    assert!(ann.call(&["EXPECT.GET", "evan", "PRESET", "9"]).err().starts_with("ERR PRESET must be 1, 2 or 3"));
    assert_eq!(anon.call(&["PING"]), Value::Simple("PONG".into()));
    assert_eq!(ann.call(&["LIKE.STATUS", "hero"]).like(), (true, 3));

    // The counters: every like above went through the owner (toggles counted
    // once per protocol path), no redirect on a single node.
    let m = String::from_utf8(get(node.addr, "/metrics").body).unwrap();
    assert!(common::metric_sum(&m, "maple_resp_commands_total{") >= 20.0, "{m}");
    assert_eq!(common::metric_sum(&m, "maple_resp_moved_total"), 0.0);
    assert!(common::metric_sum(&m, "maple_resp_connections_accepted_total{") >= 4.0, "{m}");
}

#[test]
fn documents_cluster_and_info() {
    let node = serve(&["--cores", "2", "--partitions", "8"]);
    let mut c = RespConn::open(node.resp_addr()).unwrap();

    // EXPECT.GET = the HTTP document, its gzip bytes, a preset; EQUIP.GET; RECALC.
    let http_doc = get(node.addr, "/api/v4/characters/evan/expectation");
    assert_eq!(http_doc.status, 200);
    let doc = c.call(&["EXPECT.GET", "Evan"]);
    assert_eq!(json(doc.bytes()), http_doc.json());
    let gz = c.call(&["EXPECT.GET", "evan", "GZIP"]);
    assert_eq!(&gz.bytes()[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(json(&gunzip(gz.bytes())), http_doc.json());
    let preset = c.call(&["EXPECT.GET", "evan", "PRESET", "2"]);
    assert_eq!(json(preset.bytes()), get(node.addr, "/api/v4/characters/evan/expectation/preset/2").json());
    let equip = c.call(&["EQUIP.GET", "mechanic"]);
    assert_eq!(json(equip.bytes()), get(node.addr, "/api/v2/characters/mechanic/equipment").json());
    let recalc = c.call(&["EXPECT.RECALC", "evan"]);
    assert_eq!(json(recalc.bytes())["userIgn"], "evan");
    let missing = c.call(&["EXPECT.GET", "missing-person"]);
    assert!(missing.err().ends_with("(CHARACTER_NOT_FOUND)"), "{missing:?}");

    // CLUSTER: one node owning every slot, in 8 contiguous partitions.
    let Value::Array(slots) = c.call(&["CLUSTER", "SLOTS"]) else { panic!() };
    assert_eq!(slots.len(), 8);
    let mut next = 0;
    for s in &slots {
        let Value::Array(s) = s else { panic!("{s:?}") };
        assert_eq!(s[0].int(), next);
        next = s[1].int() + 1;
        let Value::Array(master) = &s[2] else { panic!("{s:?}") };
        assert_eq!((master[0].text(), master[1].int()), ("127.0.0.1".to_owned(), node.resp_addr().port() as i64));
    }
    assert_eq!(next, 16384);
    let Value::Array(shards) = c.call(&["CLUSTER", "SHARDS"]) else { panic!() };
    assert_eq!(shards.len(), 8);
    let nodes = c.call(&["CLUSTER", "NODES"]).text();
    assert_eq!(nodes.lines().count(), 1, "{nodes}");
    assert!(nodes.contains("myself,master") && nodes.trim_end().ends_with(" connected 0-16383"), "{nodes}");
    let info = c.call(&["CLUSTER", "INFO"]).text();
    assert!(info.contains("cluster_state:ok\r\n") && info.contains("cluster_partitions:8\r\n"), "{info}");
    assert_eq!(c.call(&["CLUSTER", "MYID"]).text().len(), 40);
    // The slot of the normalised name: Redis' CRC16 of `hero` is 8,384... whatever the case sent.
    assert_eq!(c.call(&["CLUSTER", "KEYSLOT", "HeRo"]), c.call(&["CLUSTER", "KEYSLOT", "hero"]));
    assert!(c.call(&["CLUSTER", "BOGUS"]).err().starts_with("ERR unknown subcommand"));

    // INFO: Redis' sections with real figures.
    let mut a = authed(&node, "ann");
    a.call(&["LIKE.TOGGLE", "hero"]).like();
    let info = c.call(&["INFO"]).text();
    for section in ["# Server", "# Clients", "# Stats", "# Persistence", "# Replication", "# Keyspace", "# Cluster"] {
        assert!(info.contains(section), "{section}: {info}");
    }
    let field = |text: &str, k: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(&format!("{k}:"))).unwrap_or_else(|| panic!("no {k}: {text}")).trim().parse().unwrap()
    };
    assert!(field(&info, "wal_fsyncs") >= 1.0, "{info}");
    assert!(field(&info, "wal_entries_appended") >= 1.0, "{info}");
    assert_eq!(field(&info, "tcp_port"), node.resp_addr().port() as f64);
    assert_eq!(field(&info, "partitions_ready"), 8.0);
    assert!(field(&info, "connected_clients") >= 2.0);
    let only = c.call(&["INFO", "keyspace"]).text();
    assert!(only.starts_with("# Keyspace") && !only.contains("# Server"), "{only}");
    // The node reports the same fsyncs over HTTP.
    assert!(metric(node.addr, "maple_wal_fsyncs_total") >= 1.0);
}

/// Input that is not a request gets an error reply before the connection
/// closes (framing is lost after a protocol error, as in Redis), never a
/// hang, and the node goes on serving.
#[test]
fn bad_frames_get_errors_and_the_node_stays_up() {
    let node = serve(&["--cores", "1"]);
    let bad: [(&[u8], &str); 8] = [
        (b"*2\r\n$4\r\nECHO\r\n$2147483648\r\n", "bulk length 2147483648 over the limit"),
        (b"*2\r\n$4\r\nECHO\r\n$-5\r\n", "invalid bulk length"),
        (b"*-7\r\n", "invalid multibulk length"),
        (b"*1\r\n$4\r\nPINGxx", "expected CRLF after bulk data"),
        (b"*1\r\n:1\r\n", "expected '$', got ':'"),
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*999999999\r\n", "too many arguments"),
        (b"*1\r\n%1\r\n+a\r\n+b\r\n", "expected '$', got '%'"),
    ];
    for (input, expect) in bad {
        let mut c = RespConn::open(node.resp_addr()).unwrap();
        c.send_raw(input).unwrap();
        let e = c.read().unwrap_or_else(|e| panic!("{input:?}: no reply ({e})"));
        assert!(e.err().starts_with("ERR Protocol error: ") && e.err().contains(expect), "{input:?}: {e:?}");
        assert!(c.closed(), "{input:?}");
    }
    // A deep RESP3 aggregate: refused at its first level, nothing recursed into.
    let mut deep = b"*1\r\n".repeat(10_000);
    deep.extend_from_slice(b":1\r\n");
    let mut c = RespConn::open(node.resp_addr()).unwrap();
    c.send_raw(&deep).unwrap();
    assert!(c.read().unwrap().err().contains("expected '$', got '*'"));
    // Top-level RESP3 types read as inline commands: each one an unknown command.
    let mut c = RespConn::open(node.resp_addr()).unwrap();
    let mut input = b"~1\r\n%1\r\n>1\r\n".repeat(50);
    input.extend_from_slice(b"PING\r\n");
    c.send_raw(&input).unwrap();
    for _ in 0..150 {
        assert!(c.read().unwrap().err().starts_with("ERR unknown command"));
    }
    assert_eq!(c.read().unwrap(), Value::Simple("PONG".into()));
    // A telnet user: inline commands.
    c.send_raw(b"PING\r\nLIKE.COUNT hero\r\n").unwrap();
    assert_eq!(c.read().unwrap(), Value::Simple("PONG".into()));
    assert_eq!(c.read().unwrap(), Value::Int(0));

    // Random garbage (bounded): whatever is answered, the node lives on.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ std::process::id() as u64;
    eprintln!("garbage seed {seed:#x}");
    let alphabet = b"*$%~>_#,(=!+-:\r\n0123456789-PINGLIKE.TOGGLE \"'\\x";
    for _ in 0..100 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 400) as usize;
        let input: Vec<u8> = (0..len).map(|i| alphabet[((seed >> (i % 57)) as usize + i * 31) % alphabet.len()]).collect();
        let mut s = std::net::TcpStream::connect(node.resp_addr()).expect("the node stopped accepting");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = std::io::Write::write_all(&mut s, &input);
        // End of input: the node answers what is complete and closes.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let read = s.read_to_end(&mut out);
        assert!(
            !matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "no close: {input:?}"
        );
    }
    let mut a = authed(&node, "ann");
    assert_eq!(a.call(&["LIKE.TOGGLE", "hero"]).like(), (true, 1));
    let m = String::from_utf8(get(node.addr, "/metrics").body).unwrap();
    assert!(common::metric_sum(&m, "maple_resp_err_protocol_total{") >= 9.0, "{m}");
}

/// redis-rs, a real client from the registry: its cluster client reads
/// `CLUSTER SLOTS` and routes each command by the slot of its first
/// argument; the node answers no `-MOVED`, and the counts equal the HTTP API's.
#[test]
fn redis_rs_cluster_client_routes_without_redirects() {
    let node = serve(&["--cores", "2", "--partitions", "4"]);
    let url = format!("redis://127.0.0.1:{}/", node.resp_addr().port());
    let client =
        redis::cluster::ClusterClientBuilder::new(vec![url.clone()]).username("rs").password(token("rs")).build().expect("cluster client");
    let mut conn = client.get_connection().expect("cluster connection (CLUSTER SLOTS)");
    // 1,000 commands over 100 characters: 9 toggles each, then a count each.
    let mut expected: HashMap<String, i64> = HashMap::new();
    for i in 0..900 {
        let name = format!("char{}", i % 100);
        let (liked, count): (i64, i64) = redis::cmd("LIKE.TOGGLE").arg(&name).query(&mut conn).unwrap();
        assert_eq!(liked == 1, (i / 100) % 2 == 0, "{name}");
        expected.insert(name, count);
    }
    let mut http = Conn::open(node.addr).unwrap();
    for (name, count) in &expected {
        assert_eq!(*count, 1, "{name}: 9 toggles leave it liked");
        assert_eq!(http_status(&mut http, "rs", name), (true, 1), "{name}");
        let n: i64 = redis::cmd("LIKE.COUNT").arg(name).query(&mut conn).unwrap();
        assert_eq!(n, 1);
    }
    let gz: Vec<u8> = redis::cmd("EXPECT.GET").arg("evan").arg("GZIP").query(&mut conn).unwrap();
    assert_eq!(json(&gunzip(&gz))["userIgn"], "evan");
    assert_eq!(metric(node.addr, "maple_resp_moved_total"), 0.0);

    // The plain client too (RESP2, AUTH user token).
    let plain = redis::Client::open(format!("redis://rs:{}@127.0.0.1:{}/", token("rs"), node.resp_addr().port())).unwrap();
    let mut p = plain.get_connection().expect("plain connection");
    let pong: String = redis::cmd("PING").query(&mut p).unwrap();
    assert_eq!(pong, "PONG");
    let (liked, count): (bool, i64) = redis::cmd("LIKE.STATUS").arg("char7").query(&mut p).unwrap();
    assert_eq!((liked, count), (true, 1));
    let err = redis::cmd("LIKE.TOGGLE").query::<redis::Value>(&mut p).unwrap_err();
    assert!(err.to_string().contains("wrong number of arguments"), "{err}");
}

/// `--resp-listen off` binds nothing; a RESP port another process holds is
/// refused at start with the flag named (after the data dir lock, as HTTP).
#[test]
fn resp_listen_off_and_a_busy_port() {
    let dir = DataDir::new("resp-off");
    let node = Launch::serve(dir.path()).resp_listen("off").start();
    assert_eq!(node.log_lines("RESP off (--resp-listen off)").len(), 1, "{}", node.log());
    assert!(node.log_lines("resp listening on").is_empty());
    drop(node);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir2 = DataDir::new("resp-busy");
    let mut m = Launch::serve(dir2.path()).resp_listen(&format!("127.0.0.1:{port}")).spawn();
    let status = m.wait_exit(common::maple::EXIT_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{}", m.log());
    let log = m.log();
    assert!(log.contains("--resp-listen") && log.contains(&format!("port {port} is in use")), "{log}");
    drop(taken);
}

/// A failed write-ahead log (fail point: the 40th fdatasync reports ENOSPC)
/// is `-STORAGE` over RESP, with the reason and no path; the connection and
/// the node stay up (INFO says `storage_down:1`).
#[test]
fn a_failed_log_is_a_storage_error() {
    let dir = DataDir::new("resp-storage");
    let node = Launch::serve(dir.path())
        .args(&["--cores", "1", "--partitions", "1"])
        .env("MAPLE_JWT_SECRET", SECRET)
        .env("MAPLE_STORAGE_CRASH_AT", "wal-fsync-enospc@40")
        .start();
    let mut c = authed(&node, "alice");
    assert_eq!(c.call(&["LIKE.TOGGLE", "one"]).like(), (true, 1), "before the failure");
    // One toggle at a time: one fdatasync each, until the failing one.
    let mut acked = 1;
    let first_failure = loop {
        match c.call(&["LIKE.TOGGLE", &format!("c{acked}")]) {
            Value::Array(_) => acked += 1,
            other => break other,
        }
        assert!(acked < 60, "the fail point never hit");
    };
    let data_dir = dir.path().to_str().unwrap().to_owned();
    for r in [first_failure, c.call(&["LIKE.TOGGLE", "five"]), c.call(&["LIKE.STATUS", "one"])] {
        let e = r.err();
        assert_eq!(e, "STORAGE storage: write-ahead log 0 failed; restart needed (STORAGE_UNAVAILABLE)");
        assert!(!e.contains(&data_dir));
    }
    assert_eq!(c.call(&["PING"]), Value::Simple("PONG".into()));
    let info = c.call(&["INFO", "persistence"]).text();
    assert!(info.contains("storage_down:1\r\n"), "{info}");
}
