//! The DP engine: P(sum of the target stat over three independently drawn
//! lines ≥ X), each line slot drawn from its own group of the table,
//! normalised to mass 1 (the original's LENIENT table-mass policy).

use super::infer::DpTarget;
use super::pmf::{self, PmfError, SparsePmf, MASS_TOLERANCE};
use super::table::{LineGroups, ProbabilityTable};

#[derive(Clone, Debug, PartialEq)]
pub enum DpError {
    /// A line slot has no rows for this item (the table is incomplete).
    EmptySlot(u8),
    /// An option text of the group matches no keyword but looks like a main stat.
    Drift(String),
    Pmf(PmfError),
}

/// The distribution of one line's value toward `target`.
pub fn slot_pmf(table: &ProbabilityTable, groups: &LineGroups<'_>, line_slot: u8, target: DpTarget) -> Result<SparsePmf, DpError> {
    let group = groups.slots[line_slot as usize - 1];
    if group.is_empty() || group.raw_mass <= 0.0 {
        return Err(DpError::EmptySlot(line_slot));
    }
    // A mass already 1 (within tolerance) is used as is, like the original.
    let norm = if (group.raw_mass - 1.0).abs() <= MASS_TOLERANCE { 1.0 } else { group.raw_mass };
    let mut points = Vec::with_capacity(group.entries.len());
    for &(id, rate) in &group.entries {
        let info = table.option(id);
        if info.drift {
            return Err(DpError::Drift(info.text.to_string()));
        }
        points.push((info.value_toward[target.stat as usize], rate / norm));
    }
    let pmf = SparsePmf::from_pairs(points);
    pmf.check_invariants().map_err(DpError::Pmf)?;
    Ok(pmf)
}

/// P(target reached in one cube use).
pub fn success_probability(table: &ProbabilityTable, groups: &LineGroups<'_>, target: DpTarget) -> Result<f64, DpError> {
    let slots = [slot_pmf(table, groups, 1, target)?, slot_pmf(table, groups, 2, target)?, slot_pmf(table, groups, 3, target)?];
    // Unreachable target: answer without allocating target-sized arrays.
    let reachable: i64 = slots.iter().map(|s| i64::from(s.max_value().max(0))).sum();
    if reachable < i64::from(target.min_total) && slots.iter().all(|s| s.value_at(0).is_none_or(|v| v >= 0)) {
        return Ok(0.0);
    }
    let dense = pmf::convolve_all(&slots, target.min_total, true).map_err(DpError::Pmf)?;
    Ok(pmf::tail_probability(&dense, target.min_total, true))
}
