//! Starforce and noljang (starforce scroll) expected cost.
//!
//! Tables come from `engine/data/lookup_tables.json` (transcribed from the
//! original's StarforceLookupTableImpl / NoljangProbabilityTable) and are
//! parsed once. The math is the original's:
//!
//! * Starforce (2025 rules): a failure keeps the star, a destruction resets the
//!   item to 12★. Expected cost from star `s` is a Markov chain
//!   `E[s] = (C[s] + p·E[s+1] + d·E[12]) / (p + d)`, solved in one backward pass
//!   by writing `E[s] = a[s]·E[12] + b[s]` and closing `E[12] = b[12] / (1 − a[12])`.
//!   Star catch multiplies success by 1.05 and keeps the keep:destroy ratio;
//!   Sunday Maple takes 30 % off destruction at 15–21★; the 30 % discount
//!   applies to the whole price; destroy prevention (15–17★) triples the price
//!   and removes destruction. A step's price is rounded to 10 meso. The target
//!   is capped by the item level's star limit; destroy counts are not (as in
//!   the original, they use the 30★ cap only).
//! * Noljang: no destruction; each failure costs 9,400 KRW of cash
//!   (150,400,000 meso). Computed with the original's decimal rounding
//!   (10 significant digits, half up), which we reproduce exactly.

use serde::Deserialize;

use super::decimal::Dec;

/// Number of starforce steps the tables describe (0→1 … 29→30).
pub const STARFORCE_STEPS: usize = 30;
/// Number of noljang steps (0→1 … 14→15).
pub const NOLJANG_STEPS: usize = 15;

/// Which event options the expectation assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StarforceOptions {
    pub star_catch: bool,
    pub sunday_maple: bool,
    pub discount_30: bool,
    pub destroy_prevention: bool,
}

