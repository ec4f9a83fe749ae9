//! Turning upstream equipment JSON into the stored V4 response documents.

use std::sync::{Arc, OnceLock};

use crate::expectation::calculated_at::utc_now_iso;
use crate::expectation::{preset_spans, to_json_with_preset_spans, Calculator, PresetSpans};
use crate::shard::{Doc, Weigh};

/// The rendered expectation of one character: the whole response, stored as
/// JSON + gzip + ETag, and each preset on its own, cut out of the whole
/// response's JSON and compressed only when first asked for (most clients
/// never ask for a single preset, so a fresh render serialises and gzips once).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub full: Doc,
    presets: Arc<PresetDocs>,
}

/// Shared by every clone of a rendering, so a preset is built at most once.
#[derive(Debug)]
struct PresetDocs {
    /// Index n-1: preset n's bytes within `full.json`; `None` when the
    /// character has no such preset.
    spans: PresetSpans,
    docs: [OnceLock<Doc>; 3],
}

impl Weigh for Rendered {
    /// Counts the presets up front whether built or not (their JSON plus a
    /// generous gzip share), so the cache's byte bound holds after they are.
    fn weight(&self) -> usize {
        let presets: usize = self.presets.spans.iter().flatten().map(|s| s.len() + s.len() / 4 + 64).sum();
        self.full.weight() + presets
    }
}

impl Rendered {
    /// A rendering from a stored whole-response document; `None` if it is
    /// not a V4 response.
    pub fn from_full(full: Doc) -> Option<Rendered> {
        let spans = preset_spans(&full.json)?;
        Some(Rendered { full, presets: Arc::new(PresetDocs { spans, docs: Default::default() }) })
    }

    /// Preset `n` (1..=3) as its own document, built on first use.
    pub fn preset(&self, n: u8) -> Option<Doc> {
        let i = usize::from(n.checked_sub(1)?);
        let span = self.presets.spans.get(i)?.clone()?;
        let doc = self.presets.docs[i].get_or_init(|| Doc::from_json(self.full.json[span].to_vec()));
        Some(doc.clone())
    }
}

/// Computes and serialises (once per fetch, never per request).
pub fn render(user_ign: &str, equipment: &[u8]) -> Result<Rendered, String> {
    let mut resp = Calculator::embedded().compute(user_ign, equipment, utc_now_iso()).map_err(|e| e.to_string())?;
    let (json, spans) = to_json_with_preset_spans(&mut resp).map_err(|e| e.to_string())?;
    let full = Doc::from_json(json);
    Ok(Rendered { full, presets: Arc::new(PresetDocs { spans, docs: Default::default() }) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_the_same_documents_as_rendering_them_alone() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/maple");
        for file in ["evan_equip.json", "mechanic_equip.json"] {
            let equipment = std::fs::read(dir.join(file)).expect("fixture");
            let r = render("tester", &equipment).unwrap();
            let resp: serde_json::Value = serde_json::from_slice(&r.full.json).unwrap();
            let at = resp["calculatedAt"].as_str().unwrap().to_owned();
            let direct = Calculator::embedded().compute("tester", &equipment, at).unwrap();
            assert_eq!(&r.full.json[..], &serde_json::to_vec(&direct).unwrap()[..], "{file}");
            for n in 0..=4u8 {
                let want = direct.preset(n).map(|p| Doc::from_json(serde_json::to_vec(p).unwrap()));
                let got = r.preset(n);
                assert_eq!(got.as_ref().map(|d| &d.json), want.as_ref().map(|d| &d.json), "{file} preset {n}");
                assert_eq!(got.as_ref().map(|d| &d.etag), want.as_ref().map(|d| &d.etag), "{file} preset {n}");
            }
            // Built once, shared by clones.
            let again = r.clone().preset(1).unwrap();
            assert!(Arc::ptr_eq(&again.gzip, &r.preset(1).unwrap().gzip));
            assert!(r.weight() > r.full.weight());
        }
        assert!(Rendered::from_full(Doc::from_json(b"{\"x\":1}".to_vec())).is_none());
    }
}
