//! The partition's log record: one type for everything a partition logs,
//! one codec, versioned.
//!
//! # Wire format
//!
//! A payload is either
//! - **format 2** (written by this build): the storage envelope layout
//!   (as [`storage::envelope`]) `kind: u16 LE = "MP" | version: u16 LE = 2 |
//!   reserved: u32 = 0 | rkyv bytes of` [`Record`]. Decoding validates the
//!   rkyv bytes (bytecheck) before reading them, in place when aligned,
//!   else from a 16-byte-aligned copy (see `codec`): a damaged or foreign
//!   payload is a typed error, never a misread or a panic. (The log's CRC
//!   is checked before, by the log.)
//! - **format 1** (written by the builds before the partition state
//!   machine): `kind: u8` in 1..=4 then a hand-encoded body, decoded by
//!   [`super::v1::decode_v1`] so old logs still replay. The first byte tells
//!   them apart: format 2 starts with `'M'` (0x4D), format 1 with 1..=4.
//!
//! # Versioning rules
//!
//! rkyv has no schema evolution: the archived layout follows the Rust
//! types exactly (field order, enum variant order, field types). So the
//! types in this file are **frozen** for version 2. Any change — a new
//! variant, a new field, a reordering — is version 3: copy these types into
//! a `v2` module (kept for decoding), change the new ones, bump
//! [`RECORD_VERSION`] and map v2 records to the new type in [`Record::decode`].
//! `engine/tests/data/v2_records.bin` pins the bytes of every variant; if a
//! change breaks it, it was a format change. The format also depends on
//! rkyv's format features (little-endian, aligned, 32-bit offsets — the
//! defaults): a crate that enables `big_endian`, `unaligned` or
//! `pointer_width_*` on rkyv would change it, and that test fails.

use rkyv::{Archive, Deserialize, Serialize};
use storage::envelope::RecordType;

use super::ids::{check_key, check_user, has_control, Op};
use super::{codec, v1, PartitionError};
use crate::name::MAX_NAME_CHARS;

/// Envelope kind of a partition record: the bytes `"MP"`.
pub const RECORD_KIND: u16 = u16::from_le_bytes(*b"MP");
/// Schema version of [`Record`] (format 1 is the hand codec of older builds).
pub const RECORD_VERSION: u16 = 2;
pub const RECORD_TYPE: RecordType = RecordType { kind: RECORD_KIND, version: RECORD_VERSION };
/// Largest stored expectation (gzip bytes); a bigger one is not written behind.
pub const MAX_EXPECTATION_BYTES: usize = 1 << 20;
/// Longest ETag, bytes.
pub const MAX_ETAG_BYTES: usize = 256;
/// Longest character name in a record, bytes (32 characters of UTF-8).
pub const MAX_CHARACTER_BYTES: usize = MAX_NAME_CHARS * 4;

/// Everything a partition logs. Records carry outcomes, not deltas, so
/// applying one again (replay, a follower catching up) changes nothing.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Written by a new leader (and usable as a barrier); changes nothing.
    Noop,
    LikeToggled(LikeToggled),
    IdempotencyReserved(IdempotencyReserved),
    ExpectationWritten(ExpectationWritten),
    ExpectationEvicted(ExpectationEvicted),
    IdempotencyExpired(IdempotencyExpired),
}

/// `user` now likes (or not) `character`; the character's count after it.
/// With a key, the answer `{liked, count_after}` is the first answer of
/// `(user, key)`, stored atomically with the toggle.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LikeToggled {
    pub user: String,
    /// Normalised character name.
    pub character: String,
    pub liked: bool,
    pub count_after: u64,
    /// Leader's wall clock when the toggle was decided, ms since the epoch
    /// (0 for format-1 records written without a time).
    pub at_ms: u64,
    pub idempotency_key: Option<String>,
}

/// `(user, key)` is bound to `op` on `character`, at the user's partition.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyReserved {
    pub user: String,
    pub key: String,
    pub character: String,
    pub op: Op,
    pub at_ms: u64,
}

/// A rendered V4 response written behind (the store keeps the blob).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ExpectationWritten {
    /// Normalised character name.
    pub key: String,
    pub etag: String,
    pub calculated_at_ms: u64,
    /// gzip of the whole response.
    pub gzip: Vec<u8>,
}

/// Drop the stored expectation of `key` if it is still the one entry
/// `written_by` (or an earlier one) wrote; a newer write survives.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ExpectationEvicted {
    pub key: String,
    pub written_by: u64,
}

/// Forget the idempotency bindings made before `before_ms` (appended by
/// the leader's periodic job, so every replica forgets the same ones).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyExpired {
    pub before_ms: u64,
}

impl Record {
    /// The log payload of this record (format 2). Fails only if the record
    /// does not pass [`Record::validate`] (e.g. an oversized expectation).
    pub fn encode(&self) -> Result<Vec<u8>, PartitionError> {
        self.validate()?;
        codec::encode(RECORD_TYPE, self).map_err(PartitionError::Encode)
    }

