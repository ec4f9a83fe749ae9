//! Golden tests: our cube expectation against numbers computed by the
//! original's own calculation code (`fixtures/maple/derived/`).
//!
//! Fixtures: `<repo>/fixtures/maple`, or `$MAPLE_SHARED_DATA`.

use engine::expectation::cube::{CubeKind, CubeOutcome, CubeQuery, CubeTables};
use serde_json::Value;

mod common;

fn read(rel: &str) -> String {
    common::fixture_text(rel)
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    let rel = ((actual - expected) / expected).abs();
    assert!(rel <= 1e-9, "{what}: trials_raw {actual} vs reference {expected} (relative error {rel:e})");
}

fn kind_of(name: &str) -> CubeKind {
    match name {
        "BLACK" => CubeKind::Black,
        "RED" => CubeKind::Red,
        "ADDITIONAL" => CubeKind::Additional,
        other => panic!("unknown cube kind {other}"),
    }
}

#[test]
fn cube_examples_reference_rows() {
    let tsv = read("derived/cube_examples_reference.tsv");
    let tables = CubeTables::embedded();
    let mut rows = 0;
    for line in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 10, "row {line}");
        let lines: Vec<&str> = f[4].split('|').collect();
        let q = CubeQuery { kind: kind_of(f[0]), slot: f[2], level: f[1].parse().unwrap(), grade: f[3], lines: &lines };
        let out = tables.expectation(&q);
        let what = format!("{} {} {} {:?}", f[1], f[2], f[3], lines);
        assert_eq!(out.engine(), f[5], "{what}");
        if f[6] == "Infinity" {
            assert!(matches!(out, CubeOutcome::Unavailable { .. }), "{what}: {out:?}");
        } else {
            let CubeOutcome::Priced { trials_raw, trials, cost_per_trial, cost, .. } = out else {
                panic!("{what}: expected a price, got {out:?}")
            };
            assert_close(trials_raw, f[6].parse().unwrap(), &what);
            assert_eq!(trials, f[7].parse::<u64>().unwrap(), "{what}");
            assert_eq!(cost_per_trial, f[8].parse::<u64>().unwrap(), "{what}");
            assert_eq!(cost, f[9].parse::<u64>().unwrap(), "{what}");
        }
        rows += 1;
    }
    assert_eq!(rows, 8, "every reference row checked");
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Every item of a V4 reference that carries the original's engine diagnostic.
fn check_v4_reference(character: &str) -> usize {
    let reference: Value = serde_json::from_str(&read(&format!("derived/v4_reference_{character}.json"))).unwrap();
    let equipment: Value = serde_json::from_str(&read(&format!("{character}_equip.json"))).unwrap();
    let tables = CubeTables::embedded();
    let mut checked = 0;
    for preset in reference["presets"].as_array().unwrap() {
        let n = preset["presetNo"].as_u64().unwrap();
        let fixture_items = equipment[format!("item_equipment_preset_{n}")].as_array().unwrap();
        let items = preset["items"].as_array().unwrap();
        assert_eq!(items.len(), fixture_items.len(), "{character} preset {n}");
        for (item, fx) in items.iter().zip(fixture_items) {
            assert_eq!(item["itemName"], fx["item_name"], "items line up");
            let slot = text(&fx["item_equipment_slot"]);
            let level = fx["item_base_option"]["base_equipment_level"].as_u64().unwrap() as u32;
            let what = format!("{character} preset {n} {} ({slot} {level})", text(&fx["item_name"]));

            if let Some(diag) = item.get("_engineBlack").and_then(Value::as_str) {
                let lines: Vec<&str> = (1..=3).map(|i| text(&fx[format!("potential_option_{i}")])).collect();
                let grade = text(&fx["potential_option_grade"]);
                let q = CubeQuery { kind: CubeKind::Black, slot, level, grade, lines: &lines };
                let out = tables.expectation(&q);
                let (engine, raw) = diag.split_once(" raw=").expect("diagnostic form");
                assert_eq!(out.engine(), engine, "{what}");
                let black = &item["blackCubeExpectation"];
                if raw == "Infinity" {
                    assert!(matches!(out, CubeOutcome::Unavailable { .. }), "{what}: {out:?}");
                } else {
                    let CubeOutcome::Priced { trials_raw, trials, cost, .. } = out else { panic!("{what}: expected a price, got {out:?}") };
                    assert_close(trials_raw, raw.parse().unwrap(), &what);
                    assert_eq!(Some(trials), black["expectedTrials"].as_u64(), "{what}");
                    assert_eq!(Some(cost), black["expectedCost"].as_u64(), "{what}");
                }
                checked += 1;
            }

            // Additional cubes: same engine choice as the original, never a price.
            if let Some(diag) = item.get("_engineAdditional").and_then(Value::as_str) {
                if diag != "-" {
                    let lines: Vec<&str> = (1..=3).map(|i| text(&fx[format!("additional_potential_option_{i}")])).collect();
                    let grade = text(&fx["additional_potential_option_grade"]);
                    let q = CubeQuery { kind: CubeKind::Additional, slot, level, grade, lines: &lines };
                    let out = tables.expectation(&q);
                    let (engine, _) = diag.split_once(" raw=").expect("diagnostic form");
                    assert_eq!(out.engine(), engine, "{what} (additional)");
                    assert_eq!(
                        out,
                        CubeOutcome::Unavailable { reason: "no additional-potential odds in the table".into(), engine: engine.into() }
                    );
                }
            }
        }
    }
    checked
}

#[test]
fn v4_reference_evan() {
    assert!(check_v4_reference("evan") >= 50);
}

#[test]
fn v4_reference_mechanic() {
    assert!(check_v4_reference("mechanic") >= 50);
}
