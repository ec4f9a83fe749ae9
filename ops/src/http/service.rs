//! The per-core [`net::Service`]: route, authenticate, call the core's
//! owner runtime ([`engine::owner::Shard`]), and turn documents and errors
//! into responses (gzip as stored, ETag / 304).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::owner::admission::Admission;
use engine::owner::breaker::BreakerConfig;
use engine::owner::jobs::{spawn_jobs, JobConfig};
use engine::owner::likes::Likes;
use engine::owner::{CacheConfig, CacheStatus, DocOp, Key, Nexon, Owner, OwnerError, Place, Served, Shard, Sink};
use engine::partition::{IdempotencyKey, UserId};
use net::{Request, Response};
use replication::peer::TcpTransport;
use replication::{balance_leaders, bootstrap_groups, CoreGroups, NoPeers, Route as ClusterRoute, Transport as RaftTransport};

use super::error::{error_json, owner_error, route_error};
use super::route::{route, CharOp, Name, Route};
use super::{LazyGroups, NodeShared};
use crate::config::UpstreamTarget;
use crate::http::peer::no_leader;
use crate::metrics::CoreMetrics;
use crate::upstream::Transport;

/// How often a node hands partitions back to their preferred leader.
pub const BALANCE_EVERY: Duration = Duration::from_secs(2);

/// The per-core service; the peer handler of the core shares its state.
pub struct CoreService(Rc<CoreInner>);

pub struct CoreInner {
    pub(crate) core: usize,
    pub(crate) shared: Arc<NodeShared>,
    pub(crate) shard: Rc<Shard>,
    pub(crate) groups: Rc<LazyGroups>,
    pub(crate) metrics: Rc<CoreMetrics>,
    /// Set at the drain: the periodic jobs stop proposing.
    pub(crate) jobs_stop: Rc<Cell<bool>>,
    /// "Cannot compute from the upstream equipment" lines: one per period.
    pub(crate) calc_log: RefCell<crate::logging::Throttle>,
    /// This core's RESP listener (same runtime, same owner runtime), drained
    /// before the groups stop.
    pub(crate) resp: RefCell<Option<monoio::task::JoinHandle<std::io::Result<()>>>>,
    /// This core's connections to the other nodes (None: a one-node cluster).
    pub(crate) peers: Option<Rc<TcpTransport>>,
    /// "Forward to the leader failed" lines: one per target node per period.
    pub(crate) forward_failure_log: RefCell<crate::http::peer::ForwardFailureLog>,
}

impl CoreService {
    /// Runs on the core's thread inside its runtime: builds the owner
    /// runtime, then starts the core's partition groups in the background
    /// (readiness stays false until they lead and applied their first entry).
    pub fn new(core: usize, shared: Arc<NodeShared>) -> CoreService {
        let metrics = Rc::new(shared.metrics.core(core));
        let sink: Rc<dyn Sink> = metrics.clone();
        let cfg = &shared.cfg;
        let transport = match (&cfg.upstream, &shared.sim) {
            (UpstreamTarget::Http { base_url, api_key }, _) => Transport::http(base_url, api_key.as_deref(), cfg.upstream_timeout),
            (UpstreamTarget::InProcess { .. }, Some(sim)) => Transport::Sim(sim.clone()),
            (UpstreamTarget::InProcess { .. }, None) => Transport::Broken("the in-process simulator was not started".into()),
        };
        let breaker = BreakerConfig { open_for: cfg.breaker_open, ..BreakerConfig::default() };
        let nexon = Nexon::new(core, Rc::new(transport), cfg.upstream_timeout, breaker, sink.clone());
        let cache = CacheConfig {
            equipment_bytes: cfg.cache_equipment_bytes,
            expectation_bytes: cfg.cache_expectation_bytes,
            ttl: cfg.cache_ttl,
            stale: cfg.cache_stale,
        };
        let groups = Rc::new(LazyGroups::default());
        let admission = Rc::new(Admission::new(cfg.max_queue, sink.clone()));
        let owner = Rc::new(Owner::new(cache, nexon, shared.versions.clone(), sink.clone(), groups.clone(), admission));
        let likes = Rc::new(Likes::new(core, groups.clone(), sink.clone()));
        let (inbox, parts) = shared.take_core(core);
        let inbox = inbox.unwrap_or_else(|| flume::bounded(1).1);
        let shard = Shard::new(
            core,
            owner,
            likes,
            shared.inboxes.clone(),
            inbox,
            cfg.cache_read_copy_bytes,
            cfg.cache_ttl,
            shared.versions.clone(),
            sink,
        );
        let jobs_stop = Rc::new(Cell::new(false));
        let peers = shared.cluster.book.clone().map(|book| {
            let c = &shared.cluster;
            TcpTransport::new(c.me, core as u16, book, c.limits.clone(), c.switch.clone())
        });
        start_groups(core, &shared, groups.clone(), parts, metrics.clone(), jobs_stop.clone(), peers.clone());
        let inner = Rc::new(CoreInner {
            resp: RefCell::new(None),
            core,
            shared,
            shard,
            groups,
            metrics,
            jobs_stop,
            calc_log: RefCell::new(crate::logging::Throttle::new(crate::logging::SUMMARY_EVERY)),
            peers,
            forward_failure_log: RefCell::default(),
        });
        crate::http::peer::serve_peers(&inner);
        *inner.resp.borrow_mut() = crate::resp::RespNode::serve(&inner);
        CoreService(inner)
    }
}

