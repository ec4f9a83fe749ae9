//! The V4 response for one equipment document: per preset, per item, the
//! cube / starforce / flame expectations, their cost breakdown and totals.
//!
//! Rules (the original's EquipmentExpectationServiceV4 / PresetCalculationHelper):
//! * Presets 1..3 come from `item_equipment_preset_N`, items in document
//!   order; a preset without items is left out; `maxPresetNo` is the first
//!   preset with the highest total, and the response totals are that preset's.
//! * An item is "priced" when it has a potential grade. Otherwise it is
//!   listed with zero cost, empty path, null grades and empty
//!   cube/starforce parts (flame is still computed).
//! * Priced item: black cube on the main lines; additional cube when it has an
//!   additional grade; starforce 0★ → its current stars (capped at 15★ for
//!   noljang items) with the default options. Item cost = black + additional
//!   + starforce; `enhancePath` = `name > 블랙큐브(윗잠) [> 에디셔널큐브(아랫잠)]
//!   [> 스타포스(0→N성)]`.
//! * Potential lines never change the starforce or flame parts. A line that
//!   is JSON `null` is the line "null", as the original's parser reads it
//!   (`equipment::NULL_LINE`); it names no stat, so the cube engines treat it
//!   as an unmatched line: factor 1 in the exact-lines engine, nothing added
//!   when the DP target is inferred. A missing or blank line is read the same
//!   way (the original dropped it and then priced the whole item 0). With no
//!   line at all (all three null/blank/"null") the black cube is unavailable
//!   (the original priced such an item 0, starforce included).
//! * `starforceExpectation` shows the regular cost with and without 15–17★
//!   destroy prevention rounded to 100 meso and destroy counts (2 decimals),
//!   or, for noljang items, the noljang cost (no destruction).
//!   Note: as in the original, the breakdown's `starforceCost` of a noljang
//!   item is the regular-starforce expectation, not the noljang one.
//!
//! Where we differ on purpose (../shared/ORIGINAL_DEFECTS.md): a cube the
//! tables cannot price (no additional-potential odds, level not in the table,
//! impossible line set) is reported with `available: false` and a reason and
//! adds 0 to the totals, instead of silently costing 0; `targetGrade` is the
//! English name of the item's own grade (the original always wrote LEGENDARY;
//! identical for legendary items); the key is `isNoljang`, not `noljang`.
//! Totals therefore mean "what the tables can price".

use std::sync::OnceLock;

use serde_json::Value;

use super::cost_text::format_cost;
use super::cube::{grade_english, CubeKind, CubeOutcome, CubeQuery, CubeTables};
use super::equipment::{self, RawItem};
use super::error::CalcError;
use super::flame::{flame_expectation_of, AddOption, FlameInput};
use super::response::*;
use super::starforce::{parse_tables, NoljangTable, StarforceOptions, StarforceTable};

const LOOKUP_TABLES_JSON: &str = include_str!("../../data/lookup_tables.json");

/// Builds V4 responses. Immutable after construction, so `Send + Sync` and
/// shared by every core without locks.
pub struct Calculator {
    starforce: StarforceTable,
    noljang: NoljangTable,
    cubes: &'static CubeTables,
}

/// The potential part used for cube odds: secondary weapons that are force
/// shields or soul rings use the force-shield table (SecondaryWeaponCategory).
pub fn potential_part<'s>(slot: &'s str, part: Option<&'s str>) -> &'s str {
    if slot != "보조무기" {
        return slot;
    }
    match part.map(str::trim) {
        Some(p) if p.contains("포스실드") || p.contains("소울링") => "포스실드",
        _ => "보조무기",
    }
}

