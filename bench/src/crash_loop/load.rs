//! The keyed like load of the crash loop and its exact model.
//!
//! Each loader is one (user, character) pair on a thread of its own. Every
//! toggle carries an `Idempotency-Key` of its own and is sent again with the
//! same key, through any node that is up, until one acknowledges it: the
//! node applies a key at most once and answers a retry with the first
//! answer, so `liked` flips exactly once per acknowledged toggle and the
//! loader knows the true state at every step. What may come before the
//! acknowledgement is a 503 with `Retry-After` (an election, a stale map) or
//! a refused / reset connection to a node that is down or was killed since
//! the request picked it; anything else is an error of the run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::client::{CallError, NodeConn};

/// Pause after a 503 or an expected connection error before the next try.
pub const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Errors kept word for word in the report (all are counted).
const KEPT_ERRORS: usize = 50;
/// Errors printed as they happen (the rest only counted).
const PRINTED_ERRORS: u64 = 20;

/// Which nodes requests may go to, and how often each was killed. A
/// connection error is expected only from a node that is down, or that
/// was killed after the request picked it.
pub struct Liveness {
    addrs: Vec<SocketAddr>,
    state: Mutex<Vec<NodeState>>,
}

#[derive(Debug, Clone, Copy)]
struct NodeState {
    up: bool,
    kills: u64,
}

/// A node picked for one request: its index and its kill count then.
#[derive(Debug, Clone, Copy)]
pub struct Pick {
    pub node: usize,
    kills: u64,
}

