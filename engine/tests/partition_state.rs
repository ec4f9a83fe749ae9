//! The partition state machine: like toggles, the idempotency protocol
//! across two partitions, speculation, bounds, expectations and eviction,
//! format-1 logs and stores replayed, the store image through the real
//! state store.
mod partition_support;

use engine::name::CharacterName;
use engine::partition::{
    ExpectationEvicted, ExpectationWritten, IdempotencyExpired, IdempotencyKey, KeyBinding, LikeResult, Limits, Op, Outcome, Partition,
    PartitionError, Proposal, Record, Reservation, UserId, RESTORE_PREFIXES,
};
use partition_support::*;
use storage::KvWrite;

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}
fn name(s: &str) -> CharacterName {
    CharacterName::parse(s).unwrap()
}
fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s.as_bytes()).unwrap()
}
fn lr(liked: bool, like_count: u64) -> LikeResult {
    LikeResult { liked, like_count }
}

/// A leader of one partition over a log: proposes, appends (assigns the
/// next index), feeds the overlay, and applies committed entries in order.
struct Leader {
    p: Partition,
    log: Vec<Record>,
    /// The proposal number of each entry (settled when it is applied).
    seqs: Vec<u64>,
    store: ModelStore,
}

impl Leader {
    fn new(limits: Limits) -> Leader {
        Leader { p: Partition::new(limits), log: Vec::new(), seqs: Vec::new(), store: ModelStore::default() }
    }

    fn append(&mut self, record: Record) -> u64 {
        self.log.push(record.clone());
        self.seqs.push(self.p.speculate(&record));
        self.log.len() as u64
    }

    /// Apply every appended entry (commit up to the end).
    fn commit_all(&mut self) -> Vec<Outcome> {
        let mut out = Vec::new();
        while self.p.applied_index() < self.log.len() as u64 {
            let index = self.p.applied_index() + 1;
            let applied = self.p.apply(index, &self.log[index as usize - 1]);
            self.store.apply(index, &applied.writes);
            // The write resolves after its apply.
            self.p.settle(self.seqs[index as usize - 1]);
            out.push(applied.outcome);
        }
        out
    }

    /// Toggle and commit at once; the answer the client gets.
    fn toggle(&mut self, u: &str, c: &str, k: Option<&str>, at_ms: u64) -> Result<LikeResult, PartitionError> {
        let k = k.map(key);
        match self.p.propose_toggle(&user(u), &name(c), k.as_ref(), at_ms)? {
            Proposal::Append { record, answer } => {
                self.append(record);
                self.commit_all();
                Ok(answer)
            }
            Proposal::Answered { answer, .. } => Ok(answer),
        }
    }

    fn reserve(&mut self, u: &str, k: &str, c: &str, at_ms: u64) -> Result<(), PartitionError> {
        match self.p.propose_reservation(&user(u), &key(k), &name(c), Op::LikeToggle, at_ms)? {
            Reservation::Append(record) => {
                self.append(record);
                self.commit_all();
            }
            Reservation::Held { .. } => {}
        }
        Ok(())
    }
}

#[test]
fn toggles_flip_and_count_users() {
    let mut l = Leader::new(Limits::default());
    assert_eq!(l.toggle("u1", "Adele", None, 1).unwrap(), lr(true, 1));
    assert_eq!(l.toggle("u2", "  adele", None, 2).unwrap(), lr(true, 2));
    assert_eq!(l.toggle("u1", "ADELE", None, 3).unwrap(), lr(false, 1));
    assert_eq!(l.p.like_status("u1", "adele"), lr(false, 1));
    assert_eq!(l.p.like_status("u2", "adele"), lr(true, 1));
    assert_eq!(l.p.like_status("u9", "nobody"), lr(false, 0));
    assert_eq!((l.p.relation_count(), l.p.liked_characters()), (1, 1));
    // The store image: the relation row only, no counts.
    let live: Vec<Vec<u8>> = l.store.live().into_keys().collect();
    assert_eq!(live, [b"like/u/adele\0u2".to_vec()]);
}

