//! Per-core durable storage: one write-ahead log + one sled state store per
//! core under `<data-dir>/core-<n>/{wal,state}` (single node: partition =
//! core), the log record kinds the node writes, and recovery at start.
//!
//! Log payload = `kind: u8 | body`. Kinds:
//! - [`KIND_LIKE`]: an `engine::likes::LikeRecord` (outcome, not delta);
//! - [`KIND_EXPECTATION`]: a rendered expectation (write-behind cache):
//!   `key_len: u16 | key | etag_len: u16 | etag | calculated_at_ms: u64`
//!   then 4 × `len: u32 | gzip` (the whole response, presets 1..=3; length
//!   0 = no such preset).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{FutureExt, LocalBoxFuture, Shared};
use engine::likes::{LikeBook, LikeLimits, LikeRecord, RELATION_PREFIX};
use storage::{Applier, ApplierOptions, Entry, KvWrite, StateStore, StateStats, StorageError, Wal, WalOptions, WalStats};

pub const KIND_LIKE: u8 = 1;
pub const KIND_EXPECTATION: u8 = 2;
/// Every entry of a single node is written in term 1 (no elections).
pub const TERM: u64 = 1;
/// State-store key prefix of stored expectations (`exp/{key}`).
pub const EXPECTATION_PREFIX: &[u8] = b"exp/";
/// Largest stored expectation (gzip bytes); bigger ones are not written behind.
pub const MAX_EXPECTATION_BYTES: usize = 1 << 20;
/// Largest log entry the node writes (an expectation record plus headers);
/// a segment must hold one, so segments are at least twice this.
pub const MAX_ENTRY_BYTES: usize = 2 << 20;

/// Log options of the node: `segment_bytes` from the config (>= 4 MiB).
pub fn wal_options(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes, max_entry_bytes: MAX_ENTRY_BYTES, ..WalOptions::default() }
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

    /// Apply everything durable, checkpoint sled, purge covered log
    /// segments. Blocking; called once at shutdown on the main thread.
    pub fn final_checkpoint(&self) -> Result<u64, StorageError> {
        self.applier.notify_committed(self.wal.durable_index());
        futures::executor::block_on(self.applier.checkpoint()?)
    }
}

type Durable = Shared<LocalBoxFuture<'static, Result<u64, String>>>;

/// The core-local appender of a core's log: assigns dense indices in append
/// order and remembers the newest append. Appends happen only on the owning
/// core's thread, so submit order = index order.
pub struct CoreLog {
    pub storage: Arc<CoreStorage>,
    next_index: Cell<u64>,
    /// Resolves when the newest append (and so every earlier one) is durable.
    last_appended: RefCell<Option<Durable>>,
}

impl CoreLog {
    pub fn new(storage: Arc<CoreStorage>) -> CoreLog {
        let next = storage.wal.last_index() + 1;
        CoreLog { storage, next_index: Cell::new(next), last_appended: RefCell::new(None) }
    }

    /// Submit one entry; `Backpressure` (or any error) means nothing was
    /// written. Synchronous: no await between deciding and submitting.
    pub fn append(&self, payload: Vec<u8>) -> Result<Durable, StorageError> {
        let index = self.next_index.get();
        let fut = self.storage.wal.append(vec![Entry::new(TERM, index, payload)])?;
        self.next_index.set(index + 1);
        let durable = fut.map(|r| r.map_err(|e: StorageError| e.to_string())).boxed_local().shared();
        *self.last_appended.borrow_mut() = Some(durable.clone());
        Ok(durable)
    }

    /// The newest append, if any (await it to know all appends so far are durable).
    pub fn newest(&self) -> Option<Durable> {
        self.last_appended.borrow().clone()
    }
}

pub fn core_dir(data_dir: &Path, core: usize) -> PathBuf {
    data_dir.join(format!("core-{core}"))
}

