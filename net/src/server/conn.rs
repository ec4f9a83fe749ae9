//! One HTTP/1.1 connection: read, parse (possibly several pipelined
//! requests per read), call the core's service, answer in order, close on
//! any limit. Every buffer is bounded by the core's [`Limits`].

use super::config::Limits;
use super::encode::{encode_response, error_response, wants_close, DateCache};
use super::parse::{parse_head, BodyFraming, Head, HeadError};
use super::stats::CoreCounters;
use crate::chunked::{ChunkedDecoder, ChunkedError};
use crate::http::{Request, Response, Service};
use crate::lograte::LogLimiter;
use crate::shutdown::LocalSignal;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio::time::{timeout, timeout_at, Instant};
use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;
/// Pipelined output flushed once it reaches this size, whatever the depth.
const OUT_FLUSH_BYTES: usize = 256 * 1024;
/// After an error response: how long / how much we keep reading (and
/// discarding) so the client sees our answer instead of a reset.
const LINGER_TIME: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;

/// Requests rejected for their framing or timing (400/408/413/431/501):
/// any client can cause them, so the log gets one line per second, with
/// the number suppressed since (the counters count every one).
static REJECTED: LogLimiter = LogLimiter::new(Duration::from_secs(1));

/// Everything one core's connections share. Single-threaded: `Cell`s, no locks.
pub(crate) struct Core<S> {
    pub service: S,
    pub limits: Limits,
    pub counters: Arc<CoreCounters>,
    pub in_flight: Cell<usize>,
    pub connections: Cell<usize>,
    /// Connections currently being answered 503 (over the connection limit).
    pub rejecting: Cell<usize>,
    /// Fired when the drain starts: idle connections close at once.
    pub draining: LocalSignal,
    /// Fired when the drain budget is spent: every connection drops now
    /// (monoio leaks tasks still pending when `block_on` returns, so they
    /// must end before that).
    pub abort: LocalSignal,
    /// The process-wide trigger, checked directly where a decision is made
    /// (the `draining` signal lags it by one wake-up).
    pub shutdown: crate::shutdown::Shutdown,
    pub date: DateCache,
}

/// Why a connection loop stopped.
enum End {
    /// Peer closed, or we answered `Connection: close`.
    Done,
    /// We answered an error and close: linger so the answer is read.
    AfterError,
    /// Timeout, I/O error, or drain: drop the socket.
    Abort,
}

struct Conn<'a, S> {
    core: &'a Core<S>,
    stream: TcpStream,
    peer: SocketAddr,
    /// Unparsed input. Bounded: head ≤ max_header_bytes (+ one read), body ≤ max_body_bytes (+ one read).
    buf: BytesMut,
    /// Serialised responses not yet written. Bounded by pipeline_depth / OUT_FLUSH_BYTES
    /// (plus one response).
    out: Vec<u8>,
    pending: usize,
    served: u64,
}

pub(crate) async fn serve<S: Service>(core: Rc<Core<S>>, stream: TcpStream, peer: SocketAddr) {
    let mut conn = Conn { core: &core, stream, peer, buf: BytesMut::with_capacity(READ_CHUNK), out: Vec::new(), pending: 0, served: 0 };
    let end = monoio::select! {
        end = conn.run() => end,
        _ = core.abort.wait() => End::Abort,
    };
    match end {
        End::Done => {
            let _ = conn.stream.shutdown().await;
        }
        End::AfterError => conn.linger().await,
        End::Abort => {}
    }
}

