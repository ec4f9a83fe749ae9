//! Request decoder: what a Redis server accepts from a client, and nothing
//! more. A request is either a multibulk (`*N\r\n` followed by N bulk
//! strings `$len\r\n<bytes>\r\n`) or an inline command (one text line, for
//! telnet). Any other RESP type inside a request is a protocol error, as in
//! Redis (`expected '$', got '*'`), so a client cannot make us recurse into
//! nested aggregates at all.
//!
//! The decoder is incremental: it remembers how far a partial request got,
//! so a large argument arriving in many reads is not re-scanned, and every
//! length is checked against [`DecodeLimits`] as soon as its header line is
//! complete (before any of its bytes are buffered).

use bytes::{Buf, Bytes, BytesMut};

/// Bounds on what one request may announce or contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest bulk string (one argument), bytes.
    pub max_bulk_bytes: usize,
    /// Most arguments in one request, the command name included.
    pub max_args: usize,
    /// Longest inline command line, bytes (without the line end).
    pub max_inline_bytes: usize,
    /// Largest whole request (all its arguments plus framing) while it is
    /// still incomplete: the bound on a connection's unparsed input.
    pub max_request_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_bulk_bytes: 64 * 1024, max_args: 1024, max_inline_bytes: 64 * 1024, max_request_bytes: 1024 * 1024 }
    }
}

/// Why a request could not be decoded. The connection answers
/// `-ERR Protocol error: <this>` and closes (Redis does the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("too many arguments: {count} (limit {limit})")]
    TooManyArgs { count: u64, limit: usize },
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("bulk length {len} over the limit {limit}")]
    BulkTooLarge { len: u64, limit: usize },
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("too big {0} count string")]
    CountLineTooLong(&'static str),
    #[error("expected CRLF after {0}")]
    ExpectedCrlf(&'static str),
    #[error("too big inline request")]
    InlineTooLarge,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("request over {0} bytes")]
    RequestTooLarge(usize),
}

/// Longest `*N` / `$N` header line we wait for (a 20-digit number plus sign).
const MAX_COUNT_LINE: usize = 24;

#[derive(Debug, Default)]
enum State {
    /// Between requests.
    #[default]
    Idle,
    /// Inside a multibulk: `remaining` bulks still to come, `bulk` = the
    /// length of the one whose header was read already.
    Multibulk { remaining: usize, bulk: Option<usize> },
    /// Inside an inline line: `scanned` bytes were searched for `\n` already.
    Inline { scanned: usize },
}

/// Incremental decoder of one connection's requests.
#[derive(Debug)]
pub struct Decoder {
    limits: DecodeLimits,
    state: State,
    args: Vec<Bytes>,
    /// Bytes of `args`.
    partial: usize,
}

