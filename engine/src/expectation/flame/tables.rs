//! The flame constants of `engine/data/lookup_tables.json`, parsed once.
//!
//! Keys used: `flame_armor_table` (value per level bucket, option and stage),
//! `flame_stage_probs` (stage odds per boss/other × flame type),
//! `flame_option_pools` (which options a weapon / an armor can roll),
//! `flame_job_weights` (class → stat weights) and `flame_boss_equipment`
//! (which items are boss drops). All of them were transcribed from the
//! original's `FlameStatTable`, `FlameStageProbability`, `FlameOptionType`,
//! `JobStatMapping` / `FlameScoreCalculator.JobWeights` and
//! `BossEquipmentRegistry`.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

use super::weights::JobWeights;

/// The embedded table file (shared with the other calculators).
const LOOKUP_JSON: &str = include_str!("../../../data/lookup_tables.json");

/// Stages are numbered 1..=7; arrays are indexed by `stage - 1`.
pub const STAGES: usize = 7;

/// One stat line a flame can roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlameOption {
    Str,
    Dex,
    Int,
    Luk,
    StrDex,
    StrInt,
    StrLuk,
    DexInt,
    DexLuk,
    IntLuk,
    MaxHp,
    MaxMp,
    LevelReduce,
    Def,
    Att,
    Mag,
    BossDmgPct,
    DmgPct,
    AllstatPct,
    Speed,
    Jump,
}

impl FlameOption {
    pub const ALL: [FlameOption; 21] = [
        FlameOption::Str,
        FlameOption::Dex,
        FlameOption::Int,
        FlameOption::Luk,
        FlameOption::StrDex,
        FlameOption::StrInt,
        FlameOption::StrLuk,
        FlameOption::DexInt,
        FlameOption::DexLuk,
        FlameOption::IntLuk,
        FlameOption::MaxHp,
        FlameOption::MaxMp,
        FlameOption::LevelReduce,
        FlameOption::Def,
        FlameOption::Att,
        FlameOption::Mag,
        FlameOption::BossDmgPct,
        FlameOption::DmgPct,
        FlameOption::AllstatPct,
        FlameOption::Speed,
        FlameOption::Jump,
    ];

    /// The name used in the table file (the original's enum constant).
    pub fn name(self) -> &'static str {
        match self {
            FlameOption::Str => "STR",
            FlameOption::Dex => "DEX",
            FlameOption::Int => "INT",
            FlameOption::Luk => "LUK",
            FlameOption::StrDex => "STR_DEX",
            FlameOption::StrInt => "STR_INT",
            FlameOption::StrLuk => "STR_LUK",
            FlameOption::DexInt => "DEX_INT",
            FlameOption::DexLuk => "DEX_LUK",
            FlameOption::IntLuk => "INT_LUK",
            FlameOption::MaxHp => "MAX_HP",
            FlameOption::MaxMp => "MAX_MP",
            FlameOption::LevelReduce => "LEVEL_REDUCE",
            FlameOption::Def => "DEF",
            FlameOption::Att => "ATT",
            FlameOption::Mag => "MAG",
            FlameOption::BossDmgPct => "BOSS_DMG_PCT",
            FlameOption::DmgPct => "DMG_PCT",
            FlameOption::AllstatPct => "ALLSTAT_PCT",
            FlameOption::Speed => "SPEED",
            FlameOption::Jump => "JUMP",
        }
    }

    pub fn from_name(name: &str) -> Option<FlameOption> {
        FlameOption::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// Two-stat lines (`STR_DEX`, …) score both stats with the same value.
    pub fn is_composite(self) -> bool {
        matches!(
            self,
            FlameOption::StrDex
                | FlameOption::StrInt
                | FlameOption::StrLuk
                | FlameOption::DexInt
                | FlameOption::DexLuk
                | FlameOption::IntLuk
        )
    }
}

/// The three flames the V4 response prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlameType {
    /// 강력한 환생의 불꽃
    Powerful,
    /// 영원한 환생의 불꽃
    Eternal,
    /// 심연의 환생의 불꽃
    Abyss,
}

impl FlameType {
    pub const ALL: [FlameType; 3] = [FlameType::Powerful, FlameType::Eternal, FlameType::Abyss];

