//! Class stat weights and the item's current flame score (the DP target).
//!
//! Every weight is scaled by 10 (`_scale` in the table) so scores stay
//! integers: a main stat point is worth 10, a sub stat point 1, 1 % all stat
//! 100, 1 attack / magic 40, 1 % (boss) damage 140 (the original's
//! `FlameScoreCalculator.JobWeights`).

use serde_json::Value;

use super::tables::tables;

/// Score per unit of each flame stat, scaled by 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobWeights {
    pub w_str: u32,
    pub w_dex: u32,
    pub w_int: u32,
    pub w_luk: u32,
    pub w_hp: u32,
    pub w_mp: u32,
    pub w_allstat_pct: u32,
    pub w_att: u32,
    pub w_mag: u32,
    pub w_dmg_pct: u32,
    pub w_boss_dmg_pct: u32,
}

impl JobWeights {
    pub const ZERO: JobWeights = JobWeights {
        w_str: 0,
        w_dex: 0,
        w_int: 0,
        w_luk: 0,
        w_hp: 0,
        w_mp: 0,
        w_allstat_pct: 0,
        w_att: 0,
        w_mag: 0,
        w_dmg_pct: 0,
        w_boss_dmg_pct: 0,
    };

    /// Weights of a Nexon `character_class`. Blank or unknown classes get
    /// STR main / DEX sub, as in the original's `JobStatMapping.resolve`.
    pub fn for_class(class: &str) -> JobWeights {
        let t = tables();
        t.class_weights(class).unwrap_or(t.fallback_weights)
    }

    /// The weight of one of the four main stats by its table name.
    pub(crate) fn stat_mut(&mut self, stat: &str) -> Option<&mut u32> {
        match stat {
            "STR" => Some(&mut self.w_str),
            "DEX" => Some(&mut self.w_dex),
            "INT" => Some(&mut self.w_int),
            "LUK" => Some(&mut self.w_luk),
            _ => None,
        }
    }
}

/// The item's flame stats as the original reads them from `item_add_option`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddOption {
    pub str: i32,
    pub dex: i32,
    pub int: i32,
    pub luk: i32,
    pub max_hp: i32,
    pub all_stat: i32,
    pub attack_power: i32,
    pub magic_power: i32,
    pub damage: i32,
    pub boss_damage: i32,
}

impl AddOption {
    /// Reads the stats from an `item_add_option` object. Missing fields,
    /// `null`, non-numbers and anything that is not an object read as 0.
    pub fn from_json(v: &Value) -> AddOption {
        let f = |k: &str| v.get(k).map_or(0, nexon_int);
        AddOption {
            str: f("str"),
            dex: f("dex"),
            int: f("int"),
            luk: f("luk"),
            max_hp: f("max_hp"),
            all_stat: f("all_stat"),
            attack_power: f("attack_power"),
            magic_power: f("magic_power"),
            damage: f("damage"),
            boss_damage: f("boss_damage"),
        }
    }

    /// The weighted score of these stats (scaled by 10). It is what the
    /// original uses as the target: the chance that a new flame scores at
    /// least as well as the one on the item. Computed in i64, so it cannot
    /// overflow (|i32| × weight ≤ 2^31 × 2^32 per term, ten terms).
    pub fn score(&self, w: &JobWeights) -> i64 {
        let t = |v: i32, w: u32| i64::from(v) * i64::from(w);
        t(self.str, w.w_str)
            + t(self.dex, w.w_dex)
            + t(self.int, w.w_int)
            + t(self.luk, w.w_luk)
            + t(self.max_hp, w.w_hp)
            + t(self.all_stat, w.w_allstat_pct)
            + t(self.attack_power, w.w_att)
            + t(self.magic_power, w.w_mag)
            + t(self.damage, w.w_dmg_pct)
            + t(self.boss_damage, w.w_boss_dmg_pct)
    }
}

/// A Nexon numeric field: numbers, or strings such as `"24"`. Strings keep
/// only digits and `-` before parsing, and anything unparsable (including
/// values outside i32) is 0 — the original's `StatParser.parseNum`.
pub fn nexon_int(v: &Value) -> i32 {
    match v {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0),
        Value::String(s) => {
            // At most 12 kept characters: anything longer cannot be an i32
            // (and cannot make us buffer an arbitrarily long string).
            let mut clean = String::with_capacity(12);
            for c in s.chars().filter(|c| c.is_ascii_digit() || *c == '-') {
                if clean.len() == 12 {
                    return 0;
                }
                clean.push(c);
            }
            clean.parse::<i32>().unwrap_or(0)
        }
        _ => 0,
    }
}
