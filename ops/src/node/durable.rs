//! Per-core durable storage: one write-ahead log + one sled state store per
//! core under `<data-dir>/core-<n>/{wal,state}` (single node: partition =
//! core), the log record kinds the node writes, recovery at start, and the
//! housekeeping that keeps the store bounded.
//!
//! Log payload = `kind: u8 | body`. Kinds:
//! - [`KIND_LIKE_AT`]: `at_ms: u64 | engine::likes::LikeRecord` (outcome,
//!   not delta; `at_ms` = wall clock of the toggle, for idempotency expiry);
//! - [`KIND_LIKE`]: a bare `LikeRecord` (written by older builds; still read);
//! - [`KIND_EXPECTATION`]: a rendered expectation (write-behind cache):
//!   `key_len: u16 | key | etag_len: u16 | etag | calculated_at_ms: u64`
//!   then 4 × `len: u32 | gzip` (the whole response, presets 1..=3; length
//!   0 = no such preset);
//! - [`KIND_EVICT_EXPECTATION`]: `written_by: u64 | key` — drop the stored
//!   expectation of `key` if it is still the one entry `written_by` wrote.
//!
//! State-store image (every row written by applying a log entry):
//! - `like/u/{character}\0{user}` (present iff liked). The count is not
//!   stored: it is the number of relations, which is what recovery rebuilds
//!   (one sled write per toggle instead of two — the applier's main cost);
//! - `idem/{at_ms: u64 BE}{index: u64 BE}` = `liked: u8 | count: u64 | user_len: u16 | user | key`:
//!   the first answer of a keyed toggle. Time-ordered, so the sweep drops
//!   expired rows from the front and keeps at most `max_idempotency_keys`;
//! - `exp/{key}` = the expectation body, `expm/{key}` = its `calculated_at_ms`
//!   (a small row, so the eviction sweep never reads the large one).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::likes::{LikeBook, LikeLimits, LikeRecord, LikeResult, RELATION_PREFIX};
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use storage::{
    Applier, ApplierOptions, ApplyEntry, Entry, KvWrite, StateStats, StateStore, StorageError, Wal, WalOptions, WalStats, WalSync,
};

pub const KIND_LIKE: u8 = 1;
pub const KIND_EXPECTATION: u8 = 2;
pub const KIND_LIKE_AT: u8 = 3;
pub const KIND_EVICT_EXPECTATION: u8 = 4;
/// Every entry of a single node is written in term 1 (no elections).
pub const TERM: u64 = 1;
/// State-store key prefix of stored expectations (`exp/{key}`).
pub const EXPECTATION_PREFIX: &[u8] = b"exp/";
/// State-store key prefix of the stored expectations' ages (`expm/{key}`).
pub const EXPECTATION_META_PREFIX: &[u8] = b"expm/";
/// State-store key prefix of remembered idempotency answers.
pub const IDEMPOTENCY_PREFIX: &[u8] = b"idem/";
/// Largest stored expectation (gzip bytes); bigger ones are not written behind.
pub const MAX_EXPECTATION_BYTES: usize = 1 << 20;
/// Largest log entry the node writes (an expectation record plus headers);
/// a segment must hold one, so segments are at least twice this.
pub const MAX_ENTRY_BYTES: usize = 2 << 20;
/// How long a keyed toggle's answer is replayed to retries (default of
/// `--idempotency-ttl-secs`).
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default of `--store-expectations-max` (whole node).
pub const DEFAULT_STORED_EXPECTATIONS_MAX: usize = 50_000;
/// Evict records one sweep may ask for (the rest wait for the next sweep).
const MAX_EVICTIONS_PER_SWEEP: usize = 4096;
/// Idempotency rows one sweep may forget.
const MAX_FORGOTTEN_PER_SWEEP: usize = 1 << 22;

/// Log options of the node: `segment_bytes` (>= 4 MiB) and the sync mode
/// from the config (`--wal-segment-mb`, `--wal-sync`).
pub fn wal_options(segment_bytes: u64, sync: WalSync) -> WalOptions {
    WalOptions { segment_bytes, max_entry_bytes: MAX_ENTRY_BYTES, sync, ..WalOptions::default() }
}

/// Everything recovery and the per-core housekeeping need.
#[derive(Debug, Clone)]
pub struct DurableOptions {
    pub wal: WalOptions,
    pub limits: LikeLimits,
    /// A keyed toggle's answer is replayed to retries this long (memory and store).
    pub idempotency_ttl: Duration,
    /// Stored expectations this core keeps; the oldest beyond are evicted.
    pub expectations_max: usize,
    /// Stored expectations older than this are evicted (`--cache-stale-secs`).
    pub expectation_stale: Duration,
    /// How often the applier sweeps (and after every checkpoint).
    pub maintain_every: Duration,
    /// sled's page cache of the core's state store (`--memory-mb` share).
    pub store_cache_bytes: u64,
}

