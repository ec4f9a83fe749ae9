//! Server configuration and the limits that keep every buffer bounded.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Number of cores (= OS threads, each with its own runtime and listener).
    pub cores: usize,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Request line + headers, bytes. Over → 431 and close.
    pub max_header_bytes: usize,
    /// Number of header lines. Over → 431 and close.
    pub max_headers: usize,
    /// Request body, bytes. Over → 413 and close.
    pub max_body_bytes: usize,
    /// Requests inside the service at once on one core. Over → 503 + Retry-After.
    pub max_in_flight_per_core: usize,
    /// Open connections on one core. Over → 503 and close.
    pub max_connections_per_core: usize,
    /// Time to receive a whole request head once it started (or the first
    /// request after connect). Over → close (slowloris).
    pub header_read_timeout: Duration,
    /// Time to receive a whole request body, from the end of its head to
    /// its last byte (Content-Length or chunked). Unlike `idle_timeout`,
    /// progress does not extend it: a client sending one byte now and then
    /// cannot hold a connection. Over → 408 (JSON body) and close.
    pub body_read_timeout: Duration,
    /// Keep-alive wait between requests, and the bound on any single
    /// body read or response write. Over → close (408 inside a body).
    pub idle_timeout: Duration,
    /// Pipelined responses buffered before one write.
    pub pipeline_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 1024 * 1024,
            max_in_flight_per_core: 4096,
            max_connections_per_core: 10_000,
            header_read_timeout: Duration::from_secs(10),
            // 1 MiB (the default max_body_bytes) in 30 s needs ~35 KB/s.
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            pipeline_depth: 32,
        }
    }
}

impl Limits {
    /// Reject configurations that would make the server misbehave.
    pub(crate) fn validate(&self) -> std::io::Result<()> {
        let bad = |what: &str| Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string()));
        if self.max_header_bytes < 64 {
            return bad("limits.max_header_bytes must be >= 64");
        }
        if self.max_headers == 0 {
            return bad("limits.max_headers must be >= 1");
        }
        if self.max_in_flight_per_core == 0 || self.max_connections_per_core == 0 {
            return bad("limits.max_in_flight_per_core and max_connections_per_core must be >= 1");
        }
        if self.pipeline_depth == 0 {
            return bad("limits.pipeline_depth must be >= 1");
        }
        if self.header_read_timeout.is_zero() || self.body_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return bad("limits timeouts must be > 0");
        }
        Ok(())
    }
}
