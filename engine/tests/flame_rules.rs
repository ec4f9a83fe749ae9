//! The original's flame rules, one concrete expectation each: class
//! weights (`JobStatMapping`, `JobWeights`), target (`FlameScoreResolver`),
//! level buckets and values (`FlameStatTable`), weapon lines, stage odds
//! (`FlameStageProbability`), boss list (`BossEquipmentRegistry`), the
//! choose-k DP (`FlameDpCalculator`) and the rounding / zero cases of
//! `PresetCalculationHelper`. (The original's own flame unit tests are not
//! in the public index; these expectations are taken from the documented
//! contracts of its sources and checked by hand.)

use engine::expectation::flame;

use flame::category::is_boss_equipment;
use flame::pmf::{option_pmfs, weapon_att_bonus};
use flame::tables::tables;
use flame::weights::nexon_int;
use flame::{
    expected_trials, flame_expectation, round_trials, AddOption, FlameCategory, FlameInput, FlameOption, FlameOutcome, FlameType,
    JobWeights, TrialsStatus, WeaponBase,
};
use serde_json::{json, Value};

fn stats(w: &JobWeights) -> [u32; 4] {
    [w.w_str, w.w_dex, w.w_int, w.w_luk]
}

#[test]
fn class_weights() {
    let evan = JobWeights::for_class("에반");
    assert_eq!(stats(&evan), [0, 0, 10, 1]);
    assert_eq!(
        (evan.w_hp, evan.w_mp, evan.w_allstat_pct, evan.w_att, evan.w_mag, evan.w_dmg_pct, evan.w_boss_dmg_pct),
        (0, 0, 100, 40, 40, 140, 140)
    );
    assert_eq!(stats(&JobWeights::for_class("메카닉")), [1, 10, 0, 0]);
    assert_eq!(stats(&JobWeights::for_class("히어로")), [10, 1, 0, 0]);
    assert_eq!(stats(&JobWeights::for_class("나이트로드")), [0, 1, 0, 10]);
    // Two sub stats.
    assert_eq!(stats(&JobWeights::for_class("섀도어")), [1, 1, 0, 10]);
    // Three main stats.
    let xenon = JobWeights::for_class("제논");
    assert_eq!(stats(&xenon), [10, 10, 0, 10]);
    assert_eq!(xenon.w_allstat_pct, 100);
    // HP and attack only.
    let da = JobWeights::for_class("데몬어벤져");
    assert_eq!(da, JobWeights { w_hp: 10, w_att: 1500, ..JobWeights::ZERO }, "demon avenger weights");
    // Blank / unknown → STR main, DEX sub.
    assert_eq!(stats(&JobWeights::for_class("")), [10, 1, 0, 0]);
    assert_eq!(stats(&JobWeights::for_class("모험가")), [10, 1, 0, 0]);
}

#[test]
fn target_is_weighted_add_option() {
    // Evan's Genesis staff: INT 24·10 + LUK 24·1 + all stat 4 %·100 +
    // magic 250·40 (STR/DEX weigh 0 for Evan).
    let add = json!({"str": "24", "dex": "24", "int": "24", "luk": "24", "max_hp": "0",
        "attack_power": "0", "magic_power": "250", "boss_damage": "0", "damage": "0",
        "all_stat": "4", "equipment_level_decrease": 0});
    let a = AddOption::from_json(&add);
    assert_eq!(a.score(&JobWeights::for_class("에반")), 10664);
    // Mechanic: DEX 10, STR 1, magic still 40.
    assert_eq!(a.score(&JobWeights::for_class("메카닉")), 24 * 10 + 24 + 400 + 250 * 40);
    // Demon avenger: only HP (×10) and attack (×1500).
    let da = AddOption::from_json(&json!({"max_hp": "1200", "attack_power": "3", "str": "90"}));
    assert_eq!(da.score(&JobWeights::for_class("데몬어벤져")), 12000 + 4500);
}

