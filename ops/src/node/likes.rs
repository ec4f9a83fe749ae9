//! The like shard of one owner core: the in-memory [`LikeBook`] of the
//! characters this core owns, fed to and acknowledged from the core's log.
//!
//! Durability rule (why no answer can show a state that may be lost):
//! a toggle changes the book and appends its record to the log in the same
//! synchronous step (no await in between), so the log order equals the book
//! order and `last_appended` is the newest record the book reflects. EVERY
//! answer read from the book — the toggle's own, an idempotent replay, a
//! status — is sent only after the log is durable up to the `last_appended`
//! seen when the answer was read. The log becomes durable in index order,
//! so waiting for that one append implies every earlier one. A state that
//! never became durable is therefore never acknowledged to anyone.
//! If an append is refused (backpressure) the change is reverted at once,
//! before anything else could read it; if a durable write fails, the log is
//! poisoned and the shard refuses every later like request (503) until a
//! restart rebuilds the book from disk.
//!
//! Idempotency: the shard (not the book) remembers the first answer of each
//! `(user, Idempotency-Key)` for `--idempotency-ttl-secs` (default 24 h),
//! bounded by `LikeLimits::max_idempotency_keys` (oldest forgotten first).
//! The key travels in the like record, so applying the record writes the
//! answer into the state store too; a restart — after a crash or a clean
//! shutdown whose final checkpoint purged the log — restores the answers
//! from there, and a retry still gets the first answer.

use std::cell::RefCell;
use std::rc::Rc;

use engine::likes::{LikeBook, LikeError, LikeResult};
use storage::StorageError;

use super::durable::{self, CoreLog, IdempotencyAnswers};
use crate::metrics::CoreMetrics;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikeOp {
    Toggle { idempotency_key: Option<String> },
    Status,
}

/// Why a like request failed; maps to an HTTP error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikeFail {
    Invalid(String),
    /// Log queue full or book full: retry later (503 + Retry-After).
    Busy(String),
    /// The log failed; nothing is acknowledged until a restart (503).
    Unavailable(String),
}

impl LikeFail {
    pub fn to_response(&self) -> net::Response {
        use super::error::error_json;
        match self {
            LikeFail::Invalid(m) => error_json(400, "BAD_REQUEST", m),
            LikeFail::Busy(m) => error_json(503, "STORAGE_BUSY", m),
            LikeFail::Unavailable(m) => error_json(503, "STORAGE_UNAVAILABLE", m),
        }
    }
}

/// Longest accepted `Idempotency-Key` (bytes).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

pub struct LikeShard {
    book: RefCell<LikeBook>,
    answers: RefCell<IdempotencyAnswers>,
    log: Rc<CoreLog>,
    poisoned: RefCell<Option<String>>,
    metrics: Rc<CoreMetrics>,
    /// "Like book full" lines: at most one per period, with the count.
    full_log: RefCell<crate::logging::Throttle>,
}

impl LikeShard {
    /// Takes the idempotency answers the core's recovery restored.
    pub fn new(book: LikeBook, log: Rc<CoreLog>, metrics: Rc<CoreMetrics>) -> LikeShard {
        LikeShard {
            book: RefCell::new(book),
            answers: RefCell::new(log.storage.take_idempotency_answers()),
            log,
            poisoned: RefCell::new(None),
            metrics,
            full_log: RefCell::new(crate::logging::Throttle::new(crate::logging::SUMMARY_EVERY)),
        }
    }

    pub async fn serve(self: &Rc<Self>, user: &str, character: &str, op: LikeOp) -> Result<LikeResult, LikeFail> {
        let r = self.serve_inner(user, character, op.clone()).await;
        if let LikeOp::Toggle { .. } = op {
            self.metrics.like_toggle(match &r {
                Ok(_) => "ok",
                Err(LikeFail::Invalid(_)) => "invalid",
                Err(LikeFail::Busy(_)) => "busy",
                Err(LikeFail::Unavailable(_)) => "unavailable",
            });
        }
        r
    }

