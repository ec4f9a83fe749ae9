//! What a crash loop found: per round, the failover time and what the
//! round cost; over the run, the percentiles, the toggles acknowledged and
//! every check that failed. Text for people, JSON for tools.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// The goal: kill -9 of a leader → writes acknowledged again, p99
/// over 20 kills under 2 s.
pub const FAILOVER_GOAL_MS: f64 = 2000.0;

/// One kill.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundRecord {
    pub round: u32,
    /// The node killed (it led the most partitions).
    pub victim: u64,
    pub victim_led_partitions: usize,
    /// The probe's character is in this partition, led by the victim.
    pub probe_partition: usize,
    pub probe_character: String,
    /// kill -9 → the probe's keyed toggle acknowledged through a surviving node.
    pub failover_ms: Option<f64>,
    pub probe_attempts: u32,
    pub probe_answered_by: Option<u64>,
    /// kill -9 → the surviving nodes agree on a living leader of every partition.
    pub leaders_ms: Option<f64>,
    /// restart → the restarted node's `/health/ready` is 200 (it caught up).
    pub restart_ready_ms: Option<f64>,
    /// ready → every partition led by its preferred replica again; `None`
    /// when that did not happen within the bound (not a failure).
    pub rebalance_ms: Option<f64>,
    /// Loader toggles acknowledged from the kill to the end of the round.
    pub toggles_acked: u64,
    /// The probe was acknowledged and the node came back within the bounds.
    pub recovered: bool,
    pub failure: Option<String>,
}

