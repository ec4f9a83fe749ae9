//! A core's entry point: every request for a key goes to the core hosting
//! the key's partition — served here when that is this core, else sent as
//! one [`Msg`] on that core's inbox (the one message type of a core's
//! inbox), the reply coming back on a oneshot. Hot expectations may be
//! answered from a read copy of another core's rendering (version-checked).
//!
//! Invariant: a partition's state (caches, single-flight, the partition
//! machine) is only touched on the core hosting it; no locks, no shared maps.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::error::OwnerError;
use super::fetch::{CacheStatus, DocOp, Owner, Served};
use super::groups::PartitionId;
use super::likes::Likes;
use super::sink::Sink;
use super::Key;
use crate::name::CharacterName;
use crate::partition::{IdempotencyKey, LikeResult, Op, UserId};
use crate::shard::{ByteLru, Doc, SlotVersions, Weigh};

/// Capacity of each core's inbox; full → 503.
pub const INBOX: usize = 4096;

/// Where a partition lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub partition: PartitionId,
    pub core: usize,
}

/// What one core asks another.
#[derive(Debug)]
pub enum Request {
    Doc {
        op: DocOp,
        name: Key,
    },
    Toggle {
        user: UserId,
        character: Key,
        key: Option<IdempotencyKey>,
    },
    Reserve {
        user: UserId,
        key: IdempotencyKey,
        home: PartitionId,
        character: CharacterName,
        op: Op,
    },
    Status {
        user: UserId,
        character: Key,
    },
    /// The like count of a character, whoever asks (RESP `LIKE.COUNT`).
    Count {
        character: Key,
    },
}

/// Its answer.
#[derive(Debug)]
pub enum Reply {
    Doc(Served),
    Like(LikeResult),
    Reserved,
}

/// One message on a core's inbox.
pub struct Msg {
    pub req: Request,
    pub reply: futures::channel::oneshot::Sender<Result<Reply, OwnerError>>,
}

/// The inboxes of every core: senders for all, each core takes its receiver.
pub struct Inboxes {
    pub senders: Vec<flume::Sender<Msg>>,
    pub receivers: Vec<flume::Receiver<Msg>>,
}

impl Inboxes {
    pub fn new(cores: usize) -> Inboxes {
        let (senders, receivers) = (0..cores).map(|_| flume::bounded(INBOX)).unzip();
        Inboxes { senders, receivers }
    }
}

/// A copy of another core's rendered expectation, valid while the slot's
/// version is unchanged and it is younger than the TTL.
#[derive(Clone)]
struct ReadCopy {
    doc: Doc,
    version: u64,
}

impl Weigh for ReadCopy {
    fn weight(&self) -> usize {
        self.doc.weight() + 8
    }
}

pub struct Shard {
    core: usize,
    owner: Rc<Owner>,
    likes: Rc<Likes>,
    to_core: Vec<flume::Sender<Msg>>,
    read_copies: RefCell<ByteLru<ReadCopy>>,
    versions: SlotVersions,
    metrics: Rc<dyn Sink>,
}

