//! Named workloads: what requests a lane sends.
//!
//! A [`Workload`] holds what every lane shares (pre-built requests, tokens,
//! percent-encoded names) behind an `Arc`, read-only. Each lane gets a
//! [`LaneRequests`] that writes its next request into the lane's reusable
//! buffer: building a request allocates nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::jwt;
use crate::schedule::SplitMix64;

/// Characters of the original's wrk script (`load-test/wrk-v4-expectation.lua`).
pub const SEED_NAMES: [&str; 3] = ["아델", "강은호", "진격캐넌"];
/// Characters of the original's Locust file (`locust/locustfile.py`).
pub const LOCUST_NAMES: [&str; 12] =
    ["아델", "진격캐넌", "글자", "뉴비렌붕잉", "긱델", "고딩", "물주", "쯔단", "강은호", "팀에이컴퍼니", "흡혈", "꾸장"];

/// Unreserved characters stay as they are (like the wrk script's encoder).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, PATH_SEGMENT).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// GET /api/v4/characters/{ign}/expectation, gzip, the 3 seed characters, warm cache.
    SeedV4,
    /// A new character on every request: fetch + parse + compute + render.
    Cold,
    /// POST /api/v2/characters/{ign}/like from many users over many characters.
    Likes,
    /// 3 equipment reads : 1 like, users with think time (open loop).
    Mixed,
    /// A multiple of capacity (open loop) of `cold` (default: the path the
    /// server sheds with 503) or `seed-v4`; 503 share, accepted latency.
    Overload,
    /// RESP: `LIKE.TOGGLE character` over users x characters; each
    /// connection authenticates (`AUTH token`) as one user.
    RespLikes,
    /// RESP: `EXPECT.GET character GZIP` of warm characters (the seed
    /// names, or --names), the RESP twin of seed-v4.
    RespExpect,
}

/// What an `overload` run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OverloadBase {
    /// New characters (upstream fetch + compute): the server's admission
    /// control sheds these with 503 OVERLOADED when its queue is long.
    #[default]
    Cold,
    /// Warm reads of the seed characters.
    SeedV4,
}

impl WorkloadKind {
    pub fn name(&self) -> &'static str {
        match self {
            WorkloadKind::SeedV4 => "seed-v4",
            WorkloadKind::Cold => "cold",
            WorkloadKind::Likes => "likes",
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::Overload => "overload",
            WorkloadKind::RespLikes => "resp-likes",
            WorkloadKind::RespExpect => "resp-expect",
        }
    }

    /// Spoken over RESP (the node's `--resp-listen` port) rather than HTTP.
    pub fn is_resp(&self) -> bool {
        matches!(self, WorkloadKind::RespLikes | WorkloadKind::RespExpect)
    }

    /// Writes that the node makes durable (fsyncs per write are reported).
    pub fn writes(&self) -> bool {
        matches!(self, WorkloadKind::Likes | WorkloadKind::Mixed | WorkloadKind::RespLikes)
    }
}

/// Knobs of the workloads (defaults in the CLI).
#[derive(Debug, Clone)]
pub struct WorkloadParams {
    pub jwt_secret: String,
    /// Distinct users (likes).
    pub users: usize,
    /// Distinct characters (likes).
    pub characters: usize,
    /// Makes names of a `cold` run unique to it, so a rerun is cold too.
    pub run_tag: String,
    /// Total lanes of the run (for unique `cold` names per lane).
    pub lanes: usize,
    /// seed-v4 / overload of seed-v4: the characters to rotate over
    /// (default [`SEED_NAMES`]; one name makes the request stream the same
    /// as a static wrk script's).
    pub seed_names: Vec<String>,
    /// overload: which requests it sends.
    pub overload_base: OverloadBase,
}

impl WorkloadParams {
    pub fn new(jwt_secret: &str, users: usize, characters: usize, run_tag: String, lanes: usize) -> WorkloadParams {
        WorkloadParams {
            jwt_secret: jwt_secret.to_string(),
            users,
            characters,
            run_tag,
            lanes,
            seed_names: SEED_NAMES.iter().map(|s| s.to_string()).collect(),
            overload_base: OverloadBase::Cold,
        }
    }
}