impl Liveness {
    pub fn new(addrs: Vec<SocketAddr>) -> Liveness {
        let state = vec![NodeState { up: true, kills: 0 }; addrs.len()];
        Liveness { addrs, state: Mutex::new(state) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<NodeState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    pub fn addr(&self, node: usize) -> SocketAddr {
        self.addrs[node]
    }

    /// The `turn mod k`-th of the k nodes up (round-robin over the living).
    pub fn pick(&self, turn: usize) -> Option<Pick> {
        let s = self.lock();
        let up: Vec<usize> = (0..s.len()).filter(|i| s[*i].up).collect();
        let node = *up.get(turn % up.len().max(1))?;
        Some(Pick { node, kills: s[node].kills })
    }

    pub fn failure_expected(&self, pick: Pick) -> bool {
        let s = self.lock()[pick.node];
        !s.up || s.kills != pick.kills
    }

    /// Before the kill: no new request picks it, those in flight may fail.
    pub fn mark_killed(&self, node: usize) {
        let mut s = self.lock();
        s[node].up = false;
        s[node].kills += 1;
    }

    /// Once it is ready again.
    pub fn mark_up(&self, node: usize) {
        self.lock()[node].up = true;
    }
}

/// Counters shared by the loaders and the probe.
#[derive(Default)]
pub struct Tally {
    /// Loader toggles acknowledged.
    acked: AtomicU64,
    /// Acknowledged toggles whose answer was not the state the model predicts.
    wrong_answers: AtomicU64,
    /// 503 + Retry-After answers, by the body's `code`.
    unavailable: Mutex<BTreeMap<String, u64>>,
    /// Refused / reset / closed connections to a node that was down or killed.
    killed_node_errors: AtomicU64,
    error_count: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    pub fn wrong_answers(&self) -> u64 {
        self.wrong_answers.load(Ordering::Relaxed)
    }

    pub fn killed_node_errors(&self) -> u64 {
        self.killed_node_errors.load(Ordering::Relaxed)
    }

    pub fn error_count(&self) -> u64 {
        self.error_count.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn unavailable(&self) -> BTreeMap<String, u64> {
        self.unavailable.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// An error of the run: counted, kept (the first ones), printed (the
    /// first ones) as it happens.
    pub fn error(&self, what: String) {
        let n = self.error_count.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= PRINTED_ERRORS {
            eprintln!("crash-loop: ERROR: {what}");
        } else if n == PRINTED_ERRORS + 1 {
            eprintln!("crash-loop: more errors; only counted from here (see the report)");
        }
        let mut kept = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEPT_ERRORS {
            kept.push(what);
        }
    }

    pub fn wrong_answer(&self, what: String) {
        self.wrong_answers.fetch_add(1, Ordering::Relaxed);
        self.error(what);
    }

    pub fn count_unavailable(&self, code: String) {
        *self.unavailable.lock().unwrap_or_else(|p| p.into_inner()).entry(code).or_default() += 1;
    }
}

/// A like as the node answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LikeState {
    pub liked: bool,
    pub count: u64,
}

impl LikeState {
    pub fn parse(body: &serde_json::Value) -> Option<LikeState> {
        Some(LikeState { liked: body.get("liked")?.as_bool()?, count: body.get("likeCount")?.as_u64()? })
    }
}

/// A toggle acknowledged: the answer and the node (id) that gave it.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub state: LikeState,
    pub node: u64,
    pub attempts: u32,
}

pub fn like_path(character: &str) -> String {
    let enc = percent_encoding::utf8_percent_encode(character, percent_encoding::NON_ALPHANUMERIC);
    format!("/api/v2/characters/{enc}/like")
}

/// Send one keyed toggle until a node acknowledges it, starting at the
/// `turn`-th node up and going round the living ones; bounded by `within`
/// and by `abort`. Unexpected answers are recorded in `tally` and retried
/// with the same key (a 4xx ends the toggle: it would answer the same again).
#[allow(clippy::too_many_arguments)]
pub fn toggle_until_acked(
    nodes: &Liveness,
    conns: &mut [NodeConn],
    auth: &str,
    character: &str,
    key: &str,
    mut turn: usize,
    within: Duration,
    tally: &Tally,
    abort: &AtomicBool,
) -> Result<Acked, String> {
    let deadline = Instant::now() + within;
    let path = like_path(character);
    let mut attempts = 0u32;
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(format!("toggle {key} on {character}: aborted before it was acknowledged"));
        }
        if Instant::now() >= deadline {
            return Err(format!("toggle {key} on {character}: not acknowledged within {within:?} ({attempts} tries)"));
        }
        let Some(pick) = nodes.pick(turn) else {
            std::thread::sleep(RETRY_PAUSE);
            continue;
        };
        turn += 1;
        attempts += 1;
        let id = pick.node + 1;
        match conns[pick.node].call("POST", &path, &[("Authorization", auth), ("Idempotency-Key", key)]) {
            Ok(a) if a.status == 200 => {
                return match a.json().as_ref().and_then(LikeState::parse) {
                    Some(state) => Ok(Acked { state, node: id as u64, attempts }),
                    None => Err(format!("toggle {key} on {character}: node {id} answered 200 without liked/likeCount: {}", a.body_text())),
                };
            }
            Ok(a) if a.status == 503 && a.retry_after => {
                tally.count_unavailable(a.code());
                std::thread::sleep(RETRY_PAUSE);
            }
            Ok(a) if (400..500).contains(&a.status) => {
                return Err(format!("toggle {key} on {character}: node {id} answered {} {}", a.status, a.body_text()));
            }
            Ok(a) => {
                let why = if a.status == 503 { " (a 503 without Retry-After)" } else { "" };
                tally.error(format!("toggle {key} on {character}: node {id} answered {}{why} {}", a.status, a.body_text()));
                std::thread::sleep(RETRY_PAUSE);
            }
            Err(e) => {
                conns[pick.node].reset();
                if nodes.failure_expected(pick) {
                    tally.killed_node_errors.fetch_add(1, Ordering::Relaxed);
                } else {
                    let kind = if matches!(e, CallError::Timeout(_)) { "no answer in time from" } else { "a connection error from" };
                    tally.error(format!("toggle {key} on {character}: {kind} node {id}, which is up: {e}"));
                }
                std::thread::sleep(RETRY_PAUSE);
            }
        }
    }
}

/// One loader's pair.
#[derive(Debug, Clone)]
pub struct LoaderSpec {
    pub user: String,
    /// `Bearer <jwt>` of the user.
    pub auth: String,
    pub character: String,
    /// How many loaders like this character: the bound of its count.
    pub users_on_character: u64,
}

/// What a loader knows at the end.
#[derive(Debug, Clone)]
pub struct LoaderResult {
    pub spec: LoaderSpec,
    /// The model's state; `None` once a toggle was never acknowledged (its
    /// outcome is unknown, so the pair cannot be checked).
    pub liked: Option<bool>,
    pub acked: u64,
}

/// How the loaders reach the nodes.
#[derive(Clone)]
pub struct LoadSetup {
    pub nodes: Arc<Liveness>,
    pub tally: Arc<Tally>,
    /// Set when the run fails or is interrupted: loaders give up at once.
    pub abort: Arc<AtomicBool>,
    /// Prefix of every idempotency key (unique per run).
    pub tag: String,
    pub request_timeout: Duration,
    /// Longest a toggle may stay unacknowledged.
    pub ack_within: Duration,
}

/// The running loader threads.
pub struct Loaders {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<LoaderResult>>,
}

