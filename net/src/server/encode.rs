//! Response serialisation: status line, the service's headers, then
//! `Date`, `Content-Length`, `Connection`, then the body — into one buffer
//! so a response (or a batch of pipelined responses) goes out in one write.

use crate::http::Response;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// `{"error":"...","status":N}` — the body of every error the server itself answers.
pub fn error_response(status: u16, message: &str) -> Response {
    let mut body = Vec::with_capacity(message.len() + 32);
    body.extend_from_slice(b"{\"error\":");
    write_json_string(&mut body, message);
    let _ = write!(body, ",\"status\":{status}}}");
    Response::json(status, body)
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `Date` header value, recomputed at most once per second per core.
#[derive(Default)]
pub(crate) struct DateCache {
    second: Cell<u64>,
    text: RefCell<[u8; 29]>,
}

impl DateCache {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if now != self.second.get() || self.text.borrow()[0] == 0 {
            *self.text.borrow_mut() = http_date(now);
            self.second.set(now);
        }
        f(&self.text.borrow()[..])
    }
}

/// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (the `httpdate` crate
/// formats it; it is always 29 bytes for years 1970..=9999).
pub(crate) fn http_date(unix_secs: u64) -> [u8; 29] {
    let text = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(unix_secs));
    let mut out = [0u8; 29];
    let n = text.len().min(29);
    out[..n].copy_from_slice(&text.as_bytes()[..n]);
    out
}

/// Bodies at least this large are written from their own buffer (no copy).
pub(crate) const LARGE_BODY: usize = 64 * 1024;

/// Append one serialised response to `out`. `keep_alive = false` adds
/// `Connection: close`. For HEAD, the body is not written but its length is.
/// A body of [`LARGE_BODY`] bytes or more is not copied: it is returned and
/// the caller writes it right after `out`.
#[must_use = "a returned large body must be written after the head"]
pub(crate) fn encode_response(
    out: &mut Vec<u8>,
    resp: &Response,
    keep_alive: bool,
    head_only: bool,
    date: &DateCache,
) -> Option<bytes::Bytes> {
    let copy_body = !head_only && resp.body.len() < LARGE_BODY;
    out.reserve(128 + resp.headers.len() * 32 + if copy_body { resp.body.len() } else { 0 });
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (name, value) in &resp.headers {
        // The server owns framing and connection headers.
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("date")
        {
            continue;
        }
        // A header value must not smuggle a line break into the head.
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"date: ");
    date.with(|d| out.extend_from_slice(d));
    let no_body = resp.status == 204 || resp.status == 304 || (100..200).contains(&resp.status);
    if !no_body {
        let _ = write!(out, "\r\ncontent-length: {}", resp.body.len());
    }
    out.extend_from_slice(if keep_alive { b"\r\nconnection: keep-alive\r\n\r\n" } else { b"\r\nconnection: close\r\n\r\n" });
    if head_only || no_body {
        None
    } else if copy_body {
        out.extend_from_slice(&resp.body);
        None
    } else {
        Some(resp.body.clone())
    }
}

/// True when the service asked for the connection to be closed.
pub(crate) fn wants_close(resp: &Response) -> bool {
    resp.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_known_values() {
        assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        // 2024-02-29 (leap day) 12:00:00
        assert_eq!(&http_date(1_709_208_000), b"Thu, 29 Feb 2024 12:00:00 GMT");
    }

    #[test]
    fn error_body_is_json_and_escaped() {
        let r = error_response(400, "bad \"x\"\n");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "bad \"x\"\n");
        assert_eq!(v["status"], 400);
    }

    #[test]
    fn encode_adds_framing_and_drops_service_framing() {
        let d = DateCache::default();
        let mut out = Vec::new();
        let r = Response::new(200).header("content-length", "999").header("x-a", "1").body("hi");
        assert!(encode_response(&mut out, &r, true, false, &d).is_none());
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: "));
        assert!(s.ends_with("\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nhi"));
        assert!(!s.contains("999"));

        let mut out = Vec::new();
        let big = bytes::Bytes::from(vec![7u8; LARGE_BODY]);
        let r = Response::new(200).body(big.clone());
        let rest = encode_response(&mut out, &r, true, false, &d).expect("large body returned, not copied");
        assert_eq!(rest, big);
        assert!(out.ends_with(format!("content-length: {LARGE_BODY}\r\nconnection: keep-alive\r\n\r\n").as_bytes()));
    }
}
