//! [`Partition`]: the applied state of one partition, its queries, its
//! store image, and the leader's speculative overlay.

use std::collections::{BTreeSet, HashMap, HashSet};

use storage::KvWrite;

use super::ids::{IdempotencyKey, LikeResult, Op, UserId};
use super::record::{ExpectationEvicted, ExpectationWritten, IdempotencyExpired, IdempotencyReserved, LikeToggled, Record};
use super::rows::{self, KeyRow, MetaRow, Row};
use super::PartitionError;
use crate::name::CharacterName;

/// Bounds the leader enforces when it proposes. `apply` never looks at
/// them (every replica must reach the same state from the same records,
/// whatever its configuration), so they bound what gets *proposed*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Like relations; a like beyond is refused ([`PartitionError::RelationsFull`]).
    pub max_relations: usize,
    /// Idempotency bindings; a new key beyond is refused
    /// ([`PartitionError::IdempotencyFull`]). [`Partition::idempotency_expiry`]
    /// keeps the table under 7/8 of this by shortening the TTL under pressure.
    pub max_idempotency_keys: usize,
    /// Speculative entries (proposed, not yet applied) of the overlay.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_relations: 10_000_000, max_idempotency_keys: 100_000, max_in_flight: 65_536 }
    }
}

/// What `(user, key)` is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    pub character: String,
    pub op: Op,
    /// When the binding was made (leader clock, ms), for expiry.
    pub at_ms: u64,
    /// The first answer, once the toggle is applied (on the character's partition).
    pub answer: Option<LikeResult>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyEntry {
    binding: KeyBinding,
    /// Entry that last wrote the row (the store's index for `idk/…`).
    index: u64,
}

/// Metadata of a stored expectation (the blob lives in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectationMeta {
    /// Index of the entry that wrote it.
    pub written_by: u64,
    pub calculated_at_ms: u64,
    /// gzip bytes (0 when restored from a format-1 store).
    pub size: u64,
}

/// A stored expectation the leader wants dropped: append
/// `Record::ExpectationEvicted { key, written_by }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub key: String,
    pub written_by: u64,
}

/// The result of applying one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The key writes for the state store, to apply with the same index.
    pub writes: Vec<KvWrite>,
    pub outcome: Outcome,
}

/// What an applied entry did (e.g. a Raft client response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Noop, expectation records.
    Done,
    /// A like toggle: the state after it (the count from the relations).
    Like(LikeResult),
    /// A reservation: the binding now in effect for `(user, key)`. If it
    /// differs from the record's, the record lost to an earlier binding.
    Reserved(KeyBinding),
    /// An expiry: how many bindings it forgot.
    Expired { forgotten: usize },
}

impl Outcome {
    /// Bytes of the outcome, as a Raft write's answer carries it from the
    /// state machine back to the proposer (same process; not persisted):
    /// `0` Done | `1 liked:u8 count:u64` | `2 op:u8 at_ms:u64 answer:(0 | 1 liked:u8 count:u64) character` |
    /// `3 forgotten:u64`, little endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        match self {
            Outcome::Done => out.push(0),
            Outcome::Like(r) => {
                out.push(1);
                out.push(r.liked as u8);
                out.extend_from_slice(&r.like_count.to_le_bytes());
            }
            Outcome::Reserved(b) => {
                out.push(2);
                out.push(b.op.code());
                out.extend_from_slice(&b.at_ms.to_le_bytes());
                match b.answer {
                    None => out.push(0),
                    Some(a) => {
                        out.push(1);
                        out.push(a.liked as u8);
                        out.extend_from_slice(&a.like_count.to_le_bytes());
                    }
                }
                out.extend_from_slice(b.character.as_bytes());
            }
            Outcome::Expired { forgotten } => {
                out.push(3);
                out.extend_from_slice(&(*forgotten as u64).to_le_bytes());
            }
        }
        out
    }

    /// The outcome [`Outcome::encode`] wrote; a typed error for anything else.
    pub fn decode(b: &[u8]) -> Result<Outcome, PartitionError> {
        let bad = || PartitionError::BadRecord(format!("outcome of {} bytes is malformed", b.len()));
        let u64_at = |i: usize| -> Result<u64, PartitionError> {
            b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes"))).ok_or_else(bad)
        };
        let like_at = |i: usize| -> Result<LikeResult, PartitionError> {
            let liked = match b.get(i) {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(bad()),
            };
            Ok(LikeResult { liked, like_count: u64_at(i + 1)? })
        };
        match b.first() {
            Some(0) if b.len() == 1 => Ok(Outcome::Done),
            Some(1) if b.len() == 10 => Ok(Outcome::Like(like_at(1)?)),
            Some(2) => {
                let op = Op::from_code(*b.get(1).ok_or_else(bad)?)?;
                let at_ms = u64_at(2)?;
                let (answer, rest) = match b.get(10) {
                    Some(0) => (None, 11),
                    Some(1) => (Some(like_at(11)?), 20),
                    _ => return Err(bad()),
                };
                let character = std::str::from_utf8(b.get(rest..).ok_or_else(bad)?).map_err(|_| bad())?.to_string();
                Ok(Outcome::Reserved(KeyBinding { character, op, at_ms, answer }))
            }
            Some(3) if b.len() == 9 => Ok(Outcome::Expired { forgotten: u64_at(1)? as usize }),
            _ => Err(bad()),
        }
    }
}