/// Percentiles of a set of durations (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Spread {
            count: v.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: v[v.len() - 1],
            mean_ms: v.iter().sum::<f64>() / v.len() as f64,
            min_ms: v[0],
        })
    }

    fn line(&self) -> String {
        format!(
            "p50 {} ms, p99 {} ms, max {} ms, mean {} ms, min {} ms",
            thousands(self.p50_ms),
            thousands(self.p99_ms),
            thousands(self.max_ms),
            thousands(self.mean_ms),
            thousands(self.min_ms)
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CrashLoopReport {
    /// Nothing lost or applied twice, no unexpected answer, every round
    /// recovered, every node stopped cleanly.
    pub ok: bool,
    pub rounds_requested: u32,
    pub rounds_recovered: u32,
    pub nodes: u16,
    pub cores: u16,
    pub partitions: usize,
    pub loaders: usize,
    pub failover: Option<Spread>,
    pub failover_goal_p99_ms: f64,
    pub failover_goal_met: bool,
    pub leaders_back: Option<Spread>,
    /// Loader and probe toggles acknowledged.
    pub acknowledged_toggles: u64,
    pub loader_toggles: u64,
    pub probe_toggles: u64,
    /// Acknowledged answers that were not the state the model predicts.
    pub wrong_answers: u64,
    /// (user, character) pairs read through every node at the end.
    pub final_pairs_checked: usize,
    /// Reads that differ from the model (liked or count): the probe's pair
    /// through every node after each round, every pair at the end.
    pub read_mismatches: u64,
    /// 503 + Retry-After answers, by code (allowed while leadership moves).
    pub unavailable_503: BTreeMap<String, u64>,
    /// Refused / reset connections to a node that was down or just killed.
    pub killed_node_connection_errors: u64,
    /// Unexpected answers and errors (any makes the run fail).
    pub error_count: u64,
    /// The first of them, word for word.
    pub errors: Vec<String>,
    /// Why the run failed, besides `errors`.
    pub failures: Vec<String>,
    pub data_dir: String,
    pub duration_s: f64,
    pub rounds: Vec<RoundRecord>,
}

impl CrashLoopReport {
    /// Fills the derived fields from the rounds and the counters.
    pub fn finish(&mut self) {
        let recovered: Vec<&RoundRecord> = self.rounds.iter().filter(|r| r.recovered).collect();
        self.rounds_recovered = recovered.len() as u32;
        self.failover = Spread::of(&recovered.iter().filter_map(|r| r.failover_ms).collect::<Vec<_>>());
        self.leaders_back = Spread::of(&recovered.iter().filter_map(|r| r.leaders_ms).collect::<Vec<_>>());
        self.failover_goal_p99_ms = FAILOVER_GOAL_MS;
        self.failover_goal_met = self.failover.is_some_and(|f| f.p99_ms < FAILOVER_GOAL_MS);
        self.acknowledged_toggles = self.loader_toggles + self.probe_toggles;
        if self.rounds_recovered < self.rounds_requested && self.failures.is_empty() {
            self.failures.push(format!("{} of {} rounds recovered", self.rounds_recovered, self.rounds_requested));
        }
        self.ok = self.failures.is_empty()
            && self.error_count == 0
            && self.wrong_answers == 0
            && self.read_mismatches == 0
            && self.rounds_recovered == self.rounds_requested;
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.ok {
            let _ = writeln!(
                out,
                "OK: {} of {} rounds recovered; {} toggles acknowledged, none lost or applied twice; every node answers the model ({} pairs x {} nodes)",
                self.rounds_recovered,
                self.rounds_requested,
                thousands(self.acknowledged_toggles as f64),
                self.final_pairs_checked,
                self.nodes
            );
        } else {
            let mut why = self.failures.clone();
            if self.wrong_answers > 0 {
                why.push(format!("{} wrong answers", self.wrong_answers));
            }
            if self.read_mismatches > 0 {
                why.push(format!("{} reads differ from the model", self.read_mismatches));
            }
            if self.error_count > 0 {
                why.push(format!("{} errors", self.error_count));
            }
            let _ = writeln!(out, "FAILED: {}", why.join("; "));
        }
        match &self.failover {
            Some(f) => {
                let verdict = if self.failover_goal_met { "MET" } else { "MISSED" };
                let _ = writeln!(
                    out,
                    "failover (kill -9 -> a keyed toggle acknowledged again through a surviving node), {} kills: {}; goal p99 < {} ms: {verdict}",
                    f.count,
                    f.line(),
                    thousands(FAILOVER_GOAL_MS)
                );
            }
            None => out.push_str("failover: no round recovered\n"),
        }
        if let Some(l) = &self.leaders_back {
            let _ = writeln!(out, "every partition led again (the survivors agree), from the kill: {}", l.line());
        }
        let _ = writeln!(
            out,
            "toggles acknowledged: {} ({} by {} loaders, {} probes)",
            thousands(self.acknowledged_toggles as f64),
            thousands(self.loader_toggles as f64),
            self.loaders,
            self.probe_toggles
        );
        let shed: u64 = self.unavailable_503.values().sum();
        let codes: Vec<String> = self.unavailable_503.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            out,
            "meanwhile: {shed} x 503 + Retry-After ({}); {} refused/reset connections to the killed node",
            if codes.is_empty() { "none".into() } else { codes.join(", ") },
            self.killed_node_connection_errors
        );
        let _ = writeln!(out, "errors: {}", self.error_count);
        for e in &self.errors {
            let _ = writeln!(out, "  {e}");
        }
        let _ = writeln!(out, "\nround victim led probe-partition failover_ms leaders_ms ready_ms rebalance_ms toggles");
        for r in &self.rounds {
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            let _ = writeln!(
                out,
                "{:>5} {:>6} {:>3} {:>15} {:>11} {:>10} {:>8} {:>12} {:>7}{}",
                r.round,
                r.victim,
                r.victim_led_partitions,
                r.probe_partition,
                ms(r.failover_ms),
                ms(r.leaders_ms),
                ms(r.restart_ready_ms),
                ms(r.rebalance_ms),
                r.toggles_acked,
                r.failure.as_ref().map_or(String::new(), |f| format!("  FAILED: {f}"))
            );
        }
        let _ = writeln!(
            out,
            "\n{} x `maple serve --cores {}` on 127.0.0.1, {} partitions, {:.0} s; data: {}",
            self.nodes, self.cores, self.partitions, self.duration_s, self.data_dir
        );
        out
    }
}

/// `1473.4` → `1,473`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(|i| i as f64 * 100.0).collect();
        let s = Spread::of(&v).unwrap();
        assert_eq!((s.count, s.p50_ms, s.p99_ms, s.max_ms, s.min_ms), (20, 1000.0, 2000.0, 2000.0, 100.0));
        assert_eq!(s.mean_ms, 1050.0);
        assert_eq!(Spread::of(&[7.0]).unwrap().p99_ms, 7.0);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(thousands(1473.4), "1,473");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }

    #[test]
    fn a_run_is_ok_only_when_every_check_passed() {
        let round = |ms| RoundRecord { failover_ms: Some(ms), leaders_ms: Some(ms + 10.0), recovered: true, ..Default::default() };
        let mut r = CrashLoopReport {
            rounds_requested: 2,
            rounds: vec![round(1500.0), round(1900.0)],
            loader_toggles: 10,
            probe_toggles: 2,
            ..Default::default()
        };
        r.finish();
        assert!(r.ok && r.failover_goal_met, "{}", r.to_text());
        assert_eq!(r.acknowledged_toggles, 12);
        assert!(r.to_text().starts_with("OK: 2 of 2 rounds"), "{}", r.to_text());
        let mut lost = r.clone();
        lost.read_mismatches = 1;
        lost.finish();
        assert!(!lost.ok);
        assert!(lost.to_text().starts_with("FAILED: 1 reads differ"), "{}", lost.to_text());
        let mut short = r.clone();
        short.rounds_requested = 3;
        short.finish();
        assert!(!short.ok);
        assert!(short.to_text().contains("2 of 3 rounds recovered"));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["failover"]["p99_ms"], 1900.0);
        assert_eq!(json["rounds"].as_array().unwrap().len(), 2);
    }
}
