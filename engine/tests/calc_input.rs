//! Whole-fixture invariants, bad input (typed errors naming the field, never
//! a panic), and property tests for the calculator and its parser.

use std::io::Write;

use engine::expectation::starforce::StarforceOptions;
use engine::expectation::{CalcError, Calculator, ExpectationResponse};
use proptest::prelude::*;
use serde_json::{json, Value};

mod common;

fn fixture(name: &str) -> Vec<u8> {
    common::fixture_bytes(name)
}

fn compute(bytes: &[u8]) -> Result<ExpectationResponse, CalcError> {
    Calculator::embedded().compute("tester", bytes, "2026-11-23T10:00:00".into())
}

fn compute_value(doc: &Value) -> Result<ExpectationResponse, CalcError> {
    compute(&serde_json::to_vec(doc).unwrap())
}

fn item(slot: &str, stars: &str) -> Value {
    json!({
        "item_equipment_slot": slot, "item_equipment_part": slot, "item_name": format!("{slot} item"),
        "item_icon": "icon", "item_base_option": {"base_equipment_level": 200},
        "potential_option_grade": "레전드리",
        "potential_option_1": "STR +12%", "potential_option_2": "STR +9%", "potential_option_3": "STR +9%",
        "additional_potential_option_grade": "레어",
        "additional_potential_option_1": "STR +10", "additional_potential_option_2": null, "additional_potential_option_3": null,
        "starforce": stars, "starforce_scroll_flag": "미사용", "special_ring_level": 0,
        "item_add_option": {"str": "0"}
    })
}

fn doc_with(preset1: Vec<Value>) -> Value {
    json!({"character_class": "히어로", "item_equipment": [], "item_equipment_preset_1": preset1})
}

// ---------- whole fixtures ----------

fn check_invariants(response: &ExpectationResponse, source: &Value) {
    let finite = |x: f64, what: &str| assert!(x.is_finite() && x >= 0.0, "{what} = {x}");
    assert!(!response.presets.is_empty());
    let mut best = 0.0f64;
    for preset in &response.presets {
        let n = preset.preset_no;
        let listed = source[format!("item_equipment_preset_{n}")].as_array().unwrap();
        assert_eq!(preset.items.len(), listed.len(), "preset {n}: every item present");
        for (ours, raw) in preset.items.iter().zip(listed) {
            assert_eq!(ours.item_name, raw["item_name"].as_str().unwrap(), "preset {n}: order kept");
            let b = &ours.cost_breakdown;
            for (x, what) in [
                (ours.expected_cost, "expectedCost"),
                (b.black_cube_cost, "black"),
                (b.additional_cube_cost, "additional"),
                (b.starforce_cost, "starforce"),
                (ours.flame_expectation.powerful_flame_trials, "powerful"),
                (ours.flame_expectation.eternal_flame_trials, "eternal"),
                (ours.flame_expectation.abyss_flame_trials, "abyss"),
                (ours.starforce_expectation.cost_with_destroy_prevention, "sf with"),
                (ours.starforce_expectation.expected_destroy_count_without, "destroys"),
            ] {
                finite(x, &format!("preset {n} {} {what}", ours.item_name));
            }
            let sum = b.black_cube_cost + b.red_cube_cost + b.additional_cube_cost + b.starforce_cost;
            assert_eq!(ours.expected_cost, sum, "item cost = its breakdown");
            assert_eq!(ours.black_cube_expectation.available, ours.black_cube_expectation.unavailable_reason.is_none());
        }
        let total: f64 = preset.items.iter().map(|i| i.expected_cost).sum();
        assert_eq!(preset.total_expected_cost, total, "preset {n}: total = sum of items");
        let black: f64 = preset.items.iter().map(|i| i.cost_breakdown.black_cube_cost).sum();
        assert_eq!(preset.cost_breakdown.black_cube_cost, black);
        best = best.max(preset.total_expected_cost);
    }
    assert_eq!(response.total_expected_cost, best, "response total = highest preset");
    let max = response.preset(response.max_preset_no).expect("max preset exists");
    assert_eq!(max.total_expected_cost, best);
    assert_eq!(response.total_cost_breakdown, max.cost_breakdown);
    assert!(response.preset(0).is_none() && response.preset(4).is_none());
}

