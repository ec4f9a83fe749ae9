//! The side-by-side summary of `maple bench compare`: reads the
//! measurements `compare.sh` appended to `<out>/runs.tsv`, takes medians
//! over the rounds, and holds every pair and figure against its goal.
//!
//! `runs.tsv` has one measurement a line: `round <TAB> key <TAB> value`,
//! keys `<run>.<metric>` (e.g. `node_likes.rps`, `nginx_seed_wrk.other_cpu_s`);
//! round 0 holds one-off runs (cold, overload) and facts about the run
//! (`meta.*`). A ratio of two runs is taken *within* each round (the two
//! ran back to back), then the median over rounds, so a disturbed round
//! moves neither side of the comparison.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::goals::{self, check, num, GoalResult, Rule};

/// A run is "quiet" when other processes used less than this many cores
/// (on average over its duration) next to our client and server.
pub const QUIET_OTHER_CORES: f64 = 0.25;
/// The generator-agreement goal is judged on the quiet rounds when at
/// least this many were quiet: in a disturbed round the client's core is
/// shared, the client becomes the bottleneck, and the pair measures which
/// client needs less CPU per request rather than the server.
pub const MIN_QUIET_ROUNDS: usize = 3;

/// round → value, per key.
#[derive(Debug, Default, Clone)]
pub struct Measurements {
    values: BTreeMap<String, BTreeMap<u32, f64>>,
}

impl Measurements {
    /// Parses `runs.tsv`; lines that are not `round key number` are skipped
    /// (a run that failed writes `n/a`).
    pub fn parse(text: &str) -> Measurements {
        let mut m = Measurements::default();
        for line in text.lines() {
            let mut f = line.split('\t');
            let (Some(r), Some(k), Some(v)) = (f.next(), f.next(), f.next()) else { continue };
            let (Ok(r), Ok(v)) = (r.trim().parse::<u32>(), v.trim().parse::<f64>()) else { continue };
            if v.is_finite() {
                m.insert(r, k.trim(), v);
            }
        }
        m
    }

    pub fn insert(&mut self, round: u32, key: &str, value: f64) {
        self.values.entry(key.to_string()).or_default().insert(round, value);
    }

    pub fn get(&self, round: u32, key: &str) -> Option<f64> {
        self.values.get(key)?.get(&round).copied()
    }

    /// The value of round 0, or else the median over rounds.
    pub fn figure(&self, key: &str) -> f64 {
        self.get(0, key).unwrap_or_else(|| self.median(key))
    }

    pub fn median(&self, key: &str) -> f64 {
        median(self.values.get(key).map(|r| r.values().copied().collect()).unwrap_or_default())
    }

    pub fn sum(&self, key: &str) -> f64 {
        self.values.get(key).map(|r| r.values().sum()).unwrap_or(f64::NAN)
    }

    /// Rounds (>= 1) in which `key` was measured.
    pub fn rounds(&self, key: &str) -> Vec<u32> {
        self.values.get(key).map(|r| r.keys().copied().filter(|&r| r > 0).collect()).unwrap_or_default()
    }

    /// Cores used by other processes during run `run` of `round`.
    pub fn other_cores(&self, round: u32, run: &str) -> Option<f64> {
        let other = self.get(round, &format!("{run}.other_cpu_s"))?;
        let wall = self.get(round, &format!("{run}.wall_s"))?;
        (wall > 0.0).then(|| other / wall)
    }
}

/// Median (mean of the middle two for an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Two runs compared round by round.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub what: String,
    pub a: String,
    pub b: String,
    pub a_median: f64,
    pub b_median: f64,
    /// (round, A/B) for each round where both ran.
    pub per_round: Vec<(u32, f64)>,
    /// Median of the per-round ratios.
    pub ratio: f64,
    /// Median over the rounds where both runs were quiet (see [`QUIET_OTHER_CORES`]).
    pub quiet_ratio: f64,
    pub quiet_rounds: usize,
    pub goal: Option<GoalResult>,
}