impl DurableOptions {
    pub fn new(wal: WalOptions) -> DurableOptions {
        DurableOptions {
            wal,
            limits: LikeLimits::default(),
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            expectations_max: DEFAULT_STORED_EXPECTATIONS_MAX,
            expectation_stale: Duration::from_secs(86_400),
            maintain_every: Duration::from_secs(30),
            store_cache_bytes: storage::DEFAULT_STATE_CACHE_BYTES,
        }
    }
}

/// A stored expectation the sweep wants dropped: `key`, as written by entry `written_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub key: String,
    pub written_by: u64,
}

/// One core's log and store. `Send + Sync`: the owning core appends, the
/// metrics scrape (any core) and shutdown (main thread) read it.
pub struct CoreStorage {
    pub core: usize,
    pub wal: Wal,
    pub applier: Applier,
    /// Entries applied to sled at start (after the checkpoint); 0 after a clean stop.
    pub replayed: u64,
    pub dropped_tail_bytes: u64,
    pub recovery: Duration,
    pub idempotency_ttl: Duration,
    /// Bound of the idempotency answers (`LikeLimits::max_idempotency_keys`).
    pub idempotency_max: usize,
    /// Index the next append must carry. Shared by every [`CoreLog`] of this
    /// core; all of them run on the core's own thread (asserted), so
    /// reading it, submitting and bumping it is never interleaved.
    next_index: AtomicU64,
    appender: OnceLock<std::thread::ThreadId>,
    /// Idempotency answers restored from the store, taken once by the like shard.
    restored_answers: Mutex<Option<IdempotencyAnswers>>,
    /// Evictions decided by the applier's sweep, for the core to append.
    evictions: flume::Receiver<Vec<Eviction>>,
}

impl CoreStorage {
    pub fn wal_stats(&self) -> WalStats {
        self.wal.stats()
    }

    pub fn state_stats(&self) -> StateStats {
        self.applier.stats()
    }

    /// The stored expectation of `key`, if any: (gzip, etag, calculated_at_ms).
    pub fn expectation(&self, key: &str) -> Option<StoredExpectation> {
        let (_, value) = self.applier.store().get(&expectation_key(key)).ok()??;
        decode_expectation(&value).ok().map(|(_, e)| e)
    }

    /// The idempotency answers recovered at start (the like shard takes them
    /// once; later calls get an empty set with the same bounds).
    pub fn take_idempotency_answers(&self) -> IdempotencyAnswers {
        self.restored_answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| IdempotencyAnswers::new(self.idempotency_max))
    }

    /// Apply everything durable, checkpoint sled, purge covered log
    /// segments. Blocking; called once at shutdown on the main thread.
    pub fn final_checkpoint(&self) -> Result<u64, StorageError> {
        self.applier.notify_committed(self.wal.durable_index());
        futures::executor::block_on(self.applier.checkpoint()?)
    }
}

type Durable = Shared<LocalBoxFuture<'static, Result<u64, String>>>;

/// A core-local appender of a core's log: assigns dense indices in append
/// order and remembers its newest append. Appends happen only on the owning
/// core's thread, so submit order = index order, also across the several
/// `CoreLog`s of one core (the service's and the evictor's).
pub struct CoreLog {
    pub storage: Arc<CoreStorage>,
    /// Resolves when the newest append (and so every earlier one) is durable.
    last_appended: RefCell<Option<Durable>>,
}

impl CoreLog {
    pub fn new(storage: Arc<CoreStorage>) -> CoreLog {
        CoreLog { storage, last_appended: RefCell::new(None) }
    }

    /// Submit one entry; `Backpressure` (or any error) means nothing was
    /// written. Synchronous: no await between deciding and submitting.
    pub fn append(&self, payload: Vec<u8>) -> Result<Durable, StorageError> {
        let me = std::thread::current().id();
        assert_eq!(*self.storage.appender.get_or_init(|| me), me, "a core's log is appended to from its own thread only");
        let index = self.storage.next_index.load(Ordering::Relaxed);
        let fut = self.storage.wal.append(vec![Entry::new(TERM, index, payload)])?;
        self.storage.next_index.store(index + 1, Ordering::Relaxed);
        let durable = fut.map(|r| r.map_err(|e: StorageError| e.to_string())).boxed_local().shared();
        *self.last_appended.borrow_mut() = Some(durable.clone());
        Ok(durable)
    }

    /// The newest append, if any (await it to know all appends so far are durable).
    pub fn newest(&self) -> Option<Durable> {
        self.last_appended.borrow().clone()
    }
}

