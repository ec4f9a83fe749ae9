//! Replies and their encoding for the connection's protocol version.
//!
//! A service builds one [`Reply`]; the server writes it as RESP3 or, for a
//! RESP2 connection, as the nearest RESP2 shape (what Redis itself does):
//! maps become flat `[k1, v1, k2, v2, ...]` arrays, sets become arrays,
//! booleans become `:1`/`:0`, doubles and big numbers become bulk strings,
//! null is `$-1` (or `*-1` for [`Reply::NullArray`]).

use bytes::Bytes;
use std::borrow::Cow;

/// RESP version of a connection: 2 until the client says `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One reply. Strings that go on a single line ([`Reply::Simple`],
/// [`Reply::Error`]) have CR and LF replaced by spaces when encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// `+text`
    Simple(Cow<'static, str>),
    /// `-CODE message`: the text starts with the error code (`ERR`, `NOAUTH`, ...).
    Error(Cow<'static, str>),
    Int(i64),
    /// Binary-safe bulk string.
    Bulk(Bytes),
    /// RESP3 `_`; RESP2 `$-1` (null bulk string).
    Null,
    /// RESP3 `_`; RESP2 `*-1` (null array).
    NullArray,
    Array(Vec<Reply>),
    /// RESP3 `%`; RESP2 a flat array of key, value, key, value...
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~`; RESP2 an array.
    Set(Vec<Reply>),
    /// RESP3 `#t`/`#f`; RESP2 `:1`/`:0`.
    Bool(bool),
    /// RESP3 `,`; RESP2 a bulk string.
    Double(f64),
    /// RESP3 `(`; RESP2 a bulk string. Digits with an optional leading `-`.
    BigNumber(Cow<'static, str>),
    /// RESP3 `=` with a 3-byte format (`txt`, `mkd`); RESP2 a bulk string.
    Verbatim {
        format: [u8; 3],
        text: Bytes,
    },
}

impl Reply {
    /// `-<text>`: `text` must start with the error code, e.g. `"NOAUTH Authentication required."`.
    pub fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    /// `-ERR <message>`
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(Cow::Owned(format!("ERR {message}")))
    }

    pub fn simple(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Simple(text.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    /// A map with string keys (the usual shape of a RESP3 reply object).
    pub fn map<K: Into<Cow<'static, str>>>(pairs: impl IntoIterator<Item = (K, Reply)>) -> Reply {
        Reply::Map(pairs.into_iter().map(|(k, v)| (Reply::bulk_str(k), v)).collect())
    }

    /// A bulk string from text.
    pub fn bulk_str(s: impl Into<Cow<'static, str>>) -> Reply {
        match s.into() {
            Cow::Borrowed(s) => Reply::Bulk(Bytes::from_static(s.as_bytes())),
            Cow::Owned(s) => Reply::Bulk(Bytes::from(s)),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The error code (`ERR`, `NOAUTH`, ...) of an error reply.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Reply::Error(t) => Some(t.split(' ').next().unwrap_or("")),
            _ => None,
        }
    }

    /// Encode for `proto`, appending to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut Vec<u8>) {
        encode(self, proto, out, 0);
    }

    /// Encoded length in bytes (for tests and size estimates).
    pub fn encoded_len(&self, proto: Protocol) -> usize {
        let mut v = Vec::new();
        self.encode(proto, &mut v);
        v.len()
    }
}

/// Replies nested deeper than this are replaced by an error at that depth
/// (a service bug must not overflow the stack of a core).
pub const MAX_REPLY_DEPTH: usize = 64;

fn encode(r: &Reply, proto: Protocol, out: &mut Vec<u8>, depth: usize) {
    let resp3 = proto == Protocol::Resp3;
    if depth > MAX_REPLY_DEPTH {
        out.extend_from_slice(b"-ERR reply nested too deep\r\n");
        return;
    }
    match r {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Simple(s) => line(out, b'+', s.as_bytes()),
        Reply::Error(s) => line(out, b'-', s.as_bytes()),
        Reply::Int(i) => {
            out.push(b':');
            push_int(out, *i);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => bulk(out, b),
        Reply::Null => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Reply::NullArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => {
            header(out, b'*', items.len());
            for i in items {
                encode(i, proto, out, depth + 1);
            }
        }
        Reply::Set(items) => {
            header(out, if resp3 { b'~' } else { b'*' }, items.len());
            for i in items {
                encode(i, proto, out, depth + 1);
            }
        }
        Reply::Map(pairs) => {
            if resp3 {
                header(out, b'%', pairs.len());
            } else {
                header(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode(k, proto, out, depth + 1);
                encode(v, proto, out, depth + 1);
            }
        }
        Reply::Bool(b) => out.extend_from_slice(match (resp3, b) {
            (true, true) => b"#t\r\n",
            (true, false) => b"#f\r\n",
            (false, true) => b":1\r\n",
            (false, false) => b":0\r\n",
        }),
        Reply::Double(f) => {
            let text = format_double(*f);
            if resp3 {
                line(out, b',', text.as_bytes());
            } else {
                bulk(out, text.as_bytes());
            }
        }
        Reply::BigNumber(s) => {
            if resp3 {
                line(out, b'(', s.as_bytes());
            } else {
                bulk(out, s.as_bytes());
            }
        }
        Reply::Verbatim { format, text } => {
            if resp3 {
                header(out, b'=', text.len() + 4);
                out.extend_from_slice(format);
                out.push(b':');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            } else {
                bulk(out, text);
            }
        }
    }
}

/// RESP3 double text: `inf`, `-inf`, `nan`, else the shortest exact form.
fn format_double(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f}")
    }
}

fn line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    push_int(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> String {
        let mut v = Vec::new();
        r.encode(p, &mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        let m = Reply::map([("liked", Reply::Bool(true)), ("likeCount", Reply::Int(-12))]);
        assert_eq!(enc(&m, Protocol::Resp3), "%2\r\n$5\r\nliked\r\n#t\r\n$9\r\nlikeCount\r\n:-12\r\n");
        assert_eq!(enc(&m, Protocol::Resp2), "*4\r\n$5\r\nliked\r\n:1\r\n$9\r\nlikeCount\r\n:-12\r\n");
        assert_eq!(enc(&Reply::Null, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(&Reply::NullArray, Protocol::Resp2), "*-1\r\n");
        assert_eq!(enc(&Reply::Null, Protocol::Resp3), "_\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Double(f64::NEG_INFINITY), Protocol::Resp2), "$4\r\n-inf\r\n");
        assert_eq!(enc(&Reply::Set(vec![Reply::Int(i64::MIN)]), Protocol::Resp3), "~1\r\n:-9223372036854775808\r\n");
        let v = Reply::Verbatim { format: *b"txt", text: Bytes::from_static(b"hi") };
        assert_eq!(enc(&v, Protocol::Resp3), "=6\r\ntxt:hi\r\n");
        assert_eq!(enc(&v, Protocol::Resp2), "$2\r\nhi\r\n");
    }

    #[test]
    fn single_line_strings_are_sanitised() {
        assert_eq!(enc(&Reply::err("bad\r\nthing"), Protocol::Resp2), "-ERR bad  thing\r\n");
        assert_eq!(enc(&Reply::simple("a\nb"), Protocol::Resp3), "+a b\r\n");
    }

    #[test]
    fn depth_is_bounded() {
        let mut r = Reply::Int(1);
        for _ in 0..1000 {
            r = Reply::Array(vec![r]);
        }
        let s = enc(&r, Protocol::Resp3);
        assert!(s.ends_with("-ERR reply nested too deep\r\n"));
        // Drop iteratively is the caller's business; this depth is fine for Drop.
    }
}
