//! Peer frames: length-prefixed, versioned, bounded.
//!
//! ```text
//! u32 len      bytes after this field (header rest + body), little-endian
//! u8  version  VERSION (a peer speaking another version is refused)
//! u8  kind     1..=63 Raft messages (replication's MsgKind), or a KIND_* below
//! u64 request  request id: a reply carries its request's id
//! u32 group    Raft group (partition); 0 when not about a group
//! ...          body (len - 14 bytes)
//! ```
//! Decoding never panics, never reads past the input and refuses a frame
//! longer than the connection's maximum before buffering it.

use bytes::{Buf, Bytes, BytesMut};

/// Protocol version carried by every frame.
pub const VERSION: u8 = 1;
/// Bytes before the body (including the length field).
pub const HEADER_LEN: usize = 18;
/// Default largest frame (a snapshot chunk is 1 MiB; an append batch is
/// bounded by the log's read cap, 4 MiB).
pub const DEFAULT_MAX_FRAME: usize = 8 << 20;

/// First frame of a connection: who is calling, and which core it wants.
pub const KIND_HELLO: u8 = 0x40;
/// Successful answer to a request (body = the answer).
pub const KIND_REPLY: u8 = 0x41;
/// Failed request (body = UTF-8 error text).
pub const KIND_ERROR: u8 = 0x42;
/// A client request forwarded to the key's owner ([`Forward`]).
pub const KIND_FORWARD: u8 = 0x43;
/// The owner's answer to a forward (body opaque to the peer layer).
pub const KIND_FORWARD_REPLY: u8 = 0x44;
/// The hello exchange: the body is the caller's node card, the reply the
/// callee's (both opaque here; `replication::NodeCard`).
pub const KIND_INFO: u8 = 0x45;

/// Longest `traceparent` carried by a forward (W3C: 55 chars; room to spare).
pub const MAX_TRACEPARENT: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub request_id: u64,
    pub group: u32,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame length {0} shorter than its header")]
    TooShort(usize),
    #[error("peer speaks protocol version {0}, we speak {VERSION}")]
    Version(u8),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

impl Frame {
    pub fn new(kind: u8, request_id: u64, group: u32, body: Bytes) -> Frame {
        Frame { kind, request_id, group, body }
    }

    /// Append the encoded frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let len = (HEADER_LEN - 4 + self.body.len()) as u32;
        out.reserve(HEADER_LEN + self.body.len());
        out.extend_from_slice(&len.to_le_bytes());
        out.push(VERSION);
        out.push(self.kind);
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.extend_from_slice(&self.group.to_le_bytes());
        out.extend_from_slice(&self.body);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }
}

/// Decode one frame from the front of `buf`: `Ok(None)` if more bytes are
/// needed, else the frame and how many bytes it took.
pub fn decode_frame(buf: &[u8], max_frame: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len < HEADER_LEN - 4 {
        return Err(FrameError::TooShort(len));
    }
    if len + 4 > max_frame {
        return Err(FrameError::TooLarge { len: len + 4, max: max_frame });
    }
    // The whole frame first: the version byte is only there once it arrived.
    if buf.len() < len + 4 {
        return Ok(None);
    }
    if buf[4] != VERSION {
        return Err(FrameError::Version(buf[4]));
    }
    let kind = buf[5];
    let request_id = u64::from_le_bytes(buf[6..14].try_into().expect("8 bytes"));
    let group = u32::from_le_bytes(buf[14..18].try_into().expect("4 bytes"));
    let body = Bytes::copy_from_slice(&buf[HEADER_LEN..len + 4]);
    Ok(Some((Frame { kind, request_id, group, body }, len + 4)))
}

/// Incremental decoder for a byte stream.
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder { buf: BytesMut::with_capacity(64 << 10), max_frame }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match decode_frame(&self.buf, self.max_frame)? {
            None => Ok(None),
            Some((f, used)) => {
                self.buf.advance(used);
                Ok(Some(f))
            }
        }
    }

    /// Bytes received but not yet decoded.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

/// Body of [`KIND_HELLO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub node: u64,
    pub core: u16,
    /// The core of the receiving node this connection is for.
    pub target_core: u16,
}

