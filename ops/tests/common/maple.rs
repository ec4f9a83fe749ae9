//! One way to run the `maple` binary in a test: a private data dir, stderr
//! kept (printed when the test fails), the port read from the "listening on"
//! line, a readiness poll, SIGTERM / SIGKILL and a bounded wait for the exit.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bounds: CI runs these tests on 2 loaded cores.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// `MAPLE_*` variables a child inherits: the network driver under test
/// (CI runs the suite with `MAPLE_NET_DRIVER=epoll` too). The child's
/// simulator uses the fixtures compiled into it, or `$MAPLE_SHARED_DATA`
/// when the test run sets it (passed on as `MAPLE_SIM_DATA_DIR`).
pub const KEPT_ENV: [&str; 1] = ["MAPLE_NET_DRIVER"];

/// Lines of a child's stderr kept in memory (the oldest are dropped past it).
const MAX_LOG_LINES: usize = 20_000;

/// A fresh directory under the system temp dir, removed on drop.
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(tag: &str) -> DataDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("maple-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        DataDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start one `maple` process. `Maple::serve(dir)` gives a node on
/// 127.0.0.1 port 0 with small (4 MiB) log segments; add flags with `arg`.
#[derive(Clone)]
pub struct Launch {
    args: Vec<OsString>,
    /// `--listen` of a `serve` (kept apart so a restart can pin the port).
    listen: Option<String>,
    /// `--resp-listen` of a `serve`: `127.0.0.1:0` unless set, so parallel
    /// tests never meet on the default 6380.
    resp_listen: Option<String>,
    env: Vec<(String, String)>,
    /// Poll `/health/ready` until 200 after the "listening" line.
    wait_ready: bool,
    /// Working directory of the child (default: the test's).
    cwd: Option<PathBuf>,
    /// Pass `$MAPLE_SHARED_DATA` on as the child's `MAPLE_SIM_DATA_DIR`.
    fixtures_from_env: bool,
}

impl Launch {
    /// `maple <args...>`. The child gets none of the `MAPLE_*` settings a
    /// developer may have exported (`MAPLE_NEXON_API_KEY` would send the node
    /// to Nexon) except [`KEPT_ENV`]; add settings with [`Launch::env`].
    pub fn command(args: &[&str]) -> Launch {
        Launch {
            args: args.iter().map(OsString::from).collect(),
            listen: None,
            resp_listen: None,
            env: Vec::new(),
            wait_ready: false,
            cwd: None,
            fixtures_from_env: true,
        }
    }

    /// `maple serve` on `data_dir`, any free port of 127.0.0.1 (see
    /// [`Launch::listen`]), 4 MiB log segments.
    pub fn serve(data_dir: &Path) -> Launch {
        let mut l = Launch::command(&["serve", "--wal-segment-mb", "4", "--data-dir"]);
        l.args.push(data_dir.as_os_str().to_owned());
        l.listen = Some("127.0.0.1:0".into());
        l.resp_listen = Some("127.0.0.1:0".into());
        l.wait_ready = true;
        l
    }

    /// `--resp-listen` this address (a restart on the same RESP port) or `off`.
    pub fn resp_listen(mut self, addr: &str) -> Launch {
        self.resp_listen = Some(addr.to_owned());
        self
    }

    /// Listen on this address instead (a restart on the same port).
    pub fn listen(mut self, addr: SocketAddr) -> Launch {
        self.listen = Some(addr.to_string());
        self
    }

    /// `maple upstream-sim` on any free port of 127.0.0.1.
    pub fn upstream_sim(extra: &[&str]) -> Launch {
        let mut l = Launch::command(&["upstream-sim", "--addr", "127.0.0.1:0"]);
        l.args.extend(extra.iter().map(OsString::from));
        l
    }

    /// Also wait for `/health/ready` (the default of [`Launch::serve`]).
    pub fn until_ready(mut self) -> Launch {
        self.wait_ready = true;
        self
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Launch {
        self.args.push(flag.into());
        self.args.push(value.into());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Launch {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    /// Run in `dir` with nothing pointing at a fixture file (not even
    /// `$MAPLE_SHARED_DATA`): the child has only what is compiled into it.
    pub fn in_bare_dir(mut self, dir: &Path) -> Launch {
        self.cwd = Some(dir.to_path_buf());
        self.fixtures_from_env = false;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Spawn, read the bound address from stderr, and (for `serve`) wait
    /// until `/health/ready` answers 200. Panics with the child's log if it
    /// exits or does not get there within [`START_TIMEOUT`].
    pub fn start(&self) -> Maple {
        let mut maple = self.spawn();
        maple.wait_listening(START_TIMEOUT);
        if self.wait_ready {
            maple.wait_ready(START_TIMEOUT);
        }
        maple
    }

    /// Spawn and return at once: the process may not be listening yet (see
    /// [`Maple::wait_listening`]), or may be about to fail (see
    /// [`Maple::wait_exit`], after which [`Maple::log`] is complete).
    pub fn spawn(&self) -> Maple {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_maple"));
        cmd.args(&self.args);
        if let Some(listen) = &self.listen {
            cmd.args(["--listen", listen]);
        }
        if let Some(resp) = &self.resp_listen {
            cmd.args(["--resp-listen", resp]);
        }
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("MAPLE_") && !KEPT_ENV.contains(&name.as_ref()) {
                cmd.env_remove(&key);
            }
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        match std::env::var_os("MAPLE_SHARED_DATA") {
            Some(dir) if self.fixtures_from_env => {
                cmd.env("MAPLE_SIM_DATA_DIR", dir);
            }
            _ => {
                cmd.env_remove("MAPLE_SIM_DATA_DIR");
            }
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn maple");
        let log = Arc::new(Mutex::new(Log::default()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        let resp_addr = Arc::new(Mutex::new(None));
        let resp_sink = resp_addr.clone();
        // Reads until the child closes stderr (it exits), so the child never
        // blocks on a full pipe; hands over the address of the "listening" line.
        let reader = std::thread::spawn(move || {
            let mut addr_tx = Some(addr_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let after = |marker: &str| {
                    line.split(marker).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|a| a.parse::<SocketAddr>().ok())
                };
                // `maple serve: resp listening on ADDR` (the RESP listener) is not the HTTP address.
                let resp = after("resp listening on ");
                if resp.is_some() {
                    *resp_sink.lock().unwrap_or_else(|p| p.into_inner()) = resp;
                }
                let addr = if resp.is_some() { None } else { after("listening on ") };
                // The line is in the log before anyone waiting for the address sees it.
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                if let Some(addr) = addr {
                    if let Some(tx) = addr_tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        Maple { child, addr: "0.0.0.0:0".parse().unwrap(), log, exited: None, addr_rx: Some(addr_rx), reader: Some(reader), resp_addr }
    }
}

#[derive(Default)]
struct Log {
    lines: std::collections::VecDeque<String>,
    dropped: usize,
}

impl Log {
    fn push(&mut self, line: String) {
        if self.lines.len() == MAX_LOG_LINES {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }
}

/// A running (or exited) `maple` process. Dropping it kills it; if the test
/// is failing at that moment, its log goes to the test's output (so panic
/// messages need not carry it).
pub struct Maple {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    exited: Option<ExitStatus>,
    /// The address of the "listening on" line, until it is taken.
    addr_rx: Option<mpsc::Receiver<SocketAddr>>,
    /// The stderr reader, joined once the process has exited.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The address of the "resp listening on" line, once seen.
    resp_addr: Arc<Mutex<Option<SocketAddr>>>,
}

impl Maple {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The bound RESP address (`resp listening on ADDR`, logged before the
    /// node is ready). Panics if the node has none (`--resp-listen off`).
    pub fn resp_addr(&self) -> SocketAddr {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(a) = *self.resp_addr.lock().unwrap_or_else(|p| p.into_inner()) {
                return a;
            }
            assert!(Instant::now() < deadline, "no `resp listening on` line (its log follows)");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        if log.dropped > 0 {
            out.push_str(&format!("[{} earlier lines dropped]\n", log.dropped));
        }
        for l in &log.lines {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    /// Lines of the log that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.lines.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// Wait for the "listening on" line and set [`Maple::addr`] from it.
    /// Panics with the log if the process exits first or takes longer than `within`.
    pub fn wait_listening(&mut self, within: Duration) {
        let Some(rx) = self.addr_rx.take() else {
            return;
        };
        match rx.recv_timeout(within) {
            Ok(addr) => self.addr = addr,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.wait_exit(EXIT_TIMEOUT);
                panic!("maple exited ({status}) before listening (its log follows)");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("maple not listening after {within:?} (its log follows)"),
        }
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                self.join_reader();
            }
        }
        self.exited
    }

    /// After the exit: the reader has seen the last line once the pipe closed.
    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }

    /// Poll `GET /health/ready` until it answers 200 (connection refused,
    /// resets and 503 while starting are retried).
    pub fn wait_ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = super::http::try_request(self.addr, "GET", "/health/ready", &[]) {
                if r.status == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                panic!("maple exited ({status}) before it was ready (its log follows)");
            }
            assert!(Instant::now() < deadline, "maple not ready after {within:?} (its log follows)");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    pub fn sigkill(&self) {
        self.signal("-KILL");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().expect("run kill").success();
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// Wait for the process to end (bounded: panics with its log after
    /// `within`, killing it first).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = Some(status);
                    self.join_reader();
                    return status;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("maple still running {within:?} after it was asked to stop (its log follows)");
                }
                Err(e) => panic!("waiting for maple: {e}"),
            }
        }
    }

    /// SIGTERM, then the exit status (bounded by [`EXIT_TIMEOUT`]).
    pub fn terminate(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit(EXIT_TIMEOUT)
    }

    /// SIGTERM and assert the graceful path: exit code 0.
    pub fn stop_gracefully(&mut self) {
        let status = self.terminate();
        assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status} (its log follows)");
    }

    /// SIGKILL and reap.
    pub fn crash(&mut self) {
        if self.exited.is_none() {
            self.sigkill();
            self.wait_exit(EXIT_TIMEOUT);
        }
    }
}

impl Drop for Maple {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- log of maple (pid {}, {}) ----\n{}---- end of log ----", self.child.id(), self.addr, self.log());
        }
    }
}
