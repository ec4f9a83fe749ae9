//! PMF / convolution behaviour: the concrete expectations of the original's
//! CalculatorCharacterizationTest (CALC-001 … CALC-024, where they describe
//! behaviour rather than Java object plumbing), and property tests.

use engine::expectation::cube::pmf::{
    convolve_all, expected_trials, expected_trials_ceil, kahan_sum, tail_probability, DensePmf, PmfError, SparsePmf,
};
use engine::expectation::cube::{CubeKind, CubeOutcome, CubeQuery, CubeTables};
use proptest::prelude::*;

const TOL: f64 = 1e-12;

fn sparse(points: &[(i32, f64)]) -> SparsePmf {
    SparsePmf::from_pairs(points.iter().copied())
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---------------------------------------------------------------- characterization

#[test]
fn calc_001_single_slot_is_the_slot() {
    let r = convolve_all(&[sparse(&[(0, 0.5), (6, 0.3), (12, 0.2)])], 12, true).unwrap();
    assert!(close(r.mass_at(0), 0.5, TOL));
    assert!(close(r.mass_at(6), 0.3, TOL));
    assert!(close(r.mass_at(12), 0.2, TOL));
    assert!(close(r.total_mass_kahan(), 1.0, TOL));
}

#[test]
fn calc_002_two_slots() {
    let s = sparse(&[(0, 0.7), (6, 0.2), (9, 0.1)]);
    let r = convolve_all(&[s.clone(), s], 18, true).unwrap();
    assert!(close(r.total_mass_kahan(), 1.0, TOL));
    assert!(close(r.mass_at(0), 0.49, 1e-10));
    assert!(close(r.mass_at(6), 0.28, 1e-10));
    // Every other total, by hand: 9 → 0.14, 12 → 0.04, 15 → 0.04, 18 → 0.01.
    assert!(close(r.mass_at(9), 0.14, 1e-10));
    assert!(close(r.mass_at(12), 0.04, 1e-10));
    assert!(close(r.mass_at(15), 0.04, 1e-10));
    assert!(close(r.mass_at(18), 0.01, 1e-10));
}

#[test]
fn calc_003_clamp_limits_size_to_target_plus_one() {
    let s = sparse(&[(0, 0.7), (6, 0.2), (9, 0.1)]);
    assert_eq!(convolve_all(&[s.clone(), s], 10, true).unwrap().size(), 11);
}

#[test]
fn calc_004_no_clamp_covers_max_sum() {
    let s = sparse(&[(0, 0.7), (6, 0.2), (9, 0.1)]);
    assert_eq!(convolve_all(&[s.clone(), s], 100, false).unwrap().size(), 19);
}

#[test]
fn calc_005_overflow_accumulates_in_last_bucket() {
    let s = sparse(&[(0, 0.5), (100, 0.5)]);
    let r = convolve_all(&[s.clone(), s], 50, true).unwrap();
    assert_eq!(r.size(), 51);
    assert!(close(r.mass_at(50), 0.75, 1e-10));
    assert!(close(r.total_mass_kahan(), 1.0, 1e-10));
}

#[test]
fn calc_006_negative_value_is_an_error() {
    let a = sparse(&[(0, 0.5), (6, 0.3), (12, 0.2)]);
    let b = sparse(&[(0, 0.7), (-1, 0.3)]);
    assert_eq!(convolve_all(&[a, b], 20, true), Err(PmfError::NegativeValue(-1)));
}

#[test]
fn calc_007_three_slots_conserve_mass() {
    let s = sparse(&[(0, 0.7), (6, 0.2), (9, 0.1)]);
    let r = convolve_all(&[s.clone(), s.clone(), s], 27, true).unwrap();
    assert!(close(r.total_mass_kahan(), 1.0, TOL));
}

#[test]
fn calc_008_no_slots_is_delta_at_zero() {
    let r = convolve_all(&[], 10, true).unwrap();
    assert_eq!(r.size(), 11);
    assert!(close(r.mass_at(0), 1.0, TOL));
    assert!(close(r.total_mass_kahan(), 1.0, TOL));
}

#[test]
fn calc_011_mass_at_out_of_bounds_is_zero() {
    let p = DensePmf::from_vec(vec![0.1, 0.2, 0.3]);
    assert_eq!(p.mass_at(-1), 0.0);
    assert_eq!(p.mass_at(100), 0.0);
}

#[test]
fn calc_012_to_014_size_and_sums() {
    let p = DensePmf::from_vec(vec![0.1, 0.2, 0.3, 0.4]);
    assert_eq!(p.size(), 4);
    assert!(close(p.total_mass(), 1.0, 1e-15));
    assert!(close(p.total_mass_kahan(), 1.0, TOL));
}

#[test]
fn calc_015_to_020_validity_checks() {
    assert!(DensePmf::from_vec(vec![0.5, -0.1, 0.6]).has_negative(0.0));
    assert!(!DensePmf::from_vec(vec![0.5, -1e-16, 0.5]).has_negative(-1e-15));
    assert!(DensePmf::from_vec(vec![0.5, f64::NAN, 0.5]).has_nan_or_inf());
    assert!(DensePmf::from_vec(vec![0.5, f64::INFINITY, 0.5]).has_nan_or_inf());
    assert!(DensePmf::from_vec(vec![0.5, 1.5, 0.5]).has_value_exceeding_one());
    assert!(!DensePmf::from_vec(vec![0.5, 1.0 + 1e-13, 0.5]).has_value_exceeding_one());
    assert!(DensePmf::from_vec(vec![0.5, 0.6]).check_invariants().is_err());
    assert!(DensePmf::from_vec(vec![0.25, 0.75]).check_invariants().is_ok());
}

#[test]
fn calc_021_to_024_sparse_accessors() {
    let p = sparse(&[(12, 0.2), (0, 0.5), (6, 0.3)]);
    assert_eq!(p.size(), 3);
    assert_eq!(p.value_at(0), Some(0));
    assert!(close(p.prob_at(0).unwrap(), 0.5, TOL));
    assert_eq!(p.value_at(1), Some(6));
    assert!(close(p.prob_at(1).unwrap(), 0.3, TOL));
    assert_eq!(p.max_value(), 12);
    // Out of range is None, not a panic (the original throws).
    assert_eq!(p.prob_at(100), None);
    assert_eq!(p.value_at(3), None);
    assert_eq!(sparse(&[(0, 0.5), (6, 0.3), (9, 0.1), (12, 0.1)]).size(), 4);
    // Equal values merge.
    let m = sparse(&[(6, 0.25), (0, 0.5), (6, 0.25)]);
    assert_eq!(m.size(), 2);
    assert!(close(m.prob_at(1).unwrap(), 0.5, TOL));
}

#[test]
fn tail_and_trials() {
    let s = sparse(&[(0, 0.7), (6, 0.2), (9, 0.1)]);
    let full = convolve_all(&[s.clone(), s.clone()], 0, false).unwrap();
    let clamped = convolve_all(&[s.clone(), s], 12, true).unwrap();
    // P(sum ≥ 12) = 0.04 + 0.04 + 0.01.
    assert!(close(tail_probability(&full, 12, false), 0.09, 1e-12));
    assert!(close(tail_probability(&clamped, 12, true), 0.09, 1e-12));
    assert!(close(expected_trials(0.09), 1.0 / 0.09, 1e-12));
    assert_eq!(expected_trials(0.0), f64::INFINITY);
    assert_eq!(expected_trials_ceil(0.09), 12);
    assert_eq!(expected_trials_ceil(0.0), u64::MAX);
    assert!(convolve_all(&[sparse(&[(0, 1.0)])], u32::MAX, true).is_err(), "bounded memory");
}

// ---------------------------------------------------------------- properties

/// A normalised sparse PMF with 1..8 points of value 0..40.
fn arb_pmf() -> impl Strategy<Value = SparsePmf> {
    prop::collection::vec((0i32..40, 0.001f64..1.0), 1..8).prop_map(|pts| {
        let total: f64 = kahan_sum(pts.iter().map(|p| p.1));
        SparsePmf::from_pairs(pts.into_iter().map(|(v, p)| (v, p / total)))
    })
}

proptest! {
    #[test]
    fn sparse_mass_sums_to_one(p in arb_pmf()) {
        prop_assert!(close(p.total_mass_kahan(), 1.0, TOL));
        prop_assert!(p.check_invariants().is_ok());
    }

    #[test]
    fn convolution_conserves_mass(slots in prop::collection::vec(arb_pmf(), 0..4), target in 0u32..150, clamp: bool) {
        let r = convolve_all(&slots, target, clamp).unwrap();
        prop_assert!(close(r.total_mass_kahan(), 1.0, 1e-12));
        prop_assert!(!r.has_negative(-1e-15) && !r.has_nan_or_inf() && !r.has_value_exceeding_one());
    }

    #[test]
    fn clamped_tail_equals_full_tail(slots in prop::collection::vec(arb_pmf(), 1..4), target in 0u32..150) {
        let full = convolve_all(&slots, target, false).unwrap();
        let clamped = convolve_all(&slots, target, true).unwrap();
        prop_assert!(close(tail_probability(&full, target, false), tail_probability(&clamped, target, true), 1e-12));
    }

    #[test]
    fn tail_probability_is_monotonic(slots in prop::collection::vec(arb_pmf(), 1..4)) {
        let full = convolve_all(&slots, 0, false).unwrap();
        let mut prev = 1.0 + 1e-12;
        for t in 0..=(full.size() as u32 + 1) {
            let p = tail_probability(&full, t, false);
            prop_assert!(p <= prev + 1e-12, "P(X>={}) = {} > {}", t, p, prev);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&p));
            prev = p;
        }
        prop_assert!(close(tail_probability(&full, 0, false), 1.0, 1e-12));
    }

    #[test]
    fn expected_trials_is_at_least_one(p in 1e-9f64..=1.0) {
        let t = expected_trials(p);
        prop_assert!(t >= 1.0 && t.is_finite());
        prop_assert!(close(t * p, 1.0, 1e-12));
    }
}

