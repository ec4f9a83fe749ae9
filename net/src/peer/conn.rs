//! Peer connections over monoio TCP: a multiplexed client (many requests in
//! flight on one connection, answered in any order by request id) and the
//! serving side (each request handled in its own task, at most
//! `max_in_flight` per connection: beyond that the connection stops reading,
//! so TCP pushes back on the sender).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::future::LocalBoxFuture;
use futures::StreamExt;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};

use super::frame::{Frame, FrameDecoder, FrameError, Hello, KIND_ERROR, KIND_HELLO};

/// Bounds of one peer connection.
#[derive(Debug, Clone)]
pub struct PeerLimits {
    pub max_frame: usize,
    /// Requests outstanding on one connection (client: refused beyond;
    /// server: stops reading beyond).
    pub max_in_flight: usize,
    pub connect_timeout: Duration,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits { max_frame: super::frame::DEFAULT_MAX_FRAME, max_in_flight: 1024, connect_timeout: Duration::from_millis(500) }
    }
}

/// Test-only drop switch: while set, outgoing requests fail at once and
/// incoming requests are dropped unanswered (the node is cut off).
#[derive(Debug, Clone, Default)]
pub struct DropSwitch(Arc<AtomicBool>);

impl DropSwitch {
    pub fn new() -> DropSwitch {
        DropSwitch::default()
    }
    pub fn set(&self, cut: bool) {
        self.0.store(cut, Ordering::SeqCst);
    }
    pub fn is_cut(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("connect to {0}: {1}")]
    Connect(String, String),
    #[error("connection closed")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0} requests already in flight on this connection")]
    Busy(usize),
    #[error("cut off (drop switch)")]
    Cut,
    #[error("peer refused: {0}")]
    Remote(String),
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
}

type Pending = Rc<RefCell<HashMap<u64, oneshot::Sender<Frame>>>>;

/// One multiplexed connection to a peer core. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next_id: Rc<Cell<u64>>,
    alive: Rc<Cell<bool>>,
    limits: Rc<PeerLimits>,
    switch: DropSwitch,
}

