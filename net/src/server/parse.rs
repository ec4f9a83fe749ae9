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
    let base = buf.as_ptr() as usize;
    let target = split_target(method, target)?;
    let mut fields = scan_headers(req, base, len, max_body)?;
    check_host(&mut fields, version, target.authority, base)?;
    let body = body_framing(&fields, version)?;
    let keep_alive = if version == 1 { !fields.conn_close } else { fields.conn_keep_alive && !fields.conn_close };
    Ok(Head {
        method: method.to_string(),
        path: target.path.to_string(),
        query: target.query.to_string(),
        headers: fields.headers,
        len,
        body,
        keep_alive,
        expect_continue: fields.expect_continue,
    })
}

/// What the header lines say, gathered in one pass.
struct HeaderFields {
    /// Lower-cased name, value range in the head buffer.
    headers: Vec<(String, Range<usize>)>,
    content_length: Option<usize>,
    te: TransferCodings,
    hosts: usize,
    conn_close: bool,
    conn_keep_alive: bool,
    expect_continue: bool,
}

/// Lower-case every name, note each value's range (from `base`, the head
/// buffer's address), and check the fields that frame the request as they
/// come: Content-Length (digits only, one value, within `max_body`),
/// Transfer-Encoding, Host, Connection, Expect.
fn scan_headers(req: &httparse::Request<'_, '_>, base: usize, len: usize, max_body: usize) -> Result<HeaderFields, HeadError> {
    let mut f = HeaderFields {
        headers: Vec::with_capacity(req.headers.len() + 1),
        content_length: None,
        te: TransferCodings::default(),
        hosts: 0,
        conn_close: false,
        conn_keep_alive: false,
        expect_continue: false,
    };
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let start = h.value.as_ptr() as usize - base;
        debug_assert!(start + h.value.len() <= len);
        match name.as_str() {
            "content-length" => {
                // RFC 9110 8.6: 1*DIGIT. `+5`, `0x5`, `5,5` or ` 5 5` are not lengths.
                let v = parse_digits(h.value).ok_or(HeadError::Malformed("invalid content-length"))?;
                // Two different lengths = request smuggling attempt.
                if f.content_length.is_some_and(|c| c as u64 != v) {
                    return Err(HeadError::Malformed("conflicting content-length"));
                }
                if v > max_body as u64 {
                    return Err(HeadError::BodyTooLarge);
                }
                f.content_length = Some(v as usize);
            }
            // Several header lines are one comma-separated list (RFC 9110 5.3).
            "transfer-encoding" => f.te.add(h.value)?,
            "host" => {
                f.hosts += 1;
                if !valid_host(h.value) {
                    return Err(HeadError::Malformed("invalid host header"));
                }
            }
            "connection" => {
                for tok in h.value.split(|b| *b == b',') {
                    let tok = trim_ascii(tok);
                    if tok.eq_ignore_ascii_case(b"close") {
                        f.conn_close = true;
                    } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                        f.conn_keep_alive = true;
                    }
                }
            }
            "expect" if trim_ascii(h.value).eq_ignore_ascii_case(b"100-continue") => f.expect_continue = true,
            _ => {}
        }
        f.headers.push((name, start..start + h.value.len()));
    }
    Ok(f)
}

/// RFC 9112 3.2: exactly one Host on HTTP/1.1, at most one on HTTP/1.0;
/// an absolute-form target's authority replaces it (3.2.2).
fn check_host(f: &mut HeaderFields, version: u8, authority: Option<&str>, base: usize) -> Result<(), HeadError> {
    if f.hosts > 1 {
        return Err(HeadError::Malformed("more than one host header"));
    }
    if f.hosts == 0 && version == 1 {
        return Err(HeadError::Malformed("missing host header"));
    }
    if let Some(authority) = authority {
        f.headers.retain(|(n, _)| n != "host");
        let start = authority.as_ptr() as usize - base;
        f.headers.push(("host".to_string(), start..start + authority.len()));
    }
    Ok(())
}

/// The body's framing: chunked (HTTP/1.1 only, never with a
/// Content-Length), a length, or none.
fn body_framing(f: &HeaderFields, version: u8) -> Result<BodyFraming, HeadError> {
    let chunked = f.te.framing()?;
    if chunked && version == 0 {
        // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
        return Err(HeadError::Malformed("transfer-encoding in an HTTP/1.0 request"));
    }
    if chunked && f.content_length.is_some() {
        return Err(HeadError::Malformed("both content-length and transfer-encoding"));
    }
    Ok(if chunked {
        BodyFraming::Chunked
    } else {
        match f.content_length {
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    })
}

/// A request target split into what the service sees.
struct Target<'a> {
    path: &'a str,
    query: &'a str,
    /// `host[:port]` of an absolute-form target (borrowed from the head buffer).
    authority: Option<&'a str>,
}

