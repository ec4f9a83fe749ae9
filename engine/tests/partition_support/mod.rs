//! Shared helpers of the partition tests: a model of the state store's
//! write rule, the fixture reader, format-1 encoders, record generators
//! and a fingerprint of every query.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use engine::partition::{
    ExpectationEvicted, ExpectationWritten, IdempotencyExpired, IdempotencyReserved, LikeToggled, Limits, Op, Partition, Record, Row,
    RESTORE_PREFIXES,
};
use proptest::prelude::*;
use storage::KvWrite;

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// `index: u64 LE | len: u32 LE | payload`, repeated.
pub fn read_payloads(name: &str) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(data_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let mut out = Vec::new();
    let mut b = &bytes[..];
    while !b.is_empty() {
        let index = u64::from_le_bytes(b[..8].try_into().unwrap());
        let len = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
        out.push((index, b[12..12 + len].to_vec()));
        b = &b[12 + len..];
    }
    out
}

pub fn write_payloads(entries: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, p) in entries {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

// ---- format-1 encoders, as ops/src/node/durable.rs wrote them ----------

/// A like as format 1 carried it (`engine/src/likes/record.rs` of those builds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Like {
    pub user: String,
    pub character: String,
    pub liked: bool,
    pub count_after: u64,
    pub idempotency_key: Option<String>,
}

impl V1Like {
    /// `version 1 | liked | count_after u64 | user | character | key`, strings as `len u16 | utf-8`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![1u8, self.liked as u8];
        out.extend_from_slice(&self.count_after.to_le_bytes());
        for s in [&self.user, &self.character, self.idempotency_key.as_ref().unwrap_or(&String::new())] {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out
    }
}

pub fn v1_like_at(record: &V1Like, at_ms: u64) -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.extend_from_slice(&record.encode());
    out
}

pub fn v1_like(record: &V1Like) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&record.encode());
    out
}

pub fn v1_expectation(key: &str, etag: &str, calculated_at_ms: u64, gzip: &[u8], presets: [&[u8]; 3]) -> Vec<u8> {
    let mut out = vec![2u8];
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(etag.len() as u16).to_le_bytes());
    out.extend_from_slice(etag.as_bytes());
    out.extend_from_slice(&calculated_at_ms.to_le_bytes());
    for blob in std::iter::once(gzip).chain(presets) {
        out.extend_from_slice(&(blob.len() as u32).to_le_bytes());
        out.extend_from_slice(blob);
    }
    out
}

