//! RESP2/RESP3 on the client side: commands out (arrays of bulk strings),
//! replies in. Two readers of a reply:
//! - [`scan`]: the hot path. Finds where one reply ends and what it is
//!   (a value, a null, an error with its text's place) without copying;
//!   a 17 KB bulk string is one length check.
//! - [`decode`]: builds a [`Value`] (for `CLUSTER SLOTS` and tests).
//!
//! Both are bounded: aggregate nesting ([`MAX_DEPTH`]), bulk and aggregate
//! lengths ([`MAX_BULK_BYTES`], [`MAX_AGGREGATE_LEN`]), header line length
//! ([`MAX_LINE_BYTES`]). Work per call is bounded by the bytes given.

use std::ops::Range;

/// Deepest aggregate nesting accepted (replies the bench reads are 2 deep).
pub const MAX_DEPTH: usize = 32;
/// Largest bulk string accepted (Redis' own `proto-max-bulk-len` is 512 MB).
pub const MAX_BULK_BYTES: usize = 64 * 1024 * 1024;
/// Most elements in one aggregate.
pub const MAX_AGGREGATE_LEN: usize = 1 << 20;
/// Longest simple line (type byte to CRLF).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown RESP type byte 0x{0:02x}")]
    UnknownType(u8),
    #[error("bad length or number in a RESP header")]
    BadNumber,
    #[error("RESP line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("RESP bulk string or aggregate over its limit")]
    TooLarge,
    #[error("RESP aggregates nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("RESP bulk string not followed by CRLF")]
    MissingCrlf,
}

/// Appends `args` as a RESP array of bulk strings; returns the place of
/// `args[key]` in `out` (for routing by key slot).
pub fn push_command(out: &mut Vec<u8>, args: &[&[u8]], key: usize) -> Range<usize> {
    assert!(key < args.len(), "the key is one of the arguments");
    out.push(b'*');
    push_decimal(out, args.len());
    out.extend_from_slice(b"\r\n");
    let mut key_range = 0..0;
    for (i, a) in args.iter().enumerate() {
        out.push(b'$');
        push_decimal(out, a.len());
        out.extend_from_slice(b"\r\n");
        if i == key {
            key_range = out.len()..out.len() + a.len();
        }
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    key_range
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// What one reply is, as the bench counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    /// Anything that is neither an error nor a null.
    Value,
    /// `_`, `$-1`, `*-1`.
    Null,
    /// `-text` or `!len text`: where the text lies in the scanned buffer.
    Error(Range<usize>),
    /// A RESP3 push (`>`): out of band, not the answer to a command.
    Push,
}

/// One complete reply at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes of the reply (attributes before it included).
    pub len: usize,
    pub kind: ReplyKind,
}

/// Finds the first complete reply in `buf`; `Ok(None)` = need more bytes.
pub fn scan(buf: &[u8]) -> Result<Option<Scanned>, ProtocolError> {
    let mut pos = 0;
    // Attributes (`|`) describe the reply that follows; skip them.
    while buf.get(pos) == Some(&b'|') {
        match skip(buf, pos, 0)? {
            Some(end) => pos = end,
            None => return Ok(None),
        }
    }
    let Some(&t) = buf.get(pos) else { return Ok(None) };
    let kind = match t {
        b'-' => {
            let Some((line, end)) = line(buf, pos + 1)? else { return Ok(None) };
            return Ok(Some(Scanned { len: end, kind: ReplyKind::Error(line) }));
        }
        b'!' => {
            let Some((n, start)) = length(buf, pos + 1, MAX_BULK_BYTES)? else { return Ok(None) };
            let n = n.ok_or(ProtocolError::BadNumber)?;
            let Some(end) = bulk_end(buf, start, n)? else { return Ok(None) };
            return Ok(Some(Scanned { len: end, kind: ReplyKind::Error(start..start + n) }));
        }
        b'_' => ReplyKind::Null,
        b'$' | b'*' if buf.get(pos + 1..pos + 3) == Some(&b"-1"[..]) => ReplyKind::Null,
        b'>' => ReplyKind::Push,
        _ => ReplyKind::Value,
    };
    Ok(skip(buf, pos, 0)?.map(|end| Scanned { len: end, kind }))
}

