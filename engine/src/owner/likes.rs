//! The likes path on the core that hosts a partition: toggles, the
//! idempotency reservation, and the like status, all through the
//! partition's group ([`Groups`]).
//!
//! A toggle (on the character's partition):
//! 1. the group must be ready here (leader, first entry of its term applied);
//! 2. [`Partition::propose_toggle`] decides the record from the applied state
//!    plus the speculation of the proposals in flight;
//! 3. [`Partition::speculate`] feeds the record to the overlay and
//!    [`Groups::write`] hands it to the group — no await between 2 and 3, and
//!    the write is handed over on its first poll, so the log holds the
//!    proposals in the order they were decided;
//! 4. the write resolves with the applied outcome (the answer, equal to the
//!    speculative one); [`Partition::settle`] clears the speculation
//!    whatever the result, a failed write also drops the whole speculation
//!    (the group lost its leader or stopped: its other proposals fail too).
//!
//! A keyed toggle first reserves `(user, key)` at the user's partition
//! (engine::partition's protocol); the caller (the shard) sends that step
//! to the core of the user's partition.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::error::OwnerError;
use super::groups::{GroupError, Groups, PartitionId};
use super::sink::Sink;
use super::throttle::{Throttle, SUMMARY_EVERY};
use crate::name::CharacterName;
use crate::partition::{IdempotencyKey, LikeResult, Op, Outcome, Partition, PartitionError, Proposal, Record, Reservation, UserId};

/// Told `true` once a proposal's write succeeded, `false` if it failed.
type Settled = futures::channel::oneshot::Sender<bool>;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The likes of the partitions one core hosts.
pub struct Likes {
    core: usize,
    groups: Rc<dyn Groups>,
    metrics: Rc<dyn Sink>,
    /// Retries waiting for a proposal in flight (registered by the waiters:
    /// a proposal nobody waits for costs no entry here).
    waiting: RefCell<HashMap<(PartitionId, u64), Vec<Settled>>>,
    /// "Like storage full" lines: at most one per period, with the count.
    full_log: RefCell<Throttle>,
}

impl Likes {
    pub fn new(core: usize, groups: Rc<dyn Groups>, metrics: Rc<dyn Sink>) -> Likes {
        Likes { core, groups, metrics, waiting: RefCell::new(HashMap::new()), full_log: RefCell::new(Throttle::new(SUMMARY_EVERY)) }
    }

    fn machine(&self, p: PartitionId) -> Result<Rc<RefCell<Partition>>, OwnerError> {
        self.groups.ready(p)?;
        self.groups.machine(p).ok_or(OwnerError::Group(GroupError::Unavailable { partition: p, why: "not hosted on this core".into() }))
    }

    /// Toggle `user`'s like of `character` (whose partition is `p`, hosted here).
    pub async fn toggle(
        &self,
        p: PartitionId,
        user: &UserId,
        character: &CharacterName,
        key: Option<&IdempotencyKey>,
    ) -> Result<LikeResult, OwnerError> {
        let r = self.toggle_inner(p, user, character, key).await;
        self.metrics.like_toggle(match &r {
            Ok(_) => "ok",
            Err(e) => e.like_label(),
        });
        r
    }

    async fn toggle_inner(
        &self,
        p: PartitionId,
        user: &UserId,
        character: &CharacterName,
        key: Option<&IdempotencyKey>,
    ) -> Result<LikeResult, OwnerError> {
        let machine = self.machine(p)?;
        let proposal = machine.borrow().propose_toggle(user, character, key, now_ms());
        let (record, answer) = match proposal {
            Ok(Proposal::Append { record, answer }) => (record, answer),
            Ok(Proposal::Answered { answer, after }) => {
                // A retry: the first answer, once its toggle is applied.
                if let Some(seq) = after {
                    self.wait_settled(p, seq).await?;
                }
                return Ok(answer);
            }
            Err(e) => return Err(self.refused(p, e)),
        };
        match self.propose(p, &machine, record).await? {
            Outcome::Like(applied) => {
                debug_assert_eq!(applied, answer, "the applied outcome equals the speculative answer");
                Ok(applied)
            }
            other => Err(OwnerError::Group(GroupError::Stopped { partition: p, why: format!("a toggle applied as {other:?}") })),
        }
    }