impl<S: Service> Conn<'_, S> {
    fn limits(&self) -> &Limits {
        &self.core.limits
    }

    async fn run(&mut self) -> End {
        // When the head of the current request must be complete. For the
        // first request it runs from accept; later, from its first byte.
        let mut head_deadline = Some(Instant::now() + self.limits().header_read_timeout);
        loop {
            let head = match self.next_head(&mut head_deadline).await {
                Ok(head) => head,
                Err(end) => return end,
            };
            // The head is complete: split it off (zero-copy header values).
            let head_bytes = self.buf.split_to(head.len).freeze();
            head_deadline = None;
            if let Err(end) = self.send_continue_if_expected(&head).await {
                return end;
            }
            let body = match self.receive_body(head.body).await {
                Ok(body) => body,
                Err(end) => return end,
            };
            if let Err(end) = self.answer(head, head_bytes, body).await {
                return end;
            }
            if !self.buf.is_empty() {
                // The next pipelined request has started arriving already.
                head_deadline = Some(Instant::now() + self.limits().header_read_timeout);
            }
        }
    }

    /// Parse the next request head, reading until it is complete (by
    /// `head_deadline`, or the keep-alive idle timeout when it is `None`).
    /// A bad head is answered and ends the connection.
    async fn next_head(&mut self, head_deadline: &mut Option<Instant>) -> Result<Head, End> {
        loop {
            let parsed = parse_head(&self.buf, self.limits().max_headers, self.limits().max_header_bytes, self.limits().max_body_bytes);
            match parsed {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => self.wait_for_head_bytes(head_deadline).await?,
                Err(e) => return Err(self.reject_head(e).await),
            }
        }
    }

    /// Flush pipelined answers, then read more of a head. The first byte
    /// of a new request starts its `head_deadline`.
    async fn wait_for_head_bytes(&mut self, head_deadline: &mut Option<Instant>) -> Result<(), End> {
        if !self.flush().await {
            return Err(End::Abort);
        }
        let idle = self.buf.is_empty() && head_deadline.is_none();
        if idle && self.core.draining.is_fired() {
            return Err(End::Abort);
        }
        let got = match *head_deadline {
            Some(deadline) => self.read_head_by(deadline).await?,
            None => self.read_keep_alive().await?,
        };
        match got {
            Ok(0) => Err(End::Done),
            Ok(_) => {
                if head_deadline.is_none() {
                    *head_deadline = Some(Instant::now() + self.limits().header_read_timeout);
                }
                Ok(())
            }
            Err(_) => {
                CoreCounters::inc(&self.core.counters.io_errors);
                Err(End::Abort)
            }
        }
    }

    /// Read part of a started head by `deadline`; a fresh connection that
    /// sent nothing yet is idle, so the drain closes it.
    async fn read_head_by(&mut self, deadline: Instant) -> Result<std::io::Result<usize>, End> {
        let core = self.core;
        let drain_closes = self.buf.is_empty() && self.served == 0;
        match monoio::select! {
            r = timeout_at(deadline, self.read_more()) => Some(r),
            _ = core.draining.wait(), if drain_closes => None,
        } {
            None => Err(End::Abort),
            Some(Ok(r)) => Ok(r),
            Some(Err(_)) => {
                CoreCounters::inc(&core.counters.timeout_header);
                Err(End::Abort)
            }
        }
    }

    /// Keep-alive wait between requests: the drain closes it at once.
    async fn read_keep_alive(&mut self) -> Result<std::io::Result<usize>, End> {
        let core = self.core;
        match monoio::select! {
            r = timeout(core.limits.idle_timeout, self.read_more()) => Some(r),
            _ = core.draining.wait() => None,
        } {
            None => Err(End::Abort),
            Some(Ok(r)) => Ok(r),
            Some(Err(_)) => {
                CoreCounters::inc(&core.counters.timeout_idle);
                Err(End::Abort)
            }
        }
    }

    /// Count and answer a head the parser refused (400/413/431/501).
    async fn reject_head(&mut self, e: HeadError) -> End {
        let (status, msg, counter) = match e {
            HeadError::Malformed(m) => (400, m, &self.core.counters.err_malformed),
            HeadError::TooLarge => (431, "request header fields too large", &self.core.counters.err_header_too_large),
            HeadError::BodyTooLarge => (413, "request body too large", &self.core.counters.err_body_too_large),
            HeadError::Unsupported(m) => (501, m, &self.core.counters.err_unsupported),
        };
        CoreCounters::inc(counter);
        self.reject(status, msg).await
    }

    /// `Expect: 100-continue` with a body not sent yet: say go ahead.
    async fn send_continue_if_expected(&mut self, head: &Head) -> Result<(), End> {
        if head.expect_continue && head.body != BodyFraming::None && self.buf.is_empty() {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if !self.flush().await {
                return Err(End::Abort);
            }
        }
        Ok(())
    }

    /// The whole body, however it trickles in, within `body_read_timeout`;
    /// a bad or late body is answered and ends the connection.
    async fn receive_body(&mut self, framing: BodyFraming) -> Result<Bytes, End> {
        let body_deadline = Instant::now() + self.limits().body_read_timeout;
        let body = match framing {
            BodyFraming::None => Ok(Bytes::new()),
            BodyFraming::Length(n) => self.read_body_exact(n, body_deadline).await,
            BodyFraming::Chunked => self.read_body_chunked(body_deadline).await,
        };
        match body {
            Ok(b) => Ok(b),
            Err(BodyError::Chunked(ChunkedError::TooLarge)) => {
                CoreCounters::inc(&self.core.counters.err_body_too_large);
                Err(self.reject(413, "request body too large").await)
            }
            Err(BodyError::Chunked(ChunkedError::Malformed)) => {
                CoreCounters::inc(&self.core.counters.err_malformed);
                Err(self.reject(400, "malformed chunked body").await)
            }
            Err(BodyError::Timeout) => {
                CoreCounters::inc(&self.core.counters.timeout_body);
                Err(self.reject(408, "request body not received in time").await)
            }
            Err(BodyError::End(end)) => Err(end),
        }
    }

    /// Call the service and queue its answer; flush when the pipeline batch
    /// is full, a large body is due, or the connection closes after it
    /// (`Err(End::Done)`).
    async fn answer(&mut self, head: Head, head_bytes: Bytes, body: Bytes) -> Result<(), End> {
        let head_only = head.method == "HEAD";
        let req = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers.into_iter().map(|(n, r)| (n, head_bytes.slice(r))).collect(),
            body,
        };
        let resp = self.call(req).await;
        self.served += 1;
        let keep_alive = head.keep_alive && !wants_close(&resp) && !self.core.shutdown.is_triggered();
        let large_body = encode_response(&mut self.out, &resp, keep_alive, head_only, &self.core.date);
        self.pending += 1;
        if let Some(body) = large_body {
            // Head (and earlier pipelined answers) first, then the body from its own buffer.
            if !self.flush().await || !self.write_body(body).await {
                return Err(End::Abort);
            }
        }
        if !keep_alive {
            return Err(if self.flush().await { End::Done } else { End::Abort });
        }
        let batch_full = self.pending >= self.limits().pipeline_depth || self.out.len() >= OUT_FLUSH_BYTES;
        if batch_full && !self.flush().await {
            return Err(End::Abort);
        }
        if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
            // Do not keep a large body's buffer around for an idle connection.
            self.buf = BytesMut::new();
        }
        Ok(())
    }

    /// Run the service, or answer 503 when this core is at its in-flight limit.
    async fn call(&self, req: Request) -> Response {
        let core = self.core;
        CoreCounters::inc(&core.counters.requests);
        if core.in_flight.get() >= core.limits.max_in_flight_per_core {
            CoreCounters::inc(&core.counters.err_overloaded);
            return error_response(503, "server overloaded, retry later").header("retry-after", "1");
        }
        let _guard = InFlight::enter(core);
        match AssertUnwindSafe(core.service.call(req)).catch_unwind().await {
            Ok(resp) => resp,
            Err(_) => {
                CoreCounters::inc(&core.counters.service_panics);
                error_response(500, "internal error")
            }
        }
    }

    /// A request the server itself refuses: log it (rate-limited, with the
    /// peer), answer `status` with a JSON body, close.
    async fn reject(&mut self, status: u16, msg: &str) -> End {
        if let Some(suppressed) = REJECTED.check() {
            tracing::warn!(peer = %self.peer, status, reason = msg, served_before = self.served, suppressed, "request rejected");
        }
        self.fail(status, msg).await
    }

    /// Queue an error answer with `Connection: close`, write everything.
    async fn fail(&mut self, status: u16, msg: &str) -> End {
        let resp = error_response(status, msg);
        let large = encode_response(&mut self.out, &resp, false, false, &self.core.date);
        debug_assert!(large.is_none(), "error bodies are small");
        if self.flush().await {
            End::AfterError
        } else {
            End::Abort
        }
    }

    /// Read into the spare capacity of `buf`. `Ok(0)` = peer closed.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let cap = buf.capacity();
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        if let Ok(n) = res {
            CoreCounters::add(&self.core.counters.bytes_read, n as u64);
        }
        res
    }

    /// One more read of a body: by `deadline` (the whole body's), and at
    /// most `idle_timeout` after the previous read. Either → `Timeout`.
    async fn read_body_progress(&mut self, deadline: Instant) -> Result<(), BodyError> {
        let until = deadline.min(Instant::now() + self.limits().idle_timeout);
        match timeout_at(until, self.read_more()).await {
            Ok(Ok(0)) => Err(BodyError::End(End::Abort)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => {
                CoreCounters::inc(&self.core.counters.io_errors);
                Err(BodyError::End(End::Abort))
            }
            Err(_) => Err(BodyError::Timeout),
        }
    }

    async fn read_body_exact(&mut self, n: usize, deadline: Instant) -> Result<Bytes, BodyError> {
        debug_assert!(n <= self.limits().max_body_bytes, "checked when parsing the head");
        // Grow with the bytes that actually arrive: reserving the announced
        // length up front would let idle peers pin max_body_bytes each.
        while self.buf.len() < n {
            self.read_body_progress(deadline).await?;
        }
        Ok(self.buf.split_to(n).freeze())
    }

    async fn read_body_chunked(&mut self, deadline: Instant) -> Result<Bytes, BodyError> {
        let mut decoder = ChunkedDecoder::new(self.limits().max_body_bytes);
        loop {
            if decoder.decode(&mut self.buf).map_err(BodyError::Chunked)? {
                return Ok(decoder.into_body());
            }
            self.read_body_progress(deadline).await?;
        }
    }

    /// Write all queued output (one write for the whole batch). False on error/timeout.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        let Some(mut out) = self.write_counted(out).await else {
            return false;
        };
        out.clear();
        // Do not keep a huge buffer around for an idle connection.
        if out.capacity() <= OUT_FLUSH_BYTES {
            self.out = out;
        }
        self.pending = 0;
        true
    }

    /// Write one large body without copying it. False on error/timeout.
    async fn write_body(&mut self, body: Bytes) -> bool {
        self.write_counted(body).await.is_some()
    }

    /// Write `buf` whole within the idle timeout, counting the bytes, or the
    /// I/O error or timeout. The buffer comes back on success (for reuse).
    async fn write_counted<B: monoio::buf::IoBuf>(&mut self, buf: B) -> Option<B> {
        // Called by path: importing `IoBuf` would shadow `Bytes::slice` here.
        let len = monoio::buf::IoBuf::bytes_init(&buf) as u64;
        match timeout(self.limits().idle_timeout, self.stream.write_all(buf)).await {
            Ok((Ok(_), buf)) => {
                CoreCounters::add(&self.core.counters.bytes_written, len);
                Some(buf)
            }
            Ok((Err(_), _)) => {
                CoreCounters::inc(&self.core.counters.io_errors);
                None
            }
            Err(_) => {
                CoreCounters::inc(&self.core.counters.timeout_idle);
                None
            }
        }
    }

    /// Half-close, then read and discard briefly so the peer reads our
    /// error answer before the socket is gone (closing with unread input
    /// would send a reset that can destroy the answer in flight).
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIME;
        let mut discarded = 0usize;
        while discarded < LINGER_BYTES {
            self.buf.clear();
            match timeout_at(deadline, self.read_more()).await {
                Ok(Ok(n)) if n > 0 => discarded += n,
                _ => return,
            }
        }
    }
}

