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
use std::ops::Range;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

pub const EQUIP_FILES: [&str; 2] = ["evan_equip.json", "mechanic_equip.json"];
pub const BASIC_FILE: &str = "basic_character_info.json";

/// Names (normalised) that get a real fixture unchanged: `(name, equipment file index)`.
/// "아델" is the character of `basic_character_info.json`.
pub const EXACT_NAMES: [(&str, usize); 5] = [("evan", 0), ("에반", 0), ("mechanic", 1), ("메카닉", 1), ("아델", 0)];

const PRESET_KEYS: [&str; 3] = ["item_equipment_preset_1", "item_equipment_preset_2", "item_equipment_preset_3"];
const STAR_CHOICES: [u32; 9] = [12, 15, 17, 18, 19, 20, 21, 22, 22];

type Lines = (Value, Value, Value, Value); // grade, line 1, 2, 3

/// The list keys a variant changes, in plan order: the three presets, then
/// the currently worn list.
const LIST_KEYS: [&str; 4] = [PRESET_KEYS[0], PRESET_KEYS[1], PRESET_KEYS[2], "item_equipment"];

/// One potential line set seen in a fixture, with each value's JSON.
#[derive(Debug)]
struct LineSet {
    lines: Lines,
    json: [Vec<u8>; 4],
}

impl LineSet {
    fn new(lines: Lines) -> LineSet {
        let json = |v: &Value| serde_json::to_vec(v).expect("json value serialises");
        let json = [json(&lines.0), json(&lines.1), json(&lines.2), json(&lines.3)];
        LineSet { lines, json }
    }
}

/// What the plan needs of one fixture item, worked out once at load (the
/// per-request plan then allocates nothing per item).
#[derive(Debug, Default)]
struct ItemInfo {
    /// Index into `Fixtures::potentials` / `additionals` when the item has
    /// such lines and the pool for its (part, level) exists.
    potential_pool: Option<usize>,
    additional_pool: Option<usize>,
    /// Legal star choices when the item is starforced; draw only if non-empty.
    starforced: bool,
    star_choices: Vec<u32>,
    /// False when the item has no (part, level): the plan draws nothing for it.
    keyed: bool,
}

pub struct Fixtures {
    equipment: Vec<Value>,
    /// Per equipment fixture: its compact JSON with the places a variant
    /// changes marked, so a variant is written by copying byte runs.
    templates: Vec<Option<Template>>,
    /// Per equipment fixture, per [`LIST_KEYS`] list: what the plan needs of each item.
    items: Vec<[Vec<ItemInfo>; 4]>,
    basic: Value,
    /// Line set pools, one per (part, level) that has any.
    potentials: Vec<Vec<LineSet>>,
    additionals: Vec<Vec<LineSet>>,
}

/// The three fixtures compiled into the binary (`fixtures/maple/` of the
/// repository), so `maple serve` and `maple upstream-sim` read no file.
const EMBEDDED: [(&str, &[u8]); 3] = [
    (EQUIP_FILES[0], include_bytes!("../../../fixtures/maple/evan_equip.json")),
    (EQUIP_FILES[1], include_bytes!("../../../fixtures/maple/mechanic_equip.json")),
    (BASIC_FILE, include_bytes!("../../../fixtures/maple/basic_character_info.json")),
];

impl Fixtures {
    /// The fixtures of `dir` (an override), else the embedded ones.
    pub fn open(dir: Option<&Path>) -> anyhow::Result<Fixtures> {
        match dir {
            Some(dir) => Fixtures::load(dir),
            None => Fixtures::embedded(),
        }
    }

    /// The fixtures compiled into the binary.
    pub fn embedded() -> anyhow::Result<Fixtures> {
        Fixtures::build(|name| {
            let (_, bytes) = EMBEDDED.iter().find(|(n, _)| *n == name).with_context(|| format!("no embedded fixture {name}"))?;
            serde_json::from_slice(bytes).with_context(|| format!("parsing embedded fixture {name}"))
        })
    }