struct Shared {
    kind: WorkloadKind,
    /// The kind whose requests are sent (an overload sends its base's).
    sends: WorkloadKind,
    /// `Host` header values, one per target; lane `l` talks to target `l % hosts.len()`.
    hosts: Vec<String>,
    /// Complete GET requests for the seed characters (seed-v4, overload), per host.
    seed_requests: Vec<Vec<Vec<u8>>>,
    run_tag: String,
    lanes: usize,
    /// Character names for likes: percent-encoded (HTTP) or as they are (RESP).
    like_characters: Vec<String>,
    /// Bearer tokens: one per user (likes, resp-likes) or per lane (mixed).
    tokens: Vec<String>,
    /// Complete equipment GETs for the Locust names (mixed), per host.
    equipment_requests: Vec<Vec<Vec<u8>>>,
    mixed_characters: Vec<String>,
    /// resp-expect: the warm characters, as they are.
    expect_names: Vec<String>,
}

#[derive(Clone)]
pub struct Workload {
    shared: Arc<Shared>,
    params: BTreeMap<String, String>,
}

/// One RESP command a lane wrote into its batch buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespCommand {
    pub route: &'static str,
    /// Where its key (the first argument) lies in the buffer: cluster
    /// routing hashes it.
    pub key: std::ops::Range<usize>,
}

impl Workload {
    /// A workload against one server whose `Host` is `host`.
    pub fn new(kind: WorkloadKind, p: &WorkloadParams, host: &str) -> Workload {
        Workload::with_hosts(kind, p, &[host.to_string()])
    }

    /// A workload whose lanes are dealt round-robin over several servers
    /// (lane `l` → `hosts[l % hosts.len()]`).
    pub fn with_hosts(kind: WorkloadKind, p: &WorkloadParams, hosts: &[String]) -> Workload {
        assert!(p.users > 0 && p.characters > 0 && p.lanes > 0);
        assert!(!p.seed_names.is_empty(), "at least one seed character");
        assert!(!hosts.is_empty(), "at least one target");
        let sends = match (kind, p.overload_base) {
            (WorkloadKind::Overload, OverloadBase::Cold) => WorkloadKind::Cold,
            (WorkloadKind::Overload, OverloadBase::SeedV4) => WorkloadKind::SeedV4,
            (k, _) => k,
        };
        let mut shared = Shared {
            kind,
            sends,
            hosts: hosts.to_vec(),
            seed_requests: Vec::new(),
            run_tag: p.run_tag.clone(),
            lanes: p.lanes,
            like_characters: Vec::new(),
            tokens: Vec::new(),
            equipment_requests: Vec::new(),
            mixed_characters: Vec::new(),
            expect_names: Vec::new(),
        };
        shared.prepare(p);
        let mut params = describe(sends, p);
        if kind == WorkloadKind::Overload {
            params.insert("overload_of".into(), sends.name().into());
        }
        Workload { shared: Arc::new(shared), params }
    }

    pub fn kind(&self) -> WorkloadKind {
        self.shared.kind
    }

    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// How many targets (hosts) the lanes are dealt over.
    pub fn target_count(&self) -> usize {
        self.shared.hosts.len()
    }

    /// The request source of lane `lane` (global index over all threads).
    pub fn lane(&self, lane: usize, seed: u64) -> LaneRequests {
        assert!(lane < self.shared.lanes);
        let host = lane % self.shared.hosts.len();
        let rng = SplitMix64::new(seed ^ 0x5EED ^ ((lane as u64) << 32));
        LaneRequests { shared: Arc::clone(&self.shared), lane, host, seq: 0, rng }
    }
}

impl Shared {
    /// Pre-builds what the lanes of `self.sends` share.
    fn prepare(&mut self, p: &WorkloadParams) {
        let now = jwt::unix_now();
        let sign = |user: usize| jwt::sign_hs256(p.jwt_secret.as_bytes(), &format!("bench-user-{user}"), now, now + 86_400);
        match self.sends {
            WorkloadKind::SeedV4 | WorkloadKind::Overload => {
                let paths: Vec<String> =
                    p.seed_names.iter().map(|n| format!("/api/v4/characters/{}/expectation", encode_name(n))).collect();
                self.seed_requests = self.hosts.iter().map(|h| paths.iter().map(|path| gzip_get(h, path)).collect()).collect();
            }
            WorkloadKind::Cold => {}
            WorkloadKind::Likes | WorkloadKind::RespLikes => {
                let raw = self.sends == WorkloadKind::RespLikes;
                // The seed characters first, then synthetic names.
                self.like_characters = (0..p.characters)
                    .map(|i| match SEED_NAMES.get(i) {
                        Some(n) if raw => n.to_string(),
                        Some(n) => encode_name(n),
                        None => format!("like{i}"),
                    })
                    .collect();
                self.tokens = (0..p.users).map(sign).collect();
            }
            WorkloadKind::Mixed => {
                // One user per lane, each with its own token.
                self.tokens = (0..p.lanes).map(sign).collect();
                self.mixed_characters = LOCUST_NAMES.iter().map(|n| encode_name(n)).collect();
                let paths: Vec<String> = LOCUST_NAMES.iter().map(|n| format!("/api/v2/characters/{}/equipment", encode_name(n))).collect();
                self.equipment_requests = self.hosts.iter().map(|h| paths.iter().map(|path| gzip_get(h, path)).collect()).collect();
            }
            WorkloadKind::RespExpect => self.expect_names = p.seed_names.clone(),
        }
    }
}

