//! An immutable stored document: JSON, its gzip form, and a strong ETag.
//!
//! Compression happens once, when a document is stored; requests with
//! `Accept-Encoding: gzip` get the stored bytes as they are.

use std::io::{Read, Write};
use std::sync::Arc;

use super::lru::Weigh;

/// Cheap to clone (reference counted) and `Send`, so the owner core can hand
/// it to another core over a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub json: Arc<[u8]>,
    pub gzip: Arc<[u8]>,
    /// Quoted strong validator, e.g. `"5e1c0f3a9b2d4c61-35812"`.
    pub etag: Arc<str>,
}

impl Doc {
    /// Stores `json`, compressing it once.
    pub fn from_json(json: Vec<u8>) -> Doc {
        let gz = gzip(&json);
        let etag = format!("\"{:016x}-{:x}\"", etag_hash64(&json), json.len());
        Doc { json: json.into(), gzip: gz.into(), etag: etag.into() }
    }

    /// Stores only the gzip form (about 8x smaller for Nexon JSON); the
    /// JSON is recovered with [`Doc::plain`] when a client cannot take gzip.
    pub fn gzip_only(json: &[u8]) -> Doc {
        let etag = format!("\"{:016x}-{:x}\"", etag_hash64(json), json.len());
        Doc { json: Arc::from(&[][..]), gzip: gzip(json).into(), etag: etag.into() }
    }

    pub fn is_gzip_only(&self) -> bool {
        self.json.is_empty() && !self.gzip.is_empty()
    }

    /// The JSON bytes: stored, or decompressed from a gzip-only document
    /// (at most `max_len` bytes; `None` if that is exceeded or corrupt).
    pub fn plain(&self, max_len: usize) -> Option<std::borrow::Cow<'_, [u8]>> {
        if self.is_gzip_only() {
            gunzip(&self.gzip, max_len).map(std::borrow::Cow::Owned)
        } else {
            Some(std::borrow::Cow::Borrowed(&self.json))
        }
    }

    /// Rebuilds a document from stored gzip bytes (e.g. the equipment cache
    /// keeps only the gzip form). Returns `None` if the bytes are not gzip.
    pub fn from_gzip(gz: Vec<u8>, max_len: usize) -> Option<Doc> {
        let json = gunzip(&gz, max_len)?;
        let etag = format!("\"{:016x}-{:x}\"", etag_hash64(&json), json.len());
        Some(Doc { json: json.into(), gzip: gz.into(), etag: etag.into() })
    }

    /// True when an `If-None-Match` header value names this document
    /// (a list of tags, or `*`).
    pub fn matches_if_none_match(&self, header: &str) -> bool {
        header.split(',').map(str::trim).any(|t| t == "*" || t == &*self.etag || t.strip_prefix("W/") == Some(&*self.etag))
    }
}

impl Weigh for Doc {
    fn weight(&self) -> usize {
        self.json.len() + self.gzip.len() + self.etag.len() + 64
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 8 + 64), flate2::Compression::fast());
    enc.write_all(bytes).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Decompresses at most `max_len` bytes; `None` for corrupt input or a bomb.
pub fn gunzip(gz: &[u8], max_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut dec = flate2::read::GzDecoder::new(gz).take(max_len as u64 + 1);
    dec.read_to_end(&mut out).ok()?;
    if out.len() > max_len {
        return None;
    }
    Some(out)
}

/// FNV-1a style, 64 bit, over 8-byte little-endian words (8x fewer
/// dependent multiplies than byte-wise FNV on 350 KB documents), then the
/// tail bytes, then a final mix so high bits depend on every word: stable
/// across builds and platforms, good enough for a validator (the length is
/// part of the tag too).
fn etag_hash64(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h ^= u64::from_le_bytes(w.try_into().expect("chunks_exact(8) yields 8 bytes"));
        h = h.wrapping_mul(PRIME);
        h ^= h >> 29;
    }
    for &b in words.remainder() {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    }
    h ^= h >> 32;
    h.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_etag_depends_on_content() {
        let a = Doc::from_json(br#"{"a":1}"#.to_vec());
        let b = Doc::from_json(br#"{"a":2}"#.to_vec());
        assert_ne!(a.etag, b.etag);
        assert_eq!(gunzip(&a.gzip, 1024).unwrap(), br#"{"a":1}"#);
        let again = Doc::from_gzip(a.gzip.to_vec(), 1024).unwrap();
        assert_eq!(again, a);
    }

    /// Every byte position counts: in the 8-byte words and in the tail.
    #[test]
    fn etag_hash_sees_every_byte() {
        let base: Vec<u8> = (0..27u8).collect();
        let h = etag_hash64(&base);
        for i in 0..base.len() {
            let mut changed = base.clone();
            changed[i] ^= 1;
            assert_ne!(etag_hash64(&changed), h, "byte {i}");
        }
        assert_eq!(etag_hash64(&base), h, "deterministic");
    }

    #[test]
    fn gzip_only_keeps_the_etag_and_recovers_the_json() {
        let json = br#"{"item_equipment":[1,2,3]}"#;
        let full = Doc::from_json(json.to_vec());
        let small = Doc::gzip_only(json);
        assert!(small.is_gzip_only() && !full.is_gzip_only());
        assert_eq!(small.etag, full.etag);
        assert_eq!(&*small.plain(1024).unwrap(), json);
        assert!(small.plain(4).is_none());
        assert!(small.weight() < full.weight());
    }

    #[test]
    fn gunzip_refuses_garbage_and_oversized_output() {
        assert!(gunzip(b"not gzip", 100).is_none());
        let big = gzip(&vec![b'x'; 10_000]);
        assert!(gunzip(&big, 9_999).is_none());
        assert_eq!(gunzip(&big, 10_000).unwrap().len(), 10_000);
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let d = Doc::from_json(b"{}".to_vec());
        let tag = d.etag.to_string();
        assert!(d.matches_if_none_match(&tag));
        assert!(d.matches_if_none_match(&format!("\"x\", {tag}")));
        assert!(d.matches_if_none_match(&format!("W/{tag}")));
        assert!(d.matches_if_none_match("*"));
        assert!(!d.matches_if_none_match("\"other\""));
    }
}