#[test]
fn nexon_numbers() {
    assert_eq!(nexon_int(&json!("24")), 24);
    assert_eq!(nexon_int(&json!(24)), 24);
    assert_eq!(nexon_int(&json!("-5")), -5);
    assert_eq!(nexon_int(&json!("1,234")), 1234);
    assert_eq!(nexon_int(&json!("abc")), 0);
    assert_eq!(nexon_int(&json!("null")), 0);
    assert_eq!(nexon_int(&Value::Null), 0);
    assert_eq!(nexon_int(&json!(1.5)), 0);
    assert_eq!(nexon_int(&json!("99999999999")), 0, "outside i32");
    assert_eq!(nexon_int(&json!(1u64 << 40)), 0, "outside i32");
    assert_eq!(nexon_int(&json!({"a": 1})), 0);
}

#[test]
fn level_buckets_and_values() {
    let t = tables();
    for (level, bucket) in [
        (0, 100),
        (75, 100),
        (100, 100),
        (119, 110),
        (135, 130),
        (145, 140),
        (165, 160),
        (175, 170),
        (199, 180),
        (249, 200),
        (250, 250),
        (300, 250),
    ] {
        assert_eq!(t.level_table(level).bucket, bucket, "level {level}");
    }
    let l200 = t.level_table(200);
    for stage in 1..=7u8 {
        assert_eq!(l200.value(FlameOption::Str, stage), Some(11 * u32::from(stage)));
        assert_eq!(l200.value(FlameOption::StrDex, stage), Some(6 * u32::from(stage)));
        assert_eq!(l200.value(FlameOption::MaxHp, stage), Some(600 * u32::from(stage)));
    }
    assert_eq!(l200.value(FlameOption::Str, 0), None);
    assert_eq!(l200.value(FlameOption::Str, 8), None);
    let l160 = t.level_table(160);
    assert_eq!(l160.value(FlameOption::Str, 2), None, "160 has no stages 1–2");
    assert_eq!(l160.value(FlameOption::Str, 3), Some(27));
    assert_eq!(l160.value(FlameOption::DmgPct, 5), None, "160 has no damage %");
    let l170 = t.level_table(170);
    assert_eq!(l170.value(FlameOption::Att, 5), Some(64));
    assert_eq!(l170.value(FlameOption::Att, 6), None, "170 stops at stage 5");
    // The original's table, as it is: boss damage 6/7 at stages 6–7.
    assert_eq!(t.level_table(250).value(FlameOption::BossDmgPct, 6), Some(6));
}

#[test]
fn weapon_lines() {
    assert_eq!(weapon_att_bonus(200, 1, 100), 480);
    assert_eq!(weapon_att_bonus(200, 3, 100), 1800);
    assert_eq!(weapon_att_bonus(200, 7, 100), 5880);
    assert_eq!(weapon_att_bonus(160, 4, 293), 6446);
    assert_eq!(weapon_att_bonus(200, 7, 0), 0);
    assert!(weapon_att_bonus(u32::MAX, 7, u32::MAX) > 0, "saturates, no overflow");
    // Boss damage on a weapon is 2 × stage, weighted 140.
    let pmfs =
        option_pmfs(FlameCategory::BossWeapon, FlameType::Abyss, 200, &JobWeights::for_class("에반"), WeaponBase { attack: 0, magic: 406 });
    let boss = pmfs.iter().find(|p| p.option == FlameOption::BossDmgPct).unwrap();
    let scores: Vec<u64> = boss.entries.iter().map(|e| e.0).collect();
    assert_eq!(scores, vec![10 * 140, 12 * 140, 14 * 140]);
    let mag = pmfs.iter().find(|p| p.option == FlameOption::Mag).unwrap();
    assert_eq!(mag.entries[0].0, weapon_att_bonus(200, 5, 406) * 40);
    // Weapon pool: 19 options (no speed / jump).
    assert_eq!(pmfs.len(), 19);
}

