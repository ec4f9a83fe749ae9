//! The like log record and its key/value image.
//!
//! Wire format (little endian), versioned: `version: u8 | liked: u8 |
//! count_after: u64 | user | character | idempotency key`, each string as
//! `len: u16 | utf-8 bytes` (an absent key has length 0). The storage layer
//! checksums the whole entry; this decoder still checks every length, so a
//! record from another version is a typed error, never a panic.

use super::LikeError;

/// Record kind for the storage envelope / log multiplexing.
pub const LIKE_RECORD_KIND: u16 = 1;
pub const LIKE_RECORD_VERSION: u8 = 1;
const MAX_FIELD: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikeRecord {
    pub user: String,
    /// Normalised character name.
    pub character: String,
    /// Whether `user` likes `character` after this record.
    pub liked: bool,
    /// The character's like count after this record.
    pub count_after: u64,
    pub idempotency_key: Option<String>,
}

/// One key change of the state store image: `None` deletes the key.
pub type KvChange = (Vec<u8>, Option<Vec<u8>>);

impl LikeRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.user.len() + self.character.len());
        out.push(LIKE_RECORD_VERSION);
        out.push(self.liked as u8);
        out.extend_from_slice(&self.count_after.to_le_bytes());
        for s in [&self.user, &self.character, self.idempotency_key.as_ref().unwrap_or(&String::new())] {
            assert!(s.len() <= MAX_FIELD, "fields are validated before a record is built");
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    pub fn decode(mut b: &[u8]) -> Result<LikeRecord, LikeError> {
        let mut take = |n: usize| -> Result<&[u8], LikeError> {
            if b.len() < n {
                return Err(LikeError::BadRecord("truncated"));
            }
            let (head, rest) = b.split_at(n);
            b = rest;
            Ok(head)
        };
        if take(1)?[0] != LIKE_RECORD_VERSION {
            return Err(LikeError::BadRecord("unsupported version"));
        }
        let liked = match take(1)?[0] {
            0 => false,
            1 => true,
            _ => return Err(LikeError::BadRecord("bad liked flag")),
        };
        let count_after = u64::from_le_bytes(take(8)?.try_into().unwrap());
        let mut string = || -> Result<String, LikeError> {
            let len = u16::from_le_bytes(take(2)?.try_into().unwrap()) as usize;
            if len > MAX_FIELD {
                return Err(LikeError::BadRecord("field too long"));
            }
            String::from_utf8(take(len)?.to_vec()).map_err(|_| LikeError::BadRecord("not utf-8"))
        };
        let user = string()?;
        let character = string()?;
        let key = string()?;
        if !b.is_empty() {
            return Err(LikeError::BadRecord("trailing bytes"));
        }
        if user.is_empty() || character.is_empty() {
            return Err(LikeError::BadRecord("empty user or character"));
        }
        if count_after < liked as u64 {
            return Err(LikeError::BadRecord("liked with a count of zero"));
        }
        Ok(LikeRecord { user, character, liked, count_after, idempotency_key: (!key.is_empty()).then_some(key) })
    }

    /// The state-store image of this record: the count key
    /// (`like/c/{character}` = count, u64 LE) and the relation key
    /// (`like/u/{character}\0{user}`, present iff liked).
    pub fn kv_changes(&self) -> [KvChange; 2] {
        [
            (count_key(&self.character), Some(self.count_after.to_le_bytes().to_vec())),
            (relation_key(&self.character, &self.user), self.liked.then(Vec::new)),
        ]
    }
}

pub(crate) const COUNT_PREFIX: &[u8] = b"like/c/";
/// Key prefix of the relation keys (`like/u/{character}\0{user}`), for loading a book.
pub const RELATION_PREFIX: &[u8] = b"like/u/";

pub(crate) fn count_key(character: &str) -> Vec<u8> {
    [COUNT_PREFIX, character.as_bytes()].concat()
}

pub(crate) fn relation_key(character: &str, user: &str) -> Vec<u8> {
    [RELATION_PREFIX, character.as_bytes(), b"\0", user.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> LikeRecord {
        LikeRecord { user: "user-1".into(), character: "아델".into(), liked: true, count_after: 3, idempotency_key: Some("k1".into()) }
    }

    #[test]
    fn roundtrip_and_truncation_is_an_error() {
        let b = rec().encode();
        assert_eq!(LikeRecord::decode(&b).unwrap(), rec());
        for cut in 0..b.len() {
            assert!(LikeRecord::decode(&b[..cut]).is_err(), "cut {cut}");
        }
        let mut v2 = b.clone();
        v2[0] = 2;
        assert_eq!(LikeRecord::decode(&v2), Err(LikeError::BadRecord("unsupported version")));
        let no_key = LikeRecord { idempotency_key: None, ..rec() };
        assert_eq!(LikeRecord::decode(&no_key.encode()).unwrap(), no_key);
    }
}
