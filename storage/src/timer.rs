//! One process-wide thread that wakes futures at a deadline, so the log's
//! bounded waits ([`crate::log::GroupLog::append_within`]) keep their
//! deadline on any executor without depending on one (monoio, tokio or a
//! plain `block_on`) — and even while the log's syncer is stuck in a slow
//! fdatasync.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::Instant;

struct Due {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Due>>,
    seq: u64,
}

struct Timer {
    state: Mutex<State>,
    cv: Condvar,
}

fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer { state: Mutex::new(State::default()), cv: Condvar::new() }));
        match std::thread::Builder::new().name("storage-timer".into()).spawn(move || run(t)) {
            Ok(_) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "could not start the storage timer thread; bounded waits fall back to their next wake-up");
                None
            }
        }
    })
}

fn run(t: &'static Timer) {
    let mut st = t.state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        while st.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Reverse(d) = st.heap.pop().expect("peeked");
            d.waker.wake();
        }
        st = match st.heap.peek() {
            None => t.cv.wait(st).unwrap_or_else(|p| p.into_inner()),
            Some(Reverse(d)) => {
                let dur = d.at.saturating_duration_since(now);
                t.cv.wait_timeout(st, dur).unwrap_or_else(|p| p.into_inner()).0
            }
        };
    }
}

/// Wake `waker` at `at` (at once if `at` has passed). Entries leave the
/// queue at their deadline, so it holds at most the waits that are running.
pub(crate) fn wake_at(at: Instant, waker: Waker) {
    let Some(t) = timer() else {
        waker.wake();
        return;
    };
    let mut st = t.state.lock().unwrap_or_else(|p| p.into_inner());
    st.seq += 1;
    let seq = st.seq;
    let earliest = st.heap.peek().is_none_or(|Reverse(d)| at < d.at);
    st.heap.push(Reverse(Due { at, seq, waker }));
    drop(st);
    if earliest {
        t.cv.notify_one();
    }
}
