//! The bounded queue between the log's callers and its syncer thread.
//!
//! Appends are admitted while fewer than `max_pending` appends wait;
//! control operations (truncate, purge, vote, committed) while fewer than
//! `2 × max_pending` requests wait in all, so a burst of appends cannot
//! starve a group's vote or purge. A caller that finds the queue full can
//! leave a waker, woken as soon as the syncer takes requests out — the
//! check and the registration happen under one lock, so no wake-up is lost.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;

use super::group::{AppendPlan, GroupCell};
use super::LogId;
use crate::completion::Reply;
use crate::Entry;

pub(crate) enum Op {
    Append { plan: AppendPlan, entries: Vec<Arc<Entry>>, done: Reply<u64> },
    Truncate { last: Option<LogId>, done: Reply<()> },
    Purge { upto: LogId, done: Reply<()> },
    Vote { vote: Vec<u8>, done: Reply<()> },
    Committed { committed: Option<LogId>, done: Reply<()> },
}

pub(crate) struct Request {
    pub group: Arc<GroupCell>,
    pub op_seq: u64,
    pub op: Op,
}

impl Request {
    fn is_append(&self) -> bool {
        matches!(self.op, Op::Append { .. })
    }
}

#[derive(Default)]
struct Inner {
    reqs: VecDeque<Request>,
    appends: usize,
    closed: bool,
    wakers: Vec<Waker>,
}

pub(crate) struct Queue {
    inner: Mutex<Inner>,
    cv: Condvar,
    max_appends: usize,
}

impl Queue {
    pub fn new(max_appends: usize) -> Queue {
        Queue { inner: Mutex::new(Inner::default()), cv: Condvar::new(), max_appends }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn room(&self, q: &Inner, append: bool) -> bool {
        if append {
            q.appends < self.max_appends
        } else {
            q.reqs.len() < 2 * self.max_appends
        }
    }

    /// Queue `req`, or hand it back when full (leaving `waker`, if given,
    /// to be woken once the syncer makes room). `Err(None)`: closed.
    pub fn push(&self, req: Request, waker: Option<&Waker>) -> Result<(), Option<Request>> {
        let mut q = self.lock();
        if q.closed {
            return Err(None);
        }
        let append = req.is_append();
        if !self.room(&q, append) {
            if let Some(w) = waker {
                if !q.wakers.iter().any(|x| x.will_wake(w)) {
                    q.wakers.push(w.clone());
                }
            }
            return Err(Some(req));
        }
        q.appends += append as usize;
        let was_empty = q.reqs.is_empty();
        q.reqs.push_back(req);
        drop(q);
        if was_empty {
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Block until requests are queued, then move up to `max` of them into
    /// `out`. Returns false once the queue is closed and empty.
    pub fn take(&self, max: usize, out: &mut Vec<Request>) -> bool {
        let mut q = self.lock();
        while q.reqs.is_empty() {
            if q.closed {
                return false;
            }
            q = self.cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        let n = q.reqs.len().min(max);
        let before = out.len();
        out.extend(q.reqs.drain(..n));
        q.appends -= out[before..].iter().filter(|r| r.is_append()).count();
        let wakers = std::mem::take(&mut q.wakers);
        drop(q);
        for w in wakers {
            w.wake();
        }
        true
    }

    pub fn len(&self) -> usize {
        self.lock().reqs.len()
    }

    /// No more requests; the syncer finishes what is queued and stops.
    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        let wakers = std::mem::take(&mut q.wakers);
        drop(q);
        self.cv.notify_all();
        for w in wakers {
            w.wake();
        }
    }
}
