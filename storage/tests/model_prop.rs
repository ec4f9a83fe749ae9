//! Property test: the log behaves like a simple in-memory model under any
//! sequence of append / truncate_after / purge_upto / reopen.
mod common;
use common::payload;
use futures::executor::block_on;
use proptest::prelude::*;
use storage::{Entry, Wal, WalOptions};

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: u64,
        size: usize,
    },
    /// Fraction (0..=100 %) of the way from first - 1 to last.
    Truncate(u8),
    /// Fraction of the way from first - 1 to last + 3 (may pass the end).
    Purge(u8),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u64..12, 0usize..400).prop_map(|(count, size)| Op::Append { count, size }),
        1 => (0u8..=100).prop_map(Op::Truncate),
        1 => (0u8..=100).prop_map(Op::Purge),
        1 => Just(Op::Reopen),
    ]
}

/// The model: entries `first..=last` with their payloads.
struct Model {
    first: u64,
    entries: Vec<Entry>,
    term: u64,
}

impl Model {
    fn last(&self) -> u64 {
        self.first + self.entries.len() as u64 - 1
    }
}

fn opts(prealloc: bool) -> WalOptions {
    WalOptions {
        segment_bytes: 2048,
        max_entry_bytes: 512,
        max_write_bytes: 700,
        max_pending: 64,
        sync: storage::WalSync::Off,
        preallocate: prealloc,
    }
}

fn body(i: u64, size: usize) -> Vec<u8> {
    let mut p = payload(i);
    p.resize(size, i as u8);
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..40), prealloc in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), opts(prealloc)).unwrap();
        let mut m = Model { first: 1, entries: Vec::new(), term: 1 };
        for op in ops {
            match op {
                Op::Append { count, size } => {
                    m.term += (count % 3 == 0) as u64;
                    let start = m.last() + 1;
                    let batch: Vec<Entry> = (start..start + count).map(|i| Entry::new(m.term, i, body(i, size))).collect();
                    let last = block_on(wal.append(batch.clone()).unwrap()).unwrap();
                    prop_assert_eq!(last, start + count - 1);
                    m.entries.extend(batch);
                }
                Op::Truncate(f) => {
                    let lo = m.first - 1;
                    let at = lo + (m.last() - lo) * f as u64 / 100;
                    block_on(wal.truncate_after(at).unwrap()).unwrap();
                    m.entries.truncate((at + 1 - m.first) as usize);
                }
                Op::Purge(f) => {
                    let lo = m.first - 1;
                    let at = lo + (m.last() + 3 - lo) * f as u64 / 100;
                    block_on(wal.purge_upto(at).unwrap()).unwrap();
                    if at >= m.first {
                        if at >= m.last() {
                            m.entries.clear();
                        } else {
                            m.entries.drain(..(at + 1 - m.first) as usize);
                        }
                        m.first = at + 1;
                    }
                }
                Op::Reopen => {
                    drop(wal);
                    let (w, rec) = Wal::open(dir.path(), opts(prealloc)).unwrap();
                    prop_assert_eq!(rec.dropped_tail_bytes, 0);
                    wal = w;
                }
            }
            prop_assert_eq!(wal.first_index(), m.first);
            prop_assert_eq!(wal.last_index(), m.last());
            let got = wal.read(m.first..=m.last()).unwrap();
            prop_assert_eq!(&got, &m.entries);
        }
    }
}
