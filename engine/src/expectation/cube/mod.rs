//! Expected cube cost: how many cube uses, on average, to roll an item's
//! current potential lines, and what that costs.
//!
//! Two engines, chosen per line set the way the original chooses them
//! ([`infer::choose_engine`]):
//! - **DP** (`DP(STR_PERCENT>=30)`): P(sum of the main stat over three lines ≥
//!   the current sum), by convolving per-slot distributions
//!   ([`dp`], [`pmf`]). Table groups are normalised to mass 1.
//! - **exact lines** (`V1`): P(these three lines in any order), each line
//!   looked up in its own slot's group with its raw rate ([`exact`]).
//!
//! Expected trials = 1/p (geometric); cost = round(trials) × price per use.
//! What the table cannot answer is [`CubeOutcome::Unavailable`] with a reason —
//! never a cost of 0: levels the table does not list, incomplete groups,
//! impossible line sets (p = 0), and every additional cube (the table has no
//! additional-potential odds).

pub mod cost;
pub mod dp;
pub mod exact;
pub mod infer;
pub mod pmf;
pub mod stat;
pub mod table;

use std::sync::OnceLock;

use cost::CubeCostTable;
use infer::EngineChoice;
use table::{LookupMiss, ProbabilityTable};

/// The embedded option table (the original's `cube_probability.csv`).
pub const EMBEDDED_CSV: &str = include_str!("../../../data/cube_probability.csv");
/// The embedded constant tables (for `cube_cost_per_use_meso`).
pub const EMBEDDED_LOOKUP_JSON: &str = include_str!("../../../data/lookup_tables.json");

/// Expected trials above this are reported as unavailable (no meaningful price).
pub const MAX_TRIALS: f64 = 1e15;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CubeKind {
    /// Main potential, priced in meso.
    Black,
    /// Main potential, priced as a count of cubes (1 per use).
    Red,
    /// Additional potential: the table has no odds for it.
    Additional,
}

/// One item's potential: which cube, the item's `item_equipment_slot`
/// ("모자", "반지1"), `base_equipment_level`, current grade ("레전드리" or
/// "LEGENDARY") and its lines (blank / missing lines are allowed; at most 3).
#[derive(Clone, Copy, Debug)]
pub struct CubeQuery<'a> {
    pub kind: CubeKind,
    pub slot: &'a str,
    pub level: u32,
    pub grade: &'a str,
    pub lines: &'a [&'a str],
}

#[derive(Clone, Debug, PartialEq)]
pub enum CubeOutcome {
    /// `trials` = round(`trials_raw`) (half up); `cost` = `trials` × `cost_per_trial`.
    Priced { trials_raw: f64, trials: u64, cost_per_trial: u64, cost: u64, engine: String },
    /// The table cannot price this; `reason` says why. `engine` is the engine the
    /// line set would use (`DP(…)`, `V1`, or `-` for malformed input).
    Unavailable { reason: String, engine: String },
}

impl CubeOutcome {
    pub fn engine(&self) -> &str {
        match self {
            CubeOutcome::Priced { engine, .. } | CubeOutcome::Unavailable { engine, .. } => engine,
        }
    }

    pub fn is_priced(&self) -> bool {
        matches!(self, CubeOutcome::Priced { .. })
    }

    /// Cost in meso (or cubes for RED) when priced.
    pub fn cost(&self) -> Option<u64> {
        match self {
            CubeOutcome::Priced { cost, .. } => Some(*cost),
            CubeOutcome::Unavailable { .. } => None,
        }
    }
}

/// English grade name for the Korean one ("레전드리" → "LEGENDARY").
pub fn grade_english(korean: &str) -> Option<&'static str> {
    let k = korean.trim();
    table::GRADES_KOREAN.iter().position(|g| *g == k).map(|i| table::GRADES_ENGLISH[i])
}

/// Probability table + cube prices, immutable after construction.
#[derive(Debug)]
pub struct CubeTables {
    table: ProbabilityTable,
    costs: CubeCostTable,
}

