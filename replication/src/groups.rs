//! The partition groups of a node, from the data on disk to the owner
//! runtime:
//! - [`open_log`] (a recovery thread per log, before serving): open the
//!   log, attach it to the store, recover each of its partitions
//!   ([`crate::machine::recover_partition`]), start its [`BatchWriter`]
//!   whose checkpoints raise the groups' purge floors;
//! - [`CoreGroups`] (on each core): a [`Host`] with the groups of the
//!   partitions on that core, bootstrapped once (idempotent), a watcher per
//!   group keeping its readiness and dropping the speculation of a group
//!   that lost its leadership; and the [`engine::owner::Groups`] the owner
//!   runtime proposes and reads through.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use engine::owner::{GroupError, Groups, PartitionId};
use engine::partition::{Limits, Partition};
use futures::future::LocalBoxFuture;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ServerState;
use storage::log::{Log, LogOptions, LogRecovery};
use storage::store::{BatchWriter, Store, WriterOptions};
use storage::StorageError;

use crate::host::{default_config, GroupStatus, Host, HostLimits, ReadError, WriteError};
use crate::log_store::PurgeFloor;
use crate::machine::{recover_partition, GroupStats, NodeMachine, Recovered};
use crate::network::Transport;
use crate::types::{term_of, NodeId, NodeInfo};
use crate::wal::WalGroup;

/// One partition ready to start on its core.
pub struct PartitionStart {
    pub recovered: Recovered,
    pub floor: PurgeFloor,
    pub stats: Arc<GroupStats>,
    pub writer: BatchWriter,
    pub limits: Limits,
}

/// A log opened at start, with its partitions recovered.
pub struct OpenedLog {
    pub log_no: u32,
    pub log: Log,
    pub recovery: LogRecovery,
    pub writer: BatchWriter,
    pub partitions: Vec<PartitionStart>,
}

/// Open log `log_no` in `dir`, attach it to `store`, recover `groups` (its
/// partitions) and start its writer. Blocking: run it on a thread of its own.
pub fn open_log(
    dir: &Path,
    log_no: u32,
    log_opts: LogOptions,
    store: &Store,
    groups: &[PartitionId],
    limits: Limits,
    writer_opts: WriterOptions,
) -> Result<OpenedLog, StorageError> {
    let (log, recovery) = Log::open(dir, log_opts)?;
    open_partitions(log, recovery, log_no, store, groups, limits, writer_opts)
}

/// [`open_log`] for a log opened already (a node opens every log — each
/// refusing damage before anything is written — before its store).
pub fn open_partitions(
    log: Log,
    recovery: LogRecovery,
    log_no: u32,
    store: &Store,
    groups: &[PartitionId],
    limits: Limits,
    writer_opts: WriterOptions,
) -> Result<OpenedLog, StorageError> {
    store.attach_log(log_no, log.clone())?;
    let mut recovered = Vec::with_capacity(groups.len());
    for &g in groups {
        recovered.push(recover_partition(store, log_no, g, limits.clone())?);
    }
    let floors: BTreeMap<PartitionId, PurgeFloor> =
        recovered.iter().map(|r| (r.group, PurgeFloor::at(r.store.checkpointed().map(|c| c.index)))).collect();
    let raise = floors.clone();
    let writer = BatchWriter::spawn(
        store.clone(),
        log_no,
        writer_opts,
        Box::new(move |report| {
            for (g, applied) in &report.groups {
                if let (Some(floor), Some(a)) = (raise.get(g), applied) {
                    floor.set(Some(a.index));
                }
            }
        }),
    )?;
    let partitions = recovered
        .into_iter()
        .map(|r| PartitionStart {
            floor: floors[&r.group].clone(),
            stats: Arc::new(GroupStats::default()),
            writer: writer.clone(),
            limits: limits.clone(),
            recovered: r,
        })
        .collect();
    Ok(OpenedLog { log_no, log, recovery, writer, partitions })
}

struct Local {
    machine: Rc<RefCell<Partition>>,
    store: storage::store::Partition,
    /// The log's store writer: readiness waits until what the machine
    /// applied is in the store too (the owner reads stored rows from it).
    writer: storage::store::BatchWriter,
    stats: Arc<GroupStats>,
}

/// The groups of one core (see the module docs).
pub struct CoreGroups {
    host: Rc<Host<NodeMachine>>,
    locals: BTreeMap<PartitionId, Local>,
}

impl CoreGroups {
    /// Start the groups of `parts` on this core (inside its runtime) and
    /// bootstrap each as a group of `members` (idempotent: a group that has
    /// a membership already is left alone).
    pub async fn start(
        node_id: NodeId,
        members: BTreeMap<NodeId, NodeInfo>,
        transport: Rc<dyn Transport>,
        parts: Vec<PartitionStart>,
    ) -> Result<Rc<CoreGroups>, String> {
        Self::start_with(node_id, Some(members), transport, parts).await
    }

