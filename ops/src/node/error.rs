//! Errors a node request can end in, and their HTTP form (status + JSON).

use crate::upstream::UpstreamError;

#[derive(Debug, Clone, PartialEq)]
pub enum NodeError {
    /// The character does not exist upstream.
    NotFound,
    Upstream(UpstreamError),
    /// A bound was hit (single-flight waiters, cross-core queue).
    Overloaded(&'static str),
    /// The fetch this request waited on was dropped (shutdown).
    Abandoned,
    /// Upstream sent equipment we cannot compute from.
    Calc(String),
}

impl NodeError {
    pub fn status(&self) -> u16 {
        match self {
            NodeError::NotFound => 404,
            NodeError::Upstream(UpstreamError::NotFound) => 404,
            NodeError::Upstream(UpstreamError::BreakerOpen) => 503,
            NodeError::Upstream(UpstreamError::Timeout) => 504,
            NodeError::Upstream(_) => 502,
            NodeError::Overloaded(_) | NodeError::Abandoned => 503,
            NodeError::Calc(_) => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            NodeError::NotFound | NodeError::Upstream(UpstreamError::NotFound) => "CHARACTER_NOT_FOUND",
            NodeError::Upstream(UpstreamError::BreakerOpen) => "UPSTREAM_CIRCUIT_OPEN",
            NodeError::Upstream(UpstreamError::Timeout) => "UPSTREAM_TIMEOUT",
            NodeError::Upstream(_) => "UPSTREAM_ERROR",
            NodeError::Overloaded(_) => "OVERLOADED",
            NodeError::Abandoned => "UNAVAILABLE",
            NodeError::Calc(_) => "UPSTREAM_BAD_EQUIPMENT",
        }
    }

    /// Worth serving a stale cached value instead (upstream trouble, not "no such character").
    pub fn allows_stale(&self) -> bool {
        matches!(self, NodeError::Upstream(e) if *e != UpstreamError::NotFound)
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
            NodeError::Abandoned => write!(f, "the upstream fetch was abandoned (shutting down)"),
            NodeError::Calc(e) => write!(f, "cannot compute from the upstream equipment: {e}"),
        }
    }
}

/// `{"status":404,"code":"CHARACTER_NOT_FOUND","message":"..."}`
pub fn error_json(status: u16, code: &str, message: &str) -> net::Response {
    let body = serde_json::json!({ "status": status, "code": code, "message": message });
    let mut resp = net::Response::json(status, serde_json::to_vec(&body).expect("json value serialises"));
    if status == 503 {
        resp = resp.header("retry-after", "1");
    }
    resp
}

impl NodeError {
    pub fn to_response(&self) -> net::Response {
        error_json(self.status(), self.code(), &self.to_string())
    }
}
