//! Turning upstream equipment JSON into the stored V4 response documents.

use std::sync::Arc;

use engine::expectation::calculated_at::utc_now_iso;
use engine::expectation::Calculator;
use engine::shard::{Doc, Weigh};

/// The rendered expectation of one character: the whole response and each
/// preset on its own, every one stored as JSON + gzip + ETag.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub full: Doc,
    /// Index n-1 holds preset n; `None` when the character has no such preset.
    pub presets: Arc<[Option<Doc>]>,
}

impl Weigh for Rendered {
    fn weight(&self) -> usize {
        self.full.weight() + self.presets.iter().flatten().map(Weigh::weight).sum::<usize>()
    }
}

impl Rendered {
    pub fn preset(&self, n: u8) -> Option<&Doc> {
        self.presets.get(n.checked_sub(1)? as usize)?.as_ref()
    }
}

/// Computes and serialises (once per fetch, never per request).
pub fn render(user_ign: &str, equipment: &[u8]) -> Result<Rendered, String> {
    let resp = Calculator::embedded().compute(user_ign, equipment, utc_now_iso()).map_err(|e| e.to_string())?;
    let full = Doc::from_json(serde_json::to_vec(&resp).map_err(|e| e.to_string())?);
    let presets: Arc<[Option<Doc>]> = (1..=3u8)
        .map(|n| resp.preset(n).map(|p| Doc::from_json(serde_json::to_vec(p).expect("preset serialises"))))
        .collect();
    Ok(Rendered { full, presets })
}
