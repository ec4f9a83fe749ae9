//! A single node's partitions as one-member Raft groups on storage v2
//! (the node's code path): open the log and store, recover the partitions,
//! start the groups on a core, bootstrap (once), propose like toggles with
//! the engine's speculation, read linearizably; then a clean restart
//! (final checkpoint: nothing replayed) and a crash (no checkpoint: the
//! committed entries are replayed), each answering as before.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use engine::name::CharacterName;
use engine::owner::Groups;
use engine::partition::{LikeResult, Limits, Outcome, Proposal, UserId};
use replication::{open_log, CoreGroups, NoPeers, NodeInfo, OpenedLog};
use storage::log::LogOptions;
use storage::store::{Store, StoreOptions, WriterOptions};

const PARTS: [u32; 3] = [0, 1, 2];

fn log_opts() -> LogOptions {
    LogOptions { segment_bytes: 1 << 20, max_entry_bytes: 64 << 10, ..LogOptions::default() }
}

fn open(dir: &Path) -> (Store, OpenedLog) {
    let store = Store::open(&dir.join("state"), StoreOptions { cache_bytes: 8 << 20, ..Default::default() }).unwrap();
    let writer = WriterOptions { checkpoint_every: Duration::from_secs(3600), checkpoint_every_entries: u64::MAX, ..Default::default() };
    let opened = open_log(&dir.join("log-0"), 0, log_opts(), &store, &PARTS, Limits::default(), writer).unwrap();
    (store, opened)
}

fn members() -> BTreeMap<u64, NodeInfo> {
    BTreeMap::from([(1, NodeInfo { peer_addr: String::new(), http_addr: "127.0.0.1:1".into(), resp_addr: String::new() })])
}

async fn wait_ready(groups: &CoreGroups) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !PARTS.iter().all(|p| groups.ready(*p).is_ok()) {
        assert!(Instant::now() < deadline, "groups not ready: {:?}", groups.status());
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Toggle `user`'s like of `character` on partition `p` the way the owner
/// runtime does: propose, speculate, write (no await in between), settle.
async fn toggle(groups: &CoreGroups, p: u32, user: &str, character: &str) -> LikeResult {
    let machine = groups.machine(p).unwrap();
    let proposal =
        machine.borrow().propose_toggle(&UserId::parse(user).unwrap(), &CharacterName::parse(character).unwrap(), None, 1).unwrap();
    let Proposal::Append { record, answer } = proposal else { panic!("not a keyed toggle") };
    let seq = machine.borrow_mut().speculate(&record);
    let res = groups.write(p, record.encode().unwrap()).await;
    machine.borrow_mut().settle(seq);
    let Outcome::Like(applied) = Outcome::decode(&res.unwrap()).unwrap() else { panic!("a like outcome") };
    assert_eq!(applied, answer, "the applied outcome is the speculative answer");
    applied
}

async fn status(groups: &CoreGroups, p: u32, user: &str, character: &str) -> LikeResult {
    groups.read_index(p).await.unwrap();
    groups.machine(p).unwrap().borrow().like_status(user, character)
}

fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap()
}

/// What every test checks after its writes: per partition, user u{i}
/// liked c{p} for even i (toggled twice for odd i).
async fn check(groups: &CoreGroups) {
    for p in PARTS {
        for i in 0..10 {
            let s = status(groups, p, &format!("u{i}"), &format!("c{p}")).await;
            assert_eq!(s, LikeResult { liked: i % 2 == 0, like_count: 5 }, "partition {p} u{i}");
        }
    }
}

/// `clean_stop`: the final checkpoint is taken (else: as after a kill -9,
/// the store has no checkpoint of what was applied).
fn write_likes(dir: &Path, clean_stop: bool) {
    let (_store, opened) = open(dir);
    let writer = opened.writer.clone();
    let mut rt = runtime();
    rt.block_on(async {
        let groups = CoreGroups::start(1, members(), Rc::new(NoPeers), opened.partitions).await.unwrap();
        wait_ready(&groups).await;
        for p in PARTS {
            // Concurrent toggles of one partition: each sees the ones before it.
            let futs = (0..10).map(|i| {
                let groups = &groups;
                async move { toggle(groups, p, &format!("u{i}"), &format!("c{p}")).await }
            });
            let answers = futures::future::join_all(futs).await;
            let counts: Vec<u64> = answers.iter().map(|a| a.like_count).collect();
            assert_eq!(counts, (1..=10).collect::<Vec<_>>(), "partition {p}");
            for i in (1..10).step_by(2) {
                toggle(&groups, p, &format!("u{i}"), &format!("c{p}")).await;
            }
        }
        check(&groups).await;
        // Stop the groups either way (a crash in-process would leave Raft's
        // tasks holding the store); a crash is "no checkpoint after them".
        groups.shutdown().await;
    });
    drop(rt);
    if clean_stop {
        let report = futures::executor::block_on(writer.checkpoint()).unwrap();
        assert!(report.groups.iter().all(|(_, a)| a.is_some()), "{report:?}");
    }
}