impl Calculator {
    /// The calculator over the embedded tables, built on first use.
    pub fn embedded() -> &'static Calculator {
        static CALCULATOR: OnceLock<Calculator> = OnceLock::new();
        CALCULATOR.get_or_init(|| {
            // The tables are compiled in and covered by tests; failing here
            // means a broken build, not bad input.
            let (starforce, noljang) = parse_tables(LOOKUP_TABLES_JSON).expect("embedded lookup_tables.json is valid");
            Calculator { starforce, noljang, cubes: CubeTables::embedded() }
        })
    }

    pub fn starforce_table(&self) -> &StarforceTable {
        &self.starforce
    }

    pub fn noljang_table(&self) -> &NoljangTable {
        &self.noljang
    }

    /// Computes the whole response. `equipment_json` may be plain or gzip.
    pub fn compute(&self, user_ign: &str, equipment_json: &[u8], calculated_at: String) -> Result<ExpectationResponse, CalcError> {
        let json = equipment::plain_json(equipment_json)?;
        let doc = equipment::parse(&json)?;
        let class = doc.character_class.as_deref().unwrap_or("");

        // The same item is usually worn in several presets: compute it once.
        // Bounded by the number of items in the document (≤ 3 × MAX_ITEMS_PER_LIST).
        let mut memo = ItemMemo::new();
        let presets: Vec<PresetExpectation> =
            (1..=3u8).map(|n| self.preset(n, doc.preset(n), class, &mut memo)).filter(|p| !p.items.is_empty()).collect();

        // First preset with the highest total (ties keep the lower number).
        let max = presets.iter().fold(None::<&PresetExpectation>, |best, p| match best {
            Some(b) if b.total_expected_cost >= p.total_expected_cost => Some(b),
            _ => Some(p),
        });
        let (total, breakdown, max_preset_no) = match max {
            Some(p) => (p.total_expected_cost, p.cost_breakdown.clone(), p.preset_no),
            None => (0.0, CostBreakdown::default(), 0),
        };

        Ok(ExpectationResponse {
            user_ign: user_ign.to_string(),
            calculated_at,
            from_cache: false,
            total_expected_cost: total,
            total_cost_text: format_cost(total),
            total_cost_breakdown: breakdown,
            max_preset_no,
            presets,
        })
    }

    fn preset<'d>(&self, preset_no: u8, raw_items: &'d [RawItem<'_>], class: &str, memo: &mut ItemMemo<'d>) -> PresetExpectation {
        let items: Vec<ItemExpectation> = raw_items
            .iter()
            .map(|item| {
                let key = memo_key(item);
                if let Some(done) = memo.get(&key) {
                    return done.clone();
                }
                let computed = self.item(item, class);
                memo.insert(key, computed.clone());
                computed
            })
            .collect();
        let mut breakdown = CostBreakdown::default();
        let mut total = 0.0;
        for item in &items {
            total += item.expected_cost;
            add_breakdown(&mut breakdown, &item.cost_breakdown);
        }
        PresetExpectation { preset_no, total_expected_cost: total, total_cost_text: format_cost(total), cost_breakdown: breakdown, items }
    }

    fn item(&self, raw: &RawItem, class: &str) -> ItemExpectation {
        static NO_ADD_OPTION: Value = Value::Null;
        let level = raw.level();
        let slot: &str = &raw.item_equipment_slot;
        let input = FlameInput {
            item_name: &raw.item_name,
            slot,
            level,
            character_class: class,
            add_option: &NO_ADD_OPTION, // read while parsing: `stats`
            base_attack_power: raw.base_attack_power(),
            base_magic_power: raw.base_magic_power(),
        };
        let flame = flame_expectation_of(&input, &raw.item_add_option.unwrap_or_default());
        let flame = FlameExpectation {
            powerful_flame_trials: finite_or_zero(flame.powerful),
            eternal_flame_trials: finite_or_zero(flame.eternal),
            abyss_flame_trials: finite_or_zero(flame.abyss),
        };

        let Some(grade) = raw.potential_grade() else {
            return self.unpriced_item(raw, level, flame);
        };

        let part = potential_part(slot, raw.item_equipment_part.as_deref());
        let noljang = raw.is_noljang();
        let stars = raw.starforce();
        let target_star = if noljang { stars.min(NoljangTable::MAX_STAR) } else { stars };

        let lines = raw.potential_lines();
        let black = if lines.iter().all(|l| equipment::is_absent_line(l)) {
            no_lines_cube(grade, &lines)
        } else {
            self.cube(CubeKind::Black, part, level, grade, &lines)
        };
        let additional = raw.additional_grade().map(|additional_grade| {
            let additional_lines = raw.additional_lines();
            self.cube(CubeKind::Additional, part, level, additional_grade, &additional_lines)
        });

        let (starforce_cost, starforce_expectation) = self.starforce_parts(target_star, level, noljang);
        let cost_breakdown = CostBreakdown {
            black_cube_cost: black.expected_cost,
            red_cube_cost: 0.0,
            additional_cube_cost: additional.as_ref().map_or(0.0, |c| c.expected_cost),
            starforce_cost,
        };
        let expected_cost = cost_breakdown.black_cube_cost
            + cost_breakdown.red_cube_cost
            + cost_breakdown.additional_cube_cost
            + cost_breakdown.starforce_cost;

        let mut enhance_path = format!("{} > 블랙큐브(윗잠)", raw.item_name);
        if additional.is_some() {
            enhance_path.push_str(" > 에디셔널큐브(아랫잠)");
        }
        if target_star > 0 {
            enhance_path.push_str(&format!(" > 스타포스(0→{target_star}성)"));
        }

        ItemExpectation {
            item_name: raw.item_name.to_string(),
            item_icon: raw.item_icon.as_deref().unwrap_or("").to_string(),
            item_part: part.to_string(),
            item_level: level,
            expected_cost,
            expected_cost_text: format_cost(expected_cost),
            cost_breakdown,
            enhance_path,
            potential_grade: Some(grade.to_string()),
            additional_potential_grade: raw.additional_grade().map(str::to_string),
            current_star: 0,
            target_star,
            is_noljang: noljang,
            special_ring_level: raw.special_ring_level(),
            black_cube_expectation: black,
            additional_cube_expectation: additional.unwrap_or_else(empty_cube),
            starforce_expectation,
            flame_expectation: flame,
        }
    }

    /// An item without a full potential: listed, costs nothing.
    fn unpriced_item(&self, raw: &RawItem, level: u32, flame: FlameExpectation) -> ItemExpectation {
        ItemExpectation {
            item_name: raw.item_name.to_string(),
            item_icon: raw.item_icon.as_deref().unwrap_or("").to_string(),
            item_part: raw.item_equipment_slot.to_string(),
            item_level: level,
            expected_cost: 0.0,
            // The original's literal for this case (elsewhere zero is "0").
            expected_cost_text: "0원".to_string(),
            cost_breakdown: CostBreakdown::default(),
            enhance_path: String::new(),
            potential_grade: None,
            additional_potential_grade: None,
            current_star: 0,
            target_star: raw.starforce(),
            is_noljang: raw.is_noljang(),
            special_ring_level: raw.special_ring_level(),
            black_cube_expectation: empty_cube(),
            additional_cube_expectation: empty_cube(),
            starforce_expectation: empty_starforce(),
            flame_expectation: flame,
        }
    }

    /// The cube part of an item, memoised per thread: it is a pure function
    /// of the tables and the query, and characters share most line sets
    /// (a query costs 3-9 µs; a cold character asks ~50-100 of them).
    fn cube(&self, kind: CubeKind, part: &str, level: u32, grade: &str, lines: &[&str]) -> CubeExpectation {
        use std::fmt::Write;
        let mut key = String::with_capacity(192);
        // The tables' address: a memo entry never answers for other tables.
        let _ = write!(key, "{:p}\u{1f}{kind:?}\u{1f}{part}\u{1f}{level}\u{1f}{grade}", self.cubes);
        for line in lines {
            key.push('\u{1f}');
            key.push_str(line);
        }
        if let Some(done) = CUBE_MEMO.with(|m| m.borrow().get(&key).cloned()) {
            return done;
        }
        let computed = self.cube_uncached(kind, part, level, grade, lines);
        CUBE_MEMO.with(|m| {
            let mut memo = m.borrow_mut();
            if memo.len() >= CUBE_MEMO_ENTRIES {
                memo.clear(); // bounded; refilling costs one query per key
            }
            memo.insert(key, computed.clone());
        });
        computed
    }

    fn cube_uncached(&self, kind: CubeKind, part: &str, level: u32, grade: &str, lines: &[&str]) -> CubeExpectation {
        let query = CubeQuery { kind, slot: part, level, grade, lines };
        let current_grade = Some(grade.to_string());
        let target_grade = grade_english(grade).map(str::to_string);
        let potential = lines.join(" | ");
        match self.cubes.expectation(&query) {
            CubeOutcome::Priced { trials, cost, .. } => CubeExpectation {
                expected_cost: cost as f64,
                expected_cost_text: format_cost(cost as f64),
                expected_trials: trials,
                current_grade,
                target_grade,
                potential,
                available: true,
                unavailable_reason: None,
            },
            CubeOutcome::Unavailable { reason, .. } => CubeExpectation {
                expected_cost: 0.0,
                expected_cost_text: "0".to_string(),
                expected_trials: 0,
                current_grade,
                target_grade,
                potential,
                available: false,
                unavailable_reason: Some(reason),
            },
        }
    }

    /// The regular 0★ → target cost (the breakdown's `starforceCost`) and
    /// the shown starforce expectation, memoised per thread: pure in the
    /// tables and (target, level, noljang), of which there are few.
    fn starforce_parts(&self, target_star: u32, level: u32, noljang: bool) -> (f64, StarforceExpectation) {
        let key = (std::ptr::from_ref(self) as usize, target_star, level, noljang);
        if let Some(done) = STARFORCE_MEMO.with(|m| m.borrow().get(&key).cloned()) {
            return done;
        }
        let cost = self.starforce.expected_cost(0, target_star, level, StarforceOptions::DEFAULT);
        let computed = (cost, self.starforce_expectation(target_star, level, noljang));
        STARFORCE_MEMO.with(|m| {
            let mut memo = m.borrow_mut();
            if memo.len() >= STARFORCE_MEMO_ENTRIES {
                memo.clear();
            }
            memo.insert(key, computed.clone());
        });
        computed
    }

    fn starforce_expectation(&self, target_star: u32, level: u32, noljang: bool) -> StarforceExpectation {
        if noljang {
            let cost = round_to_100(self.noljang.expected_cost(0, target_star, level));
            return StarforceExpectation {
                current_star: 0,
                target_star,
                is_noljang: true,
                cost_without_destroy_prevention: cost,
                cost_without_destroy_prevention_text: format_cost(cost),
                expected_destroy_count_without: 0.0,
                cost_with_destroy_prevention: cost,
                cost_with_destroy_prevention_text: format_cost(cost),
                expected_destroy_count_with: 0.0,
            };
        }
        let sf = &self.starforce;
        let without = round_to_100(sf.expected_cost(0, target_star, level, StarforceOptions::DEFAULT));
        let with = round_to_100(sf.expected_cost(0, target_star, level, StarforceOptions::WITH_DESTROY_PREVENTION));
        StarforceExpectation {
            current_star: 0,
            target_star,
            is_noljang: false,
            cost_without_destroy_prevention: without,
            cost_without_destroy_prevention_text: format_cost(without),
            expected_destroy_count_without: sf.expected_destroys(0, target_star, StarforceOptions::DEFAULT),
            cost_with_destroy_prevention: with,
            cost_with_destroy_prevention_text: format_cost(with),
            expected_destroy_count_with: sf.expected_destroys(0, target_star, StarforceOptions::WITH_DESTROY_PREVENTION),
        }
    }
}

