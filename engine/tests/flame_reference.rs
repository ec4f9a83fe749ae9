//! Golden test: every item of both fixture characters, all three presets,
//! against the flame numbers the original's own code produced
//! (`derived/v4_reference_*.json`: `flameExpectation.*FlameTrials`,
//! `_target`, `_category`).

use engine::expectation::flame;
use flame::{flame_expectation, weapon_base, FlameInput, TrialsStatus};
use serde_json::Value;

mod common;

fn load(name: &str) -> Value {
    serde_json::from_str(&common::fixture_text(name)).unwrap_or_else(|e| panic!("parse {name}: {e}"))
}

fn level_of(item: &Value) -> u32 {
    let v = &item["item_base_option"]["base_equipment_level"];
    v.as_u64().map(|n| n as u32).unwrap_or_else(|| flame::weights::nexon_int(v).max(0) as u32)
}

/// Checks one character; returns how many items had a flame target.
fn check_character(equip_file: &str, reference_file: &str) -> usize {
    let equip = load(equip_file);
    let reference = load(reference_file);
    let class = equip["character_class"].as_str().expect("character_class");
    let mut with_target = 0;
    let presets = reference["presets"].as_array().expect("presets");
    assert_eq!(presets.len(), 3);
    for preset in presets {
        let no = preset["presetNo"].as_u64().unwrap();
        let items = equip[format!("item_equipment_preset_{no}")].as_array().expect("fixture preset");
        let expected = preset["items"].as_array().unwrap();
        assert_eq!(items.len(), expected.len(), "{equip_file} preset {no}: item count");
        for (item, want) in items.iter().zip(expected) {
            let name = item["item_name"].as_str().unwrap();
            assert_eq!(name, want["itemName"].as_str().unwrap(), "fixture/reference order");
            let base = weapon_base(&item["item_base_option"]);
            let out = flame_expectation(&FlameInput {
                item_name: name,
                slot: item["item_equipment_slot"].as_str().unwrap(),
                level: level_of(item),
                character_class: class,
                add_option: &item["item_add_option"],
                base_attack_power: base.attack,
                base_magic_power: base.magic,
            });
            let f = &want["flameExpectation"];
            let ctx = format!("{equip_file} preset {no} {name}: got {out:?}, want {f}");
            assert_eq!(out.powerful, f["powerfulFlameTrials"].as_f64().unwrap(), "{ctx}");
            assert_eq!(out.eternal, f["eternalFlameTrials"].as_f64().unwrap(), "{ctx}");
            assert_eq!(out.abyss, f["abyssFlameTrials"].as_f64().unwrap(), "{ctx}");
            assert_eq!(out.target.map(u64::from), f.get("_target").and_then(Value::as_u64), "{ctx}");
            assert_eq!(out.category, f.get("_category").and_then(Value::as_str), "{ctx}");
            // A 0 with a target is never silent: its status says why.
            for (trials, status) in [(out.powerful, out.status.powerful), (out.eternal, out.status.eternal), (out.abyss, out.status.abyss)]
            {
                match out.target {
                    None => assert_eq!(status, TrialsStatus::NoTarget, "{ctx}"),
                    Some(_) if trials == 0.0 => assert!(status.is_unavailable(), "{ctx}"),
                    Some(_) => {
                        assert_eq!(status, TrialsStatus::Expected, "{ctx}");
                        assert!(trials >= 1.0, "{ctx}");
                    }
                }
            }
            with_target += usize::from(out.target.is_some());
        }
    }
    with_target
}

#[test]
fn evan_matches_reference() {
    let n = check_character("evan_equip.json", "derived/v4_reference_evan.json");
    assert!(n >= 30, "only {n} items had a flame target");
}

#[test]
fn mechanic_matches_reference() {
    let n = check_character("mechanic_equip.json", "derived/v4_reference_mechanic.json");
    assert!(n >= 30, "only {n} items had a flame target");
}

/// The reference's special cases, named so a regression says what broke.
#[test]
fn reference_special_cases() {
    let equip = load("evan_equip.json");
    let pocket = equip["item_equipment_preset_1"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item_name"] == "저주받은 청의 마도서")
        .expect("Evan's pocket item");
    let out = flame_expectation(&FlameInput {
        item_name: "저주받은 청의 마도서",
        slot: pocket["item_equipment_slot"].as_str().unwrap(),
        level: 160,
        character_class: "에반",
        add_option: &pocket["item_add_option"],
        base_attack_power: 0,
        base_magic_power: 0,
    });
    // Level 160 has no stage 1–2 values: powerful (stages 1–4) and eternal
    // (2–5) have an empty pool; only abyss (3–5) is priced.
    assert_eq!(out.target, Some(1350));
    assert_eq!(out.category, Some("OTHER_ARMOR"));
    assert_eq!(out.status.powerful, TrialsStatus::NotInTable);
    assert_eq!(out.status.eternal, TrialsStatus::NotInTable);
    assert_eq!(out.status.abyss, TrialsStatus::Expected);
    assert_eq!(out.abyss, 24126984.13);
}