fn restart_and_check(dir: &Path) -> u64 {
    let (_store, opened) = open(dir);
    let replayed: u64 = opened.partitions.iter().map(|p| p.recovered.replayed).sum();
    let mut rt = runtime();
    rt.block_on(async {
        let groups = CoreGroups::start(1, members(), Rc::new(NoPeers), opened.partitions).await.unwrap();
        wait_ready(&groups).await;
        check(&groups).await;
        let s = groups.status();
        assert!(s.iter().all(|g| g.voters == vec![1]), "one-member groups: {s:?}");
        groups.shutdown().await;
    });
    replayed
}

#[test]
fn a_clean_stop_replays_nothing_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    write_likes(dir.path(), true);
    assert_eq!(restart_and_check(dir.path()), 0, "the final checkpoint covers everything applied");
    // Twice: bootstrapping again is a no-op.
    assert_eq!(restart_and_check(dir.path()), 0);
}

#[test]
fn a_crash_replays_the_committed_entries_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    write_likes(dir.path(), false);
    let replayed = restart_and_check(dir.path());
    assert!(replayed > 0, "no checkpoint was taken: the committed entries are replayed");
}

/// A partition snapshot (the store scan, built off the core) installed on
/// another node's partition: its store and its machine answer the same,
/// and the applied state (with the membership) comes along.
#[test]
fn a_snapshot_installs_the_partition_elsewhere() {
    use replication::state_machine::PartitionMachine;
    use replication::NodeMachine;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_likes(a.path(), true);
    let (_sa, opened_a) = open(a.path());
    let (store_b, opened_b) = open(b.path());
    let mut rt = runtime();
    rt.block_on(async {
        let from = opened_a.partitions.into_iter().next().unwrap();
        let to = opened_b.partitions.into_iter().next().unwrap();
        assert_eq!(from.recovered.group, 0);
        let state = from.recovered.applied.clone().expect("partition 0 applied entries");
        let (mut ma, shared_a) = NodeMachine::new(from.recovered, from.limits.clone(), from.writer.clone(), from.stats.clone());
        let chunks = (ma.snapshot().unwrap())().unwrap();
        assert!(!chunks.is_empty());
        let part_b = to.recovered.store.clone();
        let (mut mb, shared_b) = NodeMachine::new(to.recovered, to.limits.clone(), to.writer.clone(), to.stats.clone());
        mb.install(&state, replication::SnapshotChunks { chunks }).await.unwrap();
        // The install's checkpoint raised the purge floor, so the log purge
        // openraft makes after an install reaches the disk.
        let last = state.last_applied.unwrap();
        assert_eq!(to.floor.get(), Some(last.index));
        let purge = part_b.group().purge_upto(storage::log::LogId::new(last.leader_id.term, last.index)).unwrap();
        purge.await.unwrap();
        for i in 0..10 {
            let (u, c) = (format!("u{i}"), "c0");
            assert_eq!(shared_b.borrow().like_status(&u, c), shared_a.borrow().like_status(&u, c), "{u}");
        }
        assert_eq!(mb.applied_state().unwrap(), Some(state.clone()));
        // The installed store carries the applied state for the next start.
        futures::executor::block_on(to.writer.checkpoint()).unwrap();
    });
    drop(rt);
    drop(opened_b.writer);
    drop(opened_b.log);
    drop(store_b);
    let (_sb, reopened) = open(b.path());
    let p0 = reopened.partitions.into_iter().next().unwrap();
    assert_eq!(p0.recovered.machine.like_status("u0", "c0"), LikeResult { liked: true, like_count: 5 });
    assert!(p0.recovered.applied.unwrap().membership.membership().voter_ids().eq([1]), "membership restored from the row");
}

/// A partition seeded with rows (what a migration does) starts as a group
/// from them: its machine answers from the rows, it leads without a
/// bootstrap, takes writes after them, and a restart keeps both.
#[test]
fn a_seeded_partition_starts_from_its_rows_and_takes_writes() {
    use storage::store::SnapshotRow;
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, opened) = open(dir.path());
        drop(opened.partitions);
        let row = |c: &str, u: &str| SnapshotRow { key: engine::partition::rows::relation_key(c, u), index: 1, value: Some(Vec::new()) };
        let rows = vec![row("c1", "old-a"), row("c1", "old-b")];
        replication::seed_partition(&store, 0, 1, rows, members()).unwrap();
        assert!(replication::seed_partition(&store, 0, 1, Vec::new(), members()).is_err(), "only a fresh partition is seeded");
    }
    for round in 0..2 {
        let (_store, opened) = open(dir.path());
        let mut rt = runtime();
        rt.block_on(async {
            let groups = CoreGroups::start(1, members(), Rc::new(NoPeers), opened.partitions).await.unwrap();
            wait_ready(&groups).await;
            assert_eq!(status(&groups, 1, "old-a", "c1").await, LikeResult { liked: true, like_count: 2 + round });
            if round == 0 {
                assert_eq!(toggle(&groups, 1, "new", "c1").await, LikeResult { liked: true, like_count: 3 });
            }
            groups.shutdown().await;
        });
    }
}