/// A leader's decision on a like toggle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    /// Append `record` (a [`Record::LikeToggled`]); once committed, answer `answer`.
    Append { record: Record, answer: LikeResult },
    /// A retry of a keyed toggle already made: answer its first answer,
    /// append nothing — once proposal `after` (a [`Partition::speculate`]
    /// number) has settled applied, if set (the first toggle is in flight).
    Answered { answer: LikeResult, after: Option<u64> },
}

/// A leader's decision on an idempotency reservation (user's partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Append this [`Record::IdempotencyReserved`], then go on once committed.
    Append(Record),
    /// Already bound to the same character and operation: go on (once
    /// proposal `after` has settled applied, if set).
    Held { after: Option<u64> },
}

/// A speculative read: the value, and the pending proposal it depends on
/// (answer only once that proposal has settled applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speculative<T> {
    pub value: T,
    pub after: Option<u64>,
}

/// Proposed-but-not-settled outcomes, each with the proposal sequence
/// number ([`Partition::speculate`]) that made it. An entry lives until its
/// proposal settles ([`Partition::settle`]: its write resolved, applied or
/// failed) — not until its record is applied, because the log index is
/// assigned by the Raft core after the proposal, so the machine cannot tell
/// which applied entry was which proposal. Between the apply and the settle
/// the overlay and the applied state agree (every change the applied state
/// got in that window came from a proposal of this leader, each newer one
/// overwriting the entries of the older ones).
#[derive(Debug, Default)]
struct Overlay {
    /// `character \0 user` → (liked, seq).
    relations: HashMap<String, (bool, u64)>,
    /// character → (count after, seq).
    counts: HashMap<String, (u64, u64)>,
    /// `user \0 key` → (binding, seq).
    keys: HashMap<String, (KeyBinding, u64)>,
    /// Sequence number of the next proposal (never reused, also across
    /// [`Partition::drop_speculation`], so a late settle is harmless).
    next_seq: u64,
    /// Proposals fed and not yet settled: seq → what they changed.
    pending: std::collections::BTreeMap<u64, Pending>,
    /// Sum of the pending proposals' relation changes (+1, 0, -1) and new
    /// bindings (+1, 0) as seen when each was proposed. Speculative counts
    /// = applied + these: exact while no pending proposal is applied; a
    /// proposal applied but not yet settled is counted twice (a bound check
    /// only: it can refuse early, never admit past a bound).
    relation_delta: i64,
    key_delta: i64,
}

/// What one pending proposal put into the overlay.
#[derive(Debug, Default)]
struct Pending {
    relations: i64,
    keys: i64,
    pair: Option<String>,
    character: Option<String>,
    key: Option<String>,
}

impl Overlay {
    fn settle(&mut self, seq: u64) {
        let Some(p) = self.pending.remove(&seq) else { return };
        self.relation_delta -= p.relations;
        self.key_delta -= p.keys;
        if let Some(pair) = p.pair {
            if self.relations.get(&pair).is_some_and(|(_, s)| *s == seq) {
                self.relations.remove(&pair);
            }
        }
        if let Some(c) = p.character {
            if self.counts.get(&c).is_some_and(|(_, s)| *s == seq) {
                self.counts.remove(&c);
            }
        }
        if let Some(k) = p.key {
            if self.keys.get(&k).is_some_and(|(_, s)| *s == seq) {
                self.keys.remove(&k);
            }
        }
    }
}