/// Builds the pair `a/b` on metric `metric` (e.g. `rps`).
pub fn pair(m: &Measurements, what: &str, a: &str, b: &str, metric: &str, rule: Option<Rule>) -> Pair {
    let (ka, kb) = (format!("{a}.{metric}"), format!("{b}.{metric}"));
    let mut per_round = Vec::new();
    let mut quiet = Vec::new();
    for r in m.rounds(&ka) {
        let (Some(x), Some(y)) = (m.get(r, &ka), m.get(r, &kb)) else { continue };
        if y <= 0.0 {
            continue;
        }
        per_round.push((r, x / y));
        let calm = |run| m.other_cores(r, run).is_some_and(|c| c < QUIET_OTHER_CORES);
        if calm(a) && calm(b) {
            quiet.push(x / y);
        }
    }
    let ratio = median(per_round.iter().map(|p| p.1).collect());
    let quiet_rounds = quiet.len();
    let quiet_ratio = median(quiet);
    Pair {
        what: what.to_string(),
        a: a.to_string(),
        b: b.to_string(),
        a_median: m.median(&ka),
        b_median: m.median(&kb),
        per_round,
        ratio,
        quiet_rounds,
        quiet_ratio,
        goal: rule.map(|rule| check(what, rule, ratio, "")),
    }
}

/// The agreement goal of a generator pair: on the quiet rounds if there
/// are at least [`MIN_QUIET_ROUNDS`], else on all, saying which.
pub fn agreement_goal(p: &Pair) -> GoalResult {
    let rule = Rule::NearOne(goals::GENERATOR_TOLERANCE);
    let n = p.per_round.len();
    if p.quiet_rounds >= MIN_QUIET_ROUNDS {
        check(&format!("{} [quiet rounds: {} of {n}]", p.what, p.quiet_rounds), rule, p.quiet_ratio, "")
    } else {
        check(&format!("{} [all {n} rounds; {} quiet]", p.what, p.quiet_rounds), rule, p.ratio, "")
    }
}

/// Everything the summary reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub first_line: String,
    pub pairs: Vec<Pair>,
    pub goals: Vec<GoalResult>,
    /// Other figures (name, value, how it was measured).
    pub figures: Vec<(String, f64, String)>,
    /// What was not measured, and why.
    pub notes: Vec<String>,
}

/// Run names written by compare.sh.
pub mod runs {
    pub const NGINX_WRK_ORIGINAL: &str = "nginx_seed_wrk_orig";
    pub const NGINX_WRK: &str = "nginx_seed_wrk";
    pub const NGINX_OURS: &str = "nginx_seed_ours";
    pub const NODE_SEED: &str = "node_seed";
    pub const NODE_WRK: &str = "node_seed_wrk";
    pub const NODE_OURS_ONE: &str = "node_seed_ours";
    pub const NGINX_LIKES: &str = "nginx_likes";
    pub const NODE_LIKES: &str = "node_likes";
    pub const NODE_LIKES_NOSYNC: &str = "node_likes_nosync";
    pub const REDIS: &str = "redis_incr";
    pub const FSYNC: &str = "fsync";
    pub const COLD: &str = "cold";
    pub const OVERLOAD: &str = "overload";

    /// The redis-benchmark `-P` depths of the RESP side by side found in
    /// the measurements (`node_resp_like_p16.rps` → 16), ascending.
    pub fn resp_depths(m: &super::Measurements) -> Vec<u32> {
        let mut d: Vec<u32> = m
            .values
            .keys()
            .filter_map(|k| k.strip_prefix("node_resp_like_p").or_else(|| k.strip_prefix("node_resp_get_p")))
            .filter_map(|k| k.split('.').next()?.parse().ok())
            .collect();
        d.sort_unstable();
        d.dedup();
        d
    }
}