// ---------------------------------------------------------------- the engines on the real table

const STAT_LINES: [&str; 12] = [
    "STR +12%",
    "STR +9%",
    "DEX +12%",
    "INT +9%",
    "올스탯 +9%",
    "올스탯 +6%",
    "공격력 +12%",
    "공격력 +9%",
    "보스 몬스터 공격 시 데미지 +40%",
    "크리티컬 데미지 +8%",
    "최대 MP +9%",
    "피격 시 5% 확률로 데미지의 40% 무시",
];
const PARTS: [&str; 6] = ["모자", "상의", "무기", "장갑", "반지1", "엠블렘"];
const LEVELS: [u32; 4] = [120, 160, 200, 250];

fn outcome(kind: CubeKind, slot: &str, level: u32, lines: &[&str]) -> CubeOutcome {
    CubeTables::embedded().expectation(&CubeQuery { kind, slot, level, grade: "레전드리", lines })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The order of the lines never matters (both engines are symmetric).
    #[test]
    fn line_order_does_not_matter(a in 0..12usize, b in 0..12usize, c in 0..12usize, part in 0..6usize, level in 0..4usize) {
        let l1 = [STAT_LINES[a], STAT_LINES[b], STAT_LINES[c]];
        let l2 = [STAT_LINES[c], STAT_LINES[a], STAT_LINES[b]];
        let o1 = outcome(CubeKind::Black, PARTS[part], LEVELS[level], &l1);
        let o2 = outcome(CubeKind::Black, PARTS[part], LEVELS[level], &l2);
        prop_assert_eq!(o1.engine(), o2.engine());
        match (o1, o2) {
            (CubeOutcome::Priced { trials_raw: r1, .. }, CubeOutcome::Priced { trials_raw: r2, .. }) => {
                prop_assert!(((r1 - r2) / r1).abs() < 1e-12);
            }
            (CubeOutcome::Unavailable { .. }, CubeOutcome::Unavailable { .. }) => {}
            (x, y) => prop_assert!(false, "{:?} vs {:?}", x, y),
        }
    }

    /// Priced outcomes are internally consistent and never a silent 0.
    #[test]
    fn priced_outcomes_are_consistent(a in 0..12usize, b in 0..12usize, c in 0..12usize, part in 0..6usize, level in 0..4usize, red: bool) {
        let kind = if red { CubeKind::Red } else { CubeKind::Black };
        let lines = [STAT_LINES[a], STAT_LINES[b], STAT_LINES[c]];
        match outcome(kind, PARTS[part], LEVELS[level], &lines) {
            CubeOutcome::Priced { trials_raw, trials, cost_per_trial, cost, engine } => {
                prop_assert!(trials_raw.is_finite() && trials_raw > 0.0);
                prop_assert_eq!(trials, trials_raw.round() as u64);
                prop_assert!(cost_per_trial > 0);
                prop_assert_eq!(cost, trials * cost_per_trial);
                prop_assert!(engine == "V1" || engine.starts_with("DP("));
                // The DP engine answers P(X ≥ x) with a normalised distribution: ≥ 1 trial.
                if engine.starts_with("DP(") { prop_assert!(trials_raw >= 1.0 - 1e-12); }
            }
            CubeOutcome::Unavailable { reason, .. } => prop_assert!(!reason.is_empty()),
        }
    }

    /// Asking for more of the same stat never gets cheaper.
    #[test]
    fn higher_dp_targets_need_more_trials(part in 0..6usize, level in 0..4usize) {
        let easier = outcome(CubeKind::Black, PARTS[part], LEVELS[level], &["STR +9%", "STR +9%", ""]);
        let harder = outcome(CubeKind::Black, PARTS[part], LEVELS[level], &["STR +12%", "STR +9%", "STR +9%"]);
        prop_assert_eq!(easier.engine(), "DP(STR_PERCENT>=18)");
        prop_assert_eq!(harder.engine(), "DP(STR_PERCENT>=30)");
        if let (CubeOutcome::Priced { trials_raw: e, .. }, CubeOutcome::Priced { trials_raw: h, .. }) = (&easier, &harder) {
            prop_assert!(h >= e, "{} < {}", h, e);
        }
        if !easier.is_priced() {
            prop_assert!(!harder.is_priced(), "harder target priced while the easier one is not");
        }
    }

    /// Arbitrary text never panics and stays bounded.
    #[test]
    fn arbitrary_lines_never_panic(lines in prop::collection::vec(".{0,40}", 0..5), level in 0u32..400, slot in ".{0,6}", grade in ".{0,5}") {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        for kind in [CubeKind::Black, CubeKind::Red, CubeKind::Additional] {
            let _ = CubeTables::embedded().expectation(&CubeQuery { kind, slot: &slot, level, grade: &grade, lines: &refs });
        }
    }
}
