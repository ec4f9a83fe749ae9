//! The in-memory like state of one owner core. Single-threaded by design:
//! only the owner core touches it, so there is no lock.

use std::collections::{HashMap, HashSet, VecDeque};

use super::name::normalize_character;
use super::record::{LikeRecord, RELATION_PREFIX};
use super::LikeError;

const MAX_USER_BYTES: usize = 128;
const MAX_KEY_BYTES: usize = 128;

#[derive(Debug, Clone)]
pub struct LikeLimits {
    /// Total (user, character) like relations held; more answer `Full`.
    pub max_relations: usize,
    /// Remembered idempotency keys (oldest forgotten first).
    pub max_idempotency_keys: usize,
}

impl Default for LikeLimits {
    fn default() -> Self {
        LikeLimits { max_relations: 10_000_000, max_idempotency_keys: 100_000 }
    }
}

/// What the API answers: `{liked, likeCount}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeResult {
    pub liked: bool,
    pub like_count: u64,
}

/// Outcome of a toggle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toggled {
    pub result: LikeResult,
    /// The record to append to the log before answering; `None` when the
    /// toggle was a retry of an earlier one (same idempotency key), whose
    /// record is already in the log.
    pub record: Option<LikeRecord>,
}

#[derive(Debug, Default)]
pub struct LikeBook {
    /// Normalised character → users who like it. The count is the set's size,
    /// so it can never go negative or drift from the relations.
    likers: HashMap<String, HashSet<String>>,
    relations: usize,
    answered: HashMap<(String, String), LikeResult>,
    answered_order: VecDeque<(String, String)>,
    limits: LikeLimits,
}

fn check_user(user: &str) -> Result<(), LikeError> {
    if user.is_empty() || user.len() > MAX_USER_BYTES || user.chars().any(|c| c.is_control()) {
        return Err(LikeError::InvalidUser);
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), LikeError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.chars().any(|c| c.is_control()) {
        return Err(LikeError::InvalidIdempotencyKey);
    }
    Ok(())
}

impl LikeBook {
    pub fn new(limits: LikeLimits) -> LikeBook {
        LikeBook { limits, ..LikeBook::default() }
    }

    /// Flip `user`'s like of `character`. Applied in memory at once; append
    /// `record` to the log and answer only when it is durable. A retry with
    /// the same `idempotency_key` returns the first answer and no record.
    pub fn toggle(&mut self, user: &str, character: &str, idempotency_key: Option<&str>) -> Result<Toggled, LikeError> {
        check_user(user)?;
        let character = normalize_character(character)?;
        if let Some(key) = idempotency_key {
            check_key(key)?;
            if let Some(first) = self.answered.get(&(user.to_string(), key.to_string())) {
                return Ok(Toggled { result: *first, record: None });
            }
        }
        let now_liked = !self.likers.get(&character).is_some_and(|s| s.contains(user));
        if now_liked && self.relations >= self.limits.max_relations {
            return Err(LikeError::Full);
        }
        let record = LikeRecord {
            user: user.to_string(),
            character,
            liked: now_liked,
            count_after: 0,
            idempotency_key: idempotency_key.map(str::to_string),
        };
        let result = self.apply(&record);
        Ok(Toggled { result, record: Some(LikeRecord { count_after: result.like_count, ..record }) })
    }

    /// `{liked, likeCount}` for `user` on `character`.
    pub fn status(&self, user: &str, character: &str) -> Result<LikeResult, LikeError> {
        check_user(user)?;
        let character = normalize_character(character)?;
        let set = self.likers.get(&character);
        Ok(LikeResult { liked: set.is_some_and(|s| s.contains(user)), like_count: set.map_or(0, |s| s.len() as u64) })
    }

    /// Apply a record from the log (replay, followers). Idempotent: it sets
    /// the relation to the record's outcome, so applying it twice is a no-op.
    pub fn apply(&mut self, record: &LikeRecord) -> LikeResult {
        let set = self.likers.entry(record.character.clone()).or_default();
        if record.liked {
            if set.insert(record.user.clone()) {
                self.relations += 1;
            }
        } else if set.remove(&record.user) {
            self.relations -= 1;
        }
        let result = LikeResult { liked: record.liked, like_count: set.len() as u64 };
        if set.is_empty() {
            self.likers.remove(&record.character);
        }
        if let Some(key) = &record.idempotency_key {
            self.remember(record.user.clone(), key.clone(), result);
        }
        result
    }

    /// Undo a toggle whose record never reached the log (the append was
    /// refused, e.g. backpressure): restore the relation and forget the
    /// idempotency key, so a retry decides afresh. Only valid for the most
    /// recent record of this (user, character), before anything else touched it.
    pub fn revert(&mut self, record: &LikeRecord) {
        let set = self.likers.entry(record.character.clone()).or_default();
        if record.liked {
            if set.remove(&record.user) {
                self.relations -= 1;
            }
        } else if set.insert(record.user.clone()) {
            self.relations += 1;
        }
        if set.is_empty() {
            self.likers.remove(&record.character);
        }
        if let Some(key) = &record.idempotency_key {
            // The stale entry left in `answered_order` is harmless: evicting
            // an absent id is a no-op.
            self.answered.remove(&(record.user.clone(), key.clone()));
        }
    }

    fn remember(&mut self, user: String, key: String, result: LikeResult) {
        let id = (user, key);
        if self.answered.contains_key(&id) {
            return;
        }
        if self.answered_order.len() >= self.limits.max_idempotency_keys {
            if let Some(old) = self.answered_order.pop_front() {
                self.answered.remove(&old);
            }
        }
        self.answered.insert(id.clone(), result);
        self.answered_order.push_back(id);
    }

    /// Rebuild from the state store's key/value image (the relation keys of
    /// [`LikeRecord::kv_changes`]); other keys are ignored.
    pub fn load_kv<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Result<(), LikeError> {
        for (key, _) in pairs {
            let Some(rest) = key.strip_prefix(RELATION_PREFIX) else { continue };
            let sep = rest.iter().position(|&b| b == 0).ok_or(LikeError::BadRecord("relation key without separator"))?;
            let character = std::str::from_utf8(&rest[..sep]).map_err(|_| LikeError::BadRecord("not utf-8"))?;
            let user = std::str::from_utf8(&rest[sep + 1..]).map_err(|_| LikeError::BadRecord("not utf-8"))?;
            if self.likers.entry(character.to_string()).or_default().insert(user.to_string()) {
                self.relations += 1;
            }
        }
        Ok(())
    }

    /// Like relations held (for the metrics).
    pub fn relations(&self) -> usize {
        self.relations
    }
}
