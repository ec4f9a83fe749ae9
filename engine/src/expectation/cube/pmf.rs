//! Probability mass functions over integer stat totals, their convolution, and
//! the tail probability / expected trials derived from them.
//!
//! Model (the original's `ProbabilityConvolver`): each of the three lines is
//! drawn independently from its slot's table; the same option may appear on
//! several lines. A line's value is what it adds toward the target stat.

use std::fmt;

/// Mass must be 1 within this after normalisation / convolution.
pub const MASS_TOLERANCE: f64 = 1e-12;
/// A probability may exceed 1 by this much (rounding) before it is an error.
pub const EXCEED_ONE_EPSILON: f64 = 1e-12;
/// Dense arrays longer than this are refused (bounded memory per query).
pub const MAX_DENSE_LEN: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
pub enum PmfError {
    /// A line value below zero: totals would walk off the array's start.
    NegativeValue(i32),
    /// The dense array would be longer than [`MAX_DENSE_LEN`].
    TooLarge(u64),
    /// Post-condition failed (mass not 1, NaN, negative or >1 probability).
    Invariant(String),
}

impl fmt::Display for PmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PmfError::NegativeValue(v) => write!(f, "negative line value {v}"),
            PmfError::TooLarge(n) => write!(f, "distribution of {n} buckets is too large"),
            PmfError::Invariant(s) => write!(f, "probability invariant violated: {s}"),
        }
    }
}

impl std::error::Error for PmfError {}

/// Kahan (compensated) sum: keeps 1e-12 mass checks from failing on rounding.
pub fn kahan_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sum = 0.0f64;
    let mut c = 0.0f64;
    for v in values {
        let y = v - c;
        let t = sum + y;
        c = (t - sum) - y;
        sum = t;
    }
    sum
}

/// A few (value, probability) points, sorted by value, values distinct.
#[derive(Clone, Debug, PartialEq)]
pub struct SparsePmf {
    values: Vec<i32>,
    probs: Vec<f64>,
}

impl SparsePmf {
    /// Builds from points; equal values are merged (probabilities added).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (i32, f64)>) -> SparsePmf {
        let mut points: Vec<(i32, f64)> = pairs.into_iter().collect();
        points.sort_by_key(|&(v, _)| v);
        let mut values: Vec<i32> = Vec::with_capacity(points.len());
        let mut probs: Vec<f64> = Vec::with_capacity(points.len());
        for (v, p) in points {
            match values.last() {
                Some(&last) if last == v => *probs.last_mut().expect("parallel vecs") += p,
                _ => {
                    values.push(v);
                    probs.push(p);
                }
            }
        }
        debug_assert_eq!(values.len(), probs.len());
        SparsePmf { values, probs }
    }

    pub fn size(&self) -> usize {
        self.values.len()
    }

    /// The `k`-th smallest value (`None` past the end).
    pub fn value_at(&self, k: usize) -> Option<i32> {
        self.values.get(k).copied()
    }

    /// Probability of the `k`-th smallest value (`None` past the end).
    pub fn prob_at(&self, k: usize) -> Option<f64> {
        self.probs.get(k).copied()
    }

    /// Largest value (0 for an empty PMF).
    pub fn max_value(&self) -> i32 {
        self.values.last().copied().unwrap_or(0)
    }

    pub fn points(&self) -> impl Iterator<Item = (i32, f64)> + '_ {
        self.values.iter().copied().zip(self.probs.iter().copied())
    }

    pub fn total_mass_kahan(&self) -> f64 {
        kahan_sum(self.probs.iter().copied())
    }

    /// Mass 1 (±[`MASS_TOLERANCE`]), no NaN/∞, nothing negative or above 1.
    pub fn check_invariants(&self) -> Result<(), PmfError> {
        check_probabilities(&self.probs)
    }
}

/// Probability of every total 0..len, index = total.
#[derive(Clone, Debug, PartialEq)]
pub struct DensePmf {
    mass: Vec<f64>,
}

impl DensePmf {
    pub fn from_vec(mass: Vec<f64>) -> DensePmf {
        DensePmf { mass }
    }

    pub fn size(&self) -> usize {
        self.mass.len()
    }

    /// Probability of `total`; 0 outside the array.
    pub fn mass_at(&self, total: i64) -> f64 {
        usize::try_from(total).ok().and_then(|i| self.mass.get(i)).copied().unwrap_or(0.0)
    }