/// Issue 9, one partition: a retry returns the first answer and appends
/// nothing; the same key on another character is a 422 — also when that
/// character lives on the same partition.
#[test]
fn a_key_identifies_one_request_on_one_partition() {
    let mut l = Leader::new(Limits::default());
    let first = l.toggle("u", "hero", Some("req-1"), 10).unwrap();
    let appended = l.log.len();
    assert_eq!(l.toggle("u", "hero", Some("req-1"), 11).unwrap(), first);
    assert_eq!(l.log.len(), appended, "a retry appends nothing");
    assert_eq!(l.p.like_status("u", "hero"), lr(true, 1));
    let err = l.toggle("u", "adele", Some("req-1"), 12).unwrap_err();
    assert_eq!(err, PartitionError::IdempotencyKeyReused { key: "req-1".into(), first_character: "hero".into(), first_op: Op::LikeToggle });
    assert!(err.to_string().contains("already used for a like toggle of character \"hero\""), "{err}");
    assert_eq!(l.p.like_status("u", "adele"), lr(false, 0), "nothing toggled");
    // Keys are per user; another key is another request.
    assert_eq!(l.toggle("other", "hero", Some("req-1"), 13).unwrap(), lr(true, 2));
    assert_eq!(l.toggle("u", "hero", Some("req-2"), 14).unwrap(), lr(false, 1));
    assert_eq!(l.p.idempotency_binding("u", "req-1").unwrap().answer, Some(lr(true, 1)));
}

/// Issue 9, two partitions: the user's partition `U` owns the binding,
/// the character's partition `C` stores the answer with the toggle.
#[test]
fn a_key_identifies_one_request_across_partitions() {
    let mut u_part = Leader::new(Limits::default()); // slot(user) → U
    let mut c_part = Leader::new(Limits::default()); // hero, adele → C
    let mut d_part = Leader::new(Limits::default()); // maplehero → D

    // Request: toggle hero with key k. Reserve at U, toggle at C.
    u_part.reserve("u", "k", "hero", 100).unwrap();
    let first = c_part.toggle("u", "hero", Some("k"), 101).unwrap();
    assert_eq!(first, lr(true, 1));
    assert_eq!(
        u_part.p.idempotency_binding("u", "k"),
        Some(&KeyBinding { character: "hero".into(), op: Op::LikeToggle, at_ms: 100, answer: None })
    );
    // Retry: the reservation is held, C answers the first answer.
    u_part.reserve("u", "k", "hero", 200).unwrap();
    assert_eq!(c_part.toggle("u", "hero", Some("k"), 201).unwrap(), first);
    assert_eq!(c_part.p.like_count("hero"), 1);
    // The same key for a character on another partition: refused at U.
    assert!(matches!(u_part.reserve("u", "k", "maplehero", 300), Err(PartitionError::IdempotencyKeyReused { .. })));
    assert_eq!(d_part.p.like_count("maplehero"), 0);
    // ... and for another character on C (had U been skipped, C refuses too).
    assert!(matches!(u_part.reserve("u", "k", "adele", 301), Err(PartitionError::IdempotencyKeyReused { .. })));
    assert!(matches!(c_part.toggle("u", "adele", Some("k"), 302), Err(PartitionError::IdempotencyKeyReused { .. })));

    // Crash between reservation and toggle: the binding is durable at U,
    // C never saw the toggle. The retry toggles exactly once.
    u_part.reserve("u", "k2", "maplehero", 400).unwrap();
    // (crash: no toggle at D)
    u_part.reserve("u", "k2", "maplehero", 500).unwrap();
    assert_eq!(d_part.toggle("u", "maplehero", Some("k2"), 501).unwrap(), lr(true, 1));
    assert_eq!(d_part.toggle("u", "maplehero", Some("k2"), 502).unwrap(), lr(true, 1));
    // ... and a different character with that key is refused.
    assert!(matches!(u_part.reserve("u", "k2", "hero", 503), Err(PartitionError::IdempotencyKeyReused { .. })));

    // Toggle durable but the binding at U forgotten (expired): a retry
    // reserves afresh and C still returns the stored answer.
    let exp = u_part.p.idempotency_expiry(10_000, 1_000, 100).expect("everything at U is older than the TTL");
    u_part.append(exp);
    u_part.commit_all();
    assert_eq!(u_part.p.idempotency_keys(), 0);
    u_part.reserve("u", "k", "hero", 10_001).unwrap();
    assert_eq!(c_part.toggle("u", "hero", Some("k"), 10_002).unwrap(), first, "no second toggle");
    assert_eq!(c_part.p.like_count("hero"), 1);
}