/// The state machine of one partition. Deterministic: the same records at
/// the same indices give the same state and the same writes on every
/// replica; no clock, no I/O (time comes in the records).
#[derive(Debug, Default)]
pub struct Partition {
    limits: Limits,
    applied_index: u64,
    /// character → users who like it; the count is the set's size.
    likers: HashMap<String, HashSet<String>>,
    relations: usize,
    /// `user \0 key` → binding.
    keys: HashMap<String, KeyEntry>,
    /// (at_ms, index, id): expiry order.
    key_order: BTreeSet<(u64, u64, String)>,
    expectations: HashMap<String, ExpectationMeta>,
    /// (calculated_at_ms, written_by, key): eviction order.
    expectation_order: BTreeSet<(u64, u64, String)>,
    overlay: Overlay,
}

fn key_id(user: &str, key: &str) -> String {
    [user, "\0", key].concat()
}

fn pair_id(character: &str, user: &str) -> String {
    [character, "\0", user].concat()
}

impl Partition {
    pub fn new(limits: Limits) -> Partition {
        Partition { limits, ..Partition::default() }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Index of the newest entry applied (0: none).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    // ---- apply -------------------------------------------------------

    /// Apply entry `index`. Entries come in index order; applying an entry
    /// again, or any suffix of the log again, leaves the same state (the
    /// records carry outcomes, and a row or binding written by this entry
    /// or a later one is left alone — the store's own rule).
    pub fn apply(&mut self, index: u64, record: &Record) -> Applied {
        let applied = match record {
            Record::Noop => Applied { writes: Vec::new(), outcome: Outcome::Done },
            Record::LikeToggled(t) => self.apply_like(index, t),
            Record::IdempotencyReserved(r) => self.apply_reserved(index, r),
            Record::ExpectationWritten(e) => self.apply_expectation(index, e),
            Record::ExpectationEvicted(e) => self.apply_eviction(e),
            Record::IdempotencyExpired(e) => self.apply_expiry(index, e),
        };
        self.applied_index = self.applied_index.max(index);
        applied
    }

    fn apply_like(&mut self, index: u64, t: &LikeToggled) -> Applied {
        let count = {
            let set = match self.likers.get_mut(&t.character) {
                Some(set) => set,
                None => self.likers.entry(t.character.clone()).or_default(),
            };
            if t.liked {
                if !set.contains(&t.user) {
                    set.insert(t.user.clone());
                    self.relations += 1;
                }
            } else if set.remove(&t.user) {
                self.relations -= 1;
            }
            set.len() as u64
        };
        if count == 0 {
            self.likers.remove(&t.character);
        }
        let key = rows::relation_key(&t.character, &t.user);
        let mut writes = vec![if t.liked { KvWrite::Put { key, value: Vec::new() } } else { KvWrite::Delete { key } }];
        if let Some(k) = &t.idempotency_key {
            let answer = LikeResult { liked: t.liked, like_count: t.count_after };
            writes.extend(self.record_answer(index, t, k, answer));
        }
        Applied { writes, outcome: Outcome::Like(LikeResult { liked: t.liked, like_count: count }) }
    }

    /// Store the first answer of `(user, key)` with the toggle: the
    /// binding of this request, answered.
    fn record_answer(&mut self, index: u64, t: &LikeToggled, key: &str, answer: LikeResult) -> Option<KvWrite> {
        let binding = KeyBinding { character: t.character.clone(), op: Op::LikeToggle, at_ms: t.at_ms, answer: Some(answer) };
        self.bind(index, &t.user, key, binding)
    }

    /// Write the binding of `(user, key)`: absolute, like every record (the
    /// row and the binding become the record's), so applying a suffix of
    /// the log again — onto any state a restore can see — ends the same.
    /// First-binding-wins is the leader's rule: it proposes a binding only
    /// when the view has none, or the same request's (a toggle answering
    /// its own reservation). A binding written by this entry or a later one
    /// stays (a replay; the store's rule). The write depends on the record
    /// alone.
    fn bind(&mut self, index: u64, user: &str, key: &str, binding: KeyBinding) -> Option<KvWrite> {
        let row = KeyRow {
            character: binding.character.clone(),
            op: binding.op,
            at_ms: binding.at_ms,
            answer: binding.answer.map(|a| (a.liked, a.like_count)),
        };
        let value = match rows::encode_key_row(&row) {
            Ok(v) => v,
            Err(e) => {
                // Unreachable for validated records (sizes are bounded);
                // every replica takes the same branch, so they stay equal.
                tracing::error!(index, error = %e, "idempotency row not encoded; binding not kept");
                return None;
            }
        };
        let id = key_id(user, key);
        match self.keys.get(&id) {
            Some(old) if old.index >= index => {}
            old => {
                if let Some(old) = old {
                    if old.binding.character != binding.character || old.binding.op != binding.op || old.binding.answer.is_some() {
                        // Only a leader that broke the rule above gets here.
                        tracing::warn!(
                            index,
                            user,
                            character = %binding.character,
                            bound_to = %old.binding.character,
                            answered = old.binding.answer.is_some(),
                            "idempotency key rebound by a later entry"
                        );
                    }
                    self.key_order.remove(&(old.binding.at_ms, old.index, id.clone()));
                }
                self.key_order.insert((binding.at_ms, index, id.clone()));
                self.keys.insert(id, KeyEntry { binding, index });
            }
        }
        Some(KvWrite::Put { key: rows::key_row_key(user, key), value })
    }

    fn apply_reserved(&mut self, index: u64, r: &IdempotencyReserved) -> Applied {
        let binding = KeyBinding { character: r.character.clone(), op: r.op, at_ms: r.at_ms, answer: None };
        let writes: Vec<KvWrite> = self.bind(index, &r.user, &r.key, binding).into_iter().collect();
        let id = key_id(&r.user, &r.key);
        let outcome = match self.keys.get(&id) {
            Some(e) => Outcome::Reserved(e.binding.clone()),
            None => Outcome::Done,
        };
        Applied { writes, outcome }
    }

    fn apply_expiry(&mut self, index: u64, e: &IdempotencyExpired) -> Applied {
        // Only bindings written before this entry: after a restore from a
        // store that ran ahead of its checkpoint, a binding of a later
        // entry may already be here, and it was not expired by this one.
        let gone: Vec<(u64, u64, String)> =
            self.key_order.iter().take_while(|(at, _, _)| *at < e.before_ms).filter(|(_, i, _)| *i < index).cloned().collect();
        let mut writes = Vec::with_capacity(gone.len());
        for item in gone {
            let (_, written_by, id) = &item;
            self.keys.remove(id);
            let (user, key) = id.split_once('\0').unwrap_or((id, ""));
            writes.push(KvWrite::Evict { key: rows::key_row_key(user, key), written_by: *written_by });
            self.key_order.remove(&item);
        }
        let forgotten = writes.len();
        Applied { writes, outcome: Outcome::Expired { forgotten } }
    }

    fn apply_expectation(&mut self, index: u64, e: &ExpectationWritten) -> Applied {
        // The writes depend on the record alone: the store's rule decides,
        // even where this machine already holds a later write.
        let meta = MetaRow { calculated_at_ms: e.calculated_at_ms, size: e.gzip.len() as u64 };
        let encoded = rows::encode_expectation_row(e).and_then(|body| Ok((body, rows::encode_meta_row(&meta)?)));
        let (body, meta_value) = match encoded {
            Ok(v) => v,
            Err(err) => {
                tracing::error!(index, key = %e.key, error = %err, "expectation row not encoded; not stored");
                return Applied { writes: Vec::new(), outcome: Outcome::Done };
            }
        };
        let writes = vec![
            KvWrite::Put { key: rows::expectation_key(&e.key), value: body },
            KvWrite::Put { key: rows::expectation_meta_key(&e.key), value: meta_value },
        ];
        let newer = self.expectations.get(&e.key).is_some_and(|m| m.written_by >= index);
        if !newer {
            self.set_expectation(
                e.key.clone(),
                ExpectationMeta { written_by: index, calculated_at_ms: e.calculated_at_ms, size: e.gzip.len() as u64 },
            );
        }
        Applied { writes, outcome: Outcome::Done }
    }

    fn set_expectation(&mut self, key: String, meta: ExpectationMeta) {
        if let Some(old) = self.expectations.get(&key) {
            self.expectation_order.remove(&(old.calculated_at_ms, old.written_by, key.clone()));
        }
        self.expectation_order.insert((meta.calculated_at_ms, meta.written_by, key.clone()));
        self.expectations.insert(key, meta);
    }

    fn apply_eviction(&mut self, e: &ExpectationEvicted) -> Applied {
        if let Some(m) = self.expectations.get(&e.key).copied() {
            if m.written_by <= e.written_by {
                self.expectations.remove(&e.key);
                self.expectation_order.remove(&(m.calculated_at_ms, m.written_by, e.key.clone()));
            }
        }
        let writes = vec![
            KvWrite::Evict { key: rows::expectation_key(&e.key), written_by: e.written_by },
            KvWrite::Evict { key: rows::expectation_meta_key(&e.key), written_by: e.written_by },
        ];
        Applied { writes, outcome: Outcome::Done }
    }

    // ---- queries (applied state) -----------------------------------

    /// `{liked, likeCount}` of `user` on `character` (normalised).
    pub fn like_status(&self, user: &str, character: &str) -> LikeResult {
        let set = self.likers.get(character);
        LikeResult { liked: set.is_some_and(|s| s.contains(user)), like_count: set.map_or(0, |s| s.len() as u64) }
    }

    pub fn like_count(&self, character: &str) -> u64 {
        self.likers.get(character).map_or(0, |s| s.len() as u64)
    }

    /// Like relations held (all characters).
    pub fn relation_count(&self) -> usize {
        self.relations
    }

    /// Characters with at least one like.
    pub fn liked_characters(&self) -> usize {
        self.likers.len()
    }

    /// Users who like `character` (any order).
    pub fn likers(&self, character: &str) -> impl Iterator<Item = &str> + '_ {
        self.likers.get(character).into_iter().flatten().map(String::as_str)
    }