#[test]
fn fixtures_are_complete_and_consistent() {
    for name in ["evan_equip.json", "mechanic_equip.json"] {
        let bytes = fixture(name);
        let source: Value = serde_json::from_slice(&bytes).unwrap();
        let response = compute(&bytes).unwrap();
        assert_eq!(response.presets.len(), 3, "{name}");
        check_invariants(&response, &source);
        // Additional potential has no odds in the table: reported, not priced 0 silently.
        let additional = response.presets.iter().flat_map(|p| &p.items).filter(|i| i.additional_potential_grade.is_some());
        for item in additional {
            assert!(!item.additional_cube_expectation.available, "{}", item.item_name);
        }
    }
}

#[test]
fn gzip_input_gives_the_same_response() {
    let plain = fixture("mechanic_equip.json");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(compute(&gz).unwrap(), compute(&plain).unwrap());
}

#[test]
fn response_serialises_with_the_v4_keys() {
    let v = serde_json::to_value(compute(&fixture("evan_equip.json")).unwrap()).unwrap();
    let item = &v["presets"][0]["items"][0];
    for key in ["isNoljang", "specialRingLevel", "enhancePath", "blackCubeExpectation", "flameExpectation"] {
        assert!(item.get(key).is_some(), "{key}");
    }
    assert!(item.get("noljang").is_none());
    assert_eq!(item["additionalCubeExpectation"]["available"], false);
    assert!(item["blackCubeExpectation"].get("unavailableReason").is_none());
}

// ---------- small documents: rules ----------

#[test]
fn presets_without_items_are_left_out_and_empty_docs_have_no_max() {
    let response = compute_value(&json!({"item_equipment_preset_2": [item("모자", "10")]})).unwrap();
    assert_eq!(response.presets.len(), 1);
    assert_eq!(response.max_preset_no, 2);
    assert!(response.preset(1).is_none());

    // A character whose lists are all empty is a real (zero) answer.
    let empty = compute_value(&json!({"item_equipment": [], "item_equipment_preset_1": [], "item_equipment_preset_2": null})).unwrap();
    assert!(empty.presets.is_empty());
    assert_eq!(empty.max_preset_no, 0);
    assert_eq!(empty.total_expected_cost, 0.0);
    assert_eq!(empty.total_cost_text, "0");
}

/// `{}`, `[]`, the basic-character document, or one with only the worn list
/// are not equipment documents: an error naming what is missing, never a
/// zero-cost answer.
#[test]
fn documents_without_equipment_lists_are_errors() {
    let basic = fixture("basic_character_info.json");
    let only_worn = serde_json::to_vec(&json!({"item_equipment": [item("모자", "22")], "item_equipment_preset_1": null})).unwrap();
    for (what, bytes) in [
        ("{}", b"{}".to_vec()),
        ("[]", b"[]".to_vec()),
        ("[null]", b" [null]".to_vec()),
        ("basic character", basic),
        ("only item_equipment", only_worn),
    ] {
        let err = compute(&bytes).expect_err(what);
        assert!(matches!(err, CalcError::NotEquipment(_)), "{what}: {err:?}");
        let text = err.to_string();
        assert!(text.starts_with("not a character item-equipment document"), "{what}: {text}");
        if !what.starts_with('[') {
            assert!(text.contains("item_equipment_preset_1") && text.contains("item_equipment_preset_3"), "{what}: {text}");
        } else {
            assert!(text.contains("array"), "{what}: {text}");
        }
        // The server validates with the same parse before caching.
        assert_eq!(engine::expectation::equipment::check(&bytes), Err(err), "{what}");
    }
    assert_eq!(engine::expectation::equipment::check(&fixture("evan_equip.json")), Ok(()));
}

