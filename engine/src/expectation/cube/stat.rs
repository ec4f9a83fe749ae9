//! Stat keywords in potential line text ("STR +12%", "보스 몬스터 공격 시 데미지 +40%").
//!
//! The rules are the original's `StatType` / `StatParser` (zbnerd/MapleExpectation):
//! keywords, declaration order, longest-first multi-match, proc lines ignored.
//! The engines depend on these exact rules — the DP target inferred from a
//! line set, and therefore the price, changes if any of them changes.

/// A stat a potential line can carry. Declaration order matters: ties in the
/// DP target inference and `find_type_with_unit` pick the first declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum StatType {
    Str,
    Dex,
    Int,
    Luk,
    AllStat,
    StrPercent,
    DexPercent,
    IntPercent,
    LukPercent,
    AllStatPercent,
    AttackPower,
    MagicPower,
    AttackPowerPercent,
    MagicPowerPercent,
    BossDamage,
    IgnoreDefense,
    Damage,
    CriticalDamage,
    CooldownReduction,
    ItemDrop,
    MesoDrop,
    Hp,
    HpPercent,
    LevelStr,
    LevelDex,
    LevelInt,
    LevelLuk,
}

/// Option category, used to detect mixed ("compound") line sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Stat,
    BossIed,
    AtkMag,
    CritDmg,
    Cooldown,
    Other,
}

/// Number of [`StatType`] variants (dense per-type arrays are indexed by `as usize`).
pub const STAT_TYPE_COUNT: usize = 27;

impl StatType {
    /// Every type in declaration order.
    pub const ALL: [StatType; STAT_TYPE_COUNT] = [
        StatType::Str,
        StatType::Dex,
        StatType::Int,
        StatType::Luk,
        StatType::AllStat,
        StatType::StrPercent,
        StatType::DexPercent,
        StatType::IntPercent,
        StatType::LukPercent,
        StatType::AllStatPercent,
        StatType::AttackPower,
        StatType::MagicPower,
        StatType::AttackPowerPercent,
        StatType::MagicPowerPercent,
        StatType::BossDamage,
        StatType::IgnoreDefense,
        StatType::Damage,
        StatType::CriticalDamage,
        StatType::CooldownReduction,
        StatType::ItemDrop,
        StatType::MesoDrop,
        StatType::Hp,
        StatType::HpPercent,
        StatType::LevelStr,
        StatType::LevelDex,
        StatType::LevelInt,
        StatType::LevelLuk,
    ];