impl Hello {
    pub fn encode(&self) -> Bytes {
        let mut v = Vec::with_capacity(12);
        v.extend_from_slice(&self.node.to_le_bytes());
        v.extend_from_slice(&self.core.to_le_bytes());
        v.extend_from_slice(&self.target_core.to_le_bytes());
        Bytes::from(v)
    }

    pub fn decode(b: &[u8]) -> Result<Hello, FrameError> {
        if b.len() != 12 {
            return Err(FrameError::Malformed("hello"));
        }
        Ok(Hello {
            node: u64::from_le_bytes(b[0..8].try_into().expect("8")),
            core: u16::from_le_bytes([b[8], b[9]]),
            target_core: u16::from_le_bytes([b[10], b[11]]),
        })
    }
}

/// Body of [`KIND_FORWARD`]: a client request for another node's key, with
/// the W3C `traceparent` of the request (empty when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub traceparent: String,
    pub request: Bytes,
}

impl Forward {
    pub fn encode(&self) -> Bytes {
        let tp = self.traceparent.as_bytes();
        let mut v = Vec::with_capacity(2 + tp.len() + self.request.len());
        v.extend_from_slice(&(tp.len() as u16).to_le_bytes());
        v.extend_from_slice(tp);
        v.extend_from_slice(&self.request);
        Bytes::from(v)
    }

    pub fn decode(b: &Bytes) -> Result<Forward, FrameError> {
        if b.len() < 2 {
            return Err(FrameError::Malformed("forward"));
        }
        let n = u16::from_le_bytes([b[0], b[1]]) as usize;
        if n > MAX_TRACEPARENT || b.len() < 2 + n {
            return Err(FrameError::Malformed("forward traceparent"));
        }
        let traceparent = std::str::from_utf8(&b[2..2 + n]).map_err(|_| FrameError::Malformed("forward traceparent"))?;
        if traceparent.bytes().any(|c| !c.is_ascii_graphic()) {
            return Err(FrameError::Malformed("forward traceparent"));
        }
        Ok(Forward { traceparent: traceparent.to_string(), request: b.slice(2 + n..) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_any_split() {
        let frames = vec![
            Frame::new(1, 7, 3, Bytes::from_static(b"append")),
            Frame::new(KIND_REPLY, 7, 3, Bytes::new()),
            Frame::new(
                KIND_FORWARD,
                u64::MAX,
                u32::MAX,
                Forward { traceparent: "00-abc-def-01".into(), request: Bytes::from_static(b"GET /") }.encode(),
            ),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            f.encode_into(&mut wire);
        }
        for step in [1, 2, 5, 17, wire.len()] {
            let mut d = FrameDecoder::new(DEFAULT_MAX_FRAME);
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "step {step}");
            assert!(d.pending().is_empty());
        }
        let fwd = Forward::decode(&frames[2].body).unwrap();
        assert_eq!(fwd.traceparent, "00-abc-def-01");
        assert_eq!(&fwd.request[..], b"GET /");
        let h = Hello { node: 9, core: 1, target_core: 0 };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        let mut big = Vec::new();
        Frame::new(1, 1, 1, Bytes::from(vec![0u8; 100])).encode_into(&mut big);
        // refused from the length alone, before the body arrived
        assert!(matches!(decode_frame(&big[..8], 64), Err(FrameError::TooLarge { .. })));
        let mut v = big.clone();
        v[4] = 9;
        assert_eq!(decode_frame(&v, DEFAULT_MAX_FRAME), Err(FrameError::Version(9)));
        assert_eq!(decode_frame(&[3, 0, 0, 0, 1, 1, 1], DEFAULT_MAX_FRAME), Err(FrameError::TooShort(3)));
        assert_eq!(decode_frame(&big[..10], DEFAULT_MAX_FRAME), Ok(None));
        assert!(Hello::decode(&[1, 2, 3]).is_err());
        assert!(Forward::decode(&Bytes::from_static(&[200, 0, b'a'])).is_err());
        assert!(Forward::decode(&Bytes::from_static(&[1, 0, b'\n'])).is_err());
    }
}
