//! Format 1: the hand-encoded payloads written by the builds before the
//! partition state machine (`ops/src/node/durable.rs` and
//! `engine/src/likes/record.rs` at that time), read so their logs replay.
//! Nothing writes them any more.
//!
//! Payload = `kind: u8 | body`, little endian:
//! - 1 `LIKE` (oldest builds): a like body;
//! - 3 `LIKE_AT`: `at_ms: u64 | like body`;
//! - 2 `EXPECTATION`: `key_len: u16 | key | etag_len: u16 | etag |
//!   calculated_at_ms: u64 | 4 × (len: u32 | gzip)` (the whole response,
//!   then presets 1..=3, length 0 = absent; the presets are dropped: the
//!   node cuts them out of the whole response);
//! - 4 `EVICT_EXPECTATION`: `written_by: u64 | key (rest, utf-8)`.
//!
//! Like body = `version: u8 = 1 | liked: u8 | count_after: u64 | user |
//! character | idempotency key`, each string `len: u16 | utf-8` (≤ 256
//! bytes; an absent key has length 0).
//!
//! Mapping to [`Record`]: `LIKE` keeps no key (format 1 wrote no answer
//! for it either: without a time it could never expire) and gets `at_ms` 0.

use super::record::{ExpectationEvicted, ExpectationWritten, LikeToggled, Record};
use super::PartitionError;

pub const KIND_LIKE: u8 = 1;
pub const KIND_EXPECTATION: u8 = 2;
pub const KIND_LIKE_AT: u8 = 3;
pub const KIND_EVICT_EXPECTATION: u8 = 4;
const LIKE_BODY_VERSION: u8 = 1;
const MAX_LIKE_FIELD: usize = 256;

fn bad(what: &str) -> PartitionError {
    PartitionError::BadRecord(format!("format 1 record: {what}"))
}

/// Bounds-checked reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PartitionError> {
        if self.0.len() < n {
            return Err(bad("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, PartitionError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PartitionError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PartitionError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, PartitionError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, len: usize) -> Result<String, PartitionError> {
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| bad("not utf-8"))
    }

    fn end(&self) -> Result<(), PartitionError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("trailing bytes"))
        }
    }
}

/// Decode a format-1 payload (first byte 1..=4). Checks exactly what the
/// format-1 decoders checked; [`Record::decode`] validates the result.
pub fn decode_v1(payload: &[u8]) -> Result<Record, PartitionError> {
    let (&kind, body) = payload.split_first().ok_or_else(|| bad("empty payload"))?;
    let mut r = Reader(body);
    match kind {
        KIND_LIKE => like_body(&mut r, None),
        KIND_LIKE_AT => {
            let at = r.u64()?;
            like_body(&mut r, Some(at))
        }
        KIND_EXPECTATION => expectation_body(body).map(Record::ExpectationWritten),
        KIND_EVICT_EXPECTATION => {
            if body.len() <= 8 {
                return Err(bad("evict record truncated"));
            }
            let written_by = r.u64()?;
            let key = r.string(r.0.len())?;
            Ok(Record::ExpectationEvicted(ExpectationEvicted { key, written_by }))
        }
        k => Err(bad(&format!("unknown kind {k}"))),
    }
}

fn like_body(r: &mut Reader<'_>, at_ms: Option<u64>) -> Result<Record, PartitionError> {
    if r.u8()? != LIKE_BODY_VERSION {
        return Err(bad("unsupported like version"));
    }
    let liked = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(bad("bad liked flag")),
    };
    let count_after = r.u64()?;
    let mut field = || -> Result<String, PartitionError> {
        let len = r.u16()? as usize;
        if len > MAX_LIKE_FIELD {
            return Err(bad("field too long"));
        }
        r.string(len)
    };
    let user = field()?;
    let character = field()?;
    let key = field()?;
    r.end()?;
    if user.is_empty() || character.is_empty() {
        return Err(bad("empty user or character"));
    }
    if count_after < liked as u64 {
        return Err(bad("liked with a count of zero"));
    }
    Ok(Record::LikeToggled(LikeToggled {
        user,
        character,
        liked,
        count_after,
        at_ms: at_ms.unwrap_or(0),
        idempotency_key: at_ms.and((!key.is_empty()).then_some(key)),
    }))
}

/// The body of a format-1 `EXPECTATION` payload (without the kind byte) —
/// also the value format-1 stores kept under `exp/{key}`.
pub fn expectation_body(body: &[u8]) -> Result<ExpectationWritten, PartitionError> {
    let mut r = Reader(body);
    let len = r.u16()? as usize;
    let key = r.string(len)?;
    let len = r.u16()? as usize;
    let etag = r.string(len)?;
    let calculated_at_ms = r.u64()?;
    let mut gzip = None;
    for i in 0..4 {
        let len = r.u32()? as usize;
        let blob = r.take(len)?;
        if i == 0 {
            gzip = Some(blob.to_vec());
        }
    }
    r.end()?;
    let gzip = gzip.filter(|g| !g.is_empty()).ok_or_else(|| bad("empty document"))?;
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    Ok(ExpectationWritten { key, etag, calculated_at_ms, gzip })
}
