//! P(a new flame scores ≥ target): choose-k-distinct-options DP.
//!
//! A flame rolls k distinct option kinds out of the pool's n, every k-subset
//! equally likely, each line an independent stage. Boss drops roll k = 4;
//! other items k = 1..=4 with probability 1/4 each (the original's
//! `FlameDpCalculator`):
//!
//! * boss:  P = dp[4][T] / C(n, 4)
//! * other: P = ¼ · Σ_{k=1..min(4,n)} dp[k][T] / C(n, k)
//!
//! where dp[r][t] is the probability mass, summed over all r-subsets of the
//! pool, of the capped score min(T, Σ line scores) being t.
//!
//! Two things keep this cheap without changing the result:
//! * options whose every line scores 0 (DEF, speed, off-class stats …) are
//!   not run through the score DP; their masses enter through the
//!   elementary symmetric sums e_j of the zero options:
//!   dp[k][T] = Σ_j dp'[k−j][T] · e_j, dp' over the scoring options only.
//! * a target above the best 4 lines is answered "unreachable" up front.
//!
//! Memory is bounded: a dense table (≤ 5 × (T+1) f64) up to
//! [`DENSE_MAX_TARGET`], above it a sparse map of reachable capped scores
//! bounded by [`SPARSE_MAX_STATES`].

use std::collections::BTreeMap;

use super::pmf::OptionPmf;

/// Lines per boss flame, and the most lines any flame rolls.
pub const MAX_LINES: usize = 4;
/// Largest target run through the dense table (5 × 65 537 f64 ≈ 2.6 MB).
pub const DENSE_MAX_TARGET: u64 = 1 << 16;
/// Bound on the states of one row of the sparse DP (≤ 5 rows).
pub const SPARSE_MAX_STATES: usize = 1 << 18;

/// Why no probability could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpError {
    /// The pool is empty (or, for a boss flame, has fewer than 4 options):
    /// the table lacks values at some stage this flame rolls at this level
    /// for (nearly) every option — e.g. stages 6–7 at levels 170–199.
    EmptyPool,
    /// More sparse states than [`SPARSE_MAX_STATES`].
    TooLarge,
}

/// Probability that one flame reaches `target`. `Ok(0.0)` means the
/// target is out of reach.
pub fn success_probability(pmfs: &[OptionPmf], boss_drop: bool, target: u64) -> Result<f64, DpError> {
    let n = pmfs.len();
    let max_k = if boss_drop { MAX_LINES } else { MAX_LINES.min(n) };
    if n == 0 || max_k > n {
        // The original returns "no trials" (priced 0) here as well; a boss
        // flame needs 4 distinct options.
        return Err(DpError::EmptyPool);
    }
    if target == 0 {
        return Ok(1.0); // every flame scores ≥ 0
    }

    let (zero, scoring): (Vec<&OptionPmf>, Vec<&OptionPmf>) = pmfs.iter().partition(|p| p.is_zero());
    // Best possible score with k lines: the k largest maxima.
    let mut maxima: Vec<u64> = scoring.iter().map(|p| p.max_score()).collect();
    maxima.sort_unstable_by(|a, b| b.cmp(a));
    let best: u64 = maxima.iter().take(max_k).fold(0u64, |a, &m| a.saturating_add(m));
    if best < target {
        return Ok(0.0);
    }

    // at_target[r] = mass of r-subsets of the scoring options reaching T.
    let at_target = if target <= DENSE_MAX_TARGET { dense(&scoring, max_k, target) } else { sparse(&scoring, max_k, target)? };
    let zero_sums = elementary_symmetric(zero.iter().map(|p| p.mass()), max_k);

    let reach = |k: usize| -> f64 { (0..=k).map(|j| at_target[k - j] * zero_sums[j]).sum::<f64>() };
    let p = if boss_drop {
        reach(MAX_LINES) / binomial(n, MAX_LINES)
    } else {
        (1..=max_k).map(|k| reach(k) / binomial(n, k)).sum::<f64>() / MAX_LINES as f64
    };
    Ok(p)
}