/// `U == C`: a reservation made there first is filled in by the toggle,
/// and the stored answer is what a retry gets.
#[test]
fn a_reservation_on_the_characters_partition_is_filled_by_the_toggle() {
    let mut l = Leader::new(Limits::default());
    l.reserve("u", "k", "hero", 1).unwrap();
    assert_eq!(l.p.idempotency_binding("u", "k").unwrap().answer, None);
    assert_eq!(l.toggle("u", "hero", Some("k"), 2).unwrap(), lr(true, 1));
    let b = l.p.idempotency_binding("u", "k").unwrap();
    assert_eq!((b.at_ms, b.answer), (2, Some(lr(true, 1))), "the toggle's record rewrites the binding with its answer");
    assert_eq!(l.toggle("u", "hero", Some("k"), 3).unwrap(), lr(true, 1));
    assert_eq!(l.log.len(), 2);
}

/// Many toggles in flight: each proposal sees the ones before it; the
/// answers equal what applying the records gives; a retry of an
/// in-flight keyed toggle waits for that entry.
#[test]
fn speculation_lets_many_toggles_fly_and_matches_apply() {
    let mut l = Leader::new(Limits::default());
    let mut answers = Vec::new();
    for (u, k) in [("a", None), ("b", None), ("a", None), ("c", Some("kc")), ("b", None)] {
        match l.p.propose_toggle(&user(u), &name("hero"), k.map(key).as_ref(), 5).unwrap() {
            Proposal::Append { record, answer } => {
                let index = l.append(record);
                answers.push((index, answer));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(answers.iter().map(|(_, a)| *a).collect::<Vec<_>>(), [lr(true, 1), lr(true, 2), lr(false, 1), lr(true, 2), lr(false, 1)]);
    assert_eq!(l.p.like_status("a", "hero"), lr(false, 0), "nothing applied yet");
    let spec = l.p.speculative_status("c", "hero");
    assert_eq!((spec.value, spec.after), (lr(true, 1), Some(5)));
    // The retry of c's keyed toggle: its first answer, once proposal 4 settles.
    assert_eq!(
        l.p.propose_toggle(&user("c"), &name("hero"), Some(&key("kc")), 6).unwrap(),
        Proposal::Answered { answer: lr(true, 2), after: Some(4) }
    );
    assert!(matches!(
        l.p.propose_toggle(&user("c"), &name("adele"), Some(&key("kc")), 6),
        Err(PartitionError::IdempotencyKeyReused { .. })
    ));
    let outcomes = l.commit_all();
    let applied: Vec<LikeResult> = outcomes.iter().map(|o| if let Outcome::Like(r) = o { *r } else { panic!("{o:?}") }).collect();
    assert_eq!(applied, answers.iter().map(|(_, a)| *a).collect::<Vec<_>>(), "speculation = apply");
    assert_eq!(l.p.in_flight(), 0, "settles cleared the overlay");
    assert_eq!(l.p.speculative_status("c", "hero"), engine::partition::Speculative { value: lr(true, 1), after: None });
}

/// Leadership lost with proposals in flight: the overlay is dropped and
/// the view is the applied state again.
#[test]
fn dropping_speculation_returns_to_the_applied_state() {
    let mut l = Leader::new(Limits::default());
    l.toggle("a", "hero", None, 1).unwrap();
    let Proposal::Append { record, .. } = l.p.propose_toggle(&user("b"), &name("hero"), None, 2).unwrap() else { panic!() };
    let seq = l.p.speculate(&record);
    assert_eq!(l.p.speculative_status("x", "hero").value.like_count, 2);
    l.p.drop_speculation();
    assert_eq!(l.p.in_flight(), 0);
    assert_eq!(l.p.speculative_status("x", "hero").value.like_count, 1);
    // The dropped proposal's late settle changes nothing, nor does an unknown number.
    let again = l.p.speculate(&record);
    assert!(again > seq, "numbers are never reused");
    l.p.settle(seq);
    l.p.settle(u64::MAX);
    assert_eq!(l.p.speculative_status("b", "hero").value, lr(true, 2));
    l.p.settle(again);
    assert_eq!(l.p.speculative_status("b", "hero").value, lr(false, 1));
}

/// A proposal's speculation lasts until its write settles, not until its
/// entry is applied: between the two the view (the overlay) and the applied
/// state agree; a failed write (settled without an apply) leaves the view
/// at the applied state; an older proposal settling never hides a newer one.
#[test]
fn settle_clears_a_proposal_whatever_its_write_did() {
    let mut l = Leader::new(Limits::default());
    let propose = |p: &Partition, u: &str| match p.propose_toggle(&user(u), &name("hero"), None, 1).unwrap() {
        Proposal::Append { record, answer } => (record, answer),
        other => panic!("{other:?}"),
    };
    let (ra, a) = propose(&l.p, "a");
    let sa = l.p.speculate(&ra);
    let (rb, b) = propose(&l.p, "b");
    let sb = l.p.speculate(&rb);
    assert_eq!((a, b), (lr(true, 1), lr(true, 2)));
    // a's entry is applied, its write not yet resolved: both views agree.
    let out = l.p.apply(1, &ra);
    assert_eq!(out.outcome, Outcome::Like(a));
    assert_eq!(l.p.speculative_status("a", "hero"), engine::partition::Speculative { value: lr(true, 2), after: Some(sb) });
    assert_eq!(l.p.like_status("a", "hero"), lr(true, 1));
    // a settles: b (newer, not applied) still speaks for the count.
    l.p.settle(sa);
    assert_eq!(l.p.speculative_status("a", "hero").value, lr(true, 2));
    assert_eq!(l.p.in_flight(), 1);
    // b's write fails (never applied): the view is the applied state.
    l.p.settle(sb);
    assert_eq!(l.p.in_flight(), 0);
    assert_eq!(l.p.speculative_status("b", "hero"), engine::partition::Speculative { value: lr(false, 1), after: None });
    assert_eq!(l.p.speculative_relations(), 1);
    // The next proposal starts from the applied state.
    let (_, c) = propose(&l.p, "b");
    assert_eq!(c, lr(true, 2));
}

#[test]
fn bounds_are_enforced_at_proposal_never_at_apply() {
    let limits = Limits { max_relations: 2, max_idempotency_keys: 2, max_in_flight: 4 };
    let mut l = Leader::new(limits.clone());
    l.toggle("a", "hero", None, 1).unwrap();
    l.toggle("b", "hero", Some("k1"), 1).unwrap();
    assert_eq!(l.toggle("c", "hero", None, 1), Err(PartitionError::RelationsFull { max: 2 }));
    assert_eq!(l.toggle("a", "hero", None, 1).unwrap(), lr(false, 1), "unliking is always allowed");
    l.toggle("c", "hero", Some("k2"), 1).unwrap();
    assert_eq!(l.toggle("a", "hero", Some("k3"), 1), Err(PartitionError::IdempotencyFull { max: 2 }));
    assert_eq!(l.toggle("b", "hero", Some("k1"), 1).unwrap(), lr(true, 2), "a retry of a remembered key still answers");
    // apply takes whatever is committed (e.g. from a leader with other limits).
    let mut p = Partition::new(limits);
    for (i, u) in ["a", "b", "c", "d"].iter().enumerate() {
        let r = Record::LikeToggled(engine::partition::LikeToggled {
            user: u.to_string(),
            character: "hero".into(),
            liked: true,
            count_after: i as u64 + 1,
            at_ms: 0,
            idempotency_key: None,
        });
        p.apply(i as u64 + 1, &r);
    }
    assert_eq!(p.like_count("hero"), 4);
    // In flight: 4 proposals at most.
    let mut l = Leader::new(Limits { max_in_flight: 4, ..Limits::default() });
    for u in ["a", "b", "c", "d"] {
        let Proposal::Append { record, .. } = l.p.propose_toggle(&user(u), &name(u), None, 1).unwrap() else { panic!() };
        l.append(record);
    }
    assert_eq!(l.p.in_flight(), 4);
    assert_eq!(l.p.propose_toggle(&user("e"), &name("e"), None, 1), Err(PartitionError::InFlightFull { max: 4 }));
    l.commit_all();
    assert_eq!(l.p.in_flight(), 0);
    assert!(l.p.propose_toggle(&user("e"), &name("e"), None, 1).is_ok());
}

#[test]
fn expiry_forgets_by_time_and_under_pressure_through_the_log() {
    let mut l = Leader::new(Limits { max_idempotency_keys: 16, ..Limits::default() });
    for i in 0..10u64 {
        l.toggle(&format!("u{i}"), "hero", Some("k"), 1000 + i).unwrap();
    }
    assert_eq!(l.p.idempotency_expiry(1005, 1000, 100), None, "nothing older than the TTL, no pressure");
    // TTL: bindings made before 1003 go.
    let r = l.p.idempotency_expiry(2003, 1000, 100).unwrap();
    assert_eq!(r, Record::IdempotencyExpired(IdempotencyExpired { before_ms: 1003 }));
    // At most `limit` per record.
    assert_eq!(l.p.idempotency_expiry(2009, 1000, 2).unwrap(), Record::IdempotencyExpired(IdempotencyExpired { before_ms: 1002 }));
    l.append(r);
    let out = l.commit_all();
    assert_eq!(out, [Outcome::Expired { forgotten: 3 }]);
    assert_eq!(l.p.idempotency_keys(), 7);
    assert!(l.p.idempotency_binding("u2", "k").is_none() && l.p.idempotency_binding("u3", "k").is_some());
    // Pressure: above 14 of 16 → cut down to 12 by time, whatever the TTL.
    for i in 10..15u64 {
        l.toggle(&format!("u{i}"), "hero", Some("k"), 1000 + i).unwrap();
    }
    assert!(l.p.idempotency_keys() == 12 && !l.p.idempotency_pressure());
    for i in 15..18u64 {
        l.toggle(&format!("u{i}"), "hero", Some("k"), 1000 + i).unwrap();
    }
    assert!(l.p.idempotency_pressure());
    let r = l.p.idempotency_expiry(1020, 1_000_000, 100).unwrap();
    l.append(r);
    l.commit_all();
    assert_eq!(l.p.idempotency_keys(), 12);
    // The rows went with them (evictions of exactly the rows written).
    let rows = l.store.live().keys().filter(|k| k.starts_with(b"idk/")).count();
    assert_eq!(rows, 12);
}

/// The stored expectations: metadata in the machine, blobs in the store;
/// the stale one and the oldest beyond the bound are candidates; a value
/// rewritten after the decision survives its eviction.
#[test]
fn expectations_are_written_behind_and_evicted_through_the_log() {
    let mut l = Leader::new(Limits::default());
    let write = |key: &str, at: u64, tag: u8| {
        Record::ExpectationWritten(ExpectationWritten {
            key: key.into(),
            etag: format!("\"{tag}\""),
            calculated_at_ms: at,
            gzip: vec![tag; 10],
        })
    };
    let now = 10_000_000;
    for (key, at, tag) in [("stale", now - 7_200_000, 1), ("oldest", now - 60_000, 2), ("mid", now - 30_000, 3), ("new", now, 4)] {
        l.append(write(key, at, tag));
    }
    l.commit_all();
    let batch = l.p.eviction_candidates(now, 3_600_000, 2, 100);
    let keys: Vec<&str> = batch.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["stale", "oldest"]);
    assert_eq!(l.p.eviction_candidates(now, 3_600_000, 2, 1).len(), 1, "limit");
    l.append(write("oldest", now, 9)); // rewritten after the decision
    for e in &batch {
        l.append(Record::ExpectationEvicted(ExpectationEvicted { key: e.key.clone(), written_by: e.written_by }));
    }
    l.commit_all();
    assert_eq!(l.p.expectation("stale"), None);
    let m = l.p.expectation("oldest").unwrap();
    assert_eq!((m.written_by, m.calculated_at_ms, m.size), (5, now, 10));
    assert_eq!(l.p.expectation_count(), 3);
    let body = l.store.live()[&b"exp/oldest".to_vec()].1.clone();
    let stored = engine::partition::decode_expectation_row(&body).unwrap();
    assert_eq!((stored.etag.as_str(), stored.gzip), ("\"9\"", vec![9; 10]));
    assert!(!l.store.live().contains_key(b"exp/stale".as_slice()) && !l.store.live().contains_key(b"expm/stale".as_slice()));
    // The machine rebuilt from the store agrees.
    let r = restore(&Limits::default(), l.p.applied_index(), &l.store);
    assert_eq!(fingerprint(&r), fingerprint(&l.p));
    assert_eq!(r.expectation("oldest"), Some(m));
}

/// The previous build's log replays into the state its node answered.
#[test]
fn the_previous_builds_log_replays() {
    let mut p = Partition::new(Limits::default());
    let mut store = ModelStore::default();
    for (index, payload) in read_payloads("v1_payloads.bin") {
        let applied = p.apply(index, &Record::decode(&payload).unwrap());
        store.apply(index, &applied.writes);
    }
    check_v1_session_state(&p);
    assert_eq!(fingerprint(&restore(&Limits::default(), 12, &store)), fingerprint(&p));
}

/// What the node of the fixture session answered (tests/data/README.md).
fn check_v1_session_state(p: &Partition) {
    assert_eq!(p.like_status("alice", "hero"), lr(true, 2));
    assert_eq!(p.like_status("bob", "hero"), lr(false, 2));
    assert_eq!(p.like_status("김철수", "hero"), lr(true, 2));
    assert_eq!(p.like_status("alice", "아델"), lr(true, 2));
    assert_eq!(p.like_status("김철수", "maplehero"), lr(true, 1));
    assert_eq!(p.relation_count(), 5);
    let b = p.idempotency_binding("alice", "req-1").unwrap();
    assert_eq!((b.character.as_str(), b.answer), ("아델", Some(lr(true, 1))));
    assert_eq!(p.idempotency_binding("김철수", "kéy-✓").unwrap().answer, Some(lr(true, 1)));
    let keys: Vec<&str> = ["hero", "아델", "maplehero"].into_iter().filter(|k| p.expectation(k).is_some()).collect();
    assert_eq!(keys, ["maplehero"], "--store-expectations-max 1 evicted the two older ones");
}

/// The previous build's data dir (its sled store at checkpoint 10 and the
/// log's entries 11..=12) read by the migration's format-1 reader
/// (`storage::v1`), restores through the machine and replays to the same state.
#[test]
fn the_previous_builds_store_restores_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let src = data_dir().join("v1_state");
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("sled/blobs")).unwrap();
    std::fs::create_dir_all(dir.path().join("wal")).unwrap();
    for f in ["checkpoint", "sled/conf", "sled/db"] {
        std::fs::copy(src.join(f), state.join(f)).unwrap();
    }
    let core = storage::v1::read_core(dir.path(), 2 << 20).unwrap();
    assert_eq!(core.checkpoint, 10);
    let mut store = ModelStore::default();
    for (key, index, value) in core.rows {
        store.rows.insert(key, (index, value));
    }
    let mut p = restore(&Limits::default(), core.checkpoint, &store);
    // The store ran ahead of its checkpoint (the killed node had applied
    // the two evictions already): a restore sees rows of entries 11..=12.
    assert_eq!(p.expectation("maplehero").map(|m| (m.written_by, m.size)), Some((9, 0)), "format-1 age rows: size unknown");
    for (index, payload) in read_payloads("v1_payloads.bin").into_iter().filter(|(i, _)| *i > 10) {
        let applied = p.apply(index, &Record::decode(&payload).unwrap());
        store.apply(index, &applied.writes);
    }
    // Relations and expectations come back; the format-1 answer rows
    // (`idem/`) are not restored (no character), so only log records would.
    assert_eq!(p.like_status("alice", "hero"), lr(true, 2));
    assert_eq!(p.like_status("김철수", "maplehero"), lr(true, 1));
    assert_eq!(p.relation_count(), 5);
    assert_eq!(p.idempotency_keys(), 0);
    let kept: Vec<&str> = ["hero", "아델", "maplehero"].into_iter().filter(|k| p.expectation(k).is_some()).collect();
    assert_eq!(kept, ["maplehero"]);
    // The format-1 expectation body is still served.
    let (_, body) = store.rows.get(&b"exp/maplehero"[..]).cloned().unwrap();
    let e = engine::partition::decode_expectation_row(&body.unwrap()).unwrap();
    assert!(e.gzip.starts_with(&[0x1f, 0x8b]) && e.etag.starts_with('"'));
}