    /// The binding of `(user, key)`: its character, operation, time and
    /// (on the character's partition, once applied) its first answer.
    pub fn idempotency_binding(&self, user: &str, key: &str) -> Option<&KeyBinding> {
        self.keys.get(&key_id(user, key)).map(|e| &e.binding)
    }

    /// Idempotency bindings held.
    pub fn idempotency_keys(&self) -> usize {
        self.keys.len()
    }

    /// True when the table is above 7/8 of `max_idempotency_keys`: run
    /// [`Partition::idempotency_expiry`] now rather than at the next period.
    pub fn idempotency_pressure(&self) -> bool {
        self.keys.len() > high_water(self.limits.max_idempotency_keys)
    }

    pub fn expectation(&self, key: &str) -> Option<ExpectationMeta> {
        self.expectations.get(key).copied()
    }

    pub fn expectation_count(&self) -> usize {
        self.expectations.len()
    }

    /// Stored expectations to evict: those calculated `stale_ms` or longer
    /// before `now_ms`, then the oldest beyond `max_count`; at most `limit`,
    /// oldest first.
    pub fn eviction_candidates(&self, now_ms: u64, stale_ms: u64, max_count: usize, limit: usize) -> Vec<Eviction> {
        let over = self.expectation_order.len().saturating_sub(max_count);
        let mut out = Vec::new();
        for (i, (at, written_by, key)) in self.expectation_order.iter().enumerate() {
            let stale = at.saturating_add(stale_ms) <= now_ms;
            if !(stale || i < over) || out.len() >= limit {
                break;
            }
            out.push(Eviction { key: key.clone(), written_by: *written_by });
        }
        out
    }