impl Shard {
    /// Call on the core's thread inside its runtime: starts the task that
    /// serves the other cores' messages for this core's partitions.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: usize,
        owner: Rc<Owner>,
        likes: Rc<Likes>,
        to_core: Vec<flume::Sender<Msg>>,
        inbox: flume::Receiver<Msg>,
        read_copy_bytes: usize,
        ttl: Duration,
        versions: SlotVersions,
        metrics: Rc<dyn Sink>,
    ) -> Rc<Shard> {
        let shard = Rc::new(Shard {
            core,
            owner,
            likes,
            to_core,
            read_copies: RefCell::new(ByteLru::new(read_copy_bytes.max(1), ttl)),
            versions,
            metrics,
        });
        let serving = shard.clone();
        monoio::spawn(async move {
            // Each message is one request of another core; that core bounds
            // its own in-flight requests, so the spawned tasks are bounded too.
            while let Ok(msg) = inbox.recv_async().await {
                let shard = serving.clone();
                monoio::spawn(async move {
                    let result = shard.serve(msg.req).await;
                    let _ = msg.reply.send(result); // the asker may have gone
                });
            }
        });
        shard
    }

    pub fn core(&self) -> usize {
        self.core
    }

    /// A document (expectation, preset, equipment, basic) of `name`.
    pub async fn doc(&self, op: DocOp, name: Key) -> Result<Served, OwnerError> {
        let (core, slot, key) = (name.core, name.slot, name.key.clone());
        let copyable = op == DocOp::Expectation { force: false } && core != self.core;
        if copyable {
            if let Some(served) = self.read_copy(&key, slot) {
                return Ok(served);
            }
        }
        let served = match self.call(core, Request::Doc { op, name }, OwnerError::Overloaded("owner core queue is full")).await? {
            Reply::Doc(s) => s,
            other => return Err(unexpected(other)),
        };
        if copyable && served.cache != CacheStatus::Stale && served.version == self.versions.get(slot) {
            let copy = ReadCopy { doc: served.doc.clone(), version: served.version };
            self.read_copies.borrow_mut().insert(key, copy, Instant::now());
        }
        Ok(served)
    }

    /// Toggle `user`'s like of `character`. With an Idempotency-Key, the
    /// key is first reserved at `home` (the user's partition) unless that is
    /// the character's own partition (its toggle record makes the binding).
    pub async fn toggle(&self, user: UserId, character: Key, key: Option<(IdempotencyKey, Place)>) -> Result<LikeResult, OwnerError> {
        let key = match key {
            None => None,
            Some((key, home)) => {
                if home.partition != character.partition {
                    self.reserve(&user, &key, home, &character).await?;
                }
                Some(key)
            }
        };
        self.toggle_reserved(user, character, key).await
    }

    /// The reservation step of a keyed toggle alone: bind `key` to
    /// `character` at `home` (the user's partition). A cluster node calls it
    /// on the node leading `home` when that is not the character's leader.
    pub async fn reserve(&self, user: &UserId, key: &IdempotencyKey, home: Place, character: &Key) -> Result<(), OwnerError> {
        let name = character.character()?;
        let req = Request::Reserve { user: user.clone(), key: key.clone(), home: home.partition, character: name, op: Op::LikeToggle };
        match self.call(home.core, req, OwnerError::Busy("owner core queue is full")).await? {
            Reply::Reserved => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The toggle at the character's partition, its key (if any) reserved
    /// at the user's partition already ([`Shard::reserve`]).
    pub async fn toggle_reserved(&self, user: UserId, character: Key, key: Option<IdempotencyKey>) -> Result<LikeResult, OwnerError> {
        let busy = OwnerError::Busy("owner core queue is full");
        let core = character.core;
        match self.call(core, Request::Toggle { user, character, key }, busy).await? {
            Reply::Like(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// `{liked, likeCount}` of `user` on `character`, linearizable.
    pub async fn status(&self, user: UserId, character: Key) -> Result<LikeResult, OwnerError> {
        match self.call(character.core, Request::Status { user, character }, OwnerError::Busy("owner core queue is full")).await? {
            Reply::Like(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// The like count of `character`, linearizable (as [`Shard::status`]).
    pub async fn count(&self, character: Key) -> Result<u64, OwnerError> {
        match self.call(character.core, Request::Count { character }, OwnerError::Busy("owner core queue is full")).await? {
            Reply::Like(r) => Ok(r.like_count),
            other => Err(unexpected(other)),
        }
    }

    /// Serve here, or on `core` through its inbox (`full` when it is full).
    async fn call(&self, core: usize, req: Request, full: OwnerError) -> Result<Reply, OwnerError> {
        if core == self.core {
            return self.serve(req).await;
        }
        let (tx, rx) = futures::channel::oneshot::channel();
        if self.to_core[core].try_send(Msg { req, reply: tx }).is_err() {
            self.metrics.cross_core("full");
            return Err(full);
        }
        self.metrics.cross_core("sent");
        rx.await.map_err(|_| OwnerError::Abandoned)?
    }

    /// A request for a partition this core hosts.
    async fn serve(&self, req: Request) -> Result<Reply, OwnerError> {
        match req {
            Request::Doc { op, name } => self.owner.serve(op, &name).await.map(Reply::Doc),
            Request::Toggle { user, character, key } => {
                let name = character.character()?;
                self.likes.toggle(character.partition, &user, &name, key.as_ref()).await.map(Reply::Like)
            }
            Request::Reserve { user, key, home, character, op } => {
                self.likes.reserve(home, &user, &key, &character, op).await.map(|()| Reply::Reserved)
            }
            Request::Status { user, character } => {
                let name = character.character()?;
                self.likes.status(character.partition, &user, &name).await.map(Reply::Like)
            }
            Request::Count { character } => {
                let name = character.character()?;
                let like_count = self.likes.count(character.partition, &name).await?;
                Ok(Reply::Like(LikeResult { liked: false, like_count }))
            }
        }
    }

    fn read_copy(&self, key: &str, slot: u16) -> Option<Served> {
        let mut copies = self.read_copies.borrow_mut();
        let (copy, _age) = copies.get(key, Instant::now())?;
        if copy.version != self.versions.get(slot) {
            copies.remove(key);
            return None;
        }
        self.metrics.cache("expectation", "read_copy");
        Some(Served { doc: copy.doc.clone(), cache: CacheStatus::Hit, version: copy.version })
    }
}

fn unexpected(reply: Reply) -> OwnerError {
    tracing::error!(?reply, "owner core answered another kind of request");
    OwnerError::Abandoned
}
