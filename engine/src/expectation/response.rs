//! The V4 response, field for field as the original's V4 API returns it
//! (camelCase). Where we differ on purpose, the field's comment says why
//! (see ../shared/ORIGINAL_DEFECTS.md and the README).

use serde::Serialize;

/// Costs by source. Meso amounts; fractional where the starforce expectation is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostBreakdown {
    pub black_cube_cost: f64,
    pub red_cube_cost: f64,
    pub additional_cube_cost: f64,
    pub starforce_cost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CubeExpectation {
    /// round(expected trials) × cost per trial; 0 when `available` is false.
    pub expected_cost: f64,
    pub expected_cost_text: String,
    pub expected_trials: u64,
    /// Korean grade of the line set ("레전드리"), null when the item has none.
    pub current_grade: Option<String>,
    /// English grade name ("LEGENDARY"), null when the item has none.
    pub target_grade: Option<String>,
    /// The option lines joined with " | ".
    pub potential: String,
    /// Ours: false when the table cannot price this line set (no rows for the
    /// level/part/grade, no additional-potential odds, or an impossible line
    /// set). The original priced those at 0 with no flag.
    pub available: bool,
    /// Why it is unavailable; absent when available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StarforceExpectation {
    pub current_star: u32,
    pub target_star: u32,
    pub is_noljang: bool,
    pub cost_without_destroy_prevention: f64,
    pub cost_without_destroy_prevention_text: String,
    pub expected_destroy_count_without: f64,
    pub cost_with_destroy_prevention: f64,
    pub cost_with_destroy_prevention_text: String,
    pub expected_destroy_count_with: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlameExpectation {
    pub powerful_flame_trials: f64,
    pub eternal_flame_trials: f64,
    pub abyss_flame_trials: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemExpectation {
    pub item_name: String,
    pub item_icon: String,
    pub item_part: String,
    pub item_level: u32,
    pub expected_cost: f64,
    pub expected_cost_text: String,
    pub cost_breakdown: CostBreakdown,
    pub enhance_path: String,
    pub potential_grade: Option<String>,
    pub additional_potential_grade: Option<String>,
    pub current_star: u32,
    pub target_star: u32,
    /// The original's serializer writes `noljang`; its spec says `isNoljang`.
    pub is_noljang: bool,
    pub special_ring_level: u32,
    pub black_cube_expectation: CubeExpectation,
    pub additional_cube_expectation: CubeExpectation,
    pub starforce_expectation: StarforceExpectation,
    pub flame_expectation: FlameExpectation,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresetExpectation {
    pub preset_no: u8,
    pub total_expected_cost: f64,
    pub total_cost_text: String,
    pub cost_breakdown: CostBreakdown,
    pub items: Vec<ItemExpectation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectationResponse {
    pub user_ign: String,
    /// ISO-8601 local date-time, as the original ("2026-11-23T09:40:00").
    pub calculated_at: String,
    pub from_cache: bool,
    pub total_expected_cost: f64,
    pub total_cost_text: String,
    pub total_cost_breakdown: CostBreakdown,
    pub max_preset_no: u8,
    pub presets: Vec<PresetExpectation>,
}

impl ExpectationResponse {
    /// Preset `n` (1..=3) if it has items.
    pub fn preset(&self, n: u8) -> Option<&PresetExpectation> {
        self.presets.iter().find(|p| p.preset_no == n)
    }
}