pub fn summarize(m: &Measurements) -> Summary {
    let mut pairs = http_pairs(m);
    for p in &mut pairs[..2] {
        p.goal = Some(agreement_goal(p));
    }
    let mut goals: Vec<GoalResult> = pairs.iter().filter_map(|p| p.goal.clone()).collect();
    goals.extend(node_goals(m));
    let mut figures = figures(m);
    let resp = resp_side_by_side(m);
    goals.extend(resp.pairs.iter().filter_map(|p| p.goal.clone()));
    goals.extend(resp.goals);
    pairs.extend(resp.pairs);
    figures.extend(resp.figures);
    Summary { first_line: goals::summary_line(&goals), pairs, goals, figures, notes: resp.notes }
}

/// The HTTP pairs: generator agreement, node vs nginx, durable vs fsync off, vs redis.
fn http_pairs(m: &Measurements) -> Vec<Pair> {
    use runs::*;
    vec![
        pair(m, "generators agree: ours / wrk, nginx static gzip (req/s)", NGINX_OURS, NGINX_WRK, "rps", None),
        pair(m, "generators agree: ours / wrk, node seed-v4 one character (req/s)", NODE_OURS_ONE, NODE_WRK, "rps", None),
        pair(
            m,
            "ours / wrk with the original's Lua script (request() + response() per request)",
            NGINX_OURS,
            NGINX_WRK_ORIGINAL,
            "rps",
            None,
        ),
        pair(
            m,
            "node seed-v4 / nginx static, same gzip bytes (req/s)",
            NODE_SEED,
            NGINX_OURS,
            "rps",
            Some(Rule::AtLeast(goals::SEED_V4_VS_NGINX)),
        ),
        pair(
            m,
            "node durable likes / nginx fixed JSON to the same POSTs (req/s)",
            NODE_LIKES,
            NGINX_LIKES,
            "rps",
            Some(Rule::AtLeast(goals::LIKES_VS_NGINX)),
        ),
        pair(
            m,
            "node durable likes / same node with --wal-sync off (req/s)",
            NODE_LIKES,
            NODE_LIKES_NOSYNC,
            "rps",
            Some(Rule::AtLeast(goals::LIKES_VS_FSYNC_OFF)),
        ),
        pair(m, "node durable likes / redis INCR, appendfsync always (req/s)", NODE_LIKES, REDIS, "rps", None),
        pair(m, "node durable likes / raw fdatasync rate (writes per raw sync)", NODE_LIKES, FSYNC, "rps", None),
    ]
}

/// The node's own goals (rates, p99, errors) from its HTTP runs.
fn node_goals(m: &Measurements) -> Vec<GoalResult> {
    use runs::*;
    let fig = |run: &str, metric: &str| m.median(&format!("{run}.{metric}"));
    let failures = |run: &str| m.sum(&format!("{run}.errors")) + m.sum(&format!("{run}.shed"));
    vec![
        check("node seed-v4 ok/s (median; 50x 965)", Rule::AtLeast(goals::SEED_V4_MIN_RPS), fig(NODE_SEED, "rps"), "req/s"),
        check("node seed-v4 p99 (median)", Rule::Below(goals::P99_MAX_MS), fig(NODE_SEED, "p99_us") / 1000.0, "ms"),
        check("node seed-v4 errors + shed (all rounds)", Rule::AtMost(0.0), failures(NODE_SEED), "requests"),
        check("cold characters/s", Rule::AtLeast(goals::COLD_MIN_PER_S), m.figure(&format!("{COLD}.rps")), "characters/s"),
        check("node durable likes/s (median; issue 5)", Rule::AtLeast(goals::LIKES_MIN_PER_S), fig(NODE_LIKES, "rps"), "writes/s"),
        check("node durable likes p99 (median; issue 5)", Rule::Below(goals::P99_MAX_MS), fig(NODE_LIKES, "p99_us") / 1000.0, "ms"),
        check("node durable likes errors + shed (all rounds)", Rule::AtMost(0.0), failures(NODE_LIKES), "requests"),
        check("overload errors other than 503 OVERLOADED", Rule::AtMost(0.0), m.figure(&format!("{OVERLOAD}.errors")), "requests"),
        check("overload shed share", Rule::Above(0.0), m.figure(&format!("{OVERLOAD}.shed_share")), ""),
        goals::overload_bound(
            m.figure(&format!("{OVERLOAD}.accepted_p99_us")) / 1000.0,
            m.figure(&format!("{OVERLOAD}.capacity_p99_us")) / 1000.0,
        ),
    ]
}

