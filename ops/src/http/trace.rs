//! The W3C trace context a forward carries (`traceparent`, version 00:
//! `00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>`, lower-case,
//! neither id all zeros). A client's valid header is kept as sent;
//! otherwise the forwarding node makes a fresh one, so both nodes' log
//! lines of a forward always share a trace id.

use net::Request;

/// The request's `traceparent` if it is a valid version-00 header, else a fresh one.
pub fn traceparent_of(req: &Request) -> String {
    match req.header("traceparent").and_then(|v| std::str::from_utf8(v).ok()) {
        Some(tp) if is_valid(tp) => tp.to_owned(),
        _ => fresh(),
    }
}

/// A new `traceparent`: random trace and parent ids, not sampled (this
/// node records no spans; a tracer downstream may still decide).
pub fn fresh() -> String {
    // Random ids are never all zeros in practice; `| 1` makes it certain.
    let trace_id: u128 = rand::random::<u128>() | 1;
    let parent_id: u64 = rand::random::<u64>() | 1;
    format!("00-{trace_id:032x}-{parent_id:016x}-00")
}

/// `req` with its `traceparent` header(s) replaced by `tp`.
pub fn with_traceparent(req: &Request, tp: &str) -> Request {
    let mut req = req.clone();
    req.headers.retain(|(name, _)| name != "traceparent");
    req.headers.push(("traceparent".into(), bytes::Bytes::copy_from_slice(tp.as_bytes())));
    req
}

/// A version-00 `traceparent` as the W3C Trace Context defines it.
pub fn is_valid(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    match parts[..] {
        ["00", trace, parent, flags] => hex(trace, 32) && hex(parent, 16) && hex(flags, 2) && nonzero(trace) && nonzero(parent),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn request(traceparent: Option<&str>) -> Request {
        Request {
            method: "GET".into(),
            path: "/api/v2/characters/a/like/status".into(),
            query: String::new(),
            headers: traceparent.map(|t| ("traceparent".to_owned(), bytes::Bytes::copy_from_slice(t.as_bytes()))).into_iter().collect(),
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn a_valid_traceparent_is_kept_and_anything_else_is_replaced_by_a_fresh_one() {
        assert_eq!(traceparent_of(&request(Some(VALID))), VALID);
        let bad = [
            "",
            "00-1-2-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ];
        for tp in bad {
            assert!(!is_valid(tp), "{tp:?}");
            let made = traceparent_of(&request(Some(tp)));
            assert!(is_valid(&made) && made != tp, "{tp:?} -> {made:?}");
        }
        let (a, b) = (traceparent_of(&request(None)), traceparent_of(&request(None)));
        assert!(is_valid(&a) && is_valid(&b) && a[3..35] != b[3..35], "fresh trace ids differ: {a} {b}");
    }

    #[test]
    fn the_forwarded_request_carries_exactly_one_traceparent() {
        let req = with_traceparent(&request(Some("garbage")), VALID);
        let all: Vec<_> = req.headers.iter().filter(|(n, _)| n == "traceparent").collect();
        assert_eq!(all.len(), 1);
        assert_eq!(req.header("traceparent"), Some(VALID.as_bytes()));
    }
}
