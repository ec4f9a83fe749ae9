//! A RESP lane: one simulated client with up to `pipeline` commands in
//! flight, paced by its [`LaneSchedule`] like an HTTP lane.
//!
//! A lane sends its commands in batches: every command due when the lane
//! is free, at most `pipeline` of them (closed loop: always `pipeline`),
//! written back to back, then their replies read in order. Each command's
//! latency runs from its intended send time (open loop) to its own reply.
//!
//! Cluster: a command goes to the node that owns its key's slot when the
//! thread's slot map (from `CLUSTER SLOTS`) knows it, else to the lane's
//! target. A `-MOVED slot host:port` is followed to that node (and
//! remembered, and the map refreshed), a `-TRYAGAIN` retried after a pause;
//! a command is sent at most [`MAX_ATTEMPTS`] times, and the reply to its
//! last send is what it counts as. Redirects and retries are counted apart.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::cluster::{key_slot, parse_redirect, SlotMap};
use super::conn::{ConnError, Reply, RespConn};
use crate::report::{ErrorCode, Outcome, Recorder};
use crate::run::{sleep_until, Phase, CONNECT_BACKOFF};
use crate::schedule::{latency_origin, LaneSchedule, Timing};
use crate::workload::LaneRequests;

/// Sends of one command at most (first send, redirects and retries).
pub const MAX_ATTEMPTS: u8 = 5;
/// Pause before resending commands answered `-TRYAGAIN`.
pub const TRYAGAIN_BACKOFF: Duration = Duration::from_millis(20);
/// Least time between two `CLUSTER SLOTS` refreshes of one thread.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(250);
/// Most connections one lane keeps (one per node it talks to).
pub const MAX_LANE_CONNECTIONS: usize = 64;

/// What the lanes of one bench thread share: the slot map.
#[derive(Default)]
pub struct ThreadShared {
    slots: RefCell<SlotMap>,
    /// The first lane of the thread asked for the map (at setup).
    asked: Cell<bool>,
    last_refresh: Cell<Option<Instant>>,
}

/// Where a command of the current batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// To be sent (first time, or to the node a `-MOVED` named).
    ToSend,
    /// Answered `-TRYAGAIN`: resend after a pause.
    TryAgain,
    Done {
        outcome: Outcome,
        at: Instant,
        wire_bytes: u64,
    },
}

#[derive(Debug, Clone)]
struct Pending {
    route: &'static str,
    intended: Instant,
    /// The encoded command in the batch buffer.
    bytes: Range<usize>,
    target: SocketAddr,
    attempts: u8,
    redirects: u8,
    retries: u8,
    asks: u8,
    /// First send (latency origin when the lane was idle).
    sent: Option<Instant>,
    state: State,
}

struct Lane {
    phase: Rc<Phase>,
    rec: Rc<RefCell<Recorder>>,
    shared: Rc<ThreadShared>,
    reqs: LaneRequests,
    /// The lane's own target: where commands go without a slot map.
    seed: SocketAddr,
    conns: Vec<RespConn>,
    /// Connections opened so far (picks the next one's user).
    opened: u64,
    /// The batch's encoded commands, and what became of each.
    cmds: Vec<u8>,
    pending: Vec<Pending>,
    /// Reused write buffer.
    out: Vec<u8>,
    /// A connect or its setup failed in this batch: pause before the next.
    backoff: bool,
}

pub(crate) async fn lane_loop(phase: Rc<Phase>, rec: Rc<RefCell<Recorder>>, shared: Rc<ThreadShared>, lane: usize, reqs: LaneRequests) {
    let mut sched = LaneSchedule::new(phase.pacing, phase.t0, lane, phase.lanes, phase.seed);
    let seed = phase.targets[reqs.target_index()].addr;
    let mut l = Lane {
        phase: Rc::clone(&phase),
        rec,
        shared,
        reqs,
        seed,
        conns: Vec::new(),
        opened: 0,
        cmds: Vec::with_capacity(256 * phase.pipeline),
        pending: Vec::with_capacity(phase.pipeline),
        out: Vec::with_capacity(256 * phase.pipeline),
        backoff: false,
    };
    // Connect (and learn the slot map) before t0 so setup is not in the
    // first sample; a failure here is retried (and counted) at the first batch.
    if monoio::time::timeout(phase.timeout, l.setup()).await.is_err() {
        // A cancelled read leaves its connection mid-reply.
        l.conns.clear();
    }
    sleep_until(phase.t0).await;
    // When the lane's previous batch finished (see `latency_origin`).
    let mut free_at = phase.t0;
    // An intended time taken from the schedule but not due yet.
    let mut peeked: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let first = peeked.take().unwrap_or_else(|| sched.next_intended(now));
        if first >= phase.end {
            break;
        }
        if now >= phase.hard_stop {
            l.count_unsent(first, &mut sched, now);
            break;
        }
        sleep_until(first).await;
        l.start_batch(first);
        while l.pending.len() < phase.pipeline {
            let next = sched.next_intended(Instant::now());
            if next >= phase.end || next > Instant::now() {
                peeked = Some(next);
                break;
            }
            l.add(next);
        }
        l.execute().await;
        l.record_batch(free_at);
        free_at = Instant::now();
        if std::mem::take(&mut l.backoff) {
            monoio::time::sleep(CONNECT_BACKOFF).await;
            free_at = Instant::now();
        }
    }
}