/// Figures without a goal: fsync rates and costs, the overload run's details.
fn figures(m: &Measurements) -> Vec<(String, f64, String)> {
    use runs::*;
    let fig = |run: &str, metric: &str| m.median(&format!("{run}.{metric}"));
    vec![
        (
            "raw fdatasync/s (median)".into(),
            fig(FSYNC, "rps"),
            "maple bench fsync-rate on the node's data dir, 4 KiB + fdatasync, 1 writer".into(),
        ),
        (
            "node likes per fsync (median)".into(),
            fig(NODE_LIKES, "per_fsync"),
            "acknowledged toggles / fdatasync calls, from /metrics before and after".into(),
        ),
        (
            "redis INCR per fsync".into(),
            m.figure(&format!("{REDIS}.per_fsync")),
            "strace -c -f -e fdatasync,fsync on redis-server during one extra redis-benchmark run".into(),
        ),
        ("node fsync-off likes/s (median)".into(), fig(NODE_LIKES_NOSYNC, "rps"), "same node build, --wal-sync off".into()),
        ("overload capacity (req/s)".into(), m.figure(&format!("{OVERLOAD}.capacity")), "closed-loop probe in the same run".into()),
        ("overload offered (req/s)".into(), m.figure(&format!("{OVERLOAD}.offered")), "3x capacity, open loop".into()),
        (
            "overload accepted p99 from intended (ms)".into(),
            m.figure(&format!("{OVERLOAD}.accepted_p99_us")) / 1000.0,
            "2xx only, latency from the intended send time".into(),
        ),
        ("overload accepted max from intended (ms)".into(), m.figure(&format!("{OVERLOAD}.accepted_max_us")) / 1000.0, "".into()),
        (
            "overload capacity probe p99 (ms)".into(),
            m.figure(&format!("{OVERLOAD}.capacity_p99_us")) / 1000.0,
            "closed loop at capacity".into(),
        ),
        (
            "overload p99 of the 503 OVERLOADED answers (ms)".into(),
            m.figure(&format!("{OVERLOAD}.shed_p99_us")) / 1000.0,
            "from the intended send time: how fast the node says no".into(),
        ),
        ("overload shed share".into(), m.figure(&format!("{OVERLOAD}.shed_share")), "503 OVERLOADED / requests due".into()),
    ]
}

/// What the RESP side by side adds to the summary.
#[derive(Debug, Default)]
struct RespSideBySide {
    pairs: Vec<Pair>,
    goals: Vec<GoalResult>,
    figures: Vec<(String, f64, String)>,
    notes: Vec<String>,
}

