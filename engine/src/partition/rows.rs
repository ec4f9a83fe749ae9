//! The state-store image of a partition: its row keys and values.
//!
//! One store tree per partition (no partition prefix in the keys). Every
//! row is written by applying a log entry and keeps that entry's index
//! (`storage::KvWrite` rule). Rows:
//! - `like/u/{character}\0{user}` = empty, present iff liked (same as
//!   format 1). Counts are not stored: a count is the number of relations,
//!   which a restore rebuilds;
//! - `idk/{user}\0{key}` = [`KeyRow`]: an idempotency binding (character,
//!   operation, time) and, once the toggle is applied, its first answer;
//! - `expm/{key}` = [`MetaRow`]: a stored expectation's age and size (small,
//!   so a restore and the eviction never read the large row);
//! - `exp/{key}` = the stored expectation ([`ExpectationWritten`] archived).
//!
//! Values use the same codec as the records (storage envelope + rkyv, one
//! kind per row type, version 2; see `codec`). Format-1 stores hold the same relation
//! rows, `expm/` rows of 8 bytes (`calculated_at_ms` LE) and `exp/` rows in
//! the format-1 expectation body; both are still read. Their `idem/` rows
//! are not: they lack the character a key is bound to (see the module doc).

use rkyv::{Archive, Deserialize, Serialize};
use storage::envelope::RecordType;

use super::ids::{LikeResult, Op};
use super::record::{ExpectationWritten, RECORD_VERSION};
use super::{codec, v1, PartitionError};

pub const RELATION_PREFIX: &[u8] = b"like/u/";
pub const KEY_PREFIX: &[u8] = b"idk/";
pub const EXPECTATION_PREFIX: &[u8] = b"exp/";
pub const EXPECTATION_META_PREFIX: &[u8] = b"expm/";
/// The prefixes a restore reads (everything but the expectation bodies).
pub const RESTORE_PREFIXES: [&[u8]; 3] = [RELATION_PREFIX, KEY_PREFIX, EXPECTATION_META_PREFIX];

const KEY_ROW: RecordType = RecordType { kind: u16::from_le_bytes(*b"MK"), version: RECORD_VERSION };
const META_ROW: RecordType = RecordType { kind: u16::from_le_bytes(*b"MM"), version: RECORD_VERSION };
const EXPECTATION_ROW: RecordType = RecordType { kind: u16::from_le_bytes(*b"MX"), version: RECORD_VERSION };

/// Value of an `idk/` row.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub character: String,
    pub op: Op,
    pub at_ms: u64,
    /// `(liked, like_count)` of the first answer, once the toggle is applied.
    pub answer: Option<(bool, u64)>,
}

/// Value of an `expm/` row.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaRow {
    pub calculated_at_ms: u64,
    /// gzip bytes of the stored body.
    pub size: u64,
}

/// One row of a partition's store image: key, the index of the entry that
/// wrote it, value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub key: Vec<u8>,
    pub index: u64,
    pub value: Vec<u8>,
}

/// A stored expectation as read back for serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredExpectation {
    pub etag: String,
    pub calculated_at_ms: u64,
    /// gzip of the whole response.
    pub gzip: Vec<u8>,
}

pub fn relation_key(character: &str, user: &str) -> Vec<u8> {
    [RELATION_PREFIX, character.as_bytes(), b"\0", user.as_bytes()].concat()
}

pub fn key_row_key(user: &str, key: &str) -> Vec<u8> {
    [KEY_PREFIX, user.as_bytes(), b"\0", key.as_bytes()].concat()
}

pub fn expectation_key(key: &str) -> Vec<u8> {
    [EXPECTATION_PREFIX, key.as_bytes()].concat()
}

pub fn expectation_meta_key(key: &str) -> Vec<u8> {
    [EXPECTATION_META_PREFIX, key.as_bytes()].concat()
}

fn encode<T>(ty: RecordType, value: &T) -> Result<Vec<u8>, PartitionError>
where
    T: for<'a> rkyv::Serialize<rkyv::api::high::HighSerializer<Vec<u8>, rkyv::ser::allocator::ArenaHandle<'a>, rkyv::rancor::Error>>,
{
    codec::encode(ty, value).map_err(PartitionError::Encode)
}

pub(crate) fn encode_key_row(row: &KeyRow) -> Result<Vec<u8>, PartitionError> {
    encode(KEY_ROW, row)
}

