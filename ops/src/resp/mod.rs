//! The node's RESP service (issue 12): the per-core [`net::resp::RespService`]
//! next to the HTTP [`crate::http::CoreService`] on the same core runtime,
//! calling the same owner runtime (`engine::owner::Shard`) the same way the
//! HTTP routes do: a like over RESP and a like over HTTP are one code path
//! from `Shard::toggle` down (durable before it is answered).
//!
//! Commands: `LIKE.TOGGLE character [IDEMPOTENCY key]`, `LIKE.STATUS
//! character` (both need `AUTH` with the HS256 JWT of the HTTP API),
//! `LIKE.COUNT character`, `EXPECT.GET character [PRESET n] [GZIP]`,
//! `EXPECT.RECALC character [GZIP]`, `EQUIP.GET character [GZIP]`,
//! `INFO [section ...]`, `CLUSTER SHARDS|SLOTS|NODES|KEYSLOT|INFO|MYID`.
//! net answers the connection commands (`PING`, `HELLO`, `AUTH`, ...).
//! The first argument of every keyed command is the character: its
//! normalised name's slot decides `-MOVED` / `-TRYAGAIN` ([`Topology`]).

pub mod cluster;
pub mod info;
pub mod topology;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use engine::owner::{DocOp, Groups, Key, OwnerError, Place, Served, Shard};
use engine::partition::{IdempotencyKey, LikeResult, UserId};
use net::resp::{Authenticated, Command, CommandSpec, ConnState, Flags, Protocol, Reply, RespCore, RespService, RespStats, ServerIdent};

use crate::http::error::status_code;
use crate::http::service::CoreInner;
use crate::http::{LazyGroups, NodeShared};
pub use topology::{Location, Topology};

/// How often each core publishes its partitions' sizes for `INFO keyspace`.
const KEYSPACE_EVERY: Duration = Duration::from_secs(1);

/// Sizes of one partition, published by its core (read by `INFO` on any core).
#[derive(Debug, Default)]
pub struct PartitionSizes {
    pub liked_characters: AtomicU64,
    pub relations: AtomicU64,
    pub expectations: AtomicU64,
    pub idempotency_keys: AtomicU64,
}

/// The RESP side of the node, shared by every core (`Send + Sync`).
pub struct RespShared {
    /// The bound address (the real port after `:0`).
    pub addr: SocketAddr,
    pub stats: RespStats,
    pub topology: Arc<dyn Topology>,
    /// `-MOVED` answers sent (a cluster-aware client with a fresh map causes none).
    pub moved: AtomicU64,
    /// `-TRYAGAIN` answers sent (a partition without a leader).
    pub tryagain: AtomicU64,
    pub started: Instant,
    /// Index = partition.
    pub sizes: Vec<PartitionSizes>,
    cores: Mutex<Vec<Option<RespCore>>>,
}

impl RespShared {
    pub fn new(server: net::resp::RespServer, topology: Arc<dyn Topology>, partitions: u32) -> RespShared {
        let (addr, stats) = (server.local_addr(), server.stats());
        RespShared {
            addr,
            stats,
            topology,
            moved: AtomicU64::new(0),
            tryagain: AtomicU64::new(0),
            started: Instant::now(),
            sizes: (0..partitions).map(|_| PartitionSizes::default()).collect(),
            cores: Mutex::new(server.into_cores().into_iter().map(Some).collect()),
        }
    }

    /// Core `core`'s listener (once).
    pub fn take_core(&self, core: usize) -> Option<RespCore> {
        self.cores.lock().unwrap_or_else(|p| p.into_inner()).get_mut(core).and_then(Option::take)
    }
}

/// The commands, in the order [`RespNode::call`] matches their index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    LikeToggle,
    LikeStatus,
    LikeCount,
    ExpectGet,
    ExpectRecalc,
    EquipGet,
    Info,
    Cluster,
}

const CMDS: [Cmd; 8] =
    [Cmd::LikeToggle, Cmd::LikeStatus, Cmd::LikeCount, Cmd::ExpectGet, Cmd::ExpectRecalc, Cmd::EquipGet, Cmd::Info, Cmd::Cluster];