/// The writes go through the real state store: restore from its scan
/// equals the machine, also after replaying the whole log again.
#[test]
fn the_store_image_through_the_real_state_store() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = storage::log::Log::open(&dir.path().join("log-0"), storage::log::LogOptions::default()).unwrap();
    let store = storage::store::Store::open(&dir.path().join("state"), storage::store::StoreOptions::default()).unwrap();
    store.attach_log(0, log).unwrap();
    let part = store.partition(0, 0).unwrap();
    let mut l = Leader::new(Limits::default());
    l.reserve("u", "k", "hero", 1).unwrap();
    l.toggle("u", "hero", Some("k"), 2).unwrap();
    l.toggle("v", "hero", None, 3).unwrap();
    l.toggle("v", "hero", None, 4).unwrap();
    l.toggle("v", "아델", Some("k"), 5).unwrap();
    l.append(Record::ExpectationWritten(ExpectationWritten {
        key: "hero".into(),
        etag: "\"1\"".into(),
        calculated_at_ms: 5,
        gzip: vec![1; 5],
    }));
    l.append(Record::IdempotencyExpired(IdempotencyExpired { before_ms: 3 }));
    l.commit_all();
    let mut replica = Partition::new(Limits::default());
    for (i, r) in l.log.iter().enumerate() {
        let applied = replica.apply(i as u64 + 1, r);
        part.apply(storage::log::LogId::new(1, i as u64 + 1), &applied.writes).unwrap();
    }
    assert_eq!(fingerprint(&replica), fingerprint(&l.p), "a follower applying the same log");
    let scan = |store: &storage::store::Partition| {
        let mut rows = Vec::new();
        for prefix in RESTORE_PREFIXES {
            store
                .visit_prefix(prefix, false, |v| {
                    rows.push((v.key.to_vec(), v.index, v.value.to_vec()));
                    true
                })
                .unwrap();
        }
        rows
    };
    let rows = scan(&part);
    let applied = part.applied().unwrap().index;
    let restored = Partition::restore(Limits::default(), applied, rows.iter().map(|(k, i, v)| (k.as_slice(), *i, v.as_slice()))).unwrap();
    assert_eq!(fingerprint(&restored), fingerprint(&l.p));
    assert!(l.p.idempotency_binding("u", "k").is_none(), "expired (reserved at 1, answered at 2)");
    assert!(restored.idempotency_binding("v", "k").is_some());
    // Each write's index is what the store recorded: bindings and meta too.
    let mut snapshot: Vec<(Vec<u8>, u64, Vec<u8>)> =
        l.p.snapshot_rows().map(|r| r.unwrap()).filter(|r| !r.key.starts_with(b"like/u/")).map(|r| (r.key, r.index, r.value)).collect();
    snapshot.sort();
    let mut scanned: Vec<_> = rows.into_iter().filter(|(k, _, _)| !k.starts_with(b"like/u/")).collect();
    scanned.sort();
    assert_eq!(snapshot, scanned, "snapshot rows = the store's rows (bindings, metadata)");
}

