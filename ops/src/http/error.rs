//! HTTP form (status + JSON body) of what a request can end in: routing
//! errors and the owner runtime's [`OwnerError`]s.

use engine::owner::{GroupError, OwnerError, UpstreamError};
use engine::partition::PartitionError;

use super::route::RouteError;

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

pub fn route_error(e: &RouteError) -> net::Response {
    match e {
        RouteError::NotFound => error_json(404, "NOT_FOUND", "no such route"),
        RouteError::MethodNotAllowed { allow } => error_json(405, "METHOD_NOT_ALLOWED", &format!("use {allow}")).header("allow", *allow),
        RouteError::BadRequest(msg) => error_json(400, "BAD_REQUEST", msg),
    }
}

/// Status and code of an owner error.
pub fn status_code(e: &OwnerError) -> (u16, &'static str) {
    match e {
        OwnerError::NotFound | OwnerError::Upstream(UpstreamError::NotFound) => (404, "CHARACTER_NOT_FOUND"),
        OwnerError::Upstream(UpstreamError::BreakerOpen) => (503, "UPSTREAM_CIRCUIT_OPEN"),
        OwnerError::Upstream(UpstreamError::Timeout) => (504, "UPSTREAM_TIMEOUT"),
        OwnerError::Upstream(_) => (502, "UPSTREAM_ERROR"),
        OwnerError::Overloaded(_) | OwnerError::Shed(_) => (503, "OVERLOADED"),
        OwnerError::Abandoned => (503, "UNAVAILABLE"),
        OwnerError::Calc(_) => (502, "UPSTREAM_BAD_EQUIPMENT"),
        OwnerError::BadBasic(_) => (502, "UPSTREAM_BAD_BASIC"),
        OwnerError::Like(p) => match p {
            PartitionError::InvalidUser(_) | PartitionError::InvalidCharacter(_) | PartitionError::InvalidIdempotencyKey(_) => {
                (400, "BAD_REQUEST")
            }
            PartitionError::IdempotencyKeyReused { .. } => (422, "IDEMPOTENCY_KEY_REUSED"),
            PartitionError::RelationsFull { .. } | PartitionError::IdempotencyFull { .. } | PartitionError::InFlightFull { .. } => {
                (503, "STORAGE_BUSY")
            }
            PartitionError::BadRecord(_) | PartitionError::BadRow(_) | PartitionError::Encode(_) => (500, "INTERNAL"),
        },
        OwnerError::Busy(_) => (503, "STORAGE_BUSY"),
        OwnerError::Group(GroupError::Unavailable { .. } | GroupError::Unknown { .. }) => (503, "PARTITION_UNAVAILABLE"),
        OwnerError::Group(GroupError::Stopped { .. }) => (503, "STORAGE_UNAVAILABLE"),
    }
}

/// The response of an owner error. `storage_down`: why the node's storage
/// is down, if it is. A group that cannot take a write because the storage
/// under it failed is answered 503 STORAGE_UNAVAILABLE with that reason
/// (the group's own error names files: it goes to the log, not to clients).
pub fn owner_error(e: &OwnerError, storage_down: impl FnOnce() -> Option<String>) -> net::Response {
    let (mut status, mut code) = status_code(e);
    // A shed request is told when the work ahead of it should be done.
    let retry_after_s = match e {
        OwnerError::Shed(s) => s.retry_after_s(),
        _ => 1,
    };
    let message = match e {
        OwnerError::Group(g) => match (g, storage_down()) {
            (_, Some(reason)) => {
                (status, code) = (503, "STORAGE_UNAVAILABLE");
                reason
            }
            (GroupError::Stopped { .. }, None) => "storage failed; restart needed".to_string(),
            (g, None) => g.to_string(),
        },
        e => e.to_string(),
    };
    error_json_retry(status, code, &message, retry_after_s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::owner::admission::Shed;
    use std::time::Duration;

    fn header<'a>(r: &'a net::Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn shed_is_a_503_overloaded_with_retry_after() {
        let e = OwnerError::Shed(Shed { estimated_wait: Duration::from_millis(2400), max_wait: Duration::from_millis(500) });
        let r = owner_error(&e, || None);
        assert_eq!(r.status, 503);
        assert_eq!(header(&r, "retry-after"), Some("3"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!((body["status"].as_u64(), body["code"].as_str()), (Some(503), Some("OVERLOADED")));
        assert!(body["message"].as_str().unwrap().contains("2400 ms"), "{body}");
        assert!(e.allows_stale(), "a shed refresh may still serve the stale value");
        let plain = owner_error(&OwnerError::Overloaded("x"), || None);
        assert_eq!(header(&plain, "retry-after"), Some("1"));
    }

    #[test]
    fn like_errors_map_to_their_answers() {
        let reused = OwnerError::Like(PartitionError::IdempotencyKeyReused {
            key: "k".into(),
            first_character: "hero".into(),
            first_op: engine::partition::Op::LikeToggle,
        });
        assert_eq!(status_code(&reused), (422, "IDEMPOTENCY_KEY_REUSED"));
        assert_eq!(status_code(&OwnerError::Like(PartitionError::RelationsFull { max: 1 })), (503, "STORAGE_BUSY"));
        assert_eq!(status_code(&OwnerError::Like(PartitionError::InvalidIdempotencyKey("empty"))), (400, "BAD_REQUEST"));
        let unavailable = OwnerError::Group(GroupError::Unavailable { partition: 3, why: "no leader".into() });
        let r = owner_error(&unavailable, || None);
        assert_eq!((r.status, header(&r, "retry-after")), (503, Some("1")));
        let stopped = OwnerError::Group(GroupError::Stopped { partition: 3, why: "/data/log-0/x.log: EIO".into() });
        let r = owner_error(&stopped, || Some("storage: write-ahead log 0 failed; restart needed".into()));
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert!(body.contains("STORAGE_UNAVAILABLE") && !body.contains('/'), "no path to clients: {body}");
    }
}
