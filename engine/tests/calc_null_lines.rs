//! Potential lines Nexon sends as `null` (or leaves out, or sends blank).
//!
//! The original's parser (Jackson `getText()`) reads a JSON `null` line as
//! the text "null"; its cube engines then treat that line as unmatched (rate
//! factor 1 in the exact-lines engine, no contribution when the DP target is
//! inferred). Starforce and flames never depend on potential lines. We read
//! missing and blank lines the same way; an item with no line at all has an
//! unavailable black cube, still with its starforce.
//!
//! Checked three ways: small hand-computed tables (the rule itself), one
//! targeted document per fixture (the defect), and many generated variants
//! of both real fixtures (invariants against an oracle built from the cube
//! tables directly).

use engine::expectation::cube::{grade_english, CubeKind, CubeOutcome, CubeQuery, CubeTables, EMBEDDED_LOOKUP_JSON};
use engine::expectation::{calculator::potential_part, Calculator, ExpectationResponse, ItemExpectation};
use serde_json::{json, Value};

mod common;

const FIXTURES: [&str; 2] = ["evan_equip.json", "mechanic_equip.json"];
const MAIN_LINES: [&str; 3] = ["potential_option_1", "potential_option_2", "potential_option_3"];
const ADDITIONAL_LINES: [&str; 3] = ["additional_potential_option_1", "additional_potential_option_2", "additional_potential_option_3"];
const PRESETS: [&str; 3] = ["item_equipment_preset_1", "item_equipment_preset_2", "item_equipment_preset_3"];

fn compute(doc: &Value) -> ExpectationResponse {
    let bytes = serde_json::to_vec(doc).unwrap();
    Calculator::embedded().compute("tester", &bytes, "2026-11-23T10:00:00".into()).expect("a variant of a fixture computes")
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&common::fixture_bytes(name)).unwrap()
}

// ---------- the rule on hand-computed tables ----------

/// A table with known rates for 모자 level 200 레전드리: STR +12% at 0.1 /
/// 0.2 / 0.3 in slots 1 / 2 / 3, boss damage +40% at 0.05 / 0.04 / 0.02.
fn small_tables() -> CubeTables {
    let csv = "option,rate,slot,potential_option_grade,base_equipment_level,item_equipment_slot\n\
STR +12%,0.1,1,레전드리,200,모자\n\
STR +12%,0.2,2,레전드리,200,모자\n\
STR +12%,0.3,3,레전드리,200,모자\n\
보스 몬스터 공격 시 데미지 +40%,0.05,1,레전드리,200,모자\n\
보스 몬스터 공격 시 데미지 +40%,0.04,2,레전드리,200,모자\n\
보스 몬스터 공격 시 데미지 +40%,0.02,3,레전드리,200,모자\n\
STR +9%,0.5,1,레전드리,200,모자\n\
STR +9%,0.5,2,레전드리,200,모자\n\
STR +9%,0.5,3,레전드리,200,모자\n";
    CubeTables::parse(csv, EMBEDDED_LOOKUP_JSON).unwrap()
}

fn priced(out: &CubeOutcome) -> (f64, u64) {
    match out {
        CubeOutcome::Priced { trials_raw, cost, .. } => (*trials_raw, *cost),
        other => panic!("expected a price, got {other:?}"),
    }
}

/// Exact lines (boss + STR is a compound set, so not DP): the "null" line
/// is rate 1 wherever it lands, so p sums STR-in-slot-i × boss-in-slot-j over
/// the six placements with i ≠ j:
/// .1×.04 + .1×.02 + .2×.05 + .2×.02 + .3×.05 + .3×.04 = 0.047.
#[test]
fn a_null_line_is_rate_one_in_the_exact_lines_engine() {
    let tables = small_tables();
    let q =
        |lines: &[&str]| tables.expectation(&CubeQuery { kind: CubeKind::Black, slot: "모자", level: 200, grade: "레전드리", lines });
    let out = q(&["STR +12%", "보스 몬스터 공격 시 데미지 +40%", "null"]);
    assert_eq!(out.engine(), "V1");
    let (trials_raw, cost) = priced(&out);
    assert!((trials_raw - 1.0 / 0.047).abs() < 1e-9, "{trials_raw}");
    let per_use = tables.cost_table().cost_per_use(CubeKind::Black, 200, "레전드리").unwrap();
    assert_eq!(cost, 21 * per_use, "round(21.28) uses");

    // Wherever the null line sits.
    let (trials_raw, _) = priced(&q(&["null", "보스 몬스터 공격 시 데미지 +40%", "STR +12%"]));
    assert!((trials_raw - 1.0 / 0.047).abs() < 1e-9, "{trials_raw}");
    // A real third line instead multiplies in its own rate (0.5 in every slot),
    // and the three distinct lines now fill all three slots.
    let (trials_raw, _) = priced(&q(&["STR +12%", "보스 몬스터 공격 시 데미지 +40%", "STR +9%"]));
    assert!((trials_raw - 1.0 / (0.047 * 0.5)).abs() < 1e-9, "{trials_raw}");
}

