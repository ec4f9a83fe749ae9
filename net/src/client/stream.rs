//! One client connection: plain TCP or TLS behind one small enum, so the
//! request code is written once.

use bytes::BytesMut;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::ClientTlsStream;
use std::io;

pub(crate) struct Conn {
    io: Io,
    /// Served a response before (taken from the pool): a failure before any
    /// response byte means the server closed it while idle.
    reused: bool,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl Conn {
    #[allow(non_snake_case)]
    pub(crate) fn Plain(s: TcpStream) -> Conn {
        Conn { io: Io::Plain(s), reused: false }
    }

    #[allow(non_snake_case)]
    pub(crate) fn Tls(s: Box<ClientTlsStream<TcpStream>>) -> Conn {
        Conn { io: Io::Tls(s), reused: false }
    }

    pub(crate) fn is_reused(&self) -> bool {
        self.reused
    }

    pub(crate) fn mark_reused(&mut self) {
        self.reused = true;
    }

    pub(crate) async fn write_all(&mut self, data: Vec<u8>) -> io::Result<()> {
        let (res, _) = match &mut self.io {
            Io::Plain(s) => s.write_all(data).await,
            Io::Tls(s) => s.write_all(data).await,
        };
        res.map(|_| ())
    }

    /// Append up to `want` bytes to `buf`. `Ok(0)` = peer closed.
    pub(crate) async fn read_into(&mut self, buf: &mut BytesMut, want: usize) -> io::Result<usize> {
        buf.reserve(want);
        let owned = std::mem::take(buf);
        let (len, cap) = (owned.len(), owned.capacity());
        let slice = owned.slice_mut(len..cap);
        let (res, slice) = match &mut self.io {
            Io::Plain(s) => s.read(slice).await,
            Io::Tls(s) => s.read(slice).await,
        };
        *buf = slice.into_inner();
        res
    }
}