impl CoreInner {
    async fn dispatch(&self, req: &Request) -> (&'static str, Response) {
        // The in-process simulator's control paths (`maple serve` without a
        // key only): call counters and run-time failure/latency injection.
        if let (Some(sim), true) = (&self.shared.sim, req.path.starts_with("/sim/")) {
            if let Some(reply) = sim.control(&req.path, &req.query) {
                return ("sim", Response::json(reply.status, reply.body));
            }
        }
        let route = match route(&req.method, &req.path, &req.query) {
            Ok(r) => r,
            Err(e) => return (e.label(), route_error(&e)),
        };
        let label = route.label();
        let resp = match route {
            Route::Live => Response::json(200, r#"{"status":"UP"}"#),
            Route::Ready => self.readiness(),
            Route::PeerCut(on) => self.peer_cut(on),
            Route::AdminCluster => {
                Response::json(200, serde_json::to_vec(&self.shared.cluster.status_json()).expect("json value serialises"))
            }
            Route::Metrics => Response::new(200).header("content-type", crate::metrics::CONTENT_TYPE).body(self.shared.metrics.render(
                self.shared.server_stats.as_ref(),
                self.shared.resp.as_deref(),
                Some(&self.shared.storage),
                Some(&self.shared.cluster),
            )),
            Route::Character(name, op) => self.character(req, name, op, false).await,
        };
        (label, resp)
    }

    /// 200 UP; 503 DRAINING, DOWN (storage failed) or STARTING (partitions
    /// whose group has no leader here yet, or has not applied its first entry).
    fn readiness(&self) -> Response {
        let body = |status: &str, reason: Option<String>| {
            let v = match reason {
                Some(r) => serde_json::json!({ "status": status, "reason": r }),
                None => serde_json::json!({ "status": status }),
            };
            serde_json::to_vec(&v).expect("json value serialises")
        };
        if self.shared.shutdown.is_triggered() {
            return Response::json(503, body("DRAINING", None));
        }
        if let Some(reason) = self.shared.storage.down() {
            return Response::json(503, body("DOWN", Some(reason)));
        }
        let waiting = self.shared.not_ready();
        if !waiting.is_empty() {
            let list: Vec<String> = waiting.iter().map(u32::to_string).collect();
            let reason = format!("partitions without a ready leader here or a known leader this node caught up with: {}", list.join(", "));
            return Response::json(503, body("STARTING", Some(reason)));
        }
        Response::json(200, body("UP", None))
    }

    /// The test hook cutting this node off its peers (both directions).
    fn peer_cut(&self, on: bool) -> Response {
        let c = &self.shared.cluster;
        if !c.test_hooks {
            return error_json(404, "NOT_FOUND", "no such route");
        }
        c.switch.set(on);
        tracing::warn!(node = c.me, cut = on, "test hook: peer traffic {}", if on { "cut off" } else { "restored" });
        Response::json(200, format!("{{\"cut\":{on}}}"))
    }

    pub(crate) fn key(&self, name: Name) -> Key {
        let partition = self.shared.slots.partition_of(name.slot);
        Key { display: name.display, key: name.key, slot: name.slot, partition, core: self.shared.slots.core_of(partition) }
    }

    /// A character request: served here when this node leads the key's
    /// partition (or the node is a one-node cluster), else forwarded to the
    /// leader (`forwarded`: it came from another node and is not passed on).
    pub async fn character(&self, req: &Request, name: Name, op: CharOp, forwarded: bool) -> Response {
        let key = self.key(name);
        if !forwarded {
            match self.shared.cluster.view.route(key.partition) {
                ClusterRoute::Local => {}
                ClusterRoute::Remote(node) => return self.forward(req, key.partition, node).await,
                ClusterRoute::NoLeader => return no_leader(key.partition),
            }
        }
        let doc_op = match op {
            CharOp::LikeToggle | CharOp::LikeStatus => return self.like(req, key, op).await,
            CharOp::Expectation { force } => DocOp::Expectation { force },
            CharOp::Recalculate => DocOp::Expectation { force: true },
            CharOp::Preset(n) => DocOp::Preset(n),
            CharOp::Equipment => DocOp::Equipment,
            CharOp::Basic => DocOp::Basic,
        };
        let character = key.key.clone();
        match self.shard.doc(doc_op, key).await {
            Ok(served) => doc_response(req, &served),
            Err(e) => {
                if let OwnerError::Calc(why) = &e {
                    self.log_calc_failure(&character, why);
                }
                self.error(&e)
            }
        }
    }

    async fn like(&self, req: &Request, character: Key, op: CharOp) -> Response {
        let user = match self.user(req) {
            Ok(user) => user,
            Err(resp) => return resp,
        };
        let user = match UserId::parse(&user) {
            Ok(u) => u,
            Err(e) => return error_json(400, "BAD_REQUEST", &e.to_string()),
        };
        let result = if op == CharOp::LikeToggle {
            let key = match req.header("idempotency-key") {
                None => None,
                Some(raw) => match IdempotencyKey::parse(raw) {
                    Ok(k) => {
                        let partition = self.shared.slots.partition_of(replication::slot_of(user.as_str()));
                        Some((k, Place { partition, core: self.shared.slots.core_of(partition) }, raw))
                    }
                    Err(e) => return error_json(400, "BAD_REQUEST", &e.to_string()),
                },
            };
            match key {
                // The user's partition is led by another node: reserve the key there first.
                Some((k, home, raw)) if home.partition != character.partition && !self.leads(home.partition) => {
                    let tp = crate::http::trace::traceparent_of(req);
                    if let Some(refused) = self.reserve_remote(&user, raw, &character, home.partition, &tp).await {
                        return refused;
                    }
                    self.shard.toggle_reserved(user, character, Some(k)).await
                }
                other => self.shard.toggle(user, character, other.map(|(k, home, _)| (k, home))).await,
            }
        } else {
            self.shard.status(user, character).await
        };
        match result {
            Ok(r) => {
                let body = serde_json::json!({ "liked": r.liked, "likeCount": r.like_count });
                Response::json(200, serde_json::to_vec(&body).expect("json value serialises"))
            }
            Err(e) => self.error(&e),
        }
    }

    pub(crate) fn error(&self, e: &OwnerError) -> Response {
        owner_error(e, || self.shared.storage.down())
    }

    /// Upstream equipment the engine cannot compute from (502
    /// UPSTREAM_BAD_EQUIPMENT): one line per period on this core, with the count.
    fn log_calc_failure(&self, key: &str, why: &str) {
        if let Some(suppressed) = self.calc_log.borrow_mut().allow(Instant::now()) {
            let core = self.core;
            tracing::warn!(
                core,
                character = key,
                error = why,
                suppressed,
                "cannot compute from the upstream equipment of {key:?} on core {core}: {why} ({suppressed} more such \
                 failures not logged since the previous line)"
            );
        }
    }

    /// The caller: `sub` of the HS256 token in `Authorization: Bearer`.
    fn user(&self, req: &Request) -> Result<String, Response> {
        let unauthorized = |msg: &str| error_json(401, "UNAUTHORIZED", msg).header("www-authenticate", "Bearer");
        let header = req.header("authorization").ok_or_else(|| unauthorized("missing Authorization: Bearer token"))?;
        let token = net::jwt::bearer_token(header).map_err(|e| unauthorized(&e.to_string()))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match net::jwt::verify(self.shared.jwt_secret.as_bytes(), token, now) {
            Ok(claims) => Ok(claims.sub),
            Err(e) => Err(unauthorized(&format!("invalid token: {e}"))),
        }
    }
}

/// Start the core's partition groups, bootstrap the ones this node
/// initialises (the lowest node id of each group, once every replica
/// answers; idempotent), then the periodic jobs (they run on the
/// partitions this node leads only).
fn start_groups(
    core: usize,
    shared: &Arc<NodeShared>,
    lazy: Rc<LazyGroups>,
    parts: Vec<replication::PartitionStart>,
    sink: Rc<dyn Sink>,
    stop: Rc<Cell<bool>>,
    peers: Option<Rc<TcpTransport>>,
) {
    let shared = shared.clone();
    let lazy_stop = stop.clone();
    let jobs = JobConfig {
        every: shared.cfg.jobs_every,
        expectation_stale: shared.cfg.cache_stale,
        expectations_max: shared.cfg.store_expectations_max.div_ceil(shared.slots.partitions() as usize).max(1),
        idempotency_ttl: shared.cfg.idempotency_ttl,
    };
    monoio::spawn(async move {
        let partitions: Vec<u32> = parts.iter().map(|p| p.recovered.group).collect();
        let transport: Rc<dyn RaftTransport> = match peers {
            Some(t) => Rc::new(t),
            None => Rc::new(NoPeers),
        };
        let cluster = &shared.cluster;
        let groups = match CoreGroups::start_with(cluster.me, None, transport, parts).await {
            Ok(groups) => groups,
            Err(e) => {
                tracing::error!(core, error = %e, "the partition groups of core {core} did not start");
                *lazy.failed.borrow_mut() = Some(e);
                return;
            }
        };
        let _ = lazy.inner.set(groups.clone());
        spawn_jobs(lazy, partitions, jobs, sink, stop);
        // Every replica of a fresh group must answer before it is
        // initialised; a node that starts first waits for the others.
        loop {
            match bootstrap_groups(groups.host(), &cluster.view.placement, &cluster.members, Duration::from_secs(10)).await {
                Ok(done) => {
                    if !done.is_empty() {
                        tracing::info!(
                            core,
                            groups = done.len(),
                            "initialised {} new partition groups on core {core}: {done:?}",
                            done.len()
                        );
                    }
                    break;
                }
                Err(e) if shared.shutdown.is_triggered() => {
                    tracing::info!(core, error = %e, "stopping before the partition groups were initialised");
                    break;
                }
                Err(e) => tracing::warn!(core, error = %e, "waiting for the other replicas to initialise the partition groups: {e}"),
            }
        }
        // Leadership back to each partition's preferred replica once it is
        // caught up (after the start, a failover or a rolling restart), so
        // the nodes share the leaders; never during the drain.
        if cluster.is_cluster() {
            while !shared.shutdown.is_triggered() {
                monoio::time::sleep(BALANCE_EVERY).await;
                if shared.shutdown.is_triggered() || lazy_stop.get() {
                    break;
                }
                let moved = balance_leaders(groups.host(), &cluster.view.placement).await;
                if moved > 0 {
                    tracing::info!(core, moved, "moved the leadership of {moved} partitions to their preferred replicas");
                }
            }
        }
    });
}

impl net::Service for CoreService {
    async fn call(&self, req: Request) -> Response {
        self.0.call(req).await
    }