/// End of the value starting at `pos`, or `None` if incomplete.
fn skip(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError::TooDeep);
    }
    let Some(&t) = buf.get(pos) else { return Ok(None) };
    match t {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(line(buf, pos + 1)?.map(|(_, end)| end)),
        b'$' | b'!' | b'=' => {
            let Some((n, start)) = length(buf, pos + 1, MAX_BULK_BYTES)? else { return Ok(None) };
            match n {
                None => Ok(Some(start)),
                Some(n) => bulk_end(buf, start, n),
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some((n, mut at)) = length(buf, pos + 1, MAX_AGGREGATE_LEN)? else { return Ok(None) };
            let per = if matches!(t, b'%' | b'|') { 2 } else { 1 };
            for _ in 0..n.unwrap_or(0) * per {
                match skip(buf, at, depth + 1)? {
                    Some(end) => at = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(at))
        }
        other => Err(ProtocolError::UnknownType(other)),
    }
}

/// The line from `from` to its CRLF: (its range, the index after the CRLF).
fn line(buf: &[u8], from: usize) -> Result<Option<(Range<usize>, usize)>, ProtocolError> {
    let rest = buf.get(from..).unwrap_or(&[]);
    let limit = rest.len().min(MAX_LINE_BYTES + 1);
    match rest[..limit].windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((from..from + i, from + i + 2))),
        None if rest.len() > MAX_LINE_BYTES => Err(ProtocolError::LineTooLong),
        None => Ok(None),
    }
}

/// A length header: `Some(n)` or `None` for -1 (null), with the index after its CRLF.
fn length(buf: &[u8], from: usize, max: usize) -> Result<Option<(Option<usize>, usize)>, ProtocolError> {
    let Some((range, end)) = line(buf, from)? else { return Ok(None) };
    let text = &buf[range];
    if text == b"-1" {
        return Ok(Some((None, end)));
    }
    if text.is_empty() || text.len() > 12 || !text.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::BadNumber);
    }
    let n: usize = std::str::from_utf8(text).map_err(|_| ProtocolError::BadNumber)?.parse().map_err(|_| ProtocolError::BadNumber)?;
    if n > max {
        return Err(ProtocolError::TooLarge);
    }
    Ok(Some((Some(n), end)))
}

/// End of `n` bulk bytes at `start` and their CRLF.
fn bulk_end(buf: &[u8], start: usize, n: usize) -> Result<Option<usize>, ProtocolError> {
    let end = start + n + 2;
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[start + n..end] != b"\r\n" {
        return Err(ProtocolError::MissingCrlf);
    }
    Ok(Some(end))
}

/// A decoded reply. RESP3 sets and pushes are arrays here; attributes are dropped.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Bool(bool),
    /// Doubles, big numbers and verbatim strings, as their text.
    Text(Vec<u8>),
}

