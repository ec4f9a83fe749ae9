//! What the `ops` test files share: running the `maple` binary
//! ([`maple`]), a std-only HTTP/1.1 client ([`http`]), the parsed response.
#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod maple;
pub mod resp;

/// One parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Percent-encodes every byte of a name (UTF-8), as a path segment.
pub fn enc(name: &str) -> String {
    name.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// The sum of every sample of a metric whose line starts with `prefix`
/// (e.g. `maple_wal_fsyncs_total{` for all its label sets) in Prometheus /
/// OpenMetrics text.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// [`metric_sum`] of a node's `/metrics` right now.
pub fn metric(addr: std::net::SocketAddr, prefix: &str) -> f64 {
    let text = String::from_utf8(http::get(addr, "/metrics").body).expect("metrics are UTF-8");
    metric_sum(&text, prefix)
}

/// `(liked, likeCount)` of a 200 like answer; `None` for any other answer.
pub fn like_answer(r: &Resp) -> Option<(bool, u64)> {
    if r.status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some((v["liked"].as_bool()?, v["likeCount"].as_u64()?))
}

/// Wait until `counter` (bumped by load clients) reaches `target`. Err when
/// a client gave up (`clients_done`; its failures say why) or after
/// `stall` without progress.
pub fn wait_for(
    counter: &std::sync::atomic::AtomicUsize,
    target: usize,
    what: &str,
    stall: std::time::Duration,
    clients_done: impl Fn() -> bool,
) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let mut last = (counter.load(Ordering::SeqCst), Instant::now());
    loop {
        let now = counter.load(Ordering::SeqCst);
        if now >= target {
            return Ok(());
        }
        if clients_done() {
            return Err(format!("a client stopped early at {now}/{target} {what}"));
        }
        if now != last.0 {
            last = (now, Instant::now());
        }
        if last.1.elapsed() > stall {
            return Err(format!("no {what} for {stall:?} ({now}/{target})"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// xorshift64*: enough randomness for a test, no dependency. Print the seed
/// so a failing run can be repeated.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The fixture directory of the tests: `$MAPLE_SHARED_DATA` if set, else the
/// repository's `fixtures/maple` (the same rule as `sim::test_dir`).
#[allow(dead_code)]
pub fn fixture_dir() -> std::path::PathBuf {
    match std::env::var_os("MAPLE_SHARED_DATA") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple"),
    }
}