pub(crate) fn encode_meta_row(row: &MetaRow) -> Result<Vec<u8>, PartitionError> {
    encode(META_ROW, row)
}

pub(crate) fn encode_expectation_row(e: &ExpectationWritten) -> Result<Vec<u8>, PartitionError> {
    encode(EXPECTATION_ROW, e)
}

fn row_error(what: &str, e: impl std::fmt::Display) -> PartitionError {
    PartitionError::BadRow(format!("{what}: {e}"))
}

pub fn decode_key_row(value: &[u8]) -> Result<KeyRow, PartitionError> {
    codec::decode::<KeyRow>(KEY_ROW, value).map_err(|e| row_error("idempotency row", e))
}

/// An `expm/` value: format 2, or format 1's bare `calculated_at_ms`
/// (size unknown: 0).
pub(crate) fn decode_meta_row(value: &[u8]) -> Result<MetaRow, PartitionError> {
    if let Ok(v1) = <[u8; 8]>::try_from(value) {
        return Ok(MetaRow { calculated_at_ms: u64::from_le_bytes(v1), size: 0 });
    }
    codec::decode::<MetaRow>(META_ROW, value).map_err(|e| row_error("expectation age row", e))
}

/// Read an `exp/{key}` value (format 2, or a format-1 store's row).
pub fn decode_expectation_row(value: &[u8]) -> Result<StoredExpectation, PartitionError> {
    let e = match codec::peek(value) {
        Some(ty) if ty.kind == EXPECTATION_ROW.kind => {
            codec::decode::<ExpectationWritten>(EXPECTATION_ROW, value).map_err(|e| row_error("expectation row", e))?
        }
        _ => v1::expectation_body(value)?,
    };
    Ok(StoredExpectation { etag: e.etag, calculated_at_ms: e.calculated_at_ms, gzip: e.gzip })
}

/// Split `{a}\0{b}` (after the prefix) into two non-empty UTF-8 strings.
pub(crate) fn split_pair<'a>(rest: &'a [u8], what: &str) -> Result<(&'a str, &'a str), PartitionError> {
    let sep = rest.iter().position(|&b| b == 0).ok_or_else(|| row_error(what, "no separator"))?;
    let a = std::str::from_utf8(&rest[..sep]).map_err(|e| row_error(what, e))?;
    let b = std::str::from_utf8(&rest[sep + 1..]).map_err(|e| row_error(what, e))?;
    if a.is_empty() || b.is_empty() {
        return Err(row_error(what, "empty part"));
    }
    Ok((a, b))
}

impl KeyRow {
    pub fn answer(&self) -> Option<LikeResult> {
        self.answer.map(|(liked, like_count)| LikeResult { liked, like_count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_refuse_each_other() {
        let k = KeyRow { character: "hero".into(), op: Op::LikeToggle, at_ms: 5, answer: Some((true, 2)) };
        let kb = encode_key_row(&k).unwrap();
        assert_eq!(decode_key_row(&kb).unwrap(), k);
        let m = MetaRow { calculated_at_ms: 9, size: 100 };
        let mb = encode_meta_row(&m).unwrap();
        assert_eq!(decode_meta_row(&mb).unwrap(), m);
        assert!(decode_key_row(&mb).is_err(), "a meta row is not a key row");
        assert!(decode_meta_row(&kb).is_err());
        assert_eq!(decode_meta_row(&42u64.to_le_bytes()).unwrap(), MetaRow { calculated_at_ms: 42, size: 0 }, "format 1");
        let e = ExpectationWritten { key: "hero".into(), etag: "\"x\"".into(), calculated_at_ms: 3, gzip: vec![7; 10] };
        let eb = encode_expectation_row(&e).unwrap();
        let back = decode_expectation_row(&eb).unwrap();
        assert_eq!((back.etag.as_str(), back.calculated_at_ms, back.gzip.as_slice()), ("\"x\"", 3, &[7u8; 10][..]));
        for cut in 0..eb.len() {
            assert!(decode_expectation_row(&eb[..cut]).is_err());
        }
        assert!(split_pair(b"a\0b", "t").is_ok());
        assert!(split_pair(b"ab", "t").is_err() && split_pair(b"\0b", "t").is_err() && split_pair(b"a\0\xff", "t").is_err());
    }
}
