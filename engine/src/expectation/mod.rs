//! Expected cost of a character's equipment (the original's V4 API).
//!
//! Entry point: [`Calculator`] — built once from the embedded tables, then
//! `compute(equipment_json)` per character.

pub mod response;

pub use response::*;
