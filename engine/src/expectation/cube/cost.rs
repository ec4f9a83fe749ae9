//! Price of one cube use (`cube_cost_per_use_meso` in `lookup_tables.json`,
//! the original's `CubeCostPolicy`): keyed by the largest level key ≤ the item
//! level (the first key below that) and the item's current grade. RED is a
//! flat 1 — a count of cubes, not meso.

use serde_json::Value;

use super::table::{grade_index, GRADES_KOREAN};
use super::CubeKind;

/// Per kind: (level key, price per grade in table order), keys ascending.
#[derive(Clone, Debug)]
pub struct CubeCostTable {
    black: Vec<(u32, [u64; 4])>,
    red: Vec<(u32, [u64; 4])>,
    additional: Vec<(u32, [u64; 4])>,
}

impl CubeCostTable {
    /// Reads `cube_cost_per_use_meso` from the lookup-tables document.
    pub fn from_lookup_json(doc: &str) -> Result<CubeCostTable, String> {
        let root: Value = serde_json::from_str(doc).map_err(|e| format!("lookup_tables.json: {e}"))?;
        let section = root.get("cube_cost_per_use_meso").ok_or("lookup_tables.json has no cube_cost_per_use_meso")?;
        let kind = |name: &str| -> Result<Vec<(u32, [u64; 4])>, String> {
            let levels = section.get(name).and_then(Value::as_object).ok_or_else(|| format!("cube_cost_per_use_meso.{name} missing"))?;
            let mut out = Vec::with_capacity(levels.len());
            for (key, grades) in levels {
                let level: u32 = key.parse().map_err(|_| format!("{name}: bad level key {key:?}"))?;
                let mut prices = [0u64; 4];
                for (i, g) in GRADES_KOREAN.iter().enumerate() {
                    prices[i] = grades.get(*g).and_then(Value::as_u64).ok_or_else(|| format!("{name}.{key}: no price for {g}"))?;
                }
                out.push((level, prices));
            }
            if out.is_empty() {
                return Err(format!("cube_cost_per_use_meso.{name} is empty"));
            }
            out.sort_by_key(|&(l, _)| l);
            Ok(out)
        };
        Ok(CubeCostTable { black: kind("BLACK")?, red: kind("RED")?, additional: kind("ADDITIONAL")? })
    }

    /// Price of one use for an item of `level` at current `grade`; `None` for an unknown grade.
    pub fn cost_per_use(&self, kind: CubeKind, level: u32, grade: &str) -> Option<u64> {
        let g = grade_index(grade)?;
        let rows = match kind {
            CubeKind::Black => &self.black,
            CubeKind::Red => &self.red,
            CubeKind::Additional => &self.additional,
        };
        // Largest key ≤ level; below the first key, the first key.
        let row = rows.iter().rev().find(|(key, _)| *key <= level).unwrap_or(&rows[0]);
        Some(row.1[g])
    }
}
