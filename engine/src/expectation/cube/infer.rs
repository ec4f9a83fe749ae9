//! Which engine prices a line set, and for the DP engine, which target.
//!
//! The rule is the original's `DpModeInferrer`: a user who rolled
//! "STR +12% | STR +9% | STR +9%" is taken to want "STR% ≥ 30 in any form",
//! priced by the DP engine as P(sum of STR% over three lines ≥ 30). Line sets
//! that mix stat families (cooldown + stat, boss + stat, …) or whose main stat
//! is under half of the summed values are priced as the exact lines instead.

use std::fmt;

use super::stat::{self, StatType, STAT_TYPE_COUNT};

/// "Sum of `stat` over the three lines ≥ `min_total`".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DpTarget {
    pub stat: StatType,
    pub min_total: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineChoice {
    Dp(DpTarget),
    ExactLines,
}

impl fmt::Display for EngineChoice {
    /// The diagnostic form the reference uses: `DP(STR_PERCENT>=30)` or `V1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineChoice::Dp(t) => write!(f, "DP({}>={})", t.stat.name(), t.min_total),
            EngineChoice::ExactLines => f.write_str("V1"),
        }
    }
}

/// Inference result before the confidence rule (exposed for tests/diagnostics).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inference {
    pub target: Option<DpTarget>,
    /// Target total / total of every stat counted (1.0 = the only stat).
    pub confidence: f64,
    pub compound: bool,
}

/// Minimum share of the summed values the target must have.
pub const MIN_CONFIDENCE: f64 = 0.5;

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Two or more distinct stat families (other than "Other") among the lines.
pub fn is_compound(lines: &[&str]) -> bool {
    let mut seen: Vec<stat::Category> = Vec::with_capacity(4);
    for line in lines.iter().filter(|l| !is_blank(l)) {
        for t in stat::find_all_types(line) {
            let c = t.category();
            if t.has_valid_category() && !seen.contains(&c) {
                seen.push(c);
            }
        }
    }
    seen.len() >= 2
}

/// Sums each stat over the lines (an all-stat % line also counts for STR%, DEX%,
/// INT% and LUK%), then picks the largest positive sum — the first declared on
/// ties. Lines that cannot be read count for nothing.
pub fn infer(lines: &[&str]) -> Inference {
    let mut sums = [0i64; STAT_TYPE_COUNT];
    let mut present = [false; STAT_TYPE_COUNT];
    let mut categories: [Option<stat::Category>; 6] = [None; 6];
    let mut n_categories = 0usize;
    for line in lines.iter().filter(|l| !is_blank(l)) {
        // One keyword scan per line serves both the compound check and the sums.
        let types = stat::find_all_types(line);
        for t in &types {
            let c = t.category();
            if t.has_valid_category() && !categories[..n_categories].contains(&Some(c)) {
                categories[n_categories] = Some(c);
                n_categories += 1;
            }
        }
        if types.is_empty() {
            continue; // nothing to add (drifted lines count for nothing, as in the original)
        }
        let value = i64::from(stat::parse_num(line));
        for t in types {
            sums[t as usize] += value;
            present[t as usize] = true;
            if t == StatType::AllStatPercent {
                for s in [StatType::StrPercent, StatType::DexPercent, StatType::IntPercent, StatType::LukPercent] {
                    sums[s as usize] += value;
                    present[s as usize] = true;
                }
            }
        }
    }
    let compound = n_categories >= 2;
    let none = Inference { target: None, confidence: 0.0, compound };
    // All-stat % is spread over the four stats above, never a target itself.
    present[StatType::AllStatPercent as usize] = false;

    let mut best: Option<(StatType, i64)> = None;
    for t in StatType::ALL {
        if present[t as usize] && best.is_none_or(|(_, v)| sums[t as usize] > v) {
            best = Some((t, sums[t as usize]));
        }
    }
    let Some((stat, value)) = best else {
        return none;
    };
    if value <= 0 {
        return none;
    }
    let total: i64 = StatType::ALL.iter().filter(|t| present[**t as usize]).map(|t| sums[*t as usize]).sum();
    if total <= 0 {
        return none;
    }
    let Ok(min_total) = u32::try_from(value) else {
        return none;
    };
    Inference { target: Some(DpTarget { stat, min_total }), confidence: value as f64 / total as f64, compound }
}