/// A complete `GET` asking for gzip.
fn gzip_get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n\r\n").into_bytes()
}

/// The parameters a report shows for a workload that sends `sends`.
fn describe(sends: WorkloadKind, p: &WorkloadParams) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        params.insert(k.to_string(), v);
    };
    match sends {
        WorkloadKind::SeedV4 | WorkloadKind::Overload => {
            put("endpoint", "GET /api/v4/characters/{ign}/expectation".into());
            put("accept_encoding", "gzip".into());
            put("characters", p.seed_names.join(","));
        }
        WorkloadKind::Cold => {
            put("endpoint", "GET /api/v4/characters/{ign}/expectation".into());
            put("characters", format!("new name per request: b{}<n base36>", p.run_tag));
        }
        WorkloadKind::Likes => {
            put("endpoint", "POST /api/v2/characters/{ign}/like".into());
            put("users", p.users.to_string());
            put("characters", p.characters.to_string());
            put("auth", "Bearer HS256 JWT, sub=bench-user-<n>".into());
        }
        WorkloadKind::Mixed => {
            put("endpoints", "3 x GET /api/v2/characters/{ign}/equipment : 1 x POST /api/v2/characters/{ign}/like".into());
            put("characters", LOCUST_NAMES.join(","));
            put("users", p.lanes.to_string());
        }
        WorkloadKind::RespLikes => {
            put("command", "LIKE.TOGGLE character".into());
            put("users", p.users.to_string());
            put("characters", p.characters.to_string());
            put("auth", "AUTH <HS256 JWT> per connection, sub=bench-user-<n>".into());
        }
        WorkloadKind::RespExpect => {
            put("command", "EXPECT.GET character GZIP".into());
            put("characters", p.seed_names.join(","));
        }
    }
    params
}

pub struct LaneRequests {
    shared: Arc<Shared>,
    lane: usize,
    /// Index of this lane's target (and `Host`).
    host: usize,
    seq: u64,
    rng: SplitMix64,
}

