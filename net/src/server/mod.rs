//! Thread-per-core HTTP/1.1 server: one OS thread and one monoio runtime
//! per core, each with its own SO_REUSEPORT listener on the same address,
//! its own [`Service`] instance and its own counters. Cores share nothing on
//! the request path.

mod config;
mod conn;
mod encode;
mod parse;
mod stats;

pub use config::{Limits, ServerConfig};
pub use encode::error_response;
pub use stats::{CoreCounters, CoreSnapshot, ServerStats};

use crate::http::Service;
use crate::shutdown::{LocalSignal, Shutdown};
use conn::Core;
use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long [`Service::drain`] may take after the connections are done.
const SERVICE_DRAIN_BUDGET: Duration = Duration::from_secs(5);

/// Bind every core's listener, serve until `shutdown` is triggered, drain
/// for at most `drain`, return the final counters.
///
/// `factory(core_index)` runs on that core's thread inside its runtime, so
/// the service may `monoio::spawn` background tasks.
pub fn run_server<S, F>(cfg: ServerConfig, factory: F, shutdown: Shutdown, drain: Duration) -> io::Result<ServerStats>
where
    S: Service,
    F: Fn(usize) -> S + Send + Sync + 'static,
{
    BoundServer::bind(cfg)?.run(factory, shutdown, drain)
}

/// Listeners bound (so the real port is known, e.g. after binding port 0)
/// but not serving yet.
pub struct BoundServer {
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
    limits: config::Limits,
    stats: ServerStats,
    pin_cores: bool,
    epoll: bool,
}

