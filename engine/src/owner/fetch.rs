//! The owner side of a core for documents: the caches of the keys whose
//! partitions this core hosts, and the fetch → compute → store path behind
//! single-flight (a fresh expectation is written behind to its partition's
//! group; after a restart it is served from the partition's store).
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

use super::admission::Admission;
use super::error::OwnerError;
use super::groups::Groups;
use super::render::{render, Rendered};
use super::sink::Sink;
use super::upstream::Nexon;
use super::Key;
use crate::expectation::equipment;
use crate::partition::{rows, ExpectationWritten, Record, MAX_EXPECTATION_BYTES};
use crate::shard::{ByteLru, Doc, Join, SingleFlight, SlotVersions, Weigh};

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
pub enum DocOp {
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

type Flight<V> = SingleFlight<Result<(V, CacheStatus), OwnerError>>;

/// What a freshly fetched equipment body must pass before it is cached: the
/// calculator's own parse. The equipment route parses only; the cold
/// expectation path renders (which parses once) and keeps the rendering, so
/// it never parses twice.
enum EquipmentCheck {
    Parse,
    /// Filled with the rendering when this request's fetch ran the check.
    Render(Rc<RefCell<Option<Rendered>>>),
}

/// A basic-character body is served as is, so it must be what Nexon's
/// `character/basic` answers: a JSON object with the fields the original's
/// `CharacterBasicResponse` reads (`character_name` non-empty,
/// `world_name` and `character_class` strings, `character_level` a number).
fn check_basic(body: &[u8]) -> Result<(), String> {
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let obj = doc.as_object().ok_or_else(|| "not a JSON object".to_string())?;
    let text = |key: &str| obj.get(key).and_then(serde_json::Value::as_str);
    if text("character_name").is_none_or(|n| n.trim().is_empty()) {
        return Err("character_name missing or not a non-empty string".into());
    }
    for key in ["world_name", "character_class"] {
        if text(key).is_none() {
            return Err(format!("{key} missing or not a string"));
        }
    }
    let level = obj.get("character_level");
    if !level.is_some_and(|l| l.is_u64() || l.as_str().is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))) {
        return Err("character_level missing or not a whole number".into());
    }
    Ok(())
}

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
    metrics: Rc<dyn Sink>,
    /// The core's partition groups: fresh expectations are written behind
    /// through them, stored ones read from their stores.
    groups: Rc<dyn Groups>,
    /// Sheds new cold computations the core cannot start in time.
    admission: Rc<Admission>,
}