impl LaneRequests {
    /// Writes the next request into `out` (cleared first); returns its route
    /// label for the per-route counts.
    pub fn next(&mut self, out: &mut Vec<u8>) -> &'static str {
        out.clear();
        let s = &*self.shared;
        let seq = self.seq;
        self.seq += 1;
        match s.sends {
            WorkloadKind::SeedV4 | WorkloadKind::Overload => {
                // Rotate over the characters, lanes starting at different ones.
                let requests = &s.seed_requests[self.host];
                let i = (self.lane as u64 + seq) % requests.len() as u64;
                out.extend_from_slice(&requests[i as usize]);
                "v4 expectation"
            }
            WorkloadKind::Cold => {
                out.extend_from_slice(b"GET /api/v4/characters/b");
                out.extend_from_slice(s.run_tag.as_bytes());
                push_base36(out, seq * s.lanes as u64 + self.lane as u64);
                out.extend_from_slice(b"/expectation HTTP/1.1\r\nHost: ");
                out.extend_from_slice(s.hosts[self.host].as_bytes());
                out.extend_from_slice(b"\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n\r\n");
                "cold expectation"
            }
            WorkloadKind::Likes => {
                let c = self.rng.below(s.like_characters.len() as u64) as usize;
                let u = self.rng.below(s.tokens.len() as u64) as usize;
                push_like(out, &s.hosts[self.host], &s.like_characters[c], &s.tokens[u]);
                "like"
            }
            WorkloadKind::Mixed => {
                if self.rng.below(4) < 3 {
                    let requests = &s.equipment_requests[self.host];
                    let i = self.rng.below(requests.len() as u64) as usize;
                    out.extend_from_slice(&requests[i]);
                    "equipment"
                } else {
                    let c = self.rng.below(s.mixed_characters.len() as u64) as usize;
                    push_like(out, &s.hosts[self.host], &s.mixed_characters[c], &s.tokens[self.lane]);
                    "like"
                }
            }
            WorkloadKind::RespLikes | WorkloadKind::RespExpect => {
                unreachable!("RESP workloads are driven by crate::resp through next_resp")
            }
        }
    }

    /// Index of this lane's target in the run's target list.
    pub fn target_index(&self) -> usize {
        self.host
    }

    /// RESP: appends the next command to `out` (the lane's batch buffer).
    /// Only for [`WorkloadKind::is_resp`] workloads.
    pub fn next_resp(&mut self, out: &mut Vec<u8>) -> RespCommand {
        let s = &*self.shared;
        let seq = self.seq;
        self.seq += 1;
        match s.sends {
            WorkloadKind::RespLikes => {
                let c = self.rng.below(s.like_characters.len() as u64) as usize;
                let key = crate::resp::push_command(out, &[b"LIKE.TOGGLE", s.like_characters[c].as_bytes()], 1);
                RespCommand { route: "LIKE.TOGGLE", key }
            }
            WorkloadKind::RespExpect => {
                // Rotate over the characters, lanes starting at different ones.
                let i = ((self.lane as u64 + seq) % s.expect_names.len() as u64) as usize;
                let key = crate::resp::push_command(out, &[b"EXPECT.GET", s.expect_names[i].as_bytes(), b"GZIP"], 1);
                RespCommand { route: "EXPECT.GET", key }
            }
            other => unreachable!("{} is an HTTP workload", other.name()),
        }
    }

    /// RESP: the token a new connection of this lane authenticates with
    /// (`conn_seq`: how many connections the lane opened before), or `None`
    /// when the workload needs no `AUTH`. Lane `l`'s connections are users
    /// `l`, `l + lanes`, `l + 2 lanes` ... (mod users): a reconnect is
    /// another user, so a long run with reconnects spreads over more users.
    pub fn resp_token(&self, conn_seq: u64) -> Option<&str> {
        let s = &*self.shared;
        if s.sends != WorkloadKind::RespLikes {
            return None;
        }
        let user = (self.lane as u64 + conn_seq * s.lanes as u64) % s.tokens.len() as u64;
        Some(&s.tokens[user as usize])
    }
}

fn push_like(out: &mut Vec<u8>, host: &str, character: &str, token: &str) {
    out.extend_from_slice(b"POST /api/v2/characters/");
    out.extend_from_slice(character.as_bytes());
    out.extend_from_slice(b"/like HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nAccept: application/json\r\nAuthorization: Bearer ");
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
}

