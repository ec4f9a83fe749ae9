//! The simulator's data: the real Nexon fixtures, and deterministic variants
//! of them for any other character name.
//!
//! A variant is seeded by a hash of the normalised name, so one name always
//! gets the same equipment, and two names almost always differ. It starts
//! from one of the two real equipment fixtures and changes only values that
//! exist in the fixtures (or are legal for the item's level):
//! - which equipment list sits in which preset, and the active `preset_no`;
//! - each item's potential and additional-potential grade + lines, taken
//!   from an item of the same part and level in either fixture;
//! - each starforced item's stars, among 12/15/17..22 capped by its level.
//!
//! So a variant has the same size and shape as a real response.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

pub const EQUIP_FILES: [&str; 2] = ["evan_equip.json", "mechanic_equip.json"];
pub const BASIC_FILE: &str = "basic_character_info.json";

/// Names (normalised) that get a real fixture unchanged: `(name, equipment file index)`.
/// "아델" is the character of `basic_character_info.json`.
pub const EXACT_NAMES: [(&str, usize); 5] =
    [("evan", 0), ("에반", 0), ("mechanic", 1), ("메카닉", 1), ("아델", 0)];

const PRESET_KEYS: [&str; 3] = ["item_equipment_preset_1", "item_equipment_preset_2", "item_equipment_preset_3"];
const STAR_CHOICES: [u32; 9] = [12, 15, 17, 18, 19, 20, 21, 22, 22];

type Lines = (Value, Value, Value, Value); // grade, line 1, 2, 3

pub struct Fixtures {
    equipment: Vec<Value>,
    /// Serialised length of each equipment fixture (output buffer size).
    equipment_len: Vec<usize>,
    basic: Value,
    /// (part, level) → potential line sets seen on such items.
    potentials: HashMap<(String, u64), Vec<Lines>>,
    additionals: HashMap<(String, u64), Vec<Lines>>,
}