#[test]
fn stage_odds() {
    let t = tables();
    let stages = |boss, f| t.stage_probs(boss, f).iter().map(|e| e.0).collect::<Vec<_>>();
    assert_eq!(stages(true, FlameType::Powerful), vec![3, 4, 5, 6]);
    assert_eq!(stages(false, FlameType::Powerful), vec![1, 2, 3, 4]);
    assert_eq!(stages(true, FlameType::Eternal), vec![4, 5, 6, 7]);
    assert_eq!(stages(false, FlameType::Eternal), vec![2, 3, 4, 5]);
    assert_eq!(stages(true, FlameType::Abyss), vec![5, 6, 7]);
    assert_eq!(stages(false, FlameType::Abyss), vec![3, 4, 5]);
    assert_eq!(t.stage_probs(true, FlameType::Abyss)[0].1, 0.63);
}

#[test]
fn boss_equipment() {
    let c = FlameCategory::classify;
    assert_eq!(c("제네시스 스태프", "무기", "에반"), FlameCategory::BossWeapon);
    assert_eq!(c("제네시스 라즐리", "무기", "제로"), FlameCategory::OtherWeapon, "Zero's weapon is never boss");
    assert_eq!(c("에테르넬 메이지햇", "모자", "제로"), FlameCategory::BossArmor, "only Zero's weapon");
    assert_eq!(c("에테르넬 메이지햇", "모자", "에반"), FlameCategory::BossArmor);
    assert_eq!(c("아케인셰이드 메이지슈즈", "신발", "에반"), FlameCategory::BossArmor);
    assert_eq!(c("몽환의 벨트", "벨트", "에반"), FlameCategory::BossArmor);
    assert_eq!(c("몽환의 벨트 ", "벨트", "에반"), FlameCategory::OtherArmor, "accessories match exactly");
    assert_eq!(c("저주받은 적의 마도서", "포켓 아이템", "에반"), FlameCategory::BossArmor);
    assert_eq!(c("저주받은 청의 마도서", "포켓 아이템", "에반"), FlameCategory::OtherArmor);
    // 에테르넬 is an armor prefix, not a weapon prefix.
    assert_eq!(c("에테르넬 스태프", "무기", "에반"), FlameCategory::OtherWeapon);
    assert_eq!(c("블루 엘리멘탈 글로브", "장갑", "에반"), FlameCategory::OtherArmor);
    assert!(!is_boss_equipment("", false));
    assert!(!is_boss_equipment("   ", true));
    assert_eq!(FlameCategory::BossWeapon.name(), "BOSS_WEAPON");
    assert_eq!(FlameCategory::OtherArmor.name(), "OTHER_ARMOR");
}

/// A weapon whose target one magic line always meets: a boss flame needs
/// that line among its 4 of 19 options, P = 4/19, for every flame type.
#[test]
fn weapon_one_line_suffices() {
    let w = JobWeights::for_class("메카닉");
    for flame in FlameType::ALL {
        let trials = expected_trials(FlameCategory::BossWeapon, flame, 200, &w, 7864, WeaponBase { attack: 150, magic: 0 }).unwrap();
        assert!((trials - 19.0 / 4.0).abs() < 1e-9, "{flame:?}: {trials}");
    }
    // Attack and magic both suffice: P = 1 − C(17,4)/C(19,4) = 1496/3876.
    let trials = expected_trials(
        FlameCategory::BossWeapon,
        FlameType::Powerful,
        200,
        &JobWeights::for_class("에반"),
        10664,
        WeaponBase { attack: 251, magic: 406 },
    )
    .unwrap();
    assert!((trials - 3876.0 / 1496.0).abs() < 1e-9, "{trials}");
    assert_eq!(round_trials(trials), 2.59);
}

fn item<'a>(name: &'a str, slot: &'a str, level: u32, class: &'a str, add: &'a Value) -> FlameInput<'a> {
    FlameInput { item_name: name, slot, level, character_class: class, add_option: add, base_attack_power: 0, base_magic_power: 0 }
}