    /// The leader's periodic expiry: the record to append (if anything is
    /// due) forgetting the bindings made `ttl_ms` or longer before `now_ms`
    /// and, above 7/8 of `max_idempotency_keys`, the oldest down to 3/4 (the
    /// time cut moves up: a count bound expressed as a time, so applying it
    /// depends on the record alone). At most about `limit` per record
    /// (bindings made in the same millisecond go together).
    pub fn idempotency_expiry(&self, now_ms: u64, ttl_ms: u64, limit: usize) -> Option<Record> {
        let oldest = self.key_order.first()?.0;
        let mut before = now_ms.saturating_sub(ttl_ms);
        let n = self.key_order.len();
        let max = self.limits.max_idempotency_keys;
        if n > high_water(max) {
            let drop = n - max / 4 * 3;
            if let Some((at, _, _)) = self.key_order.iter().nth(drop.saturating_sub(1)) {
                before = before.max(at.saturating_add(1));
            }
        }
        if let Some((at, _, _)) = self.key_order.iter().nth(limit.max(1)) {
            before = before.min((*at).max(oldest.saturating_add(1)));
        }
        (oldest < before).then_some(Record::IdempotencyExpired(IdempotencyExpired { before_ms: before }))
    }

    // ---- speculation (leader) --------------------------------------