/// DP: the target is inferred from the real lines only.
#[test]
fn a_null_line_adds_nothing_to_the_inferred_dp_target() {
    let tables = small_tables();
    let q =
        |lines: &[&str]| tables.expectation(&CubeQuery { kind: CubeKind::Black, slot: "모자", level: 200, grade: "레전드리", lines });
    assert_eq!(q(&["STR +12%", "null", "STR +9%"]).engine(), "DP(STR_PERCENT>=21)");
    assert_eq!(q(&["null", "null", "STR +9%"]).engine(), "DP(STR_PERCENT>=9)");
    // Where the null line sits changes nothing.
    assert_eq!(q(&["STR +12%", "null", "STR +9%"]), q(&["STR +9%", "STR +12%", "null"]));
}

// ---------- the defect, on the real fixtures ----------

fn items_mut(doc: &mut Value) -> impl Iterator<Item = &mut Value> {
    let obj = doc.as_object_mut().unwrap();
    obj.iter_mut().filter(|(k, _)| PRESETS.contains(&k.as_str())).flat_map(|(_, v)| v.as_array_mut().unwrap().iter_mut())
}

/// Every item's third main line (and additional line) set to null: every
/// starforce and flame part is what the unchanged fixture gives.
#[test]
fn a_null_third_line_keeps_starforce_and_flames() {
    for name in FIXTURES {
        let original = fixture(name);
        let mut doc = original.clone();
        for item in items_mut(&mut doc) {
            item["potential_option_3"] = Value::Null;
            item["additional_potential_option_3"] = Value::Null;
        }
        let (base, ours) = (compute(&original), compute(&doc));
        let mut starforced = 0;
        for (b, o) in base.presets.iter().flat_map(|p| &p.items).zip(ours.presets.iter().flat_map(|p| &p.items)) {
            let what = format!("{name} {}", b.item_name);
            assert_eq!(o.starforce_expectation, b.starforce_expectation, "{what}");
            assert_eq!(o.cost_breakdown.starforce_cost, b.cost_breakdown.starforce_cost, "{what}");
            assert_eq!(o.flame_expectation, b.flame_expectation, "{what}");
            assert_eq!(o.potential_grade, b.potential_grade, "{what}");
            if b.potential_grade.is_some() {
                assert!(o.black_cube_expectation.potential.ends_with(" | null"), "{what}: {}", o.black_cube_expectation.potential);
            }
            starforced += usize::from(b.cost_breakdown.starforce_cost > 0.0);
        }
        assert!(starforced > 20, "{name}: the check saw starforced items ({starforced})");
    }
}

// ---------- many generated variants ----------

/// xorshift64* (seed printed on failure through the messages).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How a line is made absent.
fn absent_line(rng: &mut Rng, item: &mut Value, key: &str) {
    match rng.below(5) {
        0 | 1 => item[key] = Value::Null,
        2 => {
            item.as_object_mut().unwrap().remove(key);
        }
        3 => item[key] = json!(""),
        _ => item[key] = json!(" \t"),
    }
}

/// The three lines as the documented rule reads them.
fn read_lines(item: &Value, keys: [&str; 3]) -> [String; 3] {
    keys.map(|k| match item.get(k).and_then(Value::as_str) {
        Some(line) if !line.trim().is_empty() => line.to_owned(),
        _ => "null".to_owned(),
    })
}

fn real_text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|t| !t.trim().is_empty() && !t.trim().eq_ignore_ascii_case("null"))
}

/// The item's cube part by the documented rule, straight from the tables.
fn check_cube_part(ours: &ItemExpectation, raw: &Value, what: &str) {
    let grade = real_text(raw.get("potential_option_grade")).expect("only graded items get here");
    let lines = read_lines(raw, MAIN_LINES);
    let black = &ours.black_cube_expectation;
    assert_eq!(black.potential, lines.join(" | "), "{what}");
    assert_eq!(black.current_grade.as_deref(), Some(grade), "{what}");
    assert_eq!(black.target_grade.as_deref(), grade_english(grade), "{what}");
    if lines.iter().all(|l| l.trim().eq_ignore_ascii_case("null")) {
        assert!(!black.available && black.expected_cost == 0.0, "{what}: no line, nothing priced");
        assert!(black.unavailable_reason.as_deref().is_some_and(|r| r.contains("no potential lines")), "{what}");
    } else {
        let slot = raw["item_equipment_slot"].as_str().unwrap();
        let part = potential_part(slot, raw.get("item_equipment_part").and_then(Value::as_str));
        let level = raw["item_base_option"]["base_equipment_level"].as_u64().unwrap() as u32;
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = CubeTables::embedded().expectation(&CubeQuery { kind: CubeKind::Black, slot: part, level, grade, lines: &refs });
        match out {
            CubeOutcome::Priced { trials, cost, .. } => {
                assert!(black.available, "{what}");
                assert_eq!(black.expected_cost, cost as f64, "{what}");
                assert_eq!(black.expected_trials, trials, "{what}");
            }
            CubeOutcome::Unavailable { reason, .. } => {
                assert!(!black.available && black.expected_cost == 0.0, "{what}");
                assert_eq!(black.unavailable_reason.as_deref(), Some(reason.as_str()), "{what}");
            }
        }
    }
    assert_eq!(ours.cost_breakdown.black_cube_cost, black.expected_cost, "{what}");
    if real_text(raw.get("additional_potential_option_grade")).is_some() {
        let additional = &ours.additional_cube_expectation;
        assert_eq!(additional.potential, read_lines(raw, ADDITIONAL_LINES).join(" | "), "{what}");
        assert!(!additional.available && additional.expected_cost == 0.0, "{what}: no additional odds");
    }
    let b = &ours.cost_breakdown;
    assert_eq!(ours.expected_cost, b.black_cube_cost + b.red_cube_cost + b.additional_cube_cost + b.starforce_cost, "{what}");
}