#[test]
fn no_target_means_no_flame() {
    for add in [
        json!({}),
        json!({"str": "0", "int": "0"}),
        json!({"str": "120"}), // STR weighs 0 for Evan
        json!({"int": "-30"}),
        json!("str 12"),
        json!([1, 2, 3]),
        Value::Null,
    ] {
        let out = flame_expectation(&item("에테르넬 메이지햇", "모자", 250, "에반", &add));
        assert_eq!(out, FlameOutcome::NONE, "{add}");
    }
}

#[test]
fn zeros_carry_a_reason() {
    // 100 % all stat on a 200 boss armor: far above four lines' best.
    let add = json!({"all_stat": "100"});
    let out = flame_expectation(&item("아케인셰이드 메이지슈즈", "신발", 200, "에반", &add));
    assert_eq!(out.target, Some(10000));
    assert_eq!((out.powerful, out.eternal, out.abyss), (0.0, 0.0, 0.0));
    assert_eq!(out.status.powerful, TrialsStatus::Unreachable);
    assert_eq!(out.status.abyss, TrialsStatus::Unreachable);

    // Level 160 non-boss: powerful and eternal roll stages the table lacks.
    let add = json!({"int": "65", "all_stat": "7"});
    let out = flame_expectation(&item("저주받은 청의 마도서", "포켓 아이템", 160, "에반", &add));
    assert_eq!(out.status.powerful, TrialsStatus::NotInTable);
    assert_eq!(out.status.eternal, TrialsStatus::NotInTable);
    assert_eq!(out.status.abyss, TrialsStatus::Expected);
    assert!(out.abyss >= 1.0);

    // A target beyond u32: not computed, not panicking.
    let add = json!({"attack_power": "2000000000"});
    let out = flame_expectation(&item("에테르넬 메이지햇", "모자", 250, "에반", &add));
    assert_eq!(out.target, None);
    assert_eq!(out.category, Some("BOSS_ARMOR"));
    assert_eq!(out.status.powerful, TrialsStatus::TooLarge);
    assert_eq!((out.powerful, out.eternal, out.abyss), (0.0, 0.0, 0.0));
}

/// Levels 170–199 have no stage 6–7 values; a boss weapon keeps only its
/// attack, magic and boss-damage lines (3 < 4): no flame is priced, and
/// the status says the table cannot answer (the original: 0).
#[test]
fn boss_flame_needs_four_options() {
    let add = json!({"magic_power": "100"});
    let mut input = item("아케인셰이드 스태프", "무기", 175, "에반", &add);
    input.base_magic_power = 200;
    let out = flame_expectation(&input);
    assert_eq!(out.category, Some("BOSS_WEAPON"));
    assert_eq!(out.status.powerful, TrialsStatus::NotInTable);
    assert_eq!(out.status.eternal, TrialsStatus::NotInTable);
    assert_eq!(out.status.abyss, TrialsStatus::NotInTable);
    // At 200 the same weapon is priced.
    input.level = 200;
    assert_eq!(flame_expectation(&input).status.abyss, TrialsStatus::Expected);
}

#[test]
fn rounding_is_half_up_two_decimals() {
    assert_eq!(round_trials(2.5909090909), 2.59);
    assert_eq!(round_trials(2.345), 2.35);
    assert_eq!(round_trials(1.0), 1.0);
    assert_eq!(round_trials(24126984.126984), 24126984.13);
}

/// Better flames make the target easier: for a fixed item, abyss ≤ eternal
/// ≤ powerful (boss armor, where every flame's pool is complete).
#[test]
fn stronger_flames_need_fewer_trials() {
    let add = json!({"int": "96", "luk": "48", "all_stat": "6", "magic_power": "3"});
    let out = flame_expectation(&item("에테르넬 메이지햇", "모자", 250, "에반", &add));
    assert_eq!(out.status.powerful, TrialsStatus::Expected);
    assert!(out.abyss <= out.eternal && out.eternal <= out.powerful, "{out:?}");
}