/// The default fixture directory: `$MAPLE_SHARED_DATA`, else the first of
/// `../shared/data/maple` relative to the cwd and to the binary's ancestors.
pub fn default_data_dir() -> PathBuf {
    if let Ok(p) = std::env::var("MAPLE_SHARED_DATA") {
        return PathBuf::from(p);
    }
    let rel = Path::new("../shared/data/maple");
    let mut candidates = vec![rel.to_path_buf(), PathBuf::from("shared/data/maple")];
    if let Ok(exe) = std::env::current_exe() {
        for anc in exe.ancestors().skip(1) {
            candidates.push(anc.join(rel));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.join(BASIC_FILE).is_file())
        .unwrap_or_else(|| rel.to_path_buf())
}

impl Fixtures {
    pub fn load(dir: &Path) -> anyhow::Result<Fixtures> {
        let read = |name: &str| -> anyhow::Result<Value> {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).with_context(|| format!("reading fixture {}", path.display()))?;
            serde_json::from_slice(&bytes).with_context(|| format!("parsing fixture {}", path.display()))
        };
        let equipment: Vec<Value> = EQUIP_FILES.iter().map(|f| read(f)).collect::<anyhow::Result<_>>()?;
        let basic = read(BASIC_FILE)?;
        let mut potentials: HashMap<_, Vec<Lines>> = HashMap::new();
        let mut additionals: HashMap<_, Vec<Lines>> = HashMap::new();
        for doc in &equipment {
            for item in all_items(doc) {
                let Some(key) = item_key(item) else { continue };
                if let Some(l) = lines(item, "potential_option") {
                    potentials.entry(key.clone()).or_default().push(l);
                }
                if let Some(l) = lines(item, "additional_potential_option") {
                    additionals.entry(key).or_default().push(l);
                }
            }
        }
        let equipment_len = equipment.iter().map(|d| serde_json::to_vec(d).map_or(0, |b| b.len())).collect();
        Ok(Fixtures { equipment, equipment_len, basic, potentials, additionals })
    }

    /// Equipment JSON for a normalised name.
    pub fn equipment(&self, name: &str) -> Value {
        if let Some(&(_, idx)) = EXACT_NAMES.iter().find(|(n, _)| *n == name) {
            return self.equipment[idx].clone();
        }
        let plan = self.plan(name);
        let mut doc = self.equipment[plan.base].clone();
        let lists: Vec<Value> = PRESET_KEYS.iter().map(|k| doc[*k].take()).collect();
        for (dst, src) in plan.order.iter().enumerate() {
            doc[PRESET_KEYS[dst]] = lists[*src].clone();
        }
        doc["preset_no"] = Value::from(plan.preset_no);
        for (key, overrides) in &plan.lists {
            let Some(items) = doc.get_mut(*key).and_then(Value::as_array_mut) else { continue };
            for (item, ov) in items.iter_mut().zip(overrides) {
                ov.apply(item);
            }
        }
        doc
    }

    /// The same bytes as `serde_json::to_vec(&self.equipment(name))`, written
    /// straight from the fixture with the variant's changes on the fly: no
    /// clone of the ~350 KB value tree per request (the simulator's main cost).
    pub fn equipment_json(&self, name: &str) -> Vec<u8> {
        if let Some(&(_, idx)) = EXACT_NAMES.iter().find(|(n, _)| *n == name) {
            return serde_json::to_vec(&self.equipment[idx]).expect("json value serialises");
        }
        let plan = self.plan(name);
        let base = &self.equipment[plan.base];
        let streamable = |m: &&serde_json::Map<String, Value>| {
            m.contains_key("preset_no") && PRESET_KEYS.iter().all(|k| m.contains_key(*k))
        };
        let Some(map) = base.as_object().filter(streamable) else {
            // Not the shape the streaming writer assumes: the slow path.
            return serde_json::to_vec(&self.equipment(name)).expect("json value serialises");
        };
        let mut out = Vec::with_capacity(self.equipment_len[plan.base] + 1024);
        serde_json::to_writer(&mut out, &VariantDoc { map, plan: &plan }).expect("json value serialises");
        out
    }

    /// The equipment fixture a name's equipment starts from (the plan's first draw).
    fn base_index(&self, name: &str) -> usize {
        if let Some(&(_, idx)) = EXACT_NAMES.iter().find(|(n, _)| *n == name) {
            return idx;
        }
        (SplitMix::new(name_seed(name)).next() % self.equipment.len() as u64) as usize
    }

    /// Every random choice of a name's variant, drawn in a fixed order.
    fn plan(&self, name: &str) -> Plan<'_> {
        let mut rng = SplitMix::new(name_seed(name));
        let base = (rng.next() % self.equipment.len() as u64) as usize; // = base_index(name)
        let doc = &self.equipment[base];
        // Permute the three preset lists (Fisher–Yates on indices).
        let mut order = [0usize, 1, 2];
        for i in (1..3).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let preset_no = 1 + rng.next() % 3;
        let mut lists = Vec::with_capacity(4);
        for (dst, key) in PRESET_KEYS.iter().chain(["item_equipment"].iter()).enumerate() {
            // After the permutation, preset list `dst` holds fixture list `order[dst]`.
            let source = if dst < 3 { PRESET_KEYS[order[dst]] } else { *key };
            let Some(items) = doc.get(source).and_then(Value::as_array) else { continue };
            lists.push((*key, items.iter().map(|item| self.item_overrides(item, &mut rng)).collect()));
        }
        Plan { base, order, preset_no, lists }
    }

    fn item_overrides(&self, item: &Value, rng: &mut SplitMix) -> ItemOverrides<'_> {
        let mut ov = ItemOverrides::default();
        let Some(key) = item_key(item) else { return ov };
        for (prefix, pool, slot) in [
            ("potential_option", &self.potentials, &mut ov.potential),
            ("additional_potential_option", &self.additionals, &mut ov.additional),
        ] {
            if !has_lines(item, prefix) {
                continue;
            }
            if let Some(choices) = pool.get(&key) {
                *slot = Some(&choices[(rng.next() % choices.len() as u64) as usize]);
            }
        }
        let star: u32 = item["starforce"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        if star > 0 {
            let cap = star_cap(key.1);
            let legal: Vec<u32> = STAR_CHOICES.iter().copied().filter(|&s| s <= cap).collect();
            if !legal.is_empty() {
                ov.starforce = Some(legal[(rng.next() % legal.len() as u64) as usize].to_string());
            }
        }
        ov
    }

    /// Basic character info for a normalised name (`display` is the name as asked).
    pub fn basic(&self, name: &str, display: &str) -> Value {
        let mut doc = self.basic.clone();
        if name == "아델" {
            return doc;
        }
        let mut rng = SplitMix::new(name_seed(name) ^ 0x5bd1_e995);
        // Class and gender are the variant's base fixture's (not varied).
        let eq = &self.equipment[self.base_index(name)];
        doc["character_name"] = Value::from(display);
        doc["character_class"] = eq["character_class"].clone();
        doc["character_gender"] = eq["character_gender"].clone();
        doc["character_level"] = Value::from(260 + rng.next() % 40);
        doc["character_exp"] = Value::from(rng.next() % 1_000_000_000_000_000);
        doc
    }
}