    /// The original's enum constant name (used in engine diagnostics, `DP(STR_PERCENT>=30)`).
    pub fn name(self) -> &'static str {
        match self {
            StatType::Str => "STR",
            StatType::Dex => "DEX",
            StatType::Int => "INT",
            StatType::Luk => "LUK",
            StatType::AllStat => "ALL_STAT",
            StatType::StrPercent => "STR_PERCENT",
            StatType::DexPercent => "DEX_PERCENT",
            StatType::IntPercent => "INT_PERCENT",
            StatType::LukPercent => "LUK_PERCENT",
            StatType::AllStatPercent => "ALLSTAT_PERCENT",
            StatType::AttackPower => "ATTACK_POWER",
            StatType::MagicPower => "MAGIC_POWER",
            StatType::AttackPowerPercent => "ATTACK_POWER_PERCENT",
            StatType::MagicPowerPercent => "MAGIC_POWER_PERCENT",
            StatType::BossDamage => "BOSS_DAMAGE",
            StatType::IgnoreDefense => "IGNORE_DEFENSE",
            StatType::Damage => "DAMAGE",
            StatType::CriticalDamage => "CRITICAL_DAMAGE",
            StatType::CooldownReduction => "COOLDOWN_REDUCTION",
            StatType::ItemDrop => "ITEM_DROP",
            StatType::MesoDrop => "MESO_DROP",
            StatType::Hp => "HP",
            StatType::HpPercent => "HP_PERCENT",
            StatType::LevelStr => "LEVEL_STR",
            StatType::LevelDex => "LEVEL_DEX",
            StatType::LevelInt => "LEVEL_INT",
            StatType::LevelLuk => "LEVEL_LUK",
        }
    }

    /// Text the line must contain.
    pub fn keyword(self) -> &'static str {
        match self {
            StatType::Str | StatType::StrPercent => "STR",
            StatType::Dex | StatType::DexPercent => "DEX",
            StatType::Int | StatType::IntPercent => "INT",
            StatType::Luk | StatType::LukPercent => "LUK",
            StatType::AllStat | StatType::AllStatPercent => "올스탯",
            StatType::AttackPower | StatType::AttackPowerPercent => "공격력",
            StatType::MagicPower | StatType::MagicPowerPercent => "마력",
            StatType::BossDamage => "보스 몬스터 공격 시 데미지",
            StatType::IgnoreDefense => "몬스터 방어율 무시",
            StatType::Damage => "데미지",
            StatType::CriticalDamage => "크리티컬 데미지",
            StatType::CooldownReduction => "재사용 대기시간",
            StatType::ItemDrop => "아이템 드롭률",
            StatType::MesoDrop => "메소 획득량",
            StatType::Hp | StatType::HpPercent => "HP",
            StatType::LevelStr => "캐릭터 기준 9레벨 당 STR",
            StatType::LevelDex => "캐릭터 기준 9레벨 당 DEX",
            StatType::LevelInt => "캐릭터 기준 9레벨 당 INT",
            StatType::LevelLuk => "캐릭터 기준 9레벨 당 LUK",
        }
    }

    /// Whether the type is the "%" form (a line matches only types of its own unit).
    pub fn is_percent(self) -> bool {
        matches!(
            self,
            StatType::StrPercent
                | StatType::DexPercent
                | StatType::IntPercent
                | StatType::LukPercent
                | StatType::AllStatPercent
                | StatType::AttackPowerPercent
                | StatType::MagicPowerPercent
                | StatType::BossDamage
                | StatType::IgnoreDefense
                | StatType::Damage
                | StatType::CriticalDamage
                | StatType::ItemDrop
                | StatType::MesoDrop
                | StatType::HpPercent
        )
    }

    /// One of STR/DEX/INT/LUK (any unit, and per-level): an all-stat % line counts toward it.
    pub fn is_individual_stat(self) -> bool {
        matches!(
            self,
            StatType::Str
                | StatType::Dex
                | StatType::Int
                | StatType::Luk
                | StatType::StrPercent
                | StatType::DexPercent
                | StatType::IntPercent
                | StatType::LukPercent
                | StatType::LevelStr
                | StatType::LevelDex
                | StatType::LevelInt
                | StatType::LevelLuk
        )
    }

    #[cfg(test)]
    fn is_level_based(self) -> bool {
        matches!(self, StatType::LevelStr | StatType::LevelDex | StatType::LevelInt | StatType::LevelLuk)
    }

    pub fn category(self) -> Category {
        match self {
            StatType::Str
            | StatType::Dex
            | StatType::Int
            | StatType::Luk
            | StatType::AllStat
            | StatType::StrPercent
            | StatType::DexPercent
            | StatType::IntPercent
            | StatType::LukPercent
            | StatType::AllStatPercent
            | StatType::LevelStr
            | StatType::LevelDex
            | StatType::LevelInt
            | StatType::LevelLuk => Category::Stat,
            StatType::BossDamage | StatType::IgnoreDefense => Category::BossIed,
            StatType::AttackPower | StatType::MagicPower | StatType::AttackPowerPercent | StatType::MagicPowerPercent => Category::AtkMag,
            StatType::CriticalDamage => Category::CritDmg,
            StatType::CooldownReduction => Category::Cooldown,
            StatType::Damage | StatType::ItemDrop | StatType::MesoDrop | StatType::Hp | StatType::HpPercent => Category::Other,
        }
    }

    /// Categories other than `Other` count toward "compound" detection.
    pub fn has_valid_category(self) -> bool {
        self.category() != Category::Other
    }
}

/// Proc lines ("피격 시 …", "… 오토스틸") carry no stat.
fn is_proc_line(line: &str) -> bool {
    line.contains("피격 시") || line.contains("오토스틸")
}