/// Entries of the per-thread cube memo (≈ 0.5 KB each).
pub const CUBE_MEMO_ENTRIES: usize = 8192;

/// Entries of the per-thread starforce memo (≈ 0.2 KB each).
pub const STARFORCE_MEMO_ENTRIES: usize = 4096;

type StarforceKey = (usize, u32, u32, bool);

thread_local! {
    static STARFORCE_MEMO: std::cell::RefCell<std::collections::HashMap<StarforceKey, (f64, StarforceExpectation)>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    static CUBE_MEMO: std::cell::RefCell<std::collections::HashMap<String, CubeExpectation>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Results of items already computed in this document, keyed by every input
/// the item computation reads (borrowed from the document: no key is built).
type ItemMemo<'d> = std::collections::HashMap<ItemKey<'d>, ItemExpectation>;

/// The item's text fields, its numbers (level, stars, ring level, base
/// attack and magic) and the flame stats of `item_add_option`.
type ItemKey<'d> = ([Option<&'d str>; 13], [u32; 5], Option<AddOption>);

fn memo_key<'d>(raw: &'d RawItem<'_>) -> ItemKey<'d> {
    let text = [
        Some(&*raw.item_equipment_slot),
        raw.item_equipment_part.as_deref(),
        Some(&*raw.item_name),
        raw.item_icon.as_deref(),
        raw.potential_option_grade.as_deref(),
        raw.potential_option_1.as_deref(),
        raw.potential_option_2.as_deref(),
        raw.potential_option_3.as_deref(),
        raw.additional_potential_option_grade.as_deref(),
        raw.additional_potential_option_1.as_deref(),
        raw.additional_potential_option_2.as_deref(),
        raw.additional_potential_option_3.as_deref(),
        raw.starforce_scroll_flag.as_deref(),
    ];
    let numbers = [raw.level(), raw.starforce(), raw.special_ring_level(), raw.base_attack_power(), raw.base_magic_power()];
    (text, numbers, raw.item_add_option)
}