    /// `evan_equip.json`, `mechanic_equip.json` and `basic_character_info.json` of `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Fixtures> {
        Fixtures::build(|name| {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).with_context(|| format!("reading fixture {}", path.display()))?;
            serde_json::from_slice(&bytes).with_context(|| format!("parsing fixture {}", path.display()))
        })
    }

    fn build(read: impl Fn(&str) -> anyhow::Result<Value>) -> anyhow::Result<Fixtures> {
        let equipment: Vec<Value> = EQUIP_FILES.iter().map(|f| read(f)).collect::<anyhow::Result<_>>()?;
        let basic = read(BASIC_FILE)?;
        // (part, level) → pool index, in first-seen order.
        let mut pool_of: PoolsByItem = HashMap::new();
        let mut potentials: Vec<Vec<LineSet>> = Vec::new();
        let mut additionals: Vec<Vec<LineSet>> = Vec::new();
        for doc in &equipment {
            for item in all_items(doc) {
                let Some(key) = item_key(item) else { continue };
                let entry = pool_of.entry(key).or_default();
                for (prefix, slot, pools) in
                    [("potential_option", &mut entry.0, &mut potentials), ("additional_potential_option", &mut entry.1, &mut additionals)]
                {
                    if let Some(l) = lines(item, prefix) {
                        let index = *slot.get_or_insert_with(|| {
                            pools.push(Vec::new());
                            pools.len() - 1
                        });
                        pools[index].push(LineSet::new(l));
                    }
                }
            }
        }
        let items = equipment
            .iter()
            .map(|doc| {
                LIST_KEYS.map(|k| {
                    let list = doc.get(k).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                    list.iter().map(|item| item_info(item, &pool_of)).collect()
                })
            })
            .collect();
        let templates = equipment.iter().map(Template::build).collect();
        Ok(Fixtures { equipment, templates, items, basic, potentials, additionals })
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

    /// The same bytes as `serde_json::to_vec(&self.equipment(name))`, copied
    /// from the fixture's pre-serialised template with the variant's values
    /// put in its marked places: no JSON is serialised per request (the
    /// simulator stands in for Nexon, whose cost is not ours to measure).
    pub fn equipment_json(&self, name: &str) -> Vec<u8> {
        if let Some(&(_, idx)) = EXACT_NAMES.iter().find(|(n, _)| *n == name) {
            return match &self.templates[idx] {
                Some(t) => t.bytes.clone(),
                None => serde_json::to_vec(&self.equipment[idx]).expect("json value serialises"),
            };
        }
        let plan = self.plan(name);
        match &self.templates[plan.base] {
            Some(template) => template.write(&plan),
            // Not the shape the template assumes: the slow path.
            None => serde_json::to_vec(&self.equipment(name)).expect("json value serialises"),
        }
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
        for (dst, key) in LIST_KEYS.iter().enumerate() {
            // After the permutation, preset list `dst` holds fixture list `order[dst]`.
            let source = if dst < 3 { order[dst] } else { dst };
            if doc.get(LIST_KEYS[source]).and_then(Value::as_array).is_none() {
                continue;
            }
            let infos = &self.items[base][source];
            lists.push((*key, infos.iter().map(|info| self.item_overrides(info, &mut rng)).collect()));
        }
        Plan { base, order, preset_no, lists }
    }

    fn item_overrides(&self, info: &ItemInfo, rng: &mut SplitMix) -> ItemOverrides<'_> {
        let mut ov = ItemOverrides::default();
        if !info.keyed {
            return ov;
        }
        for (pool, pools, slot) in
            [(info.potential_pool, &self.potentials, &mut ov.potential), (info.additional_pool, &self.additionals, &mut ov.additional)]
        {
            if let Some(choices) = pool.map(|p| &pools[p]) {
                *slot = Some(&choices[(rng.next() % choices.len() as u64) as usize]);
            }
        }
        if info.starforced && !info.star_choices.is_empty() {
            let legal = &info.star_choices;
            ov.starforce = Some(legal[(rng.next() % legal.len() as u64) as usize]);
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

/// (part, level) → the indices of its potential and additional line pools.
type PoolsByItem = HashMap<(String, u64), (Option<usize>, Option<usize>)>;

/// What the plan draws for an item: pools only when the item has such lines
/// (`has_lines`), stars only when it is starforced, nothing without a
/// (part, level).
fn item_info(item: &Value, pool_of: &PoolsByItem) -> ItemInfo {
    let Some(key) = item_key(item) else { return ItemInfo::default() };
    let pools = pool_of.get(&key).copied().unwrap_or_default();
    let star: u32 = item["starforce"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
    let cap = star_cap(key.1);
    ItemInfo {
        potential_pool: pools.0.filter(|_| has_lines(item, "potential_option")),
        additional_pool: pools.1.filter(|_| has_lines(item, "additional_potential_option")),
        starforced: star > 0,
        star_choices: STAR_CHOICES.iter().copied().filter(|&s| s <= cap).collect(),
        keyed: true,
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
    potential: Option<&'f LineSet>,
    additional: Option<&'f LineSet>,
    starforce: Option<u32>,
}

/// A field of an item that a variant may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `potential_option_{grade,1,2,3}`: index 0 is the grade.
    Potential(usize),
    /// `additional_potential_option_{grade,1,2,3}`.
    Additional(usize),
    Starforce,
}

impl Field {
    fn of(key: &str) -> Option<Field> {
        let line = |rest: &str| ["_grade", "_1", "_2", "_3"].iter().position(|s| *s == rest);
        if key == "starforce" {
            Some(Field::Starforce)
        } else if let Some(rest) = key.strip_prefix("additional_potential_option") {
            line(rest).map(Field::Additional)
        } else {
            key.strip_prefix("potential_option").and_then(line).map(Field::Potential)
        }
    }
}

impl ItemOverrides<'_> {
    fn apply(&self, item: &mut Value) {
        for (prefix, lines) in [("potential_option", self.potential), ("additional_potential_option", self.additional)] {
            if let Some(LineSet { lines: (g, a, b, c), .. }) = lines {
                item[format!("{prefix}_grade")] = g.clone();
                item[format!("{prefix}_1")] = a.clone();
                item[format!("{prefix}_2")] = b.clone();
                item[format!("{prefix}_3")] = c.clone();
            }
        }
        if let Some(s) = self.starforce {
            item["starforce"] = Value::from(s.to_string());
        }
    }

    /// Writes this variant's JSON for `field` if it changes it (only fields
    /// that exist in the item are marked, as [`ItemOverrides::apply`] only
    /// replaces fields that `lines` and the starforce parse found).
    fn write(&self, field: Field, out: &mut Vec<u8>) -> bool {
        match (field, self.potential, self.additional, self.starforce) {
            (Field::Potential(i), Some(set), _, _) | (Field::Additional(i), _, Some(set), _) => {
                out.extend_from_slice(&set.json[i]);
                true
            }
            (Field::Starforce, _, _, Some(star)) => {
                use std::io::Write;
                write!(out, "\"{star}\"").expect("writing to a Vec cannot fail");
                true
            }
            _ => false,
        }
    }
}

/// A fixture's compact JSON (`serde_json::to_vec` of it) with the byte
/// ranges a variant changes: the `preset_no` value, each list's value, and
/// within a list each replaceable field value of each item.
struct Template {
    bytes: Vec<u8>,
    preset_no: Range<usize>,
    /// By [`LIST_KEYS`] index; `None` when the fixture has no such array.
    lists: [Option<ListTemplate>; 4],
}

struct ListTemplate {
    range: Range<usize>,
    /// (value range, item index, field), in byte order.
    holes: Vec<(Range<usize>, usize, Field)>,
}

impl Template {
    /// `None` unless the fixture is an object with `preset_no` and the three
    /// preset lists (the shape the writer assumes).
    fn build(doc: &Value) -> Option<Template> {
        let map = doc.as_object()?;
        if !map.contains_key("preset_no") || !PRESET_KEYS.iter().all(|k| map.get(*k).is_some_and(Value::is_array)) {
            return None;
        }
        let mut out = Vec::with_capacity(512 * 1024);
        let mut preset_no = 0..0;
        let mut lists: [Option<ListTemplate>; 4] = Default::default();
        out.push(b'{');
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json(&mut out, k);
            out.push(b':');
            let start = out.len();
            match (LIST_KEYS.iter().position(|l| l == k), v.as_array()) {
                (Some(list), Some(items)) => {
                    let mut holes = Vec::new();
                    out.push(b'[');
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            out.push(b',');
                        }
                        let Some(fields) = item.as_object() else {
                            json(&mut out, item);
                            continue;
                        };
                        out.push(b'{');
                        for (j, (fk, fv)) in fields.iter().enumerate() {
                            if j > 0 {
                                out.push(b',');
                            }
                            json(&mut out, fk);
                            out.push(b':');
                            let at = out.len();
                            json(&mut out, fv);
                            if let Some(field) = Field::of(fk) {
                                holes.push((at..out.len(), index, field));
                            }
                        }
                        out.push(b'}');
                    }
                    out.push(b']');
                    lists[list] = Some(ListTemplate { range: start..out.len(), holes });
                }
                _ => {
                    json(&mut out, v);
                    if k == "preset_no" {
                        preset_no = start..out.len();
                    }
                }
            }
        }
        out.push(b'}');
        Some(Template { bytes: out, preset_no, lists })
    }

    /// The variant's JSON: the fixture's bytes, with `preset_no`, the
    /// permuted preset lists and every overridden field put in.
    fn write(&self, plan: &Plan<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 4096);
        // The top-level places to fill, in byte order.
        let mut places: Vec<(Range<usize>, Option<usize>)> = vec![(self.preset_no.clone(), None)];
        places.extend(self.lists.iter().enumerate().filter_map(|(k, l)| Some((l.as_ref()?.range.clone(), Some(k)))));
        places.sort_by_key(|(r, _)| r.start);
        let mut copied = 0;
        for (range, list) in places {
            out.extend_from_slice(&self.bytes[copied..range.start]);
            copied = range.end;
            let Some(dst) = list else {
                out.extend_from_slice(plan.preset_no.to_string().as_bytes());
                continue;
            };
            let source = if dst < 3 { plan.order[dst] } else { dst };
            let overrides = plan.lists.iter().find(|(key, _)| *key == LIST_KEYS[dst]).map(|(_, o)| o.as_slice());
            match (&self.lists[source], overrides) {
                (Some(src), Some(overrides)) => self.write_list(src, overrides, &mut out),
                (Some(src), None) => out.extend_from_slice(&self.bytes[src.range.clone()]),
                // Not reached: `build` checked that every preset key is a list.
                (None, _) => out.extend_from_slice(&self.bytes[range]),
            }
        }
        out.extend_from_slice(&self.bytes[copied..]);
        out
    }

    fn write_list(&self, list: &ListTemplate, overrides: &[ItemOverrides<'_>], out: &mut Vec<u8>) {
        let mut copied = list.range.start;
        for (range, item, field) in &list.holes {
            let Some(ov) = overrides.get(*item) else { continue };
            out.extend_from_slice(&self.bytes[copied..range.start]);
            if !ov.write(*field, out) {
                out.extend_from_slice(&self.bytes[range.clone()]);
            }
            copied = range.end;
        }
        out.extend_from_slice(&self.bytes[copied..list.range.end]);
    }
}