/// Candidates for the multi-match, longest keyword first; ties keep declaration
/// order (the original sorts a declaration-ordered list with a stable sort).
/// Written out once (a test checks it against that rule) so the hot path does
/// not sort or count chars.
const PERCENT_CANDIDATES: [StatType; 14] = [
    StatType::BossDamage,
    StatType::IgnoreDefense,
    StatType::CriticalDamage,
    StatType::ItemDrop,
    StatType::MesoDrop,
    StatType::StrPercent,
    StatType::DexPercent,
    StatType::IntPercent,
    StatType::LukPercent,
    StatType::AllStatPercent,
    StatType::AttackPowerPercent,
    StatType::Damage,
    StatType::MagicPowerPercent,
    StatType::HpPercent,
];
const FLAT_CANDIDATES: [StatType; 9] = [
    StatType::CooldownReduction,
    StatType::Str,
    StatType::Dex,
    StatType::Int,
    StatType::Luk,
    StatType::AllStat,
    StatType::AttackPower,
    StatType::MagicPower,
    StatType::Hp,
];

fn multi_match_candidates(percent: bool) -> &'static [StatType] {
    if percent {
        &PERCENT_CANDIDATES
    } else {
        &FLAT_CANDIDATES
    }
}

/// Level-based lines ("캐릭터 기준 9레벨 당 INT +2") are detected before anything else.
fn detect_level_based(line: &str) -> Option<StatType> {
    if !line.contains("캐릭터 기준") || !line.contains("레벨 당") {
        return None;
    }
    [("STR", StatType::LevelStr), ("DEX", StatType::LevelDex), ("INT", StatType::LevelInt), ("LUK", StatType::LevelLuk)]
        .into_iter()
        .find(|(k, _)| line.contains(k))
        .map(|(_, t)| t)
}

/// Every stat type a line carries (the original's `findAllTypesOrEmpty`):
/// proc lines → none; per-level lines → that one type; otherwise every keyword
/// of the line's unit, longest first, each match removed from the text so
/// "보스 몬스터 공격 시 데미지" does not also count as "데미지".
pub fn find_all_types(line: &str) -> Vec<StatType> {
    let mut found = Vec::new();
    if line.is_empty() || is_proc_line(line) {
        return found;
    }
    if let Some(t) = detect_level_based(line) {
        found.push(t);
        return found;
    }
    let percent = line.contains('%');
    let mut remaining = std::borrow::Cow::Borrowed(line);
    for &t in multi_match_candidates(percent) {
        if remaining.contains(t.keyword()) {
            found.push(t);
            remaining = std::borrow::Cow::Owned(remaining.replace(t.keyword(), ""));
        }
    }
    found
}

/// Whether the exact-lines engine looks the line up at all (the original's
/// `findTypeWithUnit(...) != UNKNOWN`): a line with no stat keyword of its unit
/// ("최대 MP +9%", proc lines) is junk and is not priced (probability factor 1).
pub fn is_priced_line(line: &str) -> bool {
    if line.is_empty() || is_proc_line(line) {
        return false;
    }
    let percent = line.contains('%');
    StatType::ALL.into_iter().any(|t| t.is_percent() == percent && line.contains(t.keyword()))
}

/// Whether the text looks like a main-stat line (drift detection: such a line
/// that matches no type means the keywords are out of date).
pub fn looks_like_primary_stat(line: &str) -> bool {
    let upper = line.to_uppercase();
    ["STR", "DEX", "INT", "LUK"].iter().any(|k| upper.contains(k)) || line.contains("올스탯") || line.contains("올 스탯")
}

/// The line's number (the original's `StatParser.parseNum`): keep ASCII digits
/// and '-', parse as i32; anything unparsable (empty, "2-3", overflow) is 0.
pub fn parse_num(line: &str) -> i32 {
    let mut buf = [0u8; 24];
    let mut n = 0usize;
    for b in line.bytes() {
        if b.is_ascii_digit() || b == b'-' {
            if n == buf.len() {
                return 0; // longer than any i32: overflow → 0
            }
            buf[n] = b;
            n += 1;
        }
    }
    // Only ASCII bytes were copied, so this is valid UTF-8.
    std::str::from_utf8(&buf[..n]).ok().and_then(|s| s.parse::<i32>().ok()).unwrap_or(0)
}

/// A stat a line carries, with the line's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contribution {
    pub stat: StatType,
    pub value: i32,
}

/// Why a line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftError {
    pub line: String,
}