/// Half-up rounding to a multiple of 100 meso (the original's roundToNearest100).
fn round_to_100(meso: f64) -> f64 {
    (meso / 100.0).round() * 100.0
}

fn finite_or_zero(value: f64) -> f64 {
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        0.0
    }
}

fn add_breakdown(total: &mut CostBreakdown, item: &CostBreakdown) {
    total.black_cube_cost += item.black_cube_cost;
    total.red_cube_cost += item.red_cube_cost;
    total.additional_cube_cost += item.additional_cube_cost;
    total.starforce_cost += item.starforce_cost;
}

/// A grade without a single potential line: nothing the tables can price.
fn no_lines_cube(grade: &str, lines: &[&str]) -> CubeExpectation {
    CubeExpectation {
        expected_cost: 0.0,
        expected_cost_text: "0".to_string(),
        expected_trials: 0,
        current_grade: Some(grade.to_string()),
        target_grade: grade_english(grade).map(str::to_string),
        potential: lines.join(" | "),
        available: false,
        unavailable_reason: Some("no potential lines: all three are null or blank".to_string()),
    }
}

/// Nothing to price (no line set): zero, available.
fn empty_cube() -> CubeExpectation {
    CubeExpectation {
        expected_cost: 0.0,
        expected_cost_text: "0".to_string(),
        expected_trials: 0,
        current_grade: None,
        target_grade: None,
        potential: String::new(),
        available: true,
        unavailable_reason: None,
    }
}

