//! The per-core [`net::Service`]: route, find the owner, answer from the
//! owner (inline or over the cross-core channel) or from a read copy, and
//! turn documents into responses (gzip as stored, ETag / 304).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use engine::shard::{ByteLru, Doc, Weigh};
use net::{Request, Response};

use super::admission::Admission;
use super::durable::CoreLog;
use super::error::{error_json, NodeError};
use super::likes::{LikeFail, LikeOp, LikeShard};
use super::owner::{CacheConfig, CacheStatus, Op, Owner, Served};
use super::route::{route, Name, Route, RouteError};
use super::{LikeMsg, NodeShared, OwnerMsg};
use crate::config::UpstreamTarget;
use crate::metrics::CoreMetrics;
use crate::upstream::{BreakerConfig, Nexon, Transport};

/// Why the node cannot serve writes, if it cannot: a core's log is poisoned
/// or its state applier stopped. Both last until a restart. The reason names
/// the core, not files (the storage's own log line has the path and error).
pub fn storage_down(storage: &[Arc<super::durable::CoreStorage>]) -> Option<String> {
    storage.iter().find_map(|s| {
        if s.wal.poisoned().is_some() {
            Some(super::likes::storage_down_reason(s.core))
        } else {
            s.applier.failure().map(|_| format!("storage: state store of core {} stopped applying the log; restart needed", s.core))
        }
    })
}

/// Longest accepted `Idempotency-Key` header (the like book's own limit).
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// A copy of another core's rendered expectation, valid while the slot's
/// version is unchanged and it is younger than the TTL.
#[derive(Clone)]
struct ReadCopy {
    doc: Doc,
    version: u64,
}

impl Weigh for ReadCopy {
    fn weight(&self) -> usize {
        self.doc.weight() + 8
    }
}

pub struct CoreService {
    core: usize,
    shared: Arc<NodeShared>,
    owner: Rc<Owner>,
    likes: Rc<LikeShard>,
    read_copies: RefCell<ByteLru<ReadCopy>>,
    metrics: Rc<CoreMetrics>,
    /// This core's log appender (awaited at shutdown: see `drain`).
    log: Rc<CoreLog>,
    /// "Cannot compute from the upstream equipment" lines: one per period.
    calc_log: RefCell<crate::logging::Throttle>,
}

impl CoreService {
    /// Runs on the core's thread inside its runtime: builds the shard and
    /// starts the task that serves other cores' requests for our keys.
    pub fn new(core: usize, shared: Arc<NodeShared>) -> CoreService {
        let metrics = Rc::new(shared.metrics.core(core));
        let transport = match (&shared.cfg.upstream, &shared.sim) {
            (UpstreamTarget::InProcess { .. }, Some(sim)) => Transport::Sim(sim.clone()),
            (UpstreamTarget::Http { base_url, api_key }, _) => Transport::http(base_url, api_key.as_deref(), shared.cfg.upstream_timeout),
            (UpstreamTarget::InProcess { .. }, None) => unreachable!("cmd_serve builds the simulator for in-process mode"),
        };
        let breaker = BreakerConfig { open_for: shared.cfg.breaker_open, ..BreakerConfig::default() };
        let nexon = Nexon::new(transport, shared.cfg.upstream_timeout, breaker, metrics.clone());
        let cache = CacheConfig {
            equipment_bytes: shared.cfg.cache_equipment_bytes,
            expectation_bytes: shared.cfg.cache_expectation_bytes,
            ttl: shared.cfg.cache_ttl,
            stale: shared.cfg.cache_stale,
        };
        let log = Rc::new(CoreLog::new(shared.storage[core].clone()));
        let admission = Rc::new(Admission::new(shared.cfg.max_queue, shared.metrics.admission.core(core)));
        let owner = Rc::new(Owner::new(cache, nexon, shared.versions.clone(), metrics.clone(), log.clone(), admission));
        let inbox = shared.inbox[core].clone();
        let serving = owner.clone();
        monoio::spawn(async move {
            // Each message is one request of another core; that core bounds
            // its own in-flight requests, so the spawned tasks are bounded too.
            while let Ok(msg) = inbox.recv_async().await {
                let owner = serving.clone();
                monoio::spawn(async move {
                    let result = owner.serve(msg.op, &msg.name).await;
                    let _ = msg.reply.send(result); // the asker may have gone
                });
            }
        });
        let book =
            shared.books[core].lock().unwrap_or_else(|p| p.into_inner()).take().expect("each core takes its recovered like book once");
        let likes = Rc::new(LikeShard::new(book, log.clone(), metrics.clone()));
        let like_inbox = shared.like_inbox[core].clone();
        let serving = likes.clone();
        monoio::spawn(async move {
            // Bounded like the owner inbox: the sender bounds its in-flight requests.
            while let Ok(msg) = like_inbox.recv_async().await {
                let likes = serving.clone();
                monoio::spawn(async move {
                    let result = likes.serve(&msg.user, &msg.character, msg.op).await;
                    let _ = msg.reply.send(result);
                });
            }
        });
        CoreService {
            core,
            log,
            calc_log: RefCell::new(crate::logging::Throttle::new(crate::logging::SUMMARY_EVERY)),
            likes,
            read_copies: RefCell::new(ByteLru::new(shared.cfg.cache_read_copy_bytes.max(1), shared.cfg.cache_ttl)),
            shared,
            owner,
            metrics,
        }
    }