impl Owner {
    pub fn new(
        cfg: CacheConfig,
        nexon: Nexon,
        versions: SlotVersions,
        metrics: Rc<dyn Sink>,
        groups: Rc<dyn Groups>,
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
            groups,
            admission,
        }
    }

    pub async fn serve(self: &Rc<Self>, op: DocOp, name: &Key) -> Result<Served, OwnerError> {
        let (doc, cache) = match op {
            DocOp::Expectation { force } => {
                let (r, cache) = self.expectation(name, force).await?;
                (r.full, cache)
            }
            DocOp::Preset(n) => {
                let (r, cache) = self.expectation(name, false).await?;
                let doc = r.preset(n).ok_or(OwnerError::NotFound)?;
                (doc, cache)
            }
            DocOp::Equipment => {
                let (equipment, cache) = self.equipment_doc(name, false, EquipmentCheck::Parse).await?;
                (self.equipment_gzip(name, equipment), cache)
            }
            DocOp::Basic => self.basic_doc(name).await?,
        };
        Ok(Served { doc, cache, version: self.versions.get(name.slot) })
    }

    async fn expectation(self: &Rc<Self>, name: &Key, force: bool) -> Result<(Rendered, CacheStatus), OwnerError> {
        if !force {
            if let Some(stored) = self.stored_expectation(name) {
                return Ok((stored, CacheStatus::Store));
            }
        }
        let this = self.clone();
        let n = name.clone();
        self.cached_or_fetch("expectation", &self.expectations, &self.expectation_flights, name, force, move || async move {
            // A fresh fetch led by this request is checked by rendering it
            // (its one parse), and that rendering comes back here.
            let fresh = Rc::new(RefCell::new(None));
            let (equipment, eq_cache) = this.equipment_doc(&n, force, EquipmentCheck::Render(fresh.clone())).await?;
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
            let rendered = match fresh.take() {
                Some(rendered) => rendered,
                None => render(&n.display, input).map_err(OwnerError::Calc)?,
            };
            if eq_cache != CacheStatus::Stale {
                this.expectations.borrow_mut().insert(n.key.clone(), rendered.clone(), Instant::now());
                this.versions.bump(n.slot);
                this.metrics.cache_bytes("expectation", this.expectations.borrow().bytes());
                this.write_behind(&n, &rendered);
            }
            Ok((rendered, if eq_cache == CacheStatus::Stale { CacheStatus::Stale } else { CacheStatus::Miss }))
        })
        .await
    }

    /// On a memory miss (e.g. after a restart), a rendering younger than the
    /// TTL from the state store, put back in the memory cache with its age.
    /// (A sled read on the core thread: served from sled's page cache, and
    /// only once per key per process.)
    fn stored_expectation(&self, name: &Key) -> Option<Rendered> {
        let now = Instant::now();
        if self.expectations.borrow_mut().get(&name.key, now).is_some() {
            return None; // memory decides (hit, or refetch when expired)
        }
        let store = self.groups.store(name.partition)?;
        let stored = match store.get(&rows::expectation_key(&name.key)) {
            Ok(Some((_, value))) => rows::decode_expectation_row(&value).ok()?,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(partition = name.partition, character = %name.key, error = %e, "stored expectation unreadable");
                return None;
            }
        };
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

    /// Write a fresh rendering behind to its partition's group (not
    /// awaited: it is a cache): applied, it lands in the partition's store.
    /// A partition not ready here, a full log or an oversized rendering
    /// just skips the write.
    fn write_behind(&self, name: &Key, r: &Rendered) {
        if r.full.gzip.len() > MAX_EXPECTATION_BYTES {
            self.metrics.write_behind("too_large");
            return;
        }
        let record = Record::ExpectationWritten(ExpectationWritten {
            key: name.key.clone(),
            etag: r.full.etag.to_string(),
            calculated_at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            gzip: r.full.gzip.to_vec(),
        });
        let bytes = match record.encode() {
            Ok(b) => b,
            Err(_) => {
                self.metrics.write_behind("too_large");
                return;
            }
        };
        if self.groups.ready(name.partition).is_err() {
            self.metrics.write_behind("refused");
            return;
        }
        self.metrics.write_behind("appended");
        let write = self.groups.write(name.partition, bytes);
        let metrics = self.metrics.clone();
        monoio::spawn(async move {
            match write.await {
                Ok(_) => metrics.write_behind("durable"),
                Err(_) => metrics.write_behind("refused"),
            }
        });
    }

    /// The character's equipment document. A fresh fetch is cached only
    /// once `check` accepts it (see [`EquipmentCheck`]); a body the
    /// calculator rejects is `UPSTREAM_BAD_EQUIPMENT`, logged once here.
    async fn equipment_doc(
        self: &Rc<Self>,
        name: &Key,
        force: bool,
        check: EquipmentCheck,
    ) -> Result<(Equipment, CacheStatus), OwnerError> {
        let this = self.clone();
        let n = name.clone();
        self.cached_or_fetch("equipment", &self.equipment, &self.equipment_flights, name, force, move || async move {
            let ocid = this.ocid(&n).await?;
            let body = this.nexon.equipment(&ocid.0).await?;
            let checked = match check {
                EquipmentCheck::Parse => equipment::check(&body).map_err(|e| e.to_string()),
                EquipmentCheck::Render(out) => render(&n.display, &body).map(|rendered| *out.borrow_mut() = Some(rendered)),
            };
            if let Err(reason) = checked {
                tracing::warn!(character = %n.display, %reason, "upstream equipment rejected, not cached");
                return Err(OwnerError::Calc(reason));
            }
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
    fn equipment_gzip(&self, name: &Key, equipment: Equipment) -> Doc {
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

    async fn basic_doc(self: &Rc<Self>, name: &Key) -> Result<(Doc, CacheStatus), OwnerError> {
        let this = self.clone();
        let n = name.clone();
        self.cached_or_fetch("basic", &self.basic, &self.basic_flights, name, false, move || async move {
            let ocid = this.ocid(&n).await?;
            let body = this.nexon.basic(&ocid.0).await?;
            if let Err(reason) = check_basic(&body) {
                tracing::warn!(character = %n.display, %reason, "upstream basic info rejected, not cached");
                return Err(OwnerError::BadBasic(reason));
            }
            let doc = Doc::from_json(body.to_vec());
            this.basic.borrow_mut().insert(n.key.clone(), doc.clone(), Instant::now());
            Ok((doc, CacheStatus::Miss))
        })
        .await
    }

    /// The ocid never changes for a name, so any cached one (up to the
    /// stale age) is used without a refetch.
    async fn ocid(self: &Rc<Self>, name: &Key) -> Result<Ocid, OwnerError> {
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
        name: &Key,
        force: bool,
        fetch: F,
    ) -> Result<(V, CacheStatus), OwnerError>
    where
        V: Weigh + Clone + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, CacheStatus), OwnerError>> + 'static,
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
            Err(_full) => Err(OwnerError::Overloaded("too many requests waiting on upstream")),
            Ok(Join::Follower(wait)) => {
                self.metrics.flight_join();
                wait.await.unwrap_or(Err(OwnerError::Abandoned))
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
                    wait.await.unwrap_or(Err(OwnerError::Abandoned))
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
    use crate::owner::admission::Admission;
    use crate::owner::breaker::BreakerConfig;
    use crate::owner::groups::{GroupError, PartitionId};
    use crate::owner::upstream::{Transport, UpstreamError};
    use crate::owner::NoSink;
    use crate::partition::Partition;
    use futures::future::LocalBoxFuture;
    use std::collections::BTreeMap;

    fn fixtures() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple")
    }

    /// The simulator's rules the owner meets: the ocid is the name; equipment
    /// is Evan's; names starting with `hollow` get JSON without the needed
    /// fields, `malformed` a truncated document. Counts calls per endpoint.
    #[derive(Default)]
    struct FakeUpstream {
        calls: RefCell<BTreeMap<&'static str, u64>>,
    }

    impl FakeUpstream {
        fn calls(&self, endpoint: &str) -> u64 {
            self.calls.borrow().get(endpoint).copied().unwrap_or(0)
        }
    }

    impl Transport for FakeUpstream {
        fn get(&self, path_and_query: &str) -> LocalBoxFuture<'_, Result<(u16, Bytes), UpstreamError>> {
            let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
            let value = query.split_once('=').map_or("", |(_, v)| v);
            let name = String::from_utf8(
                (0..value.len())
                    .step_by(1)
                    .scan(0usize, |skip, i| {
                        if *skip > 0 {
                            *skip -= 1;
                            return Some(None);
                        }
                        if value.as_bytes()[i] == b'%' {
                            *skip = 2;
                            Some(u8::from_str_radix(&value[i + 1..i + 3], 16).ok())
                        } else {
                            Some(Some(value.as_bytes()[i]))
                        }
                    })
                    .flatten()
                    .collect(),
            )
            .unwrap();
            let endpoint = match path {
                "/maplestory/v1/id" => "id",
                "/maplestory/v1/character/basic" => "basic",
                _ => "equipment",
            };
            *self.calls.borrow_mut().entry(endpoint).or_default() += 1;
            let body = match endpoint {
                "id" => serde_json::to_vec(&serde_json::json!({ "ocid": name })).unwrap(),
                _ if name.starts_with("hollow") => {
                    if endpoint == "basic" {
                        br#"{"date":null}"#.to_vec()
                    } else {
                        br#"{"date":null,"character_class":"x"}"#.to_vec()
                    }
                }
                "basic" => std::fs::read(fixtures().join("basic_character_info.json")).unwrap(),
                _ => std::fs::read(fixtures().join("evan_equip.json")).unwrap(),
            };
            let body = if name.starts_with("malformed") && endpoint != "id" { body[..body.len() / 2].to_vec() } else { body };
            Box::pin(std::future::ready(Ok((200, Bytes::from(body)))))
        }
    }

    /// No partition hosted: write-behind is refused, nothing is stored.
    struct NoGroups;

    impl Groups for NoGroups {
        fn machine(&self, _p: PartitionId) -> Option<Rc<RefCell<Partition>>> {
            None
        }
        fn store(&self, _p: PartitionId) -> Option<storage::store::Partition> {
            None
        }
        fn write(&self, p: PartitionId, _record: Vec<u8>) -> LocalBoxFuture<'static, Result<Bytes, GroupError>> {
            Box::pin(std::future::ready(Err(GroupError::Unavailable { partition: p, why: "test".into() })))
        }
        fn read_index(&self, p: PartitionId) -> LocalBoxFuture<'static, Result<(), GroupError>> {
            Box::pin(std::future::ready(Err(GroupError::Unavailable { partition: p, why: "test".into() })))
        }
        fn ready(&self, p: PartitionId) -> Result<(), GroupError> {
            Err(GroupError::Unavailable { partition: p, why: "test".into() })
        }
    }

    fn parse_name(raw: &str) -> Result<Key, crate::name::NameError> {
        let key = crate::name::normalize_name(raw)?;
        Ok(Key { display: raw.trim().to_string(), key, slot: 0, partition: 0, core: 0 })
    }

    /// An owner on core 0 over the fake upstream (call inside a runtime).
    fn owner_on(up: &Rc<FakeUpstream>) -> Rc<Owner> {
        let sink: Rc<dyn Sink> = Rc::new(NoSink);
        let nexon = Nexon::new(0, up.clone(), Duration::from_secs(5), BreakerConfig::default(), sink.clone());
        let cfg = CacheConfig {
            equipment_bytes: 64 << 20,
            expectation_bytes: 64 << 20,
            ttl: Duration::from_secs(300),
            stale: Duration::from_secs(3600),
        };
        let admission = Rc::new(Admission::new(Duration::from_secs(10), sink.clone()));
        Rc::new(Owner::new(cfg, nexon, SlotVersions::new(16384), sink, Rc::new(NoGroups), admission))
    }

    /// A cold expectation stores the equipment as fetched (no gzip); the
    /// equipment route's first read compresses it, replaces the cached entry
    /// (smaller, same JSON) and later reads are hits with no upstream call.
    #[test]
    fn equipment_is_compressed_on_its_first_read_not_on_the_cold_path() {
        let up = Rc::new(FakeUpstream::default());
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
        rt.block_on(async {
            let owner = owner_on(&up);
            let name = parse_name("someone-cold").unwrap();

            let first = owner.serve(DocOp::Expectation { force: false }, &name).await.unwrap();
            assert_eq!(first.cache, CacheStatus::Miss);
            let plain_bytes = owner.equipment.borrow().bytes();
            assert!(matches!(owner.equipment.borrow_mut().get(&name.key, Instant::now()), Some((Equipment::Plain(_), _))));

            let eq = owner.serve(DocOp::Equipment, &name).await.unwrap();
            assert_eq!(eq.cache, CacheStatus::Hit, "served from the entry the expectation stored");
            let want = std::fs::read(fixtures().join("evan_equip.json")).unwrap();
            assert_eq!(eq.doc.plain(8 << 20).unwrap().as_ref(), &want[..], "the gzip holds the JSON as fetched");
            assert!(matches!(owner.equipment.borrow_mut().get(&name.key, Instant::now()), Some((Equipment::Gzip(_), _))));
            assert!(owner.equipment.borrow().bytes() * 4 < plain_bytes, "the cached entry shrank");

            let again = owner.serve(DocOp::Equipment, &name).await.unwrap();
            assert_eq!(again.cache, CacheStatus::Hit);
            assert!(Arc::ptr_eq(&again.doc.gzip, &eq.doc.gzip), "compressed once");
            assert_eq!(up.calls("equipment"), 1);
            // A preset is cut out of the stored rendering.
            let preset = owner.serve(DocOp::Preset(1), &name).await;
            let preset = preset.unwrap();
            assert!(preset.doc.json.starts_with(br#"{"presetNo":1,"#));
        });
    }

    /// Counts WARN events and keeps their fields as text.
    #[derive(Clone, Default)]
    struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

    impl Warnings {
        fn about(&self, character: &str) -> usize {
            let needle = format!("character={character} ");
            self.0.lock().unwrap().iter().filter(|w| w.contains(&needle)).count()
        }
    }

    struct FieldText(String);

    impl tracing::field::Visit for FieldText {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            use std::fmt::Write;
            let _ = write!(self.0, "{}={:?} ", field.name(), value);
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            use std::fmt::Write;
            let _ = write!(self.0, "{}={} ", field.name(), value);
        }
    }

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut text = FieldText(String::new());
                event.record(&mut text);
                self.0.lock().unwrap().push(text.0);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// A 200 whose body is not usable (truncated JSON, or an object without
    /// the needed fields) is a 502 `UPSTREAM_BAD_*`, is not cached (the next
    /// request fetches again), and is logged once per fetch — concurrent
    /// requests share the fetch and the warning.
    #[test]
    fn unusable_upstream_bodies_are_errors_never_cached() {
        let up = Rc::new(FakeUpstream::default());
        let warnings = Warnings::default();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
        tracing::subscriber::with_default(warnings.clone(), || {
            rt.block_on(async {
                let owner = owner_on(&up);
                let calls = |what: &str| -> u64 { up.calls(what) };
                // The error kind the binary answers 502 UPSTREAM_BAD_EQUIPMENT / UPSTREAM_BAD_BASIC.
                let code = |e: &OwnerError| match e {
                    OwnerError::Calc(_) => "UPSTREAM_BAD_EQUIPMENT",
                    OwnerError::BadBasic(_) => "UPSTREAM_BAD_BASIC",
                    _ => "other",
                };
                for (character, op, want, says) in [
                    ("malformed-eq", DocOp::Equipment, "UPSTREAM_BAD_EQUIPMENT", "EOF while parsing"),
                    ("hollow-eq", DocOp::Equipment, "UPSTREAM_BAD_EQUIPMENT", "item_equipment_preset_1"),
                    ("malformed-exp", DocOp::Expectation { force: false }, "UPSTREAM_BAD_EQUIPMENT", "EOF while parsing"),
                    ("hollow-exp", DocOp::Preset(1), "UPSTREAM_BAD_EQUIPMENT", "no equipment lists"),
                    ("malformed-basic", DocOp::Basic, "UPSTREAM_BAD_BASIC", "not JSON"),
                    ("hollow-basic", DocOp::Basic, "UPSTREAM_BAD_BASIC", "character_name"),
                ] {
                    let name = parse_name(character).unwrap();
                    let endpoint = if op == DocOp::Basic { "basic" } else { "equipment" };
                    let before = calls(endpoint);
                    let (a, b, c) = futures::join!(owner.serve(op, &name), owner.serve(op, &name), owner.serve(op, &name));
                    for r in [a, b, c] {
                        let Err(e) = r else { panic!("{character}: served an unusable body") };
                        assert_eq!(code(&e), want, "{character}: {e}");
                        assert!(e.to_string().contains(says), "{character}: {e}");
                    }
                    assert_eq!(calls(endpoint), before + 1, "{character}: three requests, one fetch");
                    assert_eq!(warnings.about(character), 1, "{character}: logged once");
                    assert!(warnings.0.lock().unwrap().iter().any(|w| w.contains(says)), "{character}: the reason is logged");

                    // Nothing was cached: the next request fetches (and fails) again,
                    // whichever route asks.
                    assert!(owner.equipment.borrow_mut().get(&name.key, Instant::now()).is_none());
                    assert!(owner.basic.borrow_mut().get(&name.key, Instant::now()).is_none());
                    assert!(owner.expectations.borrow_mut().get(&name.key, Instant::now()).is_none());
                    let Err(again) = owner.serve(op, &name).await else { panic!("{character}: served from a cache") };
                    assert_eq!(code(&again), want);
                    assert_eq!(calls(endpoint), before + 2, "{character}: not served from a cache");
                    assert_eq!(warnings.about(character), 2);
                    if op != DocOp::Basic {
                        let other = if op == DocOp::Equipment { DocOp::Expectation { force: false } } else { DocOp::Equipment };
                        let Err(e) = owner.serve(other, &name).await else { panic!("{character}: {other:?} served") };
                        assert_eq!(code(&e), want);
                        assert_eq!(calls(endpoint), before + 3);
                    }
                }

                // A good character on the cold expectation path: its equipment
                // is cached once the render (the check) succeeded.
                let good = parse_name("someone-good").unwrap();
                assert_eq!(owner.serve(DocOp::Expectation { force: false }, &good).await.unwrap().cache, CacheStatus::Miss);
                assert!(owner.equipment.borrow_mut().get(&good.key, Instant::now()).is_some());
                assert_eq!(owner.serve(DocOp::Equipment, &good).await.unwrap().cache, CacheStatus::Hit);
                assert_eq!(owner.serve(DocOp::Basic, &good).await.unwrap().cache, CacheStatus::Miss);
                assert_eq!(owner.serve(DocOp::Basic, &good).await.unwrap().cache, CacheStatus::Hit);
                assert_eq!(warnings.about("someone-good"), 0);
            })
        });
    }

    #[test]
    fn basic_documents_need_the_character_fields() {
        let good = br#"{"character_name":"x","world_name":"w","character_class":"c","character_level":295,"date":null}"#;
        assert_eq!(check_basic(good), Ok(()));
        assert_eq!(check_basic(br#"{"character_name":"x","world_name":"w","character_class":"c","character_level":"295"}"#), Ok(()));
        for (body, says) in [
            (&br#"{"character_name":"x","#[..], "not JSON"),
            (b"[]", "not a JSON object"),
            (b"{}", "character_name"),
            (br#"{"character_name":" ","world_name":"w","character_class":"c","character_level":1}"#, "character_name"),
            (br#"{"character_name":"x","character_class":"c","character_level":1}"#, "world_name"),
            (br#"{"character_name":"x","world_name":"w","character_class":null,"character_level":1}"#, "character_class"),
            (br#"{"character_name":"x","world_name":"w","character_class":"c","character_level":-1}"#, "character_level"),
            (br#"{"character_name":"x","world_name":"w","character_class":"c"}"#, "character_level"),
        ] {
            let err = check_basic(body).expect_err(says);
            assert!(err.contains(says), "{err}");
        }
        let fixture = std::fs::read(fixtures().join("basic_character_info.json")).unwrap();
        assert_eq!(check_basic(&fixture), Ok(()));
    }
}