    pub fn name(self) -> &'static str {
        match self {
            FlameType::Powerful => "POWERFUL",
            FlameType::Eternal => "ETERNAL",
            FlameType::Abyss => "ABYSS",
        }
    }

    fn index(self) -> usize {
        match self {
            FlameType::Powerful => 0,
            FlameType::Eternal => 1,
            FlameType::Abyss => 2,
        }
    }
}

/// (stage, probability) pairs of one flame, ascending stage.
pub type StageOdds = Vec<(u8, f64)>;
/// `[boss as usize][flame type index]`.
type StageOddsTable = [[StageOdds; 3]; 2];

/// Values of one option at stages 1..=7; `None` = the stage does not exist
/// for this option at this level (the original drops the whole option then).
pub type StageValues = [Option<u32>; STAGES];

/// All option values of one level bucket.
#[derive(Debug, Clone)]
pub struct LevelTable {
    pub bucket: u32,
    values: [Option<StageValues>; FlameOption::ALL.len()],
}

impl LevelTable {
    /// Value of `option` at `stage` (1..=7), `None` if the table has none.
    pub fn value(&self, option: FlameOption, stage: u8) -> Option<u32> {
        let idx = usize::from(stage).checked_sub(1)?;
        if idx >= STAGES {
            return None;
        }
        self.values[option as usize].as_ref()?[idx]
    }
}

/// Which items count as boss drops (they always roll 4 lines).
#[derive(Debug, Clone)]
pub struct BossLists {
    pub weapon_prefixes: Vec<String>,
    pub armor_prefixes: Vec<String>,
    pub accessory_names: Vec<String>,
}

/// Every flame constant, indexed for the per-item computation.
#[derive(Debug, Clone)]
pub struct FlameTables {
    /// Ascending by bucket.
    levels: Vec<LevelTable>,
    /// `[boss as usize][flame type]` → (stage, probability), ascending stage.
    stage_probs: StageOddsTable,
    pub weapon_pool: Vec<FlameOption>,
    pub armor_pool: Vec<FlameOption>,
    classes: HashMap<String, JobWeights>,
    /// Weights for a blank or unknown class (the original: STR main, DEX sub).
    pub fallback_weights: JobWeights,
    pub boss: BossLists,
}

/// The embedded table is malformed (a build-time fault; tests load it).
#[derive(Debug, thiserror::Error)]
pub enum FlameTableError {
    #[error("lookup_tables.json is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("lookup_tables.json: {0}")]
    Shape(String),
}

fn shape(msg: impl Into<String>) -> FlameTableError {
    FlameTableError::Shape(msg.into())
}

/// A top-level table of the lookup document, or an error naming it.
fn section<'a>(doc: &'a Value, key: &str) -> Result<&'a Value, FlameTableError> {
    doc.get(key).ok_or_else(|| shape(format!("no {key}")))
}

/// The parsed embedded tables; parsed on first use, then shared read-only.
pub fn tables() -> &'static FlameTables {
    static TABLES: OnceLock<FlameTables> = OnceLock::new();
    TABLES.get_or_init(|| {
        // The file is compiled in and checked by the crate's tests, so a
        // failure here is a build defect, not bad user input.
        FlameTables::parse(LOOKUP_JSON).expect("embedded flame tables are valid")
    })
}

#[derive(Deserialize)]
struct RawBoss {
    weapon_prefixes: Vec<String>,
    armor_prefixes: Vec<String>,
    accessory_names: Vec<String>,
}

#[derive(Deserialize)]
struct RawPools {
    #[serde(rename = "WEAPON")]
    weapon: Vec<String>,
    #[serde(rename = "ARMOR")]
    armor: Vec<String>,
}