    async fn serve_inner(self: &Rc<Self>, user: &str, character: &str, op: LikeOp) -> Result<LikeResult, LikeFail> {
        if let Some(why) = self.poisoned.borrow().clone() {
            return Err(LikeFail::Unavailable(why));
        }
        let result = match op {
            LikeOp::Status => self.book.borrow().status(user, character).map_err(invalid)?,
            LikeOp::Toggle { idempotency_key } => {
                let now = durable::now_ms();
                let first = match &idempotency_key {
                    Some(key) => {
                        check_idempotency_key(key)?;
                        // Same validation of user and name as a toggle.
                        self.book.borrow().status(user, character).map_err(invalid)?;
                        self.answers.borrow_mut().get(user, key, now)
                    }
                    None => None,
                };
                match first {
                    Some(answer) => answer,
                    None => self.toggle(user, character, idempotency_key, now)?,
                }
            }
        };
        // Wait until what this answer reflects is durable (see the module doc).
        if let Some(durable) = self.log.newest() {
            match durable.await {
                Ok(index) => self.log.storage.applier.notify_committed(index),
                Err(e) => return Err(self.poison(e)),
            }
        }
        Ok(result)
    }

    /// The book is at its relation limit (the like book's share of
    /// `--memory-mb`): logged at most once per period, with the count.
    fn log_full(&self) {
        if let Some(suppressed) = self.full_log.borrow_mut().allow(std::time::Instant::now()) {
            let core = self.log.storage.core;
            let relations = self.book.borrow().relations();
            tracing::warn!(
                core,
                relations,
                suppressed,
                "like book of core {core} is full ({relations} relations, its share of --memory-mb): new likes are \
                 answered 503 STORAGE_BUSY until unlikes make room ({suppressed} more refusals since the previous line)"
            );
        }
    }

    /// Flip the like in the book and submit its record (synchronously: no
    /// await between the two, see the module doc).
    fn toggle(&self, user: &str, character: &str, idempotency_key: Option<String>, now_ms: u64) -> Result<LikeResult, LikeFail> {
        let toggled = self.book.borrow_mut().toggle(user, character, None);
        if let Err(LikeError::Full) = toggled {
            self.log_full();
        }
        let toggled = toggled.map_err(invalid)?;
        let mut record = toggled.record.expect("a toggle without a key always yields a record");
        record.idempotency_key = idempotency_key;
        if let Err(e) = self.log.append(durable::like_payload(&record, now_ms)) {
            // Nothing reached the log: undo before anyone reads it.
            self.book.borrow_mut().revert(&record);
            return Err(match e {
                StorageError::Backpressure { .. } => LikeFail::Busy(e.to_string()),
                e => self.poison(e.to_string()),
            });
        }
        if let Some(key) = &record.idempotency_key {
            let expires = now_ms.saturating_add(self.log.storage.idempotency_ttl.as_millis() as u64);
            self.answers.borrow_mut().insert(user, key, toggled.result, expires, now_ms);
        }
        Ok(toggled.result)
    }

    /// The log failed: refuse every later like request until a restart.
    /// The client is told which core's log failed, never the error itself
    /// (it names files): that goes to the log, once — the log's own
    /// "write-ahead log poisoned" line when it poisoned itself, else here.
    fn poison(&self, why: String) -> LikeFail {
        let core = self.log.storage.core;
        let public = storage_down_reason(core);
        let first = self.poisoned.borrow().is_none();
        if first {
            if self.log.storage.wal.poisoned().is_some() {
                tracing::debug!(core, error = %why, "like shard: refusing likes until a restart");
            } else {
                tracing::error!(core, error = %why, "like log failed: like requests of core {core} refused until a restart");
            }
            *self.poisoned.borrow_mut() = Some(public.clone());
        }
        LikeFail::Unavailable(public)
    }
}

/// What clients and readiness are told when a core's log failed (no paths:
/// those are in the log line).
pub fn storage_down_reason(core: usize) -> String {
    format!("storage: write-ahead log of core {core} failed; restart needed")
}

fn check_idempotency_key(key: &str) -> Result<(), LikeFail> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES || key.chars().any(char::is_control) {
        return Err(LikeFail::Invalid(LikeError::InvalidIdempotencyKey.to_string()));
    }
    Ok(())
}