impl StarforceOptions {
    /// The original's default: star catch, Sunday Maple, 30 % discount, no prevention.
    pub const DEFAULT: StarforceOptions =
        StarforceOptions { star_catch: true, sunday_maple: true, discount_30: true, destroy_prevention: false };
    /// The default plus 15–17★ destroy prevention.
    pub const WITH_DESTROY_PREVENTION: StarforceOptions = StarforceOptions { destroy_prevention: true, ..StarforceOptions::DEFAULT };
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("lookup table JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("lookup table: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct LookupTablesJson {
    starforce: StarforceJson,
    noljang: NoljangJson,
}

#[derive(Deserialize)]
struct StarforceJson {
    base_success_rates: Vec<f64>,
    base_destroy_rates: Vec<f64>,
    cost_divisors: Vec<u32>,
    #[serde(rename = "level_star_limits_[maxLevelInclusive,maxStar]")]
    level_star_limits: Vec<(Option<u32>, u32)>,
    destroy_reset_star: usize,
    max_star: u32,
}

#[derive(Deserialize)]
struct NoljangJson {
    success_rates: Vec<f64>,
    cost_divisors: Vec<u32>,
    max_star: u32,
    fail_cost_meso: u64,
}

#[derive(Debug, Clone)]
pub struct StarforceTable {
    success: [f64; STARFORCE_STEPS],
    destroy: [f64; STARFORCE_STEPS],
    divisors: [u32; STARFORCE_STEPS],
    /// (max level inclusive or None = no bound, max star), ascending.
    level_limits: Vec<(Option<u32>, u32)>,
    reset_star: usize,
}

#[derive(Debug, Clone)]
pub struct NoljangTable {
    success: [f64; NOLJANG_STEPS],
    divisors: [u32; NOLJANG_STEPS],
    fail_cost_meso: u64,
}

fn to_array<T: Copy + Default, const N: usize>(name: &str, values: &[T]) -> Result<[T; N], TableError> {
    if values.len() != N {
        return Err(TableError::Invalid(format!("{name}: {} entries, expected {N}", values.len())));
    }
    let mut out = [T::default(); N];
    out.copy_from_slice(values);
    Ok(out)
}

fn check_probabilities(name: &str, values: &[f64]) -> Result<(), TableError> {
    match values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        Some(p) => Err(TableError::Invalid(format!("{name}: {p} is not a probability"))),
        None => Ok(()),
    }
}

/// Parses the starforce and noljang sections of `lookup_tables.json`.
pub fn parse_tables(json: &str) -> Result<(StarforceTable, NoljangTable), TableError> {
    let raw: LookupTablesJson = serde_json::from_str(json)?;
    let sf = raw.starforce;
    if sf.max_star as usize != STARFORCE_STEPS {
        return Err(TableError::Invalid(format!("starforce.max_star {} != {STARFORCE_STEPS}", sf.max_star)));
    }
    check_probabilities("starforce.base_success_rates", &sf.base_success_rates)?;
    check_probabilities("starforce.base_destroy_rates", &sf.base_destroy_rates)?;
    if sf.base_success_rates.iter().any(|p| *p <= 0.0) || sf.cost_divisors.contains(&0) {
        // A zero success rate would make the expectation infinite.
        return Err(TableError::Invalid("starforce: zero success rate or divisor".into()));
    }
    if sf.destroy_reset_star >= STARFORCE_STEPS {
        return Err(TableError::Invalid("starforce.destroy_reset_star out of range".into()));
    }
    match sf.level_star_limits.last() {
        Some((None, _)) => {}
        _ => return Err(TableError::Invalid("starforce level limits must end with an unbounded row".into())),
    }
    let starforce = StarforceTable {
        success: to_array("starforce.base_success_rates", &sf.base_success_rates)?,
        destroy: to_array("starforce.base_destroy_rates", &sf.base_destroy_rates)?,
        divisors: to_array("starforce.cost_divisors", &sf.cost_divisors)?,
        level_limits: sf.level_star_limits,
        reset_star: sf.destroy_reset_star,
    };

    let nj = raw.noljang;
    if nj.max_star as usize != NOLJANG_STEPS {
        return Err(TableError::Invalid(format!("noljang.max_star {} != {NOLJANG_STEPS}", nj.max_star)));
    }
    check_probabilities("noljang.success_rates", &nj.success_rates)?;
    if nj.success_rates.iter().any(|p| *p <= 0.0) || nj.cost_divisors.contains(&0) {
        return Err(TableError::Invalid("noljang: zero success rate or divisor".into()));
    }
    let noljang = NoljangTable {
        success: to_array("noljang.success_rates", &nj.success_rates)?,
        divisors: to_array("noljang.cost_divisors", &nj.cost_divisors)?,
        fail_cost_meso: nj.fail_cost_meso,
    };
    Ok((starforce, noljang))
}

/// Java's `Math.round` for the non-negative values used here: floor(x + 0.5).
fn java_round(x: f64) -> f64 {
    (x + 0.5).floor()
}

/// One step of the chain: success, destroy and price for star `star`.
struct Stage {
    success: f64,
    destroy: f64,
    price: f64,
}

impl StarforceTable {
    /// Highest star an item of this level can reach.
    pub fn max_star_for_level(&self, level: u32) -> u32 {
        for (max_level, max_star) in &self.level_limits {
            match max_level {
                Some(limit) if level > *limit => continue,
                _ => return *max_star,
            }
        }
        STARFORCE_STEPS as u32
    }

    /// Price of one attempt before options: `1000 + L³(S+1)/36` below 10★,
    /// `1000 + L³(S+1)^2.7/divisor` from 10★.
    fn raw_attempt_price(&self, star: usize, level: u32) -> f64 {
        let level = u64::from(level);
        let level_cubed = level * level * level;
        let star_factor = star as u64 + 1;
        if star <= 9 {
            1000.0 + (level_cubed * star_factor) as f64 / 36.0
        } else {
            1000.0 + level_cubed as f64 * (star_factor as f64).powf(2.7) / f64::from(self.divisors[star])
        }
    }

    fn stage(&self, star: usize, level: u32, opts: StarforceOptions) -> Stage {
        let mut p = self.success[star];
        let mut d = self.destroy[star];
        if opts.sunday_maple && (15..=21).contains(&star) {
            d *= 0.7;
        }
        let mut keep = 1.0 - p - d;
        let mut price_multiplier = 1.0;
        if opts.destroy_prevention && (15..=17).contains(&star) {
            d = 0.0;
            keep = 1.0 - p;
            price_multiplier = 3.0;
        }
        if opts.star_catch {
            let boosted = (p * 1.05).min(1.0);
            let rest = 1.0 - boosted;
            if keep + d < 1e-12 {
                d = 0.0;
            } else {
                d = rest * (d / (keep + d));
            }
            p = boosted;
        }
        let mut price = self.raw_attempt_price(star, level) * price_multiplier;
        if opts.discount_30 {
            price *= 0.7;
        }
        // Round to 10 meso: floor((x + 5) / 10) × 10.
        let price = ((price + 5.0) / 10.0).floor() * 10.0;
        Stage { success: p, destroy: d, price }
    }