    fn view_liked(&self, character: &str, user: &str) -> Speculative<bool> {
        if !self.overlay.relations.is_empty() {
            if let Some(&(liked, seq)) = self.overlay.relations.get(&pair_id(character, user)) {
                return Speculative { value: liked, after: Some(seq) };
            }
        }
        Speculative { value: self.likers.get(character).is_some_and(|s| s.contains(user)), after: None }
    }

    fn view_count(&self, character: &str) -> Speculative<u64> {
        if let Some(&(count, seq)) = self.overlay.counts.get(character) {
            return Speculative { value: count, after: Some(seq) };
        }
        Speculative { value: self.like_count(character), after: None }
    }

    fn view_key(&self, id: &str) -> Option<(KeyBinding, Option<u64>)> {
        if let Some((b, seq)) = self.overlay.keys.get(id) {
            return Some((b.clone(), Some(*seq)));
        }
        self.keys.get(id).map(|e| (e.binding.clone(), None))
    }

    /// Like relations including the toggles proposed but not yet applied.
    pub fn speculative_relations(&self) -> usize {
        (self.relations as i64 + self.overlay.relation_delta).max(0) as usize
    }

    /// Idempotency bindings including the proposals not yet applied.
    pub fn speculative_keys(&self) -> usize {
        (self.keys.len() as i64 + self.overlay.key_delta).max(0) as usize
    }

    /// `{liked, likeCount}` including the toggles proposed but not yet
    /// applied; answer it once proposal `after` (if any) has settled applied.
    pub fn speculative_status(&self, user: &str, character: &str) -> Speculative<LikeResult> {
        let liked = self.view_liked(character, user);
        let count = self.view_count(character);
        Speculative { value: LikeResult { liked: liked.value, like_count: count.value }, after: liked.after.max(count.after) }
    }

    fn check_in_flight(&self) -> Result<(), PartitionError> {
        if self.overlay.pending.len() >= self.limits.max_in_flight {
            return Err(PartitionError::InFlightFull { max: self.limits.max_in_flight });
        }
        Ok(())
    }

    fn check_binding(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        character: &CharacterName,
        op: Op,
    ) -> Result<Option<(KeyBinding, Option<u64>)>, PartitionError> {
        match self.view_key(&key_id(user.as_str(), key.as_str())) {
            Some((b, after)) if b.character == character.as_str() && b.op == op => Ok(Some((b, after))),
            Some((b, _)) => {
                Err(PartitionError::IdempotencyKeyReused { key: key.as_str().to_string(), first_character: b.character, first_op: b.op })
            }
            None => {
                if self.speculative_keys() >= self.limits.max_idempotency_keys {
                    return Err(PartitionError::IdempotencyFull { max: self.limits.max_idempotency_keys });
                }
                Ok(None)
            }
        }
    }

    /// Decide a like toggle on this (the character's) partition, from the
    /// applied state plus the overlay. `&self`: nothing changes until the
    /// caller has the record in the log and calls [`Partition::speculate`]
    /// with its index — with no await in between, so the next proposal
    /// sees this one.
    pub fn propose_toggle(
        &self,
        user: &UserId,
        character: &CharacterName,
        key: Option<&IdempotencyKey>,
        at_ms: u64,
    ) -> Result<Proposal, PartitionError> {
        self.check_in_flight()?;
        if let Some(key) = key {
            if let Some((b, after)) = self.check_binding(user, key, character, Op::LikeToggle)? {
                if let Some(answer) = b.answer {
                    return Ok(Proposal::Answered { answer, after });
                }
                // Reserved here (user and character on this partition),
                // not yet toggled: toggle now, the record fills the answer.
            }
        }
        let (user_s, character_s) = (user.as_str(), character.as_str());
        let liked = !self.view_liked(character_s, user_s).value;
        let count = self.view_count(character_s).value;
        if liked && self.speculative_relations() >= self.limits.max_relations {
            return Err(PartitionError::RelationsFull { max: self.limits.max_relations });
        }
        let count_after = if liked { count + 1 } else { count.saturating_sub(1) };
        let answer = LikeResult { liked, like_count: count_after };
        let record = Record::LikeToggled(LikeToggled {
            user: user_s.to_string(),
            character: character_s.to_string(),
            liked,
            count_after,
            at_ms,
            idempotency_key: key.map(|k| k.as_str().to_string()),
        });
        Ok(Proposal::Append { record, answer })
    }

