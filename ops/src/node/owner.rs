//! The owner side of a core: the shard state for the keys this core owns,
//! and the fetch → compute → store path behind single-flight.
//!
//! Invariants:
//! - only the owner core reads or writes these caches (local requests call
//!   it directly, other cores send a message);
//! - at most one upstream fetch per (kind, key) is in flight on this core —
//!   and since a key has one owner, in the whole node;
//! - the slot version is bumped after a new rendering is stored, so other
//!   cores' read copies of that slot stop being served.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use engine::shard::{ByteLru, Doc, Join, SingleFlight, SlotVersions, Weigh};

use super::admission::Admission;
use super::durable::{expectation_payload, CoreLog, StoredExpectation, MAX_EXPECTATION_BYTES};
use super::error::NodeError;
use super::render::{render, Rendered};
use super::route::Name;
use crate::metrics::CoreMetrics;
use crate::upstream::Nexon;

/// Bounds of single-flight tables (per core).
const MAX_FLIGHTS: usize = 4096;
const MAX_WAITERS_PER_FLIGHT: usize = 8192;
/// Largest rendered document accepted back from the store.
const MAX_RENDERED_BYTES: usize = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
    /// Not in memory, served from the state store (written behind earlier).
    Store,
}

impl CacheStatus {
    pub fn header(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Store => "STORE",
        }
    }
}

/// What an owner answers: a stored document and how it was obtained.
/// `Send`, so it can go back to the asking core.
#[derive(Debug, Clone)]
pub struct Served {
    pub doc: Doc,
    pub cache: CacheStatus,
    /// The slot's version when the answer was made (for read copies).
    pub version: u64,
}

/// What a request asks of the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Expectation { force: bool },
    Preset(u8),
    Equipment,
    Basic,
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub equipment_bytes: usize,
    pub expectation_bytes: usize,
    pub ttl: Duration,
    pub stale: Duration,
}

#[derive(Debug, Clone)]
struct Ocid(Arc<str>);

/// A cached equipment document. A fetch stores the JSON as upstream sent it
/// (the expectation render reads it as is); the equipment route's first read
/// compresses it once and stores the gzip form in its place (about 9x
/// smaller). So a cold expectation never pays for gzip it may never serve;
/// the price is that an entry no one has read through the equipment route
/// weighs its plain size against `--cache-equipment-mb`.
#[derive(Debug, Clone)]
enum Equipment {
    Plain(Bytes),
    Gzip(Doc),
}

impl Weigh for Equipment {
    fn weight(&self) -> usize {
        match self {
            Equipment::Plain(json) => json.len() + 64,
            Equipment::Gzip(doc) => doc.weight(),
        }
    }
}

impl Weigh for Ocid {
    fn weight(&self) -> usize {
        self.0.len()
    }
}

type Flight<V> = SingleFlight<Result<(V, CacheStatus), NodeError>>;

pub struct Owner {
    cfg: CacheConfig,
    ocids: RefCell<ByteLru<Ocid>>,
    equipment: RefCell<ByteLru<Equipment>>,
    basic: RefCell<ByteLru<Doc>>,
    expectations: RefCell<ByteLru<Rendered>>,
    ocid_flights: Flight<Ocid>,
    equipment_flights: Flight<Equipment>,
    basic_flights: Flight<Doc>,
    expectation_flights: Flight<Rendered>,
    nexon: Nexon,
    versions: SlotVersions,
    metrics: Rc<CoreMetrics>,
    /// The core's log: fresh expectations are written behind to the store.
    log: Rc<CoreLog>,
    /// Sheds new cold computations the core cannot start in time.
    admission: Rc<Admission>,
}

impl Owner {
    pub fn new(
        cfg: CacheConfig,
        nexon: Nexon,
        versions: SlotVersions,
        metrics: Rc<CoreMetrics>,
        log: Rc<CoreLog>,
        admission: Rc<Admission>,
    ) -> Owner {
        // The small caches (ocids, basic info) get a fixed share.
        let small = (cfg.equipment_bytes / 16).max(64 * 1024);
        Owner {
            ocids: RefCell::new(ByteLru::new(small, cfg.stale)),
            equipment: RefCell::new(ByteLru::new(cfg.equipment_bytes, cfg.stale)),
            basic: RefCell::new(ByteLru::new(small, cfg.stale)),
            expectations: RefCell::new(ByteLru::new(cfg.expectation_bytes, cfg.stale)),
            ocid_flights: SingleFlight::new(MAX_FLIGHTS, MAX_WAITERS_PER_FLIGHT),
            equipment_flights: SingleFlight::new(MAX_FLIGHTS, MAX_WAITERS_PER_FLIGHT),
            basic_flights: SingleFlight::new(MAX_FLIGHTS, MAX_WAITERS_PER_FLIGHT),
            expectation_flights: SingleFlight::new(MAX_FLIGHTS, MAX_WAITERS_PER_FLIGHT),
            cfg,
            nexon,
            versions,
            metrics,
            log,
            admission,
        }
    }