fn specs() -> Vec<CommandSpec> {
    let keyed = |name, arity, flags: Flags, summary, hint| {
        CommandSpec::new(name, arity).key_at(1).flags(flags | Flags::CONCURRENT).doc("maple", summary, hint)
    };
    let specs = vec![
        keyed(
            "like.toggle",
            -2,
            Flags::WRITE | Flags::AUTH | Flags::FAST,
            "Toggles the authenticated user's like of a character; [liked, likeCount] once durable.",
            "character [IDEMPOTENCY key]",
        ),
        keyed(
            "like.status",
            2,
            Flags::READONLY | Flags::AUTH | Flags::FAST,
            "The user's like of a character: [liked, likeCount].",
            "character",
        ),
        keyed("like.count", 2, Flags::READONLY | Flags::FAST, "The like count of a character.", "character"),
        keyed(
            "expect.get",
            -2,
            Flags::READONLY,
            "The V4 expectation JSON of a character (or its stored gzip bytes).",
            "character [PRESET n] [GZIP]",
        ),
        keyed("expect.recalc", -2, Flags::WRITE, "Recomputes a character's expectation from fresh equipment.", "character [GZIP]"),
        keyed("equip.get", -2, Flags::READONLY, "The character's equipment JSON as fetched (or gzip).", "character [GZIP]"),
        CommandSpec::new("info", -1).flags(Flags::LOADING | Flags::STALE).doc(
            "server",
            "Node information and statistics.",
            "[section [section ...]]",
        ),
        CommandSpec::new("cluster", -2).flags(Flags::LOADING | Flags::STALE).doc(
            "cluster",
            "Cluster map: SHARDS, SLOTS, NODES, KEYSLOT, INFO, MYID.",
            "subcommand",
        ),
    ];
    debug_assert_eq!(specs.len(), CMDS.len());
    specs
}

/// One core's RESP service.
pub struct RespNode {
    core: usize,
    node: Arc<NodeShared>,
    resp: Arc<RespShared>,
    shard: Rc<Shard>,
    /// The core's HTTP/peer side: a keyed toggle whose user's partition is
    /// led by another node reserves its key there, as HTTP does.
    peer: Weak<CoreInner>,
}

impl RespNode {
    /// On the core's thread: the service, and the task that publishes the
    /// core's partition sizes for `INFO keyspace` (ends at shutdown).
    pub fn new(core: usize, node: Arc<NodeShared>, resp: Arc<RespShared>, shard: Rc<Shard>, groups: Rc<LazyGroups>) -> RespNode {
        spawn_sizes(core, node.clone(), resp.clone(), groups);
        RespNode { core, node, resp, shard, peer: Weak::new() }
    }

    /// Spawn the RESP listener of `inner`'s core on this runtime (a no-op
    /// without RESP). The handle ends once the listener drained after shutdown.
    pub fn serve(inner: &Rc<CoreInner>) -> Option<monoio::task::JoinHandle<std::io::Result<()>>> {
        let (core, node) = (inner.core, &inner.shared);
        let resp = node.resp.clone()?;
        let Some(listener) = resp.take_core(core) else {
            tracing::error!(core, "no RESP listener for core {core}: RESP is not served on it");
            return None;
        };
        let mut service = RespNode::new(core, node.clone(), resp, inner.shard.clone(), inner.groups.clone());
        service.peer = Rc::downgrade(inner);
        Some(monoio::spawn(listener.serve(service, node.shutdown.clone(), node.cfg.drain)))
    }

    fn key(&self, name: &Bytes) -> Result<Key, Reply> {
        let raw = std::str::from_utf8(name).map_err(|_| Reply::err("character name is not valid UTF-8"))?;
        let key = engine::name::normalize_name(raw).map_err(Reply::err)?;
        let slot = replication::slot_of(&key);
        let partition = self.node.slots.partition_of(slot);
        Ok(Key { display: raw.trim().to_owned(), key, slot, partition, core: self.node.slots.core_of(partition) })
    }

