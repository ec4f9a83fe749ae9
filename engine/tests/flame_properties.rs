//! Properties of the flame math: stage odds are distributions, the DP
//! equals brute-force enumeration of every line set, its sparse path equals
//! its dense path, trials are ≥ 1 and monotonic in the target, and no JSON
//! input makes the public entry point panic.

use engine::expectation::flame;

use flame::dp::{binomial, success_probability, DpError, DENSE_MAX_TARGET};
use flame::pmf::OptionPmf;
use flame::tables::tables;
use flame::{expected_trials, flame_expectation, FlameCategory, FlameInput, FlameOption, FlameType, JobWeights, TrialsStatus, WeaponBase};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

#[test]
fn stage_odds_sum_to_one() {
    let t = tables();
    for boss in [false, true] {
        for flame in FlameType::ALL {
            let probs = t.stage_probs(boss, flame);
            let total: f64 = probs.iter().map(|e| e.1).sum();
            assert!((total - 1.0).abs() < 1e-12, "{boss} {flame:?}: {total}");
            assert!(probs.iter().all(|e| e.1 > 0.0 && (1..=7).contains(&e.0)));
            assert!(probs.windows(2).all(|w| w[0].0 < w[1].0), "ascending stages");
        }
    }
}

/// Every option PMF the tables produce is a distribution too.
#[test]
fn option_pmfs_are_distributions() {
    let t = tables();
    for class in ["에반", "메카닉", "제논", "데몬어벤져", "섀도어", ""] {
        let w = JobWeights::for_class(class);
        for level in [0, 100, 130, 160, 170, 180, 200, 250] {
            for cat in [FlameCategory::BossWeapon, FlameCategory::BossArmor, FlameCategory::OtherWeapon, FlameCategory::OtherArmor] {
                for flame in FlameType::ALL {
                    let pmfs = flame::pmf::option_pmfs(cat, flame, level, &w, WeaponBase { attack: 200, magic: 300 });
                    assert!(pmfs.len() <= t.pool(cat.weapon()).len());
                    for p in &pmfs {
                        assert!((p.mass() - 1.0).abs() < 1e-12, "{class} {level} {cat:?} {flame:?} {p:?}");
                        assert!(p.entries.windows(2).all(|w| w[0].0 < w[1].0));
                    }
                }
            }
        }
    }
}

/// P(score ≥ target) by listing every k-subset of options and every stage
/// combination of its lines — the definition the DP must equal.
fn brute_force(pmfs: &[OptionPmf], boss: bool, target: u64) -> f64 {
    let n = pmfs.len();
    let mut mass = [0.0f64; 5]; // mass[k] = Σ over k-subsets of P(sum ≥ T)
    for mask in 1u32..(1 << n) {
        let k = mask.count_ones() as usize;
        if k > 4 {
            continue;
        }
        let chosen: Vec<&OptionPmf> = (0..n).filter(|i| mask & (1 << i) != 0).map(|i| &pmfs[i]).collect();
        // Walk every stage combination (mixed-radix counter).
        let mut idx = vec![0usize; k];
        loop {
            let (sum, p) = chosen.iter().zip(&idx).fold((0u64, 1.0f64), |(s, p), (pmf, &i)| (s + pmf.entries[i].0, p * pmf.entries[i].1));
            if sum >= target {
                mass[k] += p;
            }
            let mut d = 0;
            while d < k {
                idx[d] += 1;
                if idx[d] < chosen[d].entries.len() {
                    break;
                }
                idx[d] = 0;
                d += 1;
            }
            if d == k {
                break;
            }
        }
    }
    if boss {
        mass[4] / binomial(n, 4)
    } else {
        (1..=n.min(4)).map(|k| mass[k] / binomial(n, k)).sum::<f64>() / 4.0
    }
}

/// A random option PMF: 1–4 distinct scores (0 allowed), normalised odds.
fn pmf_strategy(max_score: u64) -> impl Strategy<Value = OptionPmf> {
    prop::collection::btree_map(0..=max_score, 1u32..100, 1..=4).prop_map(|m| {
        let total: u32 = m.values().sum();
        OptionPmf { option: FlameOption::Str, entries: m.into_iter().map(|(s, w)| (s, f64::from(w) / f64::from(total))).collect() }
    })
}

fn scaled(pmfs: &[OptionPmf], by: u64) -> Vec<OptionPmf> {
    pmfs.iter().map(|p| OptionPmf { option: p.option, entries: p.entries.iter().map(|&(s, q)| (s * by, q)).collect() }).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 + 1e-9 * a.abs().max(b.abs())
}

fn category() -> impl Strategy<Value = FlameCategory> {
    prop_oneof![
        Just(FlameCategory::BossWeapon),
        Just(FlameCategory::BossArmor),
        Just(FlameCategory::OtherWeapon),
        Just(FlameCategory::OtherArmor),
    ]
}

fn flame_type() -> impl Strategy<Value = FlameType> {
    prop_oneof![Just(FlameType::Powerful), Just(FlameType::Eternal), Just(FlameType::Abyss)]
}

fn class() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("에반"),
        Just("메카닉"),
        Just("히어로"),
        Just("나이트로드"),
        Just("섀도어"),
        Just("제논"),
        Just("데몬어벤져"),
        Just("제로"),
        Just(""),
    ]
}