    /// Solves the chain from `from` to `to` for a per-stage quantity:
    /// `cost(stage)` is added once per attempt; returns the expectation,
    /// or +∞ when some stage can never be left.
    fn solve_chain(&self, from: usize, to: usize, stage_of: impl Fn(usize) -> (f64, f64, f64)) -> f64 {
        debug_assert!(from < to && to <= STARFORCE_STEPS);
        let mut a = [0.0f64; STARFORCE_STEPS + 1];
        let mut b = [0.0f64; STARFORCE_STEPS + 1];
        for s in (0..to).rev() {
            let (p, d, cost) = stage_of(s);
            let denom = p + d;
            if denom < 1e-12 {
                return f64::INFINITY;
            }
            a[s] = (p * a[s + 1] + d) / denom;
            b[s] = (cost + p * b[s + 1]) / denom;
        }
        let reset = self.reset_star;
        let e_reset = if to <= reset {
            0.0
        } else if (1.0 - a[reset]).abs() < 1e-12 {
            return f64::INFINITY;
        } else {
            b[reset] / (1.0 - a[reset])
        };
        a[from] * e_reset + b[from]
    }

    /// Expected meso from `from`★ to `to`★ (whole meso). The target is capped
    /// at the level's star limit; `from ≥ target` costs 0.
    pub fn expected_cost(&self, from: u32, to: u32, level: u32, opts: StarforceOptions) -> f64 {
        let to = to.min(self.max_star_for_level(level)) as usize;
        let from = from as usize;
        if from >= to {
            return 0.0;
        }
        let value = self.solve_chain(from, to, |s| {
            let st = self.stage(s, level, opts);
            (st.success, st.destroy, st.price)
        });
        java_round(value)
    }

    /// Expected number of destructions from `from`★ to `to`★, 2 decimals.
    /// Capped at 30★ only (not by level), as in the original.
    pub fn expected_destroys(&self, from: u32, to: u32, opts: StarforceOptions) -> f64 {
        let to = (to as usize).min(STARFORCE_STEPS);
        let from = from as usize;
        if from >= to {
            return 0.0;
        }
        // B[s] = (p·B[s+1] + d·(1 + B[12])) / (p + d): each destruction counts 1.
        let value = self.solve_chain(from, to, |s| {
            let st = self.stage(s, 200, StarforceOptions { discount_30: false, ..opts });
            (st.success, st.destroy, st.destroy)
        });
        java_round(value * 100.0) / 100.0
    }
}

impl NoljangTable {
    /// Highest star a noljang item can reach.
    pub const MAX_STAR: u32 = NOLJANG_STEPS as u32;

    /// One attempt's price in the original's decimal arithmetic, rounded to 100 meso.
    fn attempt_price(&self, star: usize, level: u32) -> Option<Dec> {
        let level = i128::from(level.max(1));
        let level_cubed = level * level * level;
        let star_factor = star as i128 + 1;
        let component = if star < 10 {
            Dec::from_int(level_cubed * star_factor).div_sig10(Dec::from_int(36))?
        } else {
            let star_power = Dec::from_f64_shortest((star_factor as f64).powf(2.7))?;
            Dec::from_int(level_cubed).mul(star_power)?.div_sig10(Dec::from_int(i128::from(self.divisors[star])))?
        };
        let price = Dec::from_int(1000).add(component)?.round_to_multiple(100)?;
        Some(Dec::from_int(price))
    }

    fn expected_cost_exact(&self, from: usize, to: usize, level: u32) -> Option<f64> {
        let seven_tenths = Dec::from_f64_shortest(0.7)?;
        let fail_cost = Dec::from_int(i128::from(self.fail_cost_meso));
        let mut total = Dec::ZERO;
        for star in from..to {
            let p = (self.success[star] * 1.05).min(1.0); // star catch
            let p_dec = Dec::from_f64_shortest(p)?;
            let price = self.attempt_price(star, level)?.mul(seven_tenths)?; // 30 % discount
            let trials = Dec::from_int(1).div_sig10(p_dec)?;
            let fails = Dec::from_f64_shortest(1.0 - p)?.div_sig10(p_dec)?;
            total = total.add(price.mul(trials)?)?.add(fail_cost.mul(fails)?)?;
        }
        Some(total.round_to_multiple(1)? as f64)
    }