#[test]
fn corrupt_rows_are_typed_errors() {
    let limits = Limits::default();
    for (k, v) in [
        (&b"like/u/no-separator"[..], &b""[..]),
        (b"like/u/\0user", b""),
        (b"like/u/c\0\xff", b""),
        (b"idk/u\0k", b"garbage"),
        (b"idk/no-separator", b""),
        (b"expm/hero", b"short"),
    ] {
        assert!(Partition::restore(limits.clone(), 1, [(k, 1, v)]).is_err(), "{k:?}");
    }
    // Unknown prefixes (format-1 `idem/` rows, expectation bodies) are skipped.
    let p = Partition::restore(limits, 1, [(&b"idem/xxxxxxxxxxxxxxxx"[..], 1, &b"v"[..]), (b"exp/hero", 1, b"blob")]).unwrap();
    assert_eq!(p.expectation_count(), 0);
}

#[test]
fn applied_writes_follow_the_records() {
    let mut p = Partition::new(Limits::default());
    let t = |liked, count| {
        Record::LikeToggled(engine::partition::LikeToggled {
            user: "u".into(),
            character: "hero".into(),
            liked,
            count_after: count,
            at_ms: 7,
            idempotency_key: Some("k".into()),
        })
    };
    let a = p.apply(1, &t(true, 1));
    assert!(
        matches!(&a.writes[..], [KvWrite::Put { key, .. }, KvWrite::Put { key: k2, .. }] if key == b"like/u/hero\0u" && k2 == b"idk/u\0k")
    );
    // Applying the same entry again: the same writes (a function of the
    // record), the same state (the store skips rows of this entry).
    let again = p.apply(1, &t(true, 1));
    assert_eq!(again.writes, a.writes);
    assert_eq!(again.outcome, Outcome::Like(lr(true, 1)));
    assert_eq!(p.idempotency_binding("u", "k").unwrap().answer, Some(lr(true, 1)));
    // A later entry with the same key (a leader never proposes one: the
    // view answers the retry) rebinds: records are absolute.
    let b = p.apply(2, &t(false, 0));
    assert!(matches!(&b.writes[..], [KvWrite::Delete { .. }, KvWrite::Put { .. }]));
    assert_eq!(p.idempotency_binding("u", "k").unwrap().answer, Some(lr(false, 0)));
    let n = p.apply(3, &Record::Noop);
    assert_eq!((n.writes.len(), n.outcome, p.applied_index()), (0, Outcome::Done, 3));
}

/// The outcome a Raft write carries back to its proposer: every kind
/// round-trips; anything else is a typed error, never a panic.
#[test]
fn outcomes_round_trip_as_write_answers() {
    let binding = KeyBinding { character: "아델".into(), op: Op::LikeToggle, at_ms: 7, answer: Some(lr(true, 3)) };
    for o in [
        Outcome::Done,
        Outcome::Like(lr(true, 9)),
        Outcome::Like(lr(false, 0)),
        Outcome::Reserved(binding.clone()),
        Outcome::Reserved(KeyBinding { answer: None, ..binding }),
        Outcome::Expired { forgotten: 12 },
    ] {
        let b = o.encode();
        assert_eq!(Outcome::decode(&b).unwrap(), o);
        for cut in 0..b.len() {
            let _ = Outcome::decode(&b[..cut]);
        }
    }
    assert!(Outcome::decode(&[]).is_err());
    assert!(Outcome::decode(&[1, 2, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    assert!(Outcome::decode(&[9]).is_err());
}