    /// Decide a reservation of `(user, key)` for `op` on `character`, on
    /// the user's partition. Same speculation contract as
    /// [`Partition::propose_toggle`].
    pub fn propose_reservation(
        &self,
        user: &UserId,
        key: &IdempotencyKey,
        character: &CharacterName,
        op: Op,
        at_ms: u64,
    ) -> Result<Reservation, PartitionError> {
        self.check_in_flight()?;
        if let Some((_, after)) = self.check_binding(user, key, character, op)? {
            return Ok(Reservation::Held { after });
        }
        Ok(Reservation::Append(Record::IdempotencyReserved(IdempotencyReserved {
            user: user.as_str().to_string(),
            key: key.as_str().to_string(),
            character: character.as_str().to_string(),
            op,
            at_ms,
        })))
    }

    /// Feed the overlay with a proposed `record` (from
    /// [`Partition::propose_toggle`] / [`Partition::propose_reservation`]),
    /// right after the proposal and before anything else can propose, and
    /// hand it to the log at once (so the log holds proposals in the order
    /// they were fed). Returns the proposal's sequence number: call
    /// [`Partition::settle`] with it once the write resolved, whatever the
    /// result. Other records need no speculation: they get a number with
    /// nothing behind it.
    pub fn speculate(&mut self, record: &Record) -> u64 {
        self.overlay.next_seq += 1;
        let seq = self.overlay.next_seq;
        let mut pending = Pending::default();
        match record {
            Record::LikeToggled(t) => {
                let was = self.view_liked(&t.character, &t.user).value;
                pending.relations = t.liked as i64 - was as i64;
                pending.keys = t.idempotency_key.as_ref().is_some_and(|k| self.view_key(&key_id(&t.user, k)).is_none()) as i64;
                let pair = pair_id(&t.character, &t.user);
                self.overlay.relations.insert(pair.clone(), (t.liked, seq));
                self.overlay.counts.insert(t.character.clone(), (t.count_after, seq));
                pending.pair = Some(pair);
                pending.character = Some(t.character.clone());
                if let Some(k) = &t.idempotency_key {
                    let answer = LikeResult { liked: t.liked, like_count: t.count_after };
                    let binding = KeyBinding { character: t.character.clone(), op: Op::LikeToggle, at_ms: t.at_ms, answer: Some(answer) };
                    let id = key_id(&t.user, k);
                    self.overlay.keys.insert(id.clone(), (binding, seq));
                    pending.key = Some(id);
                }
            }
            Record::IdempotencyReserved(r) => {
                let id = key_id(&r.user, &r.key);
                pending.keys = self.view_key(&id).is_none() as i64;
                let binding = KeyBinding { character: r.character.clone(), op: r.op, at_ms: r.at_ms, answer: None };
                self.overlay.keys.insert(id.clone(), (binding, seq));
                pending.key = Some(id);
            }
            _ => return seq,
        }
        self.overlay.relation_delta += pending.relations;
        self.overlay.key_delta += pending.keys;
        self.overlay.pending.insert(seq, pending);
        seq
    }

    /// The write of proposal `seq` resolved (applied, failed, or its outcome
    /// unknown): its speculative outcomes leave the view, which falls back
    /// to the applied state for what no newer proposal covers. Unknown or
    /// already settled numbers are ignored.
    pub fn settle(&mut self, seq: u64) {
        self.overlay.settle(seq);
    }

    /// Forget every speculative outcome (leadership lost): the view is the
    /// applied state again. A new leader must not propose before its first
    /// entry (a Noop) is applied, so that the applied state holds every
    /// earlier entry.
    pub fn drop_speculation(&mut self) {
        let next_seq = self.overlay.next_seq;
        self.overlay = Overlay { next_seq, ..Overlay::default() };
    }