    /// Decode a log payload of either format; the result is validated.
    pub fn decode(payload: &[u8]) -> Result<Record, PartitionError> {
        let record = match payload.first() {
            None => return Err(PartitionError::BadRecord("empty payload".into())),
            Some(1..=4) => v1::decode_v1(payload)?,
            Some(_) => codec::decode::<Record>(RECORD_TYPE, payload).map_err(PartitionError::BadRecord)?,
        };
        record.validate()?;
        Ok(record)
    }

    /// Field checks: lengths bounded, ids well formed, `liked` with a
    /// non-zero count. Names are not re-normalised: a record keeps the key
    /// it was written with, whatever later builds' normaliser says.
    pub fn validate(&self) -> Result<(), PartitionError> {
        let bad = |what: &str| Err(PartitionError::BadRecord(what.to_string()));
        match self {
            Record::Noop | Record::IdempotencyExpired(_) => Ok(()),
            Record::LikeToggled(t) => {
                check_user(&t.user)?;
                check_character(&t.character)?;
                if let Some(k) = &t.idempotency_key {
                    check_key(k)?;
                }
                if t.liked && t.count_after == 0 {
                    return bad("liked with a count of zero");
                }
                Ok(())
            }
            Record::IdempotencyReserved(r) => {
                check_user(&r.user)?;
                check_key(&r.key)?;
                check_character(&r.character)
            }
            Record::ExpectationWritten(e) => {
                check_character(&e.key)?;
                if e.etag.len() > MAX_ETAG_BYTES {
                    return bad("etag too long");
                }
                if e.gzip.is_empty() || e.gzip.len() > MAX_EXPECTATION_BYTES {
                    return bad("expectation body empty or larger than 1 MiB");
                }
                Ok(())
            }
            Record::ExpectationEvicted(e) => check_character(&e.key),
        }
    }
}

pub(crate) fn check_character(c: &str) -> Result<(), PartitionError> {
    if c.is_empty() || c.len() > MAX_CHARACTER_BYTES || has_control(c) {
        return Err(PartitionError::BadRecord(format!("character name {c:?} is empty, too long or has a control character")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        vec![
            Record::Noop,
            Record::LikeToggled(LikeToggled {
                user: "u1".into(),
                character: "아델".into(),
                liked: true,
                count_after: 3,
                at_ms: 1_700_000_000_000,
                idempotency_key: Some("k1".into()),
            }),
            Record::IdempotencyReserved(IdempotencyReserved {
                user: "u1".into(),
                key: "k".into(),
                character: "hero".into(),
                op: Op::LikeToggle,
                at_ms: 5,
            }),
            Record::ExpectationWritten(ExpectationWritten {
                key: "hero".into(),
                etag: "\"e\"".into(),
                calculated_at_ms: 9,
                gzip: vec![1, 2, 3],
            }),
            Record::ExpectationEvicted(ExpectationEvicted { key: "hero".into(), written_by: 7 }),
            Record::IdempotencyExpired(IdempotencyExpired { before_ms: 11 }),
        ]
    }

    #[test]
    fn every_kind_round_trips_and_starts_with_the_format_2_tag() {
        for r in samples() {
            let b = r.encode().unwrap();
            assert_eq!(&b[..4], b"MP\x02\x00", "{r:?}");
            assert_eq!(Record::decode(&b).unwrap(), r);
        }
    }

    #[test]
    fn damaged_payloads_are_typed_errors() {
        for r in samples() {
            let good = r.encode().unwrap();
            for cut in 0..good.len() {
                assert!(Record::decode(&good[..cut]).is_err(), "{r:?} cut at {cut}");
            }
            for i in 0..good.len() {
                let mut b = good.clone();
                b[i] ^= 0x5a;
                // Either refused or a valid record: never a panic.
                let _ = Record::decode(&b);
            }
            let mut v3 = good.clone();
            v3[2] = 3;
            assert!(Record::decode(&v3).is_err());
        }
        assert!(Record::decode(&[]).is_err());
        assert!(Record::decode(&[0]).is_err());
        assert!(Record::decode(&[9, 9, 9]).is_err());
    }

    #[test]
    fn invalid_records_are_refused_both_ways() {
        let liked_zero = Record::LikeToggled(LikeToggled {
            user: "u".into(),
            character: "c".into(),
            liked: true,
            count_after: 0,
            at_ms: 0,
            idempotency_key: None,
        });
        assert!(liked_zero.encode().is_err());
        let big = Record::ExpectationWritten(ExpectationWritten {
            key: "c".into(),
            etag: String::new(),
            calculated_at_ms: 0,
            gzip: vec![0; MAX_EXPECTATION_BYTES + 1],
        });
        assert!(big.encode().is_err());
        let bad_key = Record::LikeToggled(LikeToggled {
            user: "u".into(),
            character: "c".into(),
            liked: false,
            count_after: 0,
            at_ms: 0,
            idempotency_key: Some(String::new()),
        });
        assert!(bad_key.encode().is_err());
        // Decoding a record that fails validation (encoded around `encode`'s check) is refused too.
        let raw = codec::encode(RECORD_TYPE, &liked_zero).unwrap();
        assert!(Record::decode(&raw).is_err());
    }
}