/// A blank line (here "") does not unprice the item: starforce is priced as
/// for the full item and the black cube prices the two real lines with the
/// missing one read as "null".
#[test]
fn item_with_a_blank_line_keeps_its_starforce() {
    let full = compute_value(&doc_with(vec![item("모자", "22")])).unwrap();
    let mut partial = item("모자", "22");
    partial["potential_option_3"] = json!("");
    let response = compute_value(&doc_with(vec![partial])).unwrap();
    let (it, whole) = (&response.presets[0].items[0], &full.presets[0].items[0]);
    assert_eq!(it.potential_grade.as_deref(), Some("레전드리"));
    assert_eq!(it.target_star, 22);
    assert_eq!(it.starforce_expectation, whole.starforce_expectation);
    assert_eq!(it.cost_breakdown.starforce_cost, whole.cost_breakdown.starforce_cost);
    assert!(it.cost_breakdown.starforce_cost > 0.0);
    assert_eq!(it.black_cube_expectation.potential, "STR +12% | STR +9% | null");
    assert!(it.black_cube_expectation.available);
    assert!(it.enhance_path.ends_with("스타포스(0→22성)"), "{}", it.enhance_path);
    assert_eq!(it.expected_cost, it.cost_breakdown.black_cube_cost + it.cost_breakdown.starforce_cost);
}

/// As the original's `hasBasicInfo()`: an item whose `item_equipment_slot`
/// is missing or blank (Java `trim()`: every char ≤ U+0020) is dropped; a
/// JSON null slot reads as the text "null" and the item is kept.
#[test]
fn items_without_a_slot_are_dropped() {
    let mut items = vec![item("모자", "22")];
    for slot in [json!(""), json!("   "), json!("\t\n")] {
        let mut blank = item("모자", "17");
        blank["item_equipment_slot"] = slot;
        items.push(blank);
    }
    let mut missing = item("모자", "17");
    missing.as_object_mut().unwrap().remove("item_equipment_slot");
    items.push(missing);
    let mut null_slot = item("모자", "17");
    null_slot["item_equipment_slot"] = Value::Null;
    null_slot["item_name"] = json!("null slot");
    items.push(null_slot);
    let mut wide_space = item("모자", "17");
    wide_space["item_equipment_slot"] = json!("\u{3000}");
    wide_space["item_name"] = json!("wide space");
    items.push(wide_space);
    items.push(item("신발", "12"));

    let response = compute_value(&doc_with(items)).unwrap();
    let names: Vec<&str> = response.presets[0].items.iter().map(|i| i.item_name.as_str()).collect();
    assert_eq!(names, ["모자 item", "null slot", "wide space", "신발 item"]);
    let kept = &response.presets[0].items[1];
    assert_eq!(kept.item_part, "null");
    assert!(!kept.black_cube_expectation.available, "no table rows for slot \"null\"");
    assert!(kept.cost_breakdown.starforce_cost > 0.0);
    let total: f64 = response.presets[0].items.iter().map(|i| i.expected_cost).sum();
    assert_eq!(response.presets[0].total_expected_cost, total);

    // A preset whose every item is dropped is left out.
    let mut blank = item("모자", "17");
    blank["item_equipment_slot"] = json!(" ");
    let only_blank = compute_value(&json!({"item_equipment_preset_1": [blank], "item_equipment_preset_2": [item("모자", "1")]})).unwrap();
    assert_eq!(only_blank.presets.len(), 1);
    assert_eq!(only_blank.max_preset_no, 2);
}

#[test]
fn noljang_caps_at_fifteen_and_uses_noljang_cost() {
    let mut scroll = item("모자", "17");
    scroll["starforce_scroll_flag"] = json!("사용");
    let response = compute_value(&doc_with(vec![scroll])).unwrap();
    let it = &response.presets[0].items[0];
    assert!(it.is_noljang && it.starforce_expectation.is_noljang);
    assert_eq!(it.target_star, 15);
    let nj = Calculator::embedded().noljang_table().expected_cost(0, 15, 200);
    assert_eq!(it.starforce_expectation.cost_without_destroy_prevention, (nj / 100.0).round() * 100.0);
    assert_eq!(it.starforce_expectation.expected_destroy_count_with, 0.0);
    assert!(it.enhance_path.ends_with("스타포스(0→15성)"), "{}", it.enhance_path);
}

