//! One RESP connection: a reader that decodes every buffered request and
//! runs them in order (pipelined `CONCURRENT` neighbours at once), and a
//! writer that sends the encoded replies, in order, while the reader goes
//! on. Both are bounded: unparsed input by the decoder's limits, queued
//! replies by `max_reply_buffer_bytes` (then the peer is cut off).

use super::command::{Command, ConnCmd, Flags, Owner};
use super::decode::{Decoder, ProtocolError};
use super::reply::{Protocol, Reply};
use super::server::RespLimits;
use super::service::{ConnState, RespService, ServerIdent};
use super::stats::RespCounters;
use super::CommandTable;
use crate::shutdown::{LocalSignal, Shutdown};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::time::{timeout, timeout_at, Instant};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Bytes asked for per read.
const READ_CHUNK: usize = 16 * 1024;
/// A writer buffer up to this size is kept for reuse.
const KEEP_OUT_CAPACITY: usize = 256 * 1024;
/// Queued output past `max_reply_buffer_bytes` must drain below half of it
/// within this long, or the peer is cut off.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// After a protocol error: how long / how much we read and discard so the
/// client sees our error instead of a reset.
const LINGER_TIME: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;
/// Longest name / argument quoted back in an error message.
const QUOTE_MAX: usize = 128;

/// Everything one core's RESP connections share. Single-threaded.
pub(crate) struct Core<S> {
    pub index: usize,
    pub service: S,
    pub table: CommandTable,
    pub ident: ServerIdent,
    pub limits: RespLimits,
    pub counters: Arc<RespCounters>,
    pub ids: Arc<AtomicU64>,
    pub in_flight: Cell<usize>,
    pub connections: Cell<usize>,
    pub rejecting: Cell<usize>,
    pub draining: LocalSignal,
    pub abort: LocalSignal,
    pub shutdown: Shutdown,
}

/// Why a connection stopped.
enum End {
    /// Peer closed, QUIT, or drain: flush and close.
    Done,
    /// Protocol error answered: flush, then linger so it is read.
    AfterError,
    /// Timeout, I/O error, cut off, abort: drop the socket.
    Abort,
}

/// Replies between the reader and the writer of one connection.
#[derive(Default)]
struct Output {
    buf: RefCell<Vec<u8>>,
    /// Bytes of the write in progress.
    writing: Cell<usize>,
    /// The reader is done: the writer sends what is left and stops.
    closing: Cell<bool>,
    writer: Cell<Option<Waker>>,
    reader: Cell<Option<Waker>>,
    /// The writer failed or the connection was cut off: stop everything.
    failed: LocalSignal,
}

impl Output {
    fn queued(&self) -> usize {
        self.buf.borrow().len() + self.writing.get()
    }

