//! Any bytes → `Calculator::compute` must return Ok or a typed error, never
//! panic, hang or allocate without bound; an Ok response keeps its invariants.
#![no_main]

use engine::expectation::Calculator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = Calculator::embedded().compute("fuzz", data, String::new()) {
        for preset in &response.presets {
            let total: f64 = preset.items.iter().map(|i| i.expected_cost).sum();
            assert_eq!(preset.total_expected_cost, total);
            assert!(total.is_finite() && total >= 0.0);
        }
        let _ = serde_json::to_vec(&response);
    }
});