    /// The key of a keyed command, if it is served here.
    fn local_key(&self, conn: &ConnState, name: &Bytes) -> Result<Key, Reply> {
        let key = self.key(name)?;
        match self.resp.topology.locate(key.slot) {
            Location::Local => Ok(key),
            Location::Moved(addr) => {
                self.resp.moved.fetch_add(1, Ordering::Relaxed);
                let (host, port) = topology::advertised(&addr, conn.local());
                let host = if host.contains(':') { format!("[{host}]") } else { host };
                Err(Reply::error(format!("MOVED {} {host}:{port}", key.slot)))
            }
            Location::TryAgain => {
                // A partition without a leader because the storage under it
                // failed will not get one by retrying: say why, as HTTP does.
                if let Some(why) = self.node.storage.down() {
                    tracing::debug!(slot = key.slot, "RESP command refused: storage down");
                    return Err(Reply::error(format!("STORAGE {why} (STORAGE_UNAVAILABLE)")));
                }
                self.resp.tryagain.fetch_add(1, Ordering::Relaxed);
                Err(Reply::error(format!("TRYAGAIN partition {} of slot {} has no leader yet; retry", key.partition, key.slot)))
            }
        }
    }

    async fn keyed(&self, conn: &ConnState, cmd: Cmd, args: &[Bytes]) -> Reply {
        let key = match self.local_key(conn, &args[0]) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let opts = &args[1..];
        match cmd {
            Cmd::LikeToggle | Cmd::LikeStatus => self.like(conn, cmd, key, opts).await,
            Cmd::LikeCount => match self.shard.count(key).await {
                Ok(n) => Reply::Int(n as i64),
                Err(e) => self.owner_error(&e),
            },
            Cmd::ExpectGet => {
                let mut preset = None;
                let mut gzip = false;
                let mut i = 0;
                while i < opts.len() {
                    let o = &opts[i];
                    if o.eq_ignore_ascii_case(b"gzip") {
                        gzip = true;
                        i += 1;
                    } else if o.eq_ignore_ascii_case(b"preset") && i + 1 < opts.len() {
                        match std::str::from_utf8(&opts[i + 1]).ok().and_then(|s| s.parse::<u8>().ok()).filter(|n| (1..=3).contains(n)) {
                            Some(n) => preset = Some(n),
                            None => return Reply::err(format_args!("PRESET must be 1, 2 or 3, got '{}'", lossy(&opts[i + 1]))),
                        }
                        i += 2;
                    } else {
                        return syntax_error(o);
                    }
                }
                let op = match preset {
                    Some(n) => DocOp::Preset(n),
                    None => DocOp::Expectation { force: false },
                };
                self.doc(op, key, gzip).await
            }
            Cmd::ExpectRecalc | Cmd::EquipGet => {
                let gzip = match opts {
                    [] => false,
                    [o] if o.eq_ignore_ascii_case(b"gzip") => true,
                    [o, ..] => return syntax_error(o),
                };
                let op = if cmd == Cmd::EquipGet { DocOp::Equipment } else { DocOp::Expectation { force: true } };
                self.doc(op, key, gzip).await
            }
            Cmd::Info | Cmd::Cluster => Reply::err("not a keyed command"),
        }
    }

    async fn like(&self, conn: &ConnState, cmd: Cmd, character: Key, opts: &[Bytes]) -> Reply {
        // The server checked AUTH (and its expiry) before the call.
        let Some(user) = conn.user() else { return Reply::error("NOAUTH Authentication required.") };
        let user = match UserId::parse(user) {
            Ok(u) => u,
            Err(e) => return Reply::err(e),
        };
        let result = if cmd == Cmd::LikeToggle {
            let key = match opts {
                [] => None,
                [o, k] if o.eq_ignore_ascii_case(b"idempotency") => match IdempotencyKey::parse(k) {
                    Ok(key) => {
                        let partition = self.node.slots.partition_of(replication::slot_of(user.as_str()));
                        Some((key, Place { partition, core: self.node.slots.core_of(partition) }, k))
                    }
                    Err(e) => return Reply::err(e),
                },
                [o, ..] => return syntax_error(o),
            };
            match key {
                // The user's partition is led by another node: reserve the key there first.
                Some((key, home, raw)) if home.partition != character.partition && !self.leads(home.partition) => {
                    let Some(peer) = self.peer.upgrade() else { return Reply::error("TRYAGAIN the node is stopping") };
                    // RESP has no trace context: a fresh one ties both nodes' lines of this forward.
                    let tp = crate::http::trace::fresh();
                    if let Some(refused) = peer.reserve_remote(&user, raw, &character, home.partition, &tp).await {
                        return refused_reply(&refused);
                    }
                    self.shard.toggle_reserved(user, character, Some(key)).await
                }
                key => self.shard.toggle(user, character, key.map(|(k, home, _)| (k, home))).await,
            }
        } else {
            if let Some(o) = opts.first() {
                return syntax_error(o);
            }
            self.shard.status(user, character).await
        };
        match result {
            Ok(r) => like_reply(r, conn.protocol()),
            Err(e) => self.owner_error(&e),
        }
    }

