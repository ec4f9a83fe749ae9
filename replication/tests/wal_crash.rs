//! Crash points inside the Raft log adapter on storage v2 (issue 11): a
//! child process drives a group's log through [`WalGroup`] (appends, term
//! changes with truncations, purges, votes, committed log ids) and aborts
//! right after the n-th operation of one kind was handed to the log, before
//! it was known durable. The parent reopens the log and checks, through the
//! same adapter openraft uses ([`LogStore`]): the log state is consistent
//! (purged <= last, the entries between are all there, contiguous, terms
//! never decrease, payloads decode), and it equals what the acknowledged
//! operations made — plus, possibly, the one operation in flight (for an
//! append, a prefix of its entries).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;
use replication::codec;
use replication::log_store::{GroupLog, LogRecord, LogStore, PurgeFloor};
use replication::types::{EntryPayload, Vote};
use replication::{Record, WalGroup};
use storage::log::{Log, LogOptions};

const DIR_ENV: &str = "WAL_CRASH_DIR";
const GROUP: u32 = 2;

fn opts() -> LogOptions {
    LogOptions { segment_bytes: 64 << 10, max_entry_bytes: 8 << 10, group_cache_bytes: 4 << 10, ..LogOptions::default() }
}

fn payload(index: u64, term: u64) -> Bytes {
    codec::encode_payload(&EntryPayload::Normal(Record(Bytes::from(format!("{index}:{term}:{}", "x".repeat((index % 50) as usize))))))
        .into()
}

fn vote(term: u64) -> Vec<u8> {
    codec::encode_vote(&Vote::new(term, 1))
}

/// One operation of the script, as the child reports it.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Append { from: u64, to: u64, term: u64 },
    Truncate { after: u64 },
    Purge { term: u64, index: u64 },
    Vote { term: u64 },
    Committed { term: u64, index: u64 },
}

impl Op {
    fn line(&self) -> String {
        match self {
            Op::Append { from, to, term } => format!("append {from} {to} {term}"),
            Op::Truncate { after } => format!("truncate {after}"),
            Op::Purge { term, index } => format!("purge {term} {index}"),
            Op::Vote { term } => format!("vote {term}"),
            Op::Committed { term, index } => format!("committed {term} {index}"),
        }
    }

    fn parse(s: &str) -> Op {
        let w: Vec<&str> = s.split_whitespace().collect();
        let n = |i: usize| w[i].parse::<u64>().unwrap();
        match w[0] {
            "append" => Op::Append { from: n(1), to: n(2), term: n(3) },
            "truncate" => Op::Truncate { after: n(1) },
            "purge" => Op::Purge { term: n(1), index: n(2) },
            "vote" => Op::Vote { term: n(1) },
            "committed" => Op::Committed { term: n(1), index: n(2) },
            other => panic!("unknown op {other}"),
        }
    }
}

/// The state the acknowledged operations define.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    /// index → term of the live entries.
    entries: BTreeMap<u64, u64>,
    purged: Option<(u64, u64)>,
    vote: Option<u64>,
    committed: Option<(u64, u64)>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append { from, to, term } => {
                self.entries.retain(|i, _| *i < from);
                for i in from..=to {
                    self.entries.insert(i, term);
                }
            }
            Op::Truncate { after } => self.entries.retain(|i, _| *i <= after),
            Op::Purge { term, index } => {
                self.entries.retain(|i, _| *i > index);
                self.purged = Some((term, index));
            }
            Op::Vote { term } => self.vote = Some(term),
            Op::Committed { term, index } => self.committed = Some((term, index)),
        }
    }
}