impl Decoder {
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder { limits, state: State::Idle, args: Vec::new(), partial: 0 }
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// True when a request has started but is not complete yet.
    pub fn in_request(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Bytes of the current partial request already split off the input
    /// (its complete arguments); the rest of it is still in the buffer.
    pub fn partial_bytes(&self) -> usize {
        self.partial
    }

    /// Take the next complete request off the front of `buf`.
    ///
    /// `Ok(Some(args))`: a request with at least one argument (the command
    /// name first). `Ok(None)`: more input is needed (what was consumed so
    /// far is remembered). Empty requests (`*0`, `*-1`, a blank line) are
    /// skipped, as in Redis. After an error the decoder must not be used
    /// again: the connection closes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match self.state {
                State::Idle => {
                    let Some(&first) = buf.first() else { return Ok(None) };
                    if first != b'*' {
                        self.state = State::Inline { scanned: 0 };
                        continue;
                    }
                    let Some(n) = read_count_line(buf, "mbulk")? else { return Ok(None) };
                    if n <= 0 {
                        // `*0` and `*-1`: an empty request, ignored (as Redis); lower is garbage.
                        if n < -1 {
                            return Err(ProtocolError::InvalidMultibulkLength);
                        }
                        continue;
                    }
                    let count = n as u64;
                    if count > self.limits.max_args as u64 {
                        return Err(ProtocolError::TooManyArgs { count, limit: self.limits.max_args });
                    }
                    self.args = Vec::with_capacity(count as usize);
                    self.state = State::Multibulk { remaining: count as usize, bulk: None };
                }
                State::Multibulk { remaining, bulk } => {
                    let len = match bulk {
                        Some(len) => len,
                        None => {
                            let Some(&first) = buf.first() else { return Ok(None) };
                            if first != b'$' {
                                return Err(ProtocolError::ExpectedBulk(printable(first)));
                            }
                            let Some(n) = read_count_line(buf, "bulk")? else { return Ok(None) };
                            if n < 0 {
                                return Err(ProtocolError::InvalidBulkLength);
                            }
                            let len = n as u64;
                            if len > self.limits.max_bulk_bytes as u64 {
                                return Err(ProtocolError::BulkTooLarge { len, limit: self.limits.max_bulk_bytes });
                            }
                            let len = len as usize;
                            // The whole request so far, with this argument (framing counted as 16 bytes each).
                            if self.partial_bytes() + 16 * (self.args.len() + 1) + len > self.limits.max_request_bytes {
                                return Err(ProtocolError::RequestTooLarge(self.limits.max_request_bytes));
                            }
                            self.state = State::Multibulk { remaining, bulk: Some(len) };
                            len
                        }
                    };
                    if buf.len() < len + 2 {
                        // Room for the rest of this argument (bounded by max_bulk_bytes),
                        // so it arrives in as few reads as its size needs.
                        buf.reserve(len + 2 - buf.len());
                        return Ok(None);
                    }
                    if &buf[len..len + 2] != b"\r\n" {
                        return Err(ProtocolError::ExpectedCrlf("bulk data"));
                    }
                    let arg = buf.split_to(len).freeze();
                    buf.advance(2);
                    self.partial += arg.len();
                    self.args.push(arg);
                    if remaining == 1 {
                        self.state = State::Idle;
                        self.partial = 0;
                        return Ok(Some(std::mem::take(&mut self.args)));
                    }
                    self.state = State::Multibulk { remaining: remaining - 1, bulk: None };
                }
                State::Inline { scanned } => {
                    let Some(pos) = buf[scanned..].iter().position(|&b| b == b'\n').map(|p| p + scanned) else {
                        if buf.len() > self.limits.max_inline_bytes {
                            return Err(ProtocolError::InlineTooLarge);
                        }
                        self.state = State::Inline { scanned: buf.len() };
                        return Ok(None);
                    };
                    let line_end = if pos > 0 && buf[pos - 1] == b'\r' { pos - 1 } else { pos };
                    if line_end > self.limits.max_inline_bytes {
                        return Err(ProtocolError::InlineTooLarge);
                    }
                    let args = split_inline(&buf[..line_end], self.limits.max_args)?;
                    buf.advance(pos + 1);
                    self.state = State::Idle;
                    if !args.is_empty() {
                        return Ok(Some(args));
                    }
                }
            }
        }
    }
}

fn printable(b: u8) -> char {
    if b.is_ascii_graphic() || b == b' ' {
        b as char
    } else {
        '?'
    }
}

/// Read a `*N\r\n` or `$N\r\n` line (first byte already known) and consume it.
fn read_count_line(buf: &mut BytesMut, what: &'static str) -> Result<Option<i64>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_COUNT_LINE + 2)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if buf.len() > MAX_COUNT_LINE + 1 {
            return Err(ProtocolError::CountLineTooLong(what));
        }
        return Ok(None);
    };
    if buf.len() < cr + 2 {
        return Ok(None);
    }
    if buf[cr + 1] != b'\n' {
        return Err(ProtocolError::ExpectedCrlf("a length"));
    }
    let n = parse_i64(&buf[1..cr]).ok_or(if what == "bulk" {
        ProtocolError::InvalidBulkLength
    } else {
        ProtocolError::InvalidMultibulkLength
    })?;
    buf.advance(cr + 2);
    Ok(Some(n))
}