impl FlameTables {
    /// Parses and validates the flame part of a lookup table document.
    pub fn parse(json: &str) -> Result<FlameTables, FlameTableError> {
        let doc: Value = serde_json::from_str(json)?;
        let levels = parse_levels(section(&doc, "flame_armor_table")?)?;
        let stage_probs = parse_stage_probs(section(&doc, "flame_stage_probs")?)?;
        let pools: RawPools = serde_json::from_value(section(&doc, "flame_option_pools")?.clone())?;
        let weapon_pool = parse_pool(&pools.weapon)?;
        let armor_pool = parse_pool(&pools.armor)?;
        let (classes, fallback_weights) = parse_job_weights(section(&doc, "flame_job_weights")?)?;
        let boss: RawBoss = serde_json::from_value(section(&doc, "flame_boss_equipment")?.clone())?;
        Ok(FlameTables {
            levels,
            stage_probs,
            weapon_pool,
            armor_pool,
            classes,
            fallback_weights,
            boss: BossLists {
                weapon_prefixes: boss.weapon_prefixes,
                armor_prefixes: boss.armor_prefixes,
                accessory_names: boss.accessory_names,
            },
        })
    }

    /// The table for an item level: the largest bucket not above `level`,
    /// the smallest bucket (100) below it — the original's `toBucket`.
    pub fn level_table(&self, level: u32) -> &LevelTable {
        debug_assert!(!self.levels.is_empty());
        self.levels.iter().rev().find(|t| t.bucket <= level).unwrap_or(&self.levels[0])
    }

    /// Stage odds, ascending stage.
    pub fn stage_probs(&self, boss: bool, flame: FlameType) -> &[(u8, f64)] {
        &self.stage_probs[usize::from(boss)][flame.index()]
    }

    /// Option pool of a weapon or of everything else.
    pub fn pool(&self, weapon: bool) -> &[FlameOption] {
        if weapon {
            &self.weapon_pool
        } else {
            &self.armor_pool
        }
    }

    /// Weights of a class listed in the table (`None` = not listed).
    pub fn class_weights(&self, class: &str) -> Option<JobWeights> {
        self.classes.get(class).copied()
    }
}

fn parse_levels(v: &Value) -> Result<Vec<LevelTable>, FlameTableError> {
    let obj = v.as_object().ok_or_else(|| shape("flame_armor_table is not an object"))?;
    let mut levels = Vec::with_capacity(obj.len());
    for (bucket, options) in obj {
        let bucket: u32 = bucket.parse().map_err(|_| shape(format!("bad level bucket {bucket}")))?;
        let options = options.as_object().ok_or_else(|| shape(format!("level {bucket} is not an object")))?;
        let mut values: [Option<StageValues>; FlameOption::ALL.len()] = [None; FlameOption::ALL.len()];
        for (name, stages) in options {
            let option = FlameOption::from_name(name).ok_or_else(|| shape(format!("unknown flame option {name}")))?;
            let arr = stages.as_array().ok_or_else(|| shape(format!("{bucket}/{name} is not an array")))?;
            if arr.len() != STAGES {
                return Err(shape(format!("{bucket}/{name} has {} stages, want {STAGES}", arr.len())));
            }
            let mut sv: StageValues = [None; STAGES];
            for (slot, x) in sv.iter_mut().zip(arr) {
                *slot = match x {
                    Value::Null => None,
                    x => Some(
                        x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| shape(format!("{bucket}/{name}: bad value {x}")))?,
                    ),
                };
            }
            values[option as usize] = Some(sv);
        }
        levels.push(LevelTable { bucket, values });
    }
    if levels.is_empty() {
        return Err(shape("flame_armor_table is empty"));
    }
    levels.sort_by_key(|t| t.bucket);
    Ok(levels)
}

fn parse_stage_probs(v: &Value) -> Result<StageOddsTable, FlameTableError> {
    let mut out: StageOddsTable = Default::default();
    for boss in [false, true] {
        for flame in FlameType::ALL {
            let key = format!("{}_{}", if boss { "BOSS" } else { "OTHER" }, flame.name());
            let obj = v.get(&key).and_then(Value::as_object).ok_or_else(|| shape(format!("flame_stage_probs.{key} missing")))?;
            // BTreeMap: ascending stage, the order the original iterates in.
            let mut by_stage = BTreeMap::new();
            for (stage, p) in obj {
                let stage: u8 = stage.parse().map_err(|_| shape(format!("{key}: bad stage {stage}")))?;
                if !(1..=STAGES as u8).contains(&stage) {
                    return Err(shape(format!("{key}: stage {stage} out of 1..=7")));
                }
                let p = p.as_f64().filter(|p| (0.0..=1.0).contains(p));
                by_stage.insert(stage, p.ok_or_else(|| shape(format!("{key}: bad probability")))?);
            }
            let total: f64 = by_stage.values().sum();
            if by_stage.is_empty() || (total - 1.0).abs() > 1e-9 {
                return Err(shape(format!("{key}: stage odds sum to {total}, not 1")));
            }
            out[usize::from(boss)][flame.index()] = by_stage.into_iter().collect();
        }
    }
    Ok(out)
}