/// Open the core's log and store, replay the log after the checkpoint into
/// sled, rebuild the like book from sled, start the applier.
pub fn recover_with(
    data_dir: &Path,
    core: usize,
    limits: LikeLimits,
    wal_options: WalOptions,
) -> Result<(CoreStorage, LikeBook), StorageError> {
    let started = Instant::now();
    let dir = core_dir(data_dir, core);
    let (wal, recovery) = Wal::open(&dir.join("wal"), wal_options)?;
    let store = Arc::new(StateStore::open(&dir.join("state"))?);
    let replayed = store.replay(&wal, wal.last_index(), &mut entry_writes)?;
    let mut book = LikeBook::new(limits.clone());
    let pairs = store.scan_prefix(RELATION_PREFIX, limits.max_relations.saturating_add(1))?;
    if pairs.len() > limits.max_relations {
        return Err(StorageError::Corrupt {
            what: format!("core {core} like relations"),
            detail: format!("more than the limit of {}", limits.max_relations),
        });
    }
    book.load_kv(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        .map_err(|e| StorageError::Decode(e.to_string()))?;
    restore_idempotency(&wal, &mut book)?;
    let applier = Applier::spawn(store, wal.clone(), entry_writes, ApplierOptions::default(), wal.last_index())?;
    let storage = CoreStorage {
        core,
        wal,
        applier,
        replayed,
        dropped_tail_bytes: recovery.dropped_tail_bytes,
        recovery: started.elapsed(),
    };
    Ok((storage, book))
}

/// Re-apply the like records still in the log to the book loaded from the
/// store, so idempotency keys of recent toggles answer retries after a
/// restart too. Safe: the store already reflects the whole log, every record
/// sets an absolute outcome, so applying any suffix of the log in order
/// leaves every relation as it is.
fn restore_idempotency(wal: &Wal, book: &mut LikeBook) -> Result<(), StorageError> {
    let (first, last) = (wal.first_index(), wal.last_index());
    let mut next = first.max(1);
    while next <= last {
        let end = last.min(next + 1023);
        for entry in wal.read(next..=end)? {
            if entry.payload.first() == Some(&KIND_LIKE) {
                let record = LikeRecord::decode(&entry.payload[1..]).map_err(|e| StorageError::Decode(e.to_string()))?;
                book.apply(&record);
            }
        }
        next = end + 1;
    }
    Ok(())
}

/// The state-store image of one log entry (used by replay and the applier;
/// depends on the entry alone, so replaying it again is harmless).
fn entry_writes(entry: &Entry) -> Result<Vec<KvWrite>, StorageError> {
    let (&kind, body) = entry.payload.split_first().ok_or_else(|| StorageError::Decode("empty payload".into()))?;
    match kind {
        KIND_LIKE => {
            let record = LikeRecord::decode(body).map_err(|e| StorageError::Decode(e.to_string()))?;
            Ok(record
                .kv_changes()
                .into_iter()
                .map(|(key, value)| match value {
                    Some(value) => KvWrite::Put { key, value },
                    None => KvWrite::Delete { key },
                })
                .collect())
        }
        KIND_EXPECTATION => {
            let (key, _) = decode_expectation(body)?;
            Ok(vec![KvWrite::Put { key: expectation_key(&key), value: body.to_vec() }])
        }
        k => Err(StorageError::Decode(format!("unknown record kind {k}"))),
    }
}

pub fn like_payload(record: &LikeRecord) -> Vec<u8> {
    let body = record.encode();
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(KIND_LIKE);
    out.extend_from_slice(&body);
    out
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
        let writes = entry_writes(&Entry::new(TERM, 1, like_payload(&rec))).unwrap();
        assert_eq!(writes.len(), 2);
        assert!(matches!(&writes[1], KvWrite::Delete { .. }), "an unlike deletes the relation key");
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
            let (s, mut book) = recover_with(dir.path(), 0, LikeLimits::default(), wal_options(4 << 20)).unwrap();
            for (i, user) in ["a", "b", "c"].iter().enumerate() {
                let t = book.toggle(user, "Hero", None).unwrap();
                let idx = futures::executor::block_on(
                    s.wal.append(vec![Entry::new(TERM, i as u64 + 1, like_payload(&t.record.unwrap()))]).unwrap(),
                )
                .unwrap();
                s.applier.notify_committed(idx);
            }
            // Killed without a checkpoint: the store may be behind the log.
        }
        let (s, book) = recover_with(dir.path(), 0, LikeLimits::default(), wal_options(4 << 20)).unwrap();
        assert_eq!(book.status("b", "hero").unwrap().like_count, 3);
        assert!(book.status("c", "HERO").unwrap().liked);
        s.final_checkpoint().unwrap();
        drop(s);
        let (s, _) = recover_with(dir.path(), 0, LikeLimits::default(), wal_options(4 << 20)).unwrap();
        assert_eq!(s.replayed, 0, "nothing to replay after a final checkpoint");
    }
}