    pub async fn serve(self: &Rc<Self>, op: Op, name: &Name) -> Result<Served, NodeError> {
        let (doc, cache) = match op {
            Op::Expectation { force } => {
                let (r, cache) = self.expectation(name, force).await?;
                (r.full, cache)
            }
            Op::Preset(n) => {
                let (r, cache) = self.expectation(name, false).await?;
                let doc = r.preset(n).ok_or(NodeError::NotFound)?;
                (doc, cache)
            }
            Op::Equipment => {
                let (equipment, cache) = self.equipment_doc(name, false).await?;
                (self.equipment_gzip(name, equipment), cache)
            }
            Op::Basic => self.basic_doc(name).await?,
        };
        Ok(Served { doc, cache, version: self.versions.get(name.slot) })
    }

    async fn expectation(self: &Rc<Self>, name: &Name, force: bool) -> Result<(Rendered, CacheStatus), NodeError> {
        if !force {
            if let Some(stored) = self.stored_expectation(name) {
                return Ok((stored, CacheStatus::Store));
            }
        }
        let this = self.clone();
        let n = name.clone();
        self.cached_or_fetch("expectation", &self.expectations, &self.expectation_flights, name, force, move || async move {
            let (equipment, eq_cache) = this.equipment_doc(&n, force).await?;
            if eq_cache == CacheStatus::Stale {
                // Upstream is failing: the stored rendering (same equipment)
                // beats rendering the stale equipment again.
                if let Some((r, _)) = this.expectations.borrow_mut().get(&n.key, Instant::now()) {
                    return Ok((r.clone(), CacheStatus::Stale));
                }
            }
            // Compute on this core: the owner is the only one rendering this key.
            // A fresh fetch still carries the plain JSON (no gunzip); a cached
            // equipment document is gzip only (the calculator takes either).
            let input: &[u8] = match &equipment {
                Equipment::Plain(json) => json,
                Equipment::Gzip(doc) if doc.is_gzip_only() => &doc.gzip,
                Equipment::Gzip(doc) => &doc.json,
            };
            let rendered = render(&n.display, input).map_err(NodeError::Calc)?;
            if eq_cache != CacheStatus::Stale {
                this.expectations.borrow_mut().insert(n.key.clone(), rendered.clone(), Instant::now());
                this.versions.bump(n.slot);
                this.metrics.cache_bytes("expectation", this.expectations.borrow().bytes());
                this.write_behind(&n.key, &rendered);
            }
            Ok((rendered, if eq_cache == CacheStatus::Stale { CacheStatus::Stale } else { CacheStatus::Miss }))
        })
        .await
    }

    /// On a memory miss (e.g. after a restart), a rendering younger than the
    /// TTL from the state store, put back in the memory cache with its age.
    /// (A sled read on the core thread: served from sled's page cache, and
    /// only once per key per process.)
    fn stored_expectation(&self, name: &Name) -> Option<Rendered> {
        let now = Instant::now();
        if self.expectations.borrow_mut().get(&name.key, now).is_some() {
            return None; // memory decides (hit, or refetch when expired)
        }
        let stored = self.log.storage.expectation(&name.key)?;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let age = Duration::from_millis(now_ms.saturating_sub(stored.calculated_at_ms));
        if age > self.cfg.ttl {
            return None;
        }
        // The presets are cut out of the whole response again (records
        // written before that also carry their own gzip, not needed).
        let rendered = Rendered::from_full(Doc::from_gzip(stored.gzip, MAX_RENDERED_BYTES)?)?;
        let born = now.checked_sub(age).unwrap_or(now);
        self.expectations.borrow_mut().insert(name.key.clone(), rendered.clone(), born);
        self.versions.bump(name.slot);
        self.metrics.cache("expectation", "store");
        Some(rendered)
    }

    /// Append a fresh rendering to the core's log (not awaited: it is a
    /// cache), and have it applied to the store once durable. A full log
    /// queue or an oversized rendering just skips the write.
    fn write_behind(&self, key: &str, r: &Rendered) {
        let stored = StoredExpectation {
            etag: r.full.etag.to_string(),
            calculated_at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            gzip: r.full.gzip.to_vec(),
            // Derived from the whole response when read back (`Rendered::from_full`).
            presets: [None, None, None],
        };
        let bytes = stored.gzip.len() + stored.presets.iter().flatten().map(Vec::len).sum::<usize>();
        if bytes > MAX_EXPECTATION_BYTES {
            self.metrics.write_behind("too_large");
            return;
        }
        match self.log.append(expectation_payload(key, &stored)) {
            Ok(durable) => {
                self.metrics.write_behind("appended");
                let storage = self.log.storage.clone();
                let metrics = self.metrics.clone();
                monoio::spawn(async move {
                    if let Ok(index) = durable.await {
                        storage.applier.notify_committed(index);
                        metrics.write_behind("durable");
                    }
                });
            }
            Err(_) => self.metrics.write_behind("refused"),
        }
    }

