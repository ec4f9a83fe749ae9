//! Input that is not what it claims, through the real binary: `maple calc`
//! on documents without equipment lists, and a node whose upstream answers
//! 200 with unusable bodies (the simulator's `malformed…` / `hollow…` names).

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::http::get;
use common::maple::{DataDir, Launch};
use common::{metric, Resp};

fn fixture(name: &str) -> PathBuf {
    let path = common::fixture_dir().join(name);
    assert!(path.is_file(), "fixture {} not found", path.display());
    path
}

fn calc(file: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_maple")).arg("calc").arg(file).output().expect("run maple calc");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn calc_refuses_documents_without_equipment_lists() {
    let dir = DataDir::new("calc-input");
    let empty_object = dir.path().join("empty.json");
    std::fs::write(&empty_object, "{}").unwrap();
    let empty_array = dir.path().join("array.json");
    std::fs::write(&empty_array, "[]").unwrap();
    for (file, says) in [
        (empty_object, "item_equipment_preset_1"),
        (empty_array, "array"),
        (fixture("basic_character_info.json"), "item_equipment_preset_1"),
    ] {
        let (code, stdout, stderr) = calc(&file);
        assert_eq!(code, 1, "{}: exit status; stdout {stdout:?}", file.display());
        assert!(stdout.is_empty(), "{}: no answer printed: {stdout:?}", file.display());
        assert!(stderr.contains("not a character item-equipment document") && stderr.contains(says), "{}: {stderr}", file.display());
    }
    let (code, stdout, stderr) = calc(&fixture("evan_equip.json"));
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["totalExpectedCost"].as_f64(), Some(3_325_625_981_940.0));
}

fn assert_bad(r: &Resp, code: &str, says: &str, what: &str) {
    let head = String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned();
    assert_eq!(r.status, 502, "{what}: {head}…");
    assert_ne!(r.header("x-cache"), Some("HIT"), "{what}");
    let v = r.json();
    assert_eq!(v["status"], 502, "{what}");
    assert_eq!(v["code"], code, "{what}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains(says)), "{what}: {v}");
}

/// A 200 upstream body that is not JSON, or JSON without what the node
/// needs, is a 502 `UPSTREAM_BAD_EQUIPMENT` / `UPSTREAM_BAD_BASIC` on every
/// route that reads it, is never cached (a second request asks upstream
/// again and fails again), and good characters beside it are unaffected.
#[test]
fn unusable_upstream_bodies_are_502_and_never_cached() {
    let dir = DataDir::new("bad-upstream");
    let node = Launch::serve(dir.path()).args(&["--cores", "2"]).start();
    let a = node.addr;
    let upstream = |endpoint: &str| metric(a, &format!("maple_upstream_calls_total{{endpoint=\"{endpoint}\""));

    for (name, eq_says, basic_says) in
        [("malformed-one", "EOF while parsing", "not JSON"), ("hollow-one", "no equipment lists", "character_name")]
    {
        for path in [format!("/api/v2/characters/{name}/equipment"), format!("/api/v4/characters/{name}/expectation")] {
            let before = upstream("equipment");
            let first = get(a, &path);
            assert_bad(&first, "UPSTREAM_BAD_EQUIPMENT", eq_says, &path);
            let second = get(a, &path);
            assert_bad(&second, "UPSTREAM_BAD_EQUIPMENT", eq_says, &format!("{path} again"));
            assert_eq!(upstream("equipment"), before + 2.0, "{path}: each request fetched (nothing cached)");
        }
        let preset = get(a, &format!("/api/v4/characters/{name}/expectation/preset/1"));
        assert_bad(&preset, "UPSTREAM_BAD_EQUIPMENT", eq_says, "preset");

        let path = format!("/api/v1/characters/{name}");
        let before = upstream("basic");
        assert_bad(&get(a, &path), "UPSTREAM_BAD_BASIC", basic_says, &path);
        assert_bad(&get(a, &path), "UPSTREAM_BAD_BASIC", basic_says, &format!("{path} again"));
        assert_eq!(upstream("basic"), before + 2.0, "{path}: each request fetched");
    }

    // A good character is served and cached as before.
    let eq = get(a, "/api/v2/characters/evan/equipment");
    assert_eq!(eq.status, 200);
    assert_eq!(get(a, "/api/v2/characters/evan/equipment").header("x-cache"), Some("HIT"));
    let basic = get(a, "/api/v1/characters/evan");
    assert_eq!(basic.status, 200);
    assert_eq!(get(a, "/api/v1/characters/evan").header("x-cache"), Some("HIT"));
    assert_eq!(get(a, "/api/v4/characters/evan/expectation").status, 200);
}