impl BoundServer {
    /// Bind `cfg.cores` SO_REUSEPORT listeners on `cfg.addr`. With port 0,
    /// the first picks a free port and the others join it. A port another
    /// process listens on is refused (`AddrInUse`, "port N is in use by
    /// another process"), even if that process used SO_REUSEPORT too: see
    /// [`probe_port`].
    pub fn bind(cfg: ServerConfig) -> io::Result<Self> {
        cfg.limits.validate()?;
        if cfg.cores == 0 || cfg.cores > 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cores must be in 1..=1024"));
        }
        probe_port(cfg.addr)?;
        let mut addr = cfg.addr;
        let mut listeners = Vec::with_capacity(cfg.cores);
        for _ in 0..cfg.cores {
            let l = bind_reuseport(addr)?;
            addr = l.local_addr()?;
            listeners.push(l);
        }
        Ok(BoundServer {
            listeners,
            local_addr: addr,
            limits: cfg.limits,
            stats: ServerStats::new(cfg.cores),
            pin_cores: false,
            epoll: force_epoll(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Counters of every core; readable while the server runs.
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Pin core `i`'s thread to CPU `i % available` (Linux; ignored elsewhere).
    pub fn pin_cores(mut self, pin: bool) -> Self {
        self.pin_cores = pin;
        self
    }

    /// Use the epoll driver instead of io_uring-with-epoll-fallback
    /// (default: `MAPLE_NET_DRIVER=epoll` in the environment).
    pub fn epoll(mut self, epoll: bool) -> Self {
        self.epoll = epoll;
        self
    }

    /// Serve until `shutdown` is triggered; see [`run_server`].
    pub fn run<S, F>(self, factory: F, shutdown: Shutdown, drain: Duration) -> io::Result<ServerStats>
    where
        S: Service,
        F: Fn(usize) -> S + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        let cores = self.listeners.len();
        // Cores still serving connections. A core that has drained keeps its
        // runtime alive until every core has, so cross-core requests from a
        // slower core still get answered.
        let cores_busy = Arc::new(AtomicUsize::new(cores));
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut threads = Vec::with_capacity(cores);
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let factory = factory.clone();
            let core_shutdown = shutdown.clone();
            let limits = self.limits.clone();
            let counters = self.stats.core(i);
            let cores_busy = cores_busy.clone();
            let pin = self.pin_cores;
            let epoll = self.epoll;
            let spawned = std::thread::Builder::new().name(format!("maple-core-{i}")).spawn(move || {
                if pin {
                    if let Err(e) = monoio::utils::bind_to_cpu_set([i % cpus]) {
                        tracing::warn!(core = i, error = ?e, "could not pin core thread");
                    }
                }
                let result = run_core(i, listener, &*factory, limits, counters, &core_shutdown, drain, &cores_busy, epoll);
                if result.is_err() {
                    // One core failed: stop the others instead of serving half.
                    core_shutdown.trigger();
                    cores_busy.fetch_sub(1, Ordering::SeqCst);
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
            let r = match t.join() {
                Ok(r) => r,
                Err(_) => {
                    shutdown.trigger();
                    Err(io::Error::other("core thread panicked"))
                }
            };
            if let (Err(e), None) = (r, &first_err) {
                first_err = Some(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(self.stats),
        }
    }
}

/// `MAPLE_NET_DRIVER=epoll` forces the epoll driver even where io_uring
/// works (to test the path Docker's default seccomp profile forces).
pub fn force_epoll() -> bool {
    std::env::var("MAPLE_NET_DRIVER").is_ok_and(|v| v.eq_ignore_ascii_case("epoll"))
}

/// Refuse a port another process listens on. Our listeners use
/// SO_REUSEPORT (one per core), and so would a second `maple serve`: the
/// kernel would let it join and split the connections between two nodes.
/// A probe bound WITHOUT SO_REUSEPORT conflicts with any listening socket
/// on the port (EADDRINUSE); with SO_REUSEADDR, the TIME_WAIT leftovers of
/// a previous instance are no conflict. Port 0 (any free port) is skipped.
///
/// The probe is closed before the real listeners bind, so two processes
/// probing within the same few microseconds could both pass and share the
/// port. Accepted: a restart on the same data dir cannot race (it takes the
/// data dir lock first and binds only once the old process is gone), and
/// two nodes on different data dirs started at the same instant on the same
/// port is an operator error this catches in every other timing. Holding
/// the probe while binding would not close the window either: a bound,
/// non-listening socket does not stop a later SO_REUSEPORT bind.
pub(crate) fn probe_port(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.port() == 0 {
        return Ok(());
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    match socket.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            tracing::error!(%addr, "port {} is in use by another process", addr.port());
            Err(io::Error::new(io::ErrorKind::AddrInUse, format!("port {} is in use by another process", addr.port())))
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot bind");
            Err(e)
        }
    }
}

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

#[allow(clippy::too_many_arguments)]
fn run_core<S, F>(
    index: usize,
    listener: std::net::TcpListener,
    factory: &F,
    limits: Limits,
    counters: Arc<CoreCounters>,
    shutdown: &Shutdown,
    drain: Duration,
    cores_busy: &AtomicUsize,
    epoll: bool,
) -> io::Result<()>
where
    S: Service,
    F: Fn(usize) -> S,
{
    let core_main = async move {
        if index == 0 {
            tracing::info!(legacy_epoll = monoio::utils::is_legacy(), "monoio driver (legacy = epoll fallback, io_uring blocked)");
        }
        let listener = monoio::net::TcpListener::from_std(listener)?;
        let core = Rc::new(Core {
            service: factory(index),
            limits,
            counters,
            in_flight: Cell::new(0),
            connections: Cell::new(0),
            rejecting: Cell::new(0),
            draining: LocalSignal::new(),
            abort: LocalSignal::new(),
            shutdown: shutdown.clone(),
            date: Default::default(),
        });
        {
            let core = core.clone();
            let shutdown = shutdown.clone();
            monoio::spawn(async move {
                shutdown.wait().await;
                core.draining.fire();
            });
        }
        accept_loop(&core, listener).await;
        // Drain: connections finish their request and close; idle ones closed already.
        let deadline = monoio::time::Instant::now() + drain;
        const TICK: Duration = Duration::from_millis(5);
        while core.connections.get() > 0 && monoio::time::Instant::now() < deadline {
            monoio::time::sleep(TICK).await;
        }
        cores_busy.fetch_sub(1, Ordering::SeqCst);
        while cores_busy.load(Ordering::SeqCst) > 0 && monoio::time::Instant::now() < deadline {
            monoio::time::sleep(TICK).await;
        }
        if core.connections.get() > 0 {
            tracing::warn!(core = index, open = core.connections.get(), "drain budget exhausted, dropping connections");
            core.abort.fire();
            // Let the woken connection tasks run and drop their sockets.
            let give_up = monoio::time::Instant::now() + Duration::from_millis(200);
            while core.connections.get() > 0 && monoio::time::Instant::now() < give_up {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        // Last: no request of any core can start new work here any more.
        // Its own bound, so an exhausted drain budget still lets it flush.
        if monoio::time::timeout(SERVICE_DRAIN_BUDGET, core.service.drain()).await.is_err() {
            tracing::warn!(core = index, "service drain did not finish in {SERVICE_DRAIN_BUDGET:?}");
        }
        Ok(())
    };
    if epoll {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build()?.block_on(core_main)
    } else {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build()?.block_on(core_main)
    }
}

async fn accept_loop<S: Service>(core: &Rc<Core<S>>, listener: monoio::net::TcpListener) {
    loop {
        let accepted = monoio::select! {
            _ = core.draining.wait() => None,
            r = listener.accept() => Some(r),
        };
        let (stream, peer) = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                CoreCounters::inc(&core.counters.io_errors);
                // EMFILE and friends: back off instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if core.shutdown.is_triggered() {
            // Raced the trigger: do not start serving a new connection.
            drop(stream);
            break;
        }
        CoreCounters::inc(&core.counters.connections_accepted);
        if core.connections.get() >= core.limits.max_connections_per_core {
            CoreCounters::inc(&core.counters.connections_rejected);
            // Bound the 503 writers too; past that, just close.
            if core.rejecting.get() < core.limits.max_connections_per_core {
                core.rejecting.set(core.rejecting.get() + 1);
                let core = core.clone();
                monoio::spawn(async move {
                    conn::reject(core.clone(), stream).await;
                    core.rejecting.set(core.rejecting.get() - 1);
                });
            }
            continue;
        }
        let _ = stream.set_nodelay(true);
        core.connections.set(core.connections.get() + 1);
        CoreCounters::inc(&core.counters.connections_active);
        let core = core.clone();
        monoio::spawn(async move {
            conn::serve(core.clone(), stream, peer).await;
            core.connections.set(core.connections.get() - 1);
            CoreCounters::dec(&core.counters.connections_active);
        });
    }
    // Dropping the listener here makes new connects fail (once every core has).
}