/// Issue 12's side by side, redis-benchmark on both sides at each depth:
/// LIKE.TOGGLE on the node vs INCR on redis-server (appendfsync always),
/// EXPECT.GET GZIP vs GET of the same bytes. Rows the node could not
/// answer (`meta.resp_likes` / `meta.resp_get` not 1) are left out, with
/// a note, instead of counting as missed goals.
fn resp_side_by_side(m: &Measurements) -> RespSideBySide {
    let mut out = RespSideBySide::default();
    let measured = |k: &str| m.get(0, k) == Some(1.0);
    let depths = runs::resp_depths(m);
    if measured("meta.resp_likes") {
        for d in &depths {
            let (node, redis) = (format!("node_resp_like_p{d}"), format!("redis_incr_p{d}"));
            let what = format!("node LIKE.TOGGLE / redis INCR appendfsync always, redis-benchmark -P {d} (req/s)");
            out.pairs.push(pair(m, &what, &node, &redis, "rps", Some(Rule::AtLeast(goals::RESP_LIKES_VS_REDIS))));
            out.goals.push(check(
                &format!("node LIKE.TOGGLE -P {d}: runs stopped by an error reply"),
                Rule::AtMost(0.0),
                m.sum(&format!("{node}.errors")),
                "runs",
            ));
            out.figures.push((
                format!("node LIKE.TOGGLE -P {d} toggles per fsync (median)"),
                m.median(&format!("{node}.per_fsync")),
                "acknowledged toggles / fdatasync calls, from /metrics before and after each run".into(),
            ));
            out.figures.push((
                format!("redis INCR -P {d} writes per fsync"),
                m.figure(&format!("{redis}.per_fsync")),
                "strace -c -f -e fdatasync,fsync on redis-server during one extra redis-benchmark run".into(),
            ));
        }
    } else {
        out.notes.push("RESP LIKE.TOGGLE vs redis INCR (issue 12): not measured, the node did not answer LIKE.TOGGLE over RESP".into());
    }
    if measured("meta.resp_get") {
        for d in &depths {
            let what = format!("node EXPECT.GET GZIP / redis GET of the same bytes, redis-benchmark -P {d} (req/s)");
            let node = format!("node_resp_get_p{d}");
            out.pairs.push(pair(m, &what, &node, &format!("redis_get_p{d}"), "rps", Some(Rule::AtLeast(goals::RESP_GET_VS_REDIS))));
            out.goals.push(check(
                &format!("node EXPECT.GET -P {d}: runs stopped by an error reply"),
                Rule::AtMost(0.0),
                m.sum(&format!("{node}.errors")),
                "runs",
            ));
        }
        out.figures.push((
            "redis GET value bytes".into(),
            m.figure("meta.get_value_bytes"),
            "the node's gzip answer for the warm character, SET on redis-server".into(),
        ));
    } else {
        out.notes.push("RESP EXPECT.GET vs redis GET (issue 12): not measured, the node did not answer EXPECT.GET over RESP".into());
    }
    out
}

impl Summary {
    /// Markdown for `<out>/summary.md` (RESULTS.md-ready).
    pub fn to_markdown(&self, m: &Measurements) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}\n", self.first_line);
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "## Goals\n\n| goal | target | measured | verdict |\n|---|---|---|---|");
        for g in &self.goals {
            let mark = if g.met { "met" } else { "**missed**" };
            let _ = writeln!(s, "| {} | {} | {} | {mark}: {} |", g.goal, g.target, num(g.measured), g.verdict);
        }
        let _ = writeln!(s, "\n## Pairs (A/B = median of per-round ratios; runs of a pair ran back to back)\n");
        let _ = writeln!(s, "| pair | A median | B median | A/B | A/B quiet rounds | per round |\n|---|---|---|---|---|---|");
        for p in &self.pairs {
            let per: Vec<String> = p.per_round.iter().map(|(r, x)| format!("r{r} {x:.3}")).collect();
            let quiet =
                if p.quiet_rounds > 0 { format!("{:.3} ({} rounds)", p.quiet_ratio, p.quiet_rounds) } else { "no quiet round".into() };
            let _ = writeln!(
                s,
                "| {} | {} | {} | **{}** | {quiet} | {} |",
                p.what,
                num(p.a_median),
                num(p.b_median),
                if p.ratio.is_nan() { "n/a".into() } else { format!("{:.3}", p.ratio) },
                per.join(", ")
            );
        }
        let _ = writeln!(s, "\n## Other figures\n\n| figure | value | how |\n|---|---|---|");
        for (name, v, how) in &self.figures {
            let _ = writeln!(s, "| {name} | {} | {how} |", num(*v));
        }
        let _ = writeln!(s, "\n## Generator agreement, round by round\n");
        let _ = writeln!(
            s,
            "Other processes' CPU (cores, average over the run) and client CPU per request show whether a round was \
             disturbed: on 2 shared cores the cheaper client keeps more of its throughput when something else runs.\n"
        );
        let _ = writeln!(s, "| round | target | ours req/s | wrk req/s | ours/wrk | other cores ours / wrk | client us/req ours / wrk |\n|---|---|---|---|---|---|---|");
        for (target, ours, wrk) in [("nginx", runs::NGINX_OURS, runs::NGINX_WRK), ("node", runs::NODE_OURS_ONE, runs::NODE_WRK)] {
            for r in m.rounds(&format!("{ours}.rps")) {
                let g = |run: &str, k: &str| m.get(r, &format!("{run}.{k}")).unwrap_or(f64::NAN);
                let per_req = |run: &str| 1e6 * g(run, "client_cpu_s") / (g(run, "rps") * g(run, "wall_s"));
                let oc = |run: &str| m.other_cores(r, run).map(|c| format!("{c:.2}")).unwrap_or("n/a".into());
                let _ = writeln!(
                    s,
                    "| {r} | {target} | {} | {} | {:.3} | {} / {} | {} / {} |",
                    num(g(ours, "rps")),
                    num(g(wrk, "rps")),
                    g(ours, "rps") / g(wrk, "rps"),
                    oc(ours),
                    oc(wrk),
                    num(per_req(ours)),
                    num(per_req(wrk))
                );
            }
        }
        s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("summary serialises")
    }
}