    /// Reserve `(user, key)` for `op` on `character` at the user's
    /// partition `p` (hosted here). Another binding of the key is
    /// [`PartitionError::IdempotencyKeyReused`].
    pub async fn reserve(
        &self,
        p: PartitionId,
        user: &UserId,
        key: &IdempotencyKey,
        character: &CharacterName,
        op: Op,
    ) -> Result<(), OwnerError> {
        let machine = self.machine(p)?;
        let decided = machine.borrow().propose_reservation(user, key, character, op, now_ms());
        let record = match decided {
            Ok(Reservation::Held { after }) => {
                if let Some(seq) = after {
                    self.wait_settled(p, seq).await?;
                }
                return Ok(());
            }
            Ok(Reservation::Append(record)) => record,
            Err(e) => return Err(self.refused(p, e)),
        };
        match self.propose(p, &machine, record).await? {
            Outcome::Reserved(b) if b.character == character.as_str() && b.op == op => Ok(()),
            Outcome::Reserved(b) => Err(OwnerError::Like(PartitionError::IdempotencyKeyReused {
                key: key.as_str().to_string(),
                first_character: b.character,
                first_op: b.op,
            })),
            other => Err(OwnerError::Group(GroupError::Stopped { partition: p, why: format!("a reservation applied as {other:?}") })),
        }
    }

    /// `{liked, likeCount}`, linearizable: the group confirms its leadership
    /// and has applied everything committed before the read.
    pub async fn status(&self, p: PartitionId, user: &UserId, character: &CharacterName) -> Result<LikeResult, OwnerError> {
        let machine = self.machine(p)?;
        self.groups.read_index(p).await?;
        let r = machine.borrow().like_status(user.as_str(), character.as_str());
        Ok(r)
    }

    /// The like count of `character`, linearizable as [`Likes::status`].
    pub async fn count(&self, p: PartitionId, character: &CharacterName) -> Result<u64, OwnerError> {
        let machine = self.machine(p)?;
        self.groups.read_index(p).await?;
        let n = machine.borrow().like_count(character.as_str());
        Ok(n)
    }

    /// Speculate `record`, hand it to the group, settle; the applied outcome.
    async fn propose(&self, p: PartitionId, machine: &Rc<RefCell<Partition>>, record: Record) -> Result<Outcome, OwnerError> {
        let bytes = record.encode()?;
        let seq = machine.borrow_mut().speculate(&record);
        // First poll right here: the proposal enters the log in decision order.
        let written = self.groups.write(p, bytes).await;
        {
            let mut m = machine.borrow_mut();
            m.settle(seq);
            if written.is_err() {
                m.drop_speculation();
            }
        }
        let waiters = if self.waiting.borrow().is_empty() { None } else { self.waiting.borrow_mut().remove(&(p, seq)) };
        for w in waiters.into_iter().flatten() {
            let _ = w.send(written.is_ok());
        }
        let answer = written?;
        Outcome::decode(&answer).map_err(OwnerError::Like)
    }

    /// Wait until proposal `seq` of `p` (in flight: the overlay said so,
    /// with no await since) settled; an error if it failed.
    async fn wait_settled(&self, p: PartitionId, seq: u64) -> Result<(), OwnerError> {
        let (tx, rx) = futures::channel::oneshot::channel();
        self.waiting.borrow_mut().entry((p, seq)).or_default().push(tx);
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(OwnerError::Group(GroupError::Unknown { partition: p })),
        }
    }

    fn refused(&self, p: PartitionId, e: PartitionError) -> OwnerError {
        if let PartitionError::RelationsFull { max } = e {
            if let Some(suppressed) = self.full_log.borrow_mut().allow(Instant::now()) {
                let core = self.core;
                tracing::warn!(
                    core,
                    partition = p,
                    max,
                    suppressed,
                    "like storage of partition {p} is full ({max} relations, its share of --memory-mb): new likes are \
                     answered 503 STORAGE_BUSY until unlikes make room ({suppressed} more refusals since the previous line)"
                );
            }
        }
        OwnerError::Like(e)
    }
}
