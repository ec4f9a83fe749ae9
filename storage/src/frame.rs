//! On-disk framing of format-1 log records and segment headers (read by
//! `v1`, the migration's reader; nothing writes format 1 any more).
//!
//! Record: `len: u32 | crc32: u32 | index: u64 | term: u64 | payload[len]`,
//! little endian. The checksum covers `len`, `index`, `term` and the payload,
//! so a torn header, a torn payload and a flipped bit are all caught.
//! Segment files are pre-allocated with zeros; an all-zero header marks the
//! clean end of the written part.

use crate::Entry;

pub const FRAME_HEADER: usize = 24;
pub const SEGMENT_HEADER: usize = 32;
pub const SEGMENT_MAGIC: &[u8; 8] = b"MAPLWAL\0";
pub const SEGMENT_VERSION: u32 = 1;

fn frame_crc(len: u32, index: u64, term: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&index.to_le_bytes());
    h.update(&term.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Size of the frame of an entry with `payload_len` bytes of payload.
#[cfg(test)]
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER + payload_len
}

/// Append the frame of `entry` to `out`.
#[cfg(test)]
pub fn encode_frame(entry: &Entry, out: &mut Vec<u8>) {
    let len = u32::try_from(entry.payload.len()).expect("payload length checked by append");
    let crc = frame_crc(len, entry.index, entry.term, &entry.payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&entry.index.to_le_bytes());
    out.extend_from_slice(&entry.term.to_le_bytes());
    out.extend_from_slice(&entry.payload);
}

/// What the bytes at one position of a segment hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole record of `frame_len` bytes.
    Record { entry: Entry, frame_len: usize },
    /// All-zero header: nothing was ever written here.
    End,
    /// Not a valid record: torn write, flipped bit or stale bytes.
    Invalid(&'static str),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Decode the record at the start of `buf`. `expected_index` is the index the
/// record must carry (indices are dense inside a log); `max_payload` bounds
/// the length field so a corrupt length cannot make us allocate gigabytes.
pub fn decode_frame(buf: &[u8], expected_index: u64, max_payload: usize) -> Decoded {
    if buf.len() < FRAME_HEADER {
        return if buf.iter().all(|&b| b == 0) { Decoded::End } else { Decoded::Invalid("truncated header") };
    }
    let header = &buf[..FRAME_HEADER];
    if header.iter().all(|&b| b == 0) {
        return Decoded::End;
    }
    let len = u32_at(header, 0);
    let crc = u32_at(header, 4);
    let index = u64_at(header, 8);
    let term = u64_at(header, 16);
    let len_usize = len as usize;
    if len_usize > max_payload || len_usize > buf.len() - FRAME_HEADER {
        return Decoded::Invalid("length out of bounds");
    }
    let payload = &buf[FRAME_HEADER..FRAME_HEADER + len_usize];
    if frame_crc(len, index, term, payload) != crc {
        return Decoded::Invalid("checksum mismatch");
    }
    if index != expected_index {
        return Decoded::Invalid("index out of sequence");
    }
    Decoded::Record { entry: Entry { term, index, payload: payload.to_vec() }, frame_len: FRAME_HEADER + len_usize }
}

/// Header written at offset 0 of every segment.
#[cfg(test)]
pub fn encode_segment_header(base_index: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&base_index.to_le_bytes());
    let crc = crc32fast::hash(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The base index of a segment header, or why it is not one.
pub fn decode_segment_header(h: &[u8]) -> Result<u64, &'static str> {
    if h.len() < SEGMENT_HEADER {
        return Err("short segment header");
    }
    if &h[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic");
    }
    if crc32fast::hash(&h[0..24]) != u32_at(h, 24) {
        return Err("segment header checksum mismatch");
    }
    if u32_at(h, 8) != SEGMENT_VERSION {
        return Err("unsupported segment version");
    }
    Ok(u64_at(h, 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64, payload: &[u8]) -> Entry {
        Entry { term, index, payload: payload.to_vec() }
    }

    #[test]
    fn roundtrip_and_every_bit_flip_is_caught() {
        let entry = e(7, 3, b"hello world");
        let mut buf = Vec::new();
        encode_frame(&entry, &mut buf);
        assert_eq!(buf.len(), frame_len(11));
        assert_eq!(decode_frame(&buf, 7, 1 << 20), Decoded::Record { entry: entry.clone(), frame_len: buf.len() });
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(!matches!(decode_frame(&b, 7, 1 << 20), Decoded::Record { .. }), "bit {bit} flip accepted");
        }
    }

    #[test]
    fn empty_payload_is_a_record_not_the_end() {
        let mut buf = Vec::new();
        encode_frame(&e(1, 0, b""), &mut buf);
        assert!(matches!(decode_frame(&buf, 1, 16), Decoded::Record { frame_len: 24, .. }));
        assert_eq!(decode_frame(&[0u8; 64], 1, 16), Decoded::End);
    }

    #[test]
    fn wrong_index_and_huge_length_are_invalid() {
        let mut buf = Vec::new();
        encode_frame(&e(5, 1, b"abc"), &mut buf);
        assert_eq!(decode_frame(&buf, 6, 16), Decoded::Invalid("index out of sequence"));
        assert_eq!(decode_frame(&buf, 5, 2), Decoded::Invalid("length out of bounds"));
        assert_eq!(decode_frame(&buf[..buf.len() - 1], 5, 16), Decoded::Invalid("length out of bounds"));
    }

    #[test]
    fn segment_header_roundtrip() {
        let h = encode_segment_header(42);
        assert_eq!(decode_segment_header(&h), Ok(42));
        let mut bad = h;
        bad[17] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
    }
}
