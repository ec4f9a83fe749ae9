//! Incremental decoder for `Transfer-Encoding: chunked` bodies (RFC 9112
//! §7.1), shared by the server (request bodies) and the client (responses).
//! Bounded: the decoded body, a size line and the trailer section each have
//! a limit, so a hostile peer cannot make it buffer without end.

use bytes::{Buf, BytesMut};

/// Longest accepted chunk-size line (size + extensions).
const MAX_SIZE_LINE: usize = 1024;
/// Longest accepted trailer section.
const MAX_TRAILERS: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("malformed chunked encoding")]
    Malformed,
    #[error("chunked body larger than the limit")]
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting `<hex>[;ext]\r\n`.
    Size,
    /// Inside a chunk: this many data bytes left.
    Data(usize),
    /// After chunk data: expecting `\r\n`.
    DataEnd,
    /// After the last (zero) chunk: trailer lines until an empty line.
    Trailers {
        seen: usize,
    },
    Done,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    body: BytesMut,
    max_body: usize,
}

impl ChunkedDecoder {
    pub fn new(max_body: usize) -> Self {
        ChunkedDecoder { state: State::Size, body: BytesMut::new(), max_body }
    }

    /// Consume as much of `input` as possible (consumed bytes are removed).
    /// Returns `Ok(true)` once the terminating chunk and trailers are read;
    /// bytes after that stay in `input` (the next pipelined message).
    ///
    /// Strict RFC 9112 7.1 syntax: every line ends in CRLF (a bare LF or CR
    /// is an error as soon as it is seen, not a wait for more input), the
    /// size is `1*HEXDIG` with nothing before it, extensions follow `;`, and
    /// trailer lines are `name: value` field lines.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<bool, ChunkedError> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::Size => {
                    // Fail fast on a size line that cannot become valid.
                    if input.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                        return Err(ChunkedError::Malformed);
                    }
                    let Some(line_len) = take_line(input, MAX_SIZE_LINE)? else {
                        return Ok(false);
                    };
                    let size = parse_size_line(&input[..line_len])?;
                    input.advance(line_len + 2);
                    if size == 0 {
                        self.state = State::Trailers { seen: 0 };
                    } else {
                        if self.body.len() as u64 + size > self.max_body as u64 {
                            return Err(ChunkedError::TooLarge);
                        }
                        self.body.reserve(size as usize);
                        self.state = State::Data(size as usize);
                    }
                }
                State::Data(left) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let n = left.min(input.len());
                    self.body.extend_from_slice(&input[..n]);
                    input.advance(n);
                    self.state = if n == left { State::DataEnd } else { State::Data(left - n) };
                }
                State::DataEnd => {
                    match input.first() {
                        None => return Ok(false),
                        Some(b'\r') => {}
                        Some(_) => return Err(ChunkedError::Malformed),
                    }
                    match input.get(1) {
                        None => return Ok(false),
                        Some(b'\n') => {}
                        Some(_) => return Err(ChunkedError::Malformed),
                    }
                    input.advance(2);
                    self.state = State::Size;
                }
                State::Trailers { seen } => {
                    let Some(line_len) = take_line(input, MAX_TRAILERS - seen)? else {
                        return Ok(false);
                    };
                    if line_len == 0 {
                        input.advance(2);
                        self.state = State::Done;
                    } else {
                        if !is_field_line(&input[..line_len]) {
                            return Err(ChunkedError::Malformed);
                        }
                        input.advance(line_len + 2);
                        self.state = State::Trailers { seen: seen + line_len + 2 };
                    }
                }
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub fn into_body(self) -> bytes::Bytes {
        self.body.freeze()
    }
}

/// Length of the CRLF-terminated line at the start of `b` (without the
/// CRLF), `Ok(None)` while it is incomplete. A bare LF or a CR not followed
/// by LF is an error at once; so is a line (with its CRLF) over `max`.
fn take_line(b: &[u8], max: usize) -> Result<Option<usize>, ChunkedError> {
    match b.iter().position(|&c| c == b'\n' || c == b'\r') {
        Some(i) if b[i] == b'\n' => Err(ChunkedError::Malformed),
        Some(i) => match b.get(i + 1) {
            Some(b'\n') if i + 2 <= max => Ok(Some(i)),
            Some(b'\n') => Err(ChunkedError::Malformed),
            Some(_) => Err(ChunkedError::Malformed),
            None if i + 2 > max => Err(ChunkedError::Malformed),
            None => Ok(None),
        },
        None if b.len() + 2 > max => Err(ChunkedError::Malformed),
        None => Ok(None),
    }
}

/// `chunk-size [ BWS chunk-ext ]` (RFC 9112 7.1.1), CRLF already removed:
/// 1 to 16 hex digits first, then optional whitespace, then nothing or
/// `;` extensions (ignored, but free of control characters).
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(ChunkedError::Malformed);
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).ok_or(ChunkedError::Malformed)?;
        size = (size << 4) | u64::from(d);
    }
    let rest = trim_leading_ws(&line[digits..]);
    match rest.first() {
        None => Ok(size),
        Some(b';') if rest.iter().all(|&b| b == b'\t' || (b' '..0x7f).contains(&b) || b >= 0x80) => Ok(size),
        Some(_) => Err(ChunkedError::Malformed),
    }
}

/// `field-name ":" OWS field-value OWS` (RFC 9112 5): a token, a colon, then
/// visible characters, spaces and tabs. A leading space (obsolete line
/// folding) or a missing colon is an error.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty()
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && value.iter().all(|&b| b == b'\t' || (b' '..0x7f).contains(&b) || b >= 0x80)
}