    fn push(&self, reply: &Reply, proto: Protocol) {
        reply.encode(proto, &mut self.buf.borrow_mut());
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    fn close(&self) {
        self.closing.set(true);
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    fn wake_reader(&self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }
}

pub(crate) async fn serve<S: RespService>(core: &Core<S>, stream: TcpStream) {
    let id = core.ids.fetch_add(1, Ordering::Relaxed) + 1;
    let state = ConnState::new(id, core.index, stream.peer_addr().ok(), stream.local_addr().ok());
    let (rd, mut wr) = stream.into_split();
    let out = Output::default();
    let mut conn =
        Conn { core, rd, buf: BytesMut::with_capacity(READ_CHUNK), decoder: Decoder::new(core.limits.decode()), state, out: &out };
    let end = {
        let reader = async {
            let end = conn.run().await;
            match end {
                End::Abort => out.failed.fire(),
                _ => out.close(),
            }
            end
        };
        let writer = write_loop(core, &mut wr, &out);
        let both = async {
            let (end, written) = futures::join!(reader, writer);
            if written {
                end
            } else {
                End::Abort
            }
        };
        monoio::select! {
            end = both => end,
            _ = out.failed.wait() => End::Abort,
            _ = core.abort.wait() => End::Abort,
        }
    };
    match end {
        End::Done => {
            let _ = wr.shutdown().await;
        }
        End::AfterError => linger(&mut conn.rd, &mut wr).await,
        End::Abort => {}
    }
}

/// Send queued replies until the reader closes and everything is sent.
/// False when a write failed or stalled (the connection is dead).
async fn write_loop<S>(core: &Core<S>, wr: &mut OwnedWriteHalf<TcpStream>, out: &Output) -> bool {
    let mut spare = Vec::new();
    loop {
        std::future::poll_fn(|cx| {
            if !out.buf.borrow().is_empty() || out.closing.get() {
                Poll::Ready(())
            } else {
                out.writer.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
        let data = {
            let mut b = out.buf.borrow_mut();
            if b.is_empty() {
                return true; // closing, all sent
            }
            std::mem::replace(&mut *b, std::mem::take(&mut spare))
        };
        let len = data.len();
        out.writing.set(len);
        match timeout(core.limits.write_timeout, wr.write_all(data)).await {
            Ok((Ok(_), mut data)) => {
                RespCounters::add(&core.counters.bytes_written, len as u64);
                out.writing.set(0);
                out.wake_reader();
                data.clear();
                if data.capacity() <= KEEP_OUT_CAPACITY {
                    spare = data;
                }
            }
            Ok((Err(e), _)) => {
                RespCounters::inc(&core.counters.io_errors);
                tracing::debug!(core = core.index, error = %e, "RESP write failed");
                out.failed.fire();
                return false;
            }
            Err(_) => {
                RespCounters::inc(&core.counters.timeout_write);
                tracing::info!(core = core.index, pending = len, "RESP write stalled, closing connection");
                out.failed.fire();
                return false;
            }
        }
    }
}

/// Half-close, then read and discard briefly so the peer reads our error
/// (closing with unread input would reset the connection under it). The
/// same pattern as the HTTP server's linger.
async fn linger(rd: &mut OwnedReadHalf<TcpStream>, wr: &mut OwnedWriteHalf<TcpStream>) {
    if wr.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut discarded = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    while discarded < LINGER_BYTES {
        match timeout_at(deadline, rd.read(buf)).await {
            Ok((Ok(n), b)) if n > 0 => {
                discarded += n;
                buf = b;
            }
            _ => return,
        }
    }
}

/// Answer a connection over the per-core limit, then close.
pub(crate) async fn reject<S>(core: &Core<S>, mut stream: TcpStream) {
    let limit = Duration::from_secs(1);
    let msg = b"-ERR max number of clients reached\r\n".to_vec();
    if let Ok((Ok(_), _)) = timeout(limit, stream.write_all(msg)).await {
        let _ = stream.shutdown().await;
        let _ = timeout(limit, stream.read(Vec::with_capacity(4096))).await;
    }
    let _ = core;
}

/// A decoded request, resolved.
enum Prepared {
    /// Answered without running anything (unknown command, arity, NOAUTH).
    Reply(Reply),
    Conn(ConnCmd, Command),
    Service {
        cmd: Command,
        concurrent: bool,
    },
}

struct Conn<'a, S> {
    core: &'a Core<S>,
    rd: OwnedReadHalf<TcpStream>,
    /// Unparsed input: at most one incomplete request (bounded by the
    /// decoder) plus one read.
    buf: BytesMut,
    decoder: Decoder,
    state: ConnState,
    out: &'a Output,
}

impl<S: RespService> Conn<'_, S> {
    async fn run(&mut self) -> End {
        let limits = &self.core.limits;
        // When the request in progress must be complete.
        let mut request_deadline: Option<Instant> = None;
        loop {
            let mut batch = VecDeque::new();
            let error = loop {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(args)) => batch.push_back(args),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            let completed = !batch.is_empty();
            if let Err(end) = self.execute(batch).await {
                return end;
            }
            if let Some(e) = error {
                return self.protocol_error(e);
            }
            let partial = self.decoder.in_request() || !self.buf.is_empty();
            if !partial {
                request_deadline = None;
            } else if completed || request_deadline.is_none() {
                request_deadline = Some(Instant::now() + limits.request_timeout);
            }
            if !partial && self.core.shutdown.is_triggered() {
                return End::Done;
            }
            let core = self.core;
            let got = match request_deadline {
                Some(deadline) => match timeout_at(deadline, self.read_more()).await {
                    Ok(r) => r,
                    Err(_) => {
                        RespCounters::inc(&core.counters.timeout_request);
                        tracing::debug!(core = core.index, id = self.state.id(), "RESP request incomplete after request_timeout, closing");
                        return End::Abort;
                    }
                },
                None => {
                    // Between requests: the drain closes us at once.
                    match monoio::select! {
                        r = timeout(limits.idle_timeout, self.read_more()) => Some(r),
                        _ = core.draining.wait() => None,
                    } {
                        None => return End::Done,
                        Some(Ok(r)) => r,
                        Some(Err(_)) => {
                            RespCounters::inc(&core.counters.timeout_idle);
                            return End::Done;
                        }
                    }
                }
            };
            match got {
                Ok(0) => {
                    // Peer closed its side: whatever is buffered is incomplete.
                    return End::Done;
                }
                Ok(_) => {}
                Err(e) => {
                    RespCounters::inc(&core.counters.io_errors);
                    tracing::debug!(core = core.index, error = %e, "RESP read failed");
                    return End::Abort;
                }
            }
        }
    }

    /// Read into the spare capacity of `buf`. `Ok(0)` = peer closed.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let cap = buf.capacity();
        let (res, slice) = self.rd.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        if let Ok(n) = res {
            RespCounters::add(&self.core.counters.bytes_read, n as u64);
        }
        res
    }

    fn protocol_error(&mut self, e: ProtocolError) -> End {
        RespCounters::inc(&self.core.counters.err_protocol);
        tracing::debug!(core = self.core.index, id = self.state.id(), error = %e, "RESP protocol error, closing");
        self.out.push(&Reply::err(format_args!("Protocol error: {e}")), self.state.protocol);
        End::AfterError
    }

    /// Run a batch in order. `Err(end)` stops the connection.
    async fn execute(&mut self, mut batch: VecDeque<Vec<Bytes>>) -> Result<(), End> {
        let mut next: Option<Prepared> = None;
        loop {
            let p = match next.take() {
                Some(p) => p,
                None => match batch.pop_front() {
                    Some(args) => self.prepare(args),
                    None => return Ok(()),
                },
            };
            self.make_room().await?;
            match p {
                Prepared::Reply(r) => self.out.push(&r, self.state.protocol),
                Prepared::Conn(c, cmd) => {
                    let (reply, quit) = self.connection_command(c, cmd).await;
                    self.out.push(&reply, self.state.protocol);
                    if quit {
                        return Err(End::Done);
                    }
                }
                Prepared::Service { cmd, concurrent } => {
                    let max = self.core.limits.max_pipeline_in_flight;
                    let mut group = vec![cmd];
                    if concurrent {
                        while group.len() < max {
                            let Some(args) = batch.pop_front() else { break };
                            match self.prepare(args) {
                                Prepared::Service { cmd, concurrent: true } => group.push(cmd),
                                other => {
                                    next = Some(other);
                                    break;
                                }
                            }
                        }
                    }
                    if group.len() == 1 {
                        let cmd = group.pop().expect("one command");
                        let reply = call_service(self.core, &self.state, cmd).await;
                        self.out.push(&reply, self.state.protocol);
                    } else {
                        self.run_group(group).await;
                    }
                }
            }
        }
    }

    /// Run pipelined CONCURRENT commands together; replies go out in order,
    /// each as soon as it and every one before it are done.
    async fn run_group(&self, group: Vec<Command>) {
        let core = self.core;
        let state = &self.state;
        let out = self.out;
        let mut running: Vec<Option<Pin<Box<_>>>> = group.into_iter().map(|cmd| Some(Box::pin(call_service(core, state, cmd)))).collect();
        let mut done: Vec<Option<Reply>> = vec![None; running.len()];
        let mut next = 0;
        std::future::poll_fn(|cx: &mut Context<'_>| {
            // Poll in order, so each first poll happens in the client's order.
            for i in next..running.len() {
                if let Some(f) = running[i].as_mut() {
                    if let Poll::Ready(r) = f.as_mut().poll(cx) {
                        done[i] = Some(r);
                        running[i] = None;
                    }
                }
            }
            while next < done.len() {
                let Some(r) = done[next].take() else { break };
                out.push(&r, state.protocol);
                next += 1;
            }
            if next == done.len() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Before queueing more: if the unsent replies passed the limit, give
    /// the peer [`OUTPUT_GRACE`] to take them, else cut it off.
    async fn make_room(&self) -> Result<(), End> {
        let limit = self.core.limits.max_reply_buffer_bytes;
        if self.out.queued() <= limit {
            return Ok(());
        }
        let out = self.out;
        let drained = std::future::poll_fn(|cx| {
            if out.queued() <= limit / 2 {
                Poll::Ready(())
            } else {
                out.reader.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        });
        if timeout(OUTPUT_GRACE, drained).await.is_ok() {
            return Ok(());
        }
        RespCounters::inc(&self.core.counters.cut_off_output);
        tracing::info!(
            core = self.core.index,
            id = self.state.id(),
            queued = self.out.queued(),
            limit,
            "RESP client does not read its replies: cut off"
        );
        Err(End::Abort)
    }

    fn prepare(&mut self, args: Vec<Bytes>) -> Prepared {
        let counters = &self.core.counters;
        RespCounters::inc(&counters.commands);
        self.state.last_active = std::time::Instant::now();
        let Some((spec, owner)) = self.core.table.lookup(&args[0]) else {
            RespCounters::inc(&counters.err_unknown_command);
            return Prepared::Reply(unknown_command(&args));
        };
        self.state.last_command = spec.name;
        if !spec.arity_ok(args.len()) {
            RespCounters::inc(&counters.err_arity);
            return Prepared::Reply(arity_error(spec.name));
        }
        match owner {
            Owner::Connection(c) => Prepared::Conn(c, Command::new(spec.name, usize::MAX, args)),
            Owner::Service(index) => {
                if spec.flags.contains(Flags::AUTH) && self.state.user().is_none() {
                    RespCounters::inc(&counters.err_noauth);
                    return Prepared::Reply(Reply::error("NOAUTH Authentication required."));
                }
                Prepared::Service { cmd: Command::new(spec.name, index, args), concurrent: spec.flags.contains(Flags::CONCURRENT) }
            }
        }
    }

    fn syntax(&self, reply: Reply) -> Reply {
        RespCounters::inc(&self.core.counters.err_syntax);
        reply
    }

    /// The commands every service gets. Returns the reply and whether to close.
    async fn connection_command(&mut self, c: ConnCmd, cmd: Command) -> (Reply, bool) {
        let core = self.core;
        let args = cmd.args();
        let reply = match c {
            ConnCmd::Ping => match args {
                [] => Reply::simple("PONG"),
                [msg] => Reply::Bulk(msg.clone()),
                _ => {
                    RespCounters::inc(&core.counters.err_arity);
                    arity_error("ping")
                }
            },
            ConnCmd::Echo => Reply::Bulk(args[0].clone()),
            ConnCmd::Quit => return (Reply::Ok, true),
            ConnCmd::Select => match parse_int(&args[0]) {
                Some(0) => Reply::Ok,
                Some(_) => self.syntax(Reply::err("DB index is out of range")),
                None => self.syntax(Reply::err("value is not an integer or out of range")),
            },
            ConnCmd::Reset => {
                self.state.protocol = Protocol::Resp2;
                self.state.name = None;
                self.state.auth = None;
                Reply::simple("RESET")
            }
            ConnCmd::Auth => {
                let (user, token) = match args {
                    [token] => (None, token),
                    [user, token] => (Some(user.as_ref()), token),
                    _ => return (self.syntax(Reply::err("syntax error")), false),
                };
                match core.service.authenticate(&self.state, user, token).await {
                    Ok(a) => {
                        self.state.auth = Some(a);
                        Reply::Ok
                    }
                    Err(r) => {
                        RespCounters::inc(&core.counters.err_auth_failed);
                        r
                    }
                }
            }
            ConnCmd::Hello => self.hello(args).await,
            ConnCmd::Client => self.client(args),
            ConnCmd::Command => self.command(args),
            ConnCmd::Config => self.config(args),
        };
        (reply, false)
    }

    async fn hello(&mut self, args: &[Bytes]) -> Reply {
        let core = self.core;
        let mut proto = self.state.protocol;
        let mut rest = args;
        if let Some((v, tail)) = args.split_first() {
            proto = match parse_int(v) {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => return self.syntax(Reply::error("NOPROTO unsupported protocol version")),
                None => return self.syntax(Reply::err("Protocol version is not an integer or out of range")),
            };
            rest = tail;
        }
        let mut auth = None;
        let mut setname = None;
        while let Some((opt, tail)) = rest.split_first() {
            if opt.eq_ignore_ascii_case(b"auth") && tail.len() >= 2 {
                auth = Some((&tail[0], &tail[1]));
                rest = &tail[2..];
            } else if opt.eq_ignore_ascii_case(b"setname") && !tail.is_empty() {
                setname = Some(&tail[0]);
                rest = &tail[1..];
            } else {
                return self.syntax(Reply::err(format_args!("Syntax error in HELLO option '{}'", quote(opt))));
            }
        }
        if let Some(name) = setname {
            if !valid_name(name) {
                return self.syntax(Reply::err("Client names cannot contain spaces, newlines or special characters."));
            }
        }
        if let Some((user, token)) = auth {
            match core.service.authenticate(&self.state, Some(user), token).await {
                Ok(a) => self.state.auth = Some(a),
                Err(r) => {
                    RespCounters::inc(&core.counters.err_auth_failed);
                    return r;
                }
            }
        }
        if let Some(name) = setname {
            self.state.name = if name.is_empty() { None } else { Some(name.clone()) };
        }
        self.state.protocol = proto;
        let ident = &core.ident;
        Reply::map([
            ("server", Reply::bulk_str(ident.server)),
            ("version", Reply::bulk_str(ident.version)),
            ("proto", Reply::Int(proto.number())),
            ("id", Reply::Int(self.state.id() as i64)),
            ("mode", Reply::bulk_str(ident.mode)),
            ("role", Reply::bulk_str(ident.role)),
            ("modules", Reply::Array(vec![])),
        ])
    }

    fn client(&mut self, args: &[Bytes]) -> Reply {
        let sub = args[0].to_ascii_lowercase();
        let argc = args.len() + 1;
        let want = |n: usize| argc == n;
        let arity = |this: &Self, name: &str| {
            RespCounters::inc(&this.core.counters.err_arity);
            arity_error(&format!("client|{name}"))
        };
        match sub.as_slice() {
            b"setname" if want(3) => {
                let name = &args[1];
                if !valid_name(name) {
                    return self.syntax(Reply::err("Client names cannot contain spaces, newlines or special characters."));
                }
                self.state.name = if name.is_empty() { None } else { Some(name.clone()) };
                Reply::Ok
            }
            b"getname" if want(2) => self.state.name.clone().map(Reply::Bulk).unwrap_or(Reply::Null),
            b"id" if want(2) => Reply::Int(self.state.id() as i64),
            b"info" if want(2) => Reply::Verbatim { format: *b"txt", text: Bytes::from(self.client_info_line()) },
            b"setinfo" if want(4) => {
                let value = &args[2];
                if !valid_name(value) {
                    return self.syntax(Reply::err(format_args!(
                        "{} cannot contain spaces, newlines or special characters.",
                        quote(&args[1]).to_ascii_uppercase()
                    )));
                }
                let v = if value.is_empty() { None } else { Some(value.clone()) };
                if args[1].eq_ignore_ascii_case(b"lib-name") {
                    self.state.lib_name = v;
                } else if args[1].eq_ignore_ascii_case(b"lib-ver") {
                    self.state.lib_ver = v;
                } else {
                    return self.syntax(Reply::err(format_args!("Unrecognized option '{}'", quote(&args[1]))));
                }
                Reply::Ok
            }
            b"help" if want(2) => help(&[
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "SETINFO <option> <value>",
                "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
            ]),
            b"setname" | b"getname" | b"id" | b"info" | b"setinfo" | b"help" => arity(self, &String::from_utf8_lossy(&sub)),
            _ => {
                RespCounters::inc(&self.core.counters.err_unknown_command);
                Reply::err(format_args!("unknown subcommand '{}'. Try CLIENT HELP.", quote(&args[0])))
            }
        }
    }

    fn client_info_line(&self) -> String {
        let s = &self.state;
        let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let lossy = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        format!(
            "id={} addr={} laddr={} name={} age={} idle={} db=0 cmd={} user={} lib-name={} lib-ver={} resp={}\n",
            s.id(),
            addr(s.peer()),
            addr(s.local()),
            lossy(s.name()),
            s.age().as_secs(),
            s.last_active.elapsed().as_secs(),
            s.last_command,
            s.user().unwrap_or("default"),
            lossy(s.lib_name.as_deref()),
            lossy(s.lib_ver.as_deref()),
            s.protocol.number()
        )
    }

    fn command(&mut self, args: &[Bytes]) -> Reply {
        let table = &self.core.table;
        let Some((sub, rest)) = args.split_first() else { return table.info_all() };
        match sub.to_ascii_lowercase().as_slice() {
            b"count" if rest.is_empty() => Reply::Int(table.len() as i64),
            b"info" if rest.is_empty() => table.info_all(),
            b"info" => table.info(rest),
            b"docs" => table.docs(rest),
            b"list" => table.names(),
            b"help" if rest.is_empty() => help(&[
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
            ]),
            b"count" | b"help" => {
                RespCounters::inc(&self.core.counters.err_arity);
                arity_error(&format!("command|{}", String::from_utf8_lossy(&sub.to_ascii_lowercase())))
            }
            _ => {
                RespCounters::inc(&self.core.counters.err_unknown_command);
                Reply::err(format_args!("unknown subcommand '{}'. Try COMMAND HELP.", quote(sub)))
            }
        }
    }

    fn config(&mut self, args: &[Bytes]) -> Reply {
        if !args[0].eq_ignore_ascii_case(b"get") {
            RespCounters::inc(&self.core.counters.err_unknown_command);
            return Reply::err(format_args!("unknown subcommand '{}'. Try CONFIG HELP.", quote(&args[0])));
        }
        if args.len() < 2 {
            RespCounters::inc(&self.core.counters.err_arity);
            return arity_error("config|get");
        }
        let pairs = self
            .core
            .ident
            .config
            .iter()
            .filter(|(k, _)| args[1..].iter().any(|p| p.as_ref() == b"*" || p.eq_ignore_ascii_case(k.as_bytes())))
            .map(|(k, v)| (Reply::bulk_str(*k), Reply::bulk_str(v.clone())))
            .collect();
        Reply::Map(pairs)
    }
}

/// Run one command in the service: the core's in-flight bound, panics
/// turned into an error reply, error replies counted.
async fn call_service<S: RespService>(core: &Core<S>, state: &ConnState, cmd: Command) -> Reply {
    let counters = &core.counters;
    RespCounters::inc(&counters.commands_service);
    if core.in_flight.get() >= core.limits.max_in_flight_per_core {
        RespCounters::inc(&counters.err_overloaded);
        return Reply::error("OVERLOADED too many commands in flight on this core, retry later");
    }
    let name = cmd.name();
    let _guard = InFlight::enter(core);
    match AssertUnwindSafe(core.service.call(state, cmd)).catch_unwind().await {
        Ok(reply) => {
            if reply.is_error() {
                RespCounters::inc(&counters.err_service);
            }
            reply
        }
        Err(_) => {
            RespCounters::inc(&counters.service_panics);
            tracing::error!(core = core.index, command = name, "RESP service panicked");
            Reply::error("ERR internal error")
        }
    }
}

/// Counts a command as in flight on its core while it lives.
struct InFlight<'a, S> {
    core: &'a Core<S>,
}

impl<'a, S> InFlight<'a, S> {
    fn enter(core: &'a Core<S>) -> Self {
        core.in_flight.set(core.in_flight.get() + 1);
        RespCounters::inc(&core.counters.in_flight);
        InFlight { core }
    }
}

impl<S> Drop for InFlight<'_, S> {
    fn drop(&mut self) {
        self.core.in_flight.set(self.core.in_flight.get().saturating_sub(1));
        RespCounters::dec(&self.core.counters.in_flight);
    }
}

fn help(lines: &[&'static str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::simple(*l)).collect())
}

/// `'x'` in error messages: lossy UTF-8, at most [`QUOTE_MAX`] bytes.
fn quote(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(QUOTE_MAX)]).into_owned()
}

fn unknown_command(args: &[Bytes]) -> Reply {
    let mut msg = format!("unknown command '{}', with args beginning with: ", quote(&args[0]));
    for a in args[1..].iter().take(8) {
        msg.push('\'');
        msg.push_str(&quote(a));
        msg.push_str("' ");
    }
    Reply::err(msg)
}

fn arity_error(name: &str) -> Reply {
    Reply::err(format_args!("wrong number of arguments for '{name}' command"))
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Client names and lib info: printable ASCII without spaces (as Redis).
fn valid_name(b: &[u8]) -> bool {
    b.iter().all(|&c| (b'!'..=b'~').contains(&c))
}
