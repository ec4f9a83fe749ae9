//! The like state machine: toggles, idempotent retries, replay from records
//! and from the key/value image all agree with a simple model.
use std::collections::{BTreeMap, BTreeSet};

use engine::likes::{LikeBook, LikeError, LikeLimits, LikeRecord, LikeResult};
use proptest::prelude::*;

#[test]
fn toggle_twice_returns_to_unliked_and_counts_users() {
    let mut book = LikeBook::new(LikeLimits::default());
    let a = book.toggle("u1", "Adele", None).unwrap();
    assert_eq!(a.result, LikeResult { liked: true, like_count: 1 });
    let b = book.toggle("u2", "  adele", None).unwrap();
    assert_eq!(b.result, LikeResult { liked: true, like_count: 2 });
    let c = book.toggle("u1", "ADELE", None).unwrap();
    assert_eq!(c.result, LikeResult { liked: false, like_count: 1 });
    assert_eq!(c.record.unwrap().count_after, 1);
    assert_eq!(book.status("u1", "adele").unwrap(), LikeResult { liked: false, like_count: 1 });
    assert_eq!(book.status("u9", "nobody").unwrap(), LikeResult { liked: false, like_count: 0 });
}

#[test]
fn retried_toggle_with_same_key_returns_first_answer() {
    let mut book = LikeBook::new(LikeLimits::default());
    let first = book.toggle("u1", "hero", Some("req-1")).unwrap();
    assert!(first.record.is_some());
    let retry = book.toggle("u1", "hero", Some("req-1")).unwrap();
    assert_eq!(retry.result, first.result);
    assert!(retry.record.is_none(), "a retry appends nothing");
    assert_eq!(book.status("u1", "hero").unwrap().like_count, 1);
    // Another key is a new toggle.
    let second = book.toggle("u1", "hero", Some("req-2")).unwrap();
    assert_eq!(second.result, LikeResult { liked: false, like_count: 0 });
    // The answer survives a rebuild from the log records.
    let mut rebuilt = LikeBook::new(LikeLimits::default());
    rebuilt.apply(&first.record.unwrap());
    rebuilt.apply(&second.record.unwrap());
    assert_eq!(rebuilt.toggle("u1", "hero", Some("req-1")).unwrap().result, first.result);
}

#[test]
fn bad_input_is_a_typed_error_and_limits_hold() {
    let mut book = LikeBook::new(LikeLimits { max_relations: 1, max_idempotency_keys: 1 });
    assert_eq!(book.toggle("", "hero", None).unwrap_err(), LikeError::InvalidUser);
    assert!(matches!(book.toggle("u1", " ", None), Err(LikeError::InvalidCharacter(_))));
    assert_eq!(book.toggle("u1", "hero", Some("")).unwrap_err(), LikeError::InvalidIdempotencyKey);
    book.toggle("u1", "hero", Some("k1")).unwrap();
    assert_eq!(book.toggle("u2", "hero", None).unwrap_err(), LikeError::Full);
    // Unliking is always allowed, and frees room.
    book.toggle("u1", "hero", Some("k2")).unwrap();
    book.toggle("u2", "hero", None).unwrap();
    // Only one idempotency key is remembered (k2 now), so k1 is no longer a
    // retry: it is a new like, refused by the relation limit. (Were k1 still
    // remembered, its first answer would come back as Ok.)
    assert_eq!(book.toggle("u1", "hero", Some("k1")).unwrap_err(), LikeError::Full);
}

proptest! {
    #[test]
    fn matches_model_and_replays(ops in proptest::collection::vec((0u8..5, 0u8..4, proptest::option::of(0u8..6)), 1..200)) {
        let mut book = LikeBook::new(LikeLimits::default());
        let mut model: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut answers: BTreeMap<(String, String), LikeResult> = BTreeMap::new();
        let mut log: Vec<LikeRecord> = Vec::new();
        for (u, c, k) in ops {
            let (user, character) = (format!("user{u}"), format!("char{c}"));
            let key = k.map(|k| format!("key{k}"));
            let t = book.toggle(&user, &character, key.as_deref()).unwrap();
            if let Some(first) = key.as_ref().and_then(|k| answers.get(&(user.clone(), k.clone()))) {
                prop_assert_eq!(t.result, *first);
                prop_assert!(t.record.is_none());
                continue;
            }
            let set = model.entry(character.clone()).or_default();
            let liked = set.insert(user.clone()) || { set.remove(&user); false };
            let expected = LikeResult { liked, like_count: set.len() as u64 };
            prop_assert_eq!(t.result, expected);
            if let Some(k) = key {
                answers.insert((user.clone(), k), expected);
            }
            let rec = t.record.unwrap();
            prop_assert_eq!(LikeRecord::decode(&rec.encode()).unwrap(), rec.clone());
            log.push(rec);
        }
        // Replay the log twice (a crash mid-replay re-applies a suffix): same state.
        let mut replayed = LikeBook::new(LikeLimits::default());
        for r in log.iter().chain(log.iter()) {
            replayed.apply(r);
        }
        // The key/value image, last write wins per key, loads to the same state.
        let mut kv: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for r in &log {
            for (k, v) in r.kv_changes() {
                kv.insert(k, v);
            }
        }
        let mut loaded = LikeBook::new(LikeLimits::default());
        loaded.load_kv(kv.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.as_slice(), v.as_slice())))).unwrap();
        for c in 0..4 {
            let character = format!("char{c}");
            let count = model.get(&character).map_or(0, |s| s.len() as u64);
            if let Some(v) = kv.get(&[b"like/c/".as_slice(), character.as_bytes()].concat()).cloned().flatten() {
                prop_assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), count);
            }
            for u in 0..5 {
                let user = format!("user{u}");
                let want = book.status(&user, &character).unwrap();
                prop_assert_eq!(want.like_count, count);
                prop_assert_eq!(replayed.status(&user, &character).unwrap(), want);
                prop_assert_eq!(loaded.status(&user, &character).unwrap(), want);
            }
        }
        prop_assert_eq!(replayed.relations(), book.relations());
        prop_assert_eq!(loaded.relations(), book.relations());
    }
}