    async fn doc(&self, op: DocOp, key: Key, gzip: bool) -> Reply {
        match self.shard.doc(op, key).await {
            Ok(served) => doc_reply(&served, gzip),
            Err(e) => self.owner_error(&e),
        }
    }

    /// True when this node serves partition `p` (always on a single node).
    fn leads(&self, p: u32) -> bool {
        self.node.cluster.view.route(p) == replication::Route::Local
    }

    fn owner_error(&self, e: &OwnerError) -> Reply {
        owner_reply(e, || self.node.storage.down())
    }

    fn cluster(&self, conn: &ConnState, args: &[Bytes]) -> Reply {
        let sub = args[0].to_ascii_lowercase();
        let topo = &self.resp.topology;
        let local = conn.local();
        match (sub.as_slice(), args.len()) {
            (b"slots", 1) => cluster::slots(&topo.view(), local),
            (b"shards", 1) => cluster::shards(&topo.view(), local),
            (b"nodes", 1) => cluster::nodes(&topo.view(), local),
            (b"info", 1) => cluster::info(&topo.view()),
            (b"myid", 1) => Reply::bulk_str(topology::node_name(topo.view().me)),
            (b"help", 1) => cluster::help(),
            (b"keyslot", 2) => match self.key(&args[1]) {
                Ok(k) => Reply::Int(k.slot as i64),
                Err(r) => r,
            },
            (b"slots" | b"shards" | b"nodes" | b"info" | b"myid" | b"help" | b"keyslot", _) => {
                Reply::err(format_args!("wrong number of arguments for 'cluster|{}' command", lossy(&sub)))
            }
            _ => Reply::err(format_args!("unknown subcommand '{}'. Try CLUSTER HELP.", lossy(&args[0]))),
        }
    }
}

impl RespService for RespNode {
    fn commands(&self) -> Vec<CommandSpec> {
        specs()
    }

    async fn call(&self, conn: &ConnState, cmd: Command) -> Reply {
        let Some(which) = CMDS.get(cmd.index()).copied() else {
            tracing::error!(core = self.core, command = cmd.name(), "RESP command index out of the table");
            return Reply::error("ERR internal error");
        };
        match which {
            Cmd::Info => info::info(&self.node, &self.resp, cmd.args()),
            Cmd::Cluster => self.cluster(conn, cmd.args()),
            keyed => self.keyed(conn, keyed, cmd.args()).await,
        }
    }

    /// `AUTH [user] token` / `HELLO 3 AUTH user token`: the token is the
    /// HTTP API's HS256 JWT; the user, if given, is `default` or the
    /// token's subject.
    async fn authenticate(&self, _conn: &ConnState, user: Option<&[u8]>, token: &[u8]) -> Result<Authenticated, Reply> {
        let wrongpass = |why: String| {
            tracing::debug!(core = self.core, reason = %why, "RESP AUTH refused");
            Reply::error(format!("WRONGPASS invalid token: {why}"))
        };
        let token = std::str::from_utf8(token).map_err(|_| wrongpass("not UTF-8".into()))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = net::jwt::verify(self.node.jwt_secret.as_bytes(), token.trim(), now).map_err(|e| wrongpass(e.to_string()))?;
        if let Some(u) = user {
            if u != b"default" && u != claims.sub.as_bytes() {
                return Err(wrongpass(format!("user '{}' is not the token's subject", lossy(u))));
            }
        }
        Ok(Authenticated { user: claims.sub, expires: Some(UNIX_EPOCH + Duration::from_secs(claims.exp)) })
    }