    /// [`CoreGroups::start`]; with `members` None no group is bootstrapped
    /// here (a cluster node: the groups' bootstrapper initialises them once
    /// every replica answers, see `placement::bootstrap_groups`).
    pub async fn start_with(
        node_id: NodeId,
        members: Option<BTreeMap<NodeId, NodeInfo>>,
        transport: Rc<dyn Transport>,
        parts: Vec<PartitionStart>,
    ) -> Result<Rc<CoreGroups>, String> {
        let host = Host::new(node_id, transport, default_config(), HostLimits::default())?;
        let mut locals = BTreeMap::new();
        for p in parts {
            let g = p.recovered.group;
            let store = p.recovered.store.clone();
            let PartitionStart { recovered, floor, stats, writer, limits } = p;
            let (nm, machine) = NodeMachine::new(recovered, limits, writer.clone(), stats.clone());
            let wal = WalGroup::new(store.group().clone());
            host.start_group(g, wal, floor, nm).await?;
            locals.insert(g, Local { machine, store, writer, stats });
        }
        let groups = Rc::new(CoreGroups { host, locals });
        for g in groups.locals.keys().copied().collect::<Vec<_>>() {
            if let Some(members) = &members {
                groups.host.bootstrap(g, members.clone()).await?;
            }
            groups.watch(g, node_id);
        }
        groups.spawn_refresh(node_id);
        Ok(groups)
    }