/// Arbitrary JSON values of bounded depth and size.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[-0-9a-z,. ]{0,16}".prop_map(Value::String),
        (-100_000i64..100_000).prop_map(|n| Value::String(n.to_string())),
    ];
    leaf.prop_recursive(3, 32, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("str".to_owned()),
        Just("dex".to_owned()),
        Just("int".to_owned()),
        Just("luk".to_owned()),
        Just("max_hp".to_owned()),
        Just("all_stat".to_owned()),
        Just("attack_power".to_owned()),
        Just("magic_power".to_owned()),
        Just("damage".to_owned()),
        Just("boss_damage".to_owned()),
        "[a-z_]{1,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dp_equals_brute_force(
        pmfs in prop::collection::vec(pmf_strategy(20), 1..=7),
        boss in any::<bool>(),
        target in 1u64..90,
    ) {
        let bf = brute_force(&pmfs, boss, target);
        if boss && pmfs.len() < 4 {
            // No boss flame fits a pool this small: reported, not priced.
            prop_assert_eq!(success_probability(&pmfs, boss, target), Err(DpError::EmptyPool));
            return Ok(());
        }
        let dp = success_probability(&pmfs, boss, target).unwrap();
        prop_assert!(close(dp, bf), "dp {dp} vs brute force {bf}");
        prop_assert!((0.0..=1.0 + 1e-12).contains(&dp));
    }

    /// Scaling every score and the target by the same factor changes
    /// nothing; a factor that pushes T past the dense limit runs the
    /// sparse path, so both paths agree.
    #[test]
    fn sparse_path_equals_dense_path(
        pmfs in prop::collection::vec(pmf_strategy(30), 1..=9),
        boss in any::<bool>(),
        target in 1u64..120,
    ) {
        let by = DENSE_MAX_TARGET + 7;
        prop_assert!(target * by > DENSE_MAX_TARGET);
        let dense = success_probability(&pmfs, boss, target);
        let sparse = success_probability(&scaled(&pmfs, by), boss, target * by);
        match (dense, sparse) {
            (Ok(d), Ok(s)) => prop_assert!(close(d, s), "dense {d} vs sparse {s}"),
            (d, s) => prop_assert_eq!(d, s),
        }
    }

    #[test]
    fn trials_at_least_one_and_monotonic_in_target(
        cat in category(),
        flame in flame_type(),
        level in prop_oneof![Just(100u32), Just(140), Just(160), Just(170), Just(200), Just(250), 0u32..300],
        class in class(),
        t1 in 1u64..4000,
        dt in 0u64..2000,
        attack in 0u32..400,
        magic in 0u32..400,
    ) {
        let w = JobWeights::for_class(class);
        let base = WeaponBase { attack, magic };
        let a = expected_trials(cat, flame, level, &w, t1, base);
        let b = expected_trials(cat, flame, level, &w, t1 + dt, base);
        if let Ok(x) = a {
            prop_assert!(x >= 1.0 - 1e-9, "trials {x} < 1");
        }
        match (a, b) {
            (Ok(x), Ok(y)) => prop_assert!(y >= x * (1.0 - 1e-9), "T {t1}: {x}, T {}: {y}", t1 + dt),
            // A harder target may become unreachable, never the reverse.
            (Ok(_), Err(TrialsStatus::Unreachable)) => {}
            (Err(TrialsStatus::Unreachable), r) => prop_assert_eq!(r, Err(TrialsStatus::Unreachable)),
            (Err(TrialsStatus::NotInTable), r) => prop_assert_eq!(r, Err(TrialsStatus::NotInTable)),
            (a, b) => prop_assert!(false, "unexpected {a:?} → {b:?}"),
        }
    }

    #[test]
    fn never_panics_on_any_json(
        add in any_json(),
        name in prop_oneof![Just("에테르넬 메이지햇".to_owned()), Just("제네시스 스태프".to_owned()), ".{0,12}"],
        slot in prop_oneof![Just("무기".to_owned()), Just("모자".to_owned()), ".{0,6}"],
        level in any::<u32>(),
        class in prop_oneof![class().prop_map(str::to_owned), ".{0,8}"],
        attack in any::<u32>(),
        magic in any::<u32>(),
    ) {
        let out = flame_expectation(&FlameInput {
            item_name: &name,
            slot: &slot,
            level,
            character_class: &class,
            add_option: &add,
            base_attack_power: attack,
            base_magic_power: magic,
        });
        let all = [
            (out.powerful, out.status.powerful),
            (out.eternal, out.status.eternal),
            (out.abyss, out.status.abyss),
        ];
        for (trials, status) in all {
            prop_assert!(trials.is_finite() && trials >= 0.0);
            match status {
                TrialsStatus::Expected => prop_assert!(trials >= 1.0),
                _ => prop_assert_eq!(trials, 0.0),
            }
            if out.target.is_none() && out.category.is_none() {
                prop_assert_eq!(status, TrialsStatus::NoTarget);
            }
        }
        prop_assert_eq!(out.category.is_some(), out.status.powerful != TrialsStatus::NoTarget);
    }
}