/// The child: the script, reporting `SUBMIT` before and `ACK` after each
/// operation became durable. The crash point aborts it.
#[test]
fn wal_crash_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else { return };
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
    rt.block_on(async move {
        let (log, _) = Log::open(Path::new(&dir), opts()).unwrap();
        let mut g = WalGroup::new(log.group(GROUP).unwrap());
        let mut model = Model::default();
        let (mut next, mut term) = (0u64, 1u64);
        for round in 1..=60u64 {
            let mut ops = vec![Op::Append { from: next, to: next + 9, term }];
            if round % 5 == 0 {
                ops.push(Op::Vote { term });
            }
            if round % 3 == 0 {
                ops.push(Op::Committed { term, index: next + 4 });
            }
            if round % 7 == 0 {
                ops.push(Op::Truncate { after: next + 6 });
            }
            if round % 11 == 0 {
                let first = *model.entries.keys().next().unwrap();
                let index = first + 20;
                ops.push(Op::Purge { term: 0, index });
            }
            for mut op in ops {
                // Terms of purges come from the model (the entry's term).
                if let Op::Purge { index, .. } = op {
                    let t = model.entries.get(&index).copied().unwrap_or(term);
                    op = Op::Purge { term: t, index };
                }
                println!("SUBMIT {}", op.line());
                let durable = match &op {
                    Op::Append { from, to, term } => {
                        let records = (*from..=*to).map(|i| LogRecord { term: *term, index: i, payload: payload(i, *term) }).collect();
                        g.append(records).map_err(|_| "append refused").unwrap()
                    }
                    Op::Truncate { after } => g.truncate_after(Some(*after)).unwrap(),
                    Op::Purge { term, index } => g.purge_upto(*term, *index).unwrap(),
                    Op::Vote { term } => g.save_vote(&vote(*term)).unwrap(),
                    Op::Committed { term, index } => g.save_committed(Some((*term, *index))).unwrap(),
                };
                durable.await.unwrap();
                println!("ACK {}", op.line());
                model.apply(&op);
                match op {
                    Op::Append { to, .. } => next = to + 1,
                    Op::Truncate { after } => {
                        next = after + 1;
                        term += 1;
                    }
                    _ => {}
                }
            }
        }
        println!("DONE");
    });
}

/// The log as openraft's adapter reads it after the restart.
struct Found {
    entries: BTreeMap<u64, u64>,
    purged: Option<(u64, u64)>,
    last: Option<(u64, u64)>,
    vote: Option<u64>,
    committed: Option<(u64, u64)>,
}

fn reopen(dir: &Path) -> Found {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
    rt.block_on(async {
        let (log, _) = Log::open(dir, opts()).unwrap_or_else(|e| panic!("the log refuses to open after the crash: {e}"));
        let mut store = LogStore::new(WalGroup::new(log.group(GROUP).unwrap()), PurgeFloor::unlimited());
        let state = store.get_log_state().await.unwrap();
        let pair = |l: &replication::types::LogId| (l.leader_id.term, l.index);
        let purged = state.last_purged_log_id.as_ref().map(pair);
        let last = state.last_log_id.as_ref().map(pair);
        assert!(purged <= last || last.is_none(), "purged {purged:?} after last {last:?}");
        let from = purged.map_or(0, |p| p.1 + 1);
        let mut entries = BTreeMap::new();
        if let Some((_, l)) = last {
            let got = store.try_get_log_entries(from..=l).await.unwrap();
            let mut prev_term = 0;
            for (k, e) in got.iter().enumerate() {
                assert_eq!(e.log_id.index, from + k as u64, "entries are contiguous from the purge point");
                let t = e.log_id.leader_id.term;
                assert!(t >= prev_term, "terms never decrease");
                prev_term = t;
                let EntryPayload::Normal(Record(b)) = &e.payload else { panic!("payload kind") };
                assert!(b.starts_with(format!("{}:{t}:", e.log_id.index).as_bytes()), "payload of {}", e.log_id.index);
                entries.insert(e.log_id.index, t);
            }
            if l >= from {
                assert_eq!(got.len() as u64, l - from + 1, "every live entry is readable");
            }
        }
        let vote = store.read_vote().await.unwrap().map(|v| v.leader_id.term);
        let committed = store.read_committed().await.unwrap().map(|c| pair(&c));
        Found { entries, purged, last, vote, committed }
    })
}

