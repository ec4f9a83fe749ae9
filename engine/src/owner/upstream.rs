//! The three Nexon Open API calls the owner runtime makes, with the
//! breaker, the timeout and the metrics around each. The bytes travel
//! through a [`Transport`] the binary provides (its HTTP client, or the
//! simulator in-process): `engine` knows no sockets.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use super::breaker::{BreakerConfig, BreakerState, CircuitBreaker, Transition};
use super::sink::Sink;
use super::throttle::{Throttle, SUMMARY_EVERY};

/// `GET path_and_query` on the upstream → `(status, body)`.
pub trait Transport {
    fn get(&self, path_and_query: &str) -> LocalBoxFuture<'_, Result<(u16, Bytes), UpstreamError>>;
}

/// Percent-encode everything but ASCII letters and digits (as the
/// `percent-encoding` crate's `NON_ALPHANUMERIC` set).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Largest upstream body we accept (a real equipment response is ~360 KB).
pub const MAX_UPSTREAM_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// Nexon says the character does not exist (400 OPENAPI00004 / 404).
    NotFound,
    /// The breaker is open: no call was made.
    BreakerOpen,
    Timeout,
    /// Non-success status from upstream.
    Status(u16),
    /// Connect/read/TLS failure.
    Transport(String),
    /// 200 with a body we cannot use.
    BadBody(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::NotFound => write!(f, "character not found upstream"),
            UpstreamError::BreakerOpen => write!(f, "upstream circuit breaker is open"),
            UpstreamError::Timeout => write!(f, "upstream timed out"),
            UpstreamError::Status(s) => write!(f, "upstream answered {s}"),
            UpstreamError::Transport(e) => write!(f, "upstream unreachable: {e}"),
            UpstreamError::BadBody(e) => write!(f, "upstream sent an unusable body: {e}"),
        }
    }
}

impl UpstreamError {
    /// Counts against the breaker (the upstream misbehaved, not the caller).
    fn is_failure(&self) -> bool {
        !matches!(self, UpstreamError::NotFound | UpstreamError::BreakerOpen)
    }

    fn outcome(&self) -> &'static str {
        match self {
            UpstreamError::NotFound => "not_found",
            UpstreamError::BreakerOpen => "rejected",
            UpstreamError::Timeout => "timeout",
            _ => "error",
        }
    }
}

/// The endpoints, for the per-endpoint log throttles.
const ENDPOINTS: [&str; 3] = ["id", "equipment", "basic"];

/// One per core.
pub struct Nexon {
    core: usize,
    transport: Rc<dyn Transport>,
    timeout: Duration,
    breaker: RefCell<CircuitBreaker>,
    metrics: Rc<dyn Sink>,
    /// Failure lines per endpoint: at most one per [`SUMMARY_EVERY`].
    failure_log: RefCell<[Throttle; 3]>,
}

impl Nexon {
    pub fn new(core: usize, transport: Rc<dyn Transport>, timeout: Duration, breaker: BreakerConfig, metrics: Rc<dyn Sink>) -> Nexon {
        Nexon {
            core,
            transport,
            timeout,
            breaker: RefCell::new(CircuitBreaker::new(breaker)),
            metrics,
            failure_log: RefCell::new([Throttle::new(SUMMARY_EVERY), Throttle::new(SUMMARY_EVERY), Throttle::new(SUMMARY_EVERY)]),
        }
    }

    /// Log a breaker transition once, with the core and the reason.
    fn log_transition(&self, t: Transition, last_error: Option<&UpstreamError>) {
        let core = self.core;
        let (from, to) = (t.from.as_str(), t.to.as_str());
        let open_s = self.breaker.borrow().config().open_for.as_secs();
        match (t.from, t.to) {
            (BreakerState::Closed, BreakerState::Open) => tracing::warn!(
                core,
                from,
                to,
                failed = t.failed,
                calls = t.calls,
                "upstream circuit breaker closed -> open on core {core}: {} of the last {} calls failed (last: {}); \
                 upstream calls refused for {open_s} s",
                t.failed,
                t.calls,
                last_error.map_or_else(|| "?".to_string(), |e| e.to_string())
            ),
            (BreakerState::Open, BreakerState::HalfOpen) => tracing::info!(
                core,
                from,
                to,
                "upstream circuit breaker open -> half-open on core {core}: {open_s} s passed; probing upstream"
            ),
            (BreakerState::HalfOpen, BreakerState::Open) => tracing::warn!(
                core,
                from,
                to,
                failed = t.failed,
                calls = t.calls,
                "upstream circuit breaker half-open -> open on core {core}: {} of {} probes failed (last: {}); \
                 upstream calls refused for {open_s} s",
                t.failed,
                t.calls,
                last_error.map_or_else(|| "?".to_string(), |e| e.to_string())
            ),
            _ => tracing::info!(
                core,
                from,
                to,
                failed = t.failed,
                calls = t.calls,
                "upstream circuit breaker {from} -> {to} on core {core}: {} of {} probes succeeded",
                t.calls - t.failed,
                t.calls
            ),
        }
    }

