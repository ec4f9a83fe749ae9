//! The exact-lines engine ("V1"): P(one cube use rolls these three lines, in
//! any order). Each distinct ordering of the lines is a case; a case's
//! probability is the product over line slots of that line's raw rate in its
//! own slot's group. Junk lines (no stat keyword of their unit, proc lines,
//! blanks) are not priced: factor 1, as in the original.
//!
//! Unlike the original at HEAD (which looked every line up in slot 0 and so
//! priced everything at 0), each line uses its own slot.

use super::table::{LineGroups, OptionId, ProbabilityTable};

/// How one line enters the product.
#[derive(Clone, Copy, Debug, PartialEq)]
enum LineKey {
    Unpriced,
    /// A priced line the table has never heard of: rate 0 everywhere.
    Unknown,
    Known(OptionId),
}

fn line_key(table: &ProbabilityTable, line: &str) -> LineKey {
    if line.trim().is_empty() {
        return LineKey::Unpriced;
    }
    match table.option_id(line) {
        Some(id) if table.option(id).priced => LineKey::Known(id),
        Some(_) => LineKey::Unpriced,
        None if super::stat::is_priced_line(line) => LineKey::Unknown,
        None => LineKey::Unpriced,
    }
}

const ORDERINGS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];

/// Sum over distinct orderings of the product of per-slot rates. May exceed 1
/// when most lines are junk (each ordering then counts ~1) — the original's
/// semantics, kept so results match the reference.
pub fn success_probability(table: &ProbabilityTable, groups: &LineGroups<'_>, lines: [&str; 3]) -> f64 {
    let keys = lines.map(|l| line_key(table, l));
    let rate = |slot: usize, key: LineKey| -> f64 {
        match key {
            LineKey::Unpriced => 1.0,
            LineKey::Unknown => 0.0,
            LineKey::Known(id) => groups.slots[slot].raw_rate(id).unwrap_or(0.0),
        }
    };
    let mut seen: [[&str; 3]; 6] = [[""; 3]; 6];
    let mut n_seen = 0usize;
    let mut total = 0.0f64;
    for order in ORDERINGS {
        let case = order.map(|i| lines[i]);
        if seen[..n_seen].contains(&case) {
            continue; // same texts in the same places: one case, not two
        }
        seen[n_seen] = case;
        n_seen += 1;
        total += (0..3).map(|slot| rate(slot, keys[order[slot]])).product::<f64>();
    }
    total
}