    async fn drain(&self) {
        self.0.drain().await
    }
}

impl CoreInner {
    pub async fn call(&self, req: Request) -> Response {
        let start = Instant::now();
        // A guard, so a request dropped mid-way (client gone, drain budget
        // over) still leaves the gauge.
        struct InFlight<'a>(&'a CoreMetrics);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.in_flight().dec();
            }
        }
        self.metrics.in_flight().inc();
        let _in_flight = InFlight(&self.metrics);
        let (label, resp) = self.dispatch(&req).await;
        self.metrics.request(label, resp.status, start.elapsed());
        resp
    }

    /// At shutdown, before the runtime ends: stop the periodic jobs, shut
    /// the core's Raft groups down (openraft's tasks must end on their own
    /// runtime), then wait until everything appended to the logs is
    /// durable, so no task of this runtime is left for a log's syncer
    /// thread to wake after the runtime is gone (see net/tests/drain_hook.rs).
    async fn drain(&self) {
        // RESP connections finish the commands they read (bounded by the
        // drain budget) while the groups still run.
        let resp = self.resp.borrow_mut().take();
        if let Some(handle) = resp {
            if let Err(e) = handle.await {
                tracing::error!(core = self.core, error = %e, "the RESP listener of core {} failed", self.core);
            }
        }
        self.jobs_stop.set(true);
        let Some(groups) = self.groups.get() else { return };
        if self.shared.cluster.is_cluster() {
            // Hand leadership to the other replicas first: they keep serving
            // while this node stops (no election timeout to wait out).
            let moved = groups.host().transfer_all(Duration::from_secs(3)).await;
            tracing::info!(core = self.core, moved, "core {}: transferred the leadership of {moved} partitions", self.core);
        }
        groups.shutdown().await;
        let deadline = Instant::now() + Duration::from_secs(4);
        for p in groups.partitions() {
            let Some(store) = engine::owner::Groups::store(&**groups, p) else { continue };
            let g = store.group();
            while g.durable_index() < g.last_index() && g.log().poisoned().is_none() && Instant::now() < deadline {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}
/// 304 when `If-None-Match` names the document; else the stored gzip bytes
/// when the client accepts gzip, the JSON otherwise. Never compresses here.
pub fn doc_response(req: &Request, served: &Served) -> Response {
    let doc = &served.doc;
    let mut resp = match req.header("if-none-match").and_then(|v| std::str::from_utf8(v).ok()) {
        Some(inm) if doc.matches_if_none_match(inm) => Response::new(304),
        _ if accepts_gzip(req.header("accept-encoding")) => {
            Response::json(200, Bytes::from_owner(doc.gzip.clone())).header("content-encoding", "gzip")
        }
        _ if doc.is_gzip_only() => match doc.plain(engine::owner::upstream::MAX_UPSTREAM_BODY) {
            Some(json) => Response::json(200, json.into_owned()),
            None => return error_json(500, "INTERNAL", "stored document does not decompress"),
        },
        _ => Response::json(200, Bytes::from_owner(doc.json.clone())),
    };
    resp = resp.header("etag", doc.etag.to_string()).header("vary", "Accept-Encoding").header("x-cache", served.cache.header());
    if served.cache == CacheStatus::Stale {
        resp = resp.header("warning", "110 - \"Response is Stale\"");
    }
    resp
}

/// True when `gzip` (or `*`) is listed with a non-zero q-value.
pub fn accepts_gzip(header: Option<&[u8]>) -> bool {
    let Some(h) = header.and_then(|h| std::str::from_utf8(h).ok()) else { return false };
    h.split(',').any(|part| {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        if !(coding.eq_ignore_ascii_case("gzip") || coding == "*") {
            return false;
        }
        !it.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q == 0.0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::shard::Doc;

    #[test]
    fn accept_encoding_parsing() {
        assert!(accepts_gzip(Some(b"gzip")));
        assert!(accepts_gzip(Some(b"br, GZIP;q=0.5")));
        assert!(accepts_gzip(Some(b"*")));
        assert!(!accepts_gzip(Some(b"gzip;q=0")));
        assert!(!accepts_gzip(Some(b"br, deflate")));
        assert!(!accepts_gzip(None));
    }

    fn served(cache: CacheStatus) -> Served {
        Served { doc: Doc::from_json(br#"{"x":1}"#.to_vec()), cache, version: 1 }
    }

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            query: String::new(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v.as_bytes()))).collect(),
            body: Bytes::new(),
        }
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn gzip_etag_and_stale_headers() {
        let s = served(CacheStatus::Hit);
        let plain = doc_response(&req(&[]), &s);
        assert_eq!(plain.status, 200);
        assert_eq!(&plain.body[..], br#"{"x":1}"#);
        let gz = doc_response(&req(&[("accept-encoding", "gzip")]), &s);
        assert_eq!(header(&gz, "content-encoding"), Some("gzip"));
        assert_eq!(&gz.body[..], &s.doc.gzip[..]);
        let etag = header(&plain, "etag").unwrap().to_owned();
        let nm = doc_response(&req(&[("if-none-match", &etag)]), &s);
        assert_eq!(nm.status, 304);
        assert!(nm.body.is_empty());
        let stale = doc_response(&req(&[]), &served(CacheStatus::Stale));
        assert_eq!(header(&stale, "x-cache"), Some("STALE"));
        assert!(header(&stale, "warning").unwrap().starts_with("110"));
    }
}