    /// Proposals fed and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.overlay.pending.len()
    }

    // ---- snapshot / restore ----------------------------------------

    /// The rows this machine is rebuilt from (relations, bindings,
    /// expectation metadata), in no particular order. A Raft snapshot is
    /// the store's scan of the whole partition, which holds these and the
    /// expectation bodies. Relation rows carry the applied index: the
    /// machine does not keep per-relation indices, and any index up to
    /// the snapshot's is equivalent for them (every later entry is newer).
    pub fn snapshot_rows(&self) -> impl Iterator<Item = Result<Row, PartitionError>> + '_ {
        let applied = self.applied_index;
        let relations = self.likers.iter().flat_map(move |(c, users)| {
            users.iter().map(move |u| Ok(Row { key: rows::relation_key(c, u), index: applied, value: Vec::new() }))
        });
        let keys = self.keys.iter().map(|(id, e)| {
            let (user, key) = id.split_once('\0').unwrap_or((id, ""));
            let row = KeyRow {
                character: e.binding.character.clone(),
                op: e.binding.op,
                at_ms: e.binding.at_ms,
                answer: e.binding.answer.map(|a| (a.liked, a.like_count)),
            };
            Ok(Row { key: rows::key_row_key(user, key), index: e.index, value: rows::encode_key_row(&row)? })
        });
        let metas = self.expectations.iter().map(|(k, m)| {
            let value = rows::encode_meta_row(&MetaRow { calculated_at_ms: m.calculated_at_ms, size: m.size })?;
            Ok(Row { key: rows::expectation_meta_key(k), index: m.written_by, value })
        });
        relations.chain(keys).chain(metas)
    }

    /// Rebuild a machine from a store scan (rows of [`rows::RESTORE_PREFIXES`];
    /// other rows are ignored) taken when entries up to `applied_index`
    /// were applied. Counts are derived from the relations. Replaying the
    /// log after `applied_index` then gives the state of the whole log.
    pub fn restore<'a>(
        limits: Limits,
        applied_index: u64,
        rows: impl IntoIterator<Item = (&'a [u8], u64, &'a [u8])>,
    ) -> Result<Partition, PartitionError> {
        let mut r = Restorer::new(limits);
        for (key, index, value) in rows {
            r.row(key, index, value)?;
        }
        Ok(r.finish(applied_index))
    }
}

fn high_water(max: usize) -> usize {
    max / 8 * 7
}

/// Incremental [`Partition::restore`], for stores that hand rows to a
/// callback (e.g. `storage::store::Partition::visit_prefix`).
#[derive(Debug)]
pub struct Restorer {
    p: Partition,
}

impl Restorer {
    pub fn new(limits: Limits) -> Restorer {
        Restorer { p: Partition::new(limits) }
    }

    /// One row of the store: key, the index that wrote it, value.
    pub fn row(&mut self, key: &[u8], index: u64, value: &[u8]) -> Result<(), PartitionError> {
        let p = &mut self.p;
        if let Some(rest) = key.strip_prefix(rows::RELATION_PREFIX) {
            let (character, user) = rows::split_pair(rest, "relation key")?;
            let set = p.likers.entry(character.to_string()).or_default();
            if set.insert(user.to_string()) {
                p.relations += 1;
            }
        } else if let Some(rest) = key.strip_prefix(rows::KEY_PREFIX) {
            let (user, k) = rows::split_pair(rest, "idempotency key")?;
            let row = rows::decode_key_row(value)?;
            let binding = KeyBinding { answer: row.answer(), character: row.character, op: row.op, at_ms: row.at_ms };
            let id = key_id(user, k);
            if let Some(old) = p.keys.get(&id) {
                p.key_order.remove(&(old.binding.at_ms, old.index, id.clone()));
            }
            p.key_order.insert((binding.at_ms, index, id.clone()));
            p.keys.insert(id, KeyEntry { binding, index });
        } else if let Some(rest) = key.strip_prefix(rows::EXPECTATION_META_PREFIX) {
            let k = std::str::from_utf8(rest).map_err(|e| PartitionError::BadRow(format!("expectation key: {e}")))?;
            let m = rows::decode_meta_row(value)?;
            p.set_expectation(k.to_string(), ExpectationMeta { written_by: index, calculated_at_ms: m.calculated_at_ms, size: m.size });
        }
        Ok(())
    }

    pub fn finish(mut self, applied_index: u64) -> Partition {
        self.p.applied_index = applied_index;
        self.p
    }
}
