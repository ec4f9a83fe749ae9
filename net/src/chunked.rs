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
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<bool, ChunkedError> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::Size => {
                    let Some(eol) = find_crlf(input) else {
                        if input.len() > MAX_SIZE_LINE {
                            return Err(ChunkedError::Malformed);
                        }
                        return Ok(false);
                    };
                    if eol > MAX_SIZE_LINE {
                        return Err(ChunkedError::Malformed);
                    }
                    let line = &input[..eol];
                    let hex_end = line.iter().position(|b| *b == b';').unwrap_or(line.len());
                    let hex = trim_spaces(&line[..hex_end]);
                    if hex.is_empty() || hex.len() > 16 {
                        return Err(ChunkedError::Malformed);
                    }
                    let mut size: u64 = 0;
                    for &b in hex {
                        let d = (b as char).to_digit(16).ok_or(ChunkedError::Malformed)?;
                        size = size.checked_mul(16).and_then(|s| s.checked_add(d as u64)).ok_or(ChunkedError::Malformed)?;
                    }
                    input.advance(eol + 2);
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
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    if &input[..2] != b"\r\n" {
                        return Err(ChunkedError::Malformed);
                    }
                    input.advance(2);
                    self.state = State::Size;
                }
                State::Trailers { seen } => {
                    let Some(eol) = find_crlf(input) else {
                        if seen + input.len() > MAX_TRAILERS {
                            return Err(ChunkedError::Malformed);
                        }
                        return Ok(false);
                    };
                    input.advance(eol + 2);
                    if eol == 0 {
                        self.state = State::Done;
                    } else {
                        let seen = seen + eol + 2;
                        if seen > MAX_TRAILERS {
                            return Err(ChunkedError::Malformed);
                        }
                        self.state = State::Trailers { seen };
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

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
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

    proptest::proptest! {
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