fn trim_leading_ws(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(parts: &[&[u8]], max: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkedError> {
        let mut d = ChunkedDecoder::new(max);
        let mut input = BytesMut::new();
        for p in parts {
            input.extend_from_slice(p);
            if d.decode(&mut input)? {
                break;
            }
        }
        assert!(d.is_done(), "decoder did not finish");
        Ok((d.into_body().to_vec(), input.to_vec()))
    }

    #[test]
    fn decodes_split_anywhere() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..wire.len() - 4 {
            let (body, rest) = decode_all(&[&wire[..split], &wire[split..]], 100).unwrap();
            assert_eq!(body, b"hello world");
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn rejects_bad_input() {
        let mut d = ChunkedDecoder::new(100);
        assert_eq!(d.decode(&mut BytesMut::from(&b"zz\r\n"[..])), Err(ChunkedError::Malformed));
        let mut d = ChunkedDecoder::new(100);
        assert_eq!(d.decode(&mut BytesMut::from(&b"3\r\nabcXY"[..])), Err(ChunkedError::Malformed));
        let mut d = ChunkedDecoder::new(4);
        assert_eq!(d.decode(&mut BytesMut::from(&b"5\r\n"[..])), Err(ChunkedError::TooLarge));
        let mut d = ChunkedDecoder::new(100);
        assert_eq!(d.decode(&mut BytesMut::from(&b"fffffffffffffffff\r\n"[..])), Err(ChunkedError::Malformed));
        let mut d = ChunkedDecoder::new(100);
        let long = vec![b'1'; MAX_SIZE_LINE + 10];
        assert_eq!(d.decode(&mut BytesMut::from(&long[..])), Err(ChunkedError::Malformed));
    }

    /// Feeds `wire` split at every point; the answer once all of it is in.
    fn outcome_at_every_split(wire: &[u8]) -> Vec<Result<bool, ChunkedError>> {
        (0..=wire.len())
            .map(|split| {
                let mut d = ChunkedDecoder::new(100);
                let mut input = BytesMut::from(&wire[..split]);
                match d.decode(&mut input) {
                    Ok(false) => {
                        input.extend_from_slice(&wire[split..]);
                        d.decode(&mut input)
                    }
                    other => other,
                }
            })
            .collect()
    }

    #[test]
    fn strict_syntax_fails_at_once_wherever_the_input_is_cut() {
        let bad: [&[u8]; 14] = [
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"\t5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5\r\nhello\r\n0\r\nX: 1\n\r\n",
            b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
            b"5\r\nhello\r\n0\r\n Folded: x\r\n\r\n",
            b"5\r\nhello\r\n0\r\n: v\r\n\r\n",
            b"5\rx\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"5;a\x01\r\nhello\r\n0\r\n\r\n",
        ];
        for wire in bad {
            for (split, r) in outcome_at_every_split(wire).into_iter().enumerate() {
                assert_eq!(r, Err(ChunkedError::Malformed), "{:?} split at {split}", String::from_utf8_lossy(wire));
            }
        }
        let good: [&[u8]; 4] = [
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5 ;ext\r\nhello\r\n0;e=\"q s\"\r\n\r\n",
            b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-E:\r\n\r\n",
            b"0005\t\r\nhello\r\n0\r\n\r\n",
        ];
        for wire in good {
            assert!(outcome_at_every_split(wire).iter().all(|r| *r == Ok(true)), "{:?}", String::from_utf8_lossy(wire));
        }
    }

    proptest::proptest! {
        /// A valid encoding with any one of its line ends reduced to a bare
        /// LF is rejected once it is all in (never a wait for more input).
        #[test]
        fn any_bare_lf_is_malformed(
            body in "[a-z]{0,60}",
            chunk in 1usize..20,
            trailers in proptest::collection::vec("[A-Za-z-]{1,6}: [ -~]{0,8}", 0..3),
            pick in proptest::num::usize::ANY,
        ) {
            let mut wire = Vec::new();
            for c in body.as_bytes().chunks(chunk) {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n");
            for t in &trailers {
                wire.extend_from_slice(t.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"\r\n");
            let mut d = ChunkedDecoder::new(100);
            proptest::prop_assert_eq!(d.decode(&mut BytesMut::from(&wire[..])), Ok(true));
            proptest::prop_assert_eq!(d.into_body().to_vec(), body.as_bytes());
            let crs: Vec<usize> = wire.iter().enumerate().filter(|(_, b)| **b == b'\r').map(|(i, _)| i).collect();
            wire.remove(crs[pick % crs.len()]);
            let mut d = ChunkedDecoder::new(100);
            proptest::prop_assert_eq!(d.decode(&mut BytesMut::from(&wire[..])), Err(ChunkedError::Malformed));
        }

        /// Junk never panics the decoder and never yields more than the limit.
        #[test]
        fn never_panics_on_junk(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..400), split in 0usize..400) {
            let mut d = ChunkedDecoder::new(64);
            let split = split.min(raw.len());
            let mut input = BytesMut::from(&raw[..split]);
            let mut result = d.decode(&mut input);
            if result == Ok(false) {
                input.extend_from_slice(&raw[split..]);
                result = d.decode(&mut input);
            }
            if result == Ok(true) {
                proptest::prop_assert!(d.into_body().len() <= 64);
            }
        }

        /// Any body encoded with any chunk sizes decodes back to itself.
        #[test]
        fn round_trip(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300), chunk in 1usize..50) {
            let mut wire = Vec::new();
            for c in body.chunks(chunk) {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let mut d = ChunkedDecoder::new(300);
            proptest::prop_assert_eq!(d.decode(&mut BytesMut::from(&wire[..])), Ok(true));
            proptest::prop_assert_eq!(d.into_body().to_vec(), body);
        }
    }
}
