//! Thread-per-core RESP server: one SO_REUSEPORT listener per core, each
//! served by a [`RespCore`] on that core's monoio runtime — either its own
//! thread ([`RespServer::run`]) or the HTTP server's core runtime (spawn
//! [`RespCore::serve`] from the HTTP service factory, which runs there).

use super::command::CommandTable;
use super::conn::{self, Core};
use super::decode::DecodeLimits;
use super::service::RespService;
use super::stats::{RespCounters, RespStats};
use crate::shutdown::{LocalSignal, Shutdown};
use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long [`RespService::drain`] may take in a standalone server.
const SERVICE_DRAIN_BUDGET: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct RespConfig {
    pub addr: SocketAddr,
    /// Number of cores (listeners).
    pub cores: usize,
    pub limits: RespLimits,
}

/// Every bound of the RESP server. Defaults in brackets.
#[derive(Debug, Clone)]
pub struct RespLimits {
    /// Largest bulk string argument [64 KiB]. Over → protocol error.
    pub max_bulk_bytes: usize,
    /// Most words in one request, name included [1024]. Over → protocol error.
    pub max_args: usize,
    /// Longest inline (telnet) command line [64 KiB]. Over → protocol error.
    pub max_inline_bytes: usize,
    /// Largest request while it is incomplete: the bound on a connection's
    /// unparsed input [1 MiB]. Over → protocol error.
    pub max_request_bytes: usize,
    /// Replies queued but not yet taken by the peer [4 MiB]. When this is
    /// passed and the peer does not read for a second, the connection is
    /// cut off (a client that pipelines but never reads).
    pub max_reply_buffer_bytes: usize,
    /// Commands of one connection in the service at once (pipelined
    /// `CONCURRENT` commands) [64].
    pub max_pipeline_in_flight: usize,
    /// Commands in the service at once on one core [4096]. Over → `-OVERLOADED`.
    pub max_in_flight_per_core: usize,
    /// Open connections on one core [10,000]. Over → `-ERR max number of clients reached` and close.
    pub max_connections_per_core: usize,
    /// A connection with no request for this long is closed [300 s].
    pub idle_timeout: Duration,
    /// A started request must be complete within this [30 s] (slow senders).
    pub request_timeout: Duration,
    /// A reply write that makes no progress for this long closes the connection [30 s].
    pub write_timeout: Duration,
}