/// RFC 9112 3.2: origin-form (`/p?q`), asterisk-form (`OPTIONS *`), and
/// absolute-form (`http://host/p?q`, which a server MUST accept); the
/// authority-form is CONNECT's only, which this server does not implement.
fn split_target<'a>(method: &str, target: &'a str) -> Result<Target<'a>, HeadError> {
    let split_query = |t: &'a str| match t.split_once('?') {
        Some((p, q)) => (p, q),
        None => (t, ""),
    };
    if target.starts_with('/') || (method == "OPTIONS" && target == "*") {
        let (path, query) = split_query(target);
        return Ok(Target { path, query, authority: None });
    }
    let rest = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"))
        .ok_or(HeadError::Malformed("request target must be origin-form or an http(s) absolute URI"))?;
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(auth_end);
    // http(s) URIs have a non-empty host and no user info (RFC 9110 4.2).
    if authority.is_empty() || authority.starts_with(':') || !valid_host(authority.as_bytes()) {
        return Err(HeadError::Malformed("invalid authority in absolute-form request target"));
    }
    let (path, query) = split_query(path_query);
    Ok(Target { path: if path.is_empty() { "/" } else { path }, query, authority: Some(authority) })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// `1*DIGIT` as a u64; `None` for anything else (sign, hex, list, overflow).
fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `Host` field value: `uri-host [ ":" port ]` (RFC 9110 7.2), where
/// uri-host is a reg-name, an IPv4 address or a bracketed IP literal. An
/// empty value is allowed (a target URI without authority). Rejects what
/// could be mistaken for a path, user info or a second field.
fn valid_host(v: &[u8]) -> bool {
    let port_ok = |p: &[u8]| p.is_empty() || (p[0] == b':' && p[1..].iter().all(u8::is_ascii_digit));
    if let Some(literal) = v.strip_prefix(b"[") {
        let Some(close) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let ip = &literal[..close];
        return !ip.is_empty() && ip.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') && port_ok(&literal[close + 1..]);
    }
    let (host, port) = match v.iter().position(|&b| b == b':') {
        Some(i) => v.split_at(i),
        None => (v, &b""[..]),
    };
    // reg-name = *( unreserved / pct-encoded / sub-delims )
    host.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)) && port_ok(port)
}

/// The transfer codings of every `Transfer-Encoding` line, in order.
#[derive(Default)]
struct TransferCodings {
    present: bool,
    count: usize,
    chunked: usize,
    last_is_chunked: bool,
    other: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &[u8]) -> Result<(), HeadError> {
        self.present = true;
        // Empty list elements are ignored (RFC 9110 5.6.1).
        for element in value.split(|b| *b == b',').map(trim_ascii).filter(|e| !e.is_empty()) {
            let name = trim_ascii(element.split(|b| *b == b';').next().unwrap_or_default());
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(HeadError::Malformed("invalid transfer-encoding"));
            }
            self.count += 1;
            if element.eq_ignore_ascii_case(b"chunked") {
                self.chunked += 1;
                self.last_is_chunked = true;
            } else {
                self.last_is_chunked = false;
                self.other = true;
            }
        }
        Ok(())
    }

    /// RFC 9112 6.1/6.3: chunked at most once and last, else 400; another
    /// coding before it is well framed but not implemented (501).
    fn framing(&self) -> Result<bool, HeadError> {
        if !self.present {
            return Ok(false);
        }
        if self.count == 0 {
            return Err(HeadError::Malformed("empty transfer-encoding"));
        }
        if self.chunked > 1 {
            return Err(HeadError::Malformed("chunked transfer-coding applied more than once"));
        }
        if !self.last_is_chunked {
            return Err(HeadError::Malformed("chunked must be the final transfer-coding"));
        }
        if self.other {
            return Err(HeadError::Unsupported("unsupported transfer-coding (only chunked)"));
        }
        Ok(true)
    }
}