impl Lane {
    /// Opens the lane's first connection; the thread's first lane also asks
    /// it for the slot map.
    async fn setup(&mut self) {
        if self.conn_for(self.seed).await.is_err() {
            return;
        }
        if self.phase.slot_map && !self.shared.asked.replace(true) {
            self.refresh_slots(self.seed).await;
        }
    }

    /// Open loop, hopelessly behind: every command still due is an error,
    /// not a silently skipped sample.
    fn count_unsent(&self, first: Instant, sched: &mut LaneSchedule, now: Instant) {
        let mut due = first;
        while due < self.phase.end {
            let end = self.phase.end;
            self.record(Sample { route: "(not sent)", outcome: Outcome::Unsent, timing: None, wire_bytes: 0, intended: due, at: end });
            due = sched.next_intended(now);
        }
    }

    fn start_batch(&mut self, intended: Instant) {
        self.cmds.clear();
        self.pending.clear();
        self.add(intended);
    }

    /// Appends the lane's next command, routed by its key's slot.
    fn add(&mut self, intended: Instant) {
        let start = self.cmds.len();
        let c = self.reqs.next_resp(&mut self.cmds);
        let slot = key_slot(&self.cmds[c.key]);
        let mapped = if self.phase.slot_map { self.shared.slots.borrow().node_of(slot) } else { None };
        self.pending.push(Pending {
            route: c.route,
            intended,
            bytes: start..self.cmds.len(),
            target: mapped.unwrap_or(self.seed),
            attempts: 0,
            redirects: 0,
            retries: 0,
            asks: 0,
            sent: None,
            state: State::ToSend,
        });
    }

    /// Runs the batch to its final replies within the request timeout;
    /// whatever is unanswered then is a timeout (and the lane reconnects).
    async fn execute(&mut self) {
        let timeout = self.phase.timeout;
        if monoio::time::timeout(timeout, self.exchange_all()).await.is_err() {
            let now = Instant::now();
            for p in self.pending.iter_mut().filter(|p| !matches!(p.state, State::Done { .. })) {
                p.state = State::Done { outcome: Outcome::Timeout, at: now, wire_bytes: 0 };
            }
            // A cancelled read leaves its connection mid-reply.
            self.conns.clear();
        }
    }

    /// Send rounds until every command has its final reply or used its attempts.
    async fn exchange_all(&mut self) {
        loop {
            let mut open = self.pending.iter().filter(|p| !matches!(p.state, State::Done { .. })).peekable();
            if open.peek().is_none() {
                return;
            }
            if open.any(|p| p.state == State::TryAgain) {
                monoio::time::sleep(TRYAGAIN_BACKOFF).await;
            }
            let moved_to = self.round().await;
            if let Some(node) = moved_to {
                self.maybe_refresh(node).await;
            }
        }
    }

    /// One send round: every open command to its target (one write per
    /// node, all written before any reply is read), then the replies of
    /// each node in order. Returns a node a
    /// `-MOVED` named (to refresh the slot map from).
    async fn round(&mut self) -> Option<SocketAddr> {
        let mut targets: Vec<SocketAddr> = Vec::new();
        for p in self.pending.iter().filter(|p| !matches!(p.state, State::Done { .. })) {
            if !targets.contains(&p.target) {
                targets.push(p.target);
            }
        }
        let mut written = Vec::with_capacity(targets.len());
        for t in targets {
            if let Some(indices) = self.send_to(t).await {
                written.push((t, indices));
            }
        }
        let mut moved_to = None;
        for (t, indices) in written {
            moved_to = self.read_replies(t, &indices).await.or(moved_to);
        }
        moved_to
    }

