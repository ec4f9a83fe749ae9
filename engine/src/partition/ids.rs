//! The checked inputs of a partition: user ids, idempotency keys, the
//! operations a key can be bound to, and the like answer.
//!
//! One check each, used by every layer: the HTTP service parses a header
//! with [`IdempotencyKey::parse`] and a token subject with [`UserId::parse`];
//! the record decoder applies the same rules to what it reads.

use std::fmt;

use super::PartitionError;

/// Longest user id (the token subject), bytes.
pub const MAX_USER_BYTES: usize = 128;
/// Longest `Idempotency-Key`, bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// A user id: 1..=128 bytes of UTF-8 without control characters (so `\0`
/// can separate it from other parts of a store key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<UserId, PartitionError> {
        check_user(raw)?;
        Ok(UserId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn check_user(raw: &str) -> Result<(), PartitionError> {
    if raw.is_empty() {
        return Err(PartitionError::InvalidUser("empty"));
    }
    if raw.len() > MAX_USER_BYTES {
        return Err(PartitionError::InvalidUser("longer than 128 bytes"));
    }
    if has_control(raw) {
        return Err(PartitionError::InvalidUser("contains a control character"));
    }
    Ok(())
}

/// An `Idempotency-Key`: 1..=128 bytes of UTF-8, no control characters.
/// The one key check of the node (header, record decoder, state machine).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Check a raw header value (bytes as received).
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, PartitionError> {
        let s = std::str::from_utf8(raw).map_err(|_| PartitionError::InvalidIdempotencyKey("not valid UTF-8"))?;
        check_key(s)?;
        Ok(IdempotencyKey(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn check_key(s: &str) -> Result<(), PartitionError> {
    if s.is_empty() {
        return Err(PartitionError::InvalidIdempotencyKey("empty"));
    }
    if s.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(PartitionError::InvalidIdempotencyKey("longer than 128 bytes"));
    }
    if has_control(s) {
        return Err(PartitionError::InvalidIdempotencyKey("contains a control character"));
    }
    Ok(())
}

/// `s.chars().any(char::is_control)` on the bytes: the control characters
/// (general category Cc) are U+0000..=U+001F and U+007F..=U+009F, i.e. the
/// bytes 0x00..=0x1F and 0x7F, and 0xC2 followed by 0x80..=0x9F. (Checked
/// against the char version for every scalar value in the tests.) The
/// record decoder runs it on every field of every replayed record.
pub(crate) fn has_control(s: &str) -> bool {
    // Branch-free pass first (vectorised): nothing below 0x20, no 0x7F, no
    // 0xC2 lead byte → no control character. Else the exact pass.
    let suspect = s.as_bytes().iter().fold(false, |acc, &c| acc | (c < 0x20) | (c == 0x7f) | (c == 0xc2));
    if !suspect {
        return false;
    }
    let mut after_c2 = false;
    for &c in s.as_bytes() {
        // After 0xC2 comes a continuation byte (0x80..=0xBF): U+0080..=U+00BF.
        if c < 0x20 || c == 0x7f || (after_c2 && c <= 0x9f) {
            return true;
        }
        after_c2 = c == 0xc2;
    }
    false
}

/// The operation an idempotency key is bound to. A key identifies one
/// request: the same `(user, key)` with another operation or character is
/// refused ([`PartitionError::IdempotencyKeyReused`]).
///
/// Part of the record format (archived as its variant index): append new
/// operations at the end only, and see the versioning rules in `record`.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `POST /api/v2/characters/{name}/like`.
    LikeToggle,
}

impl Op {
    pub fn code(self) -> u8 {
        match self {
            Op::LikeToggle => 1,
        }
    }

    pub fn from_code(code: u8) -> Result<Op, PartitionError> {
        match code {
            1 => Ok(Op::LikeToggle),
            _ => Err(PartitionError::BadRecord(format!("unknown operation code {code}"))),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::LikeToggle => "a like toggle",
        })
    }
}

/// What the like API answers: `{liked, likeCount}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LikeResult {
    pub liked: bool,
    pub like_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_check() {
        assert_eq!(IdempotencyKey::parse(b"req-1").unwrap().as_str(), "req-1");
        assert_eq!(IdempotencyKey::parse("kéy-✓".as_bytes()).unwrap().as_str(), "kéy-✓");
        assert_eq!(IdempotencyKey::parse(b""), Err(PartitionError::InvalidIdempotencyKey("empty")));
        assert_eq!(IdempotencyKey::parse(&[0xff, 0xfe]), Err(PartitionError::InvalidIdempotencyKey("not valid UTF-8")));
        assert!(IdempotencyKey::parse(b"a\nb").is_err());
        assert!(IdempotencyKey::parse(b"a\0b").is_err());
        assert!(IdempotencyKey::parse(&[b'k'; 128]).is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 129]).is_err());
        assert!(PartitionError::InvalidIdempotencyKey("empty").to_string().contains("Idempotency-Key"));
    }

    #[test]
    fn one_user_check() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("김철수").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\u{0}b").is_err());
        assert!(UserId::parse(&"u".repeat(129)).is_err());
    }

    #[test]
    fn the_byte_control_check_is_the_char_one() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(has_control(&s), c.is_control(), "{c:?}");
        }
    }

    #[test]
    fn op_codes_round_trip() {
        assert_eq!(Op::from_code(Op::LikeToggle.code()).unwrap(), Op::LikeToggle);
        assert!(Op::from_code(0).is_err() && Op::from_code(2).is_err());
    }
}