impl PeerClient {
    /// Connect, send the hello, and start the connection's reader and writer tasks.
    pub async fn connect(addr: SocketAddr, hello: Hello, limits: PeerLimits, switch: DropSwitch) -> Result<PeerClient, PeerError> {
        if switch.is_cut() {
            return Err(PeerError::Cut);
        }
        let stream = match monoio::time::timeout(limits.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(PeerError::Connect(addr.to_string(), e.to_string())),
            Err(_) => return Err(PeerError::Connect(addr.to_string(), "timed out".into())),
        };
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (out, mut rx) = mpsc::unbounded::<Vec<u8>>();
        let pending: Pending = Rc::new(RefCell::new(HashMap::new()));
        let alive = Rc::new(Cell::new(true));
        out.unbounded_send(Frame::new(KIND_HELLO, 0, 0, hello.encode()).encode()).map_err(|_| PeerError::Closed)?;

        // writer: coalesce queued frames into one write
        let alive_w = alive.clone();
        monoio::spawn(async move {
            while let Some(first) = rx.next().await {
                let mut buf = first;
                while buf.len() < (1 << 20) {
                    match rx.try_recv() {
                        Ok(more) => buf.extend_from_slice(&more),
                        _ => break,
                    }
                }
                let (res, _) = wr.write_all(buf).await;
                if let Err(e) = res {
                    tracing::debug!(error = %e, "peer client: write failed");
                    break;
                }
            }
            alive_w.set(false);
        });

        // reader: dispatch answers by request id
        let (pending_r, alive_r, max_frame) = (pending.clone(), alive.clone(), limits.max_frame);
        monoio::spawn(async move {
            let mut dec = FrameDecoder::new(max_frame);
            let mut buf = vec![0u8; 64 << 10];
            'conn: loop {
                let (res, b) = rd.read(buf).await;
                buf = b;
                match res {
                    Ok(0) | Err(_) => break,
                    Ok(n) => dec.push(&buf[..n]),
                }
                loop {
                    match dec.next_frame() {
                        Ok(Some(f)) => {
                            if let Some(tx) = pending_r.borrow_mut().remove(&f.request_id) {
                                let _ = tx.send(f);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "peer client: bad frame from peer; closing");
                            break 'conn;
                        }
                    }
                }
            }
            alive_r.set(false);
            // wake every waiter with "closed"
            pending_r.borrow_mut().clear();
        });
        Ok(PeerClient { out, pending, next_id: Rc::new(Cell::new(1)), alive, limits: Rc::new(limits), switch })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.get() && !self.out.is_closed()
    }

    /// Send one request and wait for its answer (a [`KIND_ERROR`] answer is
    /// `PeerError::Remote`).
    pub async fn request(&self, kind: u8, group: u32, body: Bytes, timeout: Duration) -> Result<Frame, PeerError> {
        if self.switch.is_cut() {
            return Err(PeerError::Cut);
        }
        if !self.is_alive() {
            return Err(PeerError::Closed);
        }
        let n = self.pending.borrow().len();
        if n >= self.limits.max_in_flight {
            return Err(PeerError::Busy(n));
        }
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1).max(1));
        let frame = Frame::new(kind, id, group, body);
        if frame.body.len() + super::frame::HEADER_LEN > self.limits.max_frame {
            return Err(PeerError::Frame(FrameError::TooLarge {
                len: frame.body.len() + super::frame::HEADER_LEN,
                max: self.limits.max_frame,
            }));
        }
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        if self.out.unbounded_send(frame.encode()).is_err() {
            self.pending.borrow_mut().remove(&id);
            return Err(PeerError::Closed);
        }
        match monoio::time::timeout(timeout, rx).await {
            Ok(Ok(f)) if f.kind == KIND_ERROR => Err(PeerError::Remote(String::from_utf8_lossy(&f.body).into_owned())),
            Ok(Ok(f)) => Ok(f),
            Ok(Err(_)) => Err(PeerError::Closed),
            Err(_) => {
                self.pending.borrow_mut().remove(&id);
                Err(PeerError::Timeout(timeout))
            }
        }
    }
}

/// Answers requests arriving on peer connections of one core.
pub trait PeerHandler: 'static {
    /// Answer one request frame; the returned frame's `request_id` is set by
    /// the connection. `from` is the calling node's hello.
    fn handle(&self, from: Hello, frame: Frame) -> LocalBoxFuture<'static, Frame>;
}

/// A connection accepted on one core that belongs to another core: the
/// socket (a duplicate of its fd), its hello and bytes already read.
pub struct Handoff {
    pub stream: std::net::TcpStream,
    pub hello: Hello,
    pub pending: Vec<u8>,
}

struct InFlight {
    n: Cell<usize>,
    waker: RefCell<Option<Waker>>,
}

struct Below<'a>(&'a InFlight, usize);

impl Future for Below<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.n.get() < self.1 {
            Poll::Ready(())
        } else {
            *self.0.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Accept peer connections on this core. A connection whose hello names
/// another core is handed to it through `handoff[target_core]` (when given).
pub async fn accept_loop(
    listener: TcpListener,
    core: u16,
    handler: Rc<dyn PeerHandler>,
    handoff: Option<Vec<flume::Sender<Handoff>>>,
    limits: PeerLimits,
    switch: DropSwitch,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "peer accept failed");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (handler, handoff, limits, switch) = (handler.clone(), handoff.clone(), limits.clone(), switch.clone());
        monoio::spawn(async move {
            let mut stream = stream;
            let mut dec = FrameDecoder::new(limits.max_frame);
            let hello = match read_hello(&mut stream, &mut dec).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "peer connection without a valid hello; closed");
                    return;
                }
            };
            if hello.target_core != core {
                if let Some(to) = handoff.as_ref().and_then(|h| h.get(hello.target_core as usize)) {
                    match dup_std(&stream) {
                        Ok(std_stream) => {
                            let pending = dec.pending().to_vec();
                            drop(stream);
                            if to.send(Handoff { stream: std_stream, hello, pending }).is_err() {
                                tracing::warn!(%peer, core = hello.target_core, "peer handoff: target core gone");
                            }
                        }
                        Err(e) => tracing::warn!(%peer, error = %e, "peer handoff: dup failed"),
                    }
                    return;
                }
                tracing::warn!(%peer, target = hello.target_core, core, "peer connection for another core; serving here");
            }
            serve_conn(stream, hello, dec, handler, limits, switch).await;
        });
    }
}

