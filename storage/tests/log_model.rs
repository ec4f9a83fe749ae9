//! Property test: the v2 log behaves like a simple in-memory model of
//! several groups under any sequence of append (including conflicting
//! appends that replace a tail), truncate, purge, vote, committed and
//! reopen — with segments small enough to roll and be collected often.
mod logkit;

use futures::executor::block_on;
use proptest::prelude::*;
use storage::log::{GroupLog, Log, LogId, LogOptions, WalSync};
use storage::Entry;

const GROUPS: u32 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// `back` > 0: start that many entries before the end (a conflict).
    Append {
        group: u32,
        back: u8,
        count: u64,
        size: usize,
        bump: bool,
        start: u8,
    },
    Truncate {
        group: u32,
        pick: Option<u8>,
    },
    Purge {
        group: u32,
        pick: u8,
    },
    Vote {
        group: u32,
        byte: u8,
    },
    Committed {
        group: u32,
        pick: Option<(u8, u8)>,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..GROUPS;
    prop_oneof![
        8 => (g.clone(), prop_oneof![3 => Just(0u8), 1 => 1u8..6], 1u64..8, 0usize..300, any::<bool>(), 0u8..3)
            .prop_map(|(group, back, count, size, bump, start)| Op::Append { group, back, count, size, bump, start }),
        1 => (g.clone(), proptest::option::of(any::<u8>())).prop_map(|(group, pick)| Op::Truncate { group, pick }),
        2 => (g.clone(), any::<u8>()).prop_map(|(group, pick)| Op::Purge { group, pick }),
        1 => (g.clone(), any::<u8>()).prop_map(|(group, byte)| Op::Vote { group, byte }),
        1 => (g.clone(), proptest::option::of((any::<u8>(), any::<u8>()))).prop_map(|(group, pick)| Op::Committed { group, pick }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default, Clone, Debug)]
struct Model {
    first: u64,
    last: Option<LogId>,
    purged: Option<LogId>,
    committed: Option<LogId>,
    vote: Option<Vec<u8>>,
    entries: Vec<Entry>,
    term: u64,
}

impl Model {
    fn term_of(&self, index: u64) -> Option<u64> {
        self.entries.iter().find(|e| e.index == index).map(|e| e.term).or(self.purged.filter(|p| p.index == index).map(|p| p.term))
    }
}

fn opts(prealloc: bool) -> LogOptions {
    LogOptions {
        segment_bytes: 2048,
        max_entry_bytes: 400,
        max_vote_bytes: 16,
        max_write_bytes: 700,
        max_pending: 64,
        sync: WalSync::Off,
        preallocate: prealloc,
        group_cache_bytes: 512,
    }
}

fn body(g: u32, i: u64, size: usize) -> Vec<u8> {
    let mut p = logkit::payload(g, i);
    p.resize(size, i as u8 ^ g as u8);
    p
}

fn check(g: &GroupLog, m: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(g.last_log_id(), m.last, "group {} last", g.id());
    prop_assert_eq!(g.last_purged(), m.purged, "group {} purged", g.id());
    prop_assert_eq!(g.read_committed(), m.committed);
    prop_assert_eq!(g.read_vote(), m.vote.clone());
    if !m.entries.is_empty() {
        prop_assert_eq!(g.first_index(), m.entries[0].index);
    } else if m.last.is_some() {
        prop_assert_eq!(g.first_index(), m.last.unwrap().index + 1);
    }
    let got = g.read(..).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&got, &m.entries, "group {} entries", g.id());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60), prealloc in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), opts(prealloc)).unwrap();
        let mut models = vec![Model::default(); GROUPS as usize];
        for op in ops {
            match op {
                Op::Append { group, back, count, size, bump, start } => {
                    let m = &mut models[group as usize];
                    let g = log.group(group).unwrap();
                    m.term += bump as u64;
                    let from = match m.last {
                        None => start as u64 * 5, // a new group starts anywhere, 0 included
                        Some(l) => {
                            let end = l.index + 1;
                            let lowest = m.purged.map_or(m.first, |p| p.index + 1).max(m.first);
                            if back == 0 || m.entries.is_empty() { end } else { end.saturating_sub(back as u64).max(lowest) }
                        }
                    };
                    let prev_term = from.checked_sub(1).and_then(|p| m.term_of(p)).unwrap_or(0);
                    m.term = m.term.max(prev_term);
                    let batch: Vec<Entry> = (from..from + count).map(|i| Entry::new(m.term, i, body(group, i, size))).collect();
                    let last = block_on(g.append(batch.clone()).unwrap()).unwrap();
                    prop_assert_eq!(last, from + count - 1);
                    if m.last.is_none() {
                        m.first = from;
                    }
                    m.entries.retain(|e| e.index < from);
                    m.entries.extend(batch);
                    m.last = Some(LogId::new(m.term, from + count - 1));
                }
                Op::Truncate { group, pick } => {
                    let m = &mut models[group as usize];
                    let g = log.group(group).unwrap();
                    let mut cands: Vec<u64> = m.purged.map(|p| p.index).into_iter().collect();
                    cands.extend(m.entries.iter().map(|e| e.index));
                    match pick {
                        None => {
                            block_on(g.truncate_after(None).unwrap()).unwrap();
                            m.entries.clear();
                            m.last = m.purged;
                            m.first = m.purged.map_or(0, |p| p.index + 1);
                        }
                        Some(_) if cands.is_empty() => {}
                        Some(p) => {
                            let a = cands[p as usize % cands.len()];
                            block_on(g.truncate_after(Some(a)).unwrap()).unwrap();
                            m.entries.retain(|e| e.index <= a);
                            m.last = Some(LogId::new(m.term_of(a).unwrap(), a));
                        }
                    }
                }
                Op::Purge { group, pick } => {
                    let m = &mut models[group as usize];
                    let g = log.group(group).unwrap();
                    let Some(last) = m.last else { continue };
                    let mut cands: Vec<LogId> = m.entries.iter().map(|e| LogId::new(e.term, e.index)).collect();
                    cands.extend((1..=3).map(|k| LogId::new(m.term.max(last.term), last.index + k)));
                    let upto = cands[pick as usize % cands.len()];
                    block_on(g.purge_upto(upto).unwrap()).unwrap();
                    if m.purged.is_none_or(|p| upto.index > p.index) {
                        m.entries.retain(|e| e.index > upto.index);
                        m.purged = Some(upto);
                        m.first = upto.index + 1;
                        if upto.index >= last.index {
                            m.last = Some(upto);
                            m.term = m.term.max(upto.term);
                        }
                    }
                }
                Op::Vote { group, byte } => {
                    let g = log.group(group).unwrap();
                    let v = vec![byte; 1 + byte as usize % 16];
                    block_on(g.save_vote(&v).unwrap()).unwrap();
                    models[group as usize].vote = Some(v);
                }
                Op::Committed { group, pick } => {
                    let g = log.group(group).unwrap();
                    let c = pick.map(|(t, i)| LogId::new(t as u64, i as u64));
                    block_on(g.save_committed(c).unwrap()).unwrap();
                    models[group as usize].committed = c;
                }
                Op::Reopen => {
                    drop(log);
                    let (l, rec) = Log::open(dir.path(), opts(prealloc)).unwrap();
                    prop_assert_eq!(rec.torn_tail, None);
                    log = l;
                }
            }
            for (gid, m) in models.iter().enumerate() {
                check(&log.group(gid as u32).unwrap(), m)?;
            }
        }
        // Whatever the history, a final reopen agrees and nothing unneeded is kept.
        drop(log);
        let (log, _) = Log::open(dir.path(), opts(prealloc)).unwrap();
        for (gid, m) in models.iter().enumerate() {
            check(&log.group(gid as u32).unwrap(), m)?;
        }
        let st = log.stats();
        prop_assert_eq!(st.segments, logkit::segments(dir.path()).len());
    }
}
