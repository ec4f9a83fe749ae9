//! Flame (환생의 불꽃) expectation: how many flames of each kind it takes, on
//! average, to roll additional options at least as good as the item's.
//!
//! The facts follow the original (zbnerd/MapleExpectation, `FlameInputResolver`,
//! `FlameScoreCalculator`, `FlameDpCalculator`, `PresetCalculationHelper`):
//!
//! 1. **Target.** The item's `item_add_option` stats are weighted by the
//!    class (see [`weights`]); the sum (scaled by 10) is the target T. An
//!    item with T ≤ 0 (no flame, or only stats its class ignores) gets no
//!    flame expectation: all trials 0, no target, no category.
//! 2. **Category.** Weapon iff `item_equipment_slot == "무기"`; boss drop by
//!    name (see [`category`]). Boss drops roll 4 lines with the boss stage
//!    odds, other items 1–4 lines with the other odds.
//! 3. **Trials.** For each flame (powerful / eternal / abyss): the option
//!    PMFs of the pool ([`pmf`]), P(score ≥ T) by the DP ([`dp`]), trials =
//!    1/P rounded half-up to 2 decimals.
//!
//! Where the original prices a flame 0 — the table has no option at every
//! stage this flame rolls at the item's level (stages 1–2 at levels
//! 160–169 are empty, so non-boss powerful/eternal flames there; stages 6–7
//! at 170–199, so boss flames there), or T is out of reach — we keep the 0 in
//! the number (the reference values and the response's meaning depend on
//! it) and say why in [`FlameOutcome::status`], so the response can show
//! "impossible" / "unavailable" instead of a free flame
//! (`ORIGINAL_DEFECTS.md` §5).
//!
//! Reproduced as the original has it (the math of its tables, not ours to
//! fix silently): weapon attack lines multiply the base attack itself
//! (`floor((level/40+1)·stage·(1+0.1·(stage−3))·base)`, not a percentage),
//! so almost any weapon target is met by one attack or magic line; armor
//! tables list boss damage for armor, 6/7 at stages 6–7 of levels 100–150
//! and 250.

pub mod category;
pub mod dp;
pub mod pmf;
pub mod tables;
pub mod weights;

use serde_json::Value;

pub use category::FlameCategory;
pub use pmf::WeaponBase;
pub use tables::{FlameOption, FlameType};
pub use weights::{AddOption, JobWeights};

/// One equipped item, as the flame math needs it.
#[derive(Debug, Clone, Copy)]
pub struct FlameInput<'a> {
    pub item_name: &'a str,
    /// `item_equipment_slot` (weapon iff `"무기"`).
    pub slot: &'a str,
    /// `base_equipment_level` (from `item_base_option`).
    pub level: u32,
    /// The character's `character_class`.
    pub character_class: &'a str,
    /// The item's `item_add_option` object.
    pub add_option: &'a Value,
    /// `item_base_option.attack_power` (Nexon sends `"251"`; absent or
    /// unparsable = 0, as in the original). A weapon's attack lines are
    /// computed from it; ignored for other items.
    pub base_attack_power: u32,
    /// `item_base_option.magic_power`, likewise for magic lines.
    pub base_magic_power: u32,
}

/// Why a flame's trials are what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialsStatus {
    /// Trials computed (≥ 1).
    Expected,
    /// The item has no weighted flame stats for this class: nothing to price.
    NoTarget,
    /// The table has no option with a value at every stage this flame
    /// rolls at the item's level; the original prices this 0.
    NotInTable,
    /// This flame cannot reach the target (P = 0); the original prices 0.
    Unreachable,
    /// The target or the score space is beyond the bounds we compute.
    TooLarge,
}

impl TrialsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialsStatus::Expected => "EXPECTED",
            TrialsStatus::NoTarget => "NO_TARGET",
            TrialsStatus::NotInTable => "NOT_IN_TABLE",
            TrialsStatus::Unreachable => "UNREACHABLE",
            TrialsStatus::TooLarge => "TOO_LARGE",
        }
    }

    /// True when the 0 in the trials means "cannot be priced", not "free".
    pub fn is_unavailable(self) -> bool {
        !matches!(self, TrialsStatus::Expected | TrialsStatus::NoTarget)
    }
}

/// Status per flame type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlameStatus {
    pub powerful: TrialsStatus,
    pub eternal: TrialsStatus,
    pub abyss: TrialsStatus,
}

impl FlameStatus {
    fn all(s: TrialsStatus) -> FlameStatus {
        FlameStatus { powerful: s, eternal: s, abyss: s }
    }
}

/// Expected trials per flame (2 decimals, 0 when not priced — see `status`),
/// and the original's diagnostics `_target` / `_category`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlameOutcome {
    pub powerful: f64,
    pub eternal: f64,
    pub abyss: f64,
    /// The weighted add-option score (scaled by 10); `None` when ≤ 0.
    pub target: Option<u32>,
    /// `BOSS_WEAPON`, `BOSS_ARMOR`, `OTHER_WEAPON`, `OTHER_ARMOR`; `None`
    /// when there is no target.
    pub category: Option<&'static str>,
    pub status: FlameStatus,
}

impl FlameOutcome {
    /// No flame to price (T ≤ 0).
    pub const NONE: FlameOutcome = FlameOutcome {
        powerful: 0.0,
        eternal: 0.0,
        abyss: 0.0,
        target: None,
        category: None,
        status: FlameStatus { powerful: TrialsStatus::NoTarget, eternal: TrialsStatus::NoTarget, abyss: TrialsStatus::NoTarget },
    };
}