/// e_0..=e_max of the given masses: e_j = Σ over j-subsets of their product.
fn elementary_symmetric(masses: impl Iterator<Item = f64>, max: usize) -> Vec<f64> {
    let mut e = vec![0.0; max + 1];
    e[0] = 1.0;
    for m in masses {
        for j in (1..=max).rev() {
            e[j] += e[j - 1] * m;
        }
    }
    e
}

/// C(n, k) as f64 (n ≤ 21 here, exact).
pub fn binomial(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    let mut c: u64 = 1;
    for i in 0..k {
        c = c * (n - i) as u64 / (i as u64 + 1);
    }
    c as f64
}

/// Dense knapsack over capped scores; returns dp[r][T] for r = 0..=max_k.
///
/// Each (option, row, stage) step is a shifted multiply-add of the whole
/// row (`dst[t + s] += p · src[t]`), written as straight slice loops so the
/// compiler vectorises them; the part that lands at or past T is summed
/// once into the cap cell.
fn dense(options: &[&OptionPmf], max_k: usize, target: u64) -> Vec<f64> {
    let width = usize::try_from(target).expect("dense target fits usize") + 1;
    let cap = width - 1;
    let mut dp = vec![0.0f64; (max_k + 1) * width];
    dp[0] = 1.0;
    // filled[r]: row r has mass; hi[r]: no mass above this index.
    let mut hi = vec![0usize; max_k + 1];
    let mut filled = vec![false; max_k + 1];
    filled[0] = true;
    let mut entries: Vec<(usize, f64)> = Vec::with_capacity(8);
    for (i, pmf) in options.iter().enumerate() {
        entries.clear();
        // s ≤ target ⇒ s fits usize (target does).
        entries.extend(pmf.entries.iter().map(|&(s, p)| (s.min(target) as usize, p)));
        let max_s = entries.iter().map(|e| e.0).max().unwrap_or(0);
        // Descending r: row r−1 still holds the state before option i.
        for r in (1..=max_k.min(i + 1)).rev() {
            if !filled[r - 1] {
                continue;
            }
            let (lower, upper) = dp.split_at_mut(r * width);
            let src = &lower[(r - 1) * width..=(r - 1) * width + hi[r - 1]];
            let dst = &mut upper[..width];
            for &(s, p) in &entries {
                // t < cap − s lands below the cap, the rest on it.
                let below = src.len().min(cap - s);
                for (d, &x) in dst[s..s + below].iter_mut().zip(&src[..below]) {
                    *d += x * p;
                }
                let over: f64 = src[below..].iter().sum();
                dst[cap] += over * p;
            }
            hi[r] = hi[r].max((hi[r - 1] + max_s).min(cap));
            filled[r] = true;
        }
    }
    (0..=max_k).map(|r| dp[r * width + cap]).collect()
}