#[test]
fn force_shield_uses_its_own_potential_part() {
    let mut shield = item("보조무기", "0");
    shield["item_equipment_part"] = json!("포스실드");
    let response = compute_value(&doc_with(vec![shield, item("보조무기", "0")])).unwrap();
    assert_eq!(response.presets[0].items[0].item_part, "포스실드");
    assert_eq!(response.presets[0].items[1].item_part, "보조무기");
}

#[test]
fn unknown_slot_is_listed_but_not_priced_by_the_cube() {
    let response = compute_value(&doc_with(vec![item("우주선", "0")])).unwrap();
    let it = &response.presets[0].items[0];
    assert_eq!(it.item_part, "우주선");
    assert!(!it.black_cube_expectation.available);
    assert_eq!(it.expected_cost, 0.0);
}

// ---------- bad input: typed errors naming the field ----------

fn error_of(doc: &Value) -> CalcError {
    compute_value(doc).expect_err("must be rejected")
}

#[test]
fn wrong_types_name_the_field_path() {
    let mut bad = item("모자", "22");
    bad["starforce"] = json!({"x": 1});
    let mut doc = json!({"item_equipment_preset_2": [item("모자", "1"), item("모자", "1"), item("모자", "1"), bad]});
    let err = error_of(&doc);
    assert_eq!(err.path(), Some("item_equipment_preset_2[3].starforce"), "{err}");
    assert!(err.to_string().starts_with("item_equipment_preset_2[3].starforce: "), "{err}");

    doc["item_equipment_preset_2"][0]["potential_option_1"] = json!(5);
    let err = error_of(&doc);
    assert_eq!(err.path(), Some("item_equipment_preset_2[0].potential_option_1"), "{err}");

    let err = error_of(&json!({"item_equipment_preset_1": {"not": "a list"}}));
    assert_eq!(err.path(), Some("item_equipment_preset_1"), "{err}");
}

#[test]
fn out_of_range_numbers_are_rejected() {
    let mut bad = item("모자", "31");
    let err = error_of(&doc_with(vec![bad.clone()]));
    assert_eq!(err.path(), Some("item_equipment_preset_1[0].starforce"));
    assert!(err.to_string().contains("above the maximum 30"), "{err}");

    bad["starforce"] = json!("-3");
    assert_eq!(error_of(&doc_with(vec![bad.clone()])).path(), Some("item_equipment_preset_1[0].starforce"));
    bad["starforce"] = json!(5);
    bad["item_base_option"]["base_equipment_level"] = json!(100_000);
    assert_eq!(error_of(&doc_with(vec![bad])).path(), Some("item_equipment_preset_1[0].item_base_option.base_equipment_level"));
}

#[test]
fn missing_required_fields_are_named() {
    let mut no_name = item("모자", "0");
    no_name.as_object_mut().unwrap().remove("item_name");
    let err = error_of(&doc_with(vec![no_name]));
    assert!(err.to_string().contains("missing field `item_name`"), "{err}");
    assert_eq!(err.path(), Some("item_equipment_preset_1[0]"));
}

#[test]
fn truncated_and_garbage_input_is_an_error() {
    let bytes = fixture("evan_equip.json");
    for cut in [0, 1, 10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let err = compute(&bytes[..cut]).expect_err("truncated");
        assert!(matches!(err, CalcError::Json { .. }), "{err}");
    }
    assert!(compute(b"{} trailing").is_err());
    assert!(compute(b"[1,2,3]").is_err());
    assert!(matches!(compute(&[0x1f, 0x8b, 1, 2, 3]), Err(CalcError::Gzip(_))));
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = format!("{{\"title\": {}1{}}}", "[".repeat(50), "]".repeat(50));
    let err = compute(deep.as_bytes()).expect_err("too deep");
    assert!(matches!(err, CalcError::TooDeep { .. }), "{err}");
    // Brackets inside strings do not count.
    let quoted = format!("{{\"title\": \"{}\", \"item_equipment_preset_1\": []}}", "[".repeat(50));
    assert!(compute(quoted.as_bytes()).is_ok());
}

