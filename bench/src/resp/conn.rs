//! One RESP connection of a lane: connect + setup (`HELLO 3`, `AUTH`),
//! pipelined writes from a caller-owned buffer, replies scanned in place in
//! a read buffer owned by the connection (no copy of a bulk reply).

use std::net::SocketAddr;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::codec::{self, ProtocolError, ReplyKind, Value};

/// Read buffer; grows for a reply larger than this, then shrinks back.
const READ_BUF_BYTES: usize = 64 * 1024;
/// Largest reply accepted (a bulk at the codec's limit plus its header).
const MAX_REPLY_BYTES: usize = codec::MAX_BULK_BYTES + 64;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("i/o: {0}")]
    Io(std::io::Error),
    #[error("connection closed before the reply was complete")]
    Closed,
    #[error("malformed reply: {0}")]
    Protocol(#[from] ProtocolError),
    /// `HELLO 3` or `AUTH` was answered with this error text.
    #[error("connection setup refused: {}", String::from_utf8_lossy(.0))]
    Setup(Vec<u8>),
}

/// One reply as the lane counts it (the error text copied: errors are rare).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Value,
    Null,
    Error(Vec<u8>),
}

pub struct RespConn {
    stream: TcpStream,
    pub addr: SocketAddr,
    /// Received bytes; `rbuf[pos..]` is not consumed yet.
    rbuf: Vec<u8>,
    pos: usize,
}

impl RespConn {
    /// Connects and sets the connection up: `HELLO 3` when `resp3`, then
    /// `AUTH token` when a token is given (pipelined, one round trip).
    pub async fn open(addr: SocketAddr, resp3: bool, token: Option<&str>) -> Result<RespConn, ConnError> {
        let stream = TcpStream::connect_addr(addr).await.map_err(ConnError::Connect)?;
        stream.set_nodelay(true).map_err(ConnError::Connect)?;
        let mut conn = RespConn { stream, addr, rbuf: Vec::with_capacity(READ_BUF_BYTES), pos: 0 };
        let mut setup = Vec::new();
        if resp3 {
            codec::push_command(&mut setup, &[b"HELLO", b"3"], 0);
        }
        if let Some(t) = token {
            codec::push_command(&mut setup, &[b"AUTH", t.as_bytes()], 0);
        }
        let n = resp3 as usize + token.is_some() as usize;
        if n > 0 {
            conn.write(setup).await.1?;
            let mut refused = None;
            for _ in 0..n {
                if let (Reply::Error(text), _) = conn.next_reply().await? {
                    refused.get_or_insert(text);
                }
            }
            if let Some(text) = refused {
                return Err(ConnError::Setup(text));
            }
        }
        Ok(conn)
    }

    /// Writes `buf` whole; the buffer comes back for reuse whatever happens.
    pub async fn write(&mut self, buf: Vec<u8>) -> (Vec<u8>, Result<(), ConnError>) {
        let (res, buf) = self.stream.write_all(buf).await;
        (buf, res.map(|_| ()).map_err(ConnError::Io))
    }

    /// Reads the next reply (RESP3 pushes are skipped): what it is, and its
    /// size on the wire.
    pub async fn next_reply(&mut self) -> Result<(Reply, u64), ConnError> {
        loop {
            match codec::scan(&self.rbuf[self.pos..])? {
                Some(s) if s.kind == ReplyKind::Push => self.pos += s.len,
                Some(s) => {
                    let at = self.pos;
                    self.pos += s.len;
                    let reply = match s.kind {
                        ReplyKind::Value | ReplyKind::Push => Reply::Value,
                        ReplyKind::Null => Reply::Null,
                        ReplyKind::Error(r) => Reply::Error(self.rbuf[at + r.start..at + r.end].to_vec()),
                    };
                    return Ok((reply, s.len as u64));
                }
                None => {
                    if self.fill().await? == 0 {
                        return Err(ConnError::Closed);
                    }
                }
            }
        }
    }

    /// Sends one command and decodes its whole reply (`CLUSTER SLOTS`).
    pub async fn query(&mut self, args: &[&[u8]]) -> Result<Value, ConnError> {
        let mut out = Vec::new();
        codec::push_command(&mut out, args, 0);
        self.write(out).await.1?;
        loop {
            if let Some((v, n)) = codec::decode(&self.rbuf[self.pos..])? {
                self.pos += n;
                return Ok(v);
            }
            if self.fill().await? == 0 {
                return Err(ConnError::Closed);
            }
        }
    }

    /// Reads more bytes after `rbuf.len()`; `Ok(0)` means the peer closed.
    async fn fill(&mut self) -> Result<usize, ConnError> {
        if self.pos > self.rbuf.len() {
            // A read was cancelled (timeout) and took the buffer with it:
            // this connection's stream position is lost.
            return Err(ConnError::Closed);
        }
        if self.pos == self.rbuf.len() {
            self.rbuf.clear();
            self.pos = 0;
            if self.rbuf.capacity() > 4 * READ_BUF_BYTES {
                self.rbuf = Vec::with_capacity(READ_BUF_BYTES);
            }
        } else if self.pos > 0 && self.rbuf.capacity() - self.rbuf.len() < 4096 {
            // Compact: move the unconsumed tail to the front.
            self.rbuf.copy_within(self.pos.., 0);
            self.rbuf.truncate(self.rbuf.len() - self.pos);
            self.pos = 0;
        }
        if self.rbuf.len() - self.pos >= MAX_REPLY_BYTES {
            return Err(ConnError::Protocol(ProtocolError::TooLarge));
        }
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            // A reply larger than the buffer: grow (bounded by MAX_REPLY_BYTES above).
            self.rbuf.reserve(self.rbuf.capacity().max(READ_BUF_BYTES));
        }
        let buf = std::mem::take(&mut self.rbuf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.rbuf = slice.into_inner();
        res.map_err(ConnError::Io)
    }
}