/// Appends the compact JSON of a key or value.
fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("json value serialises");
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
    let bytes: Option<Vec<u8>> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
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
    use crate::sim::test_dir;

    fn fixtures() -> Fixtures {
        Fixtures::load(&test_dir()).unwrap()
    }

    /// The embedded fixtures are the repository's files, parsed the same way.
    #[test]
    fn embedded_fixtures_are_the_repository_files() {
        let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple");
        for (name, bytes) in EMBEDDED {
            assert_eq!(std::fs::read(repo.join(name)).unwrap(), bytes, "{name}");
        }
        let (embedded, loaded) = (Fixtures::open(None).unwrap(), Fixtures::load(&repo).unwrap());
        assert_eq!(embedded.equipment, loaded.equipment);
        assert_eq!(embedded.basic, loaded.basic);
        for name in ["evan", "아델", "someone-else"] {
            assert_eq!(embedded.equipment_json(name), loaded.equipment_json(name), "{name}");
        }
    }

    #[test]
    fn a_dir_without_the_files_is_an_error_naming_the_file() {
        let missing = std::env::temp_dir().join(format!("maple-no-fixtures-{}", std::process::id()));
        let err = format!("{:#}", Fixtures::open(Some(&missing)).err().expect("no fixtures there"));
        assert!(err.contains("evan_equip.json"), "{err}");
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
                let seen = f.potentials.iter().flatten().any(|set| set.lines == l);
                assert!(seen, "potential lines for {key:?} exist in a fixture");
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
