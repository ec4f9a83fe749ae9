//! A small counter state machine for tests (and the lead's wiring tests):
//! a record is `key` or `key=+N`; the answer is the key's new value as
//! decimal text. Its state lives in an `Rc` so a test can look at it after
//! the group (or the whole node) is gone.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use bytes::Bytes;

use crate::state_machine::{AppliedState, CommittedRecord, PartitionMachine, SnapshotJob};
use crate::types::SnapshotChunks;

#[derive(Debug, Default, Clone)]
pub struct KvState {
    pub counters: BTreeMap<String, i64>,
    pub applied: Option<AppliedState>,
    /// Every record applied, in order: (index, record). Cleared by install.
    pub history: Vec<(u64, Bytes)>,
    pub installs: usize,
}

/// The counter machine; clones share state.
#[derive(Clone, Default)]
pub struct KvMachine {
    pub state: Rc<RefCell<KvState>>,
}

impl KvMachine {
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    pub fn get(&self, key: &str) -> i64 {
        self.state.borrow().counters.get(key).copied().unwrap_or(0)
    }

    fn apply_one(counters: &mut BTreeMap<String, i64>, rec: &[u8]) -> Bytes {
        let text = String::from_utf8_lossy(rec);
        let (key, delta) = match text.split_once("=+") {
            Some((k, n)) => (k.to_string(), n.parse::<i64>().unwrap_or(0)),
            None => (text.to_string(), 1),
        };
        let v = counters.entry(key).or_insert(0);
        *v += delta;
        Bytes::from(v.to_string())
    }
}

impl PartitionMachine for KvMachine {
    async fn apply(&mut self, records: Vec<CommittedRecord>, state: &AppliedState) -> io::Result<Vec<Bytes>> {
        let mut s = self.state.borrow_mut();
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(Self::apply_one(&mut s.counters, &r.record));
            s.history.push((r.index, r.record));
        }
        s.applied = Some(state.clone());
        Ok(out)
    }

    fn applied_state(&mut self) -> io::Result<Option<AppliedState>> {
        Ok(self.state.borrow().applied.clone())
    }

    fn snapshot(&mut self) -> io::Result<SnapshotJob> {
        let view = self.state.borrow().counters.clone();
        Ok(Box::new(move || {
            // one line per counter, chunked at 64 KiB of lines
            let mut chunks = Vec::new();
            let mut cur = Vec::new();
            for (k, v) in view {
                cur.extend_from_slice(format!("{k}\t{v}\n").as_bytes());
                if cur.len() >= 64 << 10 {
                    chunks.push(Bytes::from(std::mem::take(&mut cur)));
                }
            }
            if !cur.is_empty() {
                chunks.push(Bytes::from(cur));
            }
            Ok(chunks)
        }))
    }

    async fn install(&mut self, state: &AppliedState, snapshot: SnapshotChunks) -> io::Result<()> {
        let mut counters = BTreeMap::new();
        for chunk in &snapshot.chunks {
            for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let line = std::str::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "snapshot line"))?;
                let (k, v) = line.split_once('\t').ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "snapshot line"))?;
                let v = v.parse::<i64>().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "snapshot value"))?;
                counters.insert(k.to_string(), v);
            }
        }
        let mut s = self.state.borrow_mut();
        s.counters = counters;
        s.applied = Some(state.clone());
        s.history.clear();
        s.installs += 1;
        Ok(())
    }
}

/// Run openraft's log-storage conformance suite against a [`GroupLog`]
/// backend (`make` builds a fresh, empty one per test case), with the
/// counter machine as the state machine. Panics with the failing case.
pub fn run_log_suite<L, F>(make: F)
where
    L: crate::log_store::GroupLog,
    F: Fn() -> L + Send + Sync + 'static,
{
    use openraft::testing::log::{StoreBuilder, Suite};

    use crate::log_store::{LogStore, PurgeFloor};
    use crate::state_machine::StateMachine;
    use crate::types::C;

    struct Builder<F>(F);

    impl<L, F> StoreBuilder<C, LogStore<L>, StateMachine<KvMachine>, ()> for Builder<F>
    where
        L: crate::log_store::GroupLog,
        F: Fn() -> L + Send + Sync + 'static,
    {
        async fn build(&self) -> Result<((), LogStore<L>, StateMachine<KvMachine>), openraft::StorageError<C>> {
            Ok(((), LogStore::new((self.0)(), PurgeFloor::unlimited()), StateMachine::new(KvMachine::new())))
        }
    }

    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().enable_timer().build().expect("monoio runtime");
    rt.block_on(async move {
        Suite::test_all(Builder(make)).await.expect("openraft log-storage suite");
    });
}