    async fn equipment_doc(self: &Rc<Self>, name: &Name, force: bool) -> Result<(Equipment, CacheStatus), NodeError> {
        let this = self.clone();
        let n = name.clone();
        self.cached_or_fetch("equipment", &self.equipment, &self.equipment_flights, name, force, move || async move {
            let ocid = this.ocid(&n).await?;
            let body = this.nexon.equipment(&ocid.0).await?;
            // Stored as received (see `Equipment`): the render that follows
            // neither copies, compresses nor gunzips it.
            let equipment = Equipment::Plain(body);
            this.equipment.borrow_mut().insert(n.key.clone(), equipment.clone(), Instant::now());
            this.metrics.cache_bytes("equipment", this.equipment.borrow().bytes());
            Ok((equipment, CacheStatus::Miss))
        })
        .await
    }

    /// The equipment route's document: gzip-stored. A plain entry is
    /// compressed now, and the cached entry (if it is still that one)
    /// replaced by the gzip form, keeping its age.
    fn equipment_gzip(&self, name: &Name, equipment: Equipment) -> Doc {
        let json = match equipment {
            Equipment::Gzip(doc) => return doc,
            Equipment::Plain(json) => json,
        };
        let doc = Doc::gzip_only(&json);
        let now = Instant::now();
        let mut cache = self.equipment.borrow_mut();
        let age = match cache.get(&name.key, now) {
            Some((Equipment::Plain(cached), age)) if cached.as_ptr() == json.as_ptr() => Some(age),
            _ => None,
        };
        if let Some(age) = age {
            cache.insert(name.key.clone(), Equipment::Gzip(doc.clone()), now.checked_sub(age).unwrap_or(now));
            self.metrics.cache_bytes("equipment", cache.bytes());
        }
        doc
    }

    async fn basic_doc(self: &Rc<Self>, name: &Name) -> Result<(Doc, CacheStatus), NodeError> {
        let this = self.clone();
        let n = name.clone();
        self.cached_or_fetch("basic", &self.basic, &self.basic_flights, name, false, move || async move {
            let ocid = this.ocid(&n).await?;
            let body = this.nexon.basic(&ocid.0).await?;
            let doc = Doc::from_json(body.to_vec());
            this.basic.borrow_mut().insert(n.key.clone(), doc.clone(), Instant::now());
            Ok((doc, CacheStatus::Miss))
        })
        .await
    }

    /// The ocid never changes for a name, so any cached one (up to the
    /// stale age) is used without a refetch.
    async fn ocid(self: &Rc<Self>, name: &Name) -> Result<Ocid, NodeError> {
        if let Some((o, _)) = self.ocids.borrow_mut().get(&name.key, Instant::now()) {
            self.metrics.cache("ocid", "hit");
            return Ok(o.clone());
        }
        let this = self.clone();
        let n = name.clone();
        let (o, _) = self
            .cached_or_fetch("ocid", &self.ocids, &self.ocid_flights, name, true, move || async move {
                let o = Ocid(this.nexon.ocid(&n.display).await?.into());
                this.ocids.borrow_mut().insert(n.key.clone(), o.clone(), Instant::now());
                Ok((o, CacheStatus::Miss))
            })
            .await?;
        Ok(o)
    }