    fn ident(&self) -> ServerIdent {
        let durable = self.node.cfg.wal_sync == storage::WalSync::Fsync;
        ServerIdent {
            mode: self.resp.topology.mode(),
            config: vec![
                ("save", String::new()),
                ("appendonly", "yes".into()),
                ("appendfsync", if durable { "always" } else { "no" }.into()),
                ("cluster-enabled", "yes".into()),
                ("maxclients", (self.node.cfg.max_connections * self.node.cfg.cores).to_string()),
            ],
            ..ServerIdent::default()
        }
    }
}

/// `[liked, likeCount]`; a map `{liked: bool, likeCount: int}` in RESP3.
pub fn like_reply(r: LikeResult, proto: Protocol) -> Reply {
    match proto {
        Protocol::Resp3 => Reply::map([("liked", Reply::Bool(r.liked)), ("likeCount", Reply::Int(r.like_count as i64))]),
        Protocol::Resp2 => Reply::Array(vec![Reply::Int(r.liked as i64), Reply::Int(r.like_count as i64)]),
    }
}

/// The document as a bulk string: its stored gzip bytes, or the JSON.
pub fn doc_reply(served: &Served, gzip: bool) -> Reply {
    let doc = &served.doc;
    if gzip {
        return Reply::Bulk(Bytes::from_owner(doc.gzip.clone()));
    }
    if doc.is_gzip_only() {
        return match doc.plain(engine::owner::upstream::MAX_UPSTREAM_BODY) {
            Some(json) => Reply::Bulk(Bytes::from(json.into_owned())),
            None => {
                tracing::error!("a stored document does not decompress");
                Reply::error("ERR internal error: stored document does not decompress")
            }
        };
    }
    Reply::Bulk(Bytes::from_owner(doc.json.clone()))
}

/// An owner error as a RESP error: the Redis-style code first, then the
/// message and the HTTP API's code for the same failure. `storage_down`:
/// why the node's storage failed, if it did (answered `-STORAGE`).
pub fn owner_reply(e: &OwnerError, storage_down: impl FnOnce() -> Option<String>) -> Reply {
    let (status, http_code) = status_code(e);
    let prefix = match http_code {
        "STORAGE_UNAVAILABLE" => {
            // The group's own error names files: it goes to the log, not to clients.
            tracing::debug!(error = %e, "RESP command failed: {http_code}");
            let why = storage_down().unwrap_or_else(|| "storage failed; restart needed".into());
            return Reply::error(format!("STORAGE {why} ({http_code})"));
        }
        "PARTITION_UNAVAILABLE" => {
            if let Some(why) = storage_down() {
                tracing::debug!(error = %e, "RESP command failed: {http_code}");
                return Reply::error(format!("STORAGE {why} (STORAGE_UNAVAILABLE)"));
            }
            "TRYAGAIN"
        }
        "OVERLOADED" => "OVERLOADED",
        "STORAGE_BUSY" => "BUSY",
        "UNAVAILABLE" => "TRYAGAIN",
        "UPSTREAM_CIRCUIT_OPEN" | "UPSTREAM_TIMEOUT" | "UPSTREAM_ERROR" | "UPSTREAM_BAD_EQUIPMENT" | "UPSTREAM_BAD_BASIC" => "UPSTREAM",
        _ => "ERR",
    };
    if status >= 500 && prefix == "ERR" {
        tracing::warn!(error = %e, "RESP command failed: {http_code}");
    } else {
        tracing::debug!(error = %e, "RESP command failed: {http_code}");
    }
    Reply::error(format!("{prefix} {e} ({http_code})"))
}

/// The refusal of a remote key reservation (an HTTP error answer from the
/// leader of the user's partition) as a RESP error: 503 → `-TRYAGAIN`,
/// anything else `-ERR`, with the HTTP API's code.
fn refused_reply(r: &net::Response) -> Reply {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let code = v.get("code").and_then(|c| c.as_str()).unwrap_or("UNAVAILABLE");
    let message = v.get("message").and_then(|m| m.as_str()).unwrap_or("the idempotency key could not be reserved");
    let prefix = if r.status == 503 { "TRYAGAIN" } else { "ERR" };
    Reply::error(format!("{prefix} {message} ({code})"))
}