/// The random choices of one variant.
struct Plan<'f> {
    base: usize,
    order: [usize; 3],
    preset_no: u64,
    /// (list key in the variant, one entry per item of that list).
    lists: Vec<(&'static str, Vec<ItemOverrides<'f>>)>,
}

/// What a variant changes in one item (borrowed from the fixture pools).
#[derive(Default)]
struct ItemOverrides<'f> {
    potential: Option<&'f Lines>,
    additional: Option<&'f Lines>,
    starforce: Option<String>,
}

impl ItemOverrides<'_> {
    fn apply(&self, item: &mut Value) {
        for (prefix, lines) in [("potential_option", self.potential), ("additional_potential_option", self.additional)] {
            if let Some((g, a, b, c)) = lines {
                item[format!("{prefix}_grade")] = g.clone();
                item[format!("{prefix}_1")] = a.clone();
                item[format!("{prefix}_2")] = b.clone();
                item[format!("{prefix}_3")] = c.clone();
            }
        }
        if let Some(s) = &self.starforce {
            item["starforce"] = Value::from(s.as_str());
        }
    }

    /// The replacement for `field` of the item, if this variant changes it.
    /// Only fields that exist in the item are replaced (`lines` and the
    /// starforce parse both require them), as [`ItemOverrides::apply`] does.
    fn field(&self, field: &str) -> Option<Replacement<'_>> {
        for (prefix, lines) in [("potential_option", self.potential), ("additional_potential_option", self.additional)] {
            let Some((g, a, b, c)) = lines else { continue };
            let Some(rest) = field.strip_prefix(prefix) else { continue };
            let v = match rest {
                "_grade" => g,
                "_1" => a,
                "_2" => b,
                "_3" => c,
                _ => continue,
            };
            return Some(Replacement::Value(v));
        }
        match (field, &self.starforce) {
            ("starforce", Some(s)) => Some(Replacement::Str(s)),
            _ => None,
        }
    }
}

enum Replacement<'a> {
    Value(&'a Value),
    Str(&'a str),
}

struct VariantDoc<'a, 'f> {
    map: &'a serde_json::Map<String, Value>,
    plan: &'a Plan<'f>,
}

impl serde::Serialize for VariantDoc<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in self.map {
            if k == "preset_no" {
                m.serialize_entry(k, &self.plan.preset_no)?;
                continue;
            }
            let source = match PRESET_KEYS.iter().position(|p| p == k) {
                Some(dst) => &self.map[PRESET_KEYS[self.plan.order[dst]]],
                None => v,
            };
            match self.plan.lists.iter().find(|(key, _)| key == k) {
                Some((_, overrides)) => match source.as_array() {
                    Some(items) => m.serialize_entry(k, &VariantList { items, overrides })?,
                    None => m.serialize_entry(k, source)?,
                },
                None => m.serialize_entry(k, source)?,
            }
        }
        m.end()
    }
}

struct VariantList<'a, 'f> {
    items: &'a [Value],
    overrides: &'a [ItemOverrides<'f>],
}

impl serde::Serialize for VariantList<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        debug_assert_eq!(self.items.len(), self.overrides.len(), "one override set per item");
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for (item, ov) in self.items.iter().zip(self.overrides) {
            match item.as_object() {
                Some(map) => seq.serialize_element(&VariantItem { map, ov })?,
                None => seq.serialize_element(item)?,
            }
        }
        seq.end()
    }
}

struct VariantItem<'a, 'f> {
    map: &'a serde_json::Map<String, Value>,
    ov: &'a ItemOverrides<'f>,
}