pub fn v1_evict(key: &str, written_by: u64) -> Vec<u8> {
    let mut out = vec![4u8];
    out.extend_from_slice(&written_by.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

// ---- a model of the state store's write rule ------------------------

/// Key → (index that wrote it, value; `None` = tombstone), with the rule of
/// `storage`'s key-value rule: a key written by the same or a later entry
/// is left alone; an eviction only removes a live value written by
/// `written_by` or earlier.
/// One version of a key: the index that wrote it and its value (`None` = tombstone).
pub type Version = (u64, Option<Vec<u8>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelStore {
    pub rows: BTreeMap<Vec<u8>, Version>,
    /// Every version each key ever had (for torn-store tests).
    pub history: BTreeMap<Vec<u8>, Vec<Version>>,
}

impl ModelStore {
    pub fn apply(&mut self, index: u64, writes: &[KvWrite]) {
        for w in writes {
            let (key, value, evicts) = match w {
                KvWrite::Put { key, value } => (key, Some(value.clone()), None),
                KvWrite::Delete { key } => (key, None, None),
                KvWrite::Evict { key, written_by } => (key, None, Some(*written_by)),
            };
            let old = self.rows.get(key);
            let skip = match (evicts, old) {
                _ if old.is_some_and(|(i, _)| *i >= index) => true,
                (Some(written_by), Some((i, v))) => v.is_none() || *i > written_by,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !skip {
                self.rows.insert(key.clone(), (index, value.clone()));
                self.history.entry(key.clone()).or_default().push((index, value));
            }
        }
    }

    /// Live rows a restore reads (its prefixes only).
    pub fn restore_rows(&self) -> Vec<(&[u8], u64, &[u8])> {
        self.rows
            .iter()
            .filter(|(k, _)| RESTORE_PREFIXES.iter().any(|p| k.starts_with(p)))
            .filter_map(|(k, (i, v))| v.as_ref().map(|v| (k.as_slice(), *i, v.as_slice())))
            .collect()
    }

    pub fn live(&self) -> BTreeMap<Vec<u8>, (u64, Vec<u8>)> {
        self.rows.iter().filter_map(|(k, (i, v))| v.as_ref().map(|v| (k.clone(), (*i, v.clone())))).collect()
    }
}

/// Apply every record to a fresh machine and a model store.
pub fn run(limits: &Limits, records: &[(u64, Record)]) -> (Partition, ModelStore) {
    let mut p = Partition::new(limits.clone());
    let mut store = ModelStore::default();
    for (i, r) in records {
        let applied = p.apply(*i, r);
        store.apply(*i, &applied.writes);
    }
    (p, store)
}

pub fn restore(limits: &Limits, applied: u64, store: &ModelStore) -> Partition {
    Partition::restore(limits.clone(), applied, store.restore_rows()).expect("restore from a model store")
}

pub fn restore_rows(limits: &Limits, applied: u64, rows: &[Row]) -> Partition {
    Partition::restore(limits.clone(), applied, rows.iter().map(|r| (r.key.as_slice(), r.index, r.value.as_slice()))).unwrap()
}

// ---- the query fingerprint ------------------------------------------------

pub const USERS: [&str; 4] = ["u0", "u1", "김철수", "u3"];
pub const CHARACTERS: [&str; 4] = ["hero", "아델", "c2", "maplehero"];
pub const KEYS: [&str; 3] = ["k0", "k1", "kéy-✓"];

/// Every query over the test domain, as text (compare with `assert_eq!`).
pub fn fingerprint(p: &Partition) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    writeln!(
        s,
        "relations {} characters {} keys {} expectations {}",
        p.relation_count(),
        p.liked_characters(),
        p.idempotency_keys(),
        p.expectation_count()
    )
    .unwrap();
    for c in CHARACTERS {
        let mut likers: Vec<&str> = p.likers(c).collect();
        likers.sort();
        writeln!(s, "{c}: count {} likers {likers:?} expectation {:?}", p.like_count(c), p.expectation(c)).unwrap();
        for u in USERS {
            writeln!(s, "  {u}: {:?}", p.like_status(u, c)).unwrap();
        }
    }
    for u in USERS {
        for k in KEYS {
            if let Some(b) = p.idempotency_binding(u, k) {
                writeln!(s, "key {u}/{k}: {b:?}").unwrap();
            }
        }
    }
    for (now, stale, max) in [(0, 0, 0), (50, 30, 2), (200, 10, 10), (60, 1000, 1)] {
        writeln!(s, "evict {now} {stale} {max}: {:?}", p.eviction_candidates(now, stale, max, 10)).unwrap();
    }
    for (now, ttl, limit) in [(100, 50, 3), (1000, 10, 1), (30, 0, 100)] {
        writeln!(s, "expire {now} {ttl} {limit}: {:?}", p.idempotency_expiry(now, ttl, limit)).unwrap();
    }
    s
}

// ---- generators -----------------------------------------------------------

fn user() -> impl Strategy<Value = String> {
    prop::sample::select(USERS.to_vec()).prop_map(str::to_string)
}

fn character() -> impl Strategy<Value = String> {
    prop::sample::select(CHARACTERS.to_vec()).prop_map(str::to_string)
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.to_vec()).prop_map(str::to_string)
}

/// Any valid record over the test domain (not necessarily one a leader
/// would propose: counts and bindings may disagree with the state).
pub fn any_record() -> impl Strategy<Value = Record> {
    prop_oneof![
        1 => Just(Record::Noop),
        6 => (user(), character(), any::<bool>(), 0u64..6, 0u64..100, prop::option::of(key())).prop_map(|(user, character, liked, count, at_ms, key)| {
            Record::LikeToggled(LikeToggled { user, character, liked, count_after: count + liked as u64, at_ms, idempotency_key: key })
        }),
        3 => (user(), key(), character(), 0u64..100).prop_map(|(user, key, character, at_ms)| {
            Record::IdempotencyReserved(IdempotencyReserved { user, key, character, op: Op::LikeToggle, at_ms })
        }),
        2 => (character(), 0u64..100, 1usize..8).prop_map(|(key, at, n)| {
            Record::ExpectationWritten(ExpectationWritten { key, etag: format!("\"{at}\""), calculated_at_ms: at, gzip: vec![n as u8; n] })
        }),
        2 => (character(), 0u64..40).prop_map(|(key, written_by)| Record::ExpectationEvicted(ExpectationEvicted { key, written_by })),
        1 => (0u64..120).prop_map(|before_ms| Record::IdempotencyExpired(IdempotencyExpired { before_ms })),
    ]
}

/// Records at indices 1..=n.
pub fn indexed(records: Vec<Record>) -> Vec<(u64, Record)> {
    records.into_iter().enumerate().map(|(i, r)| (i as u64 + 1, r)).collect()
}