/// The flame expectation of one item. Never panics on any JSON input.
pub fn flame_expectation(input: &FlameInput) -> FlameOutcome {
    flame_expectation_of(input, &AddOption::from_json(input.add_option))
}

/// [`flame_expectation`] with the item's stats already read (the calculator
/// reads them while parsing); `input.add_option` is not looked at.
pub fn flame_expectation_of(input: &FlameInput, stats: &AddOption) -> FlameOutcome {
    let weights = JobWeights::for_class(input.character_class);
    let target = stats.score(&weights);
    if target <= 0 {
        return FlameOutcome::NONE;
    }
    let category = FlameCategory::classify(input.item_name, input.slot, input.character_class);
    let Ok(target) = u32::try_from(target) else {
        return FlameOutcome {
            target: None,
            category: Some(category.name()),
            status: FlameStatus::all(TrialsStatus::TooLarge),
            ..FlameOutcome::NONE
        };
    };
    let base = WeaponBase { attack: input.base_attack_power, magic: input.base_magic_power };
    let run = |flame| match expected_trials(category, flame, input.level, &weights, u64::from(target), base) {
        Ok(trials) => (round_trials(trials), TrialsStatus::Expected),
        Err(status) => (0.0, status),
    };
    let (powerful, s_p) = run(FlameType::Powerful);
    let (eternal, s_e) = run(FlameType::Eternal);
    let (abyss, s_a) = run(FlameType::Abyss);
    FlameOutcome {
        powerful,
        eternal,
        abyss,
        target: Some(target),
        category: Some(category.name()),
        status: FlameStatus { powerful: s_p, eternal: s_e, abyss: s_a },
    }
}

/// Unrounded expected trials 1/P of one flame type, or why there are none.
pub fn expected_trials(
    category: FlameCategory,
    flame: FlameType,
    level: u32,
    weights: &JobWeights,
    target: u64,
    base: WeaponBase,
) -> Result<f64, TrialsStatus> {
    if target == 0 {
        return Err(TrialsStatus::NoTarget);
    }
    let key = TrialsKey { category, flame, level, weights: *weights, target, base };
    if let Some(done) = TRIALS_MEMO.with(|m| m.borrow().get(&key).copied()) {
        return done;
    }
    let result = compute_trials(&key);
    TRIALS_MEMO.with(|m| {
        let mut memo = m.borrow_mut();
        if memo.len() >= TRIALS_MEMO_ENTRIES {
            memo.clear(); // bounded; refilling costs one DP per key
        }
        memo.insert(key, result);
    });
    result
}

/// Entries of the per-thread [`expected_trials`] memo (≈ 80 B each).
pub const TRIALS_MEMO_ENTRIES: usize = 8192;

/// Everything [`expected_trials`] depends on: it is a pure function of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TrialsKey {
    category: FlameCategory,
    flame: FlameType,
    level: u32,
    weights: JobWeights,
    target: u64,
    base: WeaponBase,
}

thread_local! {
    /// Results of the option-PMF build + DP (most of a character's compute
    /// time). The same (category, level, class weights, target, base) comes
    /// back across characters and presets; per thread, so a core never
    /// shares or locks it.
    static TRIALS_MEMO: std::cell::RefCell<std::collections::HashMap<TrialsKey, Result<f64, TrialsStatus>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn compute_trials(key: &TrialsKey) -> Result<f64, TrialsStatus> {
    let TrialsKey { category, flame, level, ref weights, target, base } = *key;
    let pmfs = pmf::option_pmfs(category, flame, level, weights, base);
    let p = dp::success_probability(&pmfs, category.boss_drop(), target).map_err(|e| match e {
        dp::DpError::EmptyPool => TrialsStatus::NotInTable,
        dp::DpError::TooLarge => TrialsStatus::TooLarge,
    })?;
    let trials = 1.0 / p;
    if p <= 0.0 || !trials.is_finite() {
        return Err(TrialsStatus::Unreachable);
    }
    debug_assert!(trials >= 1.0 - 1e-9, "a probability above 1: {p}");
    Ok(trials)
}

/// Half-up to 2 decimals (the original: `Math.round(x * 100) / 100`).
pub fn round_trials(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A weapon's base attack / magic read from an `item_base_option` JSON
/// object (strings or numbers; absent, unparsable or negative → 0), for
/// callers that hold the raw JSON.
pub fn weapon_base(base_option: &Value) -> WeaponBase {
    let read = |k: &str| base_option.get(k).map_or(0, weights::nexon_int).max(0).unsigned_abs();
    WeaponBase { attack: read("attack_power"), magic: read("magic_power") }
}

#[cfg(test)]
mod memo_tests {
    use super::*;

    /// The memo answers exactly what the DP computes, on first use and on
    /// repeats, for every flame and a spread of targets.
    #[test]
    fn memoised_trials_equal_the_dp() {
        let weights = JobWeights::for_class("아크메이지(불,독)");
        let base = WeaponBase { attack: 0, magic: 0 };
        for category in [FlameCategory::BossArmor, FlameCategory::OtherArmor] {
            for flame in [FlameType::Powerful, FlameType::Eternal, FlameType::Abyss] {
                for target in [1u64, 50, 400, 1200, 5000] {
                    let key = TrialsKey { category, flame, level: 200, weights, target, base };
                    let direct = compute_trials(&key);
                    assert_eq!(expected_trials(category, flame, 200, &weights, target, base), direct);
                    assert_eq!(expected_trials(category, flame, 200, &weights, target, base), direct);
                }
            }
        }
        assert!(TRIALS_MEMO.with(|m| m.borrow().len()) <= TRIALS_MEMO_ENTRIES);
    }
}