/// For random items of both fixtures, random potential and additional lines
/// are made null, missing, empty or blank. Every item keeps its starforce
/// and flame parts, its grade and stars; graded items' cubes follow the
/// rule; untouched items are unchanged; totals are sums; nothing panics.
#[test]
fn generated_variants_keep_starforce_and_flames() {
    const VARIANTS_PER_FIXTURE: usize = 150;
    let seed = std::env::var("NULL_LINES_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x9E37_79B9_7F4A_7C15u64);
    let mut rng = Rng(seed);
    let mut graded_changed = 0usize;
    for name in FIXTURES {
        let original = fixture(name);
        let base = compute(&original);
        for variant in 0..VARIANTS_PER_FIXTURE {
            let mut doc = original.clone();
            // Item by item: touched or not, and which lines go.
            let mut touched = Vec::new();
            for item in items_mut(&mut doc) {
                let mut changed = false;
                if rng.below(3) == 0 {
                    // Sometimes all three main lines at once.
                    let all = rng.below(6) == 0;
                    for key in MAIN_LINES.iter().chain(&ADDITIONAL_LINES) {
                        if (all && MAIN_LINES.contains(key)) || rng.below(2) == 0 {
                            absent_line(&mut rng, item, key);
                            changed = true;
                        }
                    }
                }
                touched.push(changed);
            }
            let ours = compute(&doc);
            let what = format!("{name} variant {variant} (seed {seed:#x})");

            assert_eq!(ours.presets.len(), base.presets.len(), "{what}");
            let mut best = 0.0f64;
            let mut n = 0;
            for (preset, base_preset) in ours.presets.iter().zip(&base.presets) {
                let raws = doc[format!("item_equipment_preset_{}", preset.preset_no)].as_array().unwrap();
                assert_eq!(preset.items.len(), raws.len(), "{what}: every item listed");
                for ((o, b), raw) in preset.items.iter().zip(&base_preset.items).zip(raws) {
                    let what = format!("{what} preset {} {}", preset.preset_no, b.item_name);
                    assert_eq!(o.item_name, b.item_name, "{what}");
                    assert_eq!(o.starforce_expectation, b.starforce_expectation, "{what}");
                    assert_eq!(o.cost_breakdown.starforce_cost, b.cost_breakdown.starforce_cost, "{what}");
                    assert_eq!(o.flame_expectation, b.flame_expectation, "{what}");
                    assert_eq!((o.target_star, o.is_noljang), (b.target_star, b.is_noljang), "{what}");
                    assert_eq!(o.potential_grade, b.potential_grade, "{what}");
                    assert_eq!(o.additional_potential_grade, b.additional_potential_grade, "{what}");
                    if !touched[n] || b.potential_grade.is_none() {
                        assert_eq!(o, b, "{what}: lines unchanged or no grade → same item");
                    } else {
                        check_cube_part(o, raw, &what);
                        graded_changed += 1;
                    }
                    n += 1;
                }
                let total: f64 = preset.items.iter().map(|i| i.expected_cost).sum();
                assert_eq!(preset.total_expected_cost, total, "{what}: preset total = sum of items");
                let black: f64 = preset.items.iter().map(|i| i.cost_breakdown.black_cube_cost).sum();
                let starforce: f64 = preset.items.iter().map(|i| i.cost_breakdown.starforce_cost).sum();
                assert_eq!(preset.cost_breakdown.black_cube_cost, black, "{what}");
                assert_eq!(preset.cost_breakdown.starforce_cost, starforce, "{what}");
                assert_eq!(preset.cost_breakdown.starforce_cost, base_preset.cost_breakdown.starforce_cost, "{what}");
                best = best.max(preset.total_expected_cost);
            }
            assert_eq!(ours.total_expected_cost, best, "{what}: response total = highest preset");
        }
    }
    assert!(graded_changed > 1000, "the variants reached graded items ({graded_changed})");
}
