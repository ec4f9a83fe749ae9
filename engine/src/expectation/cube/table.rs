//! The cube option probability table (`cube_probability.csv`), parsed once into
//! dense, indexed form.
//!
//! Rows are (option, rate, line slot 1..3, grade, item level, item slot). A
//! *group* is every row of one (item slot, level, grade, line slot): the odds
//! of each option on that line. Group masses are not 1 in the shipped table
//! (0.06 … 1.14); the raw mass is kept so callers can normalise (the DP
//! engine does) and so bad groups are visible ([`ProbabilityTable::mass_report`]).

use std::collections::HashMap;
use std::fmt;

use super::pmf::kahan_sum;
use super::stat::{self, StatType, STAT_TYPE_COUNT};

/// Index of an interned option text.
pub type OptionId = u16;

/// Potential grades in table order.
pub const GRADES_KOREAN: [&str; 4] = ["레어", "에픽", "유니크", "레전드리"];
pub const GRADES_ENGLISH: [&str; 4] = ["RARE", "EPIC", "UNIQUE", "LEGENDARY"];

/// Grade index 0..4 from the Korean (table / Nexon JSON) or English name.
pub fn grade_index(grade: &str) -> Option<usize> {
    let g = grade.trim();
    GRADES_KOREAN.iter().position(|k| *k == g).or_else(|| GRADES_ENGLISH.iter().position(|e| e.eq_ignore_ascii_case(g)))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cube table line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for TableError {}

/// What the engines need to know about one option text, computed once.
#[derive(Clone, Debug)]
pub struct OptionInfo {
    pub text: Box<str>,
    /// Whether the exact-lines engine prices this line (has a stat keyword of its unit).
    pub priced: bool,
    /// The text looks like a main stat but matches no keyword (stale keywords).
    pub drift: bool,
    /// How much this option adds toward each possible DP target, by `StatType as usize`.
    pub value_toward: [i32; STAT_TYPE_COUNT],
}

impl OptionInfo {
    fn new(text: &str) -> OptionInfo {
        let (drift, contribs) = match stat::contributions(text) {
            Ok(c) => (false, c),
            Err(_) => (true, Vec::new()),
        };
        let mut value_toward = [0i32; STAT_TYPE_COUNT];
        for t in StatType::ALL {
            value_toward[t as usize] = stat::contribution_for(&contribs, t);
        }
        OptionInfo { text: text.into(), priced: stat::is_priced_line(text), drift, value_toward }
    }
}

/// The rows of one (item slot, level, grade, line slot), in file order.
#[derive(Clone, Debug, Default)]
pub struct Group {
    pub entries: Vec<(OptionId, f64)>,
    /// Sum of the raw rates (compensated sum).
    pub raw_mass: f64,
}

impl Group {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Raw rate of the first row with this option (the original's `findFirst`).
    pub fn raw_rate(&self, option: OptionId) -> Option<f64> {
        self.entries.iter().find(|(id, _)| *id == option).map(|&(_, r)| r)
    }
}

/// A group whose mass is not 1, for diagnostics.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupMass {
    pub item_slot: String,
    pub level: u32,
    pub grade: &'static str,
    pub line_slot: u8,
    pub raw_mass: f64,
}

/// Parsed, indexed table.
#[derive(Debug)]
pub struct ProbabilityTable {
    options: Vec<OptionInfo>,
    option_ids: HashMap<Box<str>, OptionId>,
    item_slots: Vec<Box<str>>,
    item_slot_ids: HashMap<Box<str>, u8>,
    /// Sorted, distinct.
    levels: Vec<u32>,
    /// Dense: ((item_slot × levels + level) × 4 + grade) × 3 + line_slot-1.
    groups: Vec<Group>,
}

/// The three line groups of one (item slot, level, grade).
#[derive(Clone, Copy, Debug)]
pub struct LineGroups<'t> {
    pub slots: [&'t Group; 3],
}

impl LineGroups<'_> {
    pub fn all_empty(&self) -> bool {
        self.slots.iter().all(|g| g.is_empty())
    }
}

/// Why a (item slot, level, grade) has no groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupMiss {
    UnknownGrade,
    UnknownItemSlot,
    /// The level is not one of the table's levels (no interpolation, no floor).
    UnknownLevel,
    /// The key exists piecewise but this combination has no rows at all.
    NoRows,
}

const EXPECTED_HEADER: [&str; 6] = ["option", "rate", "slot", "potential_option_grade", "base_equipment_level", "item_equipment_slot"];

