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
        }
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
    /// Complete GET requests for the seed characters (seed-v4, overload).
    seed_requests: Vec<Vec<u8>>,
    host: String,
    run_tag: String,
    lanes: usize,
    /// Percent-encoded character names and bearer tokens for likes.
    like_characters: Vec<String>,
    tokens: Vec<String>,
    /// Complete equipment GETs for the Locust names (mixed).
    equipment_requests: Vec<Vec<u8>>,
    mixed_characters: Vec<String>,
}

#[derive(Clone)]
pub struct Workload {
    shared: Arc<Shared>,
    params: BTreeMap<String, String>,
}

impl Workload {
    pub fn new(kind: WorkloadKind, p: &WorkloadParams, host: &str) -> Workload {
        assert!(p.users > 0 && p.characters > 0 && p.lanes > 0);
        assert!(!p.seed_names.is_empty(), "at least one seed character");
        let get = |path: &str, extra: &str| -> Vec<u8> {
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{extra}\r\n").into_bytes()
        };
        let seed_requests = p
            .seed_names
            .iter()
            .map(|n| get(&format!("/api/v4/characters/{}/expectation", encode_name(n)), "Accept-Encoding: gzip\r\n"))
            .collect();
        let equipment_requests = LOCUST_NAMES
            .iter()
            .map(|n| get(&format!("/api/v2/characters/{}/equipment", encode_name(n)), "Accept-Encoding: gzip\r\n"))
            .collect();
        let mut params = BTreeMap::new();
        let (mut like_characters, mut tokens) = (Vec::new(), Vec::new());
        let mut mixed_characters = Vec::new();
        let now = jwt::unix_now();
        let sign = |user: usize| jwt::sign_hs256(p.jwt_secret.as_bytes(), &format!("bench-user-{user}"), now, now + 86_400);
        let sends = match (kind, p.overload_base) {
            (WorkloadKind::Overload, OverloadBase::Cold) => WorkloadKind::Cold,
            (WorkloadKind::Overload, OverloadBase::SeedV4) => WorkloadKind::SeedV4,
            (k, _) => k,
        };
        if kind == WorkloadKind::Overload {
            params.insert("overload_of".into(), sends.name().into());
        }
        match sends {
            WorkloadKind::SeedV4 | WorkloadKind::Overload => {
                params.insert("endpoint".into(), "GET /api/v4/characters/{ign}/expectation".into());
                params.insert("accept_encoding".into(), "gzip".into());
                params.insert("characters".into(), p.seed_names.join(","));
            }
            WorkloadKind::Cold => {
                params.insert("endpoint".into(), "GET /api/v4/characters/{ign}/expectation".into());
                params.insert("characters".into(), format!("new name per request: b{}<n base36>", p.run_tag));
            }
            WorkloadKind::Likes => {
                // The seed characters first, then synthetic names.
                like_characters = (0..p.characters)
                    .map(|i| match SEED_NAMES.get(i) {
                        Some(n) => encode_name(n),
                        None => format!("like{i}"),
                    })
                    .collect();
                tokens = (0..p.users).map(sign).collect();
                params.insert("endpoint".into(), "POST /api/v2/characters/{ign}/like".into());
                params.insert("users".into(), p.users.to_string());
                params.insert("characters".into(), p.characters.to_string());
                params.insert("auth".into(), "Bearer HS256 JWT, sub=bench-user-<n>".into());
            }
            WorkloadKind::Mixed => {
                // One user per lane, each with its own token.
                tokens = (0..p.lanes).map(sign).collect();
                mixed_characters = LOCUST_NAMES.iter().map(|n| encode_name(n)).collect();
                params.insert(
                    "endpoints".into(),
                    "3 x GET /api/v2/characters/{ign}/equipment : 1 x POST /api/v2/characters/{ign}/like".into(),
                );
                params.insert("characters".into(), LOCUST_NAMES.join(","));
                params.insert("users".into(), p.lanes.to_string());
            }
        }
        let shared = Shared {
            kind,
            sends,
            seed_requests,
            host: host.to_string(),
            run_tag: p.run_tag.clone(),
            lanes: p.lanes,
            like_characters,
            tokens,
            equipment_requests,
            mixed_characters,
        };
        Workload { shared: Arc::new(shared), params }
    }

    pub fn kind(&self) -> WorkloadKind {
        self.shared.kind
    }

    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// The request source of lane `lane` (global index over all threads).
    pub fn lane(&self, lane: usize, seed: u64) -> LaneRequests {
        assert!(lane < self.shared.lanes);
        LaneRequests { shared: Arc::clone(&self.shared), lane, seq: 0, rng: SplitMix64::new(seed ^ 0x5EED ^ ((lane as u64) << 32)) }
    }
}

pub struct LaneRequests {
    shared: Arc<Shared>,
    lane: usize,
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
                let i = (self.lane as u64 + seq) % s.seed_requests.len() as u64;
                out.extend_from_slice(&s.seed_requests[i as usize]);
                "v4 expectation"
            }
            WorkloadKind::Cold => {
                out.extend_from_slice(b"GET /api/v4/characters/b");
                out.extend_from_slice(s.run_tag.as_bytes());
                push_base36(out, seq * s.lanes as u64 + self.lane as u64);
                out.extend_from_slice(b"/expectation HTTP/1.1\r\nHost: ");
                out.extend_from_slice(s.host.as_bytes());
                out.extend_from_slice(b"\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n\r\n");
                "cold expectation"
            }
            WorkloadKind::Likes => {
                let c = self.rng.below(s.like_characters.len() as u64) as usize;
                let u = self.rng.below(s.tokens.len() as u64) as usize;
                push_like(out, &s.host, &s.like_characters[c], &s.tokens[u]);
                "like"
            }
            WorkloadKind::Mixed => {
                if self.rng.below(4) < 3 {
                    let i = self.rng.below(s.equipment_requests.len() as u64) as usize;
                    out.extend_from_slice(&s.equipment_requests[i]);
                    "equipment"
                } else {
                    let c = self.rng.below(s.mixed_characters.len() as u64) as usize;
                    push_like(out, &s.host, &s.mixed_characters[c], &s.tokens[self.lane]);
                    "like"
                }
            }
        }
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
