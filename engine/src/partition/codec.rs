//! The one codec of the partition's records and store rows: the storage
//! envelope layout (`kind: u16 LE | version: u16 LE | reserved: u32 = 0`)
//! followed by rkyv bytes, validated (bytecheck) before use.
//!
//! Byte-identical to `storage::envelope`, with two savings on the hot path
//! (measured in `benches/partition_apply.rs`): encoding serialises straight
//! behind the header into the output (one buffer, no second copy), and
//! decoding reads the rkyv bytes in place when they sit 8-byte aligned in
//! memory (a log payload from the allocator does: the 8-byte header keeps
//! the body's alignment), copying into a 16-byte-aligned buffer only
//! otherwise. Validation checks every pointer's address alignment, so a
//! misaligned body is an error (then retried from an aligned copy), never
//! undefined behaviour.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use storage::envelope::RecordType;

pub(crate) const HEADER: usize = 8;
/// The largest alignment of any archived type of ours (u64 fields). The
/// body starts at offset 8, so serialising behind the header pads exactly
/// as serialising alone would, and the bytes are position independent.
const BODY_ALIGN: usize = 8;

/// Serialise `value` behind the envelope header of `ty`.
pub(crate) fn encode<T>(ty: RecordType, value: &T) -> Result<Vec<u8>, String>
where
    T: for<'a> rkyv::Serialize<HighSerializer<Vec<u8>, ArenaHandle<'a>, rancor::Error>>,
{
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&ty.kind.to_le_bytes());
    out.extend_from_slice(&ty.version.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, out).map_err(|e| e.to_string())
}

/// The envelope type of `payload`, if it has a header.
pub(crate) fn peek(payload: &[u8]) -> Option<RecordType> {
    (payload.len() >= HEADER)
        .then(|| RecordType { kind: u16::from_le_bytes([payload[0], payload[1]]), version: u16::from_le_bytes([payload[2], payload[3]]) })
}

/// Check the header against `ty`, validate the body and deserialise it.
pub(crate) fn decode<T>(ty: RecordType, payload: &[u8]) -> Result<T, String>
where
    T: rkyv::Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>> + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
    let found = peek(payload).ok_or_else(|| format!("payload of {} bytes has no envelope", payload.len()))?;
    if found.kind != ty.kind {
        return Err(format!("kind {:#06x}, expected {:#06x}", found.kind, ty.kind));
    }
    if found.version != ty.version {
        return Err(format!("version {}, expected {}", found.version, ty.version));
    }
    if payload[4..HEADER] != [0u8; 4] {
        return Err("reserved header bytes are not zero".into());
    }
    let body = &payload[HEADER..];
    if (body.as_ptr() as usize).is_multiple_of(BODY_ALIGN) {
        if let Ok(v) = rkyv::from_bytes::<T, rancor::Error>(body) {
            return Ok(v);
        }
    }
    let mut aligned = AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::record::{ArchivedRecord, Record, RECORD_TYPE};
    use crate::partition::rows::{ArchivedKeyRow, ArchivedMetaRow};

    #[test]
    fn archived_types_need_at_most_8_byte_alignment() {
        assert!(std::mem::align_of::<ArchivedRecord>() <= BODY_ALIGN);
        assert!(std::mem::align_of::<ArchivedKeyRow>() <= BODY_ALIGN);
        assert!(std::mem::align_of::<ArchivedMetaRow>() <= BODY_ALIGN);
    }

    #[test]
    fn same_bytes_as_the_storage_envelope_and_any_alignment_decodes() {
        let r = Record::ExpectationEvicted(crate::partition::ExpectationEvicted { key: "hero".into(), written_by: 7 });
        let ours = encode(RECORD_TYPE, &r).unwrap();
        assert_eq!(ours, storage::envelope::encode(RECORD_TYPE, &r).unwrap());
        // Shift the payload through every offset of a buffer: misaligned
        // bodies take the copy, aligned ones are read in place.
        let mut buf = vec![0u8; ours.len() + 16];
        for shift in 0..16 {
            buf[shift..shift + ours.len()].copy_from_slice(&ours);
            assert_eq!(decode::<Record>(RECORD_TYPE, &buf[shift..shift + ours.len()]).unwrap(), r, "shift {shift}");
        }
        let mut bad = ours.clone();
        bad[5] = 1;
        assert!(decode::<Record>(RECORD_TYPE, &bad).is_err(), "reserved bytes");
    }
}
