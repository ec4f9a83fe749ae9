//! Boss drop or not, weapon or not: decides the stage odds, the option pool
//! and how many lines a flame rolls.

use super::tables::tables;

/// `item_equipment_slot` of a weapon.
pub const WEAPON_SLOT: &str = "무기";
/// Zero's weapons are never treated as boss drops (the original's
/// `BossEquipmentRegistry.isZeroWeapon`).
const ZERO_CLASS: &str = "제로";

/// The original's `FlameEquipCategory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlameCategory {
    BossWeapon,
    BossArmor,
    OtherWeapon,
    OtherArmor,
}

impl FlameCategory {
    pub fn of(boss_drop: bool, weapon: bool) -> FlameCategory {
        match (boss_drop, weapon) {
            (true, true) => FlameCategory::BossWeapon,
            (true, false) => FlameCategory::BossArmor,
            (false, true) => FlameCategory::OtherWeapon,
            (false, false) => FlameCategory::OtherArmor,
        }
    }

    /// Classifies an item the way the original's `FlameInputResolver` does:
    /// weapon iff the slot is `무기`; a weapon is a boss drop iff its name
    /// starts with a boss weapon prefix (never for class 제로); anything
    /// else iff its name starts with a boss armor prefix or equals a boss
    /// accessory name.
    pub fn classify(item_name: &str, slot: &str, character_class: &str) -> FlameCategory {
        let weapon = slot == WEAPON_SLOT;
        let boss = if weapon && character_class == ZERO_CLASS { false } else { is_boss_equipment(item_name, weapon) };
        FlameCategory::of(boss, weapon)
    }

    /// Boss drops always roll 4 lines; other items 1 to 4 lines, uniformly.
    pub fn boss_drop(self) -> bool {
        matches!(self, FlameCategory::BossWeapon | FlameCategory::BossArmor)
    }

    pub fn weapon(self) -> bool {
        matches!(self, FlameCategory::BossWeapon | FlameCategory::OtherWeapon)
    }

    /// The name the original's diagnostics use (`_category`).
    pub fn name(self) -> &'static str {
        match self {
            FlameCategory::BossWeapon => "BOSS_WEAPON",
            FlameCategory::BossArmor => "BOSS_ARMOR",
            FlameCategory::OtherWeapon => "OTHER_WEAPON",
            FlameCategory::OtherArmor => "OTHER_ARMOR",
        }
    }
}

/// The original's `BossEquipmentRegistry.isBossEquipment`.
pub fn is_boss_equipment(item_name: &str, weapon: bool) -> bool {
    if item_name.trim().is_empty() {
        return false;
    }
    let lists = &tables().boss;
    if weapon {
        lists.weapon_prefixes.iter().any(|p| item_name.starts_with(p.as_str()))
    } else {
        lists.armor_prefixes.iter().any(|p| item_name.starts_with(p.as_str())) || lists.accessory_names.iter().any(|n| n == item_name)
    }
}