    async fn dispatch(&self, req: &Request) -> (&'static str, Response) {
        // The in-process simulator's control paths (`maple serve` without a
        // key only): call counters and run-time failure/latency injection.
        if let (Some(sim), true) = (&self.shared.sim, req.path.starts_with("/sim/")) {
            if let Some(reply) = sim.control(&req.path, &req.query) {
                return ("sim", Response::json(reply.status, reply.body));
            }
        }
        let (route, name) = match route(&req.method, &req.path, &req.query) {
            Ok(r) => r,
            Err(e) => return (e.label(), route_error(&e)),
        };
        let label = route.label();
        let resp = match (route, name) {
            (Route::Live, _) => Response::json(200, r#"{"status":"UP"}"#),
            (Route::Ready, _) => {
                if self.shared.shutdown.is_triggered() {
                    Response::json(503, r#"{"status":"DRAINING"}"#)
                } else if let Some(reason) = storage_down(&self.shared.storage) {
                    let body = serde_json::json!({ "status": "DOWN", "reason": reason });
                    Response::json(503, serde_json::to_vec(&body).expect("json value serialises"))
                } else {
                    Response::json(200, r#"{"status":"UP"}"#)
                }
            }
            (Route::Metrics, _) => Response::new(200)
                .header("content-type", crate::metrics::CONTENT_TYPE)
                .body(self.shared.metrics.render(self.shared.server_stats.as_ref(), &self.shared.storage)),
            (route @ (Route::LikeToggle | Route::LikeStatus), Some(name)) => {
                let user = match self.user(req) {
                    Ok(user) => user,
                    Err(resp) => return (label, resp),
                };
                let op = if route == Route::LikeToggle {
                    match req.header("idempotency-key") {
                        None => LikeOp::Toggle { idempotency_key: None },
                        Some(k) => match std::str::from_utf8(k) {
                            Ok(k) if !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_BYTES => {
                                LikeOp::Toggle { idempotency_key: Some(k.to_owned()) }
                            }
                            _ => {
                                let msg = format!("Idempotency-Key must be 1..={MAX_IDEMPOTENCY_KEY_BYTES} bytes of UTF-8");
                                return (label, error_json(400, "BAD_REQUEST", &msg));
                            }
                        },
                    }
                } else {
                    LikeOp::Status
                };
                match self.like(user, name, op).await {
                    Ok(r) => {
                        let body = serde_json::json!({ "liked": r.liked, "likeCount": r.like_count });
                        Response::json(200, serde_json::to_vec(&body).expect("json value serialises"))
                    }
                    Err(e) => e.to_response(),
                }
            }
            (route, Some(name)) => {
                let op = match route {
                    Route::Expectation { force } => Op::Expectation { force },
                    Route::Recalculate => Op::Expectation { force: true },
                    Route::Preset(n) => Op::Preset(n),
                    Route::Equipment => Op::Equipment,
                    _ => Op::Basic,
                };
                let key = name.key.clone();
                match self.answer(op, name).await {
                    Ok(served) => doc_response(req, &served),
                    Err(e) => {
                        if let NodeError::Calc(why) = &e {
                            self.log_calc_failure(&key, why);
                        }
                        e.to_response()
                    }
                }
            }
            (_, None) => unreachable!("character routes always carry a name"),
        };
        (label, resp)
    }

    async fn answer(&self, op: Op, name: Name) -> Result<Served, NodeError> {
        let owner = self.shared.slots.owner_core(name.slot);
        if owner == self.core {
            return self.owner.serve(op, &name).await;
        }
        let copyable = op == Op::Expectation { force: false };
        if copyable {
            if let Some(served) = self.read_copy(&name) {
                return Ok(served);
            }
        }
        let (tx, rx) = futures::channel::oneshot::channel();
        let slot = name.slot;
        let key = name.key.clone();
        if self.shared.to_core[owner].try_send(OwnerMsg { op, name, reply: tx }).is_err() {
            self.metrics.cross_core("full");
            return Err(NodeError::Overloaded("owner core queue is full"));
        }
        self.metrics.cross_core("sent");
        let served = rx.await.map_err(|_| NodeError::Abandoned)??;
        if copyable && served.cache != CacheStatus::Stale && served.version == self.shared.versions.get(slot) {
            let copy = ReadCopy { doc: served.doc.clone(), version: served.version };
            self.read_copies.borrow_mut().insert(key, copy, Instant::now());
        }
        Ok(served)
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

    /// A like request, answered by the character's owner core once durable.
    async fn like(&self, user: String, name: Name, op: LikeOp) -> Result<engine::likes::LikeResult, LikeFail> {
        let owner = self.shared.slots.owner_core(name.slot);
        if owner == self.core {
            return self.likes.serve(&user, &name.key, op).await;
        }
        let (tx, rx) = futures::channel::oneshot::channel();
        let msg = LikeMsg { user, character: name.key, op, reply: tx };
        if self.shared.like_to_core[owner].try_send(msg).is_err() {
            self.metrics.cross_core("full");
            return Err(LikeFail::Busy("owner core queue is full".into()));
        }
        self.metrics.cross_core("sent");
        rx.await.map_err(|_| LikeFail::Unavailable("owner core dropped the request".into()))?
    }

    fn read_copy(&self, name: &Name) -> Option<Served> {
        let mut copies = self.read_copies.borrow_mut();
        let (copy, _age) = copies.get(&name.key, Instant::now())?;
        if copy.version != self.shared.versions.get(name.slot) {
            copies.remove(&name.key);
            return None;
        }
        self.metrics.cache("expectation", "read_copy");
        Some(Served { doc: copy.doc.clone(), cache: CacheStatus::Hit, version: copy.version })
    }
}

impl net::Service for CoreService {
    async fn call(&self, req: Request) -> Response {
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

    /// At shutdown, before the runtime ends: wait until the newest append is
    /// durable and every task awaiting it (expectation write-behind, which
    /// no request awaits) has finished. A task left pending would be woken
    /// by the log's syncer thread after the runtime is gone and dropped
    /// there, inside `Shared`'s wake loop, whose lock its drop takes again:
    /// the syncer deadlocks and the final checkpoint never returns.
    async fn drain(&self) {
        let Some(newest) = self.log.newest() else { return };
        let _ = newest.clone().await;
        // Handles still alive besides this one and the log's own copy are
        // tasks not yet run to completion (polled-out handles let go).
        while newest.strong_count().is_some_and(|n| n > 2) {
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

fn route_error(e: &RouteError) -> Response {
    match e {
        RouteError::NotFound => error_json(404, "NOT_FOUND", "no such route"),
        RouteError::MethodNotAllowed { allow } => error_json(405, "METHOD_NOT_ALLOWED", &format!("use {allow}")).header("allow", *allow),
        RouteError::BadRequest(msg) => error_json(400, "BAD_REQUEST", msg),
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
        _ if doc.is_gzip_only() => match doc.plain(crate::upstream::nexon::MAX_UPSTREAM_BODY) {
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