    /// Plain f64 version of the same sum; only used if the exact path would
    /// overflow (it cannot for levels ≤ 300, see the tests).
    fn expected_cost_f64(&self, from: usize, to: usize, level: u32) -> f64 {
        let level = f64::from(level.max(1));
        let mut total = 0.0;
        for star in from..to {
            let p = (self.success[star] * 1.05).min(1.0);
            let factor = star as f64 + 1.0;
            let component =
                if star < 10 { level.powi(3) * factor / 36.0 } else { level.powi(3) * factor.powf(2.7) / f64::from(self.divisors[star]) };
            let price = java_round((1000.0 + component) / 100.0) * 100.0 * 0.7;
            total += price / p + self.fail_cost_meso as f64 * (1.0 - p) / p;
        }
        java_round(total)
    }

    /// Expected meso (cash failures converted) from `from`★ to `to`★ with star
    /// catch and the 30 % discount; `to` is capped at 15★.
    pub fn expected_cost(&self, from: u32, to: u32, level: u32) -> f64 {
        let to = to.min(Self::MAX_STAR) as usize;
        let from = from as usize;
        if from >= to {
            return 0.0;
        }
        self.expected_cost_exact(from, to, level).unwrap_or_else(|| self.expected_cost_f64(from, to, level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> (StarforceTable, NoljangTable) {
        parse_tables(include_str!("../../data/lookup_tables.json")).expect("embedded tables parse")
    }

    #[test]
    fn level_limits() {
        let (sf, _) = tables();
        assert_eq!(sf.max_star_for_level(0), 5);
        assert_eq!(sf.max_star_for_level(94), 5);
        assert_eq!(sf.max_star_for_level(95), 8);
        assert_eq!(sf.max_star_for_level(130), 20);
        assert_eq!(sf.max_star_for_level(138), 30);
        assert_eq!(sf.max_star_for_level(u32::MAX), 30);
    }

    #[test]
    fn known_values_from_the_reference() {
        let (sf, nj) = tables();
        assert_eq!(sf.expected_cost(0, 22, 250, StarforceOptions::DEFAULT), 31_580_860_664.0);
        assert_eq!(sf.expected_cost(0, 22, 250, StarforceOptions::WITH_DESTROY_PREVENTION), 41_999_793_477.0);
        assert_eq!(sf.expected_destroys(0, 22, StarforceOptions::DEFAULT), 3.87);
        assert_eq!(sf.expected_destroys(0, 22, StarforceOptions::WITH_DESTROY_PREVENTION), 2.43);
        assert_eq!(sf.expected_cost(0, 12, 140, StarforceOptions::DEFAULT), 18_909_843.0);
        assert_eq!(nj.expected_cost(0, 12, 140), 5_799_007_576.0);
    }

    #[test]
    fn empty_ranges_cost_nothing() {
        let (sf, nj) = tables();
        assert_eq!(sf.expected_cost(5, 5, 200, StarforceOptions::DEFAULT), 0.0);
        assert_eq!(sf.expected_cost(7, 3, 200, StarforceOptions::DEFAULT), 0.0);
        assert_eq!(sf.expected_destroys(22, 22, StarforceOptions::DEFAULT), 0.0);
        assert_eq!(nj.expected_cost(15, 20, 200), 0.0);
    }

    #[test]
    fn targets_above_the_level_limit_are_capped() {
        let (sf, _) = tables();
        let capped = sf.expected_cost(0, 20, 130, StarforceOptions::DEFAULT);
        assert_eq!(sf.expected_cost(0, 25, 130, StarforceOptions::DEFAULT), capped);
        assert_eq!(sf.expected_cost(0, 99, 250, StarforceOptions::DEFAULT), sf.expected_cost(0, 30, 250, StarforceOptions::DEFAULT));
    }

    #[test]
    fn exact_noljang_never_overflows_for_valid_levels() {
        let (_, nj) = tables();
        for level in 0..=300 {
            for to in 1..=15 {
                assert!(nj.expected_cost_exact(0, to, level).is_some(), "level {level} to {to}");
            }
        }
    }

    #[test]
    fn rejects_malformed_tables() {
        assert!(parse_tables("{").is_err());
        let broken = include_str!("../../data/lookup_tables.json").replacen("\"max_star\": 30", "\"max_star\": 31", 1);
        assert!(parse_tables(&broken).is_err());
    }
}
