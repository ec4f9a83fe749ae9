//! Versioned record envelope for log payloads, encoded with rkyv.
//!
//! Payload = `kind: u16 | version: u16 | reserved: u32 | rkyv bytes`. The
//! log's frame checksum has already been verified when a payload is read, so
//! decoding copies the rkyv bytes into a 16-byte-aligned buffer and then
//! accesses them *with* validation (bytecheck): a payload from an older or
//! newer build is refused with a typed error, never misread.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

use crate::error::StorageError;

pub const ENVELOPE_HEADER: usize = 8;

/// Identifies a record type and its schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordType {
    pub kind: u16,
    pub version: u16,
}

/// Encode `value` as a payload of record type `ty`.
pub fn encode<T>(ty: RecordType, value: &T) -> Result<Vec<u8>, StorageError>
where
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
{
    let body = rkyv::to_bytes::<rancor::Error>(value).map_err(|e| StorageError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(ENVELOPE_HEADER + body.len());
    out.extend_from_slice(&ty.kind.to_le_bytes());
    out.extend_from_slice(&ty.version.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The record type of a payload, without decoding its body.
pub fn peek(payload: &[u8]) -> Result<RecordType, StorageError> {
    if payload.len() < ENVELOPE_HEADER {
        return Err(StorageError::Decode(format!("payload of {} bytes has no envelope", payload.len())));
    }
    Ok(RecordType { kind: u16::from_le_bytes([payload[0], payload[1]]), version: u16::from_le_bytes([payload[2], payload[3]]) })
}

/// Decode a payload that must be of record type `ty`.
pub fn decode<T>(ty: RecordType, payload: &[u8]) -> Result<T, StorageError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>> + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let found = peek(payload)?;
    if found.kind != ty.kind {
        return Err(StorageError::WrongKind { found: found.kind, expected: ty.kind });
    }
    if found.version != ty.version {
        return Err(StorageError::UnsupportedVersion { found: found.version, expected: ty.version });
    }
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len() - ENVELOPE_HEADER);
    aligned.extend_from_slice(&payload[ENVELOPE_HEADER..]);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| StorageError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
    struct Toggle {
        user: String,
        character: String,
        liked: bool,
        count: u64,
    }

    const TY: RecordType = RecordType { kind: 7, version: 1 };

    fn sample() -> Toggle {
        Toggle { user: "u1".into(), character: "아델".into(), liked: true, count: 42 }
    }

    #[test]
    fn roundtrip() {
        let bytes = encode(TY, &sample()).unwrap();
        assert_eq!(peek(&bytes).unwrap(), TY);
        assert_eq!(decode::<Toggle>(TY, &bytes).unwrap(), sample());
    }

    #[test]
    fn wrong_version_and_kind_are_typed_errors() {
        let bytes = encode(TY, &sample()).unwrap();
        assert!(matches!(
            decode::<Toggle>(RecordType { kind: 7, version: 2 }, &bytes),
            Err(StorageError::UnsupportedVersion { found: 1, expected: 2 })
        ));
        assert!(matches!(
            decode::<Toggle>(RecordType { kind: 8, version: 1 }, &bytes),
            Err(StorageError::WrongKind { found: 7, expected: 8 })
        ));
    }

    #[test]
    fn garbage_bodies_never_panic() {
        let good = encode(TY, &sample()).unwrap();
        for cut in 0..good.len() {
            let _ = decode::<Toggle>(TY, &good[..cut]);
        }
        for i in ENVELOPE_HEADER..good.len() {
            let mut b = good.clone();
            b[i] = b[i].wrapping_add(0x5a);
            let _ = decode::<Toggle>(TY, &b);
        }
    }
}