/// Append the evict records of one batch; stops at the first refusal (the
/// next sweep asks again). Returns the newest append, if any.
pub fn append_evictions(log: &CoreLog, batch: &[Eviction]) -> Option<Durable> {
    let mut newest = None;
    for ev in batch {
        match log.append(evict_payload(ev)) {
            Ok(d) => newest = Some(d),
            Err(_) => break,
        }
    }
    newest
}

/// The core's evictor: appends the evictions the applier's sweep decides,
/// one batch at a time (the channel holds one batch: bounded). Call on the
/// core's thread, inside its runtime.
pub fn spawn_evictor(storage: Arc<CoreStorage>) {
    monoio::spawn(async move {
        let log = CoreLog::new(storage.clone());
        while let Ok(batch) = storage.evictions.recv_async().await {
            if let Some(durable) = append_evictions(&log, &batch) {
                if let Ok(index) = durable.await {
                    storage.applier.notify_committed(index);
                }
            }
        }
    });
}

pub fn core_dir(data_dir: &Path, core: usize) -> PathBuf {
    data_dir.join(format!("core-{core}"))
}

/// [`recover`] with default store bounds.
#[cfg(test)]
pub fn recover_with(
    data_dir: &Path,
    core: usize,
    limits: LikeLimits,
    wal_options: WalOptions,
) -> Result<(CoreStorage, LikeBook), StorageError> {
    recover(data_dir, core, &DurableOptions { limits, ..DurableOptions::new(wal_options) })
}

/// Open the core's log and store, replay the log after the checkpoint into
/// sled, rebuild the like book and the idempotency answers from sled, start
/// the applier.
pub fn recover(data_dir: &Path, core: usize, opts: &DurableOptions) -> Result<(CoreStorage, LikeBook), StorageError> {
    let started = Instant::now();
    let dir = core_dir(data_dir, core);
    let (wal, recovery) = Wal::open(&dir.join("wal"), opts.wal.clone())?;
    let store = Arc::new(StateStore::open_with_cache(&dir.join("state"), opts.store_cache_bytes)?);
    let (evict_tx, evictions) = flume::bounded(1);
    let mut apply = NodeApply {
        idempotency_ttl: opts.idempotency_ttl,
        idempotency_max: opts.limits.max_idempotency_keys,
        expectations_max: opts.expectations_max,
        expectation_stale: opts.expectation_stale,
        evictions: evict_tx,
    };
    let replayed = store.replay(&wal, wal.last_index(), &mut apply)?;
    // The memory budget may bound the book below what an earlier run stored:
    // load what is there (up to the hard limit) and refuse new likes instead.
    let hard_limit = opts.limits.max_relations.max(LikeLimits::default().max_relations);
    let pairs = store.scan_prefix(RELATION_PREFIX, hard_limit.saturating_add(1))?;
    if pairs.len() > hard_limit {
        return Err(StorageError::Corrupt {
            what: format!("core {core} like relations"),
            detail: format!("more than the limit of {hard_limit}"),
        });
    }
    let mut limits = opts.limits.clone();
    if pairs.len() > limits.max_relations {
        tracing::warn!(
            core,
            relations = pairs.len(),
            limit = limits.max_relations,
            "core {core} stores {} like relations, more than the memory budget's {}: all are loaded; new likes are \
             refused (503 STORAGE_BUSY) until unlikes make room (raise --memory-mb)",
            pairs.len(),
            limits.max_relations
        );
        limits.max_relations = pairs.len();
    }
    let limits = &limits;
    let mut book = LikeBook::new(limits.clone());
    book.load_kv(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))).map_err(|e| StorageError::Decode(e.to_string()))?;
    let answers = load_idempotency(&store, now_ms(), opts.idempotency_ttl, limits.max_idempotency_keys)?;
    let applier_opts = ApplierOptions { maintain_every: opts.maintain_every, ..ApplierOptions::default() };
    let next_index = AtomicU64::new(wal.last_index() + 1);
    let applier = Applier::spawn(store, wal.clone(), apply, applier_opts, wal.last_index())?;
    let storage = CoreStorage {
        core,
        wal,
        applier,
        replayed,
        dropped_tail_bytes: recovery.dropped_tail_bytes,
        recovery: started.elapsed(),
        idempotency_ttl: opts.idempotency_ttl,
        idempotency_max: limits.max_idempotency_keys,
        next_index,
        appender: OnceLock::new(),
        restored_answers: Mutex::new(Some(answers)),
        evictions,
    };
    Ok((storage, book))
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The applier's view of the node's records: entry → key writes, plus the
/// sweeps that keep the store bounded.
struct NodeApply {
    idempotency_ttl: Duration,
    idempotency_max: usize,
    expectations_max: usize,
    expectation_stale: Duration,
    evictions: flume::Sender<Vec<Eviction>>,
}

impl ApplyEntry for NodeApply {
    fn writes(&mut self, entry: &Entry) -> Result<Vec<KvWrite>, StorageError> {
        entry_writes(entry)
    }