fn parse_pool(names: &[String]) -> Result<Vec<FlameOption>, FlameTableError> {
    names.iter().map(|n| FlameOption::from_name(n).ok_or_else(|| shape(format!("unknown pool option {n}")))).collect()
}

/// `classes` maps a group key to class names. Group keys are `MAIN/SUB`,
/// `MAIN/SUB1+SUB2` (main stat weight `main`, sub stat weight `sub` of
/// `default_of(main,sub)`), or the name of an explicit weight set
/// (`xenon`, `demon_avenger`).
fn parse_job_weights(v: &Value) -> Result<(HashMap<String, JobWeights>, JobWeights), FlameTableError> {
    let scale = v.get("_scale").and_then(Value::as_u64).ok_or_else(|| shape("flame_job_weights._scale"))?;
    let default = v.get("default_of(main,sub)").ok_or_else(|| shape("flame_job_weights default_of"))?;
    let num = |o: &Value, k: &str| -> Result<u32, FlameTableError> {
        o.get(k).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| shape(format!("flame_job_weights: missing {k}")))
    };
    let main = num(default, "main")?;
    let sub = num(default, "sub")?;
    if u64::from(main) != scale {
        return Err(shape("main stat weight differs from _scale"));
    }
    let common = JobWeights {
        w_hp: num(default, "wHp")?,
        w_mp: num(default, "wMp")?,
        w_allstat_pct: num(default, "wAllstatPct")?,
        w_att: num(default, "wAtt")?,
        w_mag: num(default, "wMag")?,
        w_dmg_pct: num(default, "wDmgPct")?,
        w_boss_dmg_pct: num(default, "wBossDmgPct")?,
        ..JobWeights::ZERO
    };
    let of_stats = |spec: &str| -> Result<JobWeights, FlameTableError> {
        let (m, subs) = spec.split_once('/').ok_or_else(|| shape(format!("bad class group {spec}")))?;
        // Main first, then subs: the original's order (matters only if a
        // group named the same stat twice).
        let mut w = common;
        *w.stat_mut(m).ok_or_else(|| shape(format!("bad stat {m} in {spec}")))? = main;
        for s in subs.split('+') {
            *w.stat_mut(s).ok_or_else(|| shape(format!("bad stat {s} in {spec}")))? = sub;
        }
        Ok(w)
    };
    let explicit = |o: &Value| -> Result<JobWeights, FlameTableError> {
        Ok(JobWeights {
            w_str: num(o, "wStr")?,
            w_dex: num(o, "wDex")?,
            w_int: num(o, "wInt")?,
            w_luk: num(o, "wLuk")?,
            w_hp: num(o, "wHp")?,
            w_mp: num(o, "wMp")?,
            w_allstat_pct: num(o, "wAllstatPct")?,
            w_att: num(o, "wAtt")?,
            w_mag: num(o, "wMag")?,
            w_dmg_pct: num(o, "wDmgPct")?,
            w_boss_dmg_pct: num(o, "wBossDmgPct")?,
        })
    };
    let groups = v.get("classes").and_then(Value::as_object).ok_or_else(|| shape("flame_job_weights.classes"))?;
    let mut classes = HashMap::new();
    for (group, names) in groups {
        if group.starts_with('_') {
            continue; // comments such as `_fallback`
        }
        let weights = if group.contains('/') {
            of_stats(group)?
        } else {
            explicit(v.get(group).ok_or_else(|| shape(format!("no weight set {group}")))?)?
        };
        let names = names.as_array().ok_or_else(|| shape(format!("classes.{group} is not a list")))?;
        for n in names {
            let n = n.as_str().ok_or_else(|| shape(format!("classes.{group}: not a string")))?;
            if classes.insert(n.to_owned(), weights).is_some() {
                return Err(shape(format!("class {n} listed twice")));
            }
        }
    }
    Ok((classes, of_stats("STR/DEX")?))
}