impl CubeTables {
    /// Builds from a CSV table and a lookup-tables JSON document.
    pub fn parse(csv: &str, lookup_json: &str) -> Result<CubeTables, String> {
        let table = ProbabilityTable::parse(csv).map_err(|e| e.to_string())?;
        let costs = CubeCostTable::from_lookup_json(lookup_json)?;
        Ok(CubeTables { table, costs })
    }

    /// The tables compiled into the binary, parsed on first use.
    pub fn embedded() -> &'static CubeTables {
        static TABLES: OnceLock<CubeTables> = OnceLock::new();
        TABLES.get_or_init(|| {
            // The inputs are compile-time constants; the unit tests parse them,
            // so this cannot fail in a binary whose tests pass.
            CubeTables::parse(EMBEDDED_CSV, EMBEDDED_LOOKUP_JSON).expect("embedded cube tables parse")
        })
    }

    pub fn probability_table(&self) -> &ProbabilityTable {
        &self.table
    }

    pub fn cost_table(&self) -> &CubeCostTable {
        &self.costs
    }

    /// Expected trials and cost for one item's potential.
    pub fn expectation(&self, q: &CubeQuery) -> CubeOutcome {
        let unavailable = |reason: String, engine: &str| CubeOutcome::Unavailable { reason, engine: engine.to_owned() };
        if q.lines.len() > 3 {
            return unavailable(format!("a potential has at most 3 lines, got {}", q.lines.len()), "-");
        }
        let mut lines = [""; 3];
        for (dst, src) in lines.iter_mut().zip(q.lines) {
            *dst = if src.trim().is_empty() { "" } else { src };
        }
        let has_context = !q.slot.trim().is_empty() && !q.grade.trim().is_empty() && q.level > 0;
        let choice = infer::choose_engine(&lines, has_context);
        let engine = choice.to_string();

        if q.kind == CubeKind::Additional {
            return unavailable("no additional-potential odds in the table".into(), &engine);
        }
        let groups = match self.table.line_groups(q.slot, q.level, q.grade) {
            Ok(g) => g,
            Err(miss) => return unavailable(self.miss_reason(miss, q), &engine),
        };
        let p = match choice {
            EngineChoice::Dp(target) => match dp::success_probability(&self.table, &groups, target) {
                Ok(p) => p,
                Err(dp::DpError::EmptySlot(s)) => {
                    return unavailable(
                        format!("the table has no rows for line {s} of {} level {} {}", q.slot.trim(), q.level, q.grade.trim()),
                        &engine,
                    )
                }
                Err(dp::DpError::Drift(text)) => return unavailable(format!("table option {text:?} matches no stat keyword"), &engine),
                Err(dp::DpError::Pmf(e)) => return unavailable(e.to_string(), &engine),
            },
            EngineChoice::ExactLines => exact::success_probability(&self.table, &groups, lines),
        };
        if p.is_nan() || p <= 0.0 {
            return unavailable("impossible: the table gives these lines probability 0".into(), &engine);
        }
        let trials_raw = pmf::expected_trials(p);
        if trials_raw.is_nan() || trials_raw > MAX_TRIALS {
            return unavailable(format!("expected trials {trials_raw:e} beyond {MAX_TRIALS:e}"), &engine);
        }
        let Some(cost_per_trial) = self.costs.cost_per_use(q.kind, q.level, q.grade) else {
            return unavailable(format!("no cube price for grade {:?}", q.grade), &engine);
        };
        // Half up, like Java's Math.round (trials_raw > 0 here).
        let trials = trials_raw.round() as u64;
        let Some(cost) = trials.checked_mul(cost_per_trial) else {
            return unavailable("cost overflows u64".into(), &engine);
        };
        CubeOutcome::Priced { trials_raw, trials, cost_per_trial, cost, engine }
    }

    fn miss_reason(&self, miss: LookupMiss, q: &CubeQuery) -> String {
        match miss {
            LookupMiss::UnknownGrade => format!("unknown potential grade {:?}", q.grade),
            LookupMiss::UnknownItemSlot => {
                format!("the table has no rows for item slot {:?}", q.slot)
            }
            LookupMiss::UnknownLevel => format!(
                "the table has no rows for level {} (its levels: {})",
                q.level,
                self.table.levels().iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
            LookupMiss::NoRows => {
                format!("the table has no rows for {} level {} {}", q.slot.trim(), q.level, q.grade.trim())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<'a>(kind: CubeKind, slot: &'a str, level: u32, grade: &'a str, lines: &'a [&'a str]) -> CubeQuery<'a> {
        CubeQuery { kind, slot, level, grade, lines }
    }

    #[test]
    fn embedded_tables_parse() {
        let t = CubeTables::embedded();
        assert_eq!(t.probability_table().levels(), &[100, 110, 120, 130, 135, 140, 150, 160, 200, 250]);
        assert!(t.probability_table().option_count() > 200);
        // No option of the shipped table trips drift detection.
        let table = t.probability_table();
        for id in 0..table.option_count() {
            assert!(!table.option(id as u16).drift, "{}", table.option(id as u16).text);
        }
    }

    #[test]
    fn raw_mass_is_visible() {
        let table = CubeTables::embedded().probability_table();
        let off = table.mass_report(1e-6);
        assert!(!off.is_empty(), "the shipped table has groups whose mass is not 1");
        let lo = off.iter().map(|g| g.raw_mass).fold(f64::INFINITY, f64::min);
        let hi = off.iter().map(|g| g.raw_mass).fold(0.0, f64::max);
        assert!((0.06..0.07).contains(&lo) && (1.14..1.15).contains(&hi), "{lo} {hi}");
        let m = table.raw_mass("모자", 250, "레전드리", 1).unwrap();
        assert!((m - 1.000001).abs() < 1e-9, "{m}");
        assert_eq!(table.raw_mass("모자", 145, "레전드리", 1), None);
        assert_eq!(table.raw_mass("모자", 250, "레전드리", 4), None);
    }

    #[test]
    fn grades_translate() {
        assert_eq!(grade_english("레전드리"), Some("LEGENDARY"));
        assert_eq!(grade_english("유니크"), Some("UNIQUE"));
        assert_eq!(grade_english("에픽"), Some("EPIC"));
        assert_eq!(grade_english("레어"), Some("RARE"));
        assert_eq!(grade_english("미스틱"), None);
    }

    #[test]
    fn unavailable_not_zero() {
        let t = CubeTables::embedded();
        let lines = ["STR +12%", "STR +9%", "STR +9%"];
        let add = t.expectation(&q(CubeKind::Additional, "모자", 200, "레전드리", &lines));
        assert_eq!(
            add,
            CubeOutcome::Unavailable { reason: "no additional-potential odds in the table".into(), engine: "DP(STR_PERCENT>=30)".into() }
        );
        let lvl = t.expectation(&q(CubeKind::Black, "모자", 145, "레전드리", &lines));
        match lvl {
            CubeOutcome::Unavailable { reason, .. } => {
                assert!(reason.contains("level 145"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let too_many = t.expectation(&q(CubeKind::Black, "모자", 200, "레전드리", &["a", "b", "c", "d"]));
        assert!(!too_many.is_priced());
        assert!(!t.expectation(&q(CubeKind::Black, "없는부위", 200, "레전드리", &lines)).is_priced());
        assert!(!t.expectation(&q(CubeKind::Black, "모자", 200, "미스틱", &lines)).is_priced());
    }

    #[test]
    fn red_is_a_count() {
        let t = CubeTables::embedded();
        let lines = ["STR +12%", "STR +9%", "STR +9%"];
        match t.expectation(&q(CubeKind::Red, "모자", 200, "레전드리", &lines)) {
            CubeOutcome::Priced { trials, cost_per_trial, cost, .. } => {
                assert_eq!(cost_per_trial, 1);
                assert_eq!(cost, trials);
                assert_eq!(trials, 557);
            }
            other => panic!("{other:?}"),
        }
    }
}