/// RFC 9110 5.6.2 token character.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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
        assert!(matches!(parse(b"GET\x01 / HTTP/1.1\r\nHost: h\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(parse(b"GET ftp://x/ HTTP/1.1\r\nHost: h\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), Err(HeadError::Unsupported(_))));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"), Err(HeadError::Malformed(_))));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n\r\n"), Err(HeadError::Malformed("missing host header"))));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\nHost: a\r\nHOST: a\r\n\r\n"), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn absolute_form_takes_path_query_and_host_from_the_target() {
        let raw = b"GET http://example.com:81/a/b?c=d HTTP/1.1\r\nHost: ignored\r\nX: y\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/a/b", "c=d"));
        let hosts: Vec<&[u8]> = h.headers.iter().filter(|(n, _)| n == "host").map(|(_, r)| &raw[r.clone()]).collect();
        assert_eq!(hosts, vec![&b"example.com:81"[..]]);
        assert_eq!(h.headers.len(), 2, "Host replaced, other headers kept");
        let h = parse(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.path, "*");
    }

    #[test]
    fn http10_and_connection_close() {
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(!parse(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap().unwrap().keep_alive);
    }

    /// The outcome the RFC prescribes for a request whose Transfer-Encoding
    /// lines, joined, list `codings` (independent of the parser's bookkeeping).
    fn expected_te(codings: &[&str]) -> Result<BodyFraming, &'static str> {
        let chunked = codings.iter().filter(|c| c.eq_ignore_ascii_case("chunked")).count();
        match codings.last() {
            None => Err("400"),
            Some(_) if chunked > 1 => Err("400"),
            Some(last) if !last.eq_ignore_ascii_case("chunked") => Err("400"),
            Some(_) if codings.len() > 1 => Err("501"),
            Some(_) => Ok(BodyFraming::Chunked),
        }
    }

    proptest::proptest! {
        /// Content-Length is accepted exactly when it is 1*DIGIT (within the limit).
        #[test]
        fn content_length_is_digits_only(v in "[0-9+ ,xa-f.-]{0,6}") {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {v}\r\n\r\n");
            let got = parse_head(raw.as_bytes(), 8, 512, 1_000_000).map(|h| h.map(|h| h.body));
            let t = v.trim_matches(' ');
            let want = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                match t.parse::<usize>().unwrap() {
                    0 => Ok(Some(BodyFraming::None)),
                    n => Ok(Some(BodyFraming::Length(n))),
                }
            } else {
                Err(HeadError::Malformed("invalid content-length"))
            };
            proptest::prop_assert_eq!(got, want, "{:?}", v);
        }

        /// Transfer-Encoding: any split of any coding list over 1-3 header
        /// lines, with empty elements and odd case, gives the RFC's answer.
        #[test]
        fn transfer_encoding_lines_are_one_list(
            codings in proptest::collection::vec(proptest::sample::select(vec!["chunked", "CHUNKED", "gzip", "identity", "x-custom"]), 0..4),
            cuts in proptest::collection::vec(proptest::bool::ANY, 4),
            empties in proptest::bool::ANY,
        ) {
            let mut lines = vec![String::new()];
            for (i, c) in codings.iter().enumerate() {
                if i > 0 && cuts[i] {
                    lines.push(String::new());
                }
                let line = lines.last_mut().unwrap();
                if !line.is_empty() {
                    line.push_str(if empties { " , ," } else { ", " });
                }
                line.push_str(c);
            }
            let te: String = lines.iter().map(|l| format!("Transfer-Encoding: {l}\r\n")).collect();
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\n{te}\r\n");
            let got = match parse_head(raw.as_bytes(), 8, 512, 100) {
                Ok(Some(h)) => Ok(h.body),
                Ok(None) => Err("partial"),
                Err(HeadError::Malformed(_)) => Err("400"),
                Err(HeadError::Unsupported(_)) => Err("501"),
                Err(_) => Err("other"),
            };
            proptest::prop_assert_eq!(got, expected_te(&codings), "{}", te);
        }

        /// Absolute-form targets: path, query and Host come from the URI.
        #[test]
        fn absolute_form_round_trips(
            host in "[a-z0-9][a-z0-9.-]{0,20}(:[0-9]{1,5})?",
            path in "(/[a-zA-Z0-9%._~-]{0,8}){0,3}",
            query in proptest::option::of("[a-zA-Z0-9=&%]{0,12}"),
            https in proptest::bool::ANY,
        ) {
            let q = query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
            let scheme = if https { "https" } else { "http" };
            let raw = format!("GET {scheme}://{host}{path}{q} HTTP/1.1\r\nHost: other\r\n\r\n");
            let h = parse_head(raw.as_bytes(), 8, 512, 100).unwrap().unwrap();
            proptest::prop_assert_eq!(&h.path, if path.is_empty() { "/" } else { path.as_str() });
            proptest::prop_assert_eq!(&h.query, query.as_deref().unwrap_or(""));
            let hosts: Vec<&[u8]> = h.headers.iter().filter(|(n, _)| n == "host").map(|(_, r)| &raw.as_bytes()[r.clone()]).collect();
            proptest::prop_assert_eq!(hosts, vec![host.as_bytes()]);
        }

        /// Host: exactly one on HTTP/1.1, at most one on HTTP/1.0.
        #[test]
        fn host_count_rules(n in 0usize..4, v10 in proptest::bool::ANY) {
            let hosts: String = (0..n).map(|i| format!("Host: h{i}\r\n")).collect();
            let raw = format!("GET / HTTP/1.{}\r\n{hosts}\r\n", if v10 { 0 } else { 1 });
            let ok = parse_head(raw.as_bytes(), 8, 512, 100).is_ok();
            proptest::prop_assert_eq!(ok, n == 1 || (v10 && n == 0));
        }

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
            let raw = format!("GET /p HTTP/1.1\r\nX-V: {v}\r\nHost: h\r\n\r\n");
            let h = parse_head(raw.as_bytes(), 8, 512, 100).unwrap().unwrap();
            let (_, r) = &h.headers[0];
            proptest::prop_assert_eq!(&raw.as_bytes()[r.clone()], v.trim().as_bytes());
        }
    }
}