/// Serve connections handed over by other cores.
pub async fn handoff_loop(rx: flume::Receiver<Handoff>, handler: Rc<dyn PeerHandler>, limits: PeerLimits, switch: DropSwitch) {
    while let Ok(h) = rx.recv_async().await {
        let stream = match TcpStream::from_std(h.stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "peer handoff: adopting the socket failed");
                continue;
            }
        };
        let mut dec = FrameDecoder::new(limits.max_frame);
        dec.push(&h.pending);
        monoio::spawn(serve_conn(stream, h.hello, dec, handler.clone(), limits.clone(), switch.clone()));
    }
}

fn dup_std(stream: &TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the fd is open for the lifetime of `stream`, which outlives this call.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    Ok(std::net::TcpStream::from(fd.try_clone_to_owned()?))
}

async fn read_hello(stream: &mut TcpStream, dec: &mut FrameDecoder) -> Result<Hello, PeerError> {
    let mut buf = vec![0u8; 4096];
    loop {
        if let Some(f) = dec.next_frame()? {
            if f.kind != KIND_HELLO {
                return Err(PeerError::Frame(FrameError::Malformed("first frame is not a hello")));
            }
            return Ok(Hello::decode(&f.body)?);
        }
        let (res, b) = match monoio::time::timeout(Duration::from_secs(5), stream.read(buf)).await {
            Ok(r) => r,
            Err(_) => return Err(PeerError::Timeout(Duration::from_secs(5))),
        };
        buf = b;
        match res {
            Ok(0) => return Err(PeerError::Closed),
            Ok(n) => dec.push(&buf[..n]),
            Err(e) => return Err(PeerError::Connect("accepted".into(), e.to_string())),
        }
    }
}

/// Serve one established peer connection until it closes.
pub async fn serve_conn(
    stream: TcpStream,
    hello: Hello,
    mut dec: FrameDecoder,
    handler: Rc<dyn PeerHandler>,
    limits: PeerLimits,
    switch: DropSwitch,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (out, mut rx) = mpsc::unbounded::<Vec<u8>>();
    let writer = monoio::spawn(async move {
        while let Some(first) = rx.next().await {
            let mut buf = first;
            while buf.len() < (1 << 20) {
                match rx.try_recv() {
                    Ok(more) => buf.extend_from_slice(&more),
                    _ => break,
                }
            }
            let (res, _) = wr.write_all(buf).await;
            if res.is_err() {
                break;
            }
        }
    });
    let inflight = Rc::new(InFlight { n: Cell::new(0), waker: RefCell::new(None) });
    let mut buf = vec![0u8; 64 << 10];
    'conn: loop {
        loop {
            let frame = match dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(node = hello.node, error = %e, "peer connection: bad frame; closing");
                    break 'conn;
                }
            };
            if switch.is_cut() {
                continue;
            }
            Below(&inflight, limits.max_in_flight).await;
            inflight.n.set(inflight.n.get() + 1);
            let (handler, out, inflight) = (handler.clone(), out.clone(), inflight.clone());
            monoio::spawn(async move {
                let id = frame.request_id;
                let mut reply = handler.handle(hello, frame).await;
                reply.request_id = id;
                let _ = out.unbounded_send(reply.encode());
                inflight.n.set(inflight.n.get() - 1);
                if let Some(w) = inflight.waker.borrow_mut().take() {
                    w.wake();
                }
            });
        }
        let (res, b) = rd.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(n) => dec.push(&buf[..n]),
        }
    }
    drop(out);
    let _ = writer.await;
}