    /// Writes the open commands for `target` in one write; returns their
    /// indices, or `None` when none went out (their outcome is set).
    async fn send_to(&mut self, target: SocketAddr) -> Option<Vec<usize>> {
        let indices: Vec<usize> = (0..self.pending.len())
            .filter(|&i| self.pending[i].target == target && !matches!(self.pending[i].state, State::Done { .. }))
            .collect();
        let opening = Instant::now();
        if let Err(e) = self.conn_for(target).await {
            for &i in &indices {
                self.pending[i].sent.get_or_insert(opening);
            }
            self.fail(&indices, &e);
            return None;
        }
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        for &i in &indices {
            out.extend_from_slice(&self.cmds[self.pending[i].bytes.clone()]);
        }
        let conn = self.conns.iter_mut().find(|c| c.addr == target).expect("connected above");
        let now = Instant::now();
        let (out, res) = conn.write(out).await;
        self.out = out;
        for &i in &indices {
            let p = &mut self.pending[i];
            p.sent.get_or_insert(now);
            p.attempts += 1;
        }
        if let Err(e) = res {
            self.drop_conn(target);
            self.fail(&indices, &e);
            return None;
        }
        Some(indices)
    }

    /// Reads one reply per command sent to `target`, in order.
    async fn read_replies(&mut self, target: SocketAddr, indices: &[usize]) -> Option<SocketAddr> {
        let mut moved_to = None;
        for (n, &i) in indices.iter().enumerate() {
            let Some(conn) = self.conns.iter_mut().find(|c| c.addr == target) else {
                // Evicted for a newer node's connection (more than
                // MAX_LANE_CONNECTIONS nodes): its replies are gone with it.
                self.fail(&indices[n..], &ConnError::Closed);
                return moved_to;
            };
            match conn.next_reply().await {
                Ok((reply, wire_bytes)) => {
                    if let Some(node) = self.settle(i, reply, wire_bytes) {
                        moved_to = Some(node);
                    }
                }
                Err(e) => {
                    self.drop_conn(target);
                    self.fail(&indices[n..], &e);
                    return moved_to;
                }
            }
        }
        moved_to
    }

    /// What one reply means for command `i`: final, or redirected, or to retry.
    fn settle(&mut self, i: usize, reply: Reply, wire_bytes: u64) -> Option<SocketAddr> {
        let now = Instant::now();
        let asked = self.pending[i].target;
        // The last attempt's answer is final, whatever it says.
        let may_resend = self.pending[i].attempts < MAX_ATTEMPTS;
        let outcome = match reply {
            Reply::Value => Outcome::Ok(0),
            Reply::Null => Outcome::NullReply,
            Reply::Error(text) => {
                let code = ErrorCode::of_text(&text);
                match code.as_str() {
                    _ if code.is_shed() => Outcome::Shed,
                    "MOVED" => match parse_redirect(&text, asked.ip()) {
                        Some(r) if may_resend => {
                            let p = &mut self.pending[i];
                            p.redirects += 1;
                            p.target = r.addr;
                            p.state = State::ToSend;
                            if self.phase.slot_map {
                                self.shared.slots.borrow_mut().set(r.slot, r.addr);
                                return Some(r.addr);
                            }
                            return None;
                        }
                        _ => Outcome::RespError(code),
                    },
                    "TRYAGAIN" if may_resend => {
                        let p = &mut self.pending[i];
                        p.retries += 1;
                        p.state = State::TryAgain;
                        return None;
                    }
                    "ASK" => {
                        self.pending[i].asks += 1;
                        Outcome::RespError(code)
                    }
                    _ => Outcome::RespError(code),
                }
            }
        };
        self.pending[i].state = State::Done { outcome, at: now, wire_bytes };
        None
    }

    /// Refetches the slot map from `node` after a `-MOVED`, at most once per
    /// [`REFRESH_INTERVAL`] per thread.
    async fn maybe_refresh(&mut self, node: SocketAddr) {
        let recent = self.shared.last_refresh.get().is_some_and(|t| t.elapsed() < REFRESH_INTERVAL);
        if !recent {
            self.refresh_slots(node).await;
        }
    }