#[test]
fn lists_and_bodies_are_bounded() {
    let many: Vec<Value> = (0..65).map(|_| item("모자", "0")).collect();
    let err = error_of(&doc_with(many));
    assert_eq!(err.path(), Some("item_equipment_preset_1"), "{err}");
    let huge = vec![b' '; engine::expectation::equipment::MAX_INPUT_BYTES + 1];
    assert!(matches!(compute(&huge), Err(CalcError::TooLarge { .. })));
}

#[test]
fn escaped_strings_are_decoded() {
    let mut escaped = item("모자", "0");
    escaped["item_name"] = json!("따옴표 \"모자\" \\ 탭\t");
    let response = compute_value(&doc_with(vec![escaped])).unwrap();
    assert_eq!(response.presets[0].items[0].item_name, "따옴표 \"모자\" \\ 탭\t");
}

// ---------- properties ----------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// More stars never cost less, with or without destroy prevention.
    #[test]
    fn starforce_cost_is_monotonic_in_the_target(level in 0u32..=300, to in 0u32..30) {
        let sf = Calculator::embedded().starforce_table();
        for opts in [StarforceOptions::DEFAULT, StarforceOptions::WITH_DESTROY_PREVENTION] {
            let a = sf.expected_cost(0, to, level, opts);
            let b = sf.expected_cost(0, to + 1, level, opts);
            prop_assert!(a.is_finite() && b >= a, "level {} {}→{}: {} then {}", level, to, to + 1, a, b);
        }
        prop_assert!(sf.expected_destroys(0, to + 1, StarforceOptions::DEFAULT) >= sf.expected_destroys(0, to, StarforceOptions::DEFAULT));
    }

    /// Prevention never yields more destructions, and costs at least as much up to 15★.
    #[test]
    fn destroy_prevention_trades_meso_for_safety(level in 138u32..=300, to in 0u32..=30) {
        let sf = Calculator::embedded().starforce_table();
        prop_assert!(sf.expected_destroys(0, to, StarforceOptions::WITH_DESTROY_PREVENTION)
            <= sf.expected_destroys(0, to, StarforceOptions::DEFAULT));
        if to <= 15 {
            prop_assert_eq!(sf.expected_cost(0, to, level, StarforceOptions::WITH_DESTROY_PREVENTION),
                sf.expected_cost(0, to, level, StarforceOptions::DEFAULT));
        }
    }

    #[test]
    fn noljang_cost_is_monotonic(level in 0u32..=300, to in 0u32..15) {
        let nj = Calculator::embedded().noljang_table();
        prop_assert!(nj.expected_cost(0, to + 1, level) > nj.expected_cost(0, to, level));
    }

    /// Random bytes never panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = compute(&bytes);
    }

    /// Mutated real documents (bytes flipped, cut, spliced) never panic, and
    /// whatever parses still satisfies the response invariants.
    #[test]
    fn mutated_fixture_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = fixture("mechanic_equip.json");
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let keep = bytes.len() - cut.index(bytes.len() / 50 + 1);
        bytes.truncate(keep);
        if let Ok(response) = compute(&bytes) {
            for preset in &response.presets {
                let total: f64 = preset.items.iter().map(|i| i.expected_cost).sum();
                prop_assert_eq!(preset.total_expected_cost, total);
                prop_assert!(total.is_finite() && total >= 0.0);
            }
        }
    }

    /// Any starforce string 0..=30 is accepted; the target follows it.
    #[test]
    fn any_valid_star_value_is_accepted(stars in 0u32..=30, as_number in any::<bool>()) {
        let mut it = item("모자", "0");
        it["starforce"] = if as_number { json!(stars) } else { json!(stars.to_string()) };
        let response = compute_value(&doc_with(vec![it])).unwrap();
        prop_assert_eq!(response.presets[0].items[0].target_star, stars);
    }
}