impl ProbabilityTable {
    /// Parses the CSV (header + rows of exactly six comma-separated fields).
    pub fn parse(csv: &str) -> Result<ProbabilityTable, TableError> {
        struct Row<'a> {
            option: &'a str,
            rate: f64,
            line_slot: u8,
            grade: usize,
            level: u32,
            item_slot: &'a str,
        }
        let err = |line: usize, message: String| TableError { line, message };
        let mut lines = csv.lines().enumerate();
        let (_, header) = lines.next().ok_or_else(|| err(1, "empty file".into()))?;
        let header: Vec<&str> = header.trim_start_matches('\u{feff}').trim_end().split(',').collect();
        if header != EXPECTED_HEADER {
            return Err(err(1, format!("unexpected header {header:?}")));
        }
        let mut rows = Vec::new();
        for (i, line) in lines {
            let line_no = i + 1;
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 6 {
                return Err(err(line_no, format!("expected 6 fields, got {}", f.len())));
            }
            let rate: f64 = f[1].trim().parse().map_err(|_| err(line_no, format!("bad rate {:?}", f[1])))?;
            if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
                return Err(err(line_no, format!("rate {rate} outside [0, 1]")));
            }
            let line_slot: u8 = f[2].trim().parse().map_err(|_| err(line_no, format!("bad slot {:?}", f[2])))?;
            if !(1..=3).contains(&line_slot) {
                return Err(err(line_no, format!("line slot {line_slot} outside 1..=3")));
            }
            let grade = grade_index(f[3]).ok_or_else(|| err(line_no, format!("bad grade {:?}", f[3])))?;
            let level: u32 = f[4].trim().parse().map_err(|_| err(line_no, format!("bad level {:?}", f[4])))?;
            let item_slot = f[5].trim();
            if item_slot.is_empty() || f[0].is_empty() {
                return Err(err(line_no, "empty option or item slot".into()));
            }
            rows.push(Row { option: f[0], rate, line_slot, grade, level, item_slot });
        }
        if rows.is_empty() {
            return Err(err(2, "no rows".into()));
        }

        let mut levels: Vec<u32> = rows.iter().map(|r| r.level).collect();
        levels.sort_unstable();
        levels.dedup();

        let mut item_slots: Vec<Box<str>> = Vec::new();
        let mut item_slot_ids: HashMap<Box<str>, u8> = HashMap::new();
        let mut options: Vec<OptionInfo> = Vec::new();
        let mut option_ids: HashMap<Box<str>, OptionId> = HashMap::new();
        for (n, r) in rows.iter().enumerate() {
            if !item_slot_ids.contains_key(r.item_slot) {
                let id = u8::try_from(item_slots.len()).map_err(|_| err(n + 2, "more than 255 item slots".into()))?;
                item_slots.push(r.item_slot.into());
                item_slot_ids.insert(r.item_slot.into(), id);
            }
            if !option_ids.contains_key(r.option) {
                let id = OptionId::try_from(options.len()).map_err(|_| err(n + 2, "more than 65535 distinct options".into()))?;
                options.push(OptionInfo::new(r.option));
                option_ids.insert(r.option.into(), id);
            }
        }

        let mut groups = vec![Group::default(); item_slots.len() * levels.len() * 4 * 3];
        for r in &rows {
            let s = item_slot_ids[r.item_slot] as usize;
            let l = levels.binary_search(&r.level).expect("level collected above");
            let idx = Self::group_index(levels.len(), s, l, r.grade, r.line_slot);
            groups[idx].entries.push((option_ids[r.option], r.rate));
        }
        for g in &mut groups {
            g.raw_mass = kahan_sum(g.entries.iter().map(|&(_, r)| r));
        }
        Ok(ProbabilityTable { options, option_ids, item_slots, item_slot_ids, levels, groups })
    }

    fn group_index(n_levels: usize, item_slot: usize, level: usize, grade: usize, line_slot: u8) -> usize {
        debug_assert!((1..=3).contains(&line_slot) && grade < 4 && level < n_levels);
        ((item_slot * n_levels + level) * 4 + grade) * 3 + (line_slot as usize - 1)
    }

    /// Table levels, ascending.
    pub fn levels(&self) -> &[u32] {
        &self.levels
    }

    pub fn item_slots(&self) -> impl Iterator<Item = &str> {
        self.item_slots.iter().map(|s| &**s)
    }

    pub fn option(&self, id: OptionId) -> &OptionInfo {
        &self.options[id as usize]
    }

    pub fn option_id(&self, text: &str) -> Option<OptionId> {
        self.option_ids.get(text).copied()
    }

    pub fn option_count(&self) -> usize {
        self.options.len()
    }

    /// The three line groups of an item, by the Nexon JSON's `item_equipment_slot`
    /// (the original keys the table by it unchanged: "반지1", "펜던트2", "기계 심장").
    pub fn line_groups(&self, item_slot: &str, level: u32, grade: &str) -> Result<LineGroups<'_>, LookupMiss> {
        let grade = grade_index(grade).ok_or(LookupMiss::UnknownGrade)?;
        let s = *self.item_slot_ids.get(item_slot.trim()).ok_or(LookupMiss::UnknownItemSlot)? as usize;
        let l = self.levels.binary_search(&level).map_err(|_| LookupMiss::UnknownLevel)?;
        let n = self.levels.len();
        let groups = LineGroups { slots: [1u8, 2, 3].map(|line_slot| &self.groups[Self::group_index(n, s, l, grade, line_slot)]) };
        if groups.all_empty() {
            return Err(LookupMiss::NoRows);
        }
        Ok(groups)
    }

    /// Raw (un-normalised) mass of one group; `None` when the key is unknown.
    pub fn raw_mass(&self, item_slot: &str, level: u32, grade: &str, line_slot: u8) -> Option<f64> {
        if !(1..=3).contains(&line_slot) {
            return None;
        }
        let g = self.line_groups(item_slot, level, grade).ok()?;
        Some(g.slots[line_slot as usize - 1].raw_mass)
    }

    /// Every non-empty group whose raw mass differs from 1 by more than `tolerance`.
    pub fn mass_report(&self, tolerance: f64) -> Vec<GroupMass> {
        let n = self.levels.len();
        let mut out = Vec::new();
        for (s, slot_name) in self.item_slots.iter().enumerate() {
            for (l, &level) in self.levels.iter().enumerate() {
                for (grade, &grade_name) in GRADES_KOREAN.iter().enumerate() {
                    for line_slot in 1..=3u8 {
                        let g = &self.groups[Self::group_index(n, s, l, grade, line_slot)];
                        if !g.is_empty() && (g.raw_mass - 1.0).abs() > tolerance {
                            out.push(GroupMass {
                                item_slot: slot_name.to_string(),
                                level,
                                grade: grade_name,
                                line_slot,
                                raw_mass: g.raw_mass,
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "option,rate,slot,potential_option_grade,base_equipment_level,item_equipment_slot\n\
STR +12%,0.5,1,레전드리,200,모자\n\
DEX +12%,0.25,1,레전드리,200,모자\n\
최대 MP +12%,0.25,1,레전드리,200,모자\n\
STR +9%,0.3,2,레전드리,200,모자\n";

    #[test]
    fn parses_and_indexes() {
        let t = ProbabilityTable::parse(SMALL).unwrap();
        assert_eq!(t.levels(), &[200]);
        assert_eq!(t.option_count(), 4);
        let g = t.line_groups("모자", 200, "레전드리").unwrap();
        assert_eq!(g.slots[0].entries.len(), 3);
        assert!((g.slots[0].raw_mass - 1.0).abs() < 1e-15);
        assert!((g.slots[1].raw_mass - 0.3).abs() < 1e-15);
        assert!(g.slots[2].is_empty());
        let str12 = t.option_id("STR +12%").unwrap();
        assert_eq!(g.slots[0].raw_rate(str12), Some(0.5));
        assert_eq!(t.option(str12).value_toward[StatType::StrPercent as usize], 12);
        assert!(!t.option(t.option_id("최대 MP +12%").unwrap()).priced);
        assert_eq!(t.line_groups("모자", 200, "LEGENDARY").map(|_| ()), Ok(()));
    }

    #[test]
    fn misses_are_typed() {
        let t = ProbabilityTable::parse(SMALL).unwrap();
        assert_eq!(t.line_groups("모자", 210, "레전드리").unwrap_err(), LookupMiss::UnknownLevel);
        assert_eq!(t.line_groups("신발", 200, "레전드리").unwrap_err(), LookupMiss::UnknownItemSlot);
        assert_eq!(t.line_groups("모자", 200, "미스틱").unwrap_err(), LookupMiss::UnknownGrade);
        assert_eq!(t.line_groups("모자", 200, "에픽").unwrap_err(), LookupMiss::NoRows);
    }

    #[test]
    fn bad_rows_are_errors_not_panics() {
        let header = "option,rate,slot,potential_option_grade,base_equipment_level,item_equipment_slot\n";
        for bad in [
            "STR +12%,x,1,레전드리,200,모자",
            "STR +12%,0.5,4,레전드리,200,모자",
            "STR +12%,0.5,1,미스틱,200,모자",
            "STR +12%,0.5,1,레전드리,abc,모자",
            "STR +12%,1.5,1,레전드리,200,모자",
            "STR +12%,0.5,1,레전드리,200",
        ] {
            let e = ProbabilityTable::parse(&format!("{header}{bad}\n")).unwrap_err();
            assert_eq!(e.line, 2, "{bad}: {e}");
        }
        assert!(ProbabilityTable::parse("").is_err());
        assert!(ProbabilityTable::parse("a,b\n").is_err());
        assert!(ProbabilityTable::parse(header).is_err());
    }
}