fn invalid(e: LikeError) -> LikeFail {
    match e {
        LikeError::Full => LikeFail::Busy(e.to_string()),
        e => LikeFail::Invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use engine::likes::LikeLimits;
    use storage::WalOptions;

    use super::*;
    use crate::metrics::NodeMetrics;
    use crate::node::durable::recover_with;

    #[test]
    fn busy_is_503_with_retry_after_and_invalid_is_400() {
        let r = LikeFail::Busy("log full".into()).to_response();
        assert_eq!(r.status, 503);
        assert!(r.headers.iter().any(|(n, v)| *n == "retry-after" && v == "1"));
        assert_eq!(LikeFail::Invalid("bad".into()).to_response().status, 400);
        assert_eq!(LikeFail::Unavailable("poisoned".into()).to_response().status, 503);
    }

    /// A keyed retry answers from the shard's memory and appends nothing; a
    /// bad key is a 400; a restart restores the answer from the store.
    #[test]
    fn keyed_retries_append_nothing_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("maple-likes-keyed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = crate::node::durable::wal_options(4 << 20, storage::WalSync::Fsync);
        let metrics = NodeMetrics::new();
        let keyed = |k: &str| LikeOp::Toggle { idempotency_key: Some(k.to_string()) };
        {
            let (storage, book) = recover_with(&dir, 0, LikeLimits::default(), opts.clone()).unwrap();
            let log = Rc::new(CoreLog::new(Arc::new(storage)));
            let shard = Rc::new(LikeShard::new(book, log.clone(), Rc::new(metrics.core(0))));
            let serve = |user: &str, op| futures::executor::block_on(shard.serve(user, "Hero", op));
            let first = serve("u", keyed("k1")).unwrap();
            let appended = log.storage.wal.last_index();
            assert_eq!(serve("u", keyed("k1")).unwrap(), first);
            assert_eq!(log.storage.wal.last_index(), appended, "a retry writes nothing");
            assert_eq!(serve("other", keyed("k1")).unwrap().like_count, 2, "keys are per user");
            assert!(matches!(serve("u", keyed("")), Err(LikeFail::Invalid(_))));
            assert!(matches!(serve("u", keyed("a\nb")), Err(LikeFail::Invalid(_))));
            log.storage.final_checkpoint().unwrap();
        }
        let (storage, book) = recover_with(&dir, 0, LikeLimits::default(), opts).unwrap();
        assert_eq!(storage.replayed, 0);
        let log = Rc::new(CoreLog::new(Arc::new(storage)));
        let shard = Rc::new(LikeShard::new(book, log, Rc::new(metrics.core(0))));
        let again = futures::executor::block_on(shard.serve("u", "hero", keyed("k1"))).unwrap();
        assert_eq!((again.liked, again.like_count), (true, 1), "the first answer, not a second toggle");
        let now = futures::executor::block_on(shard.serve("u", "hero", LikeOp::Status)).unwrap();
        assert_eq!((now.liked, now.like_count), (true, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Many toggles submitted at once into a log that admits one pending
    /// request: each answer is either acknowledged or refused (Busy), a
    /// refused toggle leaves no trace, and a restart shows exactly the
    /// acknowledged ones. (How many are refused depends on the syncer's
    /// speed; the invariants hold either way.)
    #[test]
    fn refused_toggles_are_reverted_and_acknowledged_ones_survive() {
        let dir = std::env::temp_dir().join(format!("maple-likes-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = WalOptions { max_pending: 1, ..crate::node::durable::wal_options(4 << 20, storage::WalSync::Fsync) };
        let metrics = NodeMetrics::new();
        let acked: Vec<String> = {
            let (storage, book) = recover_with(&dir, 0, LikeLimits::default(), opts.clone()).unwrap();
            let log = Rc::new(CoreLog::new(Arc::new(storage)));
            let shard = Rc::new(LikeShard::new(book, log, Rc::new(metrics.core(0))));
            let users: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
            let toggles = users.iter().map(|u| {
                let shard = shard.clone();
                async move { (u.clone(), shard.serve(u, "Hero", LikeOp::Toggle { idempotency_key: None }).await) }
            });
            let results = futures::executor::block_on(futures::future::join_all(toggles));
            let mut acked = Vec::new();
            for (user, r) in results {
                match r {
                    Ok(res) => {
                        assert!(res.liked);
                        acked.push(user);
                    }
                    Err(LikeFail::Busy(_)) => {
                        let now = futures::executor::block_on(shard.serve(&user, "Hero", LikeOp::Status)).unwrap();
                        assert!(!now.liked, "{user}: a refused toggle was reverted");
                    }
                    Err(e) => panic!("{user}: {e:?}"),
                }
            }
            eprintln!("{} of {} toggles acknowledged, the rest refused", acked.len(), users.len());
            let status = futures::executor::block_on(shard.serve("x", "Hero", LikeOp::Status)).unwrap();
            assert_eq!(status.like_count, acked.len() as u64);
            acked
        };
        let (_, book) = recover_with(&dir, 0, LikeLimits::default(), opts).unwrap();
        assert_eq!(book.status("x", "hero").unwrap().like_count, acked.len() as u64);
        for u in &acked {
            assert!(book.status(u, "hero").unwrap().liked);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