    /// A failed call: one line per endpoint per [`SUMMARY_EVERY`] on this
    /// core, saying how many were not logged since the previous one.
    fn log_failure(&self, endpoint: &'static str, error: &UpstreamError) {
        let i = ENDPOINTS.iter().position(|e| *e == endpoint).unwrap_or(0);
        if let Some(suppressed) = self.failure_log.borrow_mut()[i].allow(Instant::now()) {
            let core = self.core;
            tracing::warn!(
                core,
                endpoint,
                error = %error,
                suppressed,
                "upstream {endpoint} call failed on core {core}: {error} ({suppressed} more failures of this endpoint \
                 not logged since the previous line)"
            );
        }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.borrow().state(Instant::now())
    }

    /// `GET /maplestory/v1/id?character_name=` → the ocid.
    pub async fn ocid(&self, name: &str) -> Result<String, UpstreamError> {
        let path = format!("/maplestory/v1/id?character_name={}", encode(name));
        let body = self.get("id", &path).await?;
        let ocid = match serde_json::from_slice::<serde_json::Value>(&body) {
            Err(e) => Err(UpstreamError::BadBody(e.to_string())),
            Ok(v) => match v.get("ocid").and_then(|o| o.as_str()) {
                Some(o) if !o.is_empty() && o.len() <= 256 => Ok(o.to_owned()),
                _ => Err(UpstreamError::BadBody("no ocid in the id response".into())),
            },
        };
        if let Err(e) = &ocid {
            self.log_failure("id", e);
        }
        ocid
    }

    /// `GET /maplestory/v1/character/item-equipment?ocid=` → the JSON as sent.
    pub async fn equipment(&self, ocid: &str) -> Result<Bytes, UpstreamError> {
        let path = format!("/maplestory/v1/character/item-equipment?ocid={}", encode(ocid));
        self.get("equipment", &path).await
    }

    /// `GET /maplestory/v1/character/basic?ocid=` → the JSON as sent.
    pub async fn basic(&self, ocid: &str) -> Result<Bytes, UpstreamError> {
        let path = format!("/maplestory/v1/character/basic?ocid={}", encode(ocid));
        self.get("basic", &path).await
    }

    async fn get(&self, endpoint: &'static str, path_and_query: &str) -> Result<Bytes, UpstreamError> {
        let permitted = self.breaker.borrow_mut().try_acquire(Instant::now());
        let transition = self.breaker.borrow_mut().take_transition();
        if let Some(t) = transition {
            self.log_transition(t, None);
        }
        self.metrics.breaker_state(self.breaker_state().as_gauge());
        if !permitted {
            self.metrics.upstream(endpoint, "rejected");
            return Err(UpstreamError::BreakerOpen);
        }
        let result = match monoio::time::timeout(self.timeout, self.transport.get(path_and_query)).await {
            Err(_elapsed) => Err(UpstreamError::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok((status, body))) => classify(status, body),
        };
        let failed = result.as_ref().err().is_some_and(UpstreamError::is_failure);
        if let (true, Err(e)) = (failed, &result) {
            self.log_failure(endpoint, e);
        }
        self.breaker.borrow_mut().record(!failed, Instant::now());
        let transition = self.breaker.borrow_mut().take_transition();
        if let Some(t) = transition {
            self.log_transition(t, result.as_ref().err());
        }
        self.metrics.breaker_state(self.breaker_state().as_gauge());
        self.metrics.upstream(endpoint, result.as_ref().err().map_or("ok", UpstreamError::outcome));
        result
    }
}

fn classify(status: u16, body: Bytes) -> Result<Bytes, UpstreamError> {
    match status {
        200 if body.len() <= MAX_UPSTREAM_BODY => Ok(body),
        200 => Err(UpstreamError::BadBody(format!("{} bytes is over the limit", body.len()))),
        404 => Err(UpstreamError::NotFound),
        // Nexon: OPENAPI00004 "Please input valid parameter" = no such character.
        400 if body.windows(12).any(|w| w == b"OPENAPI00004") => Err(UpstreamError::NotFound),
        s => Err(UpstreamError::Status(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(classify(200, Bytes::from_static(b"{}")).is_ok());
        assert_eq!(classify(404, Bytes::new()), Err(UpstreamError::NotFound));
        assert_eq!(classify(400, Bytes::from_static(br#"{"error":{"name":"OPENAPI00004"}}"#)), Err(UpstreamError::NotFound));
        assert_eq!(classify(400, Bytes::from_static(b"{}")), Err(UpstreamError::Status(400)));
        assert_eq!(classify(503, Bytes::new()), Err(UpstreamError::Status(503)));
        assert!(!UpstreamError::NotFound.is_failure());
        assert_eq!(encode("아 b-1"), "%EC%95%84%20b%2D1", "all but ASCII letters and digits");
        assert!(UpstreamError::Timeout.is_failure());
    }
}