    fn maintain(&mut self, store: &StateStore) -> Result<(), StorageError> {
        let now = now_ms();
        sweep_idempotency(store, now, self.idempotency_ttl, self.idempotency_max)?;
        let batch = eviction_candidates(store, now, self.expectation_stale, self.expectations_max, MAX_EVICTIONS_PER_SWEEP)?;
        if !batch.is_empty() {
            // Full = the previous batch is still being appended: ask next time.
            let _ = self.evictions.try_send(batch);
        }
        Ok(())
    }
}

/// Forget idempotency rows that expired, and the oldest beyond `max`.
/// Outside the log on purpose: readers ignore expired rows, so a replay
/// that writes one again changes no answer (see `StateStore::forget`).
fn sweep_idempotency(store: &StateStore, now_ms: u64, ttl: Duration, max: usize) -> Result<usize, StorageError> {
    let ttl_ms = ttl.as_millis() as u64;
    let (mut kept, mut forgotten) = (0usize, 0usize);
    let mut bad = None;
    // Newest first: keep up to `max` unexpired rows, forget the rest (one by
    // one while iterating: sled allows it, and nothing is collected).
    store.visit_prefix(IDEMPOTENCY_PREFIX, true, |v| {
        let r = idempotency_row_time(v.key).and_then(|at| {
            if kept < max && at.saturating_add(ttl_ms) > now_ms {
                kept += 1;
                Ok(())
            } else {
                forgotten += store.forget(&[v.key.to_vec()])?;
                Ok(())
            }
        });
        if let Err(e) = r {
            bad = Some(e);
            return false;
        }
        // Bounded work per sweep; the next sweep continues.
        forgotten < MAX_FORGOTTEN_PER_SWEEP
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(forgotten),
    }
}

/// The stored expectations to evict: those calculated longer than `stale`
/// ago, then the oldest beyond `max`; at most `limit`.
fn eviction_candidates(store: &StateStore, now_ms: u64, stale: Duration, max: usize, limit: usize) -> Result<Vec<Eviction>, StorageError> {
    let stale_ms = stale.as_millis() as u64;
    let mut all: Vec<(u64, Vec<u8>, u64)> = Vec::new();
    let mut bad = None;
    store.visit_prefix(EXPECTATION_META_PREFIX, false, |v| {
        match <[u8; 8]>::try_from(v.value) {
            Ok(b) => all.push((u64::from_le_bytes(b), v.key[EXPECTATION_META_PREFIX.len()..].to_vec(), v.index)),
            Err(_) => {
                bad = Some(StorageError::Decode("expectation age row: not 8 bytes".into()));
                return false;
            }
        }
        true
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    all.sort_unstable_by_key(|(at, _, index)| (*at, *index));
    let over = all.len().saturating_sub(max);
    let mut out = Vec::new();
    for (i, (at, key, written_by)) in all.into_iter().enumerate() {
        let old = at.saturating_add(stale_ms) <= now_ms;
        if !(old || i < over) || out.len() >= limit {
            break;
        }
        let key = String::from_utf8(key).map_err(|_| StorageError::Decode("expectation key: not utf-8".into()))?;
        out.push(Eviction { key, written_by });
    }
    Ok(out)
}

/// The idempotency answers still valid, newest `max` of them, oldest first.
fn load_idempotency(store: &StateStore, now_ms: u64, ttl: Duration, max: usize) -> Result<IdempotencyAnswers, StorageError> {
    let ttl_ms = ttl.as_millis() as u64;
    let mut rows = Vec::new();
    let mut bad = None;
    store.visit_prefix(IDEMPOTENCY_PREFIX, true, |v| {
        let row = idempotency_row_time(v.key).and_then(|at| Ok((at, decode_idempotency_value(v.value)?)));
        match row {
            Ok((at, answer)) => {
                if at.saturating_add(ttl_ms) > now_ms {
                    rows.push((at.saturating_add(ttl_ms), answer));
                }
            }
            Err(e) => {
                bad = Some(e);
                return false;
            }
        }
        rows.len() < max
    })?;
    if let Some(e) = bad {
        return Err(e);
    }
    let mut answers = IdempotencyAnswers::new(max);
    for (expires_ms, (user, key, result)) in rows.into_iter().rev() {
        answers.insert(&user, &key, result, expires_ms, now_ms);
    }
    Ok(answers)
}

/// Remembered first answers of keyed toggles, per `(user, key)`: bounded
/// (oldest forgotten first) and expiring. Owned by one core's like shard.
#[derive(Debug)]
pub struct IdempotencyAnswers {
    /// `user \0 key` (both are free of control characters) → (answer, expires at, ms).
    map: HashMap<String, (LikeResult, u64)>,
    /// Insertion order, for the bound and for expiry.
    order: VecDeque<(String, u64)>,
    max: usize,
}

impl IdempotencyAnswers {
    pub fn new(max: usize) -> IdempotencyAnswers {
        IdempotencyAnswers { map: HashMap::new(), order: VecDeque::new(), max: max.max(1) }
    }

    fn id(user: &str, key: &str) -> String {
        [user, "\0", key].concat()
    }

    /// The first answer to `(user, key)`, if remembered and not expired.
    pub fn get(&mut self, user: &str, key: &str, now_ms: u64) -> Option<LikeResult> {
        let id = Self::id(user, key);
        match self.map.get(&id) {
            Some(&(answer, expires)) if expires > now_ms => Some(answer),
            Some(_) => {
                self.map.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Remember `answer` until `expires_ms` (no-op if already remembered).
    pub fn insert(&mut self, user: &str, key: &str, answer: LikeResult, expires_ms: u64, now_ms: u64) {
        let id = Self::id(user, key);
        if self.map.contains_key(&id) {
            return;
        }
        while self.order.len() >= self.max || self.order.front().is_some_and(|(_, exp)| *exp <= now_ms) {
            let Some((old, exp)) = self.order.pop_front() else { break };
            // Only if that entry is still the one this order slot stands for.
            if self.map.get(&old).is_some_and(|&(_, e)| e == exp) {
                self.map.remove(&old);
            }
        }
        self.map.insert(id.clone(), (answer, expires_ms));
        self.order.push_back((id, expires_ms));
    }
}

/// The state-store image of one log entry (used by replay and the applier;
/// depends on the entry alone, so replaying it again is harmless).
fn entry_writes(entry: &Entry) -> Result<Vec<KvWrite>, StorageError> {
    let (&kind, body) = entry.payload.split_first().ok_or_else(|| StorageError::Decode("empty payload".into()))?;
    match kind {
        KIND_LIKE | KIND_LIKE_AT => {
            let (at_ms, body) = if kind == KIND_LIKE_AT {
                if body.len() < 8 {
                    return Err(StorageError::Decode("like record: truncated time".into()));
                }
                let (at, rest) = body.split_at(8);
                (Some(u64::from_le_bytes(at.try_into().expect("8 bytes"))), rest)
            } else {
                (None, body)
            };
            let record = LikeRecord::decode(body).map_err(|e| StorageError::Decode(e.to_string()))?;
            // Only the relation row; `like/c/` count rows are derived data.
            let [_count, (key, relation)] = record.kv_changes();
            let mut writes = vec![match relation {
                Some(value) => KvWrite::Put { key, value },
                None => KvWrite::Delete { key },
            }];
            if let (Some(at), Some(key)) = (at_ms, &record.idempotency_key) {
                writes.push(KvWrite::Put {
                    key: idempotency_row_key(at, entry.index),
                    value: idempotency_value(&record.user, key, record.liked, record.count_after),
                });
            }
            Ok(writes)
        }
        KIND_EXPECTATION => {
            let (key, e) = decode_expectation(body)?;
            Ok(vec![
                KvWrite::Put { key: expectation_key(&key), value: body.to_vec() },
                KvWrite::Put { key: expectation_meta_key(&key), value: e.calculated_at_ms.to_le_bytes().to_vec() },
            ])
        }
        KIND_EVICT_EXPECTATION => {
            let ev = decode_evict(body)?;
            Ok(vec![
                KvWrite::Evict { key: expectation_key(&ev.key), written_by: ev.written_by },
                KvWrite::Evict { key: expectation_meta_key(&ev.key), written_by: ev.written_by },
            ])
        }
        k => Err(StorageError::Decode(format!("unknown record kind {k}"))),
    }
}

fn idempotency_row_key(at_ms: u64, index: u64) -> Vec<u8> {
    [IDEMPOTENCY_PREFIX, &at_ms.to_be_bytes(), &index.to_be_bytes()].concat()
}

fn idempotency_row_time(key: &[u8]) -> Result<u64, StorageError> {
    let rest = &key[IDEMPOTENCY_PREFIX.len()..];
    let at: [u8; 8] = rest
        .get(..8)
        .filter(|_| rest.len() == 16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StorageError::Decode("idempotency row key: bad length".into()))?;
    Ok(u64::from_be_bytes(at))
}

fn idempotency_value(user: &str, key: &str, liked: bool, count: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(11 + user.len() + key.len());
    v.push(liked as u8);
    v.extend_from_slice(&count.to_le_bytes());
    v.extend_from_slice(&(user.len() as u16).to_le_bytes());
    v.extend_from_slice(user.as_bytes());
    v.extend_from_slice(key.as_bytes());
    v
}

fn decode_idempotency_value(v: &[u8]) -> Result<(String, String, LikeResult), StorageError> {
    let bad = || StorageError::Decode("idempotency row: malformed".into());
    if v.len() < 11 || v[0] > 1 {
        return Err(bad());
    }
    let like_count = u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
    let ulen = u16::from_le_bytes(v[9..11].try_into().expect("2 bytes")) as usize;
    let rest = &v[11..];
    if rest.len() <= ulen {
        return Err(bad());
    }
    let user = std::str::from_utf8(&rest[..ulen]).map_err(|_| bad())?;
    let key = std::str::from_utf8(&rest[ulen..]).map_err(|_| bad())?;
    Ok((user.to_string(), key.to_string(), LikeResult { liked: v[0] == 1, like_count }))
}

/// Log payload of a like toggle made at `at_ms` (wall clock, ms).
pub fn like_payload(record: &LikeRecord, at_ms: u64) -> Vec<u8> {
    let body = record.encode();
    let mut out = Vec::with_capacity(9 + body.len());
    out.push(KIND_LIKE_AT);
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn evict_payload(ev: &Eviction) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + ev.key.len());
    out.push(KIND_EVICT_EXPECTATION);
    out.extend_from_slice(&ev.written_by.to_le_bytes());
    out.extend_from_slice(ev.key.as_bytes());
    out
}

fn decode_evict(body: &[u8]) -> Result<Eviction, StorageError> {
    if body.len() <= 8 {
        return Err(StorageError::Decode("evict record: truncated".into()));
    }
    let written_by = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let key = String::from_utf8(body[8..].to_vec()).map_err(|_| StorageError::Decode("evict record: key not utf-8".into()))?;
    Ok(Eviction { key, written_by })
}

/// A rendered expectation as written behind to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredExpectation {
    /// ETag of the whole response.
    pub etag: String,
    /// Wall clock of the computation, ms since the Unix epoch.
    pub calculated_at_ms: u64,
    /// gzip of the whole response.
    pub gzip: Vec<u8>,
    /// gzip of presets 1..=3.
    pub presets: [Option<Vec<u8>>; 3],
}

fn expectation_key(key: &str) -> Vec<u8> {
    [EXPECTATION_PREFIX, key.as_bytes()].concat()
}

fn expectation_meta_key(key: &str) -> Vec<u8> {
    [EXPECTATION_META_PREFIX, key.as_bytes()].concat()
}

pub fn expectation_payload(key: &str, e: &StoredExpectation) -> Vec<u8> {
    assert!(key.len() <= u16::MAX as usize && e.etag.len() <= u16::MAX as usize);
    let mut out = Vec::with_capacity(1 + 12 + key.len() + e.etag.len() + e.gzip.len());
    out.push(KIND_EXPECTATION);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(e.etag.len() as u16).to_le_bytes());
    out.extend_from_slice(e.etag.as_bytes());
    out.extend_from_slice(&e.calculated_at_ms.to_le_bytes());
    for blob in std::iter::once(Some(&e.gzip)).chain(e.presets.iter().map(Option::as_ref)) {
        let blob = blob.map_or(&[][..], |b| b.as_slice());
        out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        out.extend_from_slice(blob);
    }
    out
}

/// Body of a [`KIND_EXPECTATION`] payload (without the kind byte).
fn decode_expectation(mut b: &[u8]) -> Result<(String, StoredExpectation), StorageError> {
    let bad = |what: &str| StorageError::Decode(format!("expectation record: {what}"));
    let mut take = |n: usize| -> Result<&[u8], StorageError> {
        if b.len() < n {
            return Err(bad("truncated"));
        }
        let (head, rest) = b.split_at(n);
        b = rest;
        Ok(head)
    };
    let mut string = || -> Result<String, StorageError> {
        let len = u16::from_le_bytes(take(2)?.try_into().expect("2 bytes")) as usize;
        String::from_utf8(take(len)?.to_vec()).map_err(|_| bad("not utf-8"))
    };
    let key = string()?;
    let etag = string()?;
    let calculated_at_ms = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
    let mut blob = || -> Result<Option<Vec<u8>>, StorageError> {
        let len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        (len > 0).then(|| take(len).map(<[u8]>::to_vec)).transpose()
    };
    let gzip = blob()?.ok_or_else(|| bad("empty document"))?;
    let presets = [blob()?, blob()?, blob()?];
    if !b.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    Ok((key, StoredExpectation { etag, calculated_at_ms, gzip, presets }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_into_kv_writes() {
        let rec = LikeRecord { user: "u1".into(), character: "아델".into(), liked: false, count_after: 0, idempotency_key: None };
        let writes = entry_writes(&Entry::new(TERM, 1, like_payload(&rec, 5))).unwrap();
        assert_eq!(writes.len(), 1, "the relation only: no count row, no idempotency row without a key");
        assert!(matches!(&writes[0], KvWrite::Delete { .. }), "an unlike deletes the relation key");
        let e = StoredExpectation {
            etag: "\"abc\"".into(),
            calculated_at_ms: 42,
            gzip: vec![1, 2, 3],
            presets: [Some(vec![4]), None, Some(vec![5, 6])],
        };
        let payload = expectation_payload("아델", &e);
        let (key, back) = decode_expectation(&payload[1..]).unwrap();
        assert_eq!((key.as_str(), &back), ("아델", &e));
        for cut in 1..payload.len() {
            assert!(entry_writes(&Entry::new(TERM, 1, payload[..cut].to_vec())).is_err(), "cut {cut}");
        }
        assert!(entry_writes(&Entry::new(TERM, 1, vec![9, 0])).is_err());
        assert!(entry_writes(&Entry::new(TERM, 1, vec![])).is_err());
    }

    struct TestDir(PathBuf);
    impl TestDir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn recovery_rebuilds_the_book_from_log_and_store() {
        let dir = TestDir(std::env::temp_dir().join(format!("maple-durable-unit-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(dir.path());
        {
            let (s, mut book) = recover_with(dir.path(), 0, LikeLimits::default(), wal_options(4 << 20, WalSync::Fsync)).unwrap();
            for (i, user) in ["a", "b", "c"].iter().enumerate() {
                let t = book.toggle(user, "Hero", None).unwrap();
                let idx = futures::executor::block_on(
                    s.wal.append(vec![Entry::new(TERM, i as u64 + 1, like_payload(&t.record.unwrap(), now_ms()))]).unwrap(),
                )
                .unwrap();
                s.applier.notify_committed(idx);
            }
            // Killed without a checkpoint: the store may be behind the log.
        }
        let (s, book) = recover_with(dir.path(), 0, LikeLimits::default(), wal_options(4 << 20, WalSync::Fsync)).unwrap();
        assert_eq!(book.status("b", "hero").unwrap().like_count, 3);
        assert!(book.status("c", "HERO").unwrap().liked);
        s.final_checkpoint().unwrap();
        drop(s);
        let (s, _) = recover_with(dir.path(), 0, LikeLimits::default(), wal_options(4 << 20, WalSync::Fsync)).unwrap();
        assert_eq!(s.replayed, 0, "nothing to replay after a final checkpoint");
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("timed out waiting for {what}");
    }

    fn test_dir(name: &str) -> TestDir {
        let dir = TestDir(std::env::temp_dir().join(format!("maple-durable-{name}-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(dir.path());
        dir
    }

    fn expectation(at_ms: u64, tag: u8) -> StoredExpectation {
        StoredExpectation { etag: format!("\"{tag}\""), calculated_at_ms: at_ms, gzip: vec![tag; 10], presets: [None, None, None] }
    }

    /// Count bound and age bound of the stored expectations, through the
    /// log: the sweep picks the stale one and the oldest beyond the bound;
    /// a value rewritten after the decision survives its evict record; a
    /// restart replays the evictions to the same state.
    #[test]
    fn stored_expectations_are_evicted_through_the_log() {
        let dir = test_dir("evict");
        let opts = DurableOptions {
            expectations_max: 2,
            expectation_stale: Duration::from_secs(3600),
            maintain_every: Duration::from_millis(10),
            ..DurableOptions::new(wal_options(4 << 20, WalSync::Fsync))
        };
        let now = now_ms();
        {
            let (s, _) = recover(dir.path(), 0, &opts).unwrap();
            let s = Arc::new(s);
            let log = CoreLog::new(s.clone());
            let writes = [("stale", now - 7_200_000, 1), ("oldest", now - 60_000, 2), ("mid", now - 30_000, 3), ("new", now, 4)];
            let mut last = None;
            for (key, at, tag) in writes {
                last = Some(log.append(expectation_payload(key, &expectation(at, tag))).unwrap());
            }
            let idx = futures::executor::block_on(last.unwrap()).unwrap();
            s.applier.notify_committed(idx);
            let batch = s.evictions.recv_timeout(Duration::from_secs(10)).expect("a sweep decides evictions");
            let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(keys, ["stale", "oldest"], "the stale one, then the oldest beyond 2");
            // "oldest" is recomputed before the evictions are appended: it stays.
            let _rewritten = log.append(expectation_payload("oldest", &expectation(now, 9))).unwrap();
            let idx = futures::executor::block_on(append_evictions(&log, &batch).unwrap()).unwrap();
            s.applier.notify_committed(idx);
            wait_until("evictions applied", || s.state_stats().applied_index >= idx);
            assert_eq!(s.expectation("stale"), None);
            assert_eq!(s.expectation("oldest").unwrap().gzip, vec![9; 10], "rewritten after the decision: kept");
            assert!(s.expectation("mid").is_some() && s.expectation("new").is_some());
            // Killed without a checkpoint.
        }
        let (s, _) = recover(dir.path(), 0, &opts).unwrap();
        assert!(s.replayed >= 7, "replayed {}", s.replayed);
        assert_eq!(s.expectation("stale"), None);
        assert_eq!(s.expectation("oldest").unwrap().gzip, vec![9; 10]);
        s.final_checkpoint().unwrap();
        let st = s.applier.store();
        let mut rows = Vec::new();
        st.visit_prefix(b"exp", false, |v| {
            rows.push(String::from_utf8(v.key.to_vec()).unwrap());
            true
        })
        .unwrap();
        assert_eq!(rows.len(), 6, "3 expectations x (body, age row): {rows:?}");
        assert_eq!(st.pending_tombstones(), 0, "the evictions' tombstones are compacted by the checkpoint");
    }

    /// Idempotency rows: written when a keyed like record is applied, kept
    /// until they expire or fall beyond the bound, restored newest first.
    #[test]
    fn idempotency_rows_expire_and_are_bounded() {
        let dir = test_dir("idem");
        let store = StateStore::open(dir.path()).unwrap();
        let day = 86_400_000;
        let now = now_ms();
        let record = |user: &str, key: &str, count: u64| LikeRecord {
            user: user.into(),
            character: "hero".into(),
            liked: true,
            count_after: count,
            idempotency_key: Some(key.into()),
        };
        let toggles =
            [("u1", "k-old", 1, now - 2 * day), ("u2", "k1", 2, now - 3000), ("u3", "k2", 3, now - 2000), ("u4", "k3", 4, now - 1000)];
        for (i, (user, key, count, at)) in toggles.iter().enumerate() {
            let e = Entry::new(TERM, i as u64 + 1, like_payload(&record(user, key, *count), *at));
            store.apply(e.index, &entry_writes(&e).unwrap()).unwrap();
        }
        let mut answers = load_idempotency(&store, now, Duration::from_millis(day), 10).unwrap();
        assert_eq!(answers.get("u1", "k-old", now), None, "expired: not restored");
        assert_eq!(answers.get("u3", "k2", now), Some(LikeResult { liked: true, like_count: 3 }));
        // Bound 2: the expired row and the oldest live one go.
        assert_eq!(sweep_idempotency(&store, now, Duration::from_millis(day), 2).unwrap(), 2);
        let mut left = load_idempotency(&store, now, Duration::from_millis(day), 10).unwrap();
        assert_eq!(left.get("u2", "k1", now), None);
        assert_eq!(left.get("u4", "k3", now), Some(LikeResult { liked: true, like_count: 4 }));
        // The same rows later, once expired, are all forgotten.
        assert_eq!(sweep_idempotency(&store, now + 2 * day, Duration::from_millis(day), 2).unwrap(), 2);
        let mut n = 0;
        store
            .visit_prefix(IDEMPOTENCY_PREFIX, false, |_| {
                n += 1;
                true
            })
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn idempotency_answers_are_bounded_and_expire() {
        let mut a = IdempotencyAnswers::new(2);
        let r = |n| LikeResult { liked: true, like_count: n };
        a.insert("u", "k1", r(1), 100, 0);
        a.insert("u", "k1", r(9), 100, 0); // already remembered: first answer wins
        a.insert("u", "k2", r(2), 100, 0);
        assert_eq!(a.get("u", "k1", 50), Some(r(1)));
        a.insert("v", "k1", r(3), 100, 0); // over the bound: the oldest goes
        assert_eq!((a.get("u", "k1", 50), a.get("u", "k2", 50), a.get("v", "k1", 50)), (None, Some(r(2)), Some(r(3))));
        assert_eq!(a.get("u", "k2", 100), None, "expired at its deadline");
        a.insert("u", "k2", r(4), 300, 200); // re-learned after expiry
        assert_eq!(a.get("u", "k2", 250), Some(r(4)));
    }

    #[test]
    fn evict_and_idempotency_rows_decode_or_fail_typed() {
        let ev = Eviction { key: "아델".into(), written_by: 42 };
        let p = evict_payload(&ev);
        assert_eq!(decode_evict(&p[1..]).unwrap(), ev);
        for cut in 1..10 {
            assert!(entry_writes(&Entry::new(TERM, 1, p[..cut].to_vec())).is_err(), "cut {cut}");
        }
        let v = idempotency_value("user", "key", true, 7);
        assert_eq!(decode_idempotency_value(&v).unwrap(), ("user".into(), "key".into(), LikeResult { liked: true, like_count: 7 }));
        for cut in 0..v.len() {
            let _ = decode_idempotency_value(&v[..cut]); // never panics
        }
        assert!(idempotency_row_time(b"idem/short").is_err());
    }
}