impl Loaders {
    pub fn start(specs: Vec<LoaderSpec>, setup: &LoadSetup) -> std::io::Result<Loaders> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let (setup, stop) = (setup.clone(), stop.clone());
            handles.push(std::thread::Builder::new().name(format!("crash-loader-{i}")).spawn(move || run_loader(i, spec, &setup, &stop))?);
        }
        Ok(Loaders { stop, handles })
    }

    /// Each loader finishes the toggle it is on (until acknowledged, or its
    /// bound, or the abort), then reports its model.
    pub fn stop(self) -> Vec<LoaderResult> {
        self.stop.store(true, Ordering::Relaxed);
        self.handles.into_iter().map(|h| h.join().expect("a loader thread panicked")).collect()
    }
}

fn run_loader(index: usize, spec: LoaderSpec, setup: &LoadSetup, stop: &AtomicBool) -> LoaderResult {
    let nodes = &setup.nodes;
    let mut conns: Vec<NodeConn> = (0..nodes.len()).map(|n| NodeConn::new(nodes.addr(n), setup.request_timeout)).collect();
    let mut liked = false;
    let mut acked = 0u64;
    for seq in 0u64.. {
        if stop.load(Ordering::Relaxed) || setup.abort.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("{}-l{index}-{seq}", setup.tag);
        let turn = index + seq as usize;
        let answer =
            toggle_until_acked(nodes, &mut conns, &spec.auth, &spec.character, &key, turn, setup.ack_within, &setup.tally, &setup.abort);
        let state = match answer {
            Ok(a) => a.state,
            Err(e) => {
                if !setup.abort.load(Ordering::Relaxed) {
                    setup.tally.error(format!("{} (loader {index}, user {})", e, spec.user));
                }
                return LoaderResult { spec, liked: None, acked };
            }
        };
        acked += 1;
        setup.tally.acked.fetch_add(1, Ordering::Relaxed);
        let expected = !liked;
        liked = expected; // the truth from here on: the key was applied once
        if let Some(why) = answer_disagrees(state, expected, spec.users_on_character) {
            setup.tally.wrong_answer(format!("toggle {key} of {} on {}: {why}", spec.user, spec.character));
        }
    }
    LoaderResult { spec, liked: Some(liked), acked }
}

/// Why an acknowledged answer contradicts the model, if it does: `liked`
/// must be the flipped state, and the count must fit the likers there can
/// be (other loaders of the same character move it concurrently).
pub fn answer_disagrees(state: LikeState, expected_liked: bool, users_on_character: u64) -> Option<String> {
    if state.liked != expected_liked {
        let what = if expected_liked { "still not liked (lost, or applied twice)" } else { "still liked (lost, or applied twice)" };
        return Some(format!("answered liked={} after the toggle: {what}", state.liked));
    }
    let (low, high) = if state.liked { (1, users_on_character) } else { (0, users_on_character.saturating_sub(1)) };
    if !(low..=high).contains(&state.count) {
        return Some(format!("likeCount {} outside {low}..={high} (liked={})", state.count, state.liked));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_picks_only_living_nodes_and_expects_failures_of_the_killed() {
        let addrs: Vec<SocketAddr> = (1..=3).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        let l = Liveness::new(addrs);
        let picked: Vec<usize> = (0..3).map(|t| l.pick(t).unwrap().node).collect();
        assert_eq!(picked, [0, 1, 2]);
        let before = l.pick(0).unwrap();
        assert!(!l.failure_expected(before), "a living node's failure is an error");
        l.mark_killed(0);
        assert!(l.failure_expected(before), "killed after the pick");
        assert!((0..4).all(|t| l.pick(t).unwrap().node != 0), "never picked while down");
        l.mark_up(0);
        let after = l.pick(0).unwrap();
        assert_eq!(after.node, 0);
        assert!(!l.failure_expected(after), "up again");
        assert!(l.failure_expected(before), "a pick of the killed process stays expected to fail");
    }

    #[test]
    fn answers_are_checked_against_the_model() {
        let s = |liked, count| LikeState { liked, count };
        assert_eq!(answer_disagrees(s(true, 1), true, 2), None);
        assert_eq!(answer_disagrees(s(true, 2), true, 2), None);
        assert_eq!(answer_disagrees(s(false, 1), false, 2), None);
        assert!(answer_disagrees(s(false, 0), true, 2).unwrap().contains("still not liked"));
        assert!(answer_disagrees(s(true, 0), true, 2).unwrap().contains("likeCount 0"));
        assert!(answer_disagrees(s(true, 3), true, 2).is_some());
        assert!(answer_disagrees(s(false, 2), false, 2).is_some(), "not liked by me: at most the others");
    }

    #[test]
    fn like_paths_are_percent_encoded() {
        assert_eq!(like_path("evan"), "/api/v2/characters/evan/like");
        assert_eq!(like_path("a-b"), "/api/v2/characters/a%2Db/like");
    }
}
