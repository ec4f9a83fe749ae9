//! The record codec: format-1 payloads written by the builds before the
//! partition state machine still decode (byte fixtures from a real log),
//! format 2 is pinned by a golden file, and both round-trip.
mod partition_support;

use engine::partition::{
    v1, ExpectationEvicted, ExpectationWritten, IdempotencyExpired, IdempotencyReserved, LikeToggled, Op, Record, RECORD_VERSION,
};
use partition_support::*;
use proptest::prelude::*;

fn like(user: &str, character: &str, liked: bool, count_after: u64, at_ms: u64, key: Option<&str>) -> LikeToggled {
    LikeToggled { user: user.into(), character: character.into(), liked, count_after, at_ms, idempotency_key: key.map(str::to_string) }
}

/// `v1_payloads.bin`: every entry of the log a `--cores 1` node of the
/// previous build wrote (see tests/data/README.md for the session).
#[test]
fn a_log_written_by_the_previous_build_decodes() {
    let entries = read_payloads("v1_payloads.bin");
    assert_eq!(entries.len(), 12);
    let decoded: Vec<Record> = entries.iter().map(|(_, p)| Record::decode(p).unwrap()).collect();
    let toggles: Vec<(&str, &str, bool, u64, Option<&str>)> = decoded
        .iter()
        .filter_map(|r| match r {
            Record::LikeToggled(t) => {
                assert!(t.at_ms > 1_700_000_000_000, "format-1 LIKE_AT carries the wall clock");
                Some((t.user.as_str(), t.character.as_str(), t.liked, t.count_after, t.idempotency_key.as_deref()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        toggles,
        [
            ("alice", "hero", true, 1, None),
            ("bob", "hero", true, 2, None),
            ("alice", "아델", true, 1, Some("req-1")),
            ("김철수", "hero", true, 3, Some("k%C3%A9y-%E2%9C%93")),
            ("bob", "hero", false, 2, None),
            ("김철수", "아델", true, 2, Some("a-much-longer-idempotency-key-0123456789abcdef")),
            ("김철수", "maplehero", true, 1, Some("kéy-✓")),
        ]
    );
    let written: Vec<(u64, &str)> = entries
        .iter()
        .zip(&decoded)
        .filter_map(|((index, _), r)| match r {
            Record::ExpectationWritten(e) => {
                assert!(e.etag.starts_with('"') && e.gzip.starts_with(&[0x1f, 0x8b]), "an ETag and a gzip body");
                Some((*index, e.key.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(written, [(7, "hero"), (8, "아델"), (9, "maplehero")]);
    assert_eq!(
        &decoded[10..],
        [
            Record::ExpectationEvicted(ExpectationEvicted { key: "hero".into(), written_by: 7 }),
            Record::ExpectationEvicted(ExpectationEvicted { key: "아델".into(), written_by: 8 }),
        ]
    );
}

/// The format-1 encoders of the tests (used by the property test below)
/// reproduce the fixture bytes exactly, so they are the real format.
#[test]
fn the_test_encoders_reproduce_the_fixture_bytes() {
    for (index, payload) in read_payloads("v1_payloads.bin") {
        let again = match Record::decode(&payload).unwrap() {
            Record::LikeToggled(t) => v1_like_at(
                &V1Like {
                    user: t.user,
                    character: t.character,
                    liked: t.liked,
                    count_after: t.count_after,
                    idempotency_key: t.idempotency_key,
                },
                t.at_ms,
            ),
            Record::ExpectationWritten(e) => v1_expectation(&e.key, &e.etag, e.calculated_at_ms, &e.gzip, [&[], &[], &[]]),
            Record::ExpectationEvicted(e) => v1_evict(&e.key, e.written_by),
            other => panic!("entry {index}: format 1 has no {other:?}"),
        };
        assert_eq!(again, payload, "entry {index}");
    }
}

/// Kind 1 (`LIKE`, no time) was written by older builds: its key is
/// dropped (format 1 never kept an answer for it) and its time is 0.
#[test]
fn kind_1_likes_of_older_builds_decode() {
    let decoded: Vec<Record> = read_payloads("v1_kind1_payloads.bin").iter().map(|(_, p)| Record::decode(p).unwrap()).collect();
    assert_eq!(
        decoded,
        [
            Record::LikeToggled(like("alice", "hero", true, 1, 0, None)),
            Record::LikeToggled(like("bob", "아델", true, 1, 0, None)),
            Record::LikeToggled(like("alice", "hero", false, 0, 0, None)),
        ]
    );
}

#[test]
fn damaged_format_1_payloads_are_typed_errors() {
    for (_, payload) in read_payloads("v1_payloads.bin").iter().chain(read_payloads("v1_kind1_payloads.bin").iter()) {
        // Kind 4's key is "the rest of the payload": a shorter key is
        // still a record, so only its fixed part is checked.
        let fixed = if payload[0] == 4 { 10 } else { payload.len().min(200) };
        for cut in 1..fixed {
            assert!(Record::decode(&payload[..cut]).is_err(), "cut {cut} of kind {}", payload[0]);
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(Record::decode(&longer).is_err() || payload[0] == 4, "trailing bytes (kind 4's key is the rest)");
    }
    // A like body of an unknown version, a bad flag, liked with count 0.
    let mut p = v1_like(&V1Like { user: "u".into(), character: "c".into(), liked: true, count_after: 1, idempotency_key: None });
    p[1] = 2;
    assert!(Record::decode(&p).is_err());
    p[1] = 1;
    p[2] = 7;
    assert!(Record::decode(&p).is_err());
    assert!(v1::decode_v1(&[5, 0, 0]).is_err());
}

/// One record of every kind, as format 2. `v2_records.bin` pins their
/// bytes: a change of the types or of rkyv's format features breaks this
/// test (then it is a new record version, see `partition::record`).
fn golden_records() -> Vec<Record> {
    vec![
        Record::Noop,
        Record::LikeToggled(like("alice", "hero", true, 1, 1_733_300_000_000, None)),
        Record::LikeToggled(like("김철수", "아델", false, 41, 1_733_300_000_001, Some("kéy-✓"))),
        Record::IdempotencyReserved(IdempotencyReserved {
            user: "김철수".into(),
            key: "a-much-longer-idempotency-key-0123456789abcdef".into(),
            character: "maplehero".into(),
            op: Op::LikeToggle,
            at_ms: 1_733_300_000_002,
        }),
        Record::ExpectationWritten(ExpectationWritten {
            key: "아델".into(),
            etag: "\"5f3a\"".into(),
            calculated_at_ms: 1_733_300_000_003,
            gzip: vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        }),
        Record::ExpectationEvicted(ExpectationEvicted { key: "hero".into(), written_by: 7 }),
        Record::IdempotencyExpired(IdempotencyExpired { before_ms: 1_733_213_600_000 }),
    ]
}

#[test]
fn format_2_bytes_are_pinned() {
    let encoded: Vec<(u64, Vec<u8>)> = golden_records().iter().enumerate().map(|(i, r)| (i as u64 + 1, r.encode().unwrap())).collect();
    let path = data_dir().join("v2_records.bin");
    if std::env::var_os("MAPLE_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, write_payloads(&encoded)).unwrap();
    }
    let pinned = read_payloads("v2_records.bin");
    assert_eq!(pinned, encoded, "format-2 bytes changed: that is a new record version (see partition::record)");
    for ((_, p), r) in pinned.iter().zip(golden_records()) {
        assert_eq!(Record::decode(p).unwrap(), r);
        assert_eq!(u16::from_le_bytes([p[2], p[3]]), RECORD_VERSION);
    }
}

fn v1_like_record() -> impl Strategy<Value = (V1Like, u64)> {
    let text = "[a-zA-Z0-9가-힣_.-]{1,12}";
    (text, text, any::<bool>(), 0u64..1 << 40, prop::option::of("[ -~]{1,128}"), any::<u64>()).prop_map(
        |(user, character, liked, count, key, at)| {
            (V1Like { user, character, liked, count_after: count + liked as u64, idempotency_key: key }, at)
        },
    )
}

proptest! {
    /// Format-1 like records (kinds 1 and 3) decode to the same toggle.
    #[test]
    fn v1_likes_round_trip((r, at) in v1_like_record(), with_time in any::<bool>()) {
        let payload = if with_time { v1_like_at(&r, at) } else { v1_like(&r) };
        let want = LikeToggled {
            user: r.user.clone(),
            character: r.character.clone(),
            liked: r.liked,
            count_after: r.count_after,
            at_ms: if with_time { at } else { 0 },
            idempotency_key: if with_time { r.idempotency_key.clone() } else { None },
        };
        prop_assert_eq!(Record::decode(&payload).unwrap(), Record::LikeToggled(want.clone()));
        // And format 2 carries the same record.
        prop_assert_eq!(Record::decode(&Record::LikeToggled(want.clone()).encode().unwrap()).unwrap(), Record::LikeToggled(want));
    }

    /// Format-1 expectation and evict records decode (presets dropped).
    #[test]
    fn v1_expectations_round_trip(
        key in "[a-z가-힣]{1,12}",
        etag in "[ -~]{0,40}",
        at in any::<u64>(),
        gzip in prop::collection::vec(any::<u8>(), 1..300),
        presets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 3),
        written_by in any::<u64>(),
    ) {
        let p = v1_expectation(&key, &etag, at, &gzip, [&presets[0], &presets[1], &presets[2]]);
        let want = ExpectationWritten { key: key.clone(), etag, calculated_at_ms: at, gzip };
        prop_assert_eq!(Record::decode(&p).unwrap(), Record::ExpectationWritten(want));
        prop_assert_eq!(Record::decode(&v1_evict(&key, written_by)).unwrap(), Record::ExpectationEvicted(ExpectationEvicted { key, written_by }));
    }

    /// Format 2: every generated record round-trips; any byte flip is
    /// refused or decodes to a valid record (bytecheck), never a panic.
    #[test]
    fn v2_round_trips_and_survives_flips(r in any_record(), flip in any::<prop::sample::Index>(), xor in 1u8..) {
        let b = r.encode().unwrap();
        prop_assert_eq!(Record::decode(&b).unwrap(), r);
        let mut bad = b.clone();
        let i = flip.index(bad.len());
        bad[i] ^= xor;
        if let Ok(other) = Record::decode(&bad) {
            prop_assert!(other.validate().is_ok());
        }
    }
}
