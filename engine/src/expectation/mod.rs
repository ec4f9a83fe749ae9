//! Expected cost of a character's equipment (the original's V4 API).
//!
//! Entry point: [`Calculator`] — built once from the embedded tables
//! (`Calculator::embedded()`), then `compute(user_ign, equipment_json,
//! calculated_at)` per character. Parsing: [`equipment`]; starforce and
//! noljang math: [`starforce`]; cost text: [`cost_text`]; assembly:
//! [`calculator`].

pub mod calculated_at;
pub mod calculator;
pub mod cost_text;
mod decimal;
pub mod equipment;
pub mod error;
pub mod response;
pub mod starforce;

pub mod cube; // owned by the cube helper
pub mod flame; // owned by the flame helper

pub use calculator::Calculator;
pub use error::CalcError;
pub use response::*;

/// A fixture's bytes for the unit tests: the repository's `fixtures/maple/`,
/// or `$MAPLE_SHARED_DATA` (same layout) when set. Panics naming the path.
#[cfg(test)]
pub(crate) fn test_fixture(name: &str) -> Vec<u8> {
    let dir = match std::env::var_os("MAPLE_SHARED_DATA") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple"),
    };
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