fn empty_starforce() -> StarforceExpectation {
    StarforceExpectation {
        current_star: 0,
        target_star: 0,
        is_noljang: false,
        cost_without_destroy_prevention: 0.0,
        cost_without_destroy_prevention_text: "0".to_string(),
        expected_destroy_count_without: 0.0,
        cost_with_destroy_prevention: 0.0,
        cost_with_destroy_prevention_text: "0".to_string(),
        expected_destroy_count_with: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memo answers what the tables compute, first time and repeated,
    /// for every item of both fixtures (black and additional cubes).
    #[test]
    fn memoised_cubes_equal_the_tables() {
        let calc = Calculator::embedded();
        let mut queries = 0;
        for file in ["evan_equip.json", "mechanic_equip.json"] {
            let json = crate::expectation::test_fixture(file);
            let doc = equipment::parse(&json).unwrap();
            for item in (1..=3).flat_map(|n| doc.preset(n)) {
                let part = potential_part(&item.item_equipment_slot, item.item_equipment_part.as_deref());
                for (kind, grade, lines) in [
                    (CubeKind::Black, item.potential_grade(), item.potential_lines()),
                    (CubeKind::Additional, item.additional_grade(), item.additional_lines()),
                ] {
                    let Some(grade) = grade else { continue };
                    let want = calc.cube_uncached(kind, part, item.level(), grade, &lines);
                    assert_eq!(calc.cube(kind, part, item.level(), grade, &lines), want);
                    assert_eq!(calc.cube(kind, part, item.level(), grade, &lines), want, "repeat");
                    queries += 1;
                }
            }
        }
        assert!(queries > 20);
        assert!(CUBE_MEMO.with(|m| m.borrow().len()) <= CUBE_MEMO_ENTRIES);
    }

    #[test]
    fn memoised_starforce_equals_the_tables() {
        let calc = Calculator::embedded();
        for level in [0, 100, 140, 150, 160, 200, 250] {
            for target in [0, 5, 12, 15, 17, 18, 22, 25, 30] {
                for noljang in [false, true] {
                    let want = (
                        calc.starforce.expected_cost(0, target, level, StarforceOptions::DEFAULT),
                        calc.starforce_expectation(target, level, noljang),
                    );
                    assert_eq!(calc.starforce_parts(target, level, noljang), want);
                    assert_eq!(calc.starforce_parts(target, level, noljang), want, "repeat");
                }
            }
        }
    }
}
