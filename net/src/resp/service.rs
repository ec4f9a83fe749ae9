//! What a RESP service implements, and the per-connection state it sees.

use super::command::{Command, CommandSpec};
use super::reply::{Protocol, Reply};
use bytes::Bytes;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// An authenticated identity, returned by [`RespService::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who the token names (for maple: the JWT subject).
    pub user: String,
    /// After this instant the connection counts as unauthenticated again
    /// (a JWT's `exp`); `None` = until the connection ends.
    pub expires: Option<SystemTime>,
}

/// How the server presents itself in `HELLO` (and `CONFIG GET` for tools).
#[derive(Debug, Clone)]
pub struct ServerIdent {
    pub server: &'static str,
    pub version: &'static str,
    /// `standalone` or `cluster`.
    pub mode: &'static str,
    /// `master` or `replica`.
    pub role: &'static str,
    /// `CONFIG GET` answers (redis-benchmark asks for `save` and
    /// `appendonly` before it starts). Patterns are matched exactly or `*`.
    pub config: Vec<(&'static str, String)>,
}

impl Default for ServerIdent {
    fn default() -> Self {
        ServerIdent {
            server: "maple",
            version: env!("CARGO_PKG_VERSION"),
            mode: "standalone",
            role: "master",
            config: vec![("save", String::new()), ("appendonly", "no".into())],
        }
    }
}

/// One connection's state. The server owns it and changes it only through
/// the connection commands (`HELLO`, `AUTH`, `CLIENT SETNAME`, `RESET`, ...);
/// the service reads it.
#[derive(Debug, Clone)]
pub struct ConnState {
    id: u64,
    core: usize,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    created: Instant,
    pub(crate) protocol: Protocol,
    pub(crate) name: Option<Bytes>,
    pub(crate) auth: Option<Authenticated>,
    pub(crate) lib_name: Option<Bytes>,
    pub(crate) lib_ver: Option<Bytes>,
    pub(crate) last_command: &'static str,
    pub(crate) last_active: Instant,
}

impl ConnState {
    pub fn new(id: u64, core: usize, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Self {
        let now = Instant::now();
        ConnState {
            id,
            core,
            peer,
            local,
            created: now,
            protocol: Protocol::Resp2,
            name: None,
            auth: None,
            lib_name: None,
            lib_ver: None,
            last_command: "NULL",
            last_active: now,
        }
    }

    /// Client id (`CLIENT ID`), unique for the server's lifetime.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Index of the core serving this connection.
    pub fn core(&self) -> usize {
        self.core
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    pub fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// `CLIENT SETNAME` / `HELLO ... SETNAME`.
    pub fn name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }

    /// The authenticated user, unless none or expired.
    pub fn user(&self) -> Option<&str> {
        self.auth.as_ref().filter(|a| a.expires.is_none_or(|e| SystemTime::now() < e)).map(|a| a.user.as_str())
    }

    /// The identity as authenticated (also when expired).
    pub fn auth(&self) -> Option<&Authenticated> {
        self.auth.as_ref()
    }

    pub fn age(&self) -> std::time::Duration {
        self.created.elapsed()
    }

    /// Set the protocol (for tests of a service).
    pub fn with_protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }

    /// Set the identity (for tests of a service).
    pub fn with_auth(mut self, a: Authenticated) -> Self {
        self.auth = Some(a);
        self
    }
}

/// A per-core RESP service (built on its core's thread, like
/// [`crate::Service`], so it may hold `Rc`/`RefCell` and needs no `Send`).
///
/// The server resolves the command name against [`RespService::commands`],
/// checks its arity and (for [`super::Flags::AUTH`]) authentication, and
/// answers the connection commands itself; everything else comes here.
pub trait RespService: 'static {
    /// The commands this service answers. Read once per core at start.
    fn commands(&self) -> Vec<CommandSpec>;

    /// Answer one command. `conn` is read-only here: commands flagged
    /// [`super::Flags::CONCURRENT`] of one connection may be in flight at once.
    fn call(&self, conn: &ConnState, cmd: Command) -> impl Future<Output = Reply>;

    /// Verify a token for `AUTH [user] token` / `HELLO .. AUTH user token`.
    /// `Err(reply)` is sent to the client as is (e.g.
    /// `-WRONGPASS invalid username-password pair or user is disabled.`).
    fn authenticate(&self, conn: &ConnState, user: Option<&[u8]>, token: &[u8]) -> impl Future<Output = Result<Authenticated, Reply>> {
        let _ = (conn, user, token);
        std::future::ready(Err(Reply::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        )))
    }

    /// `HELLO` and `CONFIG GET` answers.
    fn ident(&self) -> ServerIdent {
        ServerIdent::default()
    }

    /// Called once on the core's runtime when a standalone
    /// [`super::RespServer::run`] ends, after every connection is done.
    /// (A service shared with the HTTP server drains in its HTTP `drain`.)
    fn drain(&self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

impl<T: RespService> RespService for std::rc::Rc<T> {
    fn commands(&self) -> Vec<CommandSpec> {
        (**self).commands()
    }
    fn call(&self, conn: &ConnState, cmd: Command) -> impl Future<Output = Reply> {
        (**self).call(conn, cmd)
    }
    fn authenticate(&self, conn: &ConnState, user: Option<&[u8]>, token: &[u8]) -> impl Future<Output = Result<Authenticated, Reply>> {
        (**self).authenticate(conn, user, token)
    }
    fn ident(&self) -> ServerIdent {
        (**self).ident()
    }
    fn drain(&self) -> impl Future<Output = ()> {
        (**self).drain()
    }
}
