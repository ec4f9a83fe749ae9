//! Real clients against the RESP server: redis-cli and redis-benchmark
//! (Debian package `redis-tools`). Each test skips, saying why, when the
//! tool is not installed; CI installs it.

mod resp_common;

use net::resp::RespLimits;
use resp_common::{TestServer, TOKEN};
use std::io::Write;
use std::process::{Command, Stdio};

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIP: {tool} not installed (apt-get install -y redis-tools)");
    }
    found
}

/// Run redis-cli against the server; stdout (trimmed) on success.
fn cli(srv: &TestServer, args: &[&str], stdin: Option<&[u8]>) -> String {
    let port = srv.addr.port().to_string();
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", "127.0.0.1", "-p", &port]).args(args);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn redis-cli");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_ping_echo_errors() {
    if !have("redis-cli") {
        return;
    }
    let srv = TestServer::start(2, RespLimits::default());
    assert_eq!(cli(&srv, &["PING"], None), "PONG");
    assert_eq!(cli(&srv, &["ECHO", "hello world"], None), "hello world");
    assert_eq!(cli(&srv, &["INCR.LOCAL", "k"], None), "1");
    assert!(cli(&srv, &["NOPE"], None).starts_with("ERR unknown command 'NOPE'"));
    assert_eq!(cli(&srv, &["WHOAMI"], None), "NOAUTH Authentication required.");
    // Piped commands (redis-cli sends each line as a multibulk).
    assert_eq!(cli(&srv, &[], Some(b"PING\nECHO a\nCLIENT SETNAME x\nCLIENT GETNAME\n")), "PONG\na\nOK\nx");
    let s = srv.stop().total();
    assert_eq!(s.err_protocol, 0, "{s:?}");
}

#[test]
fn redis_cli_resp3_hello_and_maps() {
    if !have("redis-cli") {
        return;
    }
    let srv = TestServer::start(1, RespLimits::default());
    let hello = cli(&srv, &["-3", "HELLO", "3"], None);
    // redis-cli prints a map as one "key value" line per entry.
    for line in ["server maple", "proto 3", "mode standalone", "role master", "modules"] {
        assert!(hello.lines().any(|l| l == line), "{line} in {hello}");
    }
    let shapes = cli(&srv, &["-3", "SHAPES", "nobig"], None);
    assert_eq!(shapes, "bool (true)\ndouble 2.5\nnull \nset 1\nverbatim hi");
    let shapes2 = cli(&srv, &["SHAPES", "nobig"], None);
    assert!(shapes2.starts_with("bool\n1\ndouble\n2.5"), "{shapes2}");
}

#[test]
fn redis_cli_auth_with_a_token() {
    if !have("redis-cli") {
        return;
    }
    let srv = TestServer::start(1, RespLimits::default());
    assert_eq!(cli(&srv, &["--no-auth-warning", "-a", TOKEN, "WHOAMI"], None), "alice");
    assert_eq!(cli(&srv, &["--no-auth-warning", "--user", "alice", "--pass", TOKEN, "WHOAMI"], None), "alice");
    assert_eq!(cli(&srv, &["-3", "--no-auth-warning", "--user", "alice", "--pass", TOKEN, "WHOAMI"], None), "alice");
    let wrong = cli(&srv, &["--no-auth-warning", "-a", "nope", "WHOAMI"], None);
    assert!(wrong.contains("NOAUTH"), "{wrong}");
}

#[test]
fn redis_cli_pipe_mass_insert() {
    if !have("redis-cli") {
        return;
    }
    let srv = TestServer::start(1, RespLimits::default());
    let mut input = Vec::new();
    for i in 0..10_000 {
        input.extend_from_slice(format!("*2\r\n$10\r\nINCR.LOCAL\r\n$2\r\nk{}\r\n", i % 10).as_bytes());
    }
    let out = cli(&srv, &["--pipe"], Some(&input));
    assert!(out.contains("errors: 0, replies: 10000"), "{out}");
    assert_eq!(cli(&srv, &["INCR.LOCAL", "k3"], None), "1001");
}

#[test]
fn redis_benchmark_ping_pipelined() {
    if !have("redis-benchmark") {
        return;
    }
    let srv = TestServer::start(2, RespLimits::default());
    let port = srv.addr.port().to_string();
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port, "-t", "ping", "-n", "10000", "-P", "16", "-c", "10", "-q"])
        .stdin(Stdio::null())
        .output()
        .expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("PING_INLINE:") && stdout.contains("PING_MBULK:"), "{stdout}");
    assert!(!stderr.contains("CONFIG"), "redis-benchmark could not read CONFIG: {stderr}");
    let s = srv.stop().total();
    // 10k inline + 10k multibulk PINGs (plus its CONFIG GETs), none refused.
    assert!(s.commands >= 20_000, "{s:?}");
    assert_eq!(s.err_protocol + s.err_unknown_command + s.err_arity, 0, "{s:?}");
}
