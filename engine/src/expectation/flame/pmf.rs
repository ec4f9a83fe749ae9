//! Score distribution of one flame line, per option kind.
//!
//! A line of option `o` rolls a stage with the flame's stage odds; its score
//! is the option's value at that stage times the class weight (the
//! original's `FlameScoreCalculator`). Weapons score attack / magic from
//! the weapon's base attack and boss damage as 2 × stage; every other
//! value comes from the armor table of the item's level bucket.

use super::category::FlameCategory;
use super::tables::{tables, FlameOption, FlameType, LevelTable};
use super::weights::JobWeights;

/// Score → probability of one option's line; scores ascending, distinct.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionPmf {
    pub option: FlameOption,
    pub entries: Vec<(u64, f64)>,
}

impl OptionPmf {
    pub fn max_score(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.0)
    }

    /// True if every stage scores 0 (the option cannot help the class).
    pub fn is_zero(&self) -> bool {
        self.max_score() == 0
    }

    pub fn mass(&self) -> f64 {
        self.entries.iter().map(|e| e.1).sum()
    }
}

/// What a weapon's attack / magic lines are computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WeaponBase {
    /// `item_base_option.attack_power`.
    pub attack: u32,
    /// `item_base_option.magic_power`.
    pub magic: u32,
}

/// One PMF per option of the category's pool that has a value at every
/// stage this flame can roll; options missing a stage are dropped, which
/// shrinks the pool (the original's `buildOptionPmfs`).
pub fn option_pmfs(category: FlameCategory, flame: FlameType, level: u32, weights: &JobWeights, base: WeaponBase) -> Vec<OptionPmf> {
    let t = tables();
    let stage_probs = t.stage_probs(category.boss_drop(), flame);
    let table = t.level_table(level);
    let mut out = Vec::with_capacity(t.pool(category.weapon()).len());
    'options: for &option in t.pool(category.weapon()) {
        let mut entries: Vec<(u64, f64)> = Vec::with_capacity(stage_probs.len());
        for &(stage, p) in stage_probs {
            let Some(score) = line_score(option, table, level, stage, weights, category.weapon(), base) else {
                continue 'options;
            };
            match entries.iter_mut().find(|e| e.0 == score) {
                Some(e) => e.1 += p,
                None => entries.push((score, p)),
            }
        }
        if entries.is_empty() {
            continue;
        }
        entries.sort_by_key(|e| e.0);
        out.push(OptionPmf { option, entries });
    }
    out
}

/// Score of one line (scaled by 10), `None` if the table has no value.
pub fn line_score(
    option: FlameOption,
    table: &LevelTable,
    level: u32,
    stage: u8,
    w: &JobWeights,
    weapon: bool,
    base: WeaponBase,
) -> Option<u64> {
    let mul = |v: u64, w: u32| v.saturating_mul(u64::from(w));
    if weapon && !option.is_composite() {
        match option {
            FlameOption::Att => return Some(mul(weapon_att_bonus(level, stage, base.attack), w.w_att)),
            FlameOption::Mag => return Some(mul(weapon_att_bonus(level, stage, base.magic), w.w_mag)),
            FlameOption::BossDmgPct => return Some(mul(u64::from(stage) * 2, w.w_boss_dmg_pct)),
            _ => {}
        }
    }
    let v = u64::from(table.value(option, stage)?);
    Some(match option {
        FlameOption::Str => mul(v, w.w_str),
        FlameOption::Dex => mul(v, w.w_dex),
        FlameOption::Int => mul(v, w.w_int),
        FlameOption::Luk => mul(v, w.w_luk),
        FlameOption::StrDex => mul(v, w.w_str).saturating_add(mul(v, w.w_dex)),
        FlameOption::StrInt => mul(v, w.w_str).saturating_add(mul(v, w.w_int)),
        FlameOption::StrLuk => mul(v, w.w_str).saturating_add(mul(v, w.w_luk)),
        FlameOption::DexInt => mul(v, w.w_dex).saturating_add(mul(v, w.w_int)),
        FlameOption::DexLuk => mul(v, w.w_dex).saturating_add(mul(v, w.w_luk)),
        FlameOption::IntLuk => mul(v, w.w_int).saturating_add(mul(v, w.w_luk)),
        FlameOption::MaxHp => mul(v, w.w_hp),
        FlameOption::MaxMp => mul(v, w.w_mp),
        FlameOption::Att => mul(v, w.w_att),
        FlameOption::Mag => mul(v, w.w_mag),
        FlameOption::AllstatPct => mul(v, w.w_allstat_pct),
        FlameOption::DmgPct => mul(v, w.w_dmg_pct),
        FlameOption::BossDmgPct => mul(v, w.w_boss_dmg_pct),
        // Lines no class values.
        FlameOption::Def | FlameOption::LevelReduce | FlameOption::Speed | FlameOption::Jump => 0,
    })
}

/// Weapon attack / magic line: `floor((level / 40 + 1) * stage *
/// (1 + 0.1 * (stage - 3)) * base)`, integer division for `level / 40`,
/// the rest in f64, evaluated in the original's order so the floor lands
/// on the same integer. (The original multiplies the base value itself,
/// not a percentage of it — reproduced as is; see the module docs.)
pub fn weapon_att_bonus(level: u32, stage: u8, base: u32) -> u64 {
    let steps = (u64::from(level / 40) + 1) * u64::from(stage);
    let factor = steps as f64 * (1.0 + 0.1 * (f64::from(stage) - 3.0));
    let v = (factor * f64::from(base)).floor();
    // `as` saturates; stage ≥ 1 keeps the factor positive.
    if v <= 0.0 {
        0
    } else {
        v as u64
    }
}