fn syntax_error(opt: &Bytes) -> Reply {
    Reply::err(format_args!("syntax error at '{}'", lossy(opt)))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(128)]).into_owned()
}

/// Every second until shutdown: the sizes of this core's partitions, for
/// `INFO keyspace` on any core.
fn spawn_sizes(core: usize, node: Arc<NodeShared>, resp: Arc<RespShared>, groups: Rc<LazyGroups>) {
    let partitions: Vec<u32> = node.slots.partitions_of_core(core).collect();
    if partitions.is_empty() {
        return;
    }
    let publish = Rc::new(RefCell::new(move || {
        for &p in &partitions {
            let (Some(machine), Some(sizes)) = (groups.machine(p), resp.sizes.get(p as usize)) else { continue };
            let m = machine.borrow();
            sizes.liked_characters.store(m.liked_characters() as u64, Ordering::Relaxed);
            sizes.relations.store(m.relation_count() as u64, Ordering::Relaxed);
            sizes.expectations.store(m.expectation_count() as u64, Ordering::Relaxed);
            sizes.idempotency_keys.store(m.idempotency_keys() as u64, Ordering::Relaxed);
        }
    }));
    monoio::spawn(async move {
        while !node.shutdown.is_triggered() {
            (publish.borrow_mut())();
            monoio::time::sleep(KEYSPACE_EVERY).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::owner::{GroupError, UpstreamError};
    use engine::partition::PartitionError;

    #[test]
    fn owner_errors_get_redis_style_codes() {
        let code = |e: OwnerError| owner_reply(&e, || None).error_code().unwrap().to_string();
        assert_eq!(code(OwnerError::NotFound), "ERR");
        assert!(matches!(owner_reply(&OwnerError::NotFound, || None), Reply::Error(t) if t.contains("not found")));
        let reused = OwnerError::Like(PartitionError::IdempotencyKeyReused {
            key: "k".into(),
            first_character: "hero".into(),
            first_op: engine::partition::Op::LikeToggle,
        });
        assert!(
            matches!(owner_reply(&reused, || None), Reply::Error(t) if t.starts_with("ERR ") && t.ends_with("(IDEMPOTENCY_KEY_REUSED)"))
        );
        assert_eq!(code(OwnerError::Overloaded("x")), "OVERLOADED");
        assert_eq!(code(OwnerError::Busy("x")), "BUSY");
        assert_eq!(code(OwnerError::Like(PartitionError::RelationsFull { max: 1 })), "BUSY");
        assert_eq!(code(OwnerError::Upstream(UpstreamError::Timeout)), "UPSTREAM");
        assert_eq!(code(OwnerError::Group(GroupError::Unavailable { partition: 1, why: "starting".into() })), "TRYAGAIN");
        let stopped = OwnerError::Group(GroupError::Stopped { partition: 3, why: "/data/log-0/x.log: EIO".into() });
        let r = owner_reply(&stopped, || Some("storage: write-ahead log 0 failed; restart needed".into()));
        assert!(matches!(&r, Reply::Error(t) if t.starts_with("STORAGE ") && !t.contains('/')), "{r:?}");
        let r = owner_reply(&stopped, || None);
        assert!(matches!(&r, Reply::Error(t) if t.starts_with("STORAGE ") && !t.contains('/')), "{r:?}");
        let r = owner_reply(&OwnerError::Group(GroupError::Unavailable { partition: 1, why: "x".into() }), || Some("down".into()));
        assert_eq!(r.error_code(), Some("STORAGE"));
    }

    #[test]
    fn like_replies_are_a_pair_or_a_map() {
        let r = LikeResult { liked: true, like_count: 7 };
        assert_eq!(like_reply(r, Protocol::Resp2), Reply::Array(vec![Reply::Int(1), Reply::Int(7)]));
        assert_eq!(like_reply(r, Protocol::Resp3), Reply::map([("liked", Reply::Bool(true)), ("likeCount", Reply::Int(7))]));
        assert_eq!(specs().len(), CMDS.len());
    }
}