    /// `CLUSTER SLOTS` on `node`: a map replaces the thread's; an error
    /// reply (a standalone server) or another shape leaves it.
    async fn refresh_slots(&mut self, node: SocketAddr) {
        self.shared.last_refresh.set(Some(Instant::now()));
        if self.conn_for(node).await.is_err() {
            return;
        }
        let conn = self.conns.iter_mut().find(|c| c.addr == node).expect("connected above");
        let map = match conn.query(&[b"CLUSTER", b"SLOTS"]).await {
            Ok(v) => SlotMap::from_cluster_slots(&v, node),
            Err(_) => {
                self.drop_conn(node);
                None
            }
        };
        let mut rec = self.rec.borrow_mut();
        match map {
            Some(m) => {
                *self.shared.slots.borrow_mut() = m;
                rec.resp.slot_map_refreshes += 1;
            }
            None => rec.resp.slot_map_unavailable += 1,
        }
    }

    /// The connection to `addr`, opened (and set up) if there is none.
    async fn conn_for(&mut self, addr: SocketAddr) -> Result<(), ConnError> {
        if self.conns.iter().any(|c| c.addr == addr) {
            return Ok(());
        }
        let token = self.reqs.resp_token(self.opened).map(str::to_owned);
        self.opened += 1;
        let conn = RespConn::open(addr, self.phase.resp3, token.as_deref()).await;
        if let Err(ConnError::Connect(_) | ConnError::Setup(_)) = &conn {
            // Down, or refusing our AUTH: do not spin on new connections.
            self.backoff = true;
        }
        let conn = conn?;
        self.rec.borrow_mut().resp.connections_opened += 1;
        if self.conns.len() >= MAX_LANE_CONNECTIONS {
            self.conns.remove(0);
        }
        self.conns.push(conn);
        Ok(())
    }

    fn drop_conn(&mut self, addr: SocketAddr) {
        self.conns.retain(|c| c.addr != addr);
    }

    /// Commands `indices` end with the failure `e`.
    fn fail(&mut self, indices: &[usize], e: &ConnError) {
        let outcome = match e {
            ConnError::Connect(_) => Outcome::Connect,
            ConnError::Io(_) => Outcome::Io,
            ConnError::Closed => Outcome::Closed,
            ConnError::Protocol(_) => Outcome::Protocol,
            ConnError::Setup(text) => Outcome::RespError(ErrorCode::of_text(text)),
        };
        let now = Instant::now();
        for &i in indices {
            self.pending[i].state = State::Done { outcome, at: now, wire_bytes: 0 };
        }
    }

    /// Records every command of the finished batch (those due in the
    /// measured phase), with its redirects and retries.
    fn record_batch(&self, free_at: Instant) {
        for p in &self.pending {
            let (outcome, at, wire_bytes) = match p.state {
                State::Done { outcome, at, wire_bytes } => (outcome, at, wire_bytes),
                // `execute` leaves every command done; were one not, it had no answer in time.
                State::ToSend | State::TryAgain => (Outcome::Timeout, Instant::now(), 0),
            };
            // A refused AUTH is a reply too, to a command that never went out:
            // timed from when its connection was being opened.
            let timing = outcome.has_response().then(|| {
                let sent = p.sent.unwrap_or(at);
                Timing { intended: latency_origin(p.intended, free_at, sent), sent, done: at }
            });
            let sample = Sample { route: p.route, outcome, timing, wire_bytes, intended: p.intended, at };
            if self.record(sample) {
                let resp = &mut self.rec.borrow_mut().resp;
                resp.redirects += p.redirects as u64;
                resp.tryagain_retries += p.retries as u64;
                resp.ask += p.asks as u64;
            }
        }
    }

    /// Records `s` if it was due in the measured phase (true then).
    fn record(&self, s: Sample) -> bool {
        if s.intended < self.phase.measure_start || s.intended >= self.phase.end {
            return false;
        }
        let since = s.at.saturating_duration_since(self.phase.measure_start);
        self.rec.borrow_mut().record_resp(s.route, s.outcome, s.timing, s.wire_bytes, since);
        true
    }
}

/// One command's result, as recorded.
struct Sample {
    route: &'static str,
    outcome: Outcome,
    timing: Option<Timing>,
    wire_bytes: u64,
    intended: Instant,
    /// When it ended (places it on the timeline).
    at: Instant,
}
