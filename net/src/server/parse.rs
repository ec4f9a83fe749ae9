//! Request head parsing (httparse) into owned, lower-cased names and byte
//! ranges into the read buffer, so the buffer can be split without copying.

use std::ops::Range;

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

#[derive(Debug)]
pub(crate) struct Head {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-cased name, value range in the buffer the head was parsed from.
    pub headers: Vec<(String, Range<usize>)>,
    /// Bytes of request line + headers + blank line.
    pub len: usize,
    pub body: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// 400
    Malformed(&'static str),
    /// 431
    TooLarge,
    /// 413
    BodyTooLarge,
    /// 501 (e.g. `Transfer-Encoding: gzip`)
    Unsupported(&'static str),
}

/// `Ok(None)` = need more bytes. Never reads past `buf`.
pub(crate) fn parse_head(
    buf: &[u8],
    max_headers: usize,
    max_header_bytes: usize,
    max_body_bytes: usize,
) -> Result<Option<Head>, HeadError> {
    if buf.is_empty() {
        return Ok(None);
    }
    // One small allocation per head; httparse borrows `buf` through it.
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf);
    match status {
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_header_bytes {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            }
        }
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(_) => {
            if buf.len() > max_header_bytes {
                Err(HeadError::TooLarge)
            } else {
                Err(HeadError::Malformed("malformed request head"))
            }
        }
        Ok(httparse::Status::Complete(len)) => {
            if len > max_header_bytes {
                Err(HeadError::TooLarge)
            } else {
                build_head(&req, buf, len, max_body_bytes).map(Some)
            }
        }
    }
}

fn build_head(req: &httparse::Request<'_, '_>, buf: &[u8], len: usize, max_body: usize) -> Result<Head, HeadError> {
    let method = req.method.ok_or(HeadError::Malformed("missing method"))?;
    let target = req.path.ok_or(HeadError::Malformed("missing path"))?;
    let version = req.version.ok_or(HeadError::Malformed("missing version"))?;
    let origin_form = target.starts_with('/') || (method == "OPTIONS" && target == "*");
    if !origin_form {
        return Err(HeadError::Malformed("request target must be origin-form"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let base = buf.as_ptr() as usize;
    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let start = h.value.as_ptr() as usize - base;
        debug_assert!(start + h.value.len() <= len);
        match name.as_str() {
            "content-length" => {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or(HeadError::Malformed("invalid content-length"))?;
                // Two different lengths = request smuggling attempt.
                if content_length.is_some_and(|c| c as u64 != v) {
                    return Err(HeadError::Malformed("conflicting content-length"));
                }
                if v > max_body as u64 {
                    return Err(HeadError::BodyTooLarge);
                }
                content_length = Some(v as usize);
            }
            "transfer-encoding" => {
                let v = std::str::from_utf8(h.value).map_err(|_| HeadError::Malformed("invalid transfer-encoding"))?;
                let last = v.rsplit(',').next().unwrap_or("").trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(HeadError::Unsupported("unsupported transfer-encoding"));
                }
                if v.split(',').count() > 1 {
                    return Err(HeadError::Unsupported("only plain chunked transfer-encoding is supported"));
                }
                chunked = true;
            }
            "connection" => {
                for tok in h.value.split(|b| *b == b',') {
                    let tok = trim_ascii(tok);
                    if tok.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    }
                }
            }
            "expect" if trim_ascii(h.value).eq_ignore_ascii_case(b"100-continue") => expect_continue = true,
            _ => {}
        }
        headers.push((name, start..start + h.value.len()));
    }
    if chunked && content_length.is_some() {
        return Err(HeadError::Malformed("both content-length and transfer-encoding"));
    }
    let body = if chunked {
        BodyFraming::Chunked
    } else {
        match content_length {
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    };
    let keep_alive = if version == 1 { !conn_close } else { conn_keep_alive && !conn_close };
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        len,
        body,
        keep_alive,
        expect_continue,
    })
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Option<Head>, HeadError> {
        parse_head(b, 8, 256, 100)
    }

    #[test]
    fn complete_head_with_query_and_body_length() {
        let raw = b"POST /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str(), h.query.as_str()), ("POST", "/a/b", "x=1&y=2"));
        assert_eq!(h.body, BodyFraming::Length(5));
        assert_eq!(h.len, raw.len() - 5);
        assert!(h.keep_alive);
        let (name, r) = &h.headers[0];
        assert_eq!((name.as_str(), &raw[r.clone()]), ("host", &b"h"[..]));
    }

    #[test]
    fn partial_and_limits() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost:").unwrap().map(|_| ()), None);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(300));
        assert_eq!(parse(long.as_bytes()).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..9).map(|i| format!("H{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(raw.as_bytes()).unwrap_err(), HeadError::TooLarge);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nContent-Length: 101\r\n\r\n").unwrap_err(), HeadError::BodyTooLarge);
    }

    #[test]
    fn malformed_and_smuggling() {
        assert!(matches!(parse(b"GET\x01 / HTTP/1.1\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(parse(b"GET http://x/ HTTP/1.1\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), Err(HeadError::Unsupported(_))));
    }

    #[test]
    fn http10_and_connection_close() {
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(!parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap().unwrap().keep_alive);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the parser, and a parsed head never
        /// claims more bytes than it was given.
        #[test]
        fn never_panics_on_junk(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Ok(Some(h)) = parse_head(&raw, 8, 512, 100) {
                proptest::prop_assert!(h.len <= raw.len());
                for (_, r) in &h.headers {
                    proptest::prop_assert!(r.end <= h.len);
                }
            }
        }

        /// Valid heads with random header values round-trip the values.
        #[test]
        fn header_values_round_trip(v in "[a-zA-Z0-9 ;=,/.-]{0,40}") {
            let raw = format!("GET /p HTTP/1.1\r\nX-V: {v}\r\n\r\n");
            let h = parse_head(raw.as_bytes(), 8, 512, 100).unwrap().unwrap();
            let (_, r) = &h.headers[0];
            proptest::prop_assert_eq!(&raw.as_bytes()[r.clone()], v.trim().as_bytes());
        }
    }
}