/// Strict decimal: optional `-`, then 1..=19 digits, nothing else.
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Split an inline line into arguments the way Redis does (`sdssplitargs`):
/// whitespace separates, `"..."` allows `\n \r \t \b \a \\ \" \xHH`, `'...'`
/// allows `\'`; a closing quote must be followed by whitespace or the end.
pub fn split_inline(line: &[u8], max_args: usize) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut p = 0;
    let n = line.len();
    loop {
        while p < n && is_space(line[p]) {
            p += 1;
        }
        if p >= n {
            return Ok(args);
        }
        if args.len() >= max_args {
            return Err(ProtocolError::TooManyArgs { count: args.len() as u64 + 1, limit: max_args });
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                if p >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[p];
                if c == b'\\' && p + 3 < n && line[p + 1] == b'x' && hex_val(line[p + 2]).is_some() && hex_val(line[p + 3]).is_some() {
                    let hi = hex_val(line[p + 2]).unwrap_or(0);
                    let lo = hex_val(line[p + 3]).unwrap_or(0);
                    cur.push(hi * 16 + lo);
                    p += 4;
                } else if c == b'\\' && p + 1 < n {
                    cur.push(match line[p + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                } else if c == b'"' {
                    if p + 1 < n && !is_space(line[p + 1]) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else {
                    cur.push(c);
                    p += 1;
                }
            } else if in_sq {
                if p >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[p];
                if c == b'\\' && p + 1 < n && line[p + 1] == b'\'' {
                    cur.push(b'\'');
                    p += 2;
                } else if c == b'\'' {
                    if p + 1 < n && !is_space(line[p + 1]) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                } else {
                    cur.push(c);
                    p += 1;
                }
            } else {
                if p >= n {
                    break;
                }
                match line[p] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        p += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
                p += 1;
            }
        }
        args.push(Bytes::from(cur));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Result<(), ProtocolError>, usize) {
        let mut d = Decoder::new(DecodeLimits::default());
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match d.decode(&mut buf) {
                Ok(Some(args)) => out.push(args.iter().map(|a| a.to_vec()).collect()),
                Ok(None) => return (out, Ok(()), buf.len()),
                Err(e) => return (out, Err(e), buf.len()),
            }
        }
    }

    #[test]
    fn multibulk_and_pipelining() {
        let (cmds, r, left) = dec(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$5\r\nhe\r\nl\r\n*2\r\n$3\r\nGET");
        assert_eq!(r, Ok(()));
        assert_eq!(cmds, vec![vec![b"PING".to_vec()], vec![b"ECHO".to_vec(), b"he\r\nl".to_vec()]]);
        assert_eq!(left, 3, "the partial bulk stays buffered (headers consumed)");
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nPING x \"a b\"\r\n*0\r\n*-1\r\n\r\n*1\r\n$4\r\nPING\r\n";
        let (whole, r, _) = dec(input);
        assert_eq!(r, Ok(()));
        let mut d = Decoder::new(DecodeLimits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(args) = d.decode(&mut buf).unwrap() {
                got.push(args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
            }
        }
        assert_eq!(got, whole);
        assert_eq!(whole.len(), 3);
    }

    #[test]
    fn errors() {
        assert_eq!(dec(b"*1\r\n$-1\r\n").1, Err(ProtocolError::InvalidBulkLength));
        assert_eq!(dec(b"*-2\r\n").1, Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(dec(b"*x\r\n").1, Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(dec(b"*1\r\n$99999999999\r\n").1, Err(ProtocolError::BulkTooLarge { len: 99999999999, limit: 65536 }));
        assert_eq!(dec(b"*100000\r\n").1, Err(ProtocolError::TooManyArgs { count: 100000, limit: 1024 }));
        assert_eq!(dec(b"*1\r\n*1\r\n").1, Err(ProtocolError::ExpectedBulk('*')));
        assert_eq!(dec(b"*1\r\n%1\r\n").1, Err(ProtocolError::ExpectedBulk('%')));
        assert_eq!(dec(b"*1\r\n$4\r\nPINGxx").1, Err(ProtocolError::ExpectedCrlf("bulk data")));
        assert_eq!(dec(b"*11111111111111111111111111111").1, Err(ProtocolError::CountLineTooLong("mbulk")));
        assert_eq!(dec(b"*1\r\n$+4\r\n").1, Err(ProtocolError::InvalidBulkLength));
        assert_eq!(dec(b"*99999999999999999999\r\n").1, Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(dec(b"SET \"a\"b\r\n").1, Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(dec(b"SET \"ab\r\n").1, Err(ProtocolError::UnbalancedQuotes));
        let long = vec![b'a'; 70 * 1024];
        assert_eq!(dec(&long).1, Err(ProtocolError::InlineTooLarge));
    }

    #[test]
    fn commands_before_an_error_are_returned() {
        let (cmds, r, _) = dec(b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n:1\r\n");
        assert_eq!(cmds.len(), 2);
        assert_eq!(r, Err(ProtocolError::ExpectedBulk(':')));
    }

    #[test]
    fn inline_quoting() {
        let args = split_inline(br#"set "a\x41\n" 'it\'s' plain  "" "#, 100).unwrap();
        assert_eq!(args, vec![Bytes::from("set"), Bytes::from("aA\n"), Bytes::from("it's"), Bytes::from("plain"), Bytes::from("")]);
        assert!(split_inline(b"   ", 10).unwrap().is_empty());
        assert!(matches!(split_inline(b"a b c", 2), Err(ProtocolError::TooManyArgs { .. })));
    }

    #[test]
    fn binary_safe_bulk() {
        let mut input = b"*2\r\n$4\r\nECHO\r\n$4\r\n".to_vec();
        input.extend_from_slice(&[0, b'\r', b'\n', 0xff]);
        input.extend_from_slice(b"\r\n");
        let (cmds, r, _) = dec(&input);
        assert_eq!(r, Ok(()));
        assert_eq!(cmds[0][1], vec![0, b'\r', b'\n', 0xff]);
    }
}