fn check(found: &Found, acked: &Model, inflight: Option<&Op>, what: &str) {
    let mut candidates = vec![acked.clone()];
    if let Some(op) = inflight {
        match op {
            Op::Append { from, to, .. } => {
                // Any prefix of the append may have become durable.
                for end in *from..=*to {
                    let mut m = acked.clone();
                    if let Op::Append { term, .. } = op {
                        m.apply(&Op::Append { from: *from, to: end, term: *term });
                    }
                    candidates.push(m);
                }
            }
            op => {
                let mut m = acked.clone();
                m.apply(op);
                candidates.push(m);
            }
        }
    }
    let ok = candidates.iter().any(|m| {
        // The purge point decides what is live; an in-flight purge may be
        // durable in part (its entries gone, the mark not: not possible, it
        // is one record) — the whole model is compared.
        m.entries == found.entries && m.purged == found.purged && m.vote == found.vote && m.committed == found.committed
    });
    assert!(
        ok,
        "{what}: the reopened log matches no state the acknowledged operations (+ the one in flight: {inflight:?}) allow\n\
         found entries {}..={:?} purged {:?} last {:?} vote {:?} committed {:?}\nacked: entries {:?}..={:?} purged {:?} vote {:?} committed {:?}",
        found.entries.keys().next().copied().unwrap_or(0),
        found.entries.keys().last(),
        found.purged,
        found.last,
        found.vote,
        found.committed,
        acked.entries.keys().next(),
        acked.entries.keys().last(),
        acked.purged,
        acked.vote,
        acked.committed,
    );
}

#[test]
fn crash_points_inside_the_adapter_leave_a_log_the_acknowledged_operations_explain() {
    let exe = std::env::current_exe().unwrap();
    let mut runs = 0;
    for (op, hits) in
        [("append", [1, 13, 58]), ("truncate", [1, 4, 8]), ("purge", [1, 3, 5]), ("vote", [1, 6, 12]), ("committed", [1, 9, 20])]
    {
        for n in hits {
            let dir = tempfile::tempdir().unwrap();
            let out = Command::new(&exe)
                .args(["--exact", "wal_crash_child", "--nocapture", "--test-threads", "1"])
                .env(DIR_ENV, dir.path())
                .env(replication::wal::CRASH_ENV, format!("{op}@{n}"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{op}@{n}: the child must crash\n{stdout}\n{stderr}");
            assert!(stderr.contains(&format!("crash point: {op}@{n}")), "{op}@{n}: crashed elsewhere\n{stderr}");
            let mut acked = Model::default();
            let mut inflight = None;
            for line in stdout.lines() {
                // libtest may print "test wal_crash_child ... " before the first line.
                if let Some((_, rest)) = line.split_once("SUBMIT ") {
                    inflight = Some(Op::parse(rest));
                } else if let Some(rest) = line.strip_prefix("ACK ") {
                    let op = Op::parse(rest);
                    assert_eq!(inflight.as_ref(), Some(&op));
                    acked.apply(&op);
                    inflight = None;
                }
            }
            let found = reopen(dir.path());
            check(&found, &acked, inflight.as_ref(), &format!("{op}@{n}"));
            // The reopened log takes the script further: it is a working log.
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().unwrap();
            rt.block_on(async {
                let (log, _) = Log::open(dir.path(), opts()).unwrap();
                let mut g = WalGroup::new(log.group(GROUP).unwrap());
                let next = found.last.map_or(0, |l| l.1 + 1);
                let term = found.last.map_or(1, |l| l.0) + 1;
                let records = (next..next + 5).map(|i| LogRecord { term, index: i, payload: payload(i, term) }).collect();
                g.append(records).map_err(|_| "append refused").unwrap().await.unwrap();
                assert_eq!(g.bounds().1, Some((term, next + 4)));
            });
            runs += 1;
        }
    }
    assert_eq!(runs, 15);
}