/// All contributions of a line (the original's `extractAll`). A line that looks
/// like a main stat but matches no keyword is an error, not a silent zero.
pub fn contributions(line: &str) -> Result<Vec<Contribution>, DriftError> {
    let types = find_all_types(line);
    if types.is_empty() {
        if looks_like_primary_stat(line) {
            return Err(DriftError { line: line.to_owned() });
        }
        return Ok(Vec::new());
    }
    let value = parse_num(line);
    Ok(types.into_iter().map(|stat| Contribution { stat, value }).collect())
}

/// How much a line adds toward `target` (the original's `extractContributionFor`):
/// the direct match, else an all-stat % line for an individual-stat target, else 0.
pub fn contribution_for(contribs: &[Contribution], target: StatType) -> i32 {
    if let Some(c) = contribs.iter().find(|c| c.stat == target) {
        return c.value;
    }
    if target.is_individual_stat() {
        if let Some(c) = contribs.iter().find(|c| c.stat == StatType::AllStatPercent) {
            return c.value;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_table_is_complete() {
        for (i, t) in StatType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
    }

    #[test]
    fn candidate_order_is_longest_first_then_declaration() {
        for percent in [true, false] {
            let mut expected: Vec<StatType> =
                StatType::ALL.into_iter().filter(|t| !t.is_level_based() && t.is_percent() == percent).collect();
            expected.sort_by_key(|t| std::cmp::Reverse(t.keyword().chars().count())); // stable
            assert_eq!(multi_match_candidates(percent), expected.as_slice(), "percent={percent}");
        }
    }

    #[test]
    fn longest_keyword_wins_and_is_consumed() {
        assert_eq!(find_all_types("보스 몬스터 공격 시 데미지 +40%"), vec![StatType::BossDamage]);
        assert_eq!(find_all_types("보스 몬스터 데미지 +35%"), vec![StatType::Damage]);
        assert_eq!(find_all_types("크리티컬 데미지 +8%"), vec![StatType::CriticalDamage]);
        assert_eq!(find_all_types("STR +12%"), vec![StatType::StrPercent]);
        assert_eq!(find_all_types("STR +30"), vec![StatType::Str]);
        assert_eq!(find_all_types("올스탯 +9%"), vec![StatType::AllStatPercent]);
        assert_eq!(find_all_types("최대 HP +12%"), vec![StatType::HpPercent]);
        assert_eq!(find_all_types("스킬 재사용 대기시간 -2초"), vec![StatType::CooldownReduction]);
        assert_eq!(find_all_types("캐릭터 기준 9레벨 당 INT +2"), vec![StatType::LevelInt]);
        assert!(find_all_types("피격 시 5% 확률로 데미지의 40% 무시").is_empty());
        assert!(find_all_types("공격 시 7% 확률로 오토스틸").is_empty());
        assert!(find_all_types("최대 MP +9%").is_empty());
    }

    #[test]
    fn parse_num_follows_java_parse_int() {
        assert_eq!(parse_num("STR +12%"), 12);
        assert_eq!(parse_num("스킬 재사용 대기시간 -2초"), -2);
        assert_eq!(parse_num("캐릭터 기준 9레벨 당 INT +2"), 92);
        assert_eq!(parse_num("no digits"), 0);
        assert_eq!(parse_num("1-2"), 0);
        assert_eq!(parse_num("99999999999"), 0);
    }

    #[test]
    fn priced_lines_match_find_type_with_unit() {
        assert!(is_priced_line("STR +12%"));
        assert!(is_priced_line("최대 HP +9%"));
        assert!(is_priced_line("공격력 +14"));
        assert!(!is_priced_line("최대 MP +9%"));
        assert!(!is_priced_line("피격 시 5% 확률로 데미지의 40% 무시"));
        assert!(!is_priced_line("이동속도 +5"));
        assert!(!is_priced_line(""));
    }

    #[test]
    fn drift_is_an_error() {
        assert!(contributions("올 스탯 +9%").is_err());
        assert_eq!(contributions("최대 MP +9%").unwrap(), vec![]);
    }

    #[test]
    fn all_stat_percent_counts_for_individual_stats_only() {
        let c = contributions("올스탯 +9%").unwrap();
        assert_eq!(contribution_for(&c, StatType::StrPercent), 9);
        assert_eq!(contribution_for(&c, StatType::LevelInt), 9);
        assert_eq!(contribution_for(&c, StatType::AttackPowerPercent), 0);
    }
}
