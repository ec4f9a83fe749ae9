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