/// Same DP with a sorted map per row, for targets too large for a table.
fn sparse(options: &[&OptionPmf], max_k: usize, target: u64) -> Result<Vec<f64>, DpError> {
    let mut rows: Vec<BTreeMap<u64, f64>> = vec![BTreeMap::new(); max_k + 1];
    rows[0].insert(0, 1.0);
    for (i, pmf) in options.iter().enumerate() {
        for r in (1..=max_k.min(i + 1)).rev() {
            if rows[r - 1].is_empty() {
                continue;
            }
            let (lower, upper) = rows.split_at_mut(r);
            let src = &lower[r - 1];
            let dst = &mut upper[0];
            for (&t, &base) in src {
                for &(s, p) in &pmf.entries {
                    *dst.entry(t.saturating_add(s).min(target)).or_insert(0.0) += base * p;
                }
                // Checked per insert batch: no row ever exceeds the bound
                // by more than one PMF's entries.
                if dst.len() > SPARSE_MAX_STATES {
                    return Err(DpError::TooLarge);
                }
            }
        }
    }
    Ok(rows.iter().map(|row| row.get(&target).copied().unwrap_or(0.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::super::tables::FlameOption;
    use super::*;

    fn pmf(option: FlameOption, entries: &[(u64, f64)]) -> OptionPmf {
        OptionPmf { option, entries: entries.to_vec() }
    }

    #[test]
    fn binomials() {
        assert_eq!(binomial(19, 4), 3876.0);
        assert_eq!(binomial(21, 4), 5985.0);
        assert_eq!(binomial(4, 4), 1.0);
        assert_eq!(binomial(3, 4), 0.0);
        assert_eq!(binomial(5, 0), 1.0);
    }

    #[test]
    fn dense_and_sparse_agree() {
        let opts = [
            pmf(FlameOption::Str, &[(3, 0.2), (4, 0.3), (5, 0.36), (6, 0.14)]),
            pmf(FlameOption::Dex, &[(1, 0.5), (7, 0.5)]),
            pmf(FlameOption::Int, &[(2, 1.0)]),
            pmf(FlameOption::Luk, &[(10, 0.25), (20, 0.75)]),
            pmf(FlameOption::Def, &[(0, 1.0)]),
        ];
        let refs: Vec<&OptionPmf> = opts.iter().collect();
        for target in 1..40 {
            let a = dense(&refs, 4, target);
            let b = sparse(&refs, 4, target).unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-12, "target {target}: {a:?} vs {b:?}");
            }
        }
    }

    /// One scoring option among n = 19 that always reaches the target: a
    /// boss flame succeeds iff that option is among its 4, p = 4/19.
    #[test]
    fn single_sufficient_option_boss() {
        let mut opts = vec![pmf(FlameOption::Mag, &[(100, 1.0)])];
        for _ in 0..18 {
            opts.push(pmf(FlameOption::Def, &[(0, 1.0)]));
        }
        let p = success_probability(&opts, true, 50).unwrap();
        assert!((p - 4.0 / 19.0).abs() < 1e-12, "{p}");
        // Other items: ¼ Σ_k k/19.
        let p = success_probability(&opts, false, 50).unwrap();
        let want = (1.0 + 2.0 + 3.0 + 4.0) / 19.0 / 4.0;
        assert!((p - want).abs() < 1e-12, "{p} vs {want}");
    }

    /// 21 options whose every line set sums differently: the sparse map
    /// would need millions of states, so it stops with `TooLarge`.
    #[test]
    fn sparse_state_bound() {
        let opts: Vec<OptionPmf> = (0..21u64)
            .map(|i| {
                let entries = (0..4u64).map(|j| ((i * 4 + j + 1) << 20 | (i * 131 + j * 7).pow(2), 0.25)).collect::<Vec<_>>();
                pmf(FlameOption::Str, &entries)
            })
            .collect();
        let best: u64 = {
            let mut m: Vec<u64> = opts.iter().map(OptionPmf::max_score).collect();
            m.sort_unstable_by(|a, b| b.cmp(a));
            m[..4].iter().sum()
        };
        assert!(best > DENSE_MAX_TARGET);
        assert_eq!(success_probability(&opts, true, best), Err(DpError::TooLarge));
    }

    #[test]
    fn unreachable_and_empty() {
        let opts = vec![pmf(FlameOption::Str, &[(5, 1.0)]); 5];
        assert_eq!(success_probability(&opts, true, 21), Ok(0.0));
        assert!(success_probability(&opts, true, 20).unwrap() > 0.0);
        assert_eq!(success_probability(&[], true, 1), Err(DpError::EmptyPool));
        // Fewer than 4 options: the table cannot describe a boss flame.
        assert_eq!(success_probability(&opts[..3], true, 1), Err(DpError::EmptyPool));
        assert_eq!(success_probability(&opts, false, 0), Ok(1.0));
    }
}