/// The engine for a line set. `has_context` is false when the item slot, grade
/// or level is missing — the DP engine needs all three.
pub fn choose_engine(lines: &[&str], has_context: bool) -> EngineChoice {
    if !has_context {
        return EngineChoice::ExactLines;
    }
    let inf = infer(lines);
    match inf.target {
        Some(t) if !inf.compound && inf.confidence >= MIN_CONFIDENCE => EngineChoice::Dp(t),
        _ => EngineChoice::ExactLines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(lines: &[&str]) -> String {
        choose_engine(lines, true).to_string()
    }

    #[test]
    fn original_inferrer_cases() {
        // DpModeInferrerTest: all-stat spreads over the four stats.
        let i = infer(&["STR +12%", "올스탯 +9%"]);
        assert_eq!(i.target, Some(DpTarget { stat: StatType::StrPercent, min_total: 21 }));
        assert!((i.confidence - 21.0 / 48.0).abs() < 1e-12);
        // Ties keep declaration order.
        let i = infer(&["STR +12%", "DEX +12%"]);
        assert_eq!(i.target.unwrap().stat, StatType::StrPercent);
        assert_eq!(i.confidence, 0.5);
        // Mixed families.
        assert!(infer(&["STR +12%", "보스 몬스터 공격 시 데미지 +40%"]).compound);
        // Nothing readable.
        assert_eq!(infer(&["", "피격 시 10% 확률로 데미지 무시", "오토스틸 +5%"]).target, None);
    }

    #[test]
    fn compound_flag_matches_is_compound() {
        for lines in [
            &["STR +12%", "보스 몬스터 공격 시 데미지 +40%", ""][..],
            &["스킬 재사용 대기시간 -2초", "STR +12%"][..],
            &["STR +12%", "올스탯 +9%", "아이템 드롭률 +20%"][..],
            &["크리티컬 데미지 +8%", "최대 HP +9%"][..],
        ] {
            assert_eq!(infer(lines).compound, is_compound(lines), "{lines:?}");
        }
    }

    #[test]
    fn reference_engine_strings() {
        assert_eq!(engine(&["STR +12%", "STR +9%", "STR +9%"]), "DP(STR_PERCENT>=30)");
        assert_eq!(engine(&["STR +12%", "STR +9%", "올스탯 +6%"]), "DP(STR_PERCENT>=27)");
        assert_eq!(engine(&["올스탯 +9%", "올스탯 +9%", "INT +9%"]), "V1");
        assert_eq!(engine(&["보스 몬스터 데미지 +35%", "보스 몬스터 데미지 +30%", "보스 몬스터 데미지 +30%"]), "DP(DAMAGE>=95)");
        assert_eq!(engine(&["스킬 재사용 대기시간 -2초", "스킬 재사용 대기시간 -2초", "피격 시 5% 확률로 데미지의 40% 무시"]), "V1");
        assert_eq!(engine(&["크리티컬 데미지 +8%", "크리티컬 데미지 +8%", "STR +9%"]), "V1");
        assert_eq!(engine(&["크리티컬 데미지 +8%", "최대 HP +9%", "크리티컬 데미지 +8%"]), "DP(CRITICAL_DAMAGE>=16)");
        assert_eq!(engine(&["메소 획득량 +20%", "아이템 드롭률 +20%", "INT +9%"]), "V1");
        assert_eq!(engine(&["아이템 드롭률 +20%", "INT +9%", "INT +9%"]), "DP(ITEM_DROP>=20)");
        assert_eq!(choose_engine(&["STR +12%", "STR +9%", "STR +9%"], false).to_string(), "V1");
    }
}