/// Appends `n` in base 36 (lowercase) without allocating.
fn push_base36(out: &mut Vec<u8>, mut n: u64) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut tmp = [0u8; 13];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// A short tag (base 36) that differs between runs, for `cold` names.
pub fn run_tag(seed: u64) -> String {
    let mut v = Vec::new();
    push_base36(&mut v, seed % (36 * 36 * 36));
    while v.len() < 3 {
        v.insert(0, b'0');
    }
    String::from_utf8(v).expect("base36 is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(lanes: usize) -> WorkloadParams {
        WorkloadParams::new("s", 50, 20, "x1z".into(), lanes)
    }

    fn path_of(req: &[u8]) -> String {
        let line = req.split(|&b| b == b'\r').next().unwrap();
        String::from_utf8(line.to_vec()).unwrap()
    }

    #[test]
    fn seed_names_are_percent_encoded_utf8() {
        assert_eq!(encode_name("아델"), "%EC%95%84%EB%8D%B8");
        assert_eq!(encode_name("강은호"), "%EA%B0%95%EC%9D%80%ED%98%B8");
        assert_eq!(encode_name("진격캐넌"), "%EC%A7%84%EA%B2%A9%EC%BA%90%EB%84%8C");
        let w = Workload::new(WorkloadKind::SeedV4, &params(2), "h:1");
        let mut lane = w.lane(0, 1);
        let mut buf = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            assert_eq!(lane.next(&mut buf), "v4 expectation");
            seen.insert(path_of(&buf));
            let text = String::from_utf8(buf.clone()).unwrap();
            assert!(text.contains("\r\nAccept-Encoding: gzip\r\n") && text.ends_with("\r\n\r\n"));
            assert!(text.contains("\r\nHost: h:1\r\n"));
        }
        assert_eq!(seen.len(), 3);
        assert!(seen.contains("GET /api/v4/characters/%EC%95%84%EB%8D%B8/expectation HTTP/1.1"));
    }

    #[test]
    fn one_seed_name_sends_one_request_and_overload_sends_its_base() {
        let mut p = params(2);
        p.seed_names = vec!["아델".into()];
        let w = Workload::new(WorkloadKind::SeedV4, &p, "h");
        let mut buf = Vec::new();
        for l in 0..2 {
            let mut lane = w.lane(l, 0);
            for _ in 0..4 {
                lane.next(&mut buf);
                assert_eq!(path_of(&buf), "GET /api/v4/characters/%EC%95%84%EB%8D%B8/expectation HTTP/1.1");
            }
        }
        assert_eq!(w.params()["characters"], "아델");

        let w = Workload::new(WorkloadKind::Overload, &params(2), "h");
        assert_eq!(w.kind(), WorkloadKind::Overload);
        assert_eq!(w.params()["overload_of"], "cold");
        assert_eq!(w.lane(0, 0).next(&mut buf), "cold expectation");
        p.overload_base = OverloadBase::SeedV4;
        let w = Workload::new(WorkloadKind::Overload, &p, "h");
        assert_eq!(w.lane(1, 0).next(&mut buf), "v4 expectation");
    }

    #[test]
    fn cold_names_never_repeat_across_lanes() {
        let lanes = 3;
        let w = Workload::new(WorkloadKind::Cold, &params(lanes), "h");
        let mut seen = std::collections::HashSet::new();
        let mut buf = Vec::new();
        for l in 0..lanes {
            let mut lane = w.lane(l, 0);
            for _ in 0..500 {
                lane.next(&mut buf);
                let p = path_of(&buf);
                let name = p.split('/').nth(4).unwrap().to_string();
                assert!(name.len() <= 12 && name.starts_with("bx1z"), "{name}");
                assert!(seen.insert(name));
            }
        }
    }

    #[test]
    fn likes_carry_a_token_and_spread_over_users_and_characters() {
        let w = Workload::new(WorkloadKind::Likes, &params(1), "h");
        let mut lane = w.lane(0, 3);
        let mut buf = Vec::new();
        let (mut users, mut chars) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        for _ in 0..2000 {
            assert_eq!(lane.next(&mut buf), "like");
            let text = String::from_utf8(buf.clone()).unwrap();
            assert!(text.starts_with("POST /api/v2/characters/") && text.contains("/like HTTP/1.1\r\n"));
            assert!(text.contains("\r\nContent-Length: 0\r\n"));
            let token = text.split("Bearer ").nth(1).unwrap().split("\r\n").next().unwrap().to_string();
            assert_eq!(token.split('.').count(), 3);
            users.insert(token);
            chars.insert(path_of(&buf));
        }
        assert_eq!(users.len(), 50);
        assert_eq!(chars.len(), 20);
    }

    #[test]
    fn mixed_is_three_reads_to_one_like() {
        let w = Workload::new(WorkloadKind::Mixed, &params(4), "h");
        let mut lane = w.lane(2, 5);
        let mut buf = Vec::new();
        let (mut reads, mut likes) = (0u32, 0u32);
        for _ in 0..8000 {
            match lane.next(&mut buf) {
                "equipment" => {
                    reads += 1;
                    assert!(path_of(&buf).ends_with("/equipment HTTP/1.1"));
                }
                "like" => likes += 1,
                other => panic!("{other}"),
            }
        }
        let ratio = reads as f64 / likes as f64;
        assert!((2.7..3.3).contains(&ratio), "{ratio}");
    }

    #[test]
    fn base36_and_tags() {
        let mut v = Vec::new();
        push_base36(&mut v, 0);
        push_base36(&mut v, 35);
        push_base36(&mut v, 36);
        push_base36(&mut v, u64::MAX);
        assert_eq!(String::from_utf8(v).unwrap(), "0z103w5e11264sgsf");
        assert_eq!(run_tag(0), "000");
        assert_eq!(run_tag(36 * 36 * 36 + 1), "001");
    }
}