    /// Fresh cache hit, else join (or lead) the key's flight; if the flight
    /// fails for an upstream reason, serve what the cache still holds
    /// (younger than the stale age) marked STALE.
    async fn cached_or_fetch<V, F, Fut>(
        &self,
        cache_name: &'static str,
        cache: &RefCell<ByteLru<V>>,
        flights: &Flight<V>,
        name: &Name,
        force: bool,
        fetch: F,
    ) -> Result<(V, CacheStatus), NodeError>
    where
        V: Weigh + Clone + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, CacheStatus), NodeError>> + 'static,
    {
        if !force {
            if let Some((v, age)) = cache.borrow_mut().get(&name.key, Instant::now()) {
                if age <= self.cfg.ttl {
                    self.metrics.cache(cache_name, "hit");
                    return Ok((v.clone(), CacheStatus::Hit));
                }
            }
        }
        self.metrics.cache(cache_name, "miss");
        let result = match flights.join(&name.key) {
            Err(_full) => Err(NodeError::Overloaded("too many requests waiting on upstream")),
            Ok(Join::Follower(wait)) => {
                self.metrics.flight_join();
                wait.await.unwrap_or(Err(NodeError::Abandoned))
            }
            Ok(Join::Leader { guard, wait }) => match self.admission.try_start() {
                // Shed: dropping the guard ends the flight nobody else has
                // joined yet (no await since `join`).
                Err(shed) => Err(shed),
                Ok(ticket) => {
                    // The fetch runs as its own task: the leader's client hanging
                    // up must not cancel it for the followers. Its core time is
                    // metered for admission; the ticket lasts as long as the work.
                    let fut = self.admission.metered(fetch());
                    monoio::spawn(async move {
                        guard.complete(fut.await);
                        drop(ticket);
                    });
                    wait.await.unwrap_or(Err(NodeError::Abandoned))
                }
            },
        };
        match result {
            Err(e) if e.allows_stale() => match cache.borrow_mut().get(&name.key, Instant::now()) {
                Some((v, _)) => {
                    self.metrics.cache(cache_name, "stale");
                    Ok((v.clone(), CacheStatus::Stale))
                }
                None => Err(e),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::NodeMetrics;
    use crate::node::admission::AdmissionMetrics;
    use crate::node::durable::{recover_with, wal_options};
    use crate::node::route::parse_name;
    use crate::upstream::{BreakerConfig, Transport};

    /// A cold expectation stores the equipment as fetched (no gzip); the
    /// equipment route's first read compresses it, replaces the cached entry
    /// (smaller, same JSON) and later reads are hits with no upstream call.
    #[test]
    fn equipment_is_compressed_on_its_first_read_not_on_the_cold_path() {
        let dir = std::env::temp_dir().join(format!("maple-owner-equipment-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sim = crate::sim::Simulator::new(crate::sim::Fixtures::load(&crate::sim::test_dir()).unwrap(), Duration::ZERO, 0.0).unwrap();
        let node_metrics = NodeMetrics::new();
        let (storage, _book) = recover_with(&dir, 0, Default::default(), wal_options(4 << 20, storage::WalSync::Fsync)).unwrap();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let metrics = Rc::new(node_metrics.core(0));
            let nexon = Nexon::new(Transport::Sim(sim.clone()), Duration::from_secs(5), BreakerConfig::default(), metrics.clone());
            let cfg = CacheConfig {
                equipment_bytes: 64 << 20,
                expectation_bytes: 64 << 20,
                ttl: Duration::from_secs(300),
                stale: Duration::from_secs(3600),
            };
            let admission = Rc::new(Admission::new(Duration::from_secs(10), AdmissionMetrics::default().core(0)));
            let log = Rc::new(CoreLog::new(Arc::new(storage)));
            let owner = Rc::new(Owner::new(cfg, nexon, SlotVersions::new(16384), metrics, log, admission));
            let name = parse_name("someone-cold").unwrap();

            let first = owner.serve(Op::Expectation { force: false }, &name).await.unwrap();
            assert_eq!(first.cache, CacheStatus::Miss);
            let plain_bytes = owner.equipment.borrow().bytes();
            assert!(matches!(owner.equipment.borrow_mut().get(&name.key, Instant::now()), Some((Equipment::Plain(_), _))));

            let eq = owner.serve(Op::Equipment, &name).await.unwrap();
            assert_eq!(eq.cache, CacheStatus::Hit, "served from the entry the expectation stored");
            let want = crate::sim::Fixtures::load(&crate::sim::test_dir()).unwrap().equipment_json("someone-cold");
            assert_eq!(eq.doc.plain(8 << 20).unwrap().as_ref(), &want[..], "the gzip holds the JSON as fetched");
            assert!(matches!(owner.equipment.borrow_mut().get(&name.key, Instant::now()), Some((Equipment::Gzip(_), _))));
            assert!(owner.equipment.borrow().bytes() * 4 < plain_bytes, "the cached entry shrank");

            let again = owner.serve(Op::Equipment, &name).await.unwrap();
            assert_eq!(again.cache, CacheStatus::Hit);
            assert!(Arc::ptr_eq(&again.doc.gzip, &eq.doc.gzip), "compressed once");
            let stats: serde_json::Value = serde_json::from_str(&sim.stats.to_json()).unwrap();
            assert_eq!(stats["equipment"], 1, "{stats}");
            // A preset is cut out of the stored rendering.
            let preset = owner.serve(Op::Preset(1), &name).await;
            let preset = preset.unwrap();
            assert!(preset.doc.json.starts_with(br#"{"presetNo":1,"#));
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
