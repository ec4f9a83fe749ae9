//! Reading a node's `/metrics` before and after a run, so a write workload
//! can report how many writes one fdatasync made durable (group commit).
//!
//! Off the measured path: one blocking `GET /metrics` with `Connection:
//! close` before the run and one after. A server without `/metrics`
//! (nginx in the side-by-side runs) simply yields no figures.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest metrics body read (a node's text is a few tens of KiB).
const MAX_METRICS_BYTES: u64 = 16 * 1024 * 1024;
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// Node metrics whose change over a run the write workloads report.
pub const WAL_FSYNCS: &str = "maple_wal_fsyncs_total";
pub const LIKE_TOGGLES: &str = "maple_likes_toggles_total";

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("metrics i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("metrics: status {0}")]
    Status(u16),
    #[error("metrics: malformed response ({0})")]
    Malformed(&'static str),
}

/// `GET /metrics` → body text.
pub fn fetch_metrics(addr: SocketAddr, host: &str) -> Result<String, ScrapeError> {
    let mut s = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)?;
    s.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    s.set_write_timeout(Some(SCRAPE_TIMEOUT))?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    s.take(MAX_METRICS_BYTES).read_to_end(&mut raw)?;
    let head =
        crate::http::parse_head(&raw).map_err(|_| ScrapeError::Malformed("head"))?.ok_or(ScrapeError::Malformed("incomplete head"))?;
    if head.status != 200 {
        return Err(ScrapeError::Status(head.status));
    }
    let body = &raw[head.len..];
    let body = if head.chunked { dechunk(body).ok_or(ScrapeError::Malformed("chunked body"))? } else { body.to_vec() };
    String::from_utf8(body).map_err(|_| ScrapeError::Malformed("not UTF-8"))
}

/// The data of a complete chunked body (extensions and trailers ignored).
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Sum of every sample of `name` (all label sets) whose labels include
/// each `key="value"` of `labels`. `None` when no sample matched.
pub fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else { continue };
        let (label_text, value_text) = match rest.as_bytes().first() {
            Some(b'{') => {
                let Some(close) = rest.find('}') else { continue };
                (&rest[1..close], &rest[close + 1..])
            }
            Some(b' ') => ("", rest),
            _ => continue, // a longer metric name with this prefix
        };
        let wanted = labels.iter().all(|(k, v)| label_text.split(',').any(|kv| kv.trim() == format!("{k}=\"{v}\"")));
        if !wanted {
            continue;
        }
        let Some(v) = value_text.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        *sum.get_or_insert(0.0) += v;
    }
    sum
}

/// The write-path counters of a node at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteCounters {
    pub fsyncs: f64,
    pub toggles_ok: f64,
}

impl WriteCounters {
    pub fn parse(text: &str) -> Option<WriteCounters> {
        Some(WriteCounters {
            fsyncs: sum_samples(text, WAL_FSYNCS, &[])?,
            toggles_ok: sum_samples(text, LIKE_TOGGLES, &[("result", "ok")]).unwrap_or(0.0),
        })
    }

    /// Best effort: a server without node metrics gives `None`.
    pub fn scrape(addr: SocketAddr, host: &str) -> Option<WriteCounters> {
        WriteCounters::parse(&fetch_metrics(addr, host).ok()?)
    }
}

/// What a run's writes cost in fdatasyncs, from counters before and after
/// (warm-up included: the counters cannot tell the phases apart).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncCost {
    pub fsyncs: f64,
    pub toggles_ok: f64,
    /// Acknowledged toggles per fdatasync; `None` with no fsync (log off).
    pub toggles_per_fsync: Option<f64>,
}

pub fn sync_cost(before: WriteCounters, after: WriteCounters) -> SyncCost {
    let fsyncs = (after.fsyncs - before.fsyncs).max(0.0);
    let toggles_ok = (after.toggles_ok - before.toggles_ok).max(0.0);
    SyncCost { fsyncs, toggles_ok, toggles_per_fsync: (fsyncs > 0.0).then(|| toggles_ok / fsyncs) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP maple_wal_fsyncs fdatasync calls\n\
        # TYPE maple_wal_fsyncs counter\n\
        maple_wal_fsyncs_total{core=\"0\"} 120\n\
        maple_wal_fsyncs_total{core=\"1\"} 80\n\
        maple_wal_fsyncs_total_other 5\n\
        maple_likes_toggles_total{core=\"0\",result=\"ok\"} 3000\n\
        maple_likes_toggles_total{core=\"1\",result=\"ok\"} 1000\n\
        maple_likes_toggles_total{core=\"1\",result=\"busy\"} 7\n\
        maple_up 1\n\
        # EOF\n";

    #[test]
    fn sums_samples_by_name_and_labels() {
        assert_eq!(sum_samples(TEXT, WAL_FSYNCS, &[]), Some(200.0));
        assert_eq!(sum_samples(TEXT, LIKE_TOGGLES, &[("result", "ok")]), Some(4000.0));
        assert_eq!(sum_samples(TEXT, LIKE_TOGGLES, &[("result", "busy"), ("core", "1")]), Some(7.0));
        assert_eq!(sum_samples(TEXT, "maple_up", &[]), Some(1.0));
        assert_eq!(sum_samples(TEXT, "maple_missing", &[]), None);
        assert_eq!(sum_samples(TEXT, LIKE_TOGGLES, &[("result", "nope")]), None);
    }

    #[test]
    fn writes_per_fsync_from_two_scrapes() {
        let before = WriteCounters::parse(TEXT).unwrap();
        let after = WriteCounters { fsyncs: before.fsyncs + 50.0, toggles_ok: before.toggles_ok + 1450.0 };
        let c = sync_cost(before, after);
        assert_eq!(c.toggles_per_fsync, Some(29.0));
        let off = sync_cost(before, WriteCounters { fsyncs: before.fsyncs, toggles_ok: before.toggles_ok + 10.0 });
        assert_eq!(off.toggles_per_fsync, None, "no fsync: the log was off");
        assert_eq!(WriteCounters::parse("nginx_thing 1\n"), None);
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").unwrap(), b"hello world");
        assert_eq!(dechunk(b"5\r\nhel"), None);
        assert_eq!(dechunk(b"zz\r\n"), None);
    }
}