impl serde::Serialize for VariantItem<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in self.map {
            match self.ov.field(k) {
                Some(Replacement::Value(r)) => m.serialize_entry(k, r)?,
                Some(Replacement::Str(r)) => m.serialize_entry(k, r)?,
                None => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

fn all_items(doc: &Value) -> impl Iterator<Item = &Value> {
    ["item_equipment"].into_iter().chain(PRESET_KEYS).filter_map(|k| doc.get(k)?.as_array()).flatten()
}

fn item_key(item: &Value) -> Option<(String, u64)> {
    let part = item.get("item_equipment_part")?.as_str()?.to_owned();
    let level = item.get("item_base_option")?.get("base_equipment_level")?.as_u64()?;
    Some((part, level))
}

/// `lines(item, prefix).is_some()` without cloning the four values.
fn has_lines(item: &Value, prefix: &str) -> bool {
    let field = |suffix: &str| item.get(format!("{prefix}{suffix}"));
    field("_grade").is_some_and(|g| !g.is_null()) && ["_1", "_2", "_3"].iter().all(|s| field(s).is_some())
}

fn lines(item: &Value, prefix: &str) -> Option<Lines> {
    let grade = item.get(format!("{prefix}_grade"))?;
    if grade.is_null() {
        return None;
    }
    Some((
        grade.clone(),
        item.get(format!("{prefix}_1"))?.clone(),
        item.get(format!("{prefix}_2"))?.clone(),
        item.get(format!("{prefix}_3"))?.clone(),
    ))
}

/// Highest star an item of this level can hold (classic table, capped at 25).
fn star_cap(level: u64) -> u32 {
    match level {
        0..=94 => 5,
        95..=107 => 8,
        108..=117 => 10,
        118..=127 => 15,
        128..=137 => 20,
        _ => 25,
    }
}

/// The ocid the simulator hands out: stateless, so any core (or process)
/// maps it back to the name — `sim-` + hex of the normalised name's UTF-8.
pub fn ocid_for(name: &str) -> String {
    let mut s = String::with_capacity(4 + name.len() * 2);
    s.push_str("sim-");
    for b in name.as_bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

pub fn name_for_ocid(ocid: &str) -> Option<String> {
    let hex = ocid.strip_prefix("sim-")?;
    if hex.len() % 2 != 0 || hex.len() > 256 {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}

fn name_seed(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64: tiny, deterministic, good enough to pick among fixture values.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Fixtures {
        Fixtures::load(&default_data_dir()).expect("fixtures in ../shared/data/maple or $MAPLE_SHARED_DATA")
    }

    #[test]
    fn exact_names_get_the_real_fixture() {
        let f = fixtures();
        assert_eq!(f.equipment("evan"), f.equipment[0]);
        assert_eq!(f.equipment("메카닉"), f.equipment[1]);
        assert_eq!(f.basic("아델", "아델")["character_name"], "아델");
    }

    #[test]
    fn variants_are_deterministic_same_shape_and_differ_by_name() {
        let f = fixtures();
        let a1 = f.equipment("강은호");
        let a2 = f.equipment("강은호");
        let b = f.equipment("진격캐넌");
        assert_eq!(a1, a2, "same name, same equipment");
        assert_ne!(a1, b, "different names, different equipment");
        for doc in [&a1, &b] {
            let base = if doc["character_class"] == f.equipment[0]["character_class"] { &f.equipment[0] } else { &f.equipment[1] };
            let len = |d: &Value| serde_json::to_vec(d).unwrap().len() as f64;
            let ratio = len(doc) / len(base);
            assert!((0.95..1.05).contains(&ratio), "variant size ratio {ratio}");
            for k in PRESET_KEYS {
                assert!(doc[k].as_array().is_some_and(|a| !a.is_empty()));
            }
            let p = doc["preset_no"].as_u64().unwrap();
            assert!((1..=3).contains(&p));
        }
    }

    /// The streaming writer is byte-for-byte the serialised variant, and
    /// basic info keeps the variant's class.
    #[test]
    fn streamed_variant_equals_the_serialised_value() {
        let f = fixtures();
        for name in ["강은호", "진격캐넌", "someone-else", "evan", "메카닉", "a", "bdbf1z"] {
            let want = serde_json::to_vec(&f.equipment(name)).unwrap();
            assert_eq!(f.equipment_json(name), want, "variant of {name}");
            let basic = f.basic(name, name);
            assert_eq!(basic["character_class"], f.equipment(name)["character_class"]);
        }
    }

    #[test]
    fn variant_values_come_from_the_fixtures() {
        let f = fixtures();
        let doc = f.equipment("someone-else");
        for item in all_items(&doc) {
            let key = item_key(item).unwrap();
            if let Some(l) = lines(item, "potential_option") {
                assert!(f.potentials[&key].contains(&l), "potential lines for {key:?} exist in a fixture");
            }
            let star: u32 = item["starforce"].as_str().unwrap().parse().unwrap();
            assert!(star <= star_cap(key.1));
        }
    }

    #[test]
    fn ocid_round_trips_and_rejects_garbage() {
        for n in ["아델", "evan", "진격캐넌"] {
            assert_eq!(name_for_ocid(&ocid_for(n)).as_deref(), Some(n));
        }
        assert_eq!(name_for_ocid("sim-zz"), None);
        assert_eq!(name_for_ocid("abc"), None);
        assert_eq!(name_for_ocid("sim-ff"), None); // not UTF-8
    }
}