/// Why a request body was not read.
enum BodyError {
    Chunked(ChunkedError),
    /// Past `body_read_timeout`, or no byte for `idle_timeout`: 408.
    Timeout,
    /// Peer gone, I/O error, or drain.
    End(End),
}

/// Counts a request as in flight on its core for as long as it lives
/// (also when the service future panics or is dropped).
struct InFlight<'a, S> {
    core: &'a Core<S>,
}

impl<'a, S> InFlight<'a, S> {
    fn enter(core: &'a Core<S>) -> Self {
        core.in_flight.set(core.in_flight.get() + 1);
        CoreCounters::inc(&core.counters.in_flight);
        InFlight { core }
    }
}

impl<S> Drop for InFlight<'_, S> {
    fn drop(&mut self) {
        let n = self.core.in_flight.get();
        debug_assert!(n > 0);
        self.core.in_flight.set(n - 1);
        CoreCounters::dec(&self.core.counters.in_flight);
    }
}

/// Answer 503 to a connection over the per-core limit, then close.
pub(crate) async fn reject<S>(core: Rc<Core<S>>, mut stream: TcpStream) {
    let mut out = Vec::with_capacity(256);
    let resp = error_response(503, "too many connections").header("retry-after", "1");
    let large = encode_response(&mut out, &resp, false, false, &core.date);
    debug_assert!(large.is_none(), "error bodies are small");
    let limit = core.limits.header_read_timeout.min(Duration::from_secs(1));
    if let Ok((Ok(_), _)) = timeout(limit, stream.write_all(out)).await {
        let _ = stream.shutdown().await;
        // Brief linger so the 503 is not lost to a reset.
        let buf = Vec::with_capacity(4096);
        let _ = timeout(limit, stream.read(buf)).await;
    }
}