impl Value {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Bulk(b) | Value::Text(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Simple(b) | Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// Decodes the first complete reply of `buf`: (value, bytes used).
pub fn decode(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    // Validate and find the end first: the builder below then never meets
    // an incomplete or over-deep reply.
    let Some(end) = scan(buf)?.map(|s| s.len) else { return Ok(None) };
    let mut pos = 0;
    while buf[pos] == b'|' {
        pos = skip(buf, pos, 0)?.expect("inside a scanned reply");
    }
    let (v, _) = build(&buf[..end], pos)?;
    Ok(Some((v, end)))
}

/// Builds the (complete, validated) value at `pos`.
fn build(buf: &[u8], pos: usize) -> Result<(Value, usize), ProtocolError> {
    let text = |pos| -> Result<(Vec<u8>, usize), ProtocolError> {
        let (r, end) = line(buf, pos + 1)?.ok_or(ProtocolError::MissingCrlf)?;
        Ok((buf[r].to_vec(), end))
    };
    let t = buf[pos];
    Ok(match t {
        b'+' => text(pos).map(|(b, e)| (Value::Simple(b), e))?,
        b'-' => text(pos).map(|(b, e)| (Value::Error(b), e))?,
        b',' | b'(' => text(pos).map(|(b, e)| (Value::Text(b), e))?,
        b'_' => (Value::Null, text(pos)?.1),
        b'#' => {
            let (b, e) = text(pos)?;
            (Value::Bool(b == b"t"), e)
        }
        b':' => {
            let (b, e) = text(pos)?;
            let i = std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()).ok_or(ProtocolError::BadNumber)?;
            (Value::Int(i), e)
        }
        b'$' | b'!' | b'=' => match length(buf, pos + 1, MAX_BULK_BYTES)?.ok_or(ProtocolError::MissingCrlf)? {
            (None, e) => (Value::Null, e),
            (Some(n), start) => {
                let data = buf[start..start + n].to_vec();
                let v = match t {
                    b'!' => Value::Error(data),
                    b'=' => Value::Text(data.get(4..).unwrap_or(&[]).to_vec()),
                    _ => Value::Bulk(data),
                };
                (v, start + n + 2)
            }
        },
        _ => {
            // Aggregates (`* ~ > % |`); `scan` checked the type bytes.
            let (n, mut at) = length(buf, pos + 1, MAX_AGGREGATE_LEN)?.ok_or(ProtocolError::MissingCrlf)?;
            let Some(n) = n else { return Ok((Value::Null, at)) };
            let mut next = || -> Result<Value, ProtocolError> {
                let (v, e) = build(buf, at)?;
                at = e;
                Ok(v)
            };
            let v = if t == b'%' || t == b'|' {
                let mut pairs = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let k = next()?;
                    pairs.push((k, next()?));
                }
                Value::Map(pairs)
            } else {
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(next()?);
                }
                Value::Array(items)
            };
            (v, at)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = b"junk".to_vec();
        let key = push_command(&mut out, &[b"LIKE.TOGGLE", "아델".as_bytes()], 1);
        assert_eq!(&out[4..], "*2\r\n$11\r\nLIKE.TOGGLE\r\n$6\r\n아델\r\n".as_bytes());
        assert_eq!(&out[key], "아델".as_bytes());
        let mut out = Vec::new();
        push_command(&mut out, &[b"GET", b""], 1);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
    }

    #[test]
    fn scan_finds_ends_and_kinds() {
        let cases: &[(&[u8], ReplyKind)] = &[
            (b"+OK\r\n", ReplyKind::Value),
            (b":12\r\n", ReplyKind::Value),
            (b"$5\r\nhello\r\n", ReplyKind::Value),
            (b"$0\r\n\r\n", ReplyKind::Value),
            (b"$-1\r\n", ReplyKind::Null),
            (b"*-1\r\n", ReplyKind::Null),
            (b"_\r\n", ReplyKind::Null),
            (b"*2\r\n:1\r\n:5\r\n", ReplyKind::Value),
            (b"%2\r\n$5\r\nliked\r\n#t\r\n$9\r\nlikeCount\r\n:5\r\n", ReplyKind::Value),
            (b"-MOVED 3999 127.0.0.1:6381\r\n", ReplyKind::Error(1..26)),
            (b"!8\r\nBUSY x y\r\n", ReplyKind::Error(4..12)),
            (b">2\r\n+a\r\n+b\r\n", ReplyKind::Push),
            (b"|1\r\n+k\r\n+v\r\n:7\r\n", ReplyKind::Value),
            (b",2.5\r\n", ReplyKind::Value),
            (b"=7\r\ntxt:abc\r\n", ReplyKind::Value),
        ];
        for (wire, kind) in cases {
            let mut with_tail = wire.to_vec();
            with_tail.extend_from_slice(b"+NEXT\r\n");
            let s = scan(&with_tail).unwrap().unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(wire)));
            assert_eq!(s, Scanned { len: wire.len(), kind: kind.clone() }, "{}", String::from_utf8_lossy(wire));
            // Every strict prefix is incomplete, never an error.
            for cut in 0..wire.len() {
                assert_eq!(scan(&wire[..cut]), Ok(None), "{:?} cut at {cut}", String::from_utf8_lossy(wire));
            }
        }
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert_eq!(scan(b"?x\r\n"), Err(ProtocolError::UnknownType(b'?')));
        assert_eq!(scan(b"$abc\r\n"), Err(ProtocolError::BadNumber));
        assert_eq!(scan(b"$-5\r\n"), Err(ProtocolError::BadNumber));
        assert_eq!(scan(b"$99999999999999\r\n"), Err(ProtocolError::BadNumber));
        assert_eq!(scan(b"$999999999\r\n"), Err(ProtocolError::TooLarge));
        assert_eq!(scan(b"*9999999\r\n"), Err(ProtocolError::TooLarge));
        assert_eq!(scan(b"$2\r\nabcd\r\n"), Err(ProtocolError::MissingCrlf));
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2);
        assert_eq!(scan(deep.as_bytes()), Err(ProtocolError::TooDeep));
        let long = vec![b'+'; MAX_LINE_BYTES + 10];
        assert_eq!(scan(&long), Err(ProtocolError::LineTooLong));
    }

    #[test]
    fn decode_builds_values() {
        let wire = b"*2\r\n*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n_\r\n+tail";
        let (v, n) = decode(wire).unwrap().unwrap();
        assert_eq!(n, wire.len() - 5);
        let Value::Array(items) = v else { panic!() };
        assert_eq!(items[1], Value::Null);
        let Value::Array(range) = &items[0] else { panic!() };
        assert_eq!(range[1].as_int(), Some(5460));
        let Value::Array(node) = &range[2] else { panic!() };
        assert_eq!(node[0].as_bytes(), Some(&b"127.0.0.1"[..]));
        let (v, _) = decode(b"%1\r\n+liked\r\n#f\r\n").unwrap().unwrap();
        assert_eq!(v, Value::Map(vec![(Value::Simple(b"liked".to_vec()), Value::Bool(false))]));
        let (v, _) = decode(b"|1\r\n+a\r\n+b\r\n!3\r\nERR\r\n").unwrap().unwrap();
        assert_eq!(v, Value::Error(b"ERR".to_vec()));
        assert_eq!(decode(b"*2\r\n:1\r\n"), Ok(None));
    }
}