    pub fn mass(&self) -> &[f64] {
        &self.mass
    }

    pub fn total_mass(&self) -> f64 {
        self.mass.iter().sum()
    }

    pub fn total_mass_kahan(&self) -> f64 {
        kahan_sum(self.mass.iter().copied())
    }

    /// Any probability below `tolerance` (pass e.g. -1e-15 to ignore rounding).
    pub fn has_negative(&self, tolerance: f64) -> bool {
        self.mass.iter().any(|&p| p < tolerance)
    }

    pub fn has_nan_or_inf(&self) -> bool {
        self.mass.iter().any(|p| !p.is_finite())
    }

    pub fn has_value_exceeding_one(&self) -> bool {
        self.mass.iter().any(|&p| p > 1.0 + EXCEED_ONE_EPSILON)
    }

    pub fn check_invariants(&self) -> Result<(), PmfError> {
        check_probabilities(&self.mass)
    }
}

fn check_probabilities(probs: &[f64]) -> Result<(), PmfError> {
    if let Some(p) = probs.iter().find(|p| !p.is_finite()) {
        return Err(PmfError::Invariant(format!("non-finite probability {p}")));
    }
    if let Some(p) = probs.iter().find(|&&p| p < -1e-15) {
        return Err(PmfError::Invariant(format!("negative probability {p}")));
    }
    if let Some(p) = probs.iter().find(|&&p| p > 1.0 + EXCEED_ONE_EPSILON) {
        return Err(PmfError::Invariant(format!("probability {p} > 1")));
    }
    let total = kahan_sum(probs.iter().copied());
    if (total - 1.0).abs() > MASS_TOLERANCE {
        return Err(PmfError::Invariant(format!("total mass {total} != 1")));
    }
    Ok(())
}

/// Distribution of the sum of independent slot values.
///
/// With `clamp_at_target`, the array has `target + 1` buckets and every total
/// ≥ `target` lands in the last one, so `mass[target]` is P(sum ≥ target) and
/// the work is O(slots × target × points). Without it the array covers every
/// reachable total.
pub fn convolve_all(slots: &[SparsePmf], target: u32, clamp_at_target: bool) -> Result<DensePmf, PmfError> {
    for slot in slots {
        if let Some(v) = slot.values.iter().copied().find(|&v| v < 0) {
            return Err(PmfError::NegativeValue(v));
        }
    }
    let max_index: u64 = if clamp_at_target { u64::from(target) } else { slots.iter().map(|s| s.max_value() as u64).sum() };
    let len = max_index + 1;
    if len > MAX_DENSE_LEN as u64 {
        return Err(PmfError::TooLarge(len));
    }
    let max_index = max_index as usize;
    let mut acc = vec![0.0f64; max_index + 1];
    let mut next = vec![0.0f64; max_index + 1];
    acc[0] = 1.0;
    for slot in slots {
        next.iter_mut().for_each(|p| *p = 0.0);
        for (total, &p_total) in acc.iter().enumerate() {
            if p_total == 0.0 {
                continue;
            }
            for (v, p) in slot.points() {
                // v ≥ 0 was checked above.
                let to = (total + v as usize).min(max_index);
                next[to] += p_total * p;
            }
        }
        std::mem::swap(&mut acc, &mut next);
    }
    let pmf = DensePmf::from_vec(acc);
    pmf.check_invariants()?;
    Ok(pmf)
}

/// P(sum ≥ target). For a clamped PMF that is the last bucket; otherwise the
/// compensated sum of the tail.
pub fn tail_probability(pmf: &DensePmf, target: u32, clamped: bool) -> f64 {
    if clamped {
        return pmf.mass_at(i64::from(target));
    }
    let start = (target as usize).min(pmf.size());
    kahan_sum(pmf.mass[start..].iter().copied())
}

/// Expected number of independent trials until the first success: 1/p
/// (geometric distribution); +∞ when success is impossible.
pub fn expected_trials(p: f64) -> f64 {
    if p <= 0.0 || p.is_nan() {
        f64::INFINITY
    } else {
        1.0 / p
    }
}

/// 1/p rounded up, for display ("at most this many on average"); `u64::MAX` when impossible.
pub fn expected_trials_ceil(p: f64) -> u64 {
    let t = expected_trials(p);
    if t.is_finite() {
        t.ceil() as u64
    } else {
        u64::MAX
    }
}