impl Default for RespLimits {
    fn default() -> Self {
        let d = DecodeLimits::default();
        RespLimits {
            max_bulk_bytes: d.max_bulk_bytes,
            max_args: d.max_args,
            max_inline_bytes: d.max_inline_bytes,
            max_request_bytes: d.max_request_bytes,
            max_reply_buffer_bytes: 4 * 1024 * 1024,
            max_pipeline_in_flight: 64,
            max_in_flight_per_core: 4096,
            max_connections_per_core: 10_000,
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl RespLimits {
    pub(crate) fn decode(&self) -> DecodeLimits {
        DecodeLimits {
            max_bulk_bytes: self.max_bulk_bytes,
            max_args: self.max_args,
            max_inline_bytes: self.max_inline_bytes,
            max_request_bytes: self.max_request_bytes,
        }
    }

    pub fn validate(&self) -> io::Result<()> {
        let bad = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, format!("resp limits: {what}")));
        if self.max_args == 0 || self.max_pipeline_in_flight == 0 || self.max_in_flight_per_core == 0 || self.max_connections_per_core == 0
        {
            return bad("max_args, max_pipeline_in_flight, max_in_flight_per_core and max_connections_per_core must be >= 1");
        }
        if self.max_inline_bytes < 64 || self.max_reply_buffer_bytes < 1024 {
            return bad("max_inline_bytes must be >= 64 and max_reply_buffer_bytes >= 1024");
        }
        if self.max_request_bytes < self.max_bulk_bytes + 64 {
            return bad("max_request_bytes must be >= max_bulk_bytes + 64");
        }
        if self.idle_timeout.is_zero() || self.request_timeout.is_zero() || self.write_timeout.is_zero() {
            return bad("timeouts must be > 0");
        }
        Ok(())
    }
}

/// Listeners bound, not serving yet.
pub struct RespServer {
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
    limits: RespLimits,
    stats: RespStats,
    ids: Arc<AtomicU64>,
    epoll: bool,
}

impl RespServer {
    /// Bind `cfg.cores` SO_REUSEPORT listeners on `cfg.addr` (port 0: the
    /// first picks a free port, the others join it). A port another process
    /// listens on is refused ("port N is in use by another process"), as the
    /// HTTP server does.
    pub fn bind(cfg: RespConfig) -> io::Result<Self> {
        cfg.limits.validate()?;
        if cfg.cores == 0 || cfg.cores > 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cores must be in 1..=1024"));
        }
        crate::server::probe_port(cfg.addr)?;
        let mut addr = cfg.addr;
        let mut listeners = Vec::with_capacity(cfg.cores);
        for _ in 0..cfg.cores {
            let l = bind_reuseport(addr)?;
            addr = l.local_addr()?;
            listeners.push(l);
        }
        Ok(RespServer {
            listeners,
            local_addr: addr,
            limits: cfg.limits,
            stats: RespStats::new(cfg.cores),
            ids: Arc::new(AtomicU64::new(0)),
            epoll: crate::server::force_epoll(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters of every core; readable while the server runs.
    pub fn stats(&self) -> RespStats {
        self.stats.clone()
    }

    /// Use the epoll driver in [`RespServer::run`] (default: `MAPLE_NET_DRIVER=epoll`).
    pub fn epoll(mut self, epoll: bool) -> Self {
        self.epoll = epoll;
        self
    }

    /// One [`RespCore`] per listener, to be served on runtimes the caller
    /// owns (e.g. the HTTP server's cores). Index = core index.
    pub fn into_cores(self) -> Vec<RespCore> {
        let RespServer { listeners, limits, stats, ids, .. } = self;
        listeners
            .into_iter()
            .enumerate()
            .map(|(index, listener)| RespCore { index, listener, limits: limits.clone(), counters: stats.core(index), ids: ids.clone() })
            .collect()
    }

    /// Serve on threads of its own (one runtime per core) until `shutdown`,
    /// drain connections for at most `drain`, then call each core's
    /// [`RespService::drain`]. `factory(core)` runs on that core's thread.
    pub fn run<S, F>(self, factory: F, shutdown: Shutdown, drain: Duration) -> io::Result<RespStats>
    where
        S: RespService,
        F: Fn(usize) -> S + Send + Sync + 'static,
    {
        let stats = self.stats.clone();
        let epoll = self.epoll;
        let factory = Arc::new(factory);
        let cores = self.into_cores();
        let busy = Arc::new(AtomicUsize::new(cores.len()));
        let mut threads = Vec::with_capacity(cores.len());
        for core in cores {
            let factory = factory.clone();
            let thread_shutdown = shutdown.clone();
            let busy = busy.clone();
            let spawned = std::thread::Builder::new().name(format!("maple-resp-{}", core.index)).spawn(move || {
                let index = core.index;
                let core_shutdown = thread_shutdown.clone();
                let main = async move {
                    let service = Rc::new(factory(index));
                    let result = core.serve(service.clone(), core_shutdown, drain).await;
                    busy.fetch_sub(1, Ordering::SeqCst);
                    // Keep this runtime until every core is done (a service may wait on another core).
                    let deadline = monoio::time::Instant::now() + drain;
                    while busy.load(Ordering::SeqCst) > 0 && monoio::time::Instant::now() < deadline {
                        monoio::time::sleep(Duration::from_millis(5)).await;
                    }
                    if monoio::time::timeout(SERVICE_DRAIN_BUDGET, service.drain()).await.is_err() {
                        tracing::warn!(core = index, "RESP service drain did not finish in {SERVICE_DRAIN_BUDGET:?}");
                    }
                    result
                };
                let result = if epoll {
                    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().and_then(|mut rt| rt.block_on(main))
                } else {
                    monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build().and_then(|mut rt| rt.block_on(main))
                };
                if let Err(e) = &result {
                    tracing::error!(core = index, error = %e, "RESP core failed; stopping the server");
                    thread_shutdown.trigger();
                }
                result
            });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    shutdown.trigger();
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        let mut first_err = None;
        for t in threads {
            let r = t.join().unwrap_or_else(|_| {
                shutdown.trigger();
                Err(io::Error::other("RESP core thread panicked"))
            });
            if let (Err(e), None) = (r, &first_err) {
                first_err = Some(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }
}

/// One core's listener and counters. `Send`: move it to the core's thread,
/// then [`RespCore::serve`] it inside that thread's monoio runtime (timer enabled).
pub struct RespCore {
    index: usize,
    listener: std::net::TcpListener,
    limits: RespLimits,
    counters: Arc<RespCounters>,
    ids: Arc<AtomicU64>,
}

impl RespCore {
    pub fn index(&self) -> usize {
        self.index
    }

    /// Accept and serve until `shutdown`; then let connections finish the
    /// commands they have read (idle ones close at once) for at most
    /// `drain`, drop the rest, and return. Does not call
    /// [`RespService::drain`]: the owner of the service does.
    pub async fn serve<S: RespService>(self, service: S, shutdown: Shutdown, drain: Duration) -> io::Result<()> {
        let RespCore { index, listener, limits, counters, ids } = self;
        let listener = monoio::net::TcpListener::from_std(listener)?;
        let table = CommandTable::new(service.commands());
        let ident = service.ident();
        let core = Rc::new(Core {
            index,
            service,
            table,
            ident,
            limits,
            counters,
            ids,
            in_flight: Cell::new(0),
            connections: Cell::new(0),
            rejecting: Cell::new(0),
            draining: LocalSignal::new(),
            abort: LocalSignal::new(),
            shutdown: shutdown.clone(),
        });
        let waiter = {
            let core = core.clone();
            monoio::spawn(async move {
                shutdown.wait().await;
                core.draining.fire();
            })
        };
        accept_loop(&core, listener).await;
        let deadline = monoio::time::Instant::now() + drain;
        while core.connections.get() > 0 && monoio::time::Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
        if core.connections.get() > 0 {
            tracing::warn!(core = index, open = core.connections.get(), "RESP drain budget exhausted, dropping connections");
            core.abort.fire();
            let give_up = monoio::time::Instant::now() + Duration::from_millis(200);
            while core.connections.get() > 0 && monoio::time::Instant::now() < give_up {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        waiter.await;
        Ok(())
    }
}

async fn accept_loop<S: RespService>(core: &Rc<Core<S>>, listener: monoio::net::TcpListener) {
    loop {
        let accepted = monoio::select! {
            _ = core.draining.wait() => None,
            r = listener.accept() => Some(r),
        };
        let (stream, _peer) = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                RespCounters::inc(&core.counters.io_errors);
                tracing::debug!(core = core.index, error = %e, "RESP accept failed");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if core.shutdown.is_triggered() {
            break;
        }
        RespCounters::inc(&core.counters.connections_accepted);
        if core.connections.get() >= core.limits.max_connections_per_core {
            RespCounters::inc(&core.counters.connections_rejected);
            if core.rejecting.get() < core.limits.max_connections_per_core {
                core.rejecting.set(core.rejecting.get() + 1);
                let core = core.clone();
                monoio::spawn(async move {
                    conn::reject(&core, stream).await;
                    core.rejecting.set(core.rejecting.get() - 1);
                });
            }
            continue;
        }
        let _ = stream.set_nodelay(true);
        core.connections.set(core.connections.get() + 1);
        RespCounters::inc(&core.counters.connections_active);
        let core = core.clone();
        monoio::spawn(async move {
            conn::serve(&core, stream).await;
            core.connections.set(core.connections.get() - 1);
            RespCounters::dec(&core.counters.connections_active);
        });
    }
}

/// The same SO_REUSEPORT bind as the HTTP server's (a private helper there,
/// copied rather than shared so net/src/server stays untouched).
fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
