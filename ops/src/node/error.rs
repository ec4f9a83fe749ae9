//! Errors a node request can end in, and their HTTP form (status + JSON).

use super::admission::Shed;
use crate::upstream::UpstreamError;

#[derive(Debug, Clone, PartialEq)]
pub enum NodeError {
    /// The character does not exist upstream.
    NotFound,
    Upstream(UpstreamError),
    /// A bound was hit (single-flight waiters, cross-core queue).
    Overloaded(&'static str),
    /// Admission control: a new cold computation would wait longer than
    /// `--max-queue-ms` on its owner core (see `admission`).
    Shed(Shed),
    /// The fetch this request waited on was dropped (shutdown).
    Abandoned,
    /// Upstream sent equipment we cannot compute from (nothing cached).
    Calc(String),
    /// Upstream sent a basic-character body that is not one (nothing cached).
    BadBasic(String),
}

impl NodeError {
    pub fn status(&self) -> u16 {
        match self {
            NodeError::NotFound => 404,
            NodeError::Upstream(UpstreamError::NotFound) => 404,
            NodeError::Upstream(UpstreamError::BreakerOpen) => 503,
            NodeError::Upstream(UpstreamError::Timeout) => 504,
            NodeError::Upstream(_) => 502,
            NodeError::Overloaded(_) | NodeError::Shed(_) | NodeError::Abandoned => 503,
            NodeError::Calc(_) | NodeError::BadBasic(_) => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            NodeError::NotFound | NodeError::Upstream(UpstreamError::NotFound) => "CHARACTER_NOT_FOUND",
            NodeError::Upstream(UpstreamError::BreakerOpen) => "UPSTREAM_CIRCUIT_OPEN",
            NodeError::Upstream(UpstreamError::Timeout) => "UPSTREAM_TIMEOUT",
            NodeError::Upstream(_) => "UPSTREAM_ERROR",
            NodeError::Overloaded(_) | NodeError::Shed(_) => "OVERLOADED",
            NodeError::Abandoned => "UNAVAILABLE",
            NodeError::Calc(_) => "UPSTREAM_BAD_EQUIPMENT",
            NodeError::BadBasic(_) => "UPSTREAM_BAD_BASIC",
        }
    }

    /// Worth serving a stale cached value instead (upstream trouble, not
    /// "no such character" — an unusable 200 body is trouble too; or a
    /// refresh shed under load).
    pub fn allows_stale(&self) -> bool {
        matches!(self, NodeError::Upstream(e) if *e != UpstreamError::NotFound)
            || matches!(self, NodeError::Shed(_) | NodeError::Calc(_) | NodeError::BadBasic(_))
    }
}

impl From<UpstreamError> for NodeError {
    fn from(e: UpstreamError) -> Self {
        match e {
            UpstreamError::NotFound => NodeError::NotFound,
            e => NodeError::Upstream(e),
        }
    }
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::NotFound => write!(f, "character not found"),
            NodeError::Upstream(e) => write!(f, "{e}"),
            NodeError::Overloaded(what) => write!(f, "overloaded: {what}"),
            NodeError::Shed(s) => write!(
                f,
                "overloaded: a new computation would wait about {} ms on its core (limit {} ms); retry later",
                s.estimated_wait.as_millis(),
                s.max_wait.as_millis()
            ),
            NodeError::Abandoned => write!(f, "the upstream fetch was abandoned (shutting down)"),
            NodeError::Calc(e) => write!(f, "cannot compute from the upstream equipment: {e}"),
            NodeError::BadBasic(e) => write!(f, "upstream sent an unusable basic-character document: {e}"),
        }
    }
}

/// `{"status":404,"code":"CHARACTER_NOT_FOUND","message":"..."}`; a 503
/// carries `Retry-After: 1`.
pub fn error_json(status: u16, code: &str, message: &str) -> net::Response {
    error_json_retry(status, code, message, 1)
}

fn error_json_retry(status: u16, code: &str, message: &str, retry_after_s: u64) -> net::Response {
    let body = serde_json::json!({ "status": status, "code": code, "message": message });
    let mut resp = net::Response::json(status, serde_json::to_vec(&body).expect("json value serialises"));
    if status == 503 {
        resp = resp.header("retry-after", retry_after_s.to_string());
    }
    resp
}

impl NodeError {
    pub fn to_response(&self) -> net::Response {
        // A shed request is told when the work ahead of it should be done.
        let retry_after_s = match self {
            NodeError::Shed(s) => s.retry_after_s(),
            _ => 1,
        };
        error_json_retry(self.status(), self.code(), &self.to_string(), retry_after_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn shed_is_a_503_overloaded_with_retry_after() {
        let e = NodeError::Shed(Shed { estimated_wait: Duration::from_millis(2400), max_wait: Duration::from_millis(500) });
        let r = e.to_response();
        assert_eq!(r.status, 503);
        assert_eq!(r.headers.iter().filter(|(n, _)| *n == "retry-after").map(|(_, v)| v.as_str()).collect::<Vec<_>>(), ["3"]);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["status"], 503);
        assert_eq!(body["code"], "OVERLOADED");
        assert!(body["message"].as_str().unwrap().contains("2400 ms"), "{body}");
        assert!(e.allows_stale(), "a shed refresh may still serve the stale value");
        let plain = NodeError::Overloaded("x").to_response();
        assert_eq!(plain.headers.iter().find(|(n, _)| *n == "retry-after").unwrap().1, "1");
    }
}