/// Reads `<dir>/runs.tsv`, writes `<dir>/summary.md` and `summary.json`,
/// returns the markdown.
pub fn summarize_dir(dir: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let tsv = dir.join("runs.tsv");
    let text = std::fs::read_to_string(&tsv).with_context(|| format!("read {}", tsv.display()))?;
    let m = Measurements::parse(&text);
    let mut summary = summarize(&m);
    // compare.sh's reason for skipped RESP rows (which port, what the node said).
    if let Ok(note) = std::fs::read_to_string(dir.join("resp_note.txt")) {
        if !note.trim().is_empty() {
            summary.notes.push(format!("RESP probe: {}", note.trim()));
        }
    }
    let mut md = summary.to_markdown(&m);
    if let Ok(header) = std::fs::read_to_string(dir.join("header.md")) {
        md = format!("{header}\n{md}");
    }
    match std::fs::read_to_string(dir.join("profiles.md")) {
        Ok(p) if !p.trim().is_empty() => {
            md.push_str("\n## Where the node's time goes (perf, flat by symbol)\n\n");
            md.push_str(&p);
        }
        _ => {}
    }
    if let Ok(cmds) = std::fs::read_to_string(dir.join("commands.md")) {
        md.push('\n');
        md.push_str(&cmds);
    }
    std::fs::write(dir.join("summary.md"), &md)?;
    std::fs::write(dir.join("summary.json"), summary.to_json())?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarize_dir_writes_markdown_and_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runs.tsv"), "1\tnode_likes.rps\t30000\n1\tnode_likes_nosync.rps\t33000\n").unwrap();
        std::fs::write(dir.path().join("header.md"), "# bench compare — test\n").unwrap();
        std::fs::write(dir.path().join("commands.md"), "## Commands\n").unwrap();
        let md = summarize_dir(dir.path()).unwrap();
        assert!(md.starts_with("# bench compare — test\n\nGOALS: "));
        assert!(md.ends_with("## Commands\n"));
        assert!(
            md.contains("| node durable likes / same node with --wal-sync off (req/s) | >= 0.800 | 0.909 | met: met, +13.6 % |"),
            "{md}"
        );
        assert_eq!(std::fs::read_to_string(dir.path().join("summary.md")).unwrap(), md);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
        assert!(json["goals"].as_array().unwrap().len() >= 10);
        assert!(summarize_dir(&dir.path().join("missing")).is_err());
    }

    /// The issue-12 rows: goals per depth when the node answered RESP;
    /// left out with a note (not "missed") when it did not.
    #[test]
    fn resp_side_by_side_is_held_or_noted() {
        let mut m = Measurements::default();
        m.insert(0, "meta.resp_likes", 1.0);
        m.insert(0, "meta.resp_get", 0.0);
        m.insert(0, "redis_incr_p16.per_fsync", 12.5);
        for r in 1..=3 {
            for (d, node, redis) in [(1, 9_000.0, 10_000.0), (16, 60_000.0, 50_000.0)] {
                m.insert(r, &format!("node_resp_like_p{d}.rps"), node);
                m.insert(r, &format!("node_resp_like_p{d}.errors"), 0.0);
                m.insert(r, &format!("node_resp_like_p{d}.per_fsync"), 40.0);
                m.insert(r, &format!("redis_incr_p{d}.rps"), redis);
            }
        }
        let s = summarize(&m);
        let find = |name: &str| s.goals.iter().find(|g| g.goal.starts_with(name)).unwrap_or_else(|| panic!("{name}")).clone();
        let p1 = find("node LIKE.TOGGLE / redis INCR appendfsync always, redis-benchmark -P 1 ");
        assert!(!p1.met && (p1.measured - 0.9).abs() < 1e-9, "{p1:?}");
        assert!(find("node LIKE.TOGGLE / redis INCR appendfsync always, redis-benchmark -P 16 ").met);
        assert!(find("node LIKE.TOGGLE -P 16: runs stopped").met);
        assert!(!s.goals.iter().any(|g| g.goal.contains("EXPECT.GET")), "skipped rows hold no goal");
        assert_eq!(s.notes.len(), 1);
        assert!(s.notes[0].contains("EXPECT.GET"), "{:?}", s.notes);
        let fig = |name: &str| s.figures.iter().find(|f| f.0 == name).unwrap().1;
        assert_eq!(fig("node LIKE.TOGGLE -P 16 toggles per fsync (median)"), 40.0);
        assert_eq!(fig("redis INCR -P 16 writes per fsync"), 12.5);
        let md = s.to_markdown(&m);
        assert!(md.contains("\n- RESP EXPECT.GET vs redis GET (issue 12): not measured"), "{md}");
        assert!(
            md.contains("| node LIKE.TOGGLE / redis INCR appendfsync always, redis-benchmark -P 16 (req/s) | 60000 | 50000 | **1.200** |")
        );

        // Nothing answered on the RESP port: no RESP goal at all, two notes,
        // and the probe's own words from resp_note.txt.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runs.tsv"), "0\tmeta.resp_likes\t0\n0\tmeta.resp_get\t0\n").unwrap();
        std::fs::write(dir.path().join("resp_note.txt"), "skipped: nothing answers RESP on 127.0.0.1:6380\n").unwrap();
        let md = summarize_dir(dir.path()).unwrap();
        assert!(!md.contains("LIKE.TOGGLE / redis"), "{md}");
        assert!(md.contains("\n- RESP probe: skipped: nothing answers RESP on 127.0.0.1:6380\n"), "{md}");
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        assert_eq!(median(vec![f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn parse_skips_junk_and_failed_runs() {
        let m = Measurements::parse("1\ta.rps\t10\n1\tb.rps\tn/a\nfoo\n2\ta.rps\t 30 \n0\tcold.rps\t55.5\n");
        assert_eq!(m.get(1, "a.rps"), Some(10.0));
        assert_eq!(m.get(1, "b.rps"), None);
        assert_eq!(m.median("a.rps"), 20.0);
        assert_eq!(m.rounds("a.rps"), vec![1, 2]);
        assert_eq!(m.figure("cold.rps"), 55.5);
        assert!(m.figure("missing").is_nan());
    }

    /// The ratio is taken within each round, then the median: a round in
    /// which both sides dropped (machine busy) does not skew it, while the
    /// ratio of the medians would mix different rounds.
    #[test]
    fn pair_ratio_is_median_of_per_round_ratios() {
        let mut m = Measurements::default();
        for (r, a, b) in [(1, 100.0, 100.0), (2, 50.0, 40.0), (3, 90.0, 100.0), (4, 110.0, 100.0), (5, 20.0, 100.0)] {
            m.insert(r, "x.rps", a);
            m.insert(r, "y.rps", b);
            m.insert(r, "x.wall_s", 10.0);
            m.insert(r, "y.wall_s", 10.0);
            // Round 2 and 5 were disturbed by other processes.
            let other = if r == 2 || r == 5 { 8.0 } else { 0.5 };
            m.insert(r, "x.other_cpu_s", other);
            m.insert(r, "y.other_cpu_s", other);
        }
        let mut p = pair(&m, "x/y", "x", "y", "rps", Some(Rule::NearOne(0.1)));
        let ratios: Vec<f64> = p.per_round.iter().map(|x| x.1).collect();
        assert_eq!(ratios, vec![1.0, 1.25, 0.9, 1.1, 0.2]);
        assert_eq!(p.ratio, 1.0);
        assert_eq!(p.a_median, 90.0);
        assert_eq!(p.b_median, 100.0);
        assert_eq!(p.quiet_rounds, 3);
        assert_eq!(p.quiet_ratio, 1.0);
        assert!(p.goal.as_ref().unwrap().met);
        assert_eq!(m.other_cores(2, "x"), Some(0.8));
        let g = agreement_goal(&p);
        assert_eq!(g.goal, "x/y [quiet rounds: 3 of 5]");
        assert_eq!(g.measured, 1.0);
        // With fewer than 3 quiet rounds the verdict is on all of them.
        p.quiet_rounds = 2;
        assert_eq!(agreement_goal(&p).goal, "x/y [all 5 rounds; 2 quiet]");
    }

    #[test]
    fn summary_states_goals_and_marks_unmeasured() {
        let mut m = Measurements::default();
        for r in 1..=3 {
            m.insert(r, "node_seed.rps", 60_000.0);
            m.insert(r, "node_seed.p99_us", 2500.0);
            m.insert(r, "node_seed.errors", 0.0);
            m.insert(r, "node_seed.shed", 0.0);
            m.insert(r, "nginx_seed_ours.rps", 66_000.0);
            m.insert(r, "nginx_seed_wrk.rps", 60_000.0);
            m.insert(r, "node_likes.rps", 20_000.0);
            m.insert(r, "node_likes_nosync.rps", 40_000.0);
        }
        m.insert(0, "cold.rps", 57.6);
        let s = summarize(&m);
        let find = |name: &str| s.goals.iter().find(|g| g.goal.starts_with(name)).unwrap().clone();
        assert!(find("node seed-v4 ok/s").met);
        assert!(find("node seed-v4 p99").met);
        assert!(find("node seed-v4 errors").met);
        assert!(find("node seed-v4 / nginx").met, "60000/66000 = 0.91 >= 0.7");
        let agree = find("generators agree: ours / wrk, nginx");
        assert!((agree.measured - 1.1).abs() < 1e-9 && agree.met);
        assert!(agree.goal.ends_with("[all 3 rounds; 0 quiet]"), "{}", agree.goal);
        let durable = find("node durable likes / same node");
        assert!(!durable.met);
        assert_eq!(durable.verdict, "missed by 37.5 % (needs 1.60x)");
        assert!(!find("cold characters/s").met);
        assert_eq!(find("node durable likes / nginx").verdict, "not measured");
        assert!(s.first_line.starts_with("GOALS: "));
        let md = s.to_markdown(&m);
        assert!(md.contains("| node durable likes / same node with --wal-sync off (req/s) | 20000 | 40000 | **0.500** |"), "{md}");
        assert!(md.contains("| 1 | nginx | 66000 | 60000 | 1.100 |"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["first_line"], s.first_line);
    }
}