    /// Every 50 ms: the known leader, the cluster-committed index and
    /// whether this replica applied it, into each group's stats (read by
    /// the cluster map, readiness and forwarding from any core). Ends when
    /// the groups are shut down.
    fn spawn_refresh(self: &Rc<Self>, me: NodeId) {
        // A weak handle: a task still asleep when its runtime is dropped
        // must not keep the groups (and their store) alive.
        let weak = Rc::downgrade(self);
        monoio::spawn(async move {
            loop {
                let Some(this) = weak.upgrade() else { return };
                let mut any = false;
                for (g, local) in &this.locals {
                    let Some(raft) = this.host.raft(*g) else { continue };
                    any = true;
                    let m = raft.metrics();
                    let m = m.borrow_watched();
                    let committed = m.cluster_committed.as_ref().or(m.local_committed.as_ref()).map(|l| l.index);
                    let applied = m.last_applied.as_ref().map(|l| l.index);
                    let leader = m.current_leader.unwrap_or(0);
                    let caught_up = leader != 0 && leader != me && committed.is_some() && applied >= committed;
                    local.stats.leader_id.store(if m.state == ServerState::Shutdown { 0 } else { leader }, Ordering::Release);
                    local.stats.committed.store(committed.map_or(0, |c| c + 1), Ordering::Relaxed);
                    local.stats.caught_up.store(caught_up as u64, Ordering::Release);
                    local.stats.last_log.store(m.last_log_index.map_or(0, |i| i + 1), Ordering::Relaxed);
                    *local.stats.state.lock().unwrap_or_else(|p| p.into_inner()) = crate::host::state_str(m.state);
                    let matched = m.replication.as_ref().map(|r| r.iter().map(|(n, l)| (*n, l.as_ref().map(|l| l.index))).collect());
                    *local.stats.matched.lock().unwrap_or_else(|p| p.into_inner()) = matched.unwrap_or_default();
                }
                if !any {
                    for local in this.locals.values() {
                        local.stats.leader_id.store(0, Ordering::Release);
                        local.stats.caught_up.store(0, Ordering::Release);
                    }
                    return;
                }
                drop(this);
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
    }

    /// Keep `ready`, `leader` and `term` of the group's stats current;
    /// drop the speculation when leadership is lost. Wakes on server-state
    /// changes only (leader, term, membership: not on every write), and
    /// while leading but not ready yet polls until the leader's first entry
    /// of the term is applied.
    fn watch(self: &Rc<Self>, g: PartitionId, me: NodeId) {
        let Some(raft) = self.host.raft(g) else { return };
        let local = &self.locals[&g];
        let (machine, stats, writer) = (local.machine.clone(), local.stats.clone(), local.writer.clone());
        monoio::spawn(async move {
            let mut rx = raft.server_metrics();
            let mut was_leader = false;
            'watch: loop {
                let (leader, stopping) = {
                    let m = rx.borrow_watched();
                    (m.state == ServerState::Leader && m.current_leader == Some(me), m.state == ServerState::Shutdown)
                };
                let term = raft.metrics().borrow_watched().current_term;
                if was_leader && !leader {
                    machine.borrow_mut().drop_speculation();
                    if !stopping {
                        tracing::info!(partition = g, term, "lost the leadership of the partition");
                    }
                }
                was_leader = leader;
                stats.term.store(term, Ordering::Relaxed);
                stats.leader.store(leader as u64, Ordering::Relaxed);
                stats.ready.store(0, Ordering::Release);
                if leader {
                    // Ready once an entry of this term (the leader's blank) is applied.
                    loop {
                        let applied_now = {
                            let m = raft.metrics();
                            let m = m.borrow_watched();
                            m.current_leader == Some(me) && m.last_applied.as_ref().is_some_and(|l| term_of(l) == m.current_term)
                        };
                        if applied_now {
                            // Entries committed before the restart but past
                            // the saved commit index are applied only now;
                            // their rows reach the store through the writer.
                            // Ready once they are there (a stored expectation
                            // is read from the store, not from the machine).
                            match writer.barrier().await {
                                Ok(()) => stats.ready.store(1, Ordering::Release),
                                Err(e) => {
                                    tracing::error!(partition = g, error = %e, "store writer failed before the partition became ready; it stays not ready")
                                }
                            }
                            break;
                        }
                        let changed = monoio::time::timeout(std::time::Duration::from_millis(2), rx.changed()).await;
                        if matches!(changed, Ok(Err(_))) {
                            // The group stopped (its metrics channel closed):
                            // done, not a busy loop over a stale "leader".
                            break 'watch;
                        }
                        if matches!(changed, Ok(Ok(()))) {
                            break; // leadership may have moved: look again
                        }
                    }
                    if stats.is_ready() && rx.changed().await.is_err() {
                        break;
                    }
                    continue;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
            stats.ready.store(0, Ordering::Release);
            stats.leader.store(0, Ordering::Relaxed);
        });
    }

    pub fn host(&self) -> &Rc<Host<NodeMachine>> {
        &self.host
    }

    pub fn partitions(&self) -> Vec<PartitionId> {
        self.locals.keys().copied().collect()
    }

    pub fn stats(&self, p: PartitionId) -> Option<Arc<GroupStats>> {
        self.locals.get(&p).map(|l| l.stats.clone())
    }

    pub fn status(&self) -> Vec<GroupStatus> {
        self.host.status()
    }

    /// Stop every group (inside the core's drain, before its runtime ends).
    pub async fn shutdown(&self) {
        self.host.shutdown().await;
        for l in self.locals.values() {
            l.stats.ready.store(0, Ordering::Release);
        }
    }
}

fn write_error(p: PartitionId, e: WriteError) -> GroupError {
    match e {
        WriteError::NoGroup(_) => GroupError::Unavailable { partition: p, why: "not hosted on this core".into() },
        WriteError::NotLeader { leader, .. } => {
            GroupError::Unavailable { partition: p, why: format!("not the leader (leader: {:?})", leader.map(|l| l.0)) }
        }
        WriteError::Unknown(_) => GroupError::Unknown { partition: p },
        WriteError::Stopped { reason, .. } => GroupError::Stopped { partition: p, why: reason },
    }
}

fn read_error(p: PartitionId, e: ReadError) -> GroupError {
    match e {
        ReadError::NoGroup(_) => GroupError::Unavailable { partition: p, why: "not hosted on this core".into() },
        ReadError::NotLeader { .. } => GroupError::Unavailable { partition: p, why: "not the leader".into() },
        ReadError::NoQuorum(_) => GroupError::Unavailable { partition: p, why: "no quorum confirmed the leadership".into() },
        ReadError::Stopped { reason, .. } => GroupError::Stopped { partition: p, why: reason },
    }
}

impl Groups for CoreGroups {
    fn machine(&self, p: PartitionId) -> Option<Rc<RefCell<Partition>>> {
        self.locals.get(&p).map(|l| l.machine.clone())
    }

    fn store(&self, p: PartitionId) -> Option<storage::store::Partition> {
        self.locals.get(&p).map(|l| l.store.clone())
    }

    fn write(&self, p: PartitionId, record: Vec<u8>) -> LocalBoxFuture<'static, Result<Bytes, GroupError>> {
        let host = self.host.clone();
        Box::pin(async move { host.write(p, Bytes::from(record)).await.map_err(|e| write_error(p, e)) })
    }

    fn read_index(&self, p: PartitionId) -> LocalBoxFuture<'static, Result<(), GroupError>> {
        let host = self.host.clone();
        Box::pin(async move { host.read_index(p, false).await.map_err(|e| read_error(p, e)) })
    }

    fn ready(&self, p: PartitionId) -> Result<(), GroupError> {
        match self.locals.get(&p) {
            None => Err(GroupError::Unavailable { partition: p, why: "not hosted on this core".into() }),
            Some(l) if l.stats.is_ready() => Ok(()),
            Some(l) if l.stats.leader.load(Ordering::Relaxed) == 1 => {
                Err(GroupError::Unavailable { partition: p, why: "new leader, its first entry is not applied yet".into() })
            }
            Some(_) => Err(GroupError::Unavailable { partition: p, why: "no leader on this node".into() }),
        }
    }
}
